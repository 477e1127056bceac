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
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// Metric is how a query is scored against an item; a higher score is better.
type Metric int

const (
	// InnerProduct scores by the dot product of query and item.
	InnerProduct Metric = iota
	// Cosine scores by the cosine of the angle between query and item. Items
	// and queries are normalised to unit length, then scored by inner product.
	Cosine
)

// String returns the name of m as written in the runtime config.
func (m Metric) String() string {
	switch m {
	case InnerProduct:
		return "InnerProduct"
	case Cosine:
		return "Cosine"
	default:
		return fmt.Sprintf("Metric(%d)", int(m))
	}
}

// ParseMetric reads a metric name as written in the runtime config.
func ParseMetric(s string) (Metric, error) {
	switch s {
	case "InnerProduct":
		return InnerProduct, nil
	case "Cosine":
		return Cosine, nil
	default:
		return 0, fmt.Errorf("unknown metric %q: want InnerProduct or Cosine", s)
	}
}

// Options tune the graph. A zero field takes its default.
type Options struct {
	M              int   // neighbours kept per node on upper layers, twice that on layer 0; default 16, at least 2
	EfConstruction int   // candidate list size while inserting; default 200
	EfSearch       int   // candidate list size of a search that passes ef <= 0; default 128
	Seed           int64 // seeds the choice of each node's layer; default 0
}

const (
	defaultM              = 16
	defaultEfConstruction = 200
	defaultEfSearch       = 128
	maxLevel              = 16
)

// Result is one item found by a search.
type Result struct {
	ID    uint32  // the item's external id
	Score float32 // inner product (or cosine) with the query; higher is better
}

// ErrDimension is returned, wrapped, when a vector's length differs from the
// index's dimension.
var ErrDimension = errors.New("wrong vector dimension")

// ErrDuplicateID is returned, wrapped, when an id is already in the index.
var ErrDuplicateID = errors.New("duplicate id")

// Index is an HNSW graph over float32 vectors, which it stores at half
// precision (see vec.EncodeHalf): the index takes half the memory (at a
// million 64-d items, 128 MB of vectors rather than 256). A search is not
// much faster for it: it waits on the first cache line of each vector it
// scores, not on the bytes after it. Scores are computed from the stored
// vectors in float32: within a relative 2⁻¹¹ per coordinate of the float32
// products. The zero value is not usable; create one with New.
type Index struct {
	dim    int
	metric Metric
	m, m0  int // link capacity on upper layers and on layer 0
	efC    int
	efS    int
	ml     float64
	seed   uint64

	// mu is held shared by every search and insert, and exclusively only
	// while a segment is appended to segs.
	mu       sync.RWMutex
	capacity int        // len(segs) << segShift
	segs     []*segment // node i in segs[i>>segShift] at i&(1<<segShift-1)
	segShift int        // defaultSegShift; smaller in tests, to cross segments

	// idMu guards ids and next.
	idMu sync.Mutex
	// ids maps external id -> node, to refuse a repeated id; nil while
	// every node's id is its number (as the engine's ordinals are), which
	// needs no map: the ids taken are then those below next.
	ids  map[uint32]uint32
	next uint32 // nodes allocated

	linked atomic.Int64 // nodes fully inserted

	// phi2 holds the float32 bits of the largest squared norm stored so far.
	phi2 atomic.Uint32

	// entry packs (top level + 1) << 32 | node; zero while the index is
	// empty. It changes under epMu only.
	entry atomic.Uint64
	epMu  sync.Mutex

	searchers sync.Pool
}

// New returns an empty index of dim-dimensional vectors. It panics if dim is
// not positive or metric is not one of the Metric constants.
func New(dim int, metric Metric, opts Options) *Index {
	if dim <= 0 {
		panic(fmt.Sprintf("ann: dimension must be positive, got %d", dim))
	}
	if metric != InnerProduct && metric != Cosine {
		panic(fmt.Sprintf("ann: unknown metric %v", metric))
	}
	if opts.M <= 0 {
		opts.M = defaultM
	}
	if opts.M < 2 {
		opts.M = 2
	}
	if opts.EfConstruction <= 0 {
		opts.EfConstruction = defaultEfConstruction
	}
	if opts.EfSearch <= 0 {
		opts.EfSearch = defaultEfSearch
	}
	ix := &Index{
		dim:    dim,
		metric: metric,
		m:      opts.M,
		m0:     2 * opts.M,
		efC:    max(opts.EfConstruction, opts.M),
		efS:    opts.EfSearch,
		ml:     1 / math.Log(float64(opts.M)),
		seed:   uint64(opts.Seed),

		segShift: defaultSegShift,
	}
	ix.searchers.New = func() any { return new(searcher) }
	return ix
}

// Dim returns the dimension of the index's vectors.
func (ix *Index) Dim() int { return ix.dim }

// Metric returns the index's metric.
func (ix *Index) Metric() Metric { return ix.metric }

// Len returns the number of items inserted and searchable.
func (ix *Index) Len() int { return int(ix.linked.Load()) }

// StoredRows returns the vectors of the items with ids from ..
// from+count-1 as stored, back to back at half precision, in the index's
// own memory; nil unless the index holds exactly those vectors together
// there: every id is its node's number (as the engine's ordinals are), the
// metric stores vectors as given (InnerProduct, not Cosine), the range lies
// below Len() and within one segment (32,768 nodes; see defaultSegShift).
// Items being inserted concurrently may not be stored yet, so compare
// before relying on the rows. A stored vector is never written again; the
// rows stay valid while ix is reachable, so their holder must keep ix.
func (ix *Index) StoredRows(from, count int) []uint16 {
	if ix.metric != InnerProduct || from < 0 || count <= 0 || from+count > ix.Len() {
		return nil
	}
	ix.idMu.Lock()
	dense := ix.ids == nil
	ix.idMu.Unlock()
	if !dense {
		return nil
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	sg, j := ix.seg(uint32(from))
	if j+count > ix.segNodes() {
		return nil
	}
	return sg.vecs[j*ix.dim : (j+count)*ix.dim : (j+count)*ix.dim]
}

// Reserve sizes the storage for n items in total, so that inserts up to n
// never wait for it to grow.
func (ix *Index) Reserve(n int) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.growLocked(n)
}

// The nodes are stored in segments of 1<<segShift: growing appends segments
// and never copies the nodes stored. With one slab per field, the first
// insert after a build or a load (which size the slabs exactly) copied the
// whole index with every search waiting: 1.18 s and +391 MiB at a million
// items. A segment holds 32,768 nodes: 4 MiB of 64-d vectors at half
// precision, whole huge pages (see hugeSlab).
const defaultSegShift = 15

// segNodes is the number of nodes of a segment.
func (ix *Index) segNodes() int { return 1 << ix.segShift }

// segment holds the nodes base .. base+segNodes()-1.
type segment struct {
	vecs    []uint16     // segNodes()*dim at half precision; node base+j at [j*dim, (j+1)*dim)
	aug     []float32    // per node, sqrt(phi² - |v|²): see augment
	links0  []uint32     // segNodes()*(m0+1); per node a count then m0 ids
	upper   []uint32     // per node with layers above 0, a count then m ids per such layer
	upperAt []uint32     // per node, where its lists start in upper
	ext     []uint32     // node -> external id
	locks   []sync.Mutex // per node, held while its neighbour lists change
}

// newSegment returns the empty segment of the nodes from base. A node's
// layers follow from its number alone (see levelOf), so the lists of every
// node above layer 0 are laid out here, back to back, and an insert need
// not allocate.
func (ix *Index) newSegment(base int) *segment {
	segNodes := ix.segNodes()
	sg := &segment{
		aug:     make([]float32, segNodes),
		upperAt: make([]uint32, segNodes),
		ext:     make([]uint32, segNodes),
		locks:   make([]sync.Mutex, segNodes),
	}
	sg.vecs = hugeSlab[uint16](sg, segNodes*ix.dim)
	sg.links0 = hugeSlab[uint32](sg, segNodes*(ix.m0+1))
	size := 0
	for j := range segNodes {
		sg.upperAt[j] = uint32(size)
		size += ix.levelOf(uint32(base+j)) * (ix.m + 1)
	}
	sg.upper = make([]uint32, size)
	return sg
}

// seg returns node's segment and its place there.
func (ix *Index) seg(node uint32) (*segment, int) {
	return ix.segs[node>>ix.segShift], int(node & (1<<ix.segShift - 1))
}

// growLocked makes room for n nodes; ix.mu must be held exclusively.
func (ix *Index) growLocked(n int) {
	for ix.capacity < n {
		ix.segs = append(ix.segs, ix.newSegment(ix.capacity))
		ix.capacity += ix.segNodes()
	}
}

// allocate reserves count consecutive nodes for the given external ids (nil
// for the ordinals base..base+count) and returns the first node. It fails
// without reserving anything if an id is present or repeated.
func (ix *Index) allocate(ids []uint32, count int) (uint32, error) {
	ix.idMu.Lock()
	defer ix.idMu.Unlock()
	if uint64(ix.next)+uint64(count) > math.MaxUint32 {
		return 0, fmt.Errorf("failed to add %d items: index is full", count)
	}
	first := ix.next
	for i := 0; i < count; i++ {
		id := uint32(i)
		if ids != nil {
			id = ids[i]
		}
		node := first + uint32(i)
		if ix.ids == nil {
			switch {
			case id == node:
				continue
			case id < node:
				return 0, fmt.Errorf("failed to add item %d: %w", id, ErrDuplicateID)
			}
			// The first id that is not its node's number: from here on
			// the ids are mapped, starting with those taken so far.
			ix.ids = make(map[uint32]uint32, node+1)
			for n := range node {
				ix.ids[n] = n
			}
		}
		if _, ok := ix.ids[id]; ok {
			for j := 0; j < i; j++ { // undo this batch
				if ids != nil {
					delete(ix.ids, ids[j])
				} else {
					delete(ix.ids, uint32(j))
				}
			}
			return 0, fmt.Errorf("failed to add item %d: %w", id, ErrDuplicateID)
		}
		ix.ids[id] = node
	}
	ix.next += uint32(count)
	return first, nil
}

// ensure makes room for node while ix.mu is held shared, dropping and
// retaking it if a segment must be added. The segment is made before the
// exclusive lock is taken, so that searches wait only for it to be
// appended.
func (ix *Index) ensure(node uint32) {
	for int(node) >= ix.capacity {
		base := ix.capacity
		ix.mu.RUnlock()
		sg := ix.newSegment(base)
		ix.mu.Lock()
		if ix.capacity == base { // else another insert added it meanwhile
			ix.segs = append(ix.segs, sg)
			ix.capacity += ix.segNodes()
		}
		ix.mu.Unlock()
		ix.mu.RLock()
	}
}

// store writes x into node's slot at half precision, normalised for
// Cosine, with its external id, and returns the squared norm of the vector
// as stored, for setAug. buf is scratch space.
func (ix *Index) store(node uint32, id uint32, x []float32, buf *[]float32) float32 {
	v := x
	if ix.metric == Cosine {
		*buf = append((*buf)[:0], x...)
		normalize(*buf)
		v = *buf
	}
	vec.EncodeHalf(ix.vec(node), v)
	sg, j := ix.seg(node)
	sg.ext[j] = id
	w := ix.widen(buf, node)
	return vec.Dot(w, w)
}

// setAug sets node's lifted coordinate from the squared norm of its stored
// vector (see augment).
func (ix *Index) setAug(node uint32, norm2 float32) {
	sg, j := ix.seg(node)
	sg.aug[j] = ix.augment(norm2)
}

// raisePhi makes phi² at least norm2.
func (ix *Index) raisePhi(norm2 float32) {
	// Non-negative floats order as their bits do.
	bits := math.Float32bits(norm2)
	for {
		old := ix.phi2.Load()
		if bits <= old || ix.phi2.CompareAndSwap(old, bits) {
			return
		}
	}
}

// augment returns the extra coordinate that lifts a vector of squared norm
// norm2 onto the sphere of radius phi, the largest norm stored. Links are
// chosen by inner product in that lifted space, where every item has the
// same norm, so that long vectors do not crowd out the neighbour lists of
// short ones; queries are lifted with a zero coordinate, which leaves their
// inner product with every item unchanged. Under Cosine every norm is one
// (to the stored precision) and the coordinate is zero.
func (ix *Index) augment(norm2 float32) float32 {
	if ix.metric == Cosine {
		return 0
	}
	ix.raisePhi(norm2)
	phi2 := math.Float32frombits(ix.phi2.Load())
	return float32(math.Sqrt(float64(max(phi2-norm2, 0))))
}

// Add inserts one item. It is safe to call while other goroutines search or
// add. The vector is copied.
func (ix *Index) Add(id uint32, vec []float32) error {
	if len(vec) != ix.dim {
		return fmt.Errorf("failed to add item %d: %w: got %d, want %d", id, ErrDimension, len(vec), ix.dim)
	}
	node, err := ix.allocate([]uint32{id}, 1)
	if err != nil {
		return err
	}
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	ix.ensure(node)
	s := ix.getSearcher()
	ix.setAug(node, ix.store(node, id, vec, &s.base))
	ix.insert(s, node)
	ix.searchers.Put(s)
	ix.linked.Add(1)
	return nil
}

// Build inserts many items in parallel on workers goroutines (all CPUs if
// workers <= 0). vecs holds the vectors back to back, len(ids)*Dim() floats;
// ids nil stands for the ordinals 0..n-1 where n = len(vecs)/Dim(). Build may
// run on a non-empty index and alongside searches and adds. If ctx ends
// first, Build stops and returns its error; the items inserted so far stay
// searchable and the rest keep their ids reserved, so the index should be
// discarded.
func (ix *Index) Build(ctx context.Context, ids []uint32, vecs []float32, workers int) error {
	if len(vecs)%ix.dim != 0 {
		return fmt.Errorf("failed to build index: %w: %d floats is not a multiple of %d", ErrDimension, len(vecs), ix.dim)
	}
	n := len(vecs) / ix.dim
	if ids != nil && len(ids) != n {
		return fmt.Errorf("failed to build index: %w: %d vectors of %d floats for %d ids", ErrDimension, n, ix.dim, len(ids))
	}
	if n == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	first, err := ix.allocate(ids, n)
	if err != nil {
		return fmt.Errorf("failed to build index: %w", err)
	}
	ix.mu.Lock()
	ix.growLocked(int(first) + n)
	ix.mu.Unlock()

	// Every lifted coordinate is set once the largest norm of the batch is
	// known, so that the batch's own links are chosen on one sphere.
	norms := make([]float32, n)
	var buf []float32
	ix.mu.RLock()
	for i := 0; i < n; i++ {
		id := uint32(i)
		if ids != nil {
			id = ids[i]
		}
		norms[i] = ix.store(first+uint32(i), id, vecs[i*ix.dim:(i+1)*ix.dim], &buf)
		if ix.metric == InnerProduct {
			ix.raisePhi(norms[i])
		}
	}
	for i, norm2 := range norms {
		ix.setAug(first+uint32(i), norm2)
	}
	ix.mu.RUnlock()

	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, n)
	var (
		cursor atomic.Int64
		done   atomic.Int64
		wg     sync.WaitGroup
	)
	const batch = 64 // nodes claimed at a time; ctx is checked per batch
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lo := int(cursor.Add(batch)) - batch
				if lo >= n {
					return
				}
				hi := min(lo+batch, n)
				ix.mu.RLock()
				s := ix.getSearcher()
				for i := lo; i < hi; i++ {
					ix.insert(s, first+uint32(i))
				}
				ix.searchers.Put(s)
				ix.mu.RUnlock()
				ix.linked.Add(int64(hi - lo))
				done.Add(int64(hi - lo))
			}
		}()
	}
	wg.Wait()
	if done.Load() < int64(n) {
		return fmt.Errorf("failed to build index: %w", context.Cause(ctx))
	}
	return nil
}
