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
	"slices"
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
	checkRecent(t, s, tc)
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

// checkRecent checks tc's RecentByAuthors queries.
func checkRecent(t *testing.T, s Store, tc conformanceCase) {
	t.Helper()
	ctx := context.Background()
	for i, q := range tc.recent {
		// Every other query in a buffer that holds stale items: they are
		// overwritten, never returned.
		var buf []ItemTime
		if i%2 == 1 {
			buf = slices.Repeat([]ItemTime{{Item: "stale", Author: "stale"}}, 1000)
		}
		got, err := s.RecentByAuthors(ctx, q.authors, q.since, q.limit, buf)
		if err != nil {
			t.Fatalf("RecentByAuthors: %v", err)
		}
		if !equalItemTimes(got, q.want) {
			t.Errorf("RecentByAuthors(%v, %v, %d) = %v, want %v", q.authors, q.since, q.limit, got, q.want)
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
			got, err := s.RecentByAuthors(ctx, []string{"a", "b"}, time.Time{}, 10, nil)
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

// eventClock is far from the wall clock, as a replayed log's is: expiry
// must be decided on it.
var eventClock = time.Date(2001, 6, 1, 0, 0, 0, 0, time.UTC)

// clock is eventClock plus m minutes.
func clock(m float64) time.Time { return eventClock.Add(time.Duration(m * float64(time.Minute))) }

// list is user's list of items, created at minute created of eventClock
// and expiring at minute expires.
func list(user string, created, expires float64, items ...string) List {
	l := List{User: user, Arm: "main", Revision: "r1", Created: clock(created), Expires: clock(expires)}
	for k, item := range items {
		l.Items = append(l.Items, ListItem{Item: item, Score: float64(len(items) - k), Sources: []string{"follows", "popular"}})
	}
	return l
}

func sameList(a, b *List) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if a.User != b.User || a.Arm != b.Arm || a.Revision != b.Revision ||
		!a.Created.Equal(b.Created) || !a.Expires.Equal(b.Expires) || len(a.Items) != len(b.Items) {
		return false
	}
	for k := range a.Items {
		x, y := a.Items[k], b.Items[k]
		if x.Item != y.Item || x.Score != y.Score || !equalLists(x.Sources, y.Sources) {
			return false
		}
	}
	return true
}

// listBackends are the backends that keep lists: the Memory store's are
// not logged, so the replayed one has none (TestMemoryListsAreNotLogged).
var listBackends = []backend{backends[0], backends[2]}

// listQuery asks for user's list at minute at of eventClock.
type listQuery struct {
	user string
	at   float64
	want *List
}

func TestListStoreConformance(t *testing.T) {
	cases := map[string]struct {
		// puts are the batches put, each at its minute.
		puts    [][]List
		putAt   []float64
		queries []listQuery
	}{
		"a list is returned as put; none for a user without one": {
			puts:  [][]List{{list("u1", 0, 60, "i1", "i2", "i3"), list("u2", 0, 60, "i9")}},
			putAt: []float64{0},
			queries: []listQuery{
				{user: "u1", at: 1, want: ptr(list("u1", 0, 60, "i1", "i2", "i3"))},
				{user: "u2", at: 1, want: ptr(list("u2", 0, 60, "i9"))},
				{user: "nobody", at: 1},
			},
		},
		"a list replaces the user's previous one, the last of a batch winning": {
			puts: [][]List{
				{list("u1", 0, 60, "old"), list("u2", 0, 60, "kept")},
				{list("u1", 10, 30, "new"), list("u3", 10, 70, "first"), list("u3", 10, 70, "second")},
			},
			putAt: []float64{0, 10},
			queries: []listQuery{
				{user: "u1", at: 11, want: ptr(list("u1", 10, 30, "new"))},
				{user: "u1", at: 40}, // the replacement expires sooner than the list it replaced
				{user: "u2", at: 11, want: ptr(list("u2", 0, 60, "kept"))},
				{user: "u3", at: 11, want: ptr(list("u3", 10, 70, "second"))},
			},
		},
		"a list is served until its Expires on the engine's clock, not the wall clock's": {
			puts:  [][]List{{list("u1", 0, 60, "i1")}},
			putAt: []float64{0},
			queries: []listQuery{
				{user: "u1", at: -5, want: ptr(list("u1", 0, 60, "i1"))},
				{user: "u1", at: 59.999, want: ptr(list("u1", 0, 60, "i1"))},
				{user: "u1", at: 60},
				{user: "u1", at: 61},
			},
		},
		"a list expired when put is not stored and removes the user's previous one": {
			puts: [][]List{
				{list("u1", 0, 60, "i1"), list("u2", 0, 60, "i2")},
				{list("u1", 0, 30, "late"), list("u3", 0, 30, "late")},
			},
			putAt: []float64{0, 30},
			queries: []listQuery{
				{user: "u1", at: 1},
				{user: "u3", at: 1},
				{user: "u2", at: 31, want: ptr(list("u2", 0, 60, "i2"))},
			},
		},
		"a list with no items is a list": {
			puts:    [][]List{{list("u1", 0, 60)}},
			putAt:   []float64{0},
			queries: []listQuery{{user: "u1", at: 1, want: ptr(list("u1", 0, 60))}},
		},
	}
	for _, b := range listBackends {
		t.Run(b.name, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					s := b.open(t, StateOptions{}).(ListStore)
					for i, batch := range tc.puts {
						if err := s.PutLists(ctx, batch, clock(tc.putAt[i])); err != nil {
							t.Fatalf("PutLists batch %d: %v", i, err)
						}
					}
					for _, q := range tc.queries {
						got, err := s.UserList(ctx, q.user, clock(q.at))
						if err != nil {
							t.Fatalf("UserList(%q): %v", q.user, err)
						}
						if !sameList(got, q.want) {
							t.Errorf("UserList(%q) at minute %v = %+v, want %+v", q.user, q.at, got, q.want)
						}
					}
				})
			}
		})
	}
}

// A bad list refuses the whole batch, naming the list; the store is as
// before.
func TestPutListsRefusesBadLists(t *testing.T) {
	bad := map[string]List{
		"no user":             list("", 0, 60, "i1"),
		"user id too long":    list(strings.Repeat("u", MaxListUser+1), 0, 60, "i1"),
		"no creation time":    {User: "bad", Expires: clock(60)},
		"expires at creation": list("bad", 60, 60, "i1"),
		"expires before":      list("bad", 60, 0, "i1"),
		"item without id":     list("bad", 0, 60, "i1", ""),
		"NaN score":           {User: "bad", Created: clock(0), Expires: clock(60), Items: []ListItem{{Item: "i1", Score: math.NaN()}}},
		"infinite score":      {User: "bad", Created: clock(0), Expires: clock(60), Items: []ListItem{{Item: "i1", Score: math.Inf(1)}}},
	}
	for _, b := range listBackends {
		t.Run(b.name, func(t *testing.T) {
			for name, l := range bad {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					s := b.open(t, StateOptions{}).(ListStore)
					if err := s.PutLists(ctx, []List{list("u1", 0, 60, "before")}, clock(0)); err != nil {
						t.Fatal(err)
					}
					err := s.PutLists(ctx, []List{list("u1", 0, 60, "after"), list("u2", 0, 60, "i2"), l}, clock(0))
					if !errors.Is(err, ErrInvalidList) {
						t.Fatalf("PutLists = %v, want ErrInvalidList", err)
					}
					if !strings.Contains(err.Error(), "list 2 ") {
						t.Errorf("PutLists = %q, want it to name list 2", err)
					}
					if got, err := s.UserList(ctx, "u1", clock(1)); err != nil || !sameList(got, ptr(list("u1", 0, 60, "before"))) {
						t.Errorf("u1's list after a refused batch = %+v (%v), want the one before it", got, err)
					}
					if got, err := s.UserList(ctx, "u2", clock(1)); err != nil || got != nil {
						t.Errorf("u2's list after a refused batch = %+v (%v), want none", got, err)
					}
				})
			}
		})
	}
}

// What the caller does with its lists after PutLists does not change the
// stored ones.
func TestPutListsCopiesTheLists(t *testing.T) {
	for _, b := range listBackends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.open(t, StateOptions{}).(ListStore)
			batch := []List{list("u1", 0, 60, "i1", "i2")}
			if err := s.PutLists(ctx, batch, clock(0)); err != nil {
				t.Fatal(err)
			}
			batch[0].Items[0].Item, batch[0].Items[1].Sources[0] = "changed", "changed"
			if got, err := s.UserList(ctx, "u1", clock(1)); err != nil || !sameList(got, ptr(list("u1", 0, 60, "i1", "i2"))) {
				t.Errorf("UserList after the caller changed its batch = %+v (%v), want the list as put", got, err)
			}
		})
	}
}

// activityBatches give, through Apply: ua 3 events (latest at 20, the
// batch's order being another), ub 3 (latest at 30), uc 1 (at 40), ud 2
// (latest at 2); new_item and integrity events have no user and count
// for none.
var activityBatches = [][]Event{
	{ev(Impression, "ua", "i1", "", 20), ev(Click, "ua", "i1", "", 10), ev(NewItem, "", "i7", "au", 50)},
	{ev(Follow, "ua", "", "au", 5), ev(SeeLess, "ub", "i2", "", 30), ev(Unfollow, "ub", "", "au", 12), ev(Integrity, "", "i7", "", 60)},
	{ev(Like, "ub", "i3", "", 25), ev(Impression, "uc", "i4", "", 40), ev(Share, "ud", "i1", "", 1), ev(Comment, "ud", "i1", "", 2)},
}

func active(user string, last float64, events int64) UserActivity {
	return UserActivity{User: user, Last: at(last), Events: events}
}

// activityQuery is one ActiveUsers call and its answer.
type activityQuery struct {
	since time.Time
	limit int
	want  []UserActivity
}

var activityQueries = []activityQuery{
	{limit: 0, want: []UserActivity{active("ua", 20, 3), active("ub", 30, 3), active("ud", 2, 2), active("uc", 40, 1)}},
	{limit: -1, want: []UserActivity{active("ua", 20, 3), active("ub", 30, 3), active("ud", 2, 2), active("uc", 40, 1)}},
	{since: at(20), want: []UserActivity{active("ua", 20, 3), active("ub", 30, 3), active("uc", 40, 1)}},
	{since: at(20.0005), want: []UserActivity{active("ub", 30, 3), active("uc", 40, 1)}},
	{since: at(1), limit: 3, want: []UserActivity{active("ua", 20, 3), active("ub", 30, 3), active("ud", 2, 2)}},
	{since: at(20), limit: 1, want: []UserActivity{active("ua", 20, 3)}},
	{since: at(40.001)},
}

func checkActivity(t *testing.T, s ActivityReader, queries []activityQuery) {
	t.Helper()
	for _, q := range queries {
		got, err := s.ActiveUsers(context.Background(), q.since, q.limit)
		if err != nil {
			t.Fatalf("ActiveUsers: %v", err)
		}
		same := func(a, b UserActivity) bool { return a.User == b.User && a.Events == b.Events && a.Last.Equal(b.Last) }
		if !slices.EqualFunc(got, q.want, same) {
			t.Errorf("ActiveUsers(%v, %d) = %v, want %v", q.since, q.limit, got, q.want)
		}
	}
}

// Activity is counted from the events Apply records, and the Memory store
// restores it by replaying its log.
func TestActivityConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.open(t, StateOptions{})
			for i, batch := range activityBatches {
				if err := s.Apply(ctx, batch); err != nil {
					t.Fatalf("Apply batch %d: %v", i, err)
				}
			}
			if b.replay != nil {
				s = b.replay(t, s, StateOptions{})
			}
			checkActivity(t, s.(ActivityReader), activityQueries)
			// More events go on counting, and a user's last event is the
			// latest of any.
			if err := s.Apply(ctx, []Event{ev(Click, "uc", "i5", "", 45), ev(Impression, "uc", "i6", "", 44), ev(Impression, "ud", "i7", "", 0)}); err != nil {
				t.Fatal(err)
			}
			checkActivity(t, s.(ActivityReader), []activityQuery{
				{want: []UserActivity{active("ua", 20, 3), active("ub", 30, 3), active("uc", 45, 3), active("ud", 2, 3)}},
			})
		})
	}
}

func TestActiveUsersOfAnEmptyStore(t *testing.T) {
	for _, b := range listBackends {
		t.Run(b.name, func(t *testing.T) {
			got, err := b.open(t, StateOptions{}).(ActivityReader).ActiveUsers(context.Background(), time.Time{}, 0)
			if err != nil || len(got) != 0 {
				t.Errorf("ActiveUsers = %v (%v), want none", got, err)
			}
		})
	}
}
