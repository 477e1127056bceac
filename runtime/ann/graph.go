package ann

import (
	"math"
	"slices"
	"sync/atomic"
)

// cand is a node with its score against the vector being searched for.
type cand struct {
	score float32
	node  uint32
}

// searcher holds the scratch space of one search or insert; searchers are
// pooled so that searching allocates nothing once the pool is warm.
type searcher struct {
	visited []uint16 // visited[node] == epoch when node was seen
	epoch   uint16
	cands   []cand   // max-heap on score: nodes left to expand
	found   []cand   // min-heap on score: the best ef nodes so far
	sorted  []cand   // found, best first
	next    []uint32 // neighbours of the node being expanded, to score
	eps     []cand   // entry points of the next searchLayer
	keep    []cand   // neighbours chosen by the heuristic
	layers  [][]cand // per layer, the neighbours chosen for the node being inserted
	query   []float32
}

func (ix *Index) getSearcher() *searcher {
	s := ix.searchers.Get().(*searcher)
	if len(s.visited) < ix.capacity {
		s.visited = make([]uint16, ix.capacity)
		s.epoch = 0
	}
	return s
}

// reset starts a new visited set.
func (s *searcher) reset() {
	s.epoch++
	if s.epoch == 0 {
		clear(s.visited)
		s.epoch = 1
	}
	s.cands = s.cands[:0]
	s.found = s.found[:0]
}

func (ix *Index) vec(node uint32) []float32 {
	i := int(node) * ix.dim
	return ix.vecs[i : i+ix.dim : i+ix.dim]
}

// links returns node's neighbour list on level: a count followed by room
// for the maximum number of ids. Entries are read and written atomically.
func (ix *Index) links(node uint32, level int) []uint32 {
	if level == 0 {
		i := int(node) * (ix.m0 + 1)
		return ix.links0[i : i+ix.m0+1 : i+ix.m0+1]
	}
	i := (level - 1) * (ix.m + 1)
	return ix.upper[node][i : i+ix.m+1 : i+ix.m+1]
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
			if sc := dot(q, ix.vec(nb)) + qaug*ix.aug[nb]; sc > score {
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
func (ix *Index) searchLayer(s *searcher, q []float32, qaug float32, ef, level int) {
	s.reset()
	for _, e := range s.eps {
		if s.visited[e.node] == s.epoch {
			continue
		}
		s.visited[e.node] = s.epoch
		s.cands = pushMax(s.cands, e)
		s.found = pushMin(s.found, e)
		if len(s.found) > ef {
			s.found, _ = popMin(s.found)
		}
	}
	for len(s.cands) > 0 {
		var c cand
		s.cands, c = popMax(s.cands)
		if len(s.found) >= ef && c.score < s.found[0].score {
			break
		}
		// Gather the unvisited neighbours and prefetch their vectors, then
		// score them: the loads overlap instead of stalling one by one.
		l := ix.links(c.node, level)
		n := int(atomic.LoadUint32(&l[0]))
		s.next = s.next[:0]
		for i := 1; i <= n; i++ {
			nb := atomic.LoadUint32(&l[i])
			if s.visited[nb] == s.epoch {
				continue
			}
			s.visited[nb] = s.epoch
			s.next = append(s.next, nb)
			prefetch(ix.vec(nb))
			if qaug != 0 {
				prefetch(ix.aug[nb : nb+1])
			}
		}
		for _, nb := range s.next {
			sc := dot(q, ix.vec(nb))
			if qaug != 0 {
				sc += qaug * ix.aug[nb]
			}
			if len(s.found) < ef || sc > s.found[0].score {
				s.cands = pushMax(s.cands, cand{sc, nb})
				s.found = pushMin(s.found, cand{sc, nb})
				if len(s.found) > ef {
					s.found, _ = popMin(s.found)
				}
			}
		}
	}
}

// sortFound moves s.found into s.sorted, best first.
func (s *searcher) sortFound() []cand {
	s.sorted = append(s.sorted[:0], s.found...)
	slices.SortFunc(s.sorted, byScoreDesc)
	return s.sorted
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
		v, a := ix.vec(c.node), ix.aug[c.node]
		good := true
		for _, k := range s.keep {
			if dot(v, ix.vec(k.node))+a*ix.aug[k.node] > c.score {
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
	if level > 0 {
		ix.upper[node] = make([]uint32, level*(ix.m+1))
	}
	q, qaug := ix.vec(node), ix.aug[node]

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
	epScore := dot(q, ix.vec(ep)) + qaug*ix.aug[ep]
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
		ix.locks[node].Lock()
		own := ix.links(node, l)
		for i, k := range keep {
			atomic.StoreUint32(&own[i+1], k.node)
		}
		atomic.StoreUint32(&own[0], uint32(len(keep)))
		ix.locks[node].Unlock()
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
	ix.locks[nb].Lock()
	defer ix.locks[nb].Unlock()
	l := ix.links(nb, level)
	n := int(l[0]) // writers hold the node lock, so a plain read is enough
	if n < maxLinks {
		atomic.StoreUint32(&l[n+1], node)
		atomic.StoreUint32(&l[0], uint32(n+1))
		return
	}
	v, a := ix.vec(nb), ix.aug[nb]
	s.sorted = append(s.sorted[:0], cand{score, node})
	for i := 1; i <= n; i++ {
		x := l[i]
		s.sorted = append(s.sorted, cand{dot(v, ix.vec(x)) + a*ix.aug[x], x})
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

func pushMax(h []cand, c cand) []cand {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].score >= h[i].score {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func popMax(h []cand) ([]cand, cand) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= last {
			break
		}
		if c+1 < last && h[c+1].score > h[c].score {
			c++
		}
		if h[i].score >= h[c].score {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return h, top
}

func pushMin(h []cand, c cand) []cand {
	h = append(h, c)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].score <= h[i].score {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func popMin(h []cand) ([]cand, cand) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	siftDownMin(h, 0)
	return h, top
}

// siftDownMin restores the min-heap property below i.
func siftDownMin(h []cand, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].score < h[c].score {
			c++
		}
		if h[i].score <= h[c].score {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}
