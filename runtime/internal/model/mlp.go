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
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// Layer is one dense layer: out = Act(in·W + B).
type Layer struct {
	// W is the in×out weight matrix, row-major.
	W blas32.General
	// B is the bias, of length out.
	B []float32
	// Act is applied element-wise to the output.
	Act Activation
}

// MLP is a stack of dense layers. It is read-only after construction and safe
// for concurrent use with one Workspace per goroutine.
type MLP struct {
	layers []Layer
	// aff[i] computes layers[i]'s product.
	aff []affine
}

// NewMLP builds an MLP from its layers, checking that each layer's input
// width matches the previous layer's output width.
func NewMLP(layers []Layer) (*MLP, error) {
	if len(layers) == 0 {
		return nil, invalidf("mlp: no layers")
	}
	for i, l := range layers {
		if l.W.Rows < 1 || l.W.Cols < 1 || l.W.Stride < l.W.Cols || len(l.W.Data) < (l.W.Rows-1)*l.W.Stride+l.W.Cols {
			return nil, invalidf("mlp: layer %d: malformed %d×%d weight matrix", i, l.W.Rows, l.W.Cols)
		}
		if len(l.B) != l.W.Cols {
			return nil, invalidf("mlp: layer %d: bias has %d values for %d outputs", i, len(l.B), l.W.Cols)
		}
		if i > 0 && layers[i-1].W.Cols != l.W.Rows {
			return nil, invalidf("mlp: layer %d takes %d inputs but layer %d gives %d", i, l.W.Rows, i-1, layers[i-1].W.Cols)
		}
		if _, err := activationFunc(l.Act); err != nil {
			return nil, fmt.Errorf("mlp: layer %d: %w", i, err)
		}
	}
	m := &MLP{layers: layers, aff: make([]affine, len(layers))}
	for i, l := range layers {
		m.aff[i] = newAffine(l.W, l.B)
	}
	return m, nil
}

// In returns the input width.
func (m *MLP) In() int { return m.layers[0].W.Rows }

// Out returns the output width.
func (m *MLP) Out() int { return m.layers[len(m.layers)-1].W.Cols }

// Layers returns the layers; they must not be modified.
func (m *MLP) Layers() []Layer { return m.layers }

// Workspace holds the intermediate activations of forward passes so that
// repeated calls allocate nothing once it has grown to the largest batch.
// The zero value is ready to use. A Workspace is not safe for concurrent use.
type Workspace struct {
	buf [2][]float32
	// bias holds the first-layer bias of a SplitMTML call.
	bias []float32
}

// NewWorkspace returns a workspace presized for batches of up to batch rows
// through m (which may be nil).
func NewWorkspace(m *MLP, batch int) *Workspace {
	ws := &Workspace{}
	if m != nil {
		for _, l := range m.layers {
			ws.get(0, batch*l.W.Cols)
			ws.get(1, batch*l.W.Cols)
		}
		ws.getBias(paddedWidth(m.layers[0].W.Cols))
	}
	return ws
}

func (ws *Workspace) get(i, n int) []float32 {
	if cap(ws.buf[i]) < n {
		ws.buf[i] = make([]float32, n)
	}
	return ws.buf[i][:n]
}

func (ws *Workspace) getBias(n int) []float32 {
	if cap(ws.bias) < n {
		ws.bias = make([]float32, n)
	}
	return ws.bias[:n]
}

// Forward runs the batch in (batch×In(), row-major, any stride ≥ In()) through
// the network and returns the batch×Out() result. The result lives in ws and
// is valid until ws is used again. Forward panics if in.Cols != In().
func (m *MLP) Forward(in blas32.General, ws *Workspace) blas32.General {
	return m.forward(in, ws, 0)
}

// forward runs the layers, writing layer outputs alternately to ws buffers
// starting with buffer first.
func (m *MLP) forward(in blas32.General, ws *Workspace, first int) blas32.General {
	if in.Cols != m.In() {
		panic(fmt.Sprintf("model: input has %d columns, network takes %d", in.Cols, m.In()))
	}
	return m.forwardFrom(0, in, ws, first)
}

// forwardFrom runs layers from, from+1, ... on x, writing their outputs
// alternately to ws buffers starting with buffer first.
func (m *MLP) forwardFrom(from int, x blas32.General, ws *Workspace, first int) blas32.General {
	for i := from; i < len(m.layers); i++ {
		n := m.layers[i].W.Cols
		out := blas32.General{Rows: x.Rows, Cols: n, Stride: n, Data: ws.get((first+i-from)%2, x.Rows*n)}
		m.aff[i].apply(x, nil, out, m.layers[i].Act)
		x = out
	}
	return x
}

// dense is the product where there is no kernel (see sgemm.go).
//
// The gonum Sgemm splits products of four or more 64×64 blocks across
// goroutines, which allocates on every call. Products are tiled here so each
// call stays on the serial kernel: the calling goroutine does the work and
// nothing is allocated. Requests run concurrently, so per-call parallelism
// would only add scheduling cost on a loaded replica.
const (
	tileRows = 64
	tileCols = 192
)

// dense computes out = x·w + bias, where out is x.Rows×w.Cols.
func dense(x, w blas32.General, bias []float32, out blas32.General) {
	if x.Rows == 0 {
		return
	}
	for r := 0; r < x.Rows; r++ {
		copy(out.Data[r*out.Stride:r*out.Stride+out.Cols], bias)
	}
	for i0 := 0; i0 < x.Rows; i0 += tileRows {
		rows := min(tileRows, x.Rows-i0)
		xs := blas32.General{Rows: rows, Cols: x.Cols, Stride: x.Stride, Data: x.Data[i0*x.Stride:]}
		for j0 := 0; j0 < w.Cols; j0 += tileCols {
			cols := min(tileCols, w.Cols-j0)
			ws := blas32.General{Rows: w.Rows, Cols: cols, Stride: w.Stride, Data: w.Data[j0:]}
			cs := blas32.General{Rows: rows, Cols: cols, Stride: out.Stride, Data: out.Data[i0*out.Stride+j0:]}
			blas32.Gemm(blas.NoTrans, blas.NoTrans, 1, xs, ws, 1, cs)
		}
	}
}

func activationFunc(a Activation) (func([]float32), error) {
	switch a {
	case Identity:
		return func([]float32) {}, nil
	case ReLU:
		return relu, nil
	case GELU:
		return gelu, nil
	case GELUTanh:
		return geluTanh, nil
	case Tanh:
		return tanh, nil
	case Sigmoid:
		return sigmoid, nil
	}
	return nil, invalidf("unknown activation %q (want one of %s)", a, activationList())
}

// applyActivation is a switch rather than a stored func value so that the hot
// loop calls are direct.
func applyActivation(a Activation, v []float32) {
	switch a {
	case ReLU:
		relu(v)
	case GELU:
		gelu(v)
	case GELUTanh:
		geluTanh(v)
	case Tanh:
		tanh(v)
	case Sigmoid:
		sigmoid(v)
	}
}

func relu(v []float32) {
	for i, x := range v {
		if x < 0 {
			v[i] = 0
		}
	}
}

func gelu(v []float32) {
	for i, x := range v {
		f := float64(x)
		v[i] = float32(0.5 * f * (1 + math.Erf(f/math.Sqrt2)))
	}
}

func geluTanh(v []float32) {
	const c = 0.7978845608028654 // √(2/π)
	for i, x := range v {
		f := float64(x)
		v[i] = float32(0.5 * f * (1 + math.Tanh(c*(f+0.044715*f*f*f))))
	}
}

func tanh(v []float32) {
	for i, x := range v {
		v[i] = float32(math.Tanh(float64(x)))
	}
}

func sigmoid(v []float32) {
	for i, x := range v {
		v[i] = sigmoid1(x)
	}
}

// sigmoid1 is 1/(1+e^-x), computed without overflow for large |x|.
func sigmoid1(x float32) float32 {
	if x >= 0 {
		return float32(1 / (1 + math.Exp(-float64(x))))
	}
	e := math.Exp(float64(x))
	return float32(e / (1 + e))
}
