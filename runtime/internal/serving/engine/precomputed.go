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

package engine

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
)

// precomputedLoadTimeout bounds one load of a precomputed lists file.
const precomputedLoadTimeout = 2 * time.Minute

// precomputedCache holds the Precomputed sources of the live configs, one
// per URI, so that a config change that keeps a source's URI keeps its
// lists, and checks them for a new version in the background: a file
// rewritten by an off-peak job is served once it parses whole, and a bad
// one leaves the lists loaded before serving.
type precomputedCache struct {
	cat  *catalog.Catalog
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}

	mu    sync.Mutex
	byURI map[string]*sources.Precomputed
}

func newPrecomputedCache(cat *catalog.Catalog, every time.Duration, log *slog.Logger) *precomputedCache {
	if every <= 0 {
		every = DefaultPrecomputedRefresh
	}
	c := &precomputedCache{cat: cat, log: log, stop: make(chan struct{}), done: make(chan struct{}), byURI: map[string]*sources.Precomputed{}}
	go c.refreshEvery(every)
	return c
}

// source returns the source of s's URI, loading its lists first when no
// live config has it yet: a config whose lists cannot be loaded is
// refused.
func (c *precomputedCache) source(s config.Source) (*sources.Precomputed, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.byURI[s.URI]; ok {
		return p, nil
	}
	p, err := sources.NewPrecomputed(s, c.cat, sources.PrecomputedOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), precomputedLoadTimeout)
	defer cancel()
	st, err := p.Load(ctx)
	if err != nil {
		return nil, err
	}
	c.log.Info("Loaded precomputed lists", "source", s.Name, "uri", p.URI(), "users", st.Users, "items", st.Items, "unknownItems", st.Unknown)
	c.byURI[s.URI] = p
	return p, nil
}

// keepOnly forgets the lists of URIs cfg does not name.
func (c *precomputedCache) keepOnly(cfg *config.Config) {
	named := map[string]bool{}
	for _, l := range cfg.Live.Lives() {
		for _, s := range l.Retrieval.Sources {
			if s.Type == config.SourcePrecomputed {
				named[s.URI] = true
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for uri := range c.byURI {
		if !named[uri] {
			delete(c.byURI, uri)
		}
	}
}

// refresh checks every cached source for a new version once.
func (c *precomputedCache) refresh(ctx context.Context) {
	c.mu.Lock()
	list := make([]*sources.Precomputed, 0, len(c.byURI))
	for _, p := range c.byURI {
		list = append(list, p)
	}
	c.mu.Unlock()
	for _, p := range list {
		ctx, cancel := context.WithTimeout(ctx, precomputedLoadTimeout)
		reloaded, st, err := p.Refresh(ctx)
		cancel()
		switch {
		case err != nil:
			c.log.Warn("Kept the precomputed lists loaded before: the new version does not load", "uri", p.URI(), "err", err)
		case reloaded:
			c.log.Info("Reloaded precomputed lists", "uri", p.URI(), "users", st.Users, "items", st.Items, "unknownItems", st.Unknown)
		}
	}
}

func (c *precomputedCache) refreshEvery(every time.Duration) {
	defer close(c.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.stop
		cancel()
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.refresh(ctx)
		}
	}
}

func (c *precomputedCache) close() {
	close(c.stop)
	<-c.done
}
