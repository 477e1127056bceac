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

package controllers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The envtest suite: one real kube-apiserver and etcd for the package,
// started in TestMain, with the manager running the reconciler against it.
var (
	testEnv   *envtest.Environment
	k8s       client.Client // the tests' own client, not counted as the manager's writes
	scheme    = runtime.NewScheme()
	writes    = &writeCounter{}
	pods      = &fakeStatusReader{revisions: map[string]config.Status{}}
	testImage = "registry.test/recserve:v1"
	// testToolsImage is the manager's default tools image in the suite.
	testToolsImage = "registry.test/recpipeline-tools:v1"
	// reconciles counts finished reconciles per pipeline.
	reconciles = &reconcileCounter{n: map[types.NamespacedName]int{}}
)

type reconcileCounter struct {
	mu sync.Mutex
	n  map[types.NamespacedName]int
}

func (c *reconcileCounter) add(key types.NamespacedName) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[key]++
}

func reconcileCount(ns, name string) int {
	reconciles.mu.Lock()
	defer reconciles.mu.Unlock()
	return reconciles.n[types.NamespacedName{Namespace: ns, Name: name}]
}

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds etcd and kube-apiserver from source")
		return 1
	}
	level := zapcore.ErrorLevel
	if os.Getenv("RECPIPELINE_TEST_VERBOSE") != "" {
		level = zapcore.DebugLevel
	}
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(level)))
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, servingv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	// Room for the ClusterIPs of hundreds of pipelines (four Services each)
	// in the benchmark; envtest's default range holds 254.
	testEnv.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16")
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failed to start envtest:", err)
		return 1
	}
	defer func() { _ = testEnv.Stop() }()

	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	// The manager's own requests go through a transport that counts writes.
	mgrCfg := rest.CopyConfig(cfg)
	mgrCfg.WrapTransport = writes.wrap
	cacheOpts, err := CacheOptions(nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := &RecPipelineReconciler{
		Client:            mgr.GetClient(),
		Scheme:            mgr.GetScheme(),
		Recorder:          mgr.GetEventRecorder("recpipeline-operator"),
		DefaultImage:      testImage,
		DefaultToolsImage: testToolsImage,
		StatusReader:      pods,
		APIReader:         mgr.GetAPIReader(),
	}
	if err := r.setupWithManager(mgr, reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		defer reconciles.add(req.NamespacedName)
		return r.Reconcile(ctx, req)
	})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "The manager stopped with an error:", err)
		}
	}()
	return m.Run()
}

// writeCounter counts the requests that change state on the API server.
type writeCounter struct {
	total atomic.Int64
	mu    sync.Mutex
	byKey map[string]int64
}

func (w *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch req.Method {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			w.total.Add(1)
			w.mu.Lock()
			if w.byKey == nil {
				w.byKey = map[string]int64{}
			}
			w.byKey[req.Method+" "+req.URL.Path]++
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// since lists the writes made after a snapshot, for failure messages.
func (w *writeCounter) snapshot() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int64, len(w.byKey))
	for k, v := range w.byKey {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeStatusReader stands in for the stage pods' /v1/status: envtest runs
// no pods, so the tests say what each pod serves.
type fakeStatusReader struct {
	mu        sync.Mutex
	revisions map[string]config.Status
}

func (f *fakeStatusReader) set(pod *corev1.Pod, s config.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revisions[pod.Namespace+"/"+pod.Name] = s
}

func (f *fakeStatusReader) ReadStatus(_ context.Context, pod *corev1.Pod) (*config.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.revisions[pod.Namespace+"/"+pod.Name]
	if !ok {
		return nil, fmt.Errorf("pod %s does not answer", pod.Name)
	}
	return &s, nil
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
}
