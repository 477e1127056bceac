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

package model

import (
	"errors"
	"fmt"
	"slices"

	"gonum.org/v1/gonum/blas/blas32"
)

// SplitMTML is an MTML network whose first layer is split between input
// columns that are the same for every row of a batch (the user's features,
// shared by all candidates of one request) and the others. The shared
// columns' share of the first layer is computed once per call, as the bias of
// a product over the other columns only. It is read-only after construction
// and safe for concurrent use with one Workspace per goroutine.
type SplitMTML struct {
	m *MTML
	// constant holds the shared columns, in the order of Predict's shared.
	constant []int
	// shared and rest are the first layer's weight rows of the constant
	// columns and of the others, each with the layer's bias.
	shared, rest affine
	// upper computes the layers after the first: m's own, or their copies
	// in another precision (WithPrecision).
	upper *MLP
}

// Split returns m with its first layer split between the input columns listed
// in constant (the same for every row of a batch, e.g. the user's features)
// and the others. It returns an error if a column is out of range or listed
// twice. The first layer's weights are copied; m is not modified.
func (m *MTML) Split(constant []int) (*SplitMTML, error) {
	n := m.In()
	isConstant := make([]bool, n)
	for _, c := range constant {
		if c < 0 || c >= n {
			return nil, fmt.Errorf("mtml: split: column %d is not an input column (the network has %d)", c, n)
		}
		if isConstant[c] {
			return nil, fmt.Errorf("mtml: split: column %d is listed twice", c)
		}
		isConstant[c] = true
	}
	rest := make([]int, 0, n-len(constant))
	for c := range n {
		if !isConstant[c] {
			rest = append(rest, c)
		}
	}
	l := m.bottom.layers[0]
	return &SplitMTML{
		m:        m,
		constant: slices.Clone(constant),
		shared:   newAffine(weightRows(l.W, constant), l.B),
		rest:     newAffine(weightRows(l.W, rest), l.B),
		upper:    m.bottom,
	}, nil
}

// WithPrecision returns s computing its products over the batch in p: the
// first layer's rows of the other columns and every later layer. The
// one-row product of the shared columns and the heads stay in float32 (they
// cost little). It fails for BFloat16 where BFloat16Supported is false.
func (s *SplitMTML) WithPrecision(p Precision) (*SplitMTML, error) {
	switch p {
	case Float32:
	case BFloat16:
		if !BFloat16Supported() {
			return nil, errors.New("bfloat16 matrix products need a CPU with AVX-512 BF16; this one has none")
		}
	default:
		return nil, fmt.Errorf("unknown precision %v", p)
	}
	c := *s
	c.rest = s.rest.inPrecision(p)
	upper := *s.m.bottom
	upper.aff = slices.Clone(upper.aff)
	for i := 1; i < len(upper.aff); i++ {
		upper.aff[i] = upper.aff[i].inPrecision(p)
	}
	c.upper = &upper
	return &c, nil
}

// weightRows returns a packed copy of rows of w, in the given order.
func weightRows(w blas32.General, rows []int) blas32.General {
	g := blas32.General{Rows: len(rows), Cols: w.Cols, Stride: w.Cols, Data: make([]float32, len(rows)*w.Cols)}
	for i, r := range rows {
		copy(g.Data[i*w.Cols:(i+1)*w.Cols], w.Data[r*w.Stride:])
	}
	return g
}

// MTML returns the network s was split from.
func (s *SplitMTML) MTML() *MTML { return s.m }

// In returns the width of Predict's in: the columns not given to Split.
func (s *SplitMTML) In() int { return s.rest.w.Rows }

// Predict computes what MTML.Predict computes for the rows that hold shared
// in the constant columns (in the order given to Split) and the rows of in
// (batch×In()) in the others, in their original relative order. out is as for
// MTML.Predict. It allocates nothing with a reused Workspace. Predict panics
// if len(shared) is not the number of constant columns, in.Cols != In(), or
// out is shorter than batch×len(Heads()).
func (s *SplitMTML) Predict(shared []float32, in blas32.General, out []float32, ws *Workspace) {
	if len(shared) != len(s.constant) {
		panic(fmt.Sprintf("model: %d shared values for %d constant columns", len(shared), len(s.constant)))
	}
	if in.Cols != s.In() {
		panic(fmt.Sprintf("model: input has %d columns, split network takes %d", in.Cols, s.In()))
	}
	h := len(s.m.heads)
	if len(out) < in.Rows*h {
		panic(fmt.Sprintf("model: output buffer has %d values, %d candidates × %d heads need %d", len(out), in.Rows, h, in.Rows*h))
	}
	if in.Rows == 0 {
		return
	}
	first := &s.m.bottom.layers[0]
	n := first.W.Cols
	// bias = b + shared·W[constant rows], a one-row product; the kernel
	// reads it in whole panels, so the padding is kept at zero.
	bias := ws.getBias(s.rest.biasLen())
	clear(bias[n:])
	s.shared.apply(blas32.General{Rows: 1, Cols: len(shared), Stride: max(len(shared), 1), Data: shared},
		nil, blas32.General{Rows: 1, Cols: n, Stride: n, Data: bias}, Identity)
	x := blas32.General{Rows: in.Rows, Cols: n, Stride: n, Data: ws.get(0, in.Rows*n)}
	s.rest.apply(in, bias, x, first.Act)
	s.m.predictHeads(s.upper.forwardFrom(1, x, ws, 1), out)
}
