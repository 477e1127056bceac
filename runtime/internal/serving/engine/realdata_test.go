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

// Tests of serving a real interaction log: ids only, replayed from years
// ago, by users who have seen much of the catalog.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

// writeIDOnlyCatalog writes, into a new directory, a catalog of feature_dim
// 0 holding the items of cat, and no user table.
func writeIDOnlyCatalog(t *testing.T, cat *catalog.Catalog) string {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, catalog.CatalogFile))
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	_ = enc.Encode(map[string]any{"format": "recpipeline.catalog", "version": 1, "feature_dim": 0})
	for o := range uint32(cat.Len()) {
		_ = enc.Encode(map[string]any{"id": cat.ID(o), "author": cat.Author(o), "created": cat.Created(o),
			"features": []float32{}, "integrity_risk": cat.Risk(o)})
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A catalog that cannot feed a model's feature blocks is refused at start
// with the block, the model and both widths named. Before, the failed Open
// dereferenced the engine it had just set to nil, closing its store, and
// recserve died of a nil pointer instead.
func TestOpenRefusesModelsTheCatalogCannotFeed(t *testing.T) {
	f := world(t)
	cat, err := catalog.Load(context.Background(), "file://"+f.world, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := with(testConfig(f), func(c *config.Config) {
		c.Deploy.Catalog = "file://" + writeIDOnlyCatalog(t, cat)
	})
	state := t.TempDir()
	e, err := Open(context.Background(), cfg, Options{StateDir: state, Log: slog.New(slog.DiscardHandler)})
	if err == nil {
		_ = e.Close()
		t.Fatal("Open succeeded on a catalog without the features the models were trained with")
	}
	want := fmt.Sprintf(`model "two-tower", user tower: failed to compile feature spec: block 0 "user_features": width %d, but the user table's feature_dim is 0`, cat.UserFeatureDim())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Open error %q, want it to contain %q", err, want)
	}
	// The store was closed: its lock is free for the next process.
	e2, err := Open(context.Background(), testConfig(f), Options{StateDir: state, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open after a refused Open on the same state directory: %v", err)
	}
	_ = e2.Close()
}

// Models trained by rectrain on ids only (a MovieLens ratings file) serve a
// catalog of feature_dim 0: their feature blocks of the catalog and user
// tables are declared one wide, a column of zeros.
func TestIDOnlyCatalogServes(t *testing.T) {
	dir := t.TempDir()
	var csv strings.Builder
	csv.WriteString("userId,movieId,rating,timestamp\n")
	base := time.Date(2003, 5, 1, 0, 0, 0, 0, time.UTC).Unix()
	for u := 1; u <= 40; u++ {
		for k := range 25 {
			fmt.Fprintf(&csv, "%d,%d,%d,%d\n", u, 1+(u*7+k*13)%120, 1+(u+k)%5, base+int64(u*1000+k*3600))
		}
	}
	ratings := filepath.Join(dir, "ratings.csv")
	if err := os.WriteFile(ratings, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := rectrain.LoadMovieLens(ratings, rectrain.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rectrain.Train(d, rectrain.Options{Epochs: 1, Seed: 1, EvalUsers: 5, Hidden: []int{8}, Dim: 4, TowerHidden: 8})
	if err != nil {
		t.Fatal(err)
	}
	models := filepath.Join(dir, "models")
	if err := res.Save(models, "test"); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.New(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for m := 1; m <= 120; m++ {
		if _, err := cat.Add(dataset.Item{ID: fmt.Sprint(m), Author: fmt.Sprintf("a%d", m%7), Created: time.Unix(base, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := with(testConfig(world(t)), func(c *config.Config) {
		c.Deploy.Catalog = "file://" + writeIDOnlyCatalog(t, cat)
		for i := range c.Deploy.Models {
			c.Deploy.Models[i].URI = "file://" + filepath.Join(models, c.Deploy.Models[i].Name)
		}
		c.Live.Retrieval.Candidates, c.Live.FirstStage.Keep, c.Live.SecondStage.Keep = 100, 100, 50
		c.Live.Rerank.Rules = nil
	})
	e, err := Open(context.Background(), cfg, Options{StateDir: t.TempDir(), Log: slog.New(slog.DiscardHandler)})
	if err == nil {
		defer e.Close()
		err = e.Apply(cfg, "rev-1")
	}
	if err != nil {
		t.Fatal(err)
	}
	resp := recommend(t, e, "1", 25, time.Now())
	if len(resp.Items) != 25 {
		t.Errorf("%d items for an id-only catalog, want 25", len(resp.Items))
	}
}

// A user who has seen most of a small catalog still gets a full list while
// enough unseen items exist: retrieval is topped up from the popular items
// and the catalog when its sources come up short.
func TestRecommendBackfillsAUserWhoHasSeenMostOfTheCatalog(t *testing.T) {
	f := world(t)
	cfg := with(testConfig(f), func(c *config.Config) {
		// Popular alone finds little: a handful of items are popular.
		c.Live.Retrieval.Sources = c.Live.Retrieval.Sources[3:]
		c.Live.SecondStage.RetrievalModel = "two-tower"
		// No rule that may end a list early: its length is retrieval's.
		c.Live.Rerank.Rules = nil
	})
	e := open(t, cfg, t.TempDir())
	n := e.cat.Len()
	var events []store.Event
	unseen := map[string]bool{}
	for o := range uint32(n) {
		id := e.cat.ID(o)
		if o%25 == 0 {
			unseen[id] = true // 40 of 1,000
			continue
		}
		events = append(events, store.Event{Type: store.Impression, User: "heavy", Item: id})
	}
	for _, id := range []string{"i1", "i2", "i3", "i4", "i5"} {
		events = append(events, store.Event{Type: store.Click, User: "other", Item: id})
	}
	ingest(t, e, events...)

	resp := recommend(t, e, "heavy", 25, time.Now())
	if len(resp.Items) != 25 {
		t.Fatalf("%d items for a user who has seen all but %d items, want 25", len(resp.Items), len(unseen))
	}
	for _, it := range resp.Items {
		if !unseen[it.ID] {
			t.Errorf("item %s was seen, yet recommended", it.ID)
		}
	}
	// What remains unseen bounds the list.
	var more []store.Event
	for _, id := range slices.Sorted(maps.Keys(unseen))[10:] {
		more = append(more, store.Event{Type: store.Impression, User: "heavy", Item: id})
	}
	ingest(t, e, more...)
	if resp := recommend(t, e, "heavy", 25, time.Now()); len(resp.Items) != 10 {
		t.Errorf("%d items with 10 left unseen, want 10", len(resp.Items))
	}
}

// deploy.store.seenItems sizes each user's seen set.
func TestSeenItemsConfigSizesTheStore(t *testing.T) {
	cfg := with(testConfig(world(t)), func(c *config.Config) { c.Deploy.Store.SeenItems = 3 })
	e := open(t, cfg, t.TempDir())
	for _, id := range []string{"i1", "i2", "i3", "i4"} {
		ingest(t, e, store.Event{Type: store.Impression, User: "u40", Item: id})
	}
	seen, err := e.state.Seen(context.Background(), "u40")
	if err != nil {
		t.Fatal(err)
	}
	if seen.HasItem("i1") || !seen.HasItem("i2") || !seen.HasItem("i4") || seen.Len() != 3 {
		t.Errorf("with seenItems 3 the seen set holds %v, want the last 3 of i1..i4", slices.Collect(seen.Items()))
	}
}

// A log replayed from years ago is served on its own clock: the followed
// authors' window, item ages and the engagement pool are measured against
// its newest event, not against today.
func TestEventClockServesAReplayedLog(t *testing.T) {
	f := world(t)
	cfg := with(followedConfig(f), func(c *config.Config) {
		c.Live.Retrieval.Sources[0].MaxAge = config.Duration(72 * time.Hour)
	})
	e := open(t, cfg, t.TempDir())
	newestItem, _ := e.cat.NewestCreated()
	then := newestItem.Add(10 * 24 * time.Hour) // years before the wall clock
	ingest(t, e,
		store.Event{Type: store.Follow, User: "u30", Author: "a3", Time: then.Add(-2 * time.Hour)},
		store.Event{Type: store.NewItem, Item: "old-news", Author: "a3", Time: then.Add(-time.Hour)},
		store.Event{Type: store.Click, User: "u31", Item: "i1", Time: then},
	)
	resp := recommend(t, e, "u30", 1000, time.Now())
	if want := then.Add(time.Millisecond); !resp.Now.Equal(want) {
		t.Errorf("served at %v, want the newest event's time plus 1ms, %v", resp.Now, want)
	}
	if it, ok := find(resp, "old-news"); !ok || !slices.Contains(it.Sources, "followed-recent") {
		t.Errorf("old-news, published an hour before the log's newest event by a followed author, is not found by followed-recent (%v, %v)", ok, it.Sources)
	}

	// On the wall clock the same item is years past the window.
	wall := with(cfg, func(c *config.Config) { c.Live.Clock = config.Clock{Type: config.ClockWall} })
	if err := e.Apply(wall, "rev-wall"); err != nil {
		t.Fatal(err)
	}
	arrived := time.Now()
	resp = recommend(t, e, "u30", 1000, arrived)
	if !resp.Now.Equal(arrived) {
		t.Errorf("on the wall clock served at %v, want the arrival %v", resp.Now, arrived)
	}
	if it, ok := find(resp, "old-news"); ok && slices.Contains(it.Sources, "followed-recent") {
		t.Error("on the wall clock followed-recent finds an item published years ago")
	}
}
