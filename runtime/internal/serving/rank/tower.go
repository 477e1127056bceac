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
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/features"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// vectorChunk rows of item embeddings share one allocation.
const vectorChunk = 4096

// Vectors holds one two-tower model's item embeddings by catalog ordinal,
// at half precision (vec.EncodeHalf): half the memory (128 MB rather than
// 256 at a million 64-d items) and half the bytes the first stage reads
// per candidate, for scores within a relative 2⁻¹¹ per coordinate.
// Readers take no lock: they load the chunk list and the published length;
// appends (new items) are serialised by the caller of Tower.EmbedItems.
type Vectors struct {
	dim    int
	chunks atomic.Pointer[[][]uint16]
	n      atomic.Uint32
	// keep holds what keeps the memory of the chunks Share took valid.
	keep []any
}

func newVectors(dim int) *Vectors {
	v := &Vectors{dim: dim}
	empty := [][]uint16{}
	v.chunks.Store(&empty)
	return v
}

// Half returns item's embedding as stored, at half precision, or nil if it
// has none yet. The caller must not modify it.
func (v *Vectors) Half(item uint32) []uint16 {
	if item >= v.n.Load() {
		return nil
	}
	chunks := *v.chunks.Load()
	off := int(item%vectorChunk) * v.dim
	return chunks[item/vectorChunk][off : off+v.dim : off+v.dim]
}

// Vector returns item's embedding widened to float32 in dst's memory
// (grown if short), or nil if it has none yet.
func (v *Vectors) Vector(item uint32, dst []float32) []float32 {
	h := v.Half(item)
	if h == nil {
		return nil
	}
	dst = slices.Grow(dst[:0], v.dim)[:v.dim]
	vec.DecodeHalf(dst, h)
	return dst
}

// Len is the number of items embedded: ordinals [0, Len) have a vector.
func (v *Vectors) Len() int { return int(v.n.Load()) }

// Share lets the whole chunks of items that rows holds identically be read
// from rows' memory, and drops their own: an ANN index of the model stores
// the same half-precision vectors, and one copy rather than two saves 128
// MB at a million 64-d items. rows returns the vectors of count items from
// an ordinal, back to back, or nil where it holds none; keep is what keeps
// that memory valid (the index), held as long as v. Chunks that differ in
// any bit keep their own memory. It returns the number of items shared and
// must not overlap append.
func (v *Vectors) Share(rows func(from, count int) []uint16, keep any) int {
	n := int(v.n.Load())
	grown := slices.Clone(*v.chunks.Load())
	shared := 0
	for c := range n / vectorChunk {
		r := rows(c*vectorChunk, vectorChunk)
		if r == nil || !slices.Equal(r, grown[c]) {
			continue
		}
		grown[c] = r
		shared += vectorChunk
	}
	if shared > 0 {
		v.keep = append(v.keep, keep)
		v.chunks.Store(&grown)
	}
	return shared
}

// append adds the embeddings (rows × dim, row-major) of the next items.
func (v *Vectors) append(rows []float32) {
	n := v.n.Load()
	chunks := *v.chunks.Load()
	for len(rows) > 0 {
		if int(n/vectorChunk) == len(chunks) {
			grown := append(append([][]uint16(nil), chunks...), make([]uint16, vectorChunk*v.dim))
			v.chunks.Store(&grown)
			chunks = grown
		}
		off := int(n%vectorChunk) * v.dim
		k := min(len(rows), len(chunks[n/vectorChunk])-off)
		vec.EncodeHalf(chunks[n/vectorChunk][off:], rows[:k])
		rows = rows[k:]
		n += uint32(k / v.dim)
	}
	v.n.Store(n)
}

// Tower is a loaded two-tower model with what serving it needs: feature
// assemblers for both towers and the item embeddings of the whole catalog.
type Tower struct {
	name    string
	model   *model.TwoTower
	user    *features.Assembler
	item    *features.Assembler
	vectors *Vectors
	pool    sync.Pool // *model.Workspace
	inputs  sync.Pool // *[]float32, the user tower's input row
}

// itemBatch is how many items go through the item tower at once at load.
const itemBatch = 1024

// NewTower prepares the two-tower model a, named name, to serve the items
// of cat. Its item embeddings are computed by EmbedItems.
func NewTower(name string, a *model.Artifact, cat *catalog.Catalog) (*Tower, error) {
	if a.TwoTower == nil {
		return nil, fmt.Errorf("model %q is a %s model, not TwoTower", name, a.Manifest.Kind)
	}
	user, err := features.CompileUser(a.Manifest.Networks[model.NetUser].Input, cat, a.Embeddings)
	if err != nil {
		return nil, fmt.Errorf("model %q, user tower: %w", name, err)
	}
	// The item tower's outputs are computed once per item and kept, so it
	// may read only what does not change with the request; its item_id
	// block reads the artifact's embedding table.
	item, err := features.CompileItem(a.Manifest.Networks[model.NetItem].Input, cat, a.Embeddings)
	if err != nil {
		return nil, fmt.Errorf("model %q, item tower: %w", name, err)
	}
	return &Tower{name: name, model: a.TwoTower, user: user, item: item, vectors: newVectors(a.TwoTower.Dim)}, nil
}

func (t *Tower) workspace() *model.Workspace {
	if ws, ok := t.pool.Get().(*model.Workspace); ok {
		return ws
	}
	return &model.Workspace{}
}

// Name is the model's name in the config.
func (t *Tower) Name() string { return t.name }

// Dim is the width of the embeddings.
func (t *Tower) Dim() int { return t.model.Dim }

// Vectors are the item embeddings computed so far.
func (t *Tower) Vectors() *Vectors { return t.vectors }

// EmbedItems computes the item embeddings of ordinals [from, to) and
// appends them, using every core. from must be Vectors().Len(); calls must
// not overlap.
func (t *Tower) EmbedItems(ctx context.Context, cat *catalog.Catalog, from, to int) error {
	n := to - from
	if n <= 0 {
		return nil
	}
	out := make([]float32, n*t.model.Dim)
	workers := min(runtime.GOMAXPROCS(0), (n+itemBatch-1)/itemBatch)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	now := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &model.Workspace{}
			uc := features.NewUserContext("", now, cat, nil, nil)
			in := blas32.General{Rows: itemBatch, Cols: t.item.Width(), Stride: t.item.Width(), Data: make([]float32, itemBatch*t.item.Width())}
			items := make([]uint32, 0, itemBatch)
			for ctx.Err() == nil {
				start := int(next.Add(itemBatch)) - itemBatch
				if start >= n {
					return
				}
				end := min(start+itemBatch, n)
				items = items[:0]
				for i := start; i < end; i++ {
					items = append(items, uint32(from+i))
				}
				batch := in
				batch.Rows = len(items)
				t.item.Fill(uc, items, batch)
				e := t.model.ItemEmbeddings(batch, ws)
				for r := 0; r < e.Rows; r++ {
					copy(out[(start+r)*t.model.Dim:(start+r+1)*t.model.Dim], e.Data[r*e.Stride:r*e.Stride+t.model.Dim])
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	t.vectors.append(out)
	return nil
}

// Flat returns the item embeddings widened to float32, row-major by
// ordinal, for an index build.
func (t *Tower) Flat() []float32 {
	n, dim := t.vectors.Len(), t.model.Dim
	flat := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		vec.DecodeHalf(flat[i*dim:(i+1)*dim], t.vectors.Half(uint32(i)))
	}
	return flat
}

// UserEmbedding runs the user tower for one user into dst.
func (t *Tower) UserEmbedding(uc *features.UserContext, dst []float32) []float32 {
	ws := t.workspace()
	defer t.pool.Put(ws)
	inp, _ := t.inputs.Get().(*[]float32)
	if inp == nil {
		inp = new([]float32)
	}
	defer t.inputs.Put(inp)
	w := t.user.Width()
	in := slices.Grow((*inp)[:0], w)[:w]
	*inp = in
	clear(in)
	t.user.FillUser(uc, in)
	e := t.model.UserEmbeddings(blas32.General{Rows: 1, Cols: len(in), Stride: len(in), Data: in}, ws)
	return append(dst[:0], e.Data[:t.model.Dim]...)
}
