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

// Package nn is the small neural-network toolkit rectrain trains with: dense
// layers with a batched forward and backward pass (each a BLAS matrix
// product over the whole batch), the activations of the artifact format, the
// losses of the funnel's models and the Adam optimiser. It computes in
// float64; the trainer rounds to float32 when it writes an artifact.
//
// A network (MLP) holds only parameters. The activations of one batch live
// in a Tape and the gradients in a Grads, so several goroutines may run the
// same network on different batches, each with its own Tape and Grads.
package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
)

// Dense is one layer: Y = Act(X·W + B) for a batch X of row vectors.
type Dense struct {
	In, Out int
	Act     model.Activation
	// W is In×Out, row-major (the artifact's [in, out] layout).
	W []float64
	// B has Out values.
	B []float64
}

// MLP is a stack of dense layers, each taking the previous one's output.
type MLP struct {
	Layers []Dense
}

// LayerSize is the output width and activation of a layer to create.
type LayerSize struct {
	Out int
	Act model.Activation
}

// NewMLP creates a network of input width in with the given layers. Weights
// are drawn uniformly in ±sqrt(6/in) for relu layers (He) and ±sqrt(6/(in+out))
// otherwise (Glorot), from a generator seeded with seed; biases are zero.
func NewMLP(in int, layers []LayerSize, seed uint64) (*MLP, error) {
	if in < 1 || len(layers) == 0 {
		return nil, fmt.Errorf("network needs an input width ≥ 1 and at least one layer")
	}
	r := rand.New(rand.NewPCG(seed, 0x6e6e2d696e6974))
	m := &MLP{}
	for i, l := range layers {
		if l.Out < 1 {
			return nil, fmt.Errorf("layer %d: output width %d < 1", i, l.Out)
		}
		if !supported(l.Act) {
			return nil, fmt.Errorf("layer %d: unsupported activation %q (want identity, relu, tanh or sigmoid)", i, l.Act)
		}
		d := Dense{In: in, Out: l.Out, Act: l.Act, W: make([]float64, in*l.Out), B: make([]float64, l.Out)}
		limit := math.Sqrt(6 / float64(in+l.Out))
		if l.Act == model.ReLU {
			limit = math.Sqrt(6 / float64(in))
		}
		for k := range d.W {
			d.W[k] = (2*r.Float64() - 1) * limit
		}
		m.Layers = append(m.Layers, d)
		in = l.Out
	}
	return m, nil
}

func supported(a model.Activation) bool {
	switch a {
	case model.Identity, model.ReLU, model.Tanh, model.Sigmoid:
		return true
	}
	return false
}

// In is the input width.
func (m *MLP) In() int { return m.Layers[0].In }

// Out is the output width.
func (m *MLP) Out() int { return m.Layers[len(m.Layers)-1].Out }

// Params returns the parameter slices in a fixed order (W then B per layer);
// an optimiser updates them in place.
func (m *MLP) Params() [][]float64 {
	ps := make([][]float64, 0, 2*len(m.Layers))
	for i := range m.Layers {
		ps = append(ps, m.Layers[i].W, m.Layers[i].B)
	}
	return ps
}

// Grads holds gradients shaped like an MLP's parameters.
type Grads struct {
	W, B [][]float64
}

// NewGrads returns zero gradients for m.
func (m *MLP) NewGrads() *Grads {
	g := &Grads{}
	for _, l := range m.Layers {
		g.W = append(g.W, make([]float64, len(l.W)))
		g.B = append(g.B, make([]float64, len(l.B)))
	}
	return g
}

// Slices returns the gradient slices in the order of MLP.Params.
func (g *Grads) Slices() [][]float64 {
	s := make([][]float64, 0, 2*len(g.W))
	for i := range g.W {
		s = append(s, g.W[i], g.B[i])
	}
	return s
}

// Zero sets every gradient to zero.
func (g *Grads) Zero() {
	for _, s := range g.Slices() {
		clear(s)
	}
}

// Tape records the activations of one forward pass for the backward pass,
// and reuses its buffers from batch to batch. The zero value is ready to use.
type Tape struct {
	x    blas64.General   // the input
	ys   []blas64.General // each layer's output
	bufs [][]float64
	d    [2][]float64 // backward scratch
}

func grow(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}

// Forward runs the batch x (rows × In(), row-major, Stride ≥ In()) through
// the network, records it on t and returns the rows × Out() output, which
// lives in t until its next Forward.
func (m *MLP) Forward(x blas64.General, t *Tape) blas64.General {
	if x.Cols != m.In() {
		panic(fmt.Sprintf("nn: input has %d columns, network takes %d", x.Cols, m.In()))
	}
	t.x = x
	if len(t.bufs) < len(m.Layers) {
		t.bufs = make([][]float64, len(m.Layers))
		t.ys = make([]blas64.General, len(m.Layers))
	}
	in := x
	for i := range m.Layers {
		l := &m.Layers[i]
		t.bufs[i] = grow(t.bufs[i], x.Rows*l.Out)
		y := blas64.General{Rows: x.Rows, Cols: l.Out, Stride: l.Out, Data: t.bufs[i]}
		for r := 0; r < y.Rows; r++ {
			copy(y.Data[r*l.Out:(r+1)*l.Out], l.B)
		}
		if x.Rows > 0 {
			blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, in, weight(l), 1, y)
		}
		activate(l.Act, y.Data)
		t.ys[i] = y
		in = y
	}
	return in
}

func weight(l *Dense) blas64.General {
	return blas64.General{Rows: l.In, Cols: l.Out, Stride: l.Out, Data: l.W}
}

// Backward takes dy, the gradient of the loss with respect to the output of
// the last Forward on t (rows × Out()), adds the parameter gradients to g
// and, when wantDX, returns the gradient with respect to the input (rows ×
// In(), valid until t is used again). dy is overwritten.
func (m *MLP) Backward(t *Tape, dy blas64.General, g *Grads, wantDX bool) blas64.General {
	rows := t.x.Rows
	if dy.Rows != rows || dy.Cols != m.Out() {
		panic(fmt.Sprintf("nn: output gradient is %d×%d, want %d×%d", dy.Rows, dy.Cols, rows, m.Out()))
	}
	var dx blas64.General
	dz := dy
	for i := len(m.Layers) - 1; i >= 0; i-- {
		l := &m.Layers[i]
		y := t.ys[i]
		for r := 0; r < rows; r++ {
			derivative(l.Act, y.Data[r*y.Stride:r*y.Stride+l.Out], dz.Data[r*dz.Stride:r*dz.Stride+l.Out])
		}
		in := t.x
		if i > 0 {
			in = t.ys[i-1]
		}
		if rows > 0 {
			blas64.Gemm(blas.Trans, blas.NoTrans, 1, in, dz, 1, blas64.General{Rows: l.In, Cols: l.Out, Stride: l.Out, Data: g.W[i]})
		}
		gb := g.B[i]
		for r := 0; r < rows; r++ {
			row := dz.Data[r*dz.Stride : r*dz.Stride+l.Out]
			for j, v := range row {
				gb[j] += v
			}
		}
		if i == 0 && !wantDX {
			break
		}
		buf := grow(t.d[i%2], rows*l.In)
		t.d[i%2] = buf
		dx = blas64.General{Rows: rows, Cols: l.In, Stride: l.In, Data: buf}
		if rows > 0 {
			blas64.Gemm(blas.NoTrans, blas.Trans, 1, dz, weight(l), 0, dx)
		}
		dz = dx
	}
	return dx
}

func activate(a model.Activation, v []float64) {
	switch a {
	case model.ReLU:
		for i, x := range v {
			if x < 0 {
				v[i] = 0
			}
		}
	case model.Tanh:
		for i, x := range v {
			v[i] = math.Tanh(x)
		}
	case model.Sigmoid:
		for i, x := range v {
			v[i] = Sigmoid(x)
		}
	}
}

// derivative multiplies d, the gradient with respect to a layer's output y,
// by the activation's derivative expressed through y.
func derivative(a model.Activation, y, d []float64) {
	switch a {
	case model.ReLU:
		for i, v := range y {
			if v <= 0 {
				d[i] = 0
			}
		}
	case model.Tanh:
		for i, v := range y {
			d[i] *= 1 - v*v
		}
	case model.Sigmoid:
		for i, v := range y {
			d[i] *= v * (1 - v)
		}
	}
}

// Sigmoid is 1/(1+e^-x), without overflow for large |x|.
func Sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// Export returns the network's layers as float32 tensors under the artifact
// names of network net (model.WeightName, model.BiasName), adding them to
// tensors, and the matching layer specs.
func (m *MLP) Export(net string, tensors map[string]model.Tensor) []model.LayerSpec {
	specs := make([]model.LayerSpec, len(m.Layers))
	for i, l := range m.Layers {
		tensors[model.WeightName(net, i)] = model.Tensor{Shape: []int{l.In, l.Out}, Data: To32(l.W)}
		tensors[model.BiasName(net, i)] = model.Tensor{Shape: []int{l.Out}, Data: To32(l.B)}
		specs[i] = model.LayerSpec{Out: l.Out, Activation: l.Act}
	}
	return specs
}

// To32 rounds a float64 slice to a new float32 slice.
func To32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
