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

package qualitytest

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// T0 is the start of the hand-written logs.
var T0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// Ev is an event of a hand-written log, sec seconds after T0; the item of
// a follow is its author.
func Ev(sec float64, user string, typ dataset.EventType, item string) dataset.Event {
	e := dataset.Event{User: user, Item: item, Type: typ, Time: T0.Add(time.Duration(sec * float64(time.Second)))}
	if typ == dataset.Follow {
		e.Author, e.Item = item, ""
	}
	return e
}

// WriteWorld writes follows.jsonl and events.jsonl to a new directory.
func WriteWorld(t testing.TB, follows []dataset.FollowEdge, events []dataset.Event) string {
	t.Helper()
	dir := t.TempDir()
	fw, err := dataset.CreateFollows(filepath.Join(dir, "follows.jsonl"))
	writeRows(t, fw, err, follows)
	ew, err := dataset.CreateEvents(filepath.Join(dir, "events.jsonl"))
	writeRows(t, ew, err, events)
	return dir
}

// WriteCatalog adds catalog.jsonl with the given items to a world
// directory, each by author "a-" + its ID, created at T0.
func WriteCatalog(t testing.TB, dir string, items []string) {
	t.Helper()
	rows := make([]dataset.Item, len(items))
	for i, id := range items {
		rows[i] = dataset.Item{ID: id, Author: "a-" + id, Created: T0}
	}
	w, err := dataset.CreateCatalog(filepath.Join(dir, "catalog.jsonl"), 0)
	writeRows(t, w, err, rows)
}

// writeRows writes rows to w and closes it; err is that of w's creation.
func writeRows[T any](t testing.TB, w *dataset.Writer[T], err error, rows []T) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if err := w.Write(rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// Expected is what a replay of a world must post: the follow graph as
// follow events at the log's first time, then the log.
func Expected(follows []dataset.FollowEdge, events []dataset.Event) []Event {
	var out []Event
	for _, f := range follows {
		out = append(out, Event{User: f.User, Author: f.Author, Type: "follow", Time: events[0].Time})
	}
	for _, e := range events {
		out = append(out, Event{User: e.User, Item: e.Item, Author: e.Author, Type: e.Type.String(), Time: e.Time})
	}
	return out
}

// Equal reports whether a and b hold the same events in the same order,
// their times compared as instants.
func Equal(a, b []Event) bool {
	return slices.EqualFunc(a, b, func(x, y Event) bool {
		return x.User == y.User && x.Item == y.Item && x.Author == y.Author && x.Type == y.Type && x.Time.Equal(y.Time)
	})
}

// DiffByUser compares got with want user by user, each user's events in
// order: what a replay keeps is each user's order, not the log's across
// users. It describes the first user, by ID, whose events differ, and is
// "" when none does.
func DiffByUser(got, want []Event) string {
	g, w := byUser(got), byUser(want)
	for u := range g {
		if _, ok := w[u]; !ok {
			w[u] = nil
		}
	}
	for _, u := range slices.Sorted(maps.Keys(w)) {
		if !Equal(g[u], w[u]) {
			return fmt.Sprintf("user %s was posted %v, want %v", u, g[u], w[u])
		}
	}
	return ""
}

func byUser(evs []Event) map[string][]Event {
	m := map[string][]Event{}
	for _, e := range evs {
		m[e.User] = append(m[e.User], e)
	}
	return m
}

// World is a small world for evaluations: 200 items whose popularity falls
// with their number, 40 users, a follow graph, and about 600 events over
// 1000 s in which every click shares its impression's time, written to
// Dir with its catalog.
type World struct {
	Dir     string
	Items   []string
	Follows []dataset.FollowEdge
	Events  []dataset.Event
}

// NewWorld draws the world, the same every time, and writes it.
func NewWorld(t testing.TB) *World {
	w := &World{}
	for i := range 200 {
		w.Items = append(w.Items, fmt.Sprintf("i%03d", i))
	}
	w.Follows = []dataset.FollowEdge{{User: "u0", Author: "a-i001"}, {User: "u5", Author: "a-i002"}}
	rng := rand.New(rand.NewPCG(4, 2))
	for k := range 400 {
		at := float64(k) * 2.5
		user := fmt.Sprintf("u%d", rng.IntN(40))
		item := w.Items[rng.IntN(rng.IntN(len(w.Items))+1)]
		w.Events = append(w.Events, Ev(at, user, dataset.Impression, item))
		if rng.IntN(2) == 0 {
			w.Events = append(w.Events, Ev(at, user, dataset.Click, item))
		}
	}
	w.Events = append(w.Events, Ev(1000, "u0", dataset.Impression, "i000"))
	w.Dir = WriteWorld(t, w.Follows, w.Events)
	WriteCatalog(t, w.Dir, w.Items)
	return w
}

// Train returns the events before the split of a test window of 0.1,
// computed from the times alone: the log spans 0..1000 s, so the split is
// at 900 s.
func (w *World) Train() []dataset.Event {
	split := T0.Add(900 * time.Second)
	var out []dataset.Event
	for _, e := range w.Events {
		if e.Time.Before(split) {
			out = append(out, e)
		}
	}
	return out
}

// PopularAnswer ranks the items by the clicks the server was posted, ties
// in catalog order, leaving out the items shown to the user: popularity as
// recserve would compute it from what it was sent.
func (w *World) PopularAnswer(user string, n int, posted []Event) Reply {
	clicks := map[string]int{}
	shown := map[string]bool{}
	for _, e := range posted {
		switch {
		case e.Type == "click":
			clicks[e.Item]++
		case e.Type == "impression" && e.User == user:
			shown[e.Item] = true
		}
	}
	order := slices.Clone(w.Items)
	slices.SortStableFunc(order, func(a, b string) int { return clicks[b] - clicks[a] })
	var out []string
	for _, id := range order {
		if !shown[id] && len(out) < n {
			out = append(out, id)
		}
	}
	return IDs(out...)
}
