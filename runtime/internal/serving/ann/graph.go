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
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// cand is a node with its score against the vector being searched for.
type cand struct {
	score float32
	node  uint32
}

// searcher holds the scratch space of one search or insert; searchers are
// pooled so that searching allocates nothing once the pool is warm.
type searcher struct {
	// visited has a bit per node, set once the node is seen; dirty lists
	// the words with a bit set, so that reset clears only those. A bit per
	// node keeps the set of a million-node index in 128 KiB, within the
	// core's cache, where it is probed for every neighbour of every node
	// expanded.
	visited []uint64
	dirty   []uint32
	cands   []cand   // max-heap on score: nodes left to expand
	found   []cand   // min-heap on score: the best ef nodes so far
	sorted  []cand   // scratch space to sort candidates in
	next    []uint32 // unvisited neighbours of the node being expanded
	pending []uint32 // unvisited neighbours of the node expanded before, to score
	// nextRows and pendingRows hold the vectors of next and pending, and
	// scores pending's scores, to prefetch and score each batch in one call.
	nextRows    []*uint16
	pendingRows []*uint16
	scores      []float32
	eps         []cand // entry points of the next searchLayer
	scored      []cand // every node scored on layer 0, while collect is set (SearchBeam)
	collect     bool
	keep        []cand   // neighbours chosen by the heuristic
	layers      [][]cand // per layer, the neighbours chosen for the node being inserted
	query       []float32
	self        []float32 // the vector of the node being inserted, widened
	base        []float32 // the vector that neighbours are chosen against, widened
}

func (ix *Index) getSearcher() *searcher {
	s := ix.searchers.Get().(*searcher)
	if words := (ix.capacity + 63) / 64; len(s.visited) < words {
		s.visited = make([]uint64, words)
		s.dirty = s.dirty[:0]
	}
	return s
}

// reset starts a new visited set.
func (s *searcher) reset() {
	for _, w := range s.dirty {
		s.visited[w] = 0
	}
	s.dirty = s.dirty[:0]
	s.cands = s.cands[:0]
	s.found = s.found[:0]
}

// visit marks node seen and reports whether it was not seen before.
func (s *searcher) visit(node uint32) bool {
	w, bit := node/64, uint64(1)<<(node%64)
	x := s.visited[w]
	if x&bit != 0 {
		return false
	}
	if x == 0 {
		s.dirty = append(s.dirty, w)
	}
	s.visited[w] = x | bit
	return true
}

// offer adds c to the best ef nodes found if it is among them, dropping the
// worst when there are more than ef, and reports whether it was added.
func (s *searcher) offer(c cand, ef int) bool {
	switch {
	case len(s.found) < ef:
		s.found = pushMin(s.found, c)
	case c.score > s.found[0].score:
		replaceMin(s.found, c)
	default:
		return false
	}
	return true
}

// vec returns node's vector as stored, at half precision.
func (ix *Index) vec(node uint32) []uint16 {
	sg, j := ix.seg(node)
	i := j * ix.dim
	return sg.vecs[i : i+ix.dim : i+ix.dim]
}

// row returns the first element of node's vector as stored.
func (ix *Index) row(node uint32) *uint16 {
	sg, j := ix.seg(node)
	return &sg.vecs[j*ix.dim]
}

// widen returns node's vector in float32, in *buf's memory.
func (ix *Index) widen(buf *[]float32, node uint32) []float32 {
	*buf = slices.Grow((*buf)[:0], ix.dim)[:ix.dim]
	vec.DecodeHalf(*buf, ix.vec(node))
	return *buf
}

// augSlot is node's lifted coordinate as a slice, to prefetch.
func (ix *Index) augSlot(node uint32) []float32 {
	sg, j := ix.seg(node)
	return sg.aug[j : j+1]
}

// aug returns node's lifted coordinate (see augment).
func (ix *Index) aug(node uint32) float32 {
	sg, j := ix.seg(node)
	return sg.aug[j]
}

// ext returns node's external id.
func (ix *Index) ext(node uint32) uint32 {
	sg, j := ix.seg(node)
	return sg.ext[j]
}

// lock returns the lock of node's neighbour lists.
func (ix *Index) lock(node uint32) *sync.Mutex {
	sg, j := ix.seg(node)
	return &sg.locks[j]
}

// links returns node's neighbour list on level: a count followed by room
// for the maximum number of ids. Entries are read and written atomically.
func (ix *Index) links(node uint32, level int) []uint32 {
	sg, j := ix.seg(node)
	if level == 0 {
		i := j * (ix.m0 + 1)
		return sg.links0[i : i+ix.m0+1 : i+ix.m0+1]
	}
	i := int(sg.upperAt[j]) + (level-1)*(ix.m+1)
	return sg.upper[i : i+ix.m+1 : i+ix.m+1]
}

// levelOf draws node's top layer from an exponential distribution with mean
// ml, from a hash of the seed and the node so that parallel inserts need not
// share a random source.
func (ix *Index) levelOf(node uint32) int {
	z := ix.seed + uint64(node)*0x9e3779b97f4a7c15 + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 0.5) / (1 << 53) // in (0, 1)
	return min(int(-math.Log(u)*ix.ml), maxLevel)
}

func packEntry(node uint32, level int) uint64 { return uint64(level+1)<<32 | uint64(node) }

func unpackEntry(e uint64) (node uint32, level int) { return uint32(e), int(e>>32) - 1 }

// greedy walks level from ep towards q, one best neighbour at a time.
func (ix *Index) greedy(q []float32, qaug float32, ep uint32, score float32, level int) (uint32, float32) {
	for changed := true; changed; {
		changed = false
		l := ix.links(ep, level)
		n := int(atomic.LoadUint32(&l[0]))
		for i := 1; i <= n; i++ {
			nb := atomic.LoadUint32(&l[i])
			if sc := vec.DotHalf(q, ix.vec(nb)) + qaug*ix.aug(nb); sc > score {
				ep, score, changed = nb, sc, true
			}
		}
	}
	return ep, score
}

// searchLayer runs the HNSW beam search on level from the entries in s.eps
// and leaves the best ef nodes found in s.found, as a min-heap. qaug is the
// lifted coordinate of q (see augment): zero for a query, the node's own for
// an insert.
//
// The search is software-pipelined: each step gathers the unvisited
// neighbours of the best candidate and asks for their vectors, then scores
// the neighbours gathered by the step before, whose vectors have arrived in
// the meantime, so that the search does not stall on memory at every step.
// A node may thus be expanded before the neighbours of the node expanded
// just before it are queued; as the search stops only once nothing is left
// to score, that reorders the work without cutting it short, and recall is
// unchanged.
func (ix *Index) searchLayer(s *searcher, q []float32, qaug float32, ef, level int) {
	s.reset()
	for _, e := range s.eps {
		if !s.visit(e.node) {
			continue
		}
		if s.collect {
			s.scored = append(s.scored, e)
		}
		if s.offer(e, ef) {
			s.cands = pushMax(s.cands, e)
		}
	}
	s.pending, s.pendingRows = s.pending[:0], s.pendingRows[:0]
	for {
		if len(s.cands) == 0 || len(s.found) >= ef && s.cands[0].score < s.found[0].score {
			if len(s.pending) == 0 {
				return
			}
			ix.scorePending(s, q, qaug, ef, level)
			continue
		}
		var c cand
		s.cands, c = popMax(s.cands)
		ix.gather(s, ix.links(c.node, level))
		s.nextRows = slices.Grow(s.nextRows[:0], len(s.next))
		for _, nb := range s.next {
			s.nextRows = append(s.nextRows, ix.row(nb))
		}
		vec.PrefetchRows(s.nextRows, ix.dim)
		if qaug != 0 {
			for _, nb := range s.next {
				vec.Prefetch(ix.augSlot(nb))
			}
		}
		ix.scorePending(s, q, qaug, ef, level)
		s.pending, s.next = s.next, s.pending
		s.pendingRows, s.nextRows = s.nextRows, s.pendingRows
	}
}

// gather sets s.next to the neighbours in the list l that are not yet
// visited, and marks them visited. Whether a neighbour was seen is a coin
// toss to the branch predictor, so the loop has no branch on it: every
// neighbour is written to the end of s.next and kept by advancing the end
// only if it is new, and likewise its visited word to s.dirty only if the
// word had no bit set.
func (ix *Index) gather(s *searcher, l []uint32) {
	n := min(int(atomic.LoadUint32(&l[0])), len(l)-1)
	next := slices.Grow(s.next[:0], n)[:n]
	d := len(s.dirty)
	dirty := slices.Grow(s.dirty, n)[:d+n]
	visited := s.visited
	fresh := 0
	for i := 1; i <= n; i++ {
		nb := atomic.LoadUint32(&l[i])
		w, bit := nb/64, nb%64
		x := visited[w]
		next[fresh] = nb
		dirty[d] = w
		d += int(1 ^ (x|-x)>>63) // 1 if no bit of the word was set
		fresh += int(^x >> bit & 1)
		visited[w] = x | 1<<bit
	}
	s.next, s.dirty = next[:fresh], dirty[:d]
}

// scorePending scores the nodes of s.pending against q and queues those
// among the best ef found so far.
func (ix *Index) scorePending(s *searcher, q []float32, qaug float32, ef, level int) {
	s.scores = slices.Grow(s.scores[:0], len(s.pending))[:len(s.pending)]
	vec.DotHalfRows(q, s.pendingRows, s.scores)
	for i, nb := range s.pending {
		sc := s.scores[i]
		if qaug != 0 {
			sc += qaug * ix.aug(nb)
		}
		if s.collect {
			s.scored = append(s.scored, cand{sc, nb})
		}
		if !s.offer(cand{sc, nb}, ef) {
			continue
		}
		s.cands = pushMax(s.cands, cand{sc, nb})
		// Most nodes queued are expanded later: ask for their
		// neighbour list now, so that it is in cache by then.
		vec.Prefetch(ix.links(nb, level))
	}
	s.pending, s.pendingRows = s.pending[:0], s.pendingRows[:0]
}

// sortFound sorts s.found best first, with s.sorted as scratch space, and
// returns it; the result may share either's memory.
func (s *searcher) sortFound() []cand {
	s.sorted = slices.Grow(s.sorted[:0], len(s.found))
	return sortDesc(s.found, s.sorted[:len(s.found)])
}

// sortDesc sorts c best first and returns it, in c's memory or tmp's, which
// must be as long. It is a radix sort on the scores' bits, a byte at a time,
// skipping the bytes that all scores share: the 800 results of a large search
// sort in a few passes without a branch to mispredict, in a tenth of the time
// that popping them off the heap one by one takes.
func sortDesc(c, tmp []cand) []cand {
	if len(c) < 2 {
		return c
	}
	var counts [4][256]uint32
	for _, x := range c {
		k := vec.DescKey(x.score)
		counts[0][k&0xff]++
		counts[1][k>>8&0xff]++
		counts[2][k>>16&0xff]++
		counts[3][k>>24]++
	}
	src, dst := c, tmp[:len(c)]
	first := vec.DescKey(c[0].score)
	for pass := range counts {
		shift := 8 * pass
		cnt := &counts[pass]
		if cnt[first>>shift&0xff] == uint32(len(c)) {
			continue // every score has this byte
		}
		var sum uint32
		for i, n := range cnt {
			cnt[i] = sum
			sum += n
		}
		for _, x := range src {
			d := vec.DescKey(x.score) >> shift & 0xff
			dst[cnt[d]] = x
			cnt[d]++
		}
		src, dst = dst, src
	}
	return src
}

// selectNeighbors applies the HNSW heuristic to cands, sorted best first by
// their score against a base vector: a candidate is kept only if it scores
// higher with the base than with every candidate already kept, which spreads
// links across directions and keeps clusters connected to each other. At
// most m are kept, into s.keep.
func (ix *Index) selectNeighbors(s *searcher, cands []cand, m int) []cand {
	s.keep = s.keep[:0]
	for _, c := range cands {
		if len(s.keep) >= m {
			break
		}
		v, a := ix.widen(&s.base, c.node), ix.aug(c.node)
		good := true
		for _, k := range s.keep {
			if vec.DotHalf(v, ix.vec(k.node))+a*ix.aug(k.node) > c.score {
				good = false
				break
			}
		}
		if good {
			s.keep = append(s.keep, c)
		}
	}
	return s.keep
}

// insert links node, whose vector is stored, into the graph. ix.mu is held
// shared.
func (ix *Index) insert(s *searcher, node uint32) {
	level := ix.levelOf(node)
	q, qaug := ix.widen(&s.self, node), ix.aug(node)

	e := ix.entry.Load()
	if _, top := unpackEntry(e); e == 0 || level > top {
		// This node may become the entry point: hold epMu for the whole
		// insert, as such nodes are few.
		ix.epMu.Lock()
		defer ix.epMu.Unlock()
		e = ix.entry.Load()
		if e == 0 {
			ix.entry.Store(packEntry(node, level))
			return
		}
		if _, top := unpackEntry(e); level > top {
			defer ix.entry.Store(packEntry(node, level))
		}
	}
	ep, top := unpackEntry(e)
	epScore := vec.DotHalf(q, ix.vec(ep)) + qaug*ix.aug(ep)
	for l := top; l > level; l-- {
		ep, epScore = ix.greedy(q, qaug, ep, epScore, l)
	}
	// Search every layer top-down, then publish the links bottom-up, so that
	// a search reaching this node on a layer always finds it linked on the
	// layers below.
	lmax := min(level, top)
	for len(s.layers) <= lmax {
		s.layers = append(s.layers, nil)
	}
	for l := lmax; l >= 0; l-- {
		s.eps = append(s.eps[:0], cand{epScore, ep})
		ix.searchLayer(s, q, qaug, ix.efC, l)
		sorted := s.sortFound()
		ep, epScore = sorted[0].node, sorted[0].score
		s.layers[l] = append(s.layers[l][:0], ix.selectNeighbors(s, sorted, ix.m)...)
	}
	for l := 0; l <= lmax; l++ {
		keep := s.layers[l]
		ix.lock(node).Lock()
		own := ix.links(node, l)
		for i, k := range keep {
			atomic.StoreUint32(&own[i+1], k.node)
		}
		atomic.StoreUint32(&own[0], uint32(len(keep)))
		ix.lock(node).Unlock()
		for _, k := range keep {
			ix.linkBack(s, k.node, node, k.score, l)
		}
	}
}

// linkBack adds node to nb's neighbour list on level, pruning the list with
// the heuristic when it is full.
func (ix *Index) linkBack(s *searcher, nb, node uint32, score float32, level int) {
	maxLinks := ix.m
	if level == 0 {
		maxLinks = ix.m0
	}
	ix.lock(nb).Lock()
	defer ix.lock(nb).Unlock()
	l := ix.links(nb, level)
	n := int(l[0]) // writers hold the node lock, so a plain read is enough
	if n < maxLinks {
		atomic.StoreUint32(&l[n+1], node)
		atomic.StoreUint32(&l[0], uint32(n+1))
		return
	}
	v, a := ix.widen(&s.base, nb), ix.aug(nb)
	s.sorted = append(s.sorted[:0], cand{score, node})
	for i := 1; i <= n; i++ {
		x := l[i]
		s.sorted = append(s.sorted, cand{vec.DotHalf(v, ix.vec(x)) + a*ix.aug(x), x})
	}
	slices.SortFunc(s.sorted, byScoreDesc)
	keep := ix.selectNeighbors(s, s.sorted, maxLinks)
	for i, k := range keep {
		atomic.StoreUint32(&l[i+1], k.node)
	}
	atomic.StoreUint32(&l[0], uint32(len(keep)))
}

// byScoreDesc orders candidates best first.
func byScoreDesc(a, b cand) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	}
	return 0
}

// The heaps below move a hole rather than swap, and sift an element that
// replaces the root bottom-up: the hole goes down to a leaf along the better
// children, one comparison a level, and the element then rises from there.
// An element taken from the bottom of a heap belongs near the bottom again,
// so it rarely rises more than a level, and half the comparisons of a
// top-down sift, each an unpredictable branch, are saved.

func pushMax(h []cand, c cand) []cand {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].score >= c.score {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = c
	return h
}

func popMax(h []cand) ([]cand, cand) {
	top := h[0]
	last := len(h) - 1
	x := h[last]
	h = h[:last]
	if last == 0 {
		return h, top
	}
	i := 0
	for {
		c := 2*i + 1
		if c >= last {
			break
		}
		if c+1 < last && h[c+1].score > h[c].score {
			c++
		}
		h[i] = h[c]
		i = c
	}
	for i > 0 {
		p := (i - 1) / 2
		if h[p].score >= x.score {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
	return h, top
}

func pushMin(h []cand, c cand) []cand {
	h = append(h, c)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p].score <= c.score {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = c
	return h
}

func popMin(h []cand) ([]cand, cand) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	if last > 0 {
		replaceMin(h, h[0])
	}
	return h, top
}

// replaceMin puts c in place of the smallest element of the min-heap h.
func replaceMin(h []cand, c cand) {
	i := 0
	for {
		ch := 2*i + 1
		if ch >= len(h) {
			break
		}
		if ch+1 < len(h) && h[ch+1].score < h[ch].score {
			ch++
		}
		h[i] = h[ch]
		i = ch
	}
	for i > 0 {
		p := (i - 1) / 2
		if h[p].score <= c.score {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = c
}
