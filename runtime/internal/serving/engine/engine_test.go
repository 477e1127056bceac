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

// Tests of the engine on a small synthetic world with models trained by
// rectrain, prepared once for the package.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/testworld"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// fixture is a world on disk with trained models.
type fixture struct {
	world, models string
	err           error
}

var (
	fixtureOnce sync.Once
	fix         fixture
	fixtureDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

func world(tb testing.TB) *fixture {
	tb.Helper()
	fixtureOnce.Do(func() {
		w, err := testworld.Build(synth.Config{Users: 200, Items: 1000, Events: 15000, Seed: 11})
		if err != nil {
			fix.err = err
			return
		}
		fixtureDir = w.Dir
		fix.world, fix.models = w.Data, w.Models
	})
	if fix.err != nil {
		tb.Fatalf("failed to prepare the world: %v", fix.err)
	}
	return &fix
}

// testConfig is the sample pipeline on the fixture: four sources, both
// rankers and the three rerank rules.
func testConfig(f *fixture) *config.Config {
	timeout := config.Duration(5 * time.Second)
	return &config.Config{
		Version: config.SchemaVersion, Pipeline: "test/pipeline",
		Deploy: config.Deploy{
			Catalog: "file://" + f.world,
			Store:   config.Store{Type: "Memory"},
			Models: []config.Model{
				{Name: "two-tower", URI: "file://" + filepath.Join(f.models, "two-tower")},
				{Name: "first-stage", URI: "file://" + filepath.Join(f.models, "first-stage")},
				{Name: "mtml", URI: "file://" + filepath.Join(f.models, "mtml")},
			},
		},
		Live: config.Live{
			Retrieval: config.Retrieval{Candidates: 600, Sources: []config.Source{
				{Name: "followed-recent", Type: config.SourceFollowedAuthorsRecent, Weight: 0.25, Limit: 200, Timeout: timeout, MaxAge: config.Duration(10 * 365 * 24 * time.Hour)},
				{Name: "for-you", Type: config.SourceTwoTowerANN, Model: "two-tower", Weight: 0.45, Limit: 300, Timeout: timeout},
				{Name: "more-like-this", Type: config.SourceItemToItemANN, Model: "two-tower", Weight: 0.2, Limit: 200, SeedItems: 10, Timeout: timeout},
				{Name: "trending", Type: config.SourcePopular, Weight: 0.1, Limit: 100, Timeout: timeout, Window: config.Duration(24 * time.Hour)},
			}},
			FirstStage:  config.Ranker{Model: "first-stage", Keep: 200},
			SecondStage: config.Ranker{Model: "mtml", Keep: 60},
			Weights:     map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8},
			Rerank: config.Rerank{Size: 25, Rules: []config.Rule{
				{Type: config.RuleAuthorDiversity, MinGap: 3},
				{Type: config.RuleIntegrityFilter, MaxRisk: 0.3},
				{Type: config.RuleIntegrityDownrank, Above: 0.2, Factor: 0.3},
			}},
		},
	}
}

// with returns a copy of cfg changed by edit; the sources, weights and
// rules are copied too.
func with(cfg *config.Config, edit func(*config.Config)) *config.Config {
	c := *cfg
	c.Live.Retrieval.Sources = slices.Clone(cfg.Live.Retrieval.Sources)
	c.Live.Rerank.Rules = slices.Clone(cfg.Live.Rerank.Rules)
	c.Live.Weights = make(map[string]float64, len(cfg.Live.Weights))
	for k, v := range cfg.Live.Weights {
		c.Live.Weights[k] = v
	}
	edit(&c)
	return &c
}

// open opens an engine on the fixture with its state in stateDir and
// applies cfg as revision "rev-1".
func open(tb testing.TB, cfg *config.Config, stateDir string) *Engine {
	tb.Helper()
	e, err := Open(context.Background(), cfg, Options{StateDir: stateDir, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	if err := e.Apply(cfg, "rev-1"); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
	return e
}

func recommend(tb testing.TB, e *Engine, user string, n int, now time.Time) *Response {
	tb.Helper()
	resp, err := e.Recommend(context.Background(), &Request{User: user, N: n, Debug: true, Now: now})
	if err != nil {
		tb.Fatalf("Recommend(%s): %v", user, err)
	}
	return resp
}

func ingest(tb testing.TB, e *Engine, events ...store.Event) {
	tb.Helper()
	if err := e.Ingest(context.Background(), events); err != nil {
		tb.Fatalf("Ingest: %v", err)
	}
}

func ids(r *Response) []string {
	out := make([]string, len(r.Items))
	for i, it := range r.Items {
		out[i] = it.ID
	}
	return out
}

func find(r *Response, id string) (Item, bool) {
	for _, it := range r.Items {
		if it.ID == id {
			return it, true
		}
	}
	return Item{}, false
}

func TestApplyRefusesInvalidConfigAndKeepsServing(t *testing.T) {
	base := testConfig(world(t))
	e := open(t, base, t.TempDir())
	cases := map[string]struct {
		edit func(*config.Config)
		want []string // in the error
	}{
		"first stage model is not TwoTower": {
			edit: func(c *config.Config) { c.Live.FirstStage.Model = "mtml" },
			want: []string{"live.firstStage.model", `"mtml"`},
		},
		"first stage model is not loaded": {
			edit: func(c *config.Config) { c.Live.FirstStage.Model = "nope" },
			want: []string{"live.firstStage.model", `"nope"`},
		},
		"second stage model is not MTML": {
			edit: func(c *config.Config) { c.Live.SecondStage.Model = "two-tower" },
			want: []string{"live.secondStage.model", `"two-tower"`},
		},
		"weight of an event that is not a head": {
			edit: func(c *config.Config) { c.Live.Weights["dwell"] = 3 },
			want: []string{"live.weights", `"dwell"`},
		},
		"ANN source on a model without an index": {
			edit: func(c *config.Config) {
				c.Live.Retrieval.Sources[1].Model = "first-stage"
			},
			want: []string{"live.retrieval.sources[1] (for-you)", `"first-stage"`, "no ANN index"},
		},
		"ANN source on a model that is not TwoTower": {
			edit: func(c *config.Config) { c.Live.Retrieval.Sources[2].Model = "mtml" },
			want: []string{"live.retrieval.sources[2] (more-like-this)", "not a loaded TwoTower model"},
		},
		"unknown source type": {
			edit: func(c *config.Config) { c.Live.Retrieval.Sources[3].Type = "Oracle" },
			want: []string{"live.retrieval.sources[3] (trending)", `unknown source type "Oracle"`},
		},
	}
	now := time.Now()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := e.Apply(with(base, tc.edit), "rev-bad")
			if err == nil {
				t.Fatal("Apply succeeded, want a refusal")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Apply error %q does not name %s", err, w)
				}
			}
			resp := recommend(t, e, "u1", 10, now)
			if resp.Revision != "rev-1" {
				t.Errorf("after a refusal the revision served is %q, want rev-1", resp.Revision)
			}
			if len(resp.Items) == 0 {
				t.Error("after a refusal the previous config recommends nothing")
			}
		})
	}
}

func TestRecommendHonoursNAndRerankSize(t *testing.T) {
	f := world(t)
	cases := map[string]struct {
		n, size, want int
	}{
		"n below the rerank size": {n: 5, size: 25, want: 5},
		"rerank size below n":     {n: 100, size: 10, want: 10},
		"n equal to the size":     {n: 20, size: 20, want: 20},
	}
	e := open(t, testConfig(f), t.TempDir())
	now := time.Now()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rev := "size-" + fmt.Sprint(tc.size)
			if err := e.Apply(with(testConfig(f), func(c *config.Config) { c.Live.Rerank.Size = tc.size }), rev); err != nil {
				t.Fatal(err)
			}
			resp := recommend(t, e, "u3", tc.n, now)
			if len(resp.Items) != tc.want {
				t.Errorf("%d items for n=%d and rerank size %d, want %d", len(resp.Items), tc.n, tc.size, tc.want)
			}
			if resp.Revision != rev {
				t.Errorf("response revision %q, want the applied %q", resp.Revision, rev)
			}
		})
	}
}

func TestRecommendDebugCarriesHeadsAndTimings(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	resp := recommend(t, e, "u5", 10, time.Now())
	if resp.Revision != "rev-1" {
		t.Errorf("revision %q, want rev-1", resp.Revision)
	}
	for _, it := range resp.Items {
		if len(it.Heads) != len(rectrain.Heads) {
			t.Errorf("item %s has heads %v, want one per head of %v", it.ID, it.Heads, rectrain.Heads)
		}
		for _, h := range rectrain.Heads {
			if p, ok := it.Heads[h]; !ok || p < 0 || p > 1 {
				t.Errorf("item %s: head %s = %v (present %v), want a probability", it.ID, h, p, ok)
			}
		}
		if len(it.Sources) == 0 {
			t.Errorf("item %s names no source", it.ID)
		}
	}
	for _, stage := range []string{"retrieval", "ranker-first", "ranker-second", "rerank"} {
		if _, ok := resp.Timings[stage]; !ok {
			t.Errorf("timings lack %s: %v", stage, resp.Timings)
		}
	}

	plain, err := e.Recommend(context.Background(), &Request{User: "u5", N: 10, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Timings != nil || len(plain.Items) == 0 || plain.Items[0].Heads != nil {
		t.Errorf("a request without debug carries timings %v or heads", plain.Timings)
	}
}

// TestReleasedResponsesAreReusedCleanly: an answer released after it was
// written lends its storage to a later one, and nothing of it shows there
// (a debug answer's heads and timings in a plain one), while an answer not
// yet released keeps its items whatever is answered meanwhile.
func TestReleasedResponsesAreReusedCleanly(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	ctx := context.Background()
	held := recommend(t, e, "u7", 10, time.Now())
	want := slices.Clone(held.Items)
	for i := range 20 {
		dbg := recommend(t, e, "u5", 10, time.Now())
		if dbg.Timings == nil || dbg.Items[0].Heads == nil {
			t.Fatalf("round %d: a debug answer without timings or heads", i)
		}
		dbg.Release()
		plain, err := e.Recommend(ctx, &Request{User: "u6", N: 5, Now: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if plain.Timings != nil || len(plain.Items) != 5 || plain.User != "u6" {
			t.Fatalf("round %d: plain answer for %s with %d items, timings %v", i, plain.User, len(plain.Items), plain.Timings)
		}
		for _, it := range plain.Items {
			if it.Heads != nil {
				t.Fatalf("round %d: item %s of a plain answer carries heads %v", i, it.ID, it.Heads)
			}
		}
		plain.Release()
	}
	if !slices.EqualFunc(held.Items, want, func(a, b Item) bool { return a.ID == b.ID && a.Score == b.Score }) {
		t.Errorf("an answer not released changed while others were answered: %v, was %v", held.Items, want)
	}
}

func TestRecommendUnknownUserGetsNonPersonalisedResults(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	now := time.Now()
	a := recommend(t, e, "never-seen-1", 25, now)
	b := recommend(t, e, "never-seen-2", 25, now)
	if len(a.Items) == 0 {
		t.Fatal("an unknown user gets no recommendations")
	}
	if !slices.Equal(ids(a), ids(b)) {
		t.Errorf("two unknown users get different lists:\n%v\n%v", ids(a), ids(b))
	}
	known := recommend(t, e, "u7", 25, now)
	if slices.Equal(ids(a), ids(known)) {
		t.Errorf("a known user gets the unknown users' list %v", ids(a))
	}
}

func TestRecommendDropsSeeLessAuthors(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	now := time.Now()
	before := recommend(t, e, "u9", 25, now)
	if len(before.Items) < 2 {
		t.Fatalf("%d items before see_less", len(before.Items))
	}
	dropped := map[string]bool{before.Items[0].Author: true, before.Items[1].Author: true}
	for a := range dropped {
		ingest(t, e, store.Event{Type: store.SeeLess, User: "u9", Author: a})
	}
	after := recommend(t, e, "u9", 25, now)
	if len(after.Items) == 0 {
		t.Fatal("nothing recommended after see_less")
	}
	for _, it := range after.Items {
		if dropped[it.Author] {
			t.Errorf("item %s of see_less'd author %s is recommended", it.ID, it.Author)
		}
	}
}

func TestWeightsChangeTheRanking(t *testing.T) {
	f := world(t)
	// No rerank rules: the order is the weighted value's alone.
	likeWeighted := func(w float64) *config.Config {
		return with(testConfig(f), func(c *config.Config) {
			c.Live.Weights = map[string]float64{"click": 1, "like": w}
			c.Live.Rerank.Rules = nil
		})
	}
	e := open(t, likeWeighted(10), t.TempDir())
	now := time.Now()
	liked := recommend(t, e, "u11", 25, now)
	if err := e.Apply(likeWeighted(-1000), "rev-2"); err != nil {
		t.Fatal(err)
	}
	disliked := recommend(t, e, "u11", 25, now)
	if len(liked.Items) == 0 || len(disliked.Items) == 0 {
		t.Fatalf("lists of %d and %d items", len(liked.Items), len(disliked.Items))
	}
	if liked.Items[0].ID == disliked.Items[0].ID {
		t.Errorf("top item %s is the same with like weighted 10 and -1000", liked.Items[0].ID)
	}
	// Both lists come from the same first-stage survivors: the second
	// stage keeps the likeliest to be liked under one and the least likely
	// under the other.
	minLiked := 1.0
	for _, it := range liked.Items {
		minLiked = min(minLiked, it.Heads["like"])
	}
	for _, it := range disliked.Items {
		if it.Heads["like"] > minLiked {
			t.Errorf("with like weighted -1000, item %s has P(like) %v above %v, the least of the list with like weighted 10",
				it.ID, it.Heads["like"], minLiked)
		}
	}
	for i := 1; i < len(disliked.Items); i++ {
		if disliked.Items[i].Heads["like"] < disliked.Items[i-1].Heads["like"]-1e-3 {
			t.Errorf("with like weighted -1000, P(like) falls from %v at %d to %v at %d: the order is not by the weighted value",
				disliked.Items[i-1].Heads["like"], i-1, disliked.Items[i].Heads["like"], i)
		}
	}
}

// followedConfig lets every candidate of the followed authors through, so
// that a new item's presence depends on retrieval only.
func followedConfig(f *fixture) *config.Config {
	return with(testConfig(f), func(c *config.Config) {
		c.Live.Retrieval.Candidates = 1000
		c.Live.FirstStage.Keep = 1000
		c.Live.SecondStage.Keep = 1000
		c.Live.Rerank = config.Rerank{Size: 1000}
	})
}

func TestIngestedNewItemReachesFollowers(t *testing.T) {
	e := open(t, followedConfig(world(t)), t.TempDir())
	ingest(t, e,
		store.Event{Type: store.Follow, User: "u12", Author: "a3"},
		store.Event{Type: store.NewItem, Item: "fresh-1", Author: "a3"},
	)
	checkRecommendedToFollower(t, e, "u12", "fresh-1", "a3")
	if other := recommend(t, e, "u13", 1000, time.Now()); slices.Contains(ids(other), "fresh-1") &&
		slices.Contains(mustFind(t, other, "fresh-1").Sources, "followed-recent") {
		t.Error("fresh-1 reached u13, who follows no one, through followed-recent")
	}
}

func mustFind(t *testing.T, r *Response, id string) Item {
	t.Helper()
	it, _ := find(r, id)
	return it
}

func checkRecommendedToFollower(t *testing.T, e *Engine, user, item, author string) {
	t.Helper()
	resp := recommend(t, e, user, 1000, time.Now())
	it, ok := find(resp, item)
	if !ok {
		t.Fatalf("%s, new by followed author %s, is not recommended to %s (%d items)", item, author, user, len(resp.Items))
	}
	if it.Author != author || !slices.Contains(it.Sources, "followed-recent") {
		t.Errorf("%s is recommended by %s through %v, want author %s and followed-recent", item, it.Author, it.Sources, author)
	}
}

func TestNewItemSurvivesRestart(t *testing.T) {
	f := world(t)
	cfg := followedConfig(f)
	state := t.TempDir()
	ctx := context.Background()
	e, err := Open(ctx, cfg, Options{StateDir: state, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	base := e.cat.Len()
	if err := e.Apply(cfg, "rev-1"); err != nil {
		t.Fatal(err)
	}
	ingest(t, e,
		store.Event{Type: store.Follow, User: "u14", Author: "a4"},
		store.Event{Type: store.NewItem, Item: "fresh-b", Author: "a4"},
		store.Event{Type: store.NewItem, Item: "fresh-a", Author: "a4"},
		store.Event{Type: store.NewItem, Item: "i1", Author: "a4"}, // already in the catalog
	)
	ingest(t, e, store.Event{Type: store.NewItem, Item: "fresh-c", Author: "a5"})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e2 := open(t, cfg, state)
	if got := e2.cat.Len(); got != base+3 {
		t.Errorf("after a restart the catalog holds %d items, want %d: the base and 3 published live", got, base+3)
	}
	for i, id := range []string{"fresh-b", "fresh-a", "fresh-c"} {
		o, ok := e2.cat.Ordinal(id)
		if !ok {
			t.Errorf("%s is not in the catalog after a restart", id)
			continue
		}
		if int(o) != base+i {
			t.Errorf("%s has ordinal %d after a restart, want %d: the order of publication", id, o, base+i)
		}
	}
	for name, tw := range e2.towers {
		if n := tw.Vectors().Len(); n != e2.cat.Len() {
			t.Errorf("model %s embeds %d items of %d", name, n, e2.cat.Len())
		}
		if idx := e2.indexes[name]; idx != nil && idx.Len() != e2.cat.Len() {
			t.Errorf("model %s indexes %d items of %d", name, idx.Len(), e2.cat.Len())
		}
	}
	checkRecommendedToFollower(t, e2, "u14", "fresh-a", "a4")
	checkRecommendedToFollower(t, e2, "u14", "fresh-b", "a4")

	// Published after the restart, an item takes the next ordinal.
	ingest(t, e2, store.Event{Type: store.NewItem, Item: "fresh-d", Author: "a4"})
	if o, ok := e2.cat.Ordinal("fresh-d"); !ok || int(o) != base+3 {
		t.Errorf("fresh-d has ordinal %d (%v), want %d", o, ok, base+3)
	}
	checkRecommendedToFollower(t, e2, "u14", "fresh-d", "a4")
}

// TestIngestSharesCatalogIDs checks that the events the store keeps point
// at the catalog's ids rather than at their own copies, which would be an
// object each for every collection to mark.
func TestIngestSharesCatalogIDs(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	item, author := e.cat.ID(3), e.cat.Author(3)
	user, ok := e.cat.UserID("u1")
	if !ok {
		t.Fatal("the test world has no user u1")
	}
	events := []store.Event{
		{Type: store.Like, User: strings.Clone(user), Item: strings.Clone(item)},
		{Type: store.Follow, User: "u1", Author: strings.Clone(author)},
		{Type: store.Click, User: "no-such-user", Item: "not-in-the-catalog"},
	}
	if err := e.Ingest(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(events[0].Item) != unsafe.StringData(item) {
		t.Errorf("the like's item %q is a copy, not the catalog's", events[0].Item)
	}
	if unsafe.StringData(events[0].User) != unsafe.StringData(user) {
		t.Errorf("the like's user %q is a copy, not the catalog's", events[0].User)
	}
	if unsafe.StringData(events[1].Author) != unsafe.StringData(author) {
		t.Errorf("the follow's author %q is a copy, not the catalog's", events[1].Author)
	}
	if events[2].Item != "not-in-the-catalog" || events[2].User != "no-such-user" {
		t.Errorf("ids the catalog lacks became %q and %q", events[2].User, events[2].Item)
	}
}

func TestIngestRefusesInvalidEvents(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	valid := store.Event{Type: store.NewItem, Item: "would-be", Author: "a1"}
	cases := map[string][]store.Event{
		"unknown type":                  {{Type: "poke", User: "u1", Item: "i1"}},
		"impression without item":       {{Type: store.Impression, User: "u1"}},
		"follow without author":         {{Type: store.Follow, User: "u1"}},
		"new_item without author":       {{Type: store.NewItem, Item: "x1"}},
		"new_item without item":         {{Type: store.NewItem, Author: "a1"}},
		"new_item with a non-UTF-8 id":  {{Type: store.NewItem, Item: "bad\xff", Author: "a1"}},
		"new_item with an overlong id":  {{Type: store.NewItem, Item: strings.Repeat("x", 10000), Author: "a1"}},
		"new item then an invalid like": {valid, {Type: store.Like, Item: "i1"}},
		"invalid like then a new item":  {{Type: store.Like, Item: "i1"}, valid},
	}
	base := e.cat.Len()
	for name, events := range cases {
		t.Run(name, func(t *testing.T) {
			err := e.Ingest(context.Background(), events)
			if !errors.Is(err, store.ErrInvalidEvent) {
				t.Fatalf("Ingest = %v, want store.ErrInvalidEvent", err)
			}
			if got := e.cat.Len(); got != base {
				t.Errorf("the catalog grew to %d items from %d on a refused batch", got, base)
			}
			items, err := e.state.(store.NewItemsReader).NewItems(context.Background())
			if err != nil || len(items) != 0 {
				t.Errorf("the store recorded %v (%v) from a refused batch", items, err)
			}
		})
	}
}

func BenchmarkRecommend(b *testing.B) {
	cfg := testConfig(world(b))
	e := open(b, cfg, b.TempDir())
	for u := 0; u < 50; u++ {
		user := fmt.Sprintf("u%d", u)
		ingest(b, e,
			store.Event{Type: store.Follow, User: user, Author: fmt.Sprintf("a%d", u%40)},
			store.Event{Type: store.Like, User: user, Item: fmt.Sprintf("i%d", u*7%1000)},
			store.Event{Type: store.Click, User: user, Item: fmt.Sprintf("i%d", u*13%1000)},
		)
	}
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		resp, err := e.Recommend(ctx, &Request{User: fmt.Sprintf("u%d", i%200), N: 25, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Items) == 0 {
			b.Fatal("Recommend returned no items")
		}
		resp.Release() // as the server does once it has written the answer
		i++
	}
}

// TestNewItemsPastTheCapAreRefused: items published live grow the catalog,
// the embeddings and the indexes for the life of the process; past
// deploy.publishedItems a batch that would add more is refused whole, and
// one that republishes known items is not.
func TestNewItemsPastTheCapAreRefused(t *testing.T) {
	cfg := followedConfig(world(t))
	cfg.Deploy.PublishedItems = 2
	e := open(t, cfg, t.TempDir())
	ingest(t, e,
		store.Event{Type: store.NewItem, Item: "fresh-1", Author: "a3"},
		store.Event{Type: store.NewItem, Item: "fresh-2", Author: "a3"},
	)
	before := e.cat.Len()
	err := e.Ingest(context.Background(), []store.Event{
		{Type: store.Follow, User: "u12", Author: "a3"},
		{Type: store.NewItem, Item: "fresh-3", Author: "a3"},
	})
	if !errors.Is(err, store.ErrInvalidEvent) || !strings.Contains(err.Error(), "deploy.publishedItems (2)") {
		t.Fatalf("a third new item: %v, want a refusal naming deploy.publishedItems", err)
	}
	if e.cat.Len() != before {
		t.Errorf("the refused item joined the catalog: %d items, want %d", e.cat.Len(), before)
	}
	if f, _ := e.state.Follows(context.Background(), "u12"); len(f) != 0 {
		t.Errorf("the refused batch's follow was recorded: %v", f)
	}
	// Known items and other events go on.
	ingest(t, e,
		store.Event{Type: store.NewItem, Item: "fresh-1", Author: "a3"},
		store.Event{Type: store.Follow, User: "u12", Author: "a3"},
	)
}

// TestFreshnessLeadsTheFeedWithAFollowedAuthorsNewItem: under the funnel's
// cuts a new item, which the models know nothing of, is not in a
// follower's first page; with live.freshness it heads it, through both
// rankers' cuts, for followers only and only while it is new.
func TestFreshnessLeadsTheFeedWithAFollowedAuthorsNewItem(t *testing.T) {
	cfg := testConfig(world(t))
	cfg.Live.Freshness = &config.Freshness{MaxAge: config.Duration(time.Hour), Slots: 2}
	e := open(t, cfg, t.TempDir())
	ingest(t, e,
		store.Event{Type: store.Follow, User: "u12", Author: "a3"},
		store.Event{Type: store.NewItem, Item: "fresh-1", Author: "a3"},
	)
	now := time.Now()
	if got := ids(recommend(t, e, "u12", 10, now)); len(got) == 0 || got[0] != "fresh-1" {
		t.Errorf("the follower's page %v, want it led by fresh-1", got)
	}
	if got := ids(recommend(t, e, "u13", 10, now)); slices.Contains(got, "fresh-1") && got[0] == "fresh-1" {
		t.Errorf("fresh-1 leads the page of u13, who follows no one: %v", got)
	}
	// A minute on (the event clock moves with the newest event), an item
	// older than maxAge is new no more.
	short := *cfg
	short.Live.Freshness = &config.Freshness{MaxAge: config.Duration(30 * time.Second), Slots: 2}
	if err := e.Apply(&short, "r-short"); err != nil {
		t.Fatal(err)
	}
	ingest(t, e, store.Event{Type: store.Click, User: "u13", Item: "i1", Time: time.Now().Add(time.Minute)})
	if got := ids(recommend(t, e, "u12", 10, now.Add(2*time.Minute))); len(got) > 0 && got[0] == "fresh-1" {
		t.Errorf("fresh-1 still leads the page past its maxAge: %v", got)
	}

	// Without the policy the funnel's cuts leave it out of the page.
	withArm := *cfg
	withArm.Live.Freshness = nil
	if err := e.Apply(&withArm, "r-without"); err != nil {
		t.Fatal(err)
	}
	if got := ids(recommend(t, e, "u12", 10, now)); len(got) > 0 && got[0] == "fresh-1" {
		t.Errorf("without freshness fresh-1 leads the page %v: the test shows nothing", got)
	}
}

// TestIntegrityEventsSetRisksAndTakeItemsDown: an integrity event sets an
// item's risk, which the rules see at once; risk 1 takes the item out of
// every list, whatever the rules; a new item keeps the risk it was
// published with; the risks survive a restart; an unknown item is
// refused.
func TestIntegrityEventsSetRisksAndTakeItemsDown(t *testing.T) {
	f := world(t)
	cfg := with(followedConfig(f), func(c *config.Config) {
		c.Live.Rerank.Rules = []config.Rule{{Type: config.RuleIntegrityFilter, MaxRisk: 0.5}}
	})
	state := t.TempDir()
	e := open(t, cfg, state)
	before := recommend(t, e, "u21", 1000, time.Now())
	if len(before.Items) < 3 {
		t.Fatalf("u21 gets %d items", len(before.Items))
	}
	risky, down := before.Items[0].ID, before.Items[1].ID
	ingest(t, e,
		store.Event{Type: store.Integrity, Item: risky, Risk: 0.7},
		store.Event{Type: store.Integrity, Item: down, Risk: 1},
		store.Event{Type: store.Follow, User: "u21", Author: "a6"},
		store.Event{Type: store.NewItem, Item: "fresh-risky", Author: "a6", Risk: 0.9},
		store.Event{Type: store.NewItem, Item: "fresh-fine", Author: "a6", Risk: 0.1},
	)
	check := func(e *Engine, when string) {
		t.Helper()
		got := ids(recommend(t, e, "u21", 1000, time.Now()))
		for _, id := range []string{risky, down, "fresh-risky"} {
			if slices.Contains(got, id) {
				t.Errorf("%s: %s is still recommended", when, id)
			}
		}
		if !slices.Contains(got, "fresh-fine") {
			t.Errorf("%s: fresh-fine, new by a followed author with risk 0.1, is not recommended", when)
		}
		// Without rules, only the item taken down stays out.
		noRules := with(cfg, func(c *config.Config) { c.Live.Rerank.Rules = nil })
		if err := e.Apply(noRules, "no-rules"); err != nil {
			t.Fatal(err)
		}
		got = ids(recommend(t, e, "u21", 1000, time.Now()))
		if slices.Contains(got, down) || !slices.Contains(got, risky) {
			t.Errorf("%s, without rules: taken down %s in the list %v, risky %s in it %v; want only the risky one", when, down, slices.Contains(got, down), risky, slices.Contains(got, risky))
		}
		if err := e.Apply(cfg, "rules"); err != nil {
			t.Fatal(err)
		}
	}
	check(e, "after the events")
	if err := e.Ingest(context.Background(), []store.Event{{Type: store.Integrity, Item: "no-such-item", Risk: 1}}); !errors.Is(err, store.ErrInvalidEvent) {
		t.Errorf("an integrity event for an unknown item: %v, want ErrInvalidEvent", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	check(open(t, cfg, state), "after a restart")
}

// TestSourceNames checks the names a response gives each set of sources,
// from the table responses share and past it, and that a reader's append
// cannot write into the shared table.
func TestSourceNames(t *testing.T) {
	e := open(t, testConfig(world(t)), t.TempDir())
	shared := e.live.Load()
	many := &live{names: []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"}}
	for _, l := range []*live{shared, many} {
		for set := range rank.SourceSet(1) << len(l.names) {
			var want []string
			for i, name := range l.names {
				if set&(1<<i) != 0 {
					want = append(want, name)
				}
			}
			got := l.sourceNames(set)
			if !slices.Equal(got, want) {
				t.Fatalf("%d sources, set %b: names %v, want %v", len(l.names), set, got, want)
			}
			if cap(got) != len(got) {
				t.Fatalf("set %b: names have room for %d more: an append would write into the shared list", set, cap(got)-len(got))
			}
		}
	}
	if len(shared.sets) == 0 {
		t.Error("the test config's responses share no names")
	}
}
