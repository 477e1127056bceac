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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

var catalog = fakeItems{n: 10000, authors: 100}

// src makes a weighted source at index i.
func src(i int, name string, s Source, weight float64, limit int) Weighted {
	return Weighted{Name: name, Source: s, Weight: weight, Limit: limit, Timeout: time.Minute, Index: i}
}

// perThousand counts the mixed items by item/1000, the source that made them
// in tests whose sources return disjoint ranges.
func perThousand(got []Mixed) map[int]int {
	c := map[int]int{}
	for _, m := range got {
		c[int(m.Item)/1000]++
	}
	return c
}

func itemsOf(got []Mixed) []uint32 {
	out := make([]uint32, len(got))
	for i, m := range got {
		out[i] = m.Item
	}
	return out
}

func seq(from, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(from + i)
	}
	return out
}

func TestMixAllocation(t *testing.T) {
	tests := map[string]struct {
		sources []Weighted
		budget  int
		want    map[int]int // items per source (item/1000)
	}{
		"quotas follow the weights": {
			sources: []Weighted{
				src(0, "a", items(0, 300), 0.25, 400),
				src(1, "b", items(1000, 300), 0.45, 800),
				src(2, "c", items(2000, 300), 0.2, 400),
				src(3, "d", items(3000, 300), 0.1, 200),
			},
			budget: 100,
			want:   map[int]int{0: 25, 1: 45, 2: 20, 3: 10},
		},
		"largest remainders get the rounding": {
			sources: []Weighted{
				src(0, "a", items(0, 300), 1, 0),
				src(1, "b", items(1000, 300), 1, 0),
				src(2, "c", items(2000, 300), 1, 0),
			},
			budget: 10,
			want:   map[int]int{0: 4, 1: 3, 2: 3},
		},
		"a quota is capped by the source's limit and the rest goes to the others": {
			sources: []Weighted{
				src(0, "a", items(0, 300), 0.5, 10),
				src(1, "b", items(1000, 300), 0.3, 0),
				src(2, "c", items(2000, 300), 0.2, 0),
			},
			budget: 100,
			want:   map[int]int{0: 10, 1: 54, 2: 36},
		},
		"a source that comes up short leaves its quota to the others by weight": {
			sources: []Weighted{
				src(0, "a", items(0, 5), 0.5, 0),
				src(1, "b", items(1000, 300), 0.3, 0),
				src(2, "c", items(2000, 300), 0.2, 0),
			},
			budget: 100,
			want:   map[int]int{0: 5, 1: 57, 2: 38},
		},
		"shortfalls cascade until the budget is spent": {
			sources: []Weighted{
				src(0, "a", items(0, 5), 0.5, 0),
				src(1, "b", items(1000, 40), 0.3, 0),
				src(2, "c", items(2000, 300), 0.2, 0),
			},
			budget: 100,
			want:   map[int]int{0: 5, 1: 40, 2: 55},
		},
		"a budget above every candidate returns them all": {
			sources: []Weighted{
				src(0, "a", items(0, 5), 0.9, 0),
				src(1, "b", items(1000, 7), 0.1, 0),
			},
			budget: 100,
			want:   map[int]int{0: 5, 1: 7},
		},
		"a zero-weight source takes nothing": {
			sources: []Weighted{
				src(0, "a", items(0, 100), 1, 0),
				src(1, "b", items(1000, 100), 0, 0),
			},
			budget: 50,
			want:   map[int]int{0: 50},
		},
		"all weights zero share equally": {
			sources: []Weighted{
				src(0, "a", items(0, 100), 0, 0),
				src(1, "b", items(1000, 100), 0, 0),
			},
			budget: 50,
			want:   map[int]int{0: 25, 1: 25},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := NewMixer(tc.sources, catalog, MixerOptions{})
			got, err := m.Mix(context.Background(), &Request{User: "u"}, tc.budget, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c := perThousand(got); !mapsEqual(c, tc.want) {
				t.Errorf("items per source = %v, want %v", c, tc.want)
			}
			// Each source contributes its best candidates.
			for _, g := range got {
				if int(g.Item)%1000 >= tc.want[int(g.Item)/1000] {
					t.Errorf("item %d is not among its source's best %d", g.Item, tc.want[int(g.Item)/1000])
				}
			}
		})
	}
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestMixDedupe(t *testing.T) {
	set := func(bits ...int) rank.SourceSet {
		var s rank.SourceSet
		for _, b := range bits {
			s.Add(b)
		}
		return s
	}
	tests := map[string]struct {
		sources []Weighted
		budget  int
		want    []uint32 // mixed order
		sets    map[uint32]rank.SourceSet
	}{
		"an item of two sources counts once and carries both bits": {
			sources: []Weighted{
				src(0, "a", items(0, 50), 0.5, 0),
				src(1, "b", items(0, 50), 0.5, 0),
			},
			budget: 10,
			want:   seq(0, 10),
			sets:   map[uint32]rank.SourceSet{0: set(0, 1), 4: set(0, 1), 5: set(0, 1), 9: set(0, 1)},
		},
		"overlapping sources fill the budget with distinct items": {
			sources: []Weighted{
				src(0, "a", items(0, 10), 0.5, 0),
				src(1, "b", items(5, 10), 0.5, 0),
			},
			budget: 15,
			// a takes 0–7 (8 of 15, the tie of remainders going to the
			// first source); b skips 5–7, which a took, and takes 8–14.
			// Item 5 leads: it is b's best, at the top of b's longer run.
			want: []uint32{5, 0, 6, 1, 7, 2, 8, 3, 9, 10, 4, 11, 12, 13, 14},
			sets: map[uint32]rank.SourceSet{0: set(0), 5: set(0, 1), 9: set(0, 1), 10: set(1)},
		},
		"the bits are the config indices, and a source's repeats are ignored": {
			sources: []Weighted{
				src(7, "a", listSource{{Item: 1, Score: 3}, {Item: 1, Score: 2}, {Item: 2, Score: 1}}, 0.5, 0),
				src(12, "b", listSource{{Item: 2, Score: 1}}, 0.5, 0),
			},
			budget: 10,
			want:   []uint32{1, 2},
			sets:   map[uint32]rank.SourceSet{1: set(7), 2: set(7, 12)},
		},
		"sources are interleaved in proportion to what they contribute": {
			sources: []Weighted{
				src(0, "a", items(0, 100), 0.75, 0),
				src(1, "b", items(100, 100), 0.25, 0),
			},
			budget: 8,
			want:   []uint32{0, 1, 100, 2, 3, 4, 101, 5},
		},
		"equal scores are ordered by item, whichever source came first": {
			sources: []Weighted{
				src(0, "a", listSource{{Item: 50, Score: 2}, {Item: 40, Score: 1}}, 0.5, 0),
				src(1, "b", listSource{{Item: 10, Score: 2}, {Item: 30, Score: 1}}, 0.5, 0),
			},
			budget: 4,
			// Both sources give 3/4 to their first pick and 1/4 to their
			// second.
			want: []uint32{10, 50, 30, 40},
		},
		"a source's candidates are taken in its score order": {
			sources: []Weighted{
				src(0, "a", listSource{{Item: 3, Score: 1}, {Item: 4, Score: 5}, {Item: 5, Score: 2}, {Item: 6, Score: 0}}, 1, 0),
			},
			budget: 3,
			want:   []uint32{4, 5, 3},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := NewMixer(tc.sources, catalog, MixerOptions{})
			got, err := m.Mix(context.Background(), &Request{User: "u"}, tc.budget, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := itemsOf(got); !slices.Equal(g, tc.want) {
				t.Errorf("mixed = %v, want %v", g, tc.want)
			}
			for _, g := range got {
				if want, ok := tc.sets[g.Item]; ok && g.Sources != want {
					t.Errorf("item %d has sources %b, want %b", g.Item, g.Sources, want)
				}
				if !(g.Score > 0 && g.Score < 1) {
					t.Errorf("item %d scores %v, outside (0, 1)", g.Item, g.Score)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i].Score > got[i-1].Score {
					t.Errorf("scores not descending at %d: %v then %v", i, got[i-1].Score, got[i].Score)
				}
			}
		})
	}
}

func TestMixSeenFilter(t *testing.T) {
	// catalog: item i is by author a<i%100>.
	tests := map[string]struct {
		events []store.Event
		want   []uint32
	}{
		"nothing seen": {
			want: seq(0, 5),
		},
		"seen items are dropped before they take budget": {
			events: []store.Event{
				{User: "u", Item: "i1", Type: store.Impression},
				{User: "u", Item: "i3", Type: store.Impression},
			},
			want: []uint32{0, 2, 4, 5, 6},
		},
		"see-less items are dropped": {
			events: []store.Event{{User: "u", Item: "i0", Type: store.SeeLess}},
			want:   seq(1, 5),
		},
		"items of see-less authors are dropped": {
			events: []store.Event{{User: "u", Author: "a2", Type: store.SeeLess}},
			want:   []uint32{0, 1, 3, 4, 5},
		},
		"another user's history does not filter": {
			events: []store.Event{{User: "v", Item: "i0", Type: store.Impression}},
			want:   seq(0, 5),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := openStore(t, tc.events...)
			seen, err := st.Seen(context.Background(), "u")
			if err != nil {
				t.Fatal(err)
			}
			// Both sources return the same items so the filter applies to
			// every source's copy.
			m := NewMixer([]Weighted{
				src(0, "a", items(0, 10), 0.5, 10),
				src(1, "b", items(0, 10), 0.5, 10),
			}, catalog, MixerOptions{})
			got, err := m.Mix(context.Background(), &Request{User: "u"}, 5, seen, nil)
			if err != nil {
				t.Fatal(err)
			}
			if g := itemsOf(got); !slices.Equal(g, tc.want) {
				t.Errorf("mixed = %v, want %v", g, tc.want)
			}
		})
	}
}

func TestMixFailOpen(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	tests := map[string]struct {
		bad     Weighted
		wantErr func(error) bool
	}{
		"an erroring source is dropped": {
			bad:     src(1, "bad", errSource{errBoom}, 0.5, 0),
			wantErr: func(err error) bool { return errors.Is(err, errBoom) },
		},
		"a panicking source is dropped": {
			bad:     src(1, "bad", panicSource{}, 0.5, 0),
			wantErr: func(err error) bool { return err != nil && !errors.Is(err, context.DeadlineExceeded) },
		},
		"a slow source is dropped at its timeout": {
			bad:     Weighted{Name: "bad", Source: slowSource{}, Weight: 0.5, Timeout: time.Millisecond, Index: 1},
			wantErr: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
		"a source ignoring its context is given up at its timeout": {
			bad:     Weighted{Name: "bad", Source: stuckSource{release}, Weight: 0.5, Timeout: time.Millisecond, Index: 1},
			wantErr: func(err error) bool { return errors.Is(err, context.DeadlineExceeded) },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			m := NewMixer([]Weighted{
				src(0, "good", items(0, 100), 0.5, 0),
				tc.bad,
				src(2, "also-good", items(1000, 100), 0.25, 0),
			}, catalog, MixerOptions{Observer: rec})
			req := &Request{User: "u"}
			got, err := m.Mix(context.Background(), req, 30, nil, nil)
			if err != nil {
				t.Fatalf("Mix failed: %v", err)
			}
			// The request says which source it went without.
			if f := req.Failed(); len(f) != 1 || !strings.HasPrefix(f[0], "bad: ") {
				t.Errorf("Failed() = %q, want the bad source alone", f)
			}
			if c, want := perThousand(got), map[int]int{0: 20, 1: 10}; !mapsEqual(c, want) {
				t.Errorf("items per source = %v, want %v (the bad source's share to the others)", c, want)
			}
			for _, g := range got {
				if g.Sources.Has(1) {
					t.Errorf("item %d is attributed to the bad source", g.Item)
				}
			}
			o, ok := rec.get("bad")
			if !ok || !tc.wantErr(o.err) || o.n != 0 {
				t.Errorf("bad source observed as %+v (observed: %v)", o, ok)
			}
			for _, name := range []string{"good", "also-good"} {
				if o, ok := rec.get(name); !ok || o.err != nil || o.n != 30 {
					t.Errorf("source %q observed as %+v (observed: %v), want 30 candidates (the budget) and no error", name, o, ok)
				}
			}
		})
	}
}

func TestMixContext(t *testing.T) {
	t.Run("a cancelled request returns the context's error", func(t *testing.T) {
		started := make(chan struct{}, 2)
		rec := &recorder{}
		m := NewMixer([]Weighted{
			{Name: "a", Source: slowSource{started}, Weight: 1, Index: 0},
			{Name: "b", Source: slowSource{started}, Weight: 1, Index: 1},
		}, catalog, MixerOptions{Observer: rec})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := m.Mix(ctx, &Request{User: "u"}, 10, nil, nil)
			done <- err
		}()
		<-started
		<-started
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Mix returned %v, want context.Canceled", err)
		}
		for _, name := range []string{"a", "b"} {
			if o, ok := rec.get(name); !ok || !errors.Is(o.err, context.Canceled) {
				t.Errorf("source %q observed as %+v (observed: %v), want context.Canceled", name, o, ok)
			}
		}
	})
	t.Run("an already cancelled request runs no source", func(t *testing.T) {
		s := &countingSource{listSource: items(0, 10)}
		m := NewMixer([]Weighted{src(0, "a", s, 1, 0)}, catalog, MixerOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := m.Mix(ctx, &Request{User: "u"}, 10, nil, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Mix returned %v, want context.Canceled", err)
		}
		if s.calls != 0 {
			t.Errorf("source ran %d times", s.calls)
		}
	})
}

func TestMixReuse(t *testing.T) {
	// The pooled buffers of one request must not leak into the next.
	m := NewMixer([]Weighted{
		src(0, "a", items(0, 50), 0.5, 0),
		src(1, "b", items(1000, 50), 0.5, 0),
	}, catalog, MixerOptions{})
	var first []Mixed
	for i := range 5 {
		got, err := m.Mix(context.Background(), &Request{User: "u"}, 20, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = got
			continue
		}
		if !slices.Equal(got, first) {
			t.Fatalf("request %d mixed %v, the first %v", i, got, first)
		}
	}
}

func TestMixZeroWeightNotRun(t *testing.T) {
	s := &countingSource{listSource: items(0, 10)}
	m := NewMixer([]Weighted{src(0, "a", items(1000, 10), 1, 0), src(1, "z", s, 0, 0)}, catalog, MixerOptions{})
	if _, err := m.Mix(context.Background(), &Request{User: "u"}, 10, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s.calls != 0 {
		t.Errorf("zero-weight source ran %d times", s.calls)
	}
}

func TestMixAsksForLimit(t *testing.T) {
	tests := map[string]struct {
		limit, budget, want int
	}{
		"a limit below the budget": {limit: 40, budget: 100, want: 40},
		"a limit above the budget": {limit: 400, budget: 100, want: 400},
		"no limit: the budget":     {limit: 0, budget: 100, want: 100},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := make(chan int, 1)
			s := sourceFunc(func(ctx context.Context, req *Request, l int, dst []Candidate) ([]Candidate, error) {
				got <- l
				return dst, nil
			})
			m := NewMixer([]Weighted{src(0, "a", s, 1, tc.limit)}, catalog, MixerOptions{})
			if _, err := m.Mix(context.Background(), &Request{User: "u"}, tc.budget, nil, nil); err != nil {
				t.Fatal(err)
			}
			if l := <-got; l != tc.want {
				t.Errorf("source asked for %d, want %d", l, tc.want)
			}
		})
	}
}

type sourceFunc func(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error)

func (f sourceFunc) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	return f(ctx, req, limit, dst)
}
