/*
Copyright 2026 The RecPipeline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// A ConfigSource delivers the raw runtime config, once at start and again
// on every change, until ctx ends.
type ConfigSource interface {
	Watch(ctx context.Context, deliver func(raw []byte)) error
}

// FileSource watches a config file on disk: the local default.
type FileSource struct {
	Path string
	// Poll is the fallback re-read interval for file systems without
	// change notifications; 2s when zero.
	Poll time.Duration
	Log  *slog.Logger
}

// Watch implements ConfigSource. It watches the file's directory, so that
// editors and kubelet-style symlink swaps that replace the file are seen.
func (f *FileSource) Watch(ctx context.Context, deliver func([]byte)) error {
	log := f.Log
	if log == nil {
		log = slog.Default()
	}
	poll := f.Poll
	if poll == 0 {
		poll = 2 * time.Second
	}
	var last [sha256.Size]byte
	read := func() {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			log.Warn("Cannot read the config file", "path", f.Path, "err", err)
			return
		}
		if sum := sha256.Sum256(b); sum != last {
			last = sum
			deliver(b)
		}
	}
	read()
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("File notifications unavailable, polling the config file", "err", err)
	} else {
		defer func() { _ = w.Close() }()
		if err := w.Add(filepath.Dir(f.Path)); err != nil {
			log.Warn("Cannot watch the config directory, polling", "err", err)
		}
	}
	var events chan fsnotify.Event
	if w != nil {
		events = w.Events
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-events:
			read()
		case <-tick.C:
			read()
		}
	}
}

// ConfigMapSource watches the pipeline's ConfigMap through the API: a new
// revision reaches the pod as soon as the API server has it, without the
// kubelet's volume sync delay. It needs only get and watch on that one
// ConfigMap.
type ConfigMapSource struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Log       *slog.Logger
}

// Watch implements ConfigSource.
func (c *ConfigMapSource) Watch(ctx context.Context, deliver func([]byte)) error {
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	backoff := time.Second
	for ctx.Err() == nil {
		err := c.watchOnce(ctx, deliver)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("ConfigMap watch ended, starting over", "configmap", c.Namespace+"/"+c.Name, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

func (c *ConfigMapSource) watchOnce(ctx context.Context, deliver func([]byte)) error {
	cms := c.Client.CoreV1().ConfigMaps(c.Namespace)
	cm, err := cms.Get(ctx, c.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("failed to get ConfigMap %s/%s: %w", c.Namespace, c.Name, err)
	}
	deliverConfigMap(cm, deliver)
	selector := fields.OneTermEqualSelector("metadata.name", c.Name).String()
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, cm.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = selector
			return cms.Watch(ctx, opts)
		},
	})
	if err != nil {
		return fmt.Errorf("failed to watch ConfigMap %s/%s: %w", c.Namespace, c.Name, err)
	}
	defer rw.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-rw.ResultChan():
			if !ok {
				return errors.New("watch closed")
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
					deliverConfigMap(cm, deliver)
				}
			case watch.Error:
				// A resource version too old to resume from: get anew.
				return apierrors.FromObject(ev.Object)
			}
		}
	}
}

func deliverConfigMap(cm *corev1.ConfigMap, deliver func([]byte)) {
	if raw, ok := cm.Data[config.ConfigKey]; ok {
		deliver([]byte(raw))
	}
}
