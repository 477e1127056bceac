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
	"math"
	"slices"
	"testing"
)

func TestRankingMetrics(t *testing.T) {
	set := func(items ...int32) map[int32]bool {
		m := map[int32]bool{}
		for _, i := range items {
			m[i] = true
		}
		return m
	}
	seq := func(from, to int32) []int32 {
		var out []int32
		for i := from; i <= to; i++ {
			out = append(out, i)
		}
		return out
	}
	// The discounts of ranks 1, 2 and 3 are 1, 1/log2(3) = 0.63093 and 1/2.
	for name, tc := range map[string]struct {
		list                                     []int32
		relevant                                 map[int32]bool
		ndcg10, recall10, recall100, precision10 float64
	}{
		"the only relevant item first": {list: []int32{1, 2, 3}, relevant: set(1),
			ndcg10: 1, recall10: 1, recall100: 1, precision10: 0.1},
		"the only relevant item second": {list: []int32{2, 1, 3}, relevant: set(1),
			ndcg10: 0.63093, recall10: 1, recall100: 1, precision10: 0.1},
		"two relevant items first and third": {list: []int32{1, 2, 3}, relevant: set(1, 3),
			// (1 + 1/2) / (1 + 0.63093)
			ndcg10: 0.91972, recall10: 1, recall100: 1, precision10: 0.2},
		"one of two relevant items, third": {list: []int32{4, 5, 3}, relevant: set(1, 3),
			// (1/2) / (1 + 0.63093)
			ndcg10: 0.30657, recall10: 0.5, recall100: 0.5, precision10: 0.1},
		"a repeated hit counts once": {list: []int32{1, 1, 1}, relevant: set(1, 2),
			ndcg10: 1 / 1.63093, recall10: 0.5, recall100: 0.5, precision10: 0.1},
		"more relevant items than places": {list: seq(1, 10), relevant: set(seq(1, 12)...),
			ndcg10: 1, recall10: 10.0 / 12, recall100: 10.0 / 12, precision10: 1},
		"a hit past the tenth place counts for recall@100 only": {list: append(seq(20, 29), 1), relevant: set(1),
			ndcg10: 0, recall10: 0, recall100: 1, precision10: 0},
		"no hit":            {list: []int32{4, 5}, relevant: set(1)},
		"an empty list":     {list: nil, relevant: set(1)},
		"no relevant items": {list: []int32{1, 2}, relevant: set()},
		"unknown items (-1) never hit": {list: []int32{-1, -1, 1}, relevant: set(1),
			ndcg10: 0.5, recall10: 1, recall100: 1, precision10: 0.1},
	} {
		t.Run(name, func(t *testing.T) {
			var sum metricSum
			sum.add(tc.list, tc.relevant)
			got := sum.result(100)
			for _, m := range []struct {
				name      string
				got, want float64
			}{
				{"NDCG@10", got.NDCG10, tc.ndcg10},
				{"recall@10", got.Recall10, tc.recall10},
				{"recall@100", got.Recall100, tc.recall100},
				{"precision@10", got.Precision10, tc.precision10},
			} {
				if math.Abs(m.got-m.want) > 1e-4 {
					t.Errorf("%s = %.5f, want %.5f", m.name, m.got, m.want)
				}
			}
		})
	}
}

func TestMetricSumAveragesAndCoverage(t *testing.T) {
	var m metricSum
	m.add([]int32{1, 2}, map[int32]bool{1: true}) // NDCG 1, length 2
	m.add([]int32{3, 2, 4, 5}, map[int32]bool{9: true})
	got := m.result(10)
	want := Metrics{NDCG10: 0.5, Recall10: 0.5, Recall100: 0.5, Precision10: 0.05, Coverage10: 0.5, MeanLength: 3}
	if got != want {
		t.Errorf("result %+v, want %+v (coverage: items 1..5 of 10)", got, want)
	}
}

func TestPopularListLeavesOutSeenItemsAndBreaksTiesInCatalogOrder(t *testing.T) {
	order := popularOrder([]int{0, 3, 1, 3, 0, 2})
	if want := []int32{1, 3, 5, 2, 0, 4}; !slices.Equal(order, want) {
		t.Fatalf("popularOrder = %v, want %v", order, want)
	}
	for name, tc := range map[string]struct {
		seen []int32
		k    int
		want []int32
	}{
		"nothing seen":               {k: 3, want: []int32{1, 3, 5}},
		"the most popular seen":      {seen: []int32{1, 5}, k: 3, want: []int32{3, 2, 0}},
		"fewer unseen items than k":  {seen: []int32{0, 1, 2, 3}, k: 5, want: []int32{5, 4}},
		"every item seen":            {seen: []int32{0, 1, 2, 3, 4, 5}, k: 2, want: nil},
		"k larger than the catalog":  {k: 10, want: order},
		"seen items are not counted": {seen: []int32{3}, k: 1, want: []int32{1}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := popularList(nil, order, tc.seen, tc.k); !slices.Equal(got, tc.want) {
				t.Errorf("popularList = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRandomList(t *testing.T) {
	seq := func(n int32) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i)
		}
		return out
	}
	for name, tc := range map[string]struct {
		catalog int
		seen    []int32
		k, want int
	}{
		"most of a large catalog free": {catalog: 1000, seen: []int32{3, 500, 999}, k: 100, want: 100},
		"most of the catalog seen":     {catalog: 1000, seen: seq(700), k: 100, want: 100},
		"fewer free items than k":      {catalog: 20, seen: []int32{0, 19}, k: 100, want: 18},
		"every item seen":              {catalog: 5, seen: seq(5), k: 10, want: 0},
	} {
		t.Run(name, func(t *testing.T) {
			got := randomList(newRand(7, 1), tc.catalog, tc.seen, tc.k)
			if len(got) != tc.want {
				t.Fatalf("%d items, want %d", len(got), tc.want)
			}
			sorted := slices.Sorted(slices.Values(got))
			if len(slices.Compact(sorted)) != len(got) {
				t.Errorf("repeated items in %v", got)
			}
			for _, i := range got {
				if _, shown := slices.BinarySearch(tc.seen, i); shown || i < 0 || int(i) >= tc.catalog {
					t.Errorf("item %d is seen or outside the catalog", i)
				}
			}
			if again := randomList(newRand(7, 1), tc.catalog, tc.seen, tc.k); !slices.Equal(got, again) {
				t.Errorf("the same seed drew %v, then %v", got, again)
			}
		})
	}
	if a, b := randomList(newRand(1, 1), 1000, nil, 10), randomList(newRand(2, 1), 1000, nil, 10); slices.Equal(a, b) {
		t.Errorf("seeds 1 and 2 drew the same list %v", a)
	}
	// Uniform over the free items, whether drawn (most items free) or
	// shuffled (most seen): 9000 draws of one item.
	for name, tc := range map[string]struct {
		seen []int32
	}{
		"drawn":    {seen: []int32{0}},
		"shuffled": {seen: seq(6)},
	} {
		t.Run(name, func(t *testing.T) {
			counts := make([]int, 10)
			rng := newRand(3, 3)
			for range 9000 {
				counts[randomList(rng, 10, tc.seen, 1)[0]]++
			}
			free := 10 - len(tc.seen)
			for i, n := range counts {
				want := 9000 / free
				if i < len(tc.seen) {
					want = 0
				}
				if math.Abs(float64(n-want)) > 0.15*float64(want) {
					t.Errorf("item %d drawn %d times of 9000, want about %d", i, n, want)
				}
			}
		})
	}
}
