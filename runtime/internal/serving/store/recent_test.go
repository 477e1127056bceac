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
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// RecentByAuthors keeps only the newest items as it reads; it must give
// what taking every author's items, sorting them newest first (ties by id)
// and cutting the list would give.
func TestRecentByAuthorsMatchesSortingEverything(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	m := openMemory(t, t.TempDir(), MemoryOptions{})
	var all []ItemTime
	var events []Event
	for a := range 12 {
		author := fmt.Sprintf("au-%d", a)
		for j := range rng.IntN(60) {
			// Few distinct times, so that ties between and within authors abound.
			it := ItemTime{Item: fmt.Sprintf("it-%d-%d", a, j), Author: author, Time: at(float64(rng.IntN(40)))}
			all = append(all, it)
			events = append(events, Event{Type: NewItem, Item: it.Item, Author: it.Author, Time: it.Time})
		}
	}
	if err := m.Apply(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	var buf []ItemTime
	for q := range 300 {
		authors := make([]string, 1+rng.IntN(6))
		for i := range authors {
			authors[i] = fmt.Sprintf("au-%d", rng.IntN(14)) // some unknown, some twice
		}
		since := time.Time{}
		if rng.IntN(2) == 0 {
			since = at(float64(rng.IntN(40)))
		}
		limit := rng.IntN(50)
		var want []ItemTime
		for _, it := range all {
			if slices.Contains(authors, it.Author) && !it.Time.Before(since) {
				want = append(want, it)
			}
		}
		slices.SortFunc(want, lessItemTime)
		want = want[:min(len(want), limit)]
		// The buffer of the query before, whose items the result overwrites.
		got, err := m.RecentByAuthors(context.Background(), authors, since, limit, buf)
		if err != nil {
			t.Fatal(err)
		}
		same := func(a, b ItemTime) bool { return a.Item == b.Item && a.Author == b.Author && a.Time.Equal(b.Time) }
		if !slices.EqualFunc(got, want, same) {
			t.Fatalf("query %d: RecentByAuthors(%v, %v, %d) =\n%v\nwant\n%v", q, authors, since, limit, got, want)
		}
		buf = got
	}
}

// TestRecentByAuthorsAcrossDecades covers items further apart in time than
// the sort's integer keys reach (34 years), ties included.
func TestRecentByAuthorsAcrossDecades(t *testing.T) {
	m := openMemory(t, t.TempDir(), MemoryOptions{})
	old := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []Event{
		{Type: NewItem, Item: "b-old", Author: "a", Time: old},
		{Type: NewItem, Item: "a-old", Author: "b", Time: old},
		{Type: NewItem, Item: "new", Author: "a", Time: now},
		{Type: NewItem, Item: "mid", Author: "b", Time: now.Add(-time.Hour)},
	}
	if err := m.Apply(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	got, err := m.RecentByAuthors(context.Background(), []string{"a", "b"}, time.Time{}, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range got {
		ids = append(ids, it.Item)
	}
	if want := []string{"new", "mid", "a-old", "b-old"}; !slices.Equal(ids, want) {
		t.Errorf("RecentByAuthors = %v, want %v", ids, want)
	}
}

// TestRedatedItemsKeepTheirPlace: the authors' lists name items by their
// place in the store's item arena; an item dated again (a repeated
// new_item, a seed after replay) keeps its place, so that dating items
// again and again does not grow the arena, and the lists read back the
// newest dates.
func TestRedatedItemsKeepTheirPlace(t *testing.T) {
	st := newState(mustDefaults(t, StateOptions{}))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for round := range 50 {
		for i := range 20 {
			st.addAuthorItem(ItemTime{Item: fmt.Sprintf("item-%d", i), Author: fmt.Sprintf("a%d", i%3), Time: t0.Add(time.Duration(round*20+i) * time.Minute)})
		}
		if round == 0 {
			continue
		}
		st.itemMu.Lock()
		loc := st.itemIDs.Add("probe")
		st.itemMu.Unlock()
		// The probe lands right after the 20 ids and the probes before it.
		if off := int(loc>>16) & 0xffff; off != 20*len("item-1x")-10*1+(round-1)*len("probe") {
			t.Fatalf("round %d: the arena's next free byte is %d: items dated again were stored again", round, off)
		}
	}
	got := st.recentByAuthors([]string{"a0", "a1", "a2"}, time.Time{}, 100, nil)
	if len(got) != 20 || got[0].Item != "item-19" || !got[0].Time.Equal(t0.Add(999*time.Minute)) {
		t.Errorf("recentByAuthors = %d items, first %+v; want 20, item-19 at minute 999", len(got), got[0])
	}
}
