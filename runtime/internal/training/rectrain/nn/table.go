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
// touched, without visiting the others, in a buffer the size of those rows:
// one the size of the table (a million rows) would double a catalog-sized
// table's memory for the few hundred rows a batch reads.
type RowGrads struct {
	Width int
	// Touched lists the rows added to since the last Zero, in the order of
	// their first Add; G holds their gradients in the same order, Width
	// values each.
	Touched []int32
	G       []float64
	// slot[r] is 1 + the index of row r in Touched, 0 when untouched: four
	// bytes a row, where a lookup in a map cost more than the rest of an
	// Add (a batch adds each row of 50 items' engagement pools).
	slot []int32
}

// NewRowGrads returns empty gradients for t.
func (t *Table) NewRowGrads() *RowGrads {
	return &RowGrads{Width: t.Width, slot: make([]int32, t.Rows)}
}

// Add adds grad (Width values) to row r.
func (g *RowGrads) Add(r int32, grad []float64) {
	if len(grad) != g.Width {
		panic(fmt.Sprintf("nn: row gradient of %d values, want %d", len(grad), g.Width))
	}
	j := int(g.slot[r]) - 1
	if j < 0 {
		j = len(g.Touched)
		g.slot[r] = int32(j + 1)
		g.Touched = append(g.Touched, r)
		g.G = append(g.G, make([]float64, g.Width)...)
	}
	for k, v := range grad {
		g.G[j*g.Width+k] += v
	}
}

// Of returns row r's gradient, nil when no Add touched it since the last
// Zero; the slice is shared.
func (g *RowGrads) Of(r int32) []float64 {
	j := int(g.slot[r]) - 1
	if j < 0 {
		return nil
	}
	return g.G[j*g.Width : (j+1)*g.Width]
}

// Zero clears the touched rows.
func (g *RowGrads) Zero() {
	for _, r := range g.Touched {
		g.slot[r] = 0
	}
	g.Touched, g.G = g.Touched[:0], g.G[:0]
}
