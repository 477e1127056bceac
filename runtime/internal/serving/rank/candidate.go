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

package rank

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
)

// MaxSources is the number of distinct sources a SourceSet can record.
const MaxSources = 32

// SourceSet records which candidate sources produced an item: bit i stands
// for the i-th source of the live retrieval config.
type SourceSet uint32

// Add records source i. It panics if i is outside [0, MaxSources).
func (s *SourceSet) Add(i int) {
	if i < 0 || i >= MaxSources {
		panic(fmt.Sprintf("rank: source index %d outside [0, %d)", i, MaxSources))
	}
	*s |= 1 << uint(i)
}

// Has reports whether source i produced the item.
func (s SourceSet) Has(i int) bool {
	return i >= 0 && i < MaxSources && s&(1<<uint(i)) != 0
}

// Candidate is one item on its way through the funnel. It is a flat value
// with no pointers of its own beyond the strings taken from the catalog and
// the Probs window, so a []Candidate is reused across requests and copied
// cheaply when reordered.
type Candidate struct {
	// Item is the catalog ordinal of the item.
	Item uint32
	// ID is the item's catalog id; it breaks ties between equal values.
	ID string
	// Author is the catalog id of the item's author. The frontend sets it
	// for the candidates the rerank rules see, after the ranker stages;
	// rankers read the catalog.
	Author string
	// Risk is the item's integrity risk, the probability in [0, 1] that it
	// breaks policy.
	Risk float32
	// Sources records which retrieval sources produced the item.
	Sources SourceSet
	// First is the first-stage score.
	First float32
	// Retrieval is the retrieval model's score of the item for the user
	// (the second stage's two_tower_score input), when the second stage
	// reads it; the value may weigh it (RetrievalWeight).
	Retrieval float32
	// Probs holds the second-stage probability of each model head, in the
	// model's head order; it is a window into the request's batch buffer and
	// must not be kept beyond the request.
	Probs []float32
	// Value is the score a stage ranks by: the first-stage score after the
	// first stage, Σ w·P after the second, adjusted by rerank rules after.
	Value float32
}

// Compare orders candidates best first: a higher Value ranks first, a NaN
// Value ranks after every number, and equal values are ordered by ID, then by
// Item, so the order is total and the same on every replica. It returns a
// negative number when a ranks before b, a positive one when after, and zero
// only for the same item.
func Compare(a, b *Candidate) int {
	av, bv := a.Value, b.Value
	if av != bv {
		an, bn := isNaN(av), isNaN(bv)
		switch {
		case an && bn:
			// Both NaN: fall through to the tie-breaks.
		case an:
			return 1
		case bn:
			return -1
		case av > bv:
			return -1
		default:
			return 1
		}
	}
	if c := cmp.Compare(a.ID, b.ID); c != 0 {
		return c
	}
	return cmp.Compare(a.Item, b.Item)
}

func isNaN(x float32) bool { return x != x }

// TopK moves the k best candidates, by Compare, to the front of cands in
// order, best first, and returns cands[:k]; the others are left after them in
// no particular order. A k larger than len(cands) keeps them all, sorted; a
// k below one keeps none. TopK works in O(n log k) and allocates nothing
// once its pooled scratch space has grown to k.
//
// The heap holds the candidates' indices rather than the candidates, which
// are nearly a hundred bytes each: a sift moves four bytes, not three
// copies of a candidate, and each candidate kept is moved once at the end.
func TopK(cands []Candidate, k int) []Candidate {
	if k <= 0 {
		return cands[:0]
	}
	k = min(k, len(cands))
	sc := topKPool.Get().(*topKScratch)
	defer topKPool.Put(sc)
	// h is a heap of indices with the worst kept candidate at its root.
	h := slices.Grow(sc.idx[:0], k)[:k]
	for i := range h {
		h[i] = int32(i)
	}
	for i := k/2 - 1; i >= 0; i-- {
		siftDown(cands, h, i)
	}
	for i := k; i < len(cands); i++ {
		if Compare(&cands[i], &cands[h[0]]) < 0 {
			h[0] = int32(i)
			siftDown(cands, h, 0)
		}
	}
	// Pop the worst to the back until the heap is empty: best first.
	for n := k - 1; n > 0; n-- {
		h[0], h[n] = h[n], h[0]
		siftDown(cands, h[:n], 0)
	}
	// Gather the kept in order, move the candidates of cands[:k] that are
	// not kept to the places past k that kept ones leave, and put the kept
	// in front.
	tmp := slices.Grow(sc.tmp[:0], k)[:k]
	kept := slices.Grow(sc.kept[:0], k)[:k]
	clear(kept)
	for i, j := range h {
		tmp[i] = cands[j]
		if int(j) < k {
			kept[j] = true
		}
	}
	free := 0 // next place in cands[:k] not kept
	for _, j := range h {
		if int(j) < k {
			continue
		}
		for kept[free] {
			free++
		}
		cands[j] = cands[free]
		free++
	}
	copy(cands, tmp)
	clear(tmp) // drop the strings and Probs the pool would keep alive
	sc.idx, sc.tmp, sc.kept = h, tmp, kept
	return cands[:k]
}

// topKScratch is the scratch space of one TopK.
type topKScratch struct {
	idx  []int32
	tmp  []Candidate
	kept []bool
}

var topKPool = sync.Pool{New: func() any { return new(topKScratch) }}

// Sort orders all of cands best first by Compare, in place, allocating
// nothing.
func Sort(cands []Candidate) { TopK(cands, len(cands)) }

// siftDown restores the heap of indices into cands below i, where a parent
// ranks after (is worse than) its children.
func siftDown(cands []Candidate, h []int32, i int) {
	n := len(h)
	for {
		worst := i
		l, r := 2*i+1, 2*i+2
		if l < n && Compare(&cands[h[l]], &cands[h[worst]]) > 0 {
			worst = l
		}
		if r < n && Compare(&cands[h[r]], &cands[h[worst]]) > 0 {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}
