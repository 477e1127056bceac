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
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
)

const (
	fdStep = 1e-6
	fdTol  = 1e-6
)

// checkGrad compares an analytic gradient with central finite differences of
// f with respect to every element of p.
func checkGrad(t *testing.T, what string, p, analytic []float64, f func() float64) {
	t.Helper()
	for k := range p {
		orig := p[k]
		p[k] = orig + fdStep
		fp := f()
		p[k] = orig - fdStep
		fm := f()
		p[k] = orig
		num := (fp - fm) / (2 * fdStep)
		if d := math.Abs(num - analytic[k]); d > fdTol*math.Max(1, math.Abs(num)) {
			t.Errorf("%s[%d]: analytic %.9g, finite difference %.9g", what, k, analytic[k], num)
		}
	}
}

func randMatrix(r *rand.Rand, rows, cols int) blas64.General {
	m := blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: make([]float64, rows*cols)}
	for k := range m.Data {
		m.Data[k] = r.NormFloat64()
	}
	return m
}

func TestMLPGradients(t *testing.T) {
	tests := map[string][]LayerSize{
		"identity":            {{3, model.Identity}},
		"relu":                {{3, model.ReLU}},
		"tanh":                {{3, model.Tanh}},
		"sigmoid":             {{3, model.Sigmoid}},
		"relu-tanh-identity":  {{6, model.ReLU}, {4, model.Tanh}, {2, model.Identity}},
		"sigmoid-relu-linear": {{5, model.Sigmoid}, {4, model.ReLU}, {3, model.Identity}},
	}
	for name, layers := range tests {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			m, err := NewMLP(4, layers, 7)
			if err != nil {
				t.Fatal(err)
			}
			for i := range m.Layers {
				for k := range m.Layers[i].B {
					m.Layers[i].B[k] = 0.1 * r.NormFloat64()
				}
			}
			x := randMatrix(r, 5, 4)
			probe := randMatrix(r, 5, m.Out())
			var tape Tape
			// The loss is a fixed random linear function of the output.
			loss := func() float64 {
				y := m.Forward(x, &tape)
				var s float64
				for k, v := range y.Data {
					s += v * probe.Data[k]
				}
				return s
			}
			loss()
			g := m.NewGrads()
			dy := blas64.General{Rows: 5, Cols: m.Out(), Stride: m.Out(), Data: append([]float64(nil), probe.Data...)}
			dx := m.Backward(&tape, dy, g, true)
			dxCopy := append([]float64(nil), dx.Data...)
			for i := range m.Layers {
				checkGrad(t, "W"+string(rune('0'+i)), m.Layers[i].W, g.W[i], loss)
				checkGrad(t, "B"+string(rune('0'+i)), m.Layers[i].B, g.B[i], loss)
			}
			checkGrad(t, "X", x.Data, dxCopy, loss)
		})
	}
}

func TestBackwardAccumulates(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m, _ := NewMLP(3, []LayerSize{{2, model.Tanh}}, 1)
	x := randMatrix(r, 4, 3)
	var tape Tape
	g := m.NewGrads()
	for range 2 {
		m.Forward(x, &tape)
		m.Backward(&tape, blas64.General{Rows: 4, Cols: 2, Stride: 2, Data: []float64{1, 1, 1, 1, 1, 1, 1, 1}}, g, false)
	}
	once := m.NewGrads()
	m.Forward(x, &tape)
	m.Backward(&tape, blas64.General{Rows: 4, Cols: 2, Stride: 2, Data: []float64{1, 1, 1, 1, 1, 1, 1, 1}}, once, false)
	for k, v := range g.W[0] {
		if math.Abs(v-2*once.W[0][k]) > 1e-12 {
			t.Fatalf("two backward passes give W gradient %v, want twice %v", v, once.W[0][k])
		}
	}
}

func TestBCEWithLogitsGradient(t *testing.T) {
	z := []float64{-30, -2, -0.3, 0, 0.7, 3, 25}
	y := []float64{0, 1, 0, 1, 1, 0, 1}
	dz := make([]float64, len(z))
	BCEWithLogits(z, y, dz, 0.5)
	scratch := make([]float64, len(z))
	checkGrad(t, "z", z, dz, func() float64 { return BCEWithLogits(z, y, scratch, 0.5) })
	// The loss equals the textbook form where that is finite.
	got := BCEWithLogits([]float64{0.4}, []float64{1}, scratch[:1], 1)
	if want := -math.Log(Sigmoid(0.4)); math.Abs(got-want) > 1e-12 {
		t.Errorf("BCE(0.4, 1) = %v, want %v", got, want)
	}
}

func TestDotMSEGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	u, v := randMatrix(r, 4, 3), randMatrix(r, 4, 3)
	target := []float64{0.5, -1, 2, 0}
	du, dv := randMatrix(r, 4, 3), randMatrix(r, 4, 3)
	DotMSE(u, v, target, du, dv, 0.25)
	s1, s2 := randMatrix(r, 4, 3), randMatrix(r, 4, 3)
	f := func() float64 { return DotMSE(u, v, target, s1, s2, 0.25) }
	checkGrad(t, "u", u.Data, du.Data, f)
	checkGrad(t, "v", v.Data, dv.Data, f)
}

func TestInBatchSoftmaxGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, d = 6, 4
	u, v := randMatrix(r, n, d), randMatrix(r, n, d)
	logQ := []float64{-1, -2, -1, -3, -0.5, -2}
	// Rows 0 and 2 share an item: neither is the other's negative.
	items := []int32{10, 11, 10, 12, 13, 14}
	du, dv := randMatrix(r, n, d), randMatrix(r, n, d)
	InBatchSoftmax(u, v, logQ, items, du, dv, nil)
	s1, s2 := randMatrix(r, n, d), randMatrix(r, n, d)
	f := func() float64 {
		l, _ := InBatchSoftmax(u, v, logQ, items, s1, s2, nil)
		return l
	}
	checkGrad(t, "u", u.Data, du.Data, f)
	checkGrad(t, "v", v.Data, dv.Data, f)

	// The loss is the mean negative log-probability of the diagonal.
	got := f()
	var want float64
	for i := 0; i < n; i++ {
		var sum, pos float64
		for c := 0; c < n; c++ {
			if c != i && items[c] == items[i] {
				continue
			}
			var s float64
			for k := 0; k < d; k++ {
				s += u.Data[i*d+k] * v.Data[c*d+k]
			}
			e := math.Exp(s - logQ[c])
			sum += e
			if c == i {
				pos = e
			}
		}
		want -= math.Log(pos / sum)
	}
	want /= n
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("loss %v, want %v", got, want)
	}
}

func TestAdamMinimisesQuadratic(t *testing.T) {
	p := []float64{3, -2}
	g := make([]float64, 2)
	opt := NewAdam([][]float64{p}, 0.05)
	for range 2000 {
		// f = (p0-1)² + 10·(p1+0.5)²
		g[0], g[1] = 2*(p[0]-1), 20*(p[1]+0.5)
		opt.Step([][]float64{g})
	}
	if math.Abs(p[0]-1) > 1e-3 || math.Abs(p[1]+0.5) > 1e-3 {
		t.Errorf("Adam ended at %v, want [1 -0.5]", p)
	}
}

func TestNewMLPDeterministic(t *testing.T) {
	a, _ := NewMLP(5, []LayerSize{{4, model.ReLU}, {2, model.Identity}}, 42)
	b, _ := NewMLP(5, []LayerSize{{4, model.ReLU}, {2, model.Identity}}, 42)
	c, _ := NewMLP(5, []LayerSize{{4, model.ReLU}, {2, model.Identity}}, 43)
	for i := range a.Layers {
		for k := range a.Layers[i].W {
			if a.Layers[i].W[k] != b.Layers[i].W[k] {
				t.Fatalf("same seed gives different weights")
			}
		}
	}
	if a.Layers[0].W[0] == c.Layers[0].W[0] {
		t.Errorf("different seeds give the same first weight")
	}
	if _, err := NewMLP(5, []LayerSize{{4, model.GELU}}, 1); err == nil {
		t.Errorf("NewMLP accepted gelu, which it cannot differentiate")
	}
}
