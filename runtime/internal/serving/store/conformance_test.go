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

package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// backend opens a fresh store of one kind for a test.
type backend struct {
	name string
	open func(t *testing.T, o StateOptions) Store
	// replay, if set, closes the store and opens it again from what it
	// persisted, so the checks run against the replayed state.
	replay func(t *testing.T, s Store, o StateOptions) Store
}

func memoryBackend(t *testing.T, o StateOptions) Store {
	t.Helper()
	dir := tempDir(t)
	m, err := OpenMemory(dir, MemoryOptions{State: o, PopularRefresh: -1})
	if err != nil {
		t.Fatalf("OpenMemory: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func replayMemory(t *testing.T, s Store, o StateOptions) Store {
	t.Helper()
	m := s.(*Memory)
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	re, err := OpenMemory(m.dir, MemoryOptions{State: o, PopularRefresh: -1})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { _ = re.Close() })
	if got := re.Recovery().TornRecords; got != 0 {
		t.Errorf("TornRecords after a clean close = %d, want 0", got)
	}
	return re
}

func redisBackend(t *testing.T, o StateOptions) Store {
	t.Helper()
	addr := needRedis(t)
	r, err := OpenRedis(context.Background(), RedisOptions{State: o, Address: addr, Prefix: testPrefix(t)})
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// testPrefix gives each test its own keys on the shared server.
func testPrefix(t *testing.T) string {
	return strings.NewReplacer(" ", "_", "/", ".").Replace(t.Name()) + ":"
}

var backends = []backend{
	{name: "memory", open: memoryBackend},
	{name: "memory-replayed", open: memoryBackend, replay: replayMemory},
	{name: "redis", open: redisBackend},
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func ev(typ EventType, user, item, author string, s float64) Event {
	return Event{Type: typ, User: user, Item: item, Author: author, Time: at(s)}
}

type recentQuery struct {
	authors []string
	since   time.Time
	limit   int
	want    []ItemTime
}

type engagementQuery struct {
	user  string
	limit int
	want  []Engagement
}

type seenQuery struct {
	user                string
	items, notItems     []string
	authors, notAuthors []string
	wantLen             int
}

type popularQuery struct {
	now   time.Time
	limit int
	want  []ItemScore
}

type conformanceCase struct {
	opts        StateOptions
	batches     [][]Event
	follows     map[string][]string
	recent      []recentQuery
	engagements []engagementQuery
	seen        []seenQuery
	popular     []popularQuery
	// newest, if set, is what EventClock.NewestEvent must return.
	newest *time.Time
}

func ptr[T any](v T) *T { return &v }

func it(item, author string, s float64) ItemTime {
	return ItemTime{Item: item, Author: author, Time: at(s)}
}

func eng(item string, typ EventType, s float64) Engagement {
	return Engagement{Item: item, Type: typ, Time: at(s)}
}

var conformanceCases = map[string]conformanceCase{
	"follow and unfollow keep the current set of authors": {
		batches: [][]Event{
			{ev(Follow, "u1", "", "a", 1), ev(Follow, "u1", "", "b", 2), ev(Follow, "u1", "", "c", 3)},
			{ev(Unfollow, "u1", "", "b", 4), ev(Follow, "u2", "", "a", 5), ev(Follow, "u2", "", "a", 6)},
			{ev(Follow, "u3", "", "a", 7), ev(Unfollow, "u3", "", "a", 8), ev(Unfollow, "u4", "", "z", 9)},
		},
		follows: map[string][]string{"u1": {"a", "c"}, "u2": {"a"}, "u3": nil, "u4": nil, "nobody": nil},
	},
	"a user follows at most Follows authors; past it a new follow is ignored": {
		opts: StateOptions{Follows: 2},
		batches: [][]Event{
			{ev(Follow, "u1", "", "a", 1), ev(Follow, "u1", "", "b", 2), ev(Follow, "u1", "", "c", 3)},
			{ev(Follow, "u1", "", "a", 4), ev(Unfollow, "u1", "", "b", 5), ev(Follow, "u1", "", "d", 6), ev(Follow, "u1", "", "e", 7)},
		},
		follows: map[string][]string{"u1": {"a", "d"}},
	},
	"authors' recent items newest first, since and limit applied, re-published item re-dated": {
		batches: [][]Event{
			{ev(NewItem, "", "x1", "a", 10), ev(NewItem, "", "x2", "b", 20)},
			{ev(NewItem, "", "x3", "a", 30), ev(NewItem, "", "x4", "c", 40), ev(NewItem, "", "x1", "a", 50)},
		},
		recent: []recentQuery{
			{authors: []string{"a", "b"}, limit: 10, want: []ItemTime{it("x1", "a", 50), it("x3", "a", 30), it("x2", "b", 20)}},
			{authors: []string{"a", "b"}, since: at(25), limit: 10, want: []ItemTime{it("x1", "a", 50), it("x3", "a", 30)}},
			{authors: []string{"a", "b"}, since: at(30), limit: 10, want: []ItemTime{it("x1", "a", 50), it("x3", "a", 30)}},
			{authors: []string{"b", "a"}, limit: 2, want: []ItemTime{it("x1", "a", 50), it("x3", "a", 30)}},
			{authors: []string{"a", "c"}, since: at(35), limit: 1, want: []ItemTime{it("x1", "a", 50)}},
			{authors: []string{"c", "b"}, limit: 5, want: []ItemTime{it("x4", "c", 40), it("x2", "b", 20)}},
			{authors: []string{"nobody"}, limit: 5, want: nil},
			{authors: []string{"a"}, limit: 0, want: nil},
		},
	},
	"an author keeps only the newest items": {
		opts: StateOptions{AuthorItems: 2},
		batches: [][]Event{
			{ev(NewItem, "", "y1", "a", 1), ev(NewItem, "", "y2", "a", 2), ev(NewItem, "", "y3", "a", 3)},
			{ev(NewItem, "", "y0", "a", 0)},
		},
		recent: []recentQuery{
			{authors: []string{"a"}, limit: 10, want: []ItemTime{it("y3", "a", 3), it("y2", "a", 2)}},
		},
	},
	"recent engagements keep the last positive ones, newest first": {
		opts: StateOptions{RecentEngagements: 3},
		batches: [][]Event{
			{ev(Click, "u1", "i1", "", 1), ev(Impression, "u1", "i9", "", 2), ev(Like, "u1", "i2", "", 3)},
			{ev(Comment, "u1", "i3", "", 4), ev(SeeLess, "u1", "i5", "", 5), ev(Share, "u1", "i4", "", 6)},
			{ev(Follow, "u1", "", "a", 7), ev(Click, "u2", "i1", "", 8)},
		},
		engagements: []engagementQuery{
			{user: "u1", limit: 10, want: []Engagement{eng("i4", Share, 6), eng("i3", Comment, 4), eng("i2", Like, 3)}},
			{user: "u1", limit: 2, want: []Engagement{eng("i4", Share, 6), eng("i3", Comment, 4)}},
			{user: "u2", limit: 10, want: []Engagement{eng("i1", Click, 8)}},
			{user: "u3", limit: 10, want: nil},
			{user: "u1", limit: 0, want: nil},
		},
	},
	"seen keeps the most recent impressions, see-less items and authors": {
		opts: StateOptions{SeenItems: 2, SeeLess: 2},
		batches: [][]Event{
			{ev(Impression, "u1", "i1", "", 1), ev(Impression, "u1", "i2", "", 2), ev(Impression, "u1", "i3", "", 3)},
			{ev(Impression, "u1", "i2", "", 4), ev(SeeLess, "u1", "i7", "", 5), ev(SeeLess, "u1", "", "a9", 6)},
			{ev(SeeLess, "u1", "i8", "a8", 7), ev(SeeLess, "u1", "", "a7", 8), ev(Impression, "u2", "i1", "", 9)},
		},
		seen: []seenQuery{
			{user: "u1", items: []string{"i2", "i3", "i7", "i8"}, notItems: []string{"i1", "i9"},
				authors: []string{"a8", "a7"}, notAuthors: []string{"a9", "a1"}, wantLen: 6},
			{user: "u2", items: []string{"i1"}, notItems: []string{"i2"}, notAuthors: []string{"a8"}, wantLen: 1},
			{user: "u3", notItems: []string{"i1"}, wantLen: 0},
		},
	},
	"seen keeps 10,000 items per user by default": {
		batches: func() [][]Event {
			var b []Event
			for i := range 1500 {
				b = append(b, ev(Impression, "u1", fmt.Sprintf("i%d", i), "", float64(i)))
			}
			return [][]Event{b}
		}(),
		seen: []seenQuery{
			{user: "u1", items: []string{"i0", "i499", "i1499"}, notItems: []string{"i1500"}, wantLen: 1500},
		},
	},
	"the newest event time is the latest of any event, in whatever order they come": {
		batches: [][]Event{
			{ev(Impression, "u1", "i1", "", 30), ev(Click, "u1", "i1", "", 10)},
			{ev(Follow, "u2", "", "a", 50), ev(SeeLess, "u1", "i2", "", 20)},
			{ev(NewItem, "", "x1", "a", 40), ev(Like, "u1", "i1", "", 45)},
		},
		newest: ptr(at(50)),
	},
	"a store without events has no newest event": {
		newest: ptr(time.Time{}),
	},
	"popularity is weighted and halves every half-life": {
		opts: StateOptions{HalfLife: time.Hour},
		batches: [][]Event{
			{ev(Click, "u1", "i1", "", 0), ev(Like, "u2", "i1", "", 0), ev(Share, "u1", "i2", "", 0)},
			{ev(Click, "u3", "i3", "", 3600), ev(Impression, "u3", "i4", "", 3600), ev(Comment, "u1", "i5", "", -7200)},
			{ev(Follow, "u1", "", "a", 0), ev(SeeLess, "u1", "i6", "", 0)},
		},
		popular: []popularQuery{
			{now: at(3600), limit: 10, want: []ItemScore{{"i2", 2}, {"i1", 1.5}, {"i3", 1}, {"i5", 0.375}}},
			{now: at(3600), limit: 2, want: []ItemScore{{"i2", 2}, {"i1", 1.5}}},
			{now: at(7200), limit: 10, want: []ItemScore{{"i2", 1}, {"i1", 0.75}, {"i3", 0.5}, {"i5", 0.1875}}},
			{now: at(0), limit: 0, want: nil},
		},
	},
	"popularity accumulates across batches with custom weights": {
		opts: StateOptions{HalfLife: time.Hour, Weights: map[EventType]float64{Click: 1, Impression: 0.5}},
		batches: [][]Event{
			{ev(Click, "u1", "i1", "", 0), ev(Like, "u1", "i1", "", 0)},
			{ev(Impression, "u2", "i1", "", 0), ev(Click, "u2", "i2", "", 0)},
			{ev(Click, "u3", "i2", "", 0), ev(Click, "u4", "i2", "", 0)},
		},
		popular: []popularQuery{
			{now: at(0), limit: 10, want: []ItemScore{{"i2", 3}, {"i1", 1.5}}},
		},
	},
	"popularity keeps the most popular items": {
		opts: StateOptions{PopularItems: 4, HalfLife: time.Hour},
		batches: func() [][]Event {
			// Batch n clicks item pn n+1 times, so each new item outranks
			// the earlier ones.
			var bs [][]Event
			for n := 0; n < 10; n++ {
				var b []Event
				for range n + 1 {
					b = append(b, ev(Click, "u", "p"+string(rune('0'+n)), "", 0))
				}
				bs = append(bs, b)
			}
			return bs
		}(),
		popular: []popularQuery{
			{now: at(0), limit: 10, want: []ItemScore{{"p9", 10}, {"p8", 9}, {"p7", 8}, {"p6", 7}}},
		},
	},
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for name, tc := range conformanceCases {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					s := b.open(t, tc.opts)
					for i, batch := range tc.batches {
						if err := s.Apply(ctx, batch); err != nil {
							t.Fatalf("Apply batch %d: %v", i, err)
						}
					}
					if b.replay != nil {
						s = b.replay(t, s, tc.opts)
					}
					checkState(t, s, tc)
				})
			}
		})
	}
}

func checkState(t *testing.T, s Store, tc conformanceCase) {
	t.Helper()
	ctx := context.Background()
	for user, want := range tc.follows {
		got, err := s.Follows(ctx, user)
		if err != nil {
			t.Fatalf("Follows(%q): %v", user, err)
		}
		if !equalLists(got, want) {
			t.Errorf("Follows(%q) = %v, want %v", user, got, want)
		}
	}
	for _, q := range tc.recent {
		got, err := s.RecentByAuthors(ctx, q.authors, q.since, q.limit)
		if err != nil {
			t.Fatalf("RecentByAuthors: %v", err)
		}
		if !equalItemTimes(got, q.want) {
			t.Errorf("RecentByAuthors(%v, %v, %d) = %v, want %v", q.authors, q.since, q.limit, got, q.want)
		}
	}
	for _, q := range tc.engagements {
		got, err := s.RecentEngagements(ctx, q.user, q.limit)
		if err != nil {
			t.Fatalf("RecentEngagements: %v", err)
		}
		if !equalEngagements(got, q.want) {
			t.Errorf("RecentEngagements(%q, %d) = %v, want %v", q.user, q.limit, got, q.want)
		}
	}
	for _, q := range tc.seen {
		f, err := s.Seen(ctx, q.user)
		if err != nil {
			t.Fatalf("Seen: %v", err)
		}
		for _, item := range q.items {
			if !f.HasItem(item) || !f.Excludes(item, "someone") {
				t.Errorf("Seen(%q) does not filter item %q", q.user, item)
			}
		}
		for _, item := range q.notItems {
			if f.HasItem(item) || f.Excludes(item, "someone") {
				t.Errorf("Seen(%q) filters item %q", q.user, item)
			}
		}
		for _, a := range q.authors {
			if !f.HasAuthor(a) || !f.Excludes("fresh", a) {
				t.Errorf("Seen(%q) does not filter author %q", q.user, a)
			}
		}
		for _, a := range q.notAuthors {
			if f.HasAuthor(a) {
				t.Errorf("Seen(%q) filters author %q", q.user, a)
			}
		}
		if f.Len() != q.wantLen {
			t.Errorf("Seen(%q).Len() = %d, want %d", q.user, f.Len(), q.wantLen)
		}
	}
	if tc.newest != nil {
		got, err := s.(EventClock).NewestEvent(ctx)
		if err != nil {
			t.Fatalf("NewestEvent: %v", err)
		}
		if !got.Equal(*tc.newest) {
			t.Errorf("NewestEvent = %v, want %v", got, *tc.newest)
		}
	}
	for _, q := range tc.popular {
		got, err := s.Popular(ctx, q.now, q.limit)
		if err != nil {
			t.Fatalf("Popular: %v", err)
		}
		if !equalScores(got, q.want) {
			t.Errorf("Popular(%v, %d) = %v, want %v", q.now, q.limit, got, q.want)
		}
	}
}

func equalLists(a, b []string) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}

func equalItemTimes(a, b []ItemTime) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Item != b[i].Item || a[i].Author != b[i].Author || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

func equalEngagements(a, b []Engagement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Item != b[i].Item || a[i].Type != b[i].Type || !a[i].Time.Equal(b[i].Time) {
			return false
		}
	}
	return true
}

func equalScores(a, b []ItemScore) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Item != b[i].Item || math.Abs(a[i].Score-b[i].Score) > 1e-9*math.Max(1, math.Abs(b[i].Score)) {
			return false
		}
	}
	return true
}

func TestApplyRejectsInvalidBatches(t *testing.T) {
	cases := map[string]Event{
		"unknown type":            {Type: "poke", User: "u", Item: "i"},
		"impression without item": {Type: Impression, User: "u"},
		"click without user":      {Type: Click, Item: "i"},
		"see_less with nothing":   {Type: SeeLess, User: "u"},
		"follow without author":   {Type: Follow, User: "u"},
		"unfollow without user":   {Type: Unfollow, Author: "a"},
		"new_item without author": {Type: NewItem, Item: "i"},
		"integrity without item":  {Type: Integrity, Risk: 0.5},
		"integrity risk above 1":  {Type: Integrity, Item: "i", Risk: 1.5},
		"negative new_item risk":  {Type: NewItem, Item: "i", Author: "a", Risk: -0.1},
		"integrity risk NaN":      {Type: Integrity, Item: "i", Risk: math.NaN()},
	}
	for _, b := range []backend{backends[0], backends[2]} {
		t.Run(b.name, func(t *testing.T) {
			for name, bad := range cases {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					s := b.open(t, StateOptions{})
					err := s.Apply(ctx, []Event{ev(Follow, "u", "", "a", 1), bad})
					if !errors.Is(err, ErrInvalidEvent) {
						t.Fatalf("Apply = %v, want ErrInvalidEvent", err)
					}
					got, err := s.Follows(ctx, "u")
					if err != nil {
						t.Fatal(err)
					}
					if len(got) != 0 {
						t.Errorf("Follows after a rejected batch = %v, want none", got)
					}
				})
			}
		})
	}
}

func TestApplyDatesUndatedEvents(t *testing.T) {
	for _, b := range []backend{backends[0], backends[2]} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.open(t, StateOptions{})
			before := time.Now().Truncate(time.Millisecond)
			if err := s.Apply(ctx, []Event{{Type: Click, User: "u", Item: "i"}}); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			got, err := s.RecentEngagements(ctx, "u", 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(after) {
				t.Errorf("RecentEngagements = %v, want one click dated between %v and %v", got, before, after)
			}
		})
	}
}

func TestSeed(t *testing.T) {
	for _, b := range []backend{backends[0], backends[2]} {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.open(t, StateOptions{AuthorItems: 2})
			seed := []ItemTime{it("c1", "a", 1), it("c2", "a", 2), it("c3", "a", 3), it("c4", "b", 4)}
			if err := s.(Seeder).Seed(ctx, seed); err != nil {
				t.Fatal(err)
			}
			if err := s.Apply(ctx, []Event{ev(NewItem, "", "n1", "b", 5)}); err != nil {
				t.Fatal(err)
			}
			got, err := s.RecentByAuthors(ctx, []string{"a", "b"}, time.Time{}, 10)
			if err != nil {
				t.Fatal(err)
			}
			want := []ItemTime{it("n1", "b", 5), it("c4", "b", 4), it("c3", "a", 3), it("c2", "a", 2)}
			if !equalItemTimes(got, want) {
				t.Errorf("RecentByAuthors = %v, want %v", got, want)
			}
			if err := s.(Seeder).Seed(ctx, []ItemTime{{Item: "x"}}); !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("Seed without author = %v, want ErrInvalidEvent", err)
			}
		})
	}
}
