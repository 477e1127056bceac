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
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

func (c fakeItems) Len() int { return c.n }

// impressions are the events of user seeing items from, from+1, … (n).
func impressions(user string, from, n int) []store.Event {
	var ev []store.Event
	for i := range n {
		ev = append(ev, store.Event{User: user, Item: fmt.Sprintf("i%d", from+i), Type: store.Impression, Time: now.Add(-time.Hour)})
	}
	return ev
}

// Every source reaches past what the user has seen: with its best ten
// candidates seen, a source of limit 5 still fills the mix with the next
// five, in its order. Before, each source cut its list at its limit and the
// seen filter emptied it.
func TestSourcesFillTheirLimitPastSeenItems(t *testing.T) {
	ctx := context.Background()
	var events []store.Event
	// for-you: items 2000+k score 30−k against the user.
	annVecs := fakeVectors{}
	for k := range 30 {
		annVecs[uint32(2000+k)] = []float32{float32(30 - k), 0}
	}
	users := &fakeEmbedder{vecs: map[string][]float32{"u": {1, 0}, "w": {1, 0}}}
	// more-like-this: the user liked i3000; items 3001+k lie ever farther.
	i2iVecs := fakeVectors{3000: {1, 0}}
	for k := range 30 {
		i2iVecs[uint32(3001+k)] = []float32{1 - float32(k)/100, 0}
	}
	events = append(events, store.Event{User: "u", Item: "i3000", Type: store.Like, Time: now.Add(-2 * time.Hour)},
		store.Event{User: "w", Item: "i3000", Type: store.Like, Time: now.Add(-2 * time.Hour)})
	// trending: items 1000+k were clicked 30−k times by others.
	for k := range 30 {
		for range 30 - k {
			events = append(events, store.Event{User: "v", Item: fmt.Sprintf("i%d", 1000+k), Type: store.Click, Time: now.Add(-time.Minute)})
		}
	}
	// followed-recent: u follows a7, whose items 4007+100k are k minutes
	// older than an hour.
	events = append(events, store.Event{User: "u", Author: "a7", Type: store.Follow, Time: now.Add(-48 * time.Hour)},
		store.Event{User: "w", Author: "a7", Type: store.Follow, Time: now.Add(-48 * time.Hour)})
	for k := range 30 {
		events = append(events, store.Event{Item: fmt.Sprintf("i%d", 4007+100*k), Author: "a7", Type: store.NewItem, Time: now.Add(-time.Hour - time.Duration(k)*time.Minute)})
	}
	// u has seen the best ten of each source; w has asked to see less of
	// the authors of for-you's best ten, a0..a9.
	events = append(events, impressions("u", 2000, 10)...)
	events = append(events, impressions("u", 3001, 10)...)
	events = append(events, impressions("u", 1000, 10)...)
	events = append(events, impressions("u", 6000, 10)...)
	for k := range 10 {
		events = append(events, store.Event{User: "u", Item: fmt.Sprintf("i%d", 4007+100*k), Type: store.Impression, Time: now.Add(-time.Minute)})
		events = append(events, store.Event{User: "w", Author: fmt.Sprintf("a%d", k), Type: store.SeeLess, Time: now.Add(-time.Minute)})
	}
	st := openStore(t, events...)

	pre, err := NewPrecomputed(config.Source{Name: "pre", URI: writeFile(t, func() string {
		var b strings.Builder
		b.WriteString(`{"user": "u", "items": [`)
		for k := range 30 {
			if k > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"i%d"`, 6000+k)
		}
		b.WriteString("]}\n")
		return b.String()
	}())}, catalog, PrecomputedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pre.Load(ctx); err != nil {
		t.Fatal(err)
	}
	followed, err := NewFollowedAuthorsRecent(config.Source{Name: "f", MaxAge: config.Duration(72 * time.Hour)}, st, catalog)
	if err != nil {
		t.Fatal(err)
	}
	i2i, err := NewItemToItemANN(config.Source{Name: "i2i", SeedItems: 5}, st, catalog, i2iVecs, &exactSearcher{vecs: i2iVecs})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		src  Source
		user string
		want []uint32
	}{
		"TwoTowerANN": {
			src:  NewTwoTowerANN(config.Source{Name: "tt", Model: "two-tower"}, users, &exactSearcher{vecs: annVecs}),
			user: "u", want: seq(2010, 5),
		},
		"TwoTowerANN past see-less'd authors": {
			src:  NewTwoTowerANN(config.Source{Name: "tt", Model: "two-tower"}, users, &exactSearcher{vecs: annVecs}),
			user: "w", want: seq(2010, 5),
		},
		"ItemToItemANN":         {src: i2i, user: "u", want: seq(3011, 5)},
		"Popular":               {src: NewPopular(config.Source{Name: "p", Window: config.Duration(time.Hour)}, st, catalog), user: "u", want: seq(1010, 5)},
		"FollowedAuthorsRecent": {src: followed, user: "u", want: []uint32{5007, 5107, 5207, 5307, 5407}},
		"Precomputed":           {src: pre, user: "u", want: seq(6010, 5)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			seen, err := st.Seen(ctx, tc.user)
			if err != nil {
				t.Fatal(err)
			}
			m := NewMixer([]Weighted{src(0, "s", tc.src, 1, 5)}, catalog, MixerOptions{})
			got, err := m.Mix(ctx, &Request{User: tc.user, Now: now}, 5, seen, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := itemsOf(got); !slices.Equal(g, tc.want) {
				t.Errorf("mixed = %v, want %v: the next five the user has not seen", g, tc.want)
			}
		})
	}
}

// FetchUnseen asks for the limit when nothing is excluded, for just enough
// more when few are, and grows its ask only while the list has more and the
// unexcluded fall short, never beyond what the exclusions can hide.
func TestFetchUnseenAsks(t *testing.T) {
	tests := map[string]struct {
		list     int   // the underlying list: items 0..list-1, best first
		excluded []int // items seen
		authors  []int // author indices see-less'd (item i is by a<i%100>)
		limit    int
		asks     []int
		want     []uint32
	}{
		"nothing excluded: the limit": {
			list: 100, limit: 10, asks: []int{10}, want: seq(0, 10),
		},
		"a few excluded: the limit and as many more": {
			list: 100, excluded: []int{0, 2, 4}, limit: 10, asks: []int{13}, want: append([]uint32{1, 3}, seq(5, 8)...),
		},
		"excluded far down the list cost one ask": {
			list: 100, excluded: seq2(50, 40), limit: 10, asks: []int{20}, want: seq(0, 10),
		},
		"many excluded at the top: twice the ask until enough": {
			list: 1000, excluded: seq2(0, 100), limit: 10, asks: []int{20, 40, 80, 110}, want: seq(100, 10),
		},
		"an exhausted list stops the asking": {
			list: 15, excluded: seq2(0, 10), limit: 10, asks: []int{20}, want: seq(10, 5),
		},
		"excluded authors: twice the limit first": {
			list: 1000, authors: seq2(0, 30), limit: 10, asks: []int{20, 40}, want: seq(30, 10),
		},
		"excluded authors: no more than the slack": {
			list: 1000, authors: seq2(0, 90), limit: 10, asks: []int{20, 40, 50}, want: []uint32{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			x := newExclusion()
			x.cat = catalog
			for _, o := range tc.excluded {
				x.items[uint32(o)] = struct{}{}
			}
			for _, a := range tc.authors {
				x.authors[uint32(a)] = struct{}{}
			}
			req := &Request{User: "u", excl: &x}
			var asks []int
			got, err := FetchUnseen(context.Background(), req, tc.limit, nil, func(ask int, dst []Candidate) ([]Candidate, bool, error) {
				asks = append(asks, ask)
				n := min(ask, tc.list)
				for i := range n {
					dst = append(dst, Candidate{Item: uint32(i), Score: float32(tc.list - i)})
				}
				return dst, n == ask, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(asks, tc.asks) {
				t.Errorf("asked for %v, want %v", asks, tc.asks)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("got %v, want %v", g, tc.want)
			}
		})
	}
	t.Run("an error is returned", func(t *testing.T) {
		_, err := FetchUnseen(context.Background(), &Request{}, 5, nil, func(int, []Candidate) ([]Candidate, bool, error) {
			return nil, false, errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Errorf("error = %v, want %v", err, errBoom)
		}
	})
}

func seq2(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// A mix its sources leave short is topped up from the backfill, after the
// mixed items and without repeating them or anything seen.
func TestMixBackfill(t *testing.T) {
	tests := map[string]struct {
		source   Source
		backfill Source
		min      int
		budget   int
		seen     []store.Event
		want     []uint32
		filled   int // items with no source
		ran      bool
		err      bool
	}{
		"a short mix is topped up to the minimum": {
			source: items(0, 5), backfill: items(3, 20), min: 10, budget: 20,
			want: seq(0, 10), filled: 5, ran: true,
		},
		"seen items are not backfilled": {
			source: items(0, 5), backfill: items(3, 20), min: 10, budget: 20,
			seen: impressions("u", 5, 2),
			want: append(seq(0, 5), seq(7, 5)...), filled: 5, ran: true,
		},
		"a full mix runs no backfill": {
			source: items(0, 20), backfill: items(100, 20), min: 10, budget: 20,
			want: seq(0, 20),
		},
		"the minimum is capped by the budget": {
			source: items(0, 2), backfill: items(100, 20), min: 100, budget: 8,
			want: append(seq(0, 2), seq(100, 6)...), filled: 6, ran: true,
		},
		"a failing backfill leaves the mix as it is": {
			source: items(0, 5), backfill: errSource{errBoom}, min: 10, budget: 20,
			want: seq(0, 5), ran: true, err: true,
		},
		"no source candidates: the backfill alone": {
			source: items(0, 0), backfill: items(50, 20), min: 10, budget: 20,
			want: seq(50, 10), filled: 10, ran: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, tc.seen...)
			seen, err := st.Seen(context.Background(), "u")
			if err != nil {
				t.Fatal(err)
			}
			rec := &recorder{}
			bf := &countingSource{listSource: nil}
			backfill := tc.backfill
			if ls, ok := tc.backfill.(listSource); ok {
				bf.listSource = ls
				backfill = bf
			}
			m := NewMixer([]Weighted{src(0, "a", tc.source, 1, 0)}, catalog, MixerOptions{Observer: rec, Backfill: backfill, Min: tc.min})
			got, err := m.Mix(context.Background(), &Request{User: "u"}, tc.budget, seen, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := itemsOf(got); !slices.Equal(g, tc.want) {
				t.Errorf("mixed = %v, want %v", g, tc.want)
			}
			filled := 0
			for i, g := range got {
				if g.Sources == 0 {
					filled++
				}
				if g.Score <= 0 || g.Score >= 1 || i > 0 && g.Score >= got[i-1].Score {
					t.Errorf("scores %v are not decreasing in (0, 1)", got)
					break
				}
			}
			if filled != tc.filled {
				t.Errorf("%d items without a source, want %d backfilled", filled, tc.filled)
			}
			o, ran := rec.get(BackfillName)
			if ran != tc.ran || (o.err != nil) != tc.err {
				t.Errorf("backfill observed %v (%+v), want run %v with error %v", ran, o, tc.ran, tc.err)
			}
		})
	}
}

// The backfill proposes the popular items, then the rest of the catalog from
// the last added, passing over what the request excludes.
func TestBackfillProposesPopularThenCatalog(t *testing.T) {
	st := openStore(t,
		store.Event{User: "v", Item: "i7", Type: store.Click, Time: now}, store.Event{User: "v", Item: "i7", Type: store.Like, Time: now},
		store.Event{User: "v", Item: "i3", Type: store.Click, Time: now},
		store.Event{User: "u", Item: "i9", Type: store.Impression, Time: now},
		store.Event{User: "u", Item: "i3", Type: store.Impression, Time: now},
	)
	seen, err := st.Seen(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	small := fakeItems{n: 10, authors: 3}
	b := NewBackfill(st, small)
	tests := map[string]struct {
		user  string
		limit int
		want  []uint32
	}{
		"popular first, then the catalog from its end": {user: "v", limit: 5, want: []uint32{7, 3, 9, 8, 6}},
		"seen items passed over in both":               {user: "u", limit: 5, want: []uint32{7, 8, 6, 5, 4}},
		"no more than the catalog holds unseen":        {user: "u", limit: 20, want: []uint32{7, 8, 6, 5, 4, 2, 1, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req := &Request{User: tc.user, Now: now}
			if tc.user == "u" {
				x := newExclusion()
				x.reset(seen, small)
				req.excl = &x
			}
			got, err := b.Fetch(context.Background(), req, tc.limit, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := candItems(got); !slices.Equal(g, tc.want) {
				t.Errorf("backfill = %v, want %v", g, tc.want)
			}
		})
	}
}
