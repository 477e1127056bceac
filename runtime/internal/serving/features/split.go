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

package features

import (
	"fmt"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// Every candidate of a request shares the user's blocks, so a ranker may
// compute their part of its first layer once per request rather than once
// per candidate (see model.MTML.Split). SharedColumns and FillSplit give it
// the two parts of the row.

// SplitColumn returns the column of the named block's first value among
// the per-candidate columns FillSplit writes to dst, or -1 when the spec
// does not list it or it is shared.
func (a *Assembler) SplitColumn(name string) int {
	off := 0
	for i, op := range a.ops {
		if !op.item {
			continue
		}
		if a.spec[i].Name == name {
			return off
		}
		off += op.width
	}
	return -1
}

// SharedColumns returns, in increasing order, the columns of a row whose
// values are the same for every candidate of one user context: those of
// the blocks that do not depend on the item.
func (a *Assembler) SharedColumns() []int {
	var cols []int
	for _, op := range a.ops {
		if !op.item {
			for c := op.off; c < op.off+op.width; c++ {
				cols = append(cols, c)
			}
		}
	}
	return cols
}

// FillSplit writes the row of Fill in two parts: the SharedColumns into
// shared (their count long, in that order), and the other columns, in
// their order in the row, into rows 0..len(items)-1 of dst. It allocates
// nothing. It panics as Fill does, or if shared or dst has the wrong width.
func (a *Assembler) FillSplit(u *UserContext, items []uint32, shared []float32, dst blas32.General) {
	sharedWidth := 0
	for _, op := range a.ops {
		if !op.item {
			sharedWidth += op.width
		}
	}
	if len(shared) != sharedWidth {
		panic(fmt.Sprintf("features: FillSplit into %d shared values, want %d", len(shared), sharedWidth))
	}
	if w := a.width - sharedWidth; dst.Cols != w || dst.Rows < len(items) || dst.Stride < dst.Cols {
		panic(fmt.Sprintf("features: FillSplit of %d items into a %d×%d matrix (stride %d), want %d columns", len(items), dst.Rows, dst.Cols, dst.Stride, w))
	}
	a.checkUser(u)
	off := 0
	var pool []float32 // engagement_id_pool, in shared
	for _, op := range a.ops {
		if op.item {
			continue
		}
		seg := shared[off : off+op.width]
		a.fillUser(u, op, seg)
		if op.kind == engagementIDPool {
			pool = seg
		}
		off += op.width
	}
	// A column block at a time over every item, rather than a row at a
	// time: each item's data sits in another cache line of another table
	// (features, id embedding, two-tower vector…), and the loop over the
	// items of one block is short enough that the processor has the misses
	// of several items in flight at once.
	off = 0
	for _, op := range a.ops {
		if !op.item {
			continue
		}
		for r, o := range items {
			if r+fillAhead < len(items) {
				a.prefetchItem(op, items[r+fillAhead], items[r+fillAhead/2])
			}
			seg := dst.Data[r*dst.Stride+off : r*dst.Stride+off+op.width]
			if op.kind == idAffinity {
				seg[0] = a.affinityOf(pool, o)
				continue
			}
			a.fillItem(u, op, o, seg)
		}
		off += op.width
	}
}

// fillAhead is how many items ahead of the one it fills FillSplit asks for
// an item's rows; the id embedding's row number, itself a read, is asked for
// at that distance and read at half of it.
const fillAhead = 16

// prefetchItem starts loading what filling op's block reads of item far,
// and of item near the row of its id embedding, whose row number far's
// prefetch asked for.
func (a *Assembler) prefetchItem(op op, far, near uint32) {
	switch {
	case op.pad:
	case op.kind == itemFeatures:
		vec.Prefetch(a.cat.Features(far))
	case op.kind == itemAge:
		a.cat.PrefetchCreated(far)
	case op.kind == authorFollowed:
		a.cat.PrefetchAuthor(far)
	case op.kind == itemRisk:
		a.cat.PrefetchRisk(far)
	case op.kind == itemID || op.kind == idAffinity:
		if rows := a.idRows.rows; int(far) < len(rows) && int(near) < len(rows) {
			vec.Prefetch(rows[far : far+1])
			if r := rows[near]; r >= 0 {
				vec.Prefetch(a.itemIDs.Vector(r))
			}
		}
	case op.kind == twoTowerScore:
		vec.Prefetch(a.vectors.Half(far))
	}
}
