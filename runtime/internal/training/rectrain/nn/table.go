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

package nn

import (
	"fmt"
	"math/rand/v2"
)

// Table is a learned lookup table (an embedding): Rows vectors of Width
// values, row-major in W. A network reads a row as part of its input, and
// the gradient of that part of the input is the row's gradient.
type Table struct {
	Rows, Width int
	W           []float64
}

// NewTable returns a table of zeros: a row never trained reads as zeros,
// like a key the table does not hold.
func NewTable(rows, width int) *Table {
	return &Table{Rows: rows, Width: width, W: make([]float64, rows*width)}
}

// NewRandomTable returns a table whose values are drawn from N(0, std²)
// by a generator seeded with seed. A network that reads nothing but its
// tables (an ID-only catalog: no features) needs them random: from zeros
// every hidden unit of a relu network starts at zero and no gradient
// reaches the tables or the layers.
func NewRandomTable(rows, width int, std float64, seed uint64) *Table {
	t := NewTable(rows, width)
	r := rand.New(rand.NewPCG(seed, 0x7461626c65))
	for k := range t.W {
		t.W[k] = r.NormFloat64() * std
	}
	return t
}

// Row returns row r, a view of W.
func (t *Table) Row(r int32) []float64 {
	off := int(r) * t.Width
	return t.W[off : off+t.Width : off+t.Width]
}

// RowGrads accumulates the gradient of a table over the rows one batch
// touched, without visiting the others: Add sums into a table-sized buffer
// and records the row, Zero clears the recorded rows only.
type RowGrads struct {
	Width int
	// G is shaped like the table's W; only the Touched rows are non-zero.
	G []float64
	// Touched lists the rows added to since the last Zero, in the order of
	// their first Add.
	Touched []int32
	seen    []bool
}

// NewRowGrads returns empty gradients for t.
func (t *Table) NewRowGrads() *RowGrads {
	return &RowGrads{Width: t.Width, G: make([]float64, len(t.W)), seen: make([]bool, t.Rows)}
}

// Add adds grad (Width values) to row r.
func (g *RowGrads) Add(r int32, grad []float64) {
	if len(grad) != g.Width {
		panic(fmt.Sprintf("nn: row gradient of %d values, want %d", len(grad), g.Width))
	}
	if !g.seen[r] {
		g.seen[r] = true
		g.Touched = append(g.Touched, r)
	}
	off := int(r) * g.Width
	for k, v := range grad {
		g.G[off+k] += v
	}
}

// Zero clears the touched rows.
func (g *RowGrads) Zero() {
	for _, r := range g.Touched {
		off := int(r) * g.Width
		clear(g.G[off : off+g.Width])
		g.seen[r] = false
	}
	g.Touched = g.Touched[:0]
}
