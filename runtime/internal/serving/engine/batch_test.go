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
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// failingLists refuses every batch after the first ok of them.
type failingLists struct {
	store.ListStore
	ok   int32
	puts atomic.Int32
}

func (f *failingLists) PutLists(ctx context.Context, lists []store.List, now time.Time) error {
	if f.puts.Add(1) > f.ok {
		return errors.New("the store is full")
	}
	return f.ListStore.PutLists(ctx, lists, now)
}

// precomputeEngine is the fixture's engine precomputing lists for every
// user active in the last year, with users active.
func precomputeEngine(t *testing.T, users int) *Engine {
	t.Helper()
	cfg := with(testConfig(world(t)), func(c *config.Config) {
		c.Live.Precompute = &config.Precompute{Serve: config.PrecomputeAlways, TTL: config.Duration(24 * time.Hour), Size: 10,
			ActiveWithin: config.Duration(365 * 24 * time.Hour)}
	})
	e := open(t, cfg, t.TempDir())
	then := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	events := make([]store.Event, users)
	for i := range events {
		events[i] = store.Event{User: fmt.Sprintf("u%d", i), Item: "i1", Type: store.Impression, Time: then}
	}
	ingest(t, e, events...)
	return e
}

// waitRun waits for the engine's precompute run to end and returns it.
func waitRun(t *testing.T, e *Engine) *config.PrecomputeRun {
	t.Helper()
	e.batch.mu.Lock()
	done := e.batch.done
	e.batch.mu.Unlock()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the precompute run did not end")
	}
	return e.LastPrecompute()
}

// A store that fails stops the run, which reports why; the lists stored
// before stay counted.
func TestPrecomputeRunStopsWhenTheStoreFails(t *testing.T) {
	e := precomputeEngine(t, 1200)
	fl := &failingLists{ListStore: e.batch.lists, ok: 1}
	e.batch.lists = fl
	if _, err := e.StartPrecompute(time.Minute); err != nil {
		t.Fatal(err)
	}
	run := waitRun(t, e)
	if !strings.Contains(run.Error, "the store is full") || run.Stored != precomputeBatch || run.Finished.IsZero() {
		t.Errorf("run = %+v, want it failed on the store after one batch of %d", run, precomputeBatch)
	}
	if n := fl.puts.Load(); n != 2 {
		t.Errorf("%d batches offered to the store, want 2: none after it failed", n)
	}
	// A new run may start once that one ended.
	if _, err := e.StartPrecompute(time.Minute); err != nil {
		t.Errorf("a run after a failed one: %v", err)
	}
	waitRun(t, e)
}

// A run past its deadline stops and says so; one already running refuses
// another; closing the engine stops a run.
func TestPrecomputeRunDeadlineAndClose(t *testing.T) {
	e := precomputeEngine(t, 200)
	if _, err := e.StartPrecompute(time.Nanosecond); err != nil {
		t.Fatal(err)
	}
	if run := waitRun(t, e); !strings.Contains(run.Error, "deadline exceeded") || run.Finished.IsZero() {
		t.Errorf("run past its deadline: %+v, want it stopped at its deadline", run)
	}

	if _, err := e.StartPrecompute(time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := e.StartPrecompute(time.Hour); !errors.Is(err, ErrPrecomputeRunning) {
		t.Errorf("a second run while one runs: %v, want ErrPrecomputeRunning", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	run := e.LastPrecompute()
	if run.Finished.IsZero() || (run.Error == "" && run.Stored != 200) {
		t.Errorf("run after Close: %+v, want it finished (stopped, or done with every list)", run)
	}
}
