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
	"cmp"
	"math/rand/v2"
	"slices"

	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

// maskRepeats returns list with every repeat of an item replaced by -1,
// which is never relevant, so that an item counts at its first rank only
// and a list repeating a relevant item gains nothing. It copies list only
// when there is a repeat.
func maskRepeats(list []int32) []int32 {
	var out []int32
	for r, i := range list {
		if i >= 0 && slices.Contains(list[:r], i) {
			if out == nil {
				out = slices.Clone(list)
			}
			out[r] = -1
		}
	}
	if out == nil {
		return list
	}
	return out
}

// precisionAt is the fraction of k, not of the list's length, that is
// relevant: a list shorter than k counts its missing places as misses.
func precisionAt(list []int32, relevant map[int32]bool, k int) float64 {
	hits := 0
	for _, i := range list[:min(k, len(list))] {
		if relevant[i] {
			hits++
		}
	}
	return float64(hits) / float64(k)
}

// Metrics are a system's figures, averaged over the test users but
// for coverage, which is over all of them at once. An item counts at its
// first rank in a list only.
type Metrics struct {
	// NDCG10 is rectrain.NDCGAt 10: binary relevance, the ideal DCG over
	// min(relevant items, 10) places.
	NDCG10 float64 `json:"ndcg10"`
	// Recall10 and Recall100 are the fractions of the user's relevant
	// items in the first 10 and 100 (rectrain.RecallAt).
	Recall10  float64 `json:"recall10"`
	Recall100 float64 `json:"recall100"`
	// Precision10 is the fraction of the first 10 places that hold a
	// relevant item; the missing places of a shorter list count as misses.
	Precision10 float64 `json:"precision10"`
	// Coverage10 is the number of distinct items in the users' first 10,
	// divided by the catalog's size.
	Coverage10 float64 `json:"coverage10"`
	// MeanLength is the mean number of items of a list.
	MeanLength float64 `json:"meanLength"`
}

// metricSum accumulates one system's lists.
type metricSum struct {
	sum   Metrics
	users int
	top   map[int32]struct{} // items in some user's first 10
}

// add scores a user's list against the user's relevant items with
// rectrain's metrics, rectrain.NDCGAt (binary relevance, the ideal DCG over
// min(|relevant|, 10) places) and rectrain.RecallAt, and precision@10.
func (m *metricSum) add(list []int32, relevant map[int32]bool) {
	list = maskRepeats(list)
	m.sum.NDCG10 += rectrain.NDCGAt(list, relevant, rectrain.NDCGK)
	m.sum.Recall10 += rectrain.RecallAt(list, relevant, rectrain.NDCGK)
	m.sum.Recall100 += rectrain.RecallAt(list, relevant, rectrain.RecallK)
	m.sum.Precision10 += precisionAt(list, relevant, rectrain.NDCGK)
	m.sum.MeanLength += float64(len(list))
	m.users++
	if m.top == nil {
		m.top = map[int32]struct{}{}
	}
	for _, i := range list[:min(rectrain.NDCGK, len(list))] {
		if i >= 0 {
			m.top[i] = struct{}{}
		}
	}
}

// result averages the sums; catalog is the catalog's size.
func (m *metricSum) result(catalog int) Metrics {
	f := 1 / float64(max(m.users, 1))
	return Metrics{
		NDCG10:      m.sum.NDCG10 * f,
		Recall10:    m.sum.Recall10 * f,
		Recall100:   m.sum.Recall100 * f,
		Precision10: m.sum.Precision10 * f,
		Coverage10:  float64(len(m.top)) / float64(max(catalog, 1)),
		MeanLength:  m.sum.MeanLength * f,
	}
}

// popularOrder returns the catalog's items by popularity, most popular
// first, ties in catalog order (as rectrain's top-k breaks them).
func popularOrder(popularity []int) []int32 {
	order := make([]int32, len(popularity))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(popularity[b], popularity[a]) })
	return order
}

// popularList appends to dst the first k items of order not in seen
// (sorted), as recserve's seen filter would leave them.
func popularList(dst, order []int32, seen []int32, k int) []int32 {
	for _, i := range order {
		if len(dst) == k {
			break
		}
		if _, shown := slices.BinarySearch(seen, i); !shown {
			dst = append(dst, i)
		}
	}
	return dst
}

// newRand is a PCG generator; every stream of a seed is independent.
func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// randomList draws k distinct catalog items (fewer when fewer are left),
// uniformly among the catalog's items not in seen (sorted).
func randomList(rng *rand.Rand, catalog int, seen []int32, k int) []int32 {
	free := catalog - len(seen)
	n := min(k, free)
	if n <= 0 {
		return nil
	}
	if 2*free <= catalog || free <= 2*n {
		// Few items to draw from: shuffle them, at a cost bounded by the
		// user's history or by k.
		pool := make([]int32, 0, free)
		j := 0
		for i := range int32(catalog) {
			for j < len(seen) && seen[j] < i {
				j++
			}
			if j == len(seen) || seen[j] != i {
				pool = append(pool, i)
			}
		}
		for a := range n {
			b := a + rng.IntN(len(pool)-a)
			pool[a], pool[b] = pool[b], pool[a]
		}
		return pool[:n]
	}
	// Most of the catalog is free: draw and redraw, each draw succeeding
	// with probability above 1/4.
	out := make([]int32, 0, n)
	for len(out) < n {
		i := int32(rng.IntN(catalog))
		if _, shown := slices.BinarySearch(seen, i); shown || slices.Contains(out, i) {
			continue
		}
		out = append(out, i)
	}
	return out
}
