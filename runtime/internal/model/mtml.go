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
	"fmt"
	"slices"

	"gonum.org/v1/gonum/blas/blas32"
)

// MTML is the second-stage multi-task network: a shared-bottom MLP followed
// by one logistic head per event type. It is read-only after construction and
// safe for concurrent use with one Workspace per goroutine.
type MTML struct {
	bottom *MLP
	heads  []string
	// w is bottom.Out()×len(heads), column j being head j; b has len(heads).
	w blas32.General
	b []float32
	// head computes w and b's product.
	head affine
}

// NewMTML builds an MTML network. w is bottom.Out()×len(heads), column j
// holding the weights of heads[j]; b holds one bias per head.
func NewMTML(bottom *MLP, heads []string, w blas32.General, b []float32) (*MTML, error) {
	if len(heads) == 0 {
		return nil, invalidf("mtml: no heads")
	}
	if w.Rows != bottom.Out() || w.Cols != len(heads) || w.Stride < w.Cols || len(w.Data) < (w.Rows-1)*w.Stride+w.Cols {
		return nil, invalidf("mtml: head weights are %d×%d, want %d×%d", w.Rows, w.Cols, bottom.Out(), len(heads))
	}
	if len(b) != len(heads) {
		return nil, invalidf("mtml: %d head biases for %d heads", len(b), len(heads))
	}
	return &MTML{bottom: bottom, heads: slices.Clone(heads), w: w, b: b, head: newAffine(w, b)}, nil
}

// Bottom returns the shared-bottom network.
func (m *MTML) Bottom() *MLP { return m.bottom }

// In returns the input width.
func (m *MTML) In() int { return m.bottom.In() }

// Heads returns the event types in output column order; it must not be
// modified.
func (m *MTML) Heads() []string { return m.heads }

// HeadIndex returns the output column of the named head, or -1.
func (m *MTML) HeadIndex(name string) int { return slices.Index(m.heads, name) }

// Predict computes the probability of every event for each row of in
// (batch×In()) and writes them to out, row-major batch×len(Heads()):
// out[r*len(Heads())+j] is P(Heads()[j]) for candidate r. It allocates
// nothing with a reused Workspace. Predict panics if in.Cols != In() or out
// is shorter than batch×len(Heads()).
func (m *MTML) Predict(in blas32.General, out []float32, ws *Workspace) {
	h := len(m.heads)
	if len(out) < in.Rows*h {
		panic(fmt.Sprintf("model: output buffer has %d values, %d candidates × %d heads need %d", len(out), in.Rows, h, in.Rows*h))
	}
	if in.Rows == 0 {
		return
	}
	m.predictHeads(m.bottom.Forward(in, ws), out)
}

// predictHeads writes the head probabilities of the bottom's output x to out.
func (m *MTML) predictHeads(x blas32.General, out []float32) {
	h := len(m.heads)
	m.head.apply(x, nil, blas32.General{Rows: x.Rows, Cols: h, Stride: h, Data: out[:x.Rows*h]}, Sigmoid)
}
