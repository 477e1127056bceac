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

package quality

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
)

func TestSplitLogFollowsRectrainsDefinitions(t *testing.T) {
	ev, t0 := qualitytest.Ev, qualitytest.T0
	const (
		imp   = dataset.Impression
		click = dataset.Click
	)
	// The log spans 0..100 s (the last row names an item outside the
	// catalog, which rectrain leaves out), so the split is at 90 s.
	events := []dataset.Event{
		ev(0, "u1", imp, "i1"),
		ev(1, "u1", click, "i1"), // i1: a positive train impression
		ev(2, "u2", imp, "i1"),
		ev(3, "u2", dataset.Like, "i1"), // i1: another
		ev(4, "u2", imp, "i2"),
		ev(5, "u2", dataset.SeeLess, "i2"), // not a positive engagement
		ev(6, "u3", imp, "i3"),
		ev(50, "u3", imp, "x9"),   // outside the catalog: not seen
		ev(89.5, "u1", imp, "i2"), // second 89: train
		ev(90, "u1", click, "i2"), // labels u1's train impression of i2
		ev(90, "u1", imp, "i4"),
		ev(91, "u1", dataset.Like, "i4"), // u1: i4 relevant
		ev(92, "u2", click, "i5"),        // no impression: counts for nothing
		ev(93, "u2", imp, "i6"),
		ev(94, "u2", dataset.SeeLess, "i6"), // not positive
		ev(95, "u3", imp, "i3"),
		ev(96, "u3", dataset.Comment, "i3"), // shown to u3 before the split
		ev(97, "u3", imp, "i7"),
		ev(98, "u3", dataset.Share, "i7"), // u3: i7 relevant
		ev(98, "u4", imp, "i8"),
		ev(99, "u4", click, "i8"),
		ev(99, "u4", dataset.Like, "i8"), // u4: i8 relevant, once
		ev(99, "u4", imp, "x9"),
		ev(99, "u4", click, "x9"), // outside the catalog
		ev(100, "u5", dataset.Follow, "a1"),
		ev(120, "u6", imp, "x9"), // outside the catalog: not the log's end
	}
	dir := qualitytest.WriteWorld(t, nil, events)
	qualitytest.WriteCatalog(t, dir, []string{"i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"})
	l, err := loadWorldLog(dir, dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := splitLog(l, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(sp.split, 0).UTC(), t0.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("split at %s, want %s", got, want)
	}
	if sp.trainRows != 9 {
		t.Errorf("%d train rows, want the 9 before 90 s", sp.trainRows)
	}
	ids := func(items []int32) []string {
		var out []string
		for _, i := range items {
			out = append(out, l.items.ids[i])
		}
		slices.Sort(out)
		return out
	}
	relevant := map[string][]string{}
	for u, items := range sp.relevant {
		relevant[l.users.ids[u]] = ids(slices.Collect(maps.Keys(items)))
	}
	wantRelevant := map[string][]string{"u1": {"i4"}, "u3": {"i7"}, "u4": {"i8"}}
	if fmt.Sprint(relevant) != fmt.Sprint(wantRelevant) {
		t.Errorf("relevant items %v, want %v", relevant, wantRelevant)
	}
	var users []string
	for _, u := range sp.testUsers(l, 0, 1) {
		users = append(users, l.users.ids[u])
	}
	if want := []string{"u1", "u3", "u4"}; !slices.Equal(users, want) {
		t.Errorf("test users %v, want %v", users, want)
	}
	seen := map[string][]string{}
	for u, items := range sp.seen {
		if len(items) > 0 {
			seen[l.users.ids[u]] = ids(items)
		}
	}
	wantSeen := map[string][]string{"u1": {"i1", "i2"}, "u2": {"i1", "i2"}, "u3": {"i3"}}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Errorf("items shown before the split %v, want %v", seen, wantSeen)
	}
	// i2's train impression counts: rectrain labels the latest impression,
	// and the click at 90 s follows u1's impression at 89.5 s.
	if want := []int{2, 1, 0, 0, 0, 0, 0, 0}; !slices.Equal(sp.popularity, want) {
		t.Errorf("popularity %v, want %v", sp.popularity, want)
	}
}

func TestSplitSecond(t *testing.T) {
	ev, t0 := qualitytest.Ev, qualitytest.T0
	events := []dataset.Event{ev(0, "u1", dataset.Impression, "i1"), ev(100.9, "u1", dataset.Impression, "i1")}
	l := &Log{catalog: 1}
	l.items.of("i1")
	for i := range events {
		l.add(&events[i])
	}
	for name, tc := range map[string]struct {
		frac float64
		want int64
	}{
		"a tenth":                      {0.1, 90},
		"a quarter":                    {0.25, 75},
		"12.5 s rounds away from zero": {0.125, 87},
		"a tiny fraction rounds to 0":  {0.001, 100},
	} {
		t.Run(name, func(t *testing.T) {
			sp, err := splitLog(l, tc.frac)
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.split - t0.Unix(); got != tc.want {
				t.Errorf("split at %d s, want %d s (the span is 0..100 s in whole seconds)", got, tc.want)
			}
		})
	}
}
