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

package sources

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/race"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func candItems(cs []Candidate) []uint32 {
	out := make([]uint32, len(cs))
	for i, c := range cs {
		out[i] = c.Item
	}
	return out
}

func TestFollowedAuthorsRecent(t *testing.T) {
	// a1 and a2 are followed; a3 was followed, then unfollowed; a4 never.
	events := []store.Event{
		{User: "u", Author: "a1", Type: store.Follow, Time: now.Add(-100 * time.Hour)},
		{User: "u", Author: "a2", Type: store.Follow, Time: now.Add(-100 * time.Hour)},
		{User: "u", Author: "a3", Type: store.Follow, Time: now.Add(-100 * time.Hour)},
		{User: "u", Author: "a3", Type: store.Unfollow, Time: now.Add(-99 * time.Hour)},
		{Item: "i10", Author: "a1", Type: store.NewItem, Time: now.Add(-1 * time.Hour)},
		{Item: "i11", Author: "a2", Type: store.NewItem, Time: now.Add(-2 * time.Hour)},
		{Item: "i12", Author: "a1", Type: store.NewItem, Time: now.Add(-36 * time.Hour)},
		{Item: "i13", Author: "a2", Type: store.NewItem, Time: now.Add(-80 * time.Hour)}, // older than maxAge
		{Item: "i14", Author: "a3", Type: store.NewItem, Time: now.Add(-1 * time.Hour)},  // unfollowed
		{Item: "i15", Author: "a4", Type: store.NewItem, Time: now.Add(-1 * time.Hour)},  // not followed
		{Item: "x16", Author: "a1", Type: store.NewItem, Time: now.Add(-3 * time.Hour)},  // not in the catalog
	}
	st := openStore(t, events...)
	s, err := NewFollowedAuthorsRecent(config.Source{Name: "f", MaxAge: config.Duration(72 * time.Hour)}, st, catalog)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		user  string
		state *store.UserState
		limit int
		want  []uint32
	}{
		"recent items of followed authors, newest first": {user: "u", limit: 10, want: []uint32{10, 11, 12}},
		"at most limit":                        {user: "u", limit: 2, want: []uint32{10, 11}},
		"a user following no one gets nothing": {user: "nobody", limit: 10, want: []uint32{}},
		// The request carries the user's state: its follows, not the
		// store's, are read.
		"follows from the request's state":  {user: "u", state: &store.UserState{User: "u", Follows: []string{"a1"}}, limit: 10, want: []uint32{10, 12}},
		"no follows in the request's state": {user: "u", state: &store.UserState{User: "u"}, limit: 10, want: []uint32{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := s.Fetch(context.Background(), &Request{User: tc.user, Now: now, State: tc.state}, tc.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("items = %v, want %v", g, tc.want)
			}
			for i, c := range got {
				if c.Score <= 0 || c.Score > 1 || i > 0 && c.Score >= got[i-1].Score {
					t.Errorf("scores %v are not fresher-first in (0, 1]", got)
				}
			}
			if len(got) > 0 && !near(got[0].Score, float32(1-1.0/72)) {
				t.Errorf("an hour-old item scores %v, want 1 − 1/72", got[0].Score)
			}
		})
	}
	t.Run("maxAge must be positive", func(t *testing.T) {
		if _, err := NewFollowedAuthorsRecent(config.Source{Name: "f"}, st, catalog); err == nil {
			t.Error("no error")
		}
	})
}

func TestPopular(t *testing.T) {
	t0 := time.Now().Add(-time.Minute)
	var events []store.Event
	click := func(item string, n int) {
		for range n {
			events = append(events, store.Event{User: "v", Item: item, Type: store.Click, Time: t0})
		}
	}
	click("i5", 3)
	click("i7", 5)
	click("i9", 1)
	click("x1", 4) // not in the catalog
	st := openStore(t, events...)
	s := NewPopular(config.Source{Name: "p", Window: config.Duration(24 * time.Hour)}, st, catalog)
	tests := map[string]struct {
		limit int
		want  []uint32
	}{
		"most popular first, unknown items skipped": {limit: 10, want: []uint32{7, 5, 9}},
		"at most limit": {limit: 1, want: []uint32{7}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := s.Fetch(context.Background(), &Request{User: "u", Now: time.Now()}, tc.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("items = %v, want %v", g, tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Score > got[i-1].Score {
					t.Errorf("scores not descending: %v", got)
				}
			}
		})
	}
}

// TestPopularAllocates checks that a read of the popular items from the
// memory store allocates nothing (a copy of the list a request was a
// quarter of the bytes a request allocated at a million items).
func TestPopularAllocates(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector makes sync.Pool drop what it is given")
	}
	t0 := time.Now().Add(-time.Minute)
	var events []store.Event
	for i := range 20 {
		events = append(events, store.Event{User: "v", Item: fmt.Sprintf("i%d", i), Type: store.Click, Time: t0})
	}
	s := NewPopular(config.Source{Name: "p", Window: config.Duration(24 * time.Hour)}, openStore(t, events...), catalog)
	req := &Request{User: "u", Now: time.Now()}
	dst := make([]Candidate, 0, 32)
	fetch := func() {
		var err error
		if dst, err = s.Fetch(context.Background(), req, 10, dst[:0]); err != nil {
			t.Fatal(err)
		}
	}
	fetch()
	if len(dst) != 10 {
		t.Fatalf("%d candidates, want 10", len(dst))
	}
	if a := testing.AllocsPerRun(100, fetch); a != 0 {
		t.Errorf("Fetch allocates %v times a call, want 0", a)
	}
}

// fixedPopular is a PopularReader handing out list, as a store does: the
// same strings each time.
type fixedPopular struct{ list []store.ItemScore }

func (p *fixedPopular) Popular(_ context.Context, _ time.Time, limit int) ([]store.ItemScore, error) {
	return p.list[:min(limit, len(p.list))], nil
}

// countingItems is fakeItems that also holds the ids of extra and counts
// the ids looked up.
type countingItems struct {
	fakeItems
	extra   map[string]uint32
	lookups int
}

func (c *countingItems) Ordinal(id string) (uint32, bool) {
	c.lookups++
	if o, ok := c.extra[id]; ok {
		return o, true
	}
	return c.fakeItems.Ordinal(id)
}

func (c *countingItems) Ordinals(ids []string, dst []int64) []int64 {
	return appendOrdinals(c.Ordinal, ids, dst)
}

// TestPopularRemembersOrdinals checks that the list read before is not
// looked up again, that a list in other memory is, and that an item the
// catalog did not hold is looked up again each time.
func TestPopularRemembersOrdinals(t *testing.T) {
	items := &countingItems{fakeItems: catalog, extra: map[string]uint32{}}
	list := func(ids ...string) []store.ItemScore {
		l := make([]store.ItemScore, len(ids))
		for i, id := range ids {
			l[i] = store.ItemScore{Item: strings.Clone(id), Score: float64(len(ids) - i)}
		}
		return l
	}
	pop := &fixedPopular{list: list("i3", "i1", "i2")}
	s := NewPopular(config.Source{Name: "p"}, pop, items)
	fetch := func(step string, wantLookups int, want ...uint32) {
		t.Helper()
		items.lookups = 0
		got, err := s.Fetch(context.Background(), &Request{User: "u", Now: time.Now()}, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if g := candItems(got); !slices.Equal(g, want) {
			t.Errorf("%s: items %v, want %v", step, g, want)
		}
		if items.lookups != wantLookups {
			t.Errorf("%s: %d ids looked up, want %d", step, items.lookups, wantLookups)
		}
	}
	fetch("first read", 3, 3, 1, 2)
	fetch("the same list", 0, 3, 1, 2)
	pop.list = pop.list[:2]
	fetch("a shorter read of it", 0, 3, 1)
	pop.list = list("i3", "i1", "i2")
	fetch("equal ids in other memory", 3, 3, 1, 2)
	pop.list = list("i3", "new", "i2")
	fetch("a list with an id the catalog lacks", 3, 3, 2)
	fetch("that id again", 1, 3, 2)
	items.extra["new"] = 42 // published since
	fetch("the catalog holds it now", 1, 3, 42, 2)
}

func TestTwoTowerANN(t *testing.T) {
	vecs := fakeVectors{1: {1, 0}, 2: {0, 1}, 3: {0.5, 0.5}, 4: {-1, 0}}
	emb := &fakeEmbedder{vecs: map[string][]float32{"u": {2, 1}}}
	tests := map[string]struct {
		user    string
		limit   int
		ef      int
		embErr  error
		want    []uint32
		scores  []float32
		wantErr bool
	}{
		"nearest items by inner product":             {user: "u", limit: 3, want: []uint32{1, 3, 2}, scores: []float32{2, 1.5, 1}},
		"k is the limit":                             {user: "u", limit: 1, want: []uint32{1}, scores: []float32{2}},
		"ef is the search's beam":                    {user: "u", limit: 3, ef: 2, want: []uint32{1, 3, 2}, scores: []float32{2, 1.5, 1}},
		"a user without an embedding gets nothing":   {user: "cold", limit: 3, want: []uint32{}},
		"an embedding failure is the source's error": {user: "u", limit: 3, embErr: errBoom, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := &fakeEmbedder{vecs: emb.vecs, err: tc.embErr}
			idx := &exactSearcher{vecs: vecs}
			s := NewTwoTowerANN(config.Source{Name: "tt", Model: "two-tower", Ef: tc.ef}, e, idx)
			got, err := s.Fetch(context.Background(), &Request{User: tc.user, Now: now}, tc.limit, nil)
			if tc.wantErr {
				if !errors.Is(err, tc.embErr) {
					t.Errorf("error = %v, want %v", err, tc.embErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("items = %v, want %v", g, tc.want)
			}
			for i, c := range got {
				if !near(c.Score, tc.scores[i]) {
					t.Errorf("score of %d = %v, want %v", c.Item, c.Score, tc.scores[i])
				}
			}
			if len(idx.ks) > 0 && idx.ks[0] != tc.limit {
				t.Errorf("searched with k = %d, want %d", idx.ks[0], tc.limit)
			}
			if len(idx.beams) > 0 && idx.beams[0] != tc.ef {
				t.Errorf("searched with a beam of %d, want the source's ef %d", idx.beams[0], tc.ef)
			}
		})
	}
}

func TestRequestSharesTheUserEmbedding(t *testing.T) {
	vecs := fakeVectors{1: {1, 0}, 2: {0, 1}}
	tests := map[string]struct {
		models    []string
		wantCalls int
	}{
		"two sources of one model embed the user once": {models: []string{"m", "m"}, wantCalls: 1},
		"sources of two models embed the user twice":   {models: []string{"m", "n"}, wantCalls: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			e := &fakeEmbedder{vecs: map[string][]float32{"u": {1, 1}}}
			var ws []Weighted
			for i, model := range tc.models {
				s := NewTwoTowerANN(config.Source{Model: model}, e, &exactSearcher{vecs: vecs})
				ws = append(ws, src(i, model+string(rune('0'+i)), s, 1, 10))
			}
			m := NewMixer(ws, catalog, MixerOptions{})
			got, err := m.Mix(context.Background(), &Request{User: "u", Now: now}, 10, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 {
				t.Errorf("mixed %v, want both items", got)
			}
			if e.calls != tc.wantCalls {
				t.Errorf("EmbedUser called %d times, want %d", e.calls, tc.wantCalls)
			}
		})
	}
}

func TestRequestSharedRetriesAfterAFailure(t *testing.T) {
	// The computation of one caller fails (say, its deadline passed); the
	// next caller computes the value itself rather than inherit the error.
	req := &Request{User: "u"}
	calls := 0
	fill := func(ctx context.Context) (any, error) {
		calls++
		if calls == 1 {
			return nil, context.DeadlineExceeded
		}
		return 42, nil
	}
	if _, err := req.shared(context.Background(), followsKey{}, fill); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first call: %v", err)
	}
	for range 2 {
		v, err := req.shared(context.Background(), followsKey{}, fill)
		if err != nil || v != 42 {
			t.Fatalf("shared = %v, %v; want 42", v, err)
		}
	}
	if calls != 2 {
		t.Errorf("fill called %d times, want 2", calls)
	}
}

func TestItemToItemANN(t *testing.T) {
	vecs := fakeVectors{
		1: {1, 0}, 2: {0, 1}, // seeds
		3: {0.9, 0.1}, 4: {0.1, 0.9}, 5: {0.6, 0.6}, 6: {-1, -1},
		7: {0, 0.2}, // not engaged, a neighbour
	}
	engage := func(items ...string) []store.Event {
		var ev []store.Event
		for i, it := range items {
			ev = append(ev, store.Event{User: "u", Item: it, Type: store.Like, Time: now.Add(time.Duration(i) * time.Second)})
		}
		return ev
	}
	tests := map[string]struct {
		events []store.Event
		seeds  int
		limit  int
		want   []uint32
		scores []float32
		wantK  int
	}{
		"neighbours of the seeds by best inner product, seeds excluded": {
			events: engage("i1", "i2"),
			seeds:  5, limit: 4,
			want:   []uint32{3, 4, 5, 7},
			scores: []float32{0.9, 0.9, 0.6, 0.2},
			wantK:  2 + 2, // ceil(4/2) + 2 seeds
		},
		"only the latest seedItems engagements seed": {
			events: engage("i2", "i1"), // i1 latest
			seeds:  1, limit: 3,
			want:   []uint32{3, 5, 4},
			scores: []float32{0.9, 0.6, 0.1},
			wantK:  3 + 1,
		},
		"repeated engagements with an item seed once": {
			events: append(engage("i1"), store.Event{User: "u", Item: "i1", Type: store.Click, Time: now.Add(time.Minute)}),
			seeds:  5, limit: 2,
			want:   []uint32{3, 5},
			scores: []float32{0.9, 0.6},
			wantK:  2 + 1,
		},
		"items without a vector or outside the catalog do not seed": {
			events: engage("i8", "x1"),
			seeds:  5, limit: 3,
			want: []uint32{},
		},
		"a user without engagements gets nothing": {
			seeds: 5, limit: 3,
			want: []uint32{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, tc.events...)
			idx := &exactSearcher{vecs: vecs}
			s, err := NewItemToItemANN(config.Source{Name: "i2i", SeedItems: tc.seeds}, st, catalog, vecs, idx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Fetch(context.Background(), &Request{User: "u", Now: now}, tc.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("items = %v, want %v", g, tc.want)
			}
			for i, c := range got {
				if !near(c.Score, tc.scores[i]) {
					t.Errorf("score of %d = %v, want %v", c.Item, c.Score, tc.scores[i])
				}
			}
			for _, k := range idx.ks {
				if k != tc.wantK {
					t.Errorf("searched with k = %d, want %d", k, tc.wantK)
				}
			}
		})
	}
	t.Run("a search failure is the source's error", func(t *testing.T) {
		st := openStore(t, engage("i1")...)
		s, _ := NewItemToItemANN(config.Source{SeedItems: 3}, st, catalog, vecs, &exactSearcher{vecs: vecs, err: errBoom})
		if _, err := s.Fetch(context.Background(), &Request{User: "u"}, 3, nil); !errors.Is(err, errBoom) {
			t.Errorf("error = %v, want %v", err, errBoom)
		}
	})
	t.Run("seedItems must be positive", func(t *testing.T) {
		if _, err := NewItemToItemANN(config.Source{}, nil, catalog, vecs, nil); err == nil {
			t.Error("no error")
		}
	})
}
