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

package ann

import (
	"fmt"
	"math"
	"slices"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// maxBeam1 bounds the beam of a search on layer 1. On a million clustered
// items at k = ef = 800, a beam of 128 rather than 400 finds the same top 100
// and all but 0.06% of the top 800, for 30% less CPU.
const maxBeam1 = 128

// Search appends to dst the k items scoring highest against query, best
// first, and returns the extended slice. ef is the size of the candidate list
// (the recall/latency knob); ef <= 0 takes Options.EfSearch, and ef is raised
// to k if smaller. Fewer than k results are returned when the index holds
// fewer items. With a dst of sufficient capacity, Search allocates nothing.
// It is safe to call while other goroutines add items.
func (ix *Index) Search(query []float32, k, ef int, dst []Result) ([]Result, error) {
	if ef <= 0 {
		ef = ix.efS
	}
	return ix.search(query, k, max(ef, k), false, dst)
}

// SearchBeam appends to dst the k best of all the items that a search with
// a candidate list of beam nodes scores on its way, best first, and returns
// the extended slice. A beam of at least k, or <= 0, makes it Search(query,
// k, beam, dst). A smaller beam trades the results past the first beam or
// so for time: such a search scores every neighbour of the nodes it
// expands, several times beam items, and keeps the best k of them rather
// than only the best beam; where that is fewer than k, it searches again
// keeping k. Like Search, it allocates nothing once warm.
func (ix *Index) SearchBeam(query []float32, k, beam int, dst []Result) ([]Result, error) {
	if beam <= 0 || beam >= k {
		return ix.Search(query, k, beam, dst)
	}
	return ix.search(query, k, beam, true, dst)
}

// search is Search with a candidate list of ef nodes; wide keeps the best k
// of every node scored on layer 0 rather than of the ef found.
func (ix *Index) search(query []float32, k, ef int, wide bool, dst []Result) ([]Result, error) {
	if len(query) != ix.dim {
		return dst, fmt.Errorf("failed to search: %w: got %d, want %d", ErrDimension, len(query), ix.dim)
	}
	if k <= 0 {
		return dst, nil
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	e := ix.entry.Load()
	if e == 0 {
		return dst, nil
	}
	s := ix.getSearcher()
	defer ix.searchers.Put(s)
	q := query
	if ix.metric == Cosine {
		s.query = append(s.query[:0], query...)
		normalize(s.query)
		q = s.query
	}
	ep, top := unpackEntry(e)
	epScore := vec.DotHalf(q, ix.vec(ep))
	for l := top; l > 1; l-- {
		ep, epScore = ix.greedy(q, 0, ep, epScore, l)
	}
	s.eps = append(s.eps[:0], cand{epScore, ep})
	if top >= 1 {
		// A beam of half the width on layer 1, rather than a greedy step,
		// hands layer 0 entries in several clusters, so that a query whose
		// best items sit in a cluster the greedy walk passed by still
		// reaches them. On clustered embeddings it removes the queries that
		// would otherwise find almost none of their true top k. Past
		// maxBeam1 entries a wider beam costs nearly as much as the layer 0
		// search it feeds and finds almost nothing more.
		ix.searchLayer(s, q, 0, min(max(ef/2, 16), maxBeam1), 1)
		s.eps = append(s.eps[:0], s.found...)
	}
	s.collect, s.scored = wide, s.scored[:0]
	ix.searchLayer(s, q, 0, ef, 0)
	s.collect = false
	if wide && len(s.scored) < k && len(s.scored) < ix.Len() {
		// A beam too narrow for k scored fewer items than asked: search
		// again, keeping k.
		wide = false
		ix.searchLayer(s, q, 0, k, 0)
	}
	// Nodes become external ids in a pass of their own, whose scattered
	// loads overlap.
	var best []cand
	if wide {
		s.sorted = slices.Grow(s.sorted[:0], len(s.scored))
		best = sortDesc(s.scored, s.sorted[:len(s.scored)])
	} else {
		best = s.sortFound()
	}
	best = best[:min(k, len(best))]
	start := len(dst)
	dst = slices.Grow(dst, len(best))
	for _, c := range best {
		dst = append(dst, Result{ID: c.node, Score: c.score})
	}
	for i := start; i < len(dst); i++ {
		dst[i].ID = ix.ext(dst[i].ID)
	}
	return dst, nil
}

// Exact appends to dst the k vectors of vecs scoring highest against query
// by brute force, best first, and returns the extended slice. vecs holds
// the vectors back to back, dim floats each; ids names them (nil for their
// ordinals). For Cosine, neither query nor vecs need be normalised. It is the
// reference that Search's recall is measured against.
func Exact(metric Metric, dim int, vecs []float32, ids []uint32, query []float32, k int, dst []Result) []Result {
	if len(query) != dim || k <= 0 {
		return dst
	}
	var qnorm float32 = 1
	if metric == Cosine {
		qnorm = float32(math.Sqrt(float64(vec.Dot(query, query))))
	}
	n := len(vecs) / dim
	start := len(dst)
	heap := make([]cand, 0, min(k, n)) // min-heap of the best k so far
	for i := 0; i < n; i++ {
		v := vecs[i*dim : (i+1)*dim]
		sc := vec.Dot(query, v)
		if metric == Cosine {
			if norm := float32(math.Sqrt(float64(vec.Dot(v, v)))) * qnorm; norm > 0 {
				sc /= norm
			} else {
				sc = 0
			}
		}
		if len(heap) < k {
			heap = pushMin(heap, cand{sc, uint32(i)})
		} else if sc > heap[0].score {
			replaceMin(heap, cand{sc, uint32(i)})
		}
	}
	m := len(heap)
	dst = slices.Grow(dst, m)[:start+m]
	for i := m - 1; i >= 0; i-- {
		var c cand
		heap, c = popMin(heap)
		id := c.node
		if ids != nil {
			id = ids[c.node]
		}
		dst[start+i] = Result{ID: id, Score: c.score}
	}
	return dst
}
