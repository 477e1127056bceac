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
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
)

// BenchmarkCreatePipelines creates RECPIPELINE_BENCH_PIPELINES (default
// 300) pipelines at once against envtest and reports the time until every
// one has all its children and a Ready-or-Progressing status, the manager's
// API writes per pipeline, and this process's CPU time and heap (the
// manager and the benchmark's own client; the API server and etcd run as
// other processes). It then reconciles every pipeline again without a
// change and fails if that makes any write.
//
//	make bench   or
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go test -run '^$' -bench CreatePipelines -benchtime 1x ./controllers/
func BenchmarkCreatePipelines(b *testing.B) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("RECPIPELINE_BENCH_PIPELINES")); err == nil && v > 0 {
		n = v
	}
	for iter := 0; iter < b.N; iter++ {
		ns := newNamespace(b)
		ctx := context.Background()

		runtime.GC()
		cpu0 := cpuTime()
		writes0 := writes.total.Load()
		start := time.Now()

		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 32)
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				rp := samplePipeline(ns, fmt.Sprintf("p%03d", i))
				rp.UID = ""
				if err := k8s.Create(ctx, rp); err != nil {
					errs <- err
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatalf("failed to create a pipeline: %v", err)
		}

		deadline := time.Now().Add(10 * time.Minute)
		for {
			done, err := settled(ctx, ns, n)
			if err != nil {
				b.Fatal(err)
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("pipelines not settled after 10 minutes")
			}
			time.Sleep(200 * time.Millisecond)
		}
		elapsed := time.Since(start)
		createWrites := writes.total.Load() - writes0
		cpu := cpuTime() - cpu0
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)

		// The no-change resync: every pipeline reconciled once more.
		waitQuiet(b)
		resync0 := writes.total.Load()
		before := map[string]int{}
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("p%03d", i)
			before[name] = reconcileCount(ns, name)
			rp := &servingv1alpha1.RecPipeline{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rp); err != nil {
				b.Fatal(err)
			}
			patch := client.MergeFrom(rp.DeepCopy())
			rp.Labels = map[string]string{"resync": "1"}
			if err := k8s.Patch(ctx, rp, patch); err != nil {
				b.Fatal(err)
			}
		}
		resyncStart := time.Now()
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("p%03d", i)
			for reconcileCount(ns, name) <= before[name] {
				if time.Since(resyncStart) > 5*time.Minute {
					b.Fatalf("pipeline %s was not reconciled again", name)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		resyncElapsed := time.Since(resyncStart)
		waitQuiet(b)
		resyncWrites := writes.total.Load() - resync0

		b.ReportMetric(elapsed.Seconds(), "s-to-settle")
		b.ReportMetric(float64(createWrites)/float64(n), "writes/pipeline")
		b.ReportMetric(cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
		b.ReportMetric(float64(ms.Sys)/(1<<20), "sys-MiB")
		b.ReportMetric(resyncElapsed.Seconds(), "s-resync")
		b.ReportMetric(float64(resyncWrites), "resync-writes")
		if resyncWrites != 0 {
			b.Errorf("a no-change resync of %d pipelines made %d writes", n, resyncWrites)
		}
	}
}

// settled reports whether all n pipelines of ns have every Deployment and a
// status with Ready or Progressing for their current generation.
func settled(ctx context.Context, ns string, n int) (bool, error) {
	list := &servingv1alpha1.RecPipelineList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		return false, err
	}
	if len(list.Items) != n {
		return false, nil
	}
	for i := range list.Items {
		rp := &list.Items[i]
		if rp.Status.ObservedGeneration != rp.Generation {
			return false, nil
		}
		if meta.FindStatusCondition(rp.Status.Conditions, servingv1alpha1.ConditionReady) == nil &&
			!meta.IsStatusConditionTrue(rp.Status.Conditions, servingv1alpha1.ConditionProgressing) {
			return false, nil
		}
	}
	// observedGeneration is written after every child was applied; the
	// Deployments, written last, confirm it.
	deps := &appsv1.DeploymentList{}
	if err := k8s.List(ctx, deps, client.InNamespace(ns)); err != nil {
		return false, err
	}
	return len(deps.Items) == n*len(Stages), nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
