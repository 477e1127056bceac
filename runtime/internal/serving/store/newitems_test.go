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
	"reflect"
	"testing"
)

func TestNewItems(t *testing.T) {
	cases := map[string]struct {
		opts    StateOptions
		seed    []ItemTime
		batches [][]Event
		want    []ItemTime
	}{
		"none published": {
			batches: [][]Event{{ev(Click, "u", "i", "", 1), ev(Follow, "u", "", "a", 2)}},
		},
		"in the order applied, not by time": {
			batches: [][]Event{
				{ev(NewItem, "", "n2", "a", 5), ev(Click, "u", "n2", "", 6)},
				{ev(NewItem, "", "n1", "b", 3)},
			},
			want: []ItemTime{it("n2", "a", 5), it("n1", "b", 3)},
		},
		"a republished item keeps its first publication": {
			batches: [][]Event{
				{ev(NewItem, "", "n1", "a", 1), ev(NewItem, "", "n2", "a", 2)},
				{ev(NewItem, "", "n1", "b", 9)},
			},
			want: []ItemTime{it("n1", "a", 1), it("n2", "a", 2)},
		},
		"seeded catalog items are not publications": {
			seed:    []ItemTime{it("c1", "a", 1)},
			batches: [][]Event{{ev(NewItem, "", "n1", "a", 2)}},
			want:    []ItemTime{it("n1", "a", 2)},
		},
		"IDs with separators survive": {
			batches: [][]Event{{ev(NewItem, "", "i|1|x", "a|2", 1)}},
			want:    []ItemTime{it("i|1|x", "a|2", 1)},
		},
		"only the most recent are kept": {
			opts: StateOptions{NewItems: 2},
			batches: [][]Event{
				{ev(NewItem, "", "n1", "a", 1), ev(NewItem, "", "n2", "a", 2)},
				{ev(NewItem, "", "n3", "a", 3)},
			},
			want: []ItemTime{it("n2", "a", 2), it("n3", "a", 3)},
		},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for name, tc := range cases {
				t.Run(name, func(t *testing.T) {
					ctx := context.Background()
					s := b.open(t, tc.opts)
					if tc.seed != nil {
						if err := s.(Seeder).Seed(ctx, tc.seed); err != nil {
							t.Fatal(err)
						}
					}
					for i, batch := range tc.batches {
						if err := s.Apply(ctx, batch); err != nil {
							t.Fatalf("Apply batch %d: %v", i, err)
						}
					}
					if b.replay != nil {
						s = b.replay(t, s, tc.opts)
					}
					got, err := s.(NewItemsReader).NewItems(ctx)
					if err != nil {
						t.Fatalf("NewItems: %v", err)
					}
					if !equalItemTimes(got, tc.want) {
						t.Errorf("NewItems = %v, want %v", got, tc.want)
					}
				})
			}
		})
	}
}

func TestMemoryNewItemsStayBounded(t *testing.T) {
	st := newState(mustDefaults(t, StateOptions{NewItems: 8}))
	for i := 0; i < 1000; i++ {
		st.apply([]Event{ev(NewItem, "", "n"+itoa(i), "a", float64(i))})
		if n := len(st.newItems); n > 9 {
			t.Fatalf("after %d publications %d are held, want at most 9", i+1, n)
		}
		if len(st.newIDs) != len(st.newItems) {
			t.Fatalf("after %d publications the index holds %d items and the list %d", i+1, len(st.newIDs), len(st.newItems))
		}
	}
	got := st.publishedItems()
	if len(got) != 8 || got[0].Item != "n992" || got[7].Item != "n999" {
		t.Errorf("publishedItems = %v, want n992..n999", got)
	}
}

func mustDefaults(t *testing.T, o StateOptions) StateOptions {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestRisks: integrity events set an item's risk, the last one wins, a
// new_item may carry one; every backend keeps them (the Memory store
// through a replay of its log).
func TestRisks(t *testing.T) {
	integrity := func(item string, risk float64, s float64) Event {
		e := ev(Integrity, "", item, "", s)
		e.Risk = risk
		return e
	}
	published := ev(NewItem, "", "n1", "a", 1)
	published.Risk = 0.4
	republished := ev(NewItem, "", "n2", "a", 7)
	republished.Risk = 0.3 // a retry does not undo the integrity event
	batches := [][]Event{
		{published, ev(NewItem, "", "n2", "a", 2), integrity("c1", 0.7, 3)},
		{integrity("c1", 1, 4), ev(Click, "u", "c1", "", 5), integrity("n2", 0.2, 6)},
		{republished},
	}
	want := map[string]float64{"n1": 0.4, "c1": 1, "n2": 0.2}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			s := b.open(t, StateOptions{})
			for i, batch := range batches {
				if err := s.Apply(ctx, batch); err != nil {
					t.Fatalf("Apply batch %d: %v", i, err)
				}
			}
			if b.replay != nil {
				s = b.replay(t, s, StateOptions{})
			}
			got, err := s.(RiskReader).Risks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Risks = %v, want %v", got, want)
			}
			if users, err := s.Follows(ctx, ""); err != nil || len(users) != 0 {
				t.Errorf("an integrity event made a user with no id: %v %v", users, err)
			}
		})
	}
}
