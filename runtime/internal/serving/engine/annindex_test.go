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
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// logBuffer collects an engine's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// indexedConfig is the test config with its two-tower model copied to a
// directory of the test's own, where an index file may be written; it
// returns that directory.
func indexedConfig(t *testing.T) (*config.Config, string) {
	t.Helper()
	f := world(t)
	dir := filepath.Join(t.TempDir(), "two-tower")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(f.models, "two-tower"))); err != nil {
		t.Fatal(err)
	}
	cfg := with(testConfig(f), func(c *config.Config) {
		c.Deploy.Models = slices.Clone(c.Deploy.Models)
		c.Deploy.Models[0].URI = "file://" + dir
	})
	return cfg, dir
}

// openLogged opens an engine whose log goes to logs and applies cfg; the
// caller closes it.
func openLogged(t *testing.T, cfg *config.Config, state string, logs *logBuffer) *Engine {
	t.Helper()
	e, err := Open(context.Background(), cfg, Options{StateDir: state, Log: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := e.Apply(cfg, "rev-1"); err != nil {
		_ = e.Close()
		t.Fatalf("Apply: %v", err)
	}
	return e
}

func TestSavedIndexIsLoadedInsteadOfBuilt(t *testing.T) {
	// One worker builds the same graph from the same embeddings every
	// time, so that an engine that builds its index answers as one that
	// loads the index WriteIndexes built.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	cfg, dir := indexedConfig(t)
	ctx := context.Background()
	written, err := WriteIndexes(ctx, cfg, Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("WriteIndexes: %v", err)
	}
	path := filepath.Join(dir, IndexFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no index file: %v", err)
	}
	want := []WrittenIndex{{Model: "two-tower", Path: path, Items: 1000, Bytes: fi.Size()}}
	if !slices.Equal(written, want) {
		t.Errorf("WriteIndexes wrote %+v, want %+v", written, want)
	}

	logs := &logBuffer{}
	state := t.TempDir()
	loaded := openLogged(t, cfg, state, logs)
	defer func() { _ = loaded.Close() }()
	if l := logs.String(); !strings.Contains(l, `"msg":"Loaded the ANN index"`) || strings.Contains(l, "Built the ANN index") {
		t.Fatalf("the engine did not load the saved index; log:\n%s", l)
	}
	built := open(t, testConfig(world(t)), t.TempDir())

	now := time.Now()
	for u := 0; u < 40; u++ {
		user := fmt.Sprintf("u%d", u)
		a, b := recommend(t, loaded, user, 25, now), recommend(t, built, user, 25, now)
		if !slices.Equal(ids(a), ids(b)) {
			t.Errorf("%s: the engine that loaded its index recommends %v, the one that built it %v", user, ids(a), ids(b))
		}
	}
	li, bi := loaded.indexes["two-tower"], built.indexes["two-tower"]
	vecs := built.towers["two-tower"].Vectors()
	for item := uint32(0); item < 1000; item += 37 {
		q := vecs.Vector(item, nil)
		a, _ := li.Search(q, 50, 0, nil)
		b, _ := bi.Search(q, 50, 0, nil)
		if !slices.Equal(a, b) {
			t.Fatalf("item %d's neighbours: %v in the loaded index, %v in the built one", item, a, b)
		}
	}

	// An item published live joins the loaded index, and after a restart
	// the saved index is loaded and the item added to it.
	ingest(t, loaded, store.Event{Type: store.NewItem, Item: "fresh-1", Author: "a3", Time: now})
	if n := li.Len(); n != 1001 {
		t.Errorf("the loaded index holds %d items after a new item, want 1001", n)
	}
	if err := loaded.Close(); err != nil {
		t.Fatal(err)
	}
	logs = &logBuffer{}
	again := openLogged(t, cfg, state, logs)
	defer func() { _ = again.Close() }()
	if l := logs.String(); !strings.Contains(l, `"msg":"Loaded the ANN index"`) || !strings.Contains(l, `"added":1`) {
		t.Errorf("after a restart with an item published live, the log does not say the index was loaded and one item added:\n%s", l)
	}
	if n := again.indexes["two-tower"].Len(); n != 1001 {
		t.Errorf("after a restart the index holds %d items, want 1001", n)
	}
}

func TestUnfitSavedIndexIsIgnored(t *testing.T) {
	tests := map[string]struct {
		write  func(t *testing.T, cfg *config.Config, path string)
		reason string
	}{
		"truncated": {func(t *testing.T, cfg *config.Config, path string) {
			writeIndexes(t, cfg, ann.Options{})
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}, "truncated in its items"},
		"not an index": {func(t *testing.T, _ *config.Config, path string) {
			if err := os.WriteFile(path, []byte(strings.Repeat("not an index\n", 20)), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "does not start as an index file does"},
		"built with other options": {func(t *testing.T, cfg *config.Config, _ string) {
			writeIndexes(t, cfg, ann.Options{M: 8})
		}, "built with M 8"},
		"built over other embeddings": {func(t *testing.T, _ *config.Config, path string) {
			// The embeddings of a catalog where one item differs.
			e := open(t, testConfig(world(t)), t.TempDir())
			tw := e.towers["two-tower"]
			flat := tw.Flat()
			flat[5*tw.Dim()] += 0.5
			idx := ann.New(tw.Dim(), ann.InnerProduct, ann.Options{})
			if err := idx.Build(context.Background(), nil, flat, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := writeIndex(path, idx); err != nil {
				t.Fatal(err)
			}
		}, "built over other vectors"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, dir := indexedConfig(t)
			tc.write(t, cfg, filepath.Join(dir, IndexFile))
			logs := &logBuffer{}
			e := openLogged(t, cfg, t.TempDir(), logs)
			defer func() { _ = e.Close() }()
			l := logs.String()
			if !strings.Contains(l, `"msg":"Ignored the saved ANN index; building it"`) || !strings.Contains(l, tc.reason) {
				t.Errorf("the log does not warn that the index was ignored because %q:\n%s", tc.reason, l)
			}
			if !strings.Contains(l, `"msg":"Built the ANN index"`) || strings.Contains(l, "Loaded the ANN index") {
				t.Errorf("the engine did not build its index; log:\n%s", l)
			}
			if n := e.indexes["two-tower"].Len(); n != 1000 {
				t.Errorf("the index holds %d items, want 1000", n)
			}
			if r := recommend(t, e, "u1", 25, time.Now()); len(r.Items) == 0 {
				t.Error("the engine recommends nothing")
			}
		})
	}
}

func writeIndexes(t *testing.T, cfg *config.Config, opts ann.Options) {
	t.Helper()
	if _, err := WriteIndexes(context.Background(), cfg, Options{ANN: opts, Log: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatalf("WriteIndexes: %v", err)
	}
}

func TestWriteIndexesRefusesAModelNotInADirectory(t *testing.T) {
	cfg := with(testConfig(world(t)), func(c *config.Config) {
		c.Deploy.Models = slices.Clone(c.Deploy.Models)
		c.Deploy.Models[0].URI = "https://models.example/two-tower.tar.gz"
	})
	_, err := WriteIndexes(context.Background(), cfg, Options{Log: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "model two-tower at \"https://models.example/two-tower.tar.gz\" is not a local directory") {
		t.Errorf("WriteIndexes of a remote model: error = %v, want it named as not a local directory", err)
	}
}
