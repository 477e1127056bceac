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
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// computePath is one way of computing layers: the assembly kernel and the
// bfloat16 one, where this machine has them, and gonum.
type computePath struct {
	name   string
	kernel bool
	bf16   bool
}

func computePaths() []computePath {
	paths := []computePath{{name: "gonum"}}
	if useKernel {
		paths = append(paths, computePath{name: "kernel", kernel: true})
	}
	if BFloat16Supported() {
		paths = append(paths, computePath{name: "bf16", kernel: true, bf16: true})
	}
	return paths
}

// build calls f with networks built on p.
func (p computePath) build(f func()) {
	saved := useKernel
	useKernel = p.kernel
	defer func() { useKernel = saved }()
	f()
}

// newAffine builds the product of w and b on p.
func (p computePath) newAffine(w blas32.General, b []float32) affine {
	var a affine
	p.build(func() { a = newAffine(w, b) })
	if p.bf16 {
		a = a.inPrecision(BFloat16)
	}
	return a
}

// randMatrix returns a rows×cols matrix with the given stride whose unused
// values (beyond cols in each row) are NaN, so that reading them shows.
func randMatrix(r *rand.Rand, rows, cols, stride int) blas32.General {
	g := blas32.General{Rows: rows, Cols: cols, Stride: stride, Data: make([]float32, max(rows-1, 0)*stride+cols)}
	for i := range g.Data {
		if i%stride < cols {
			g.Data[i] = float32(r.NormFloat64())
		} else {
			g.Data[i] = float32(math.NaN())
		}
	}
	return g
}

// checkAffine runs a.apply(x, nil, out, act) on an output of the given stride
// and compares it with a float64 triple loop: each value to within
// 1e-5·√K times the sum of the magnitudes of its terms. It also checks that
// nothing outside the output's rows and columns is written. On the bfloat16
// path the triple loop takes the inputs and weights rounded to bfloat16.
func checkAffine(t *testing.T, a affine, x blas32.General, act Activation, outStride int) {
	t.Helper()
	m, n := x.Rows, a.w.Cols
	const sentinel = -12345
	out := blas32.General{Rows: m, Cols: n, Stride: outStride, Data: make([]float32, m*outStride+3)}
	for i := range out.Data {
		out.Data[i] = sentinel
	}
	a.apply(x, nil, out, act)
	tol := 1e-5 * math.Sqrt(float64(max(x.Cols, 1)))
	// A network built in bfloat16 multiplies its inputs and weights
	// rounded to bfloat16: the reference rounds them too.
	in := func(v float32) float64 { return float64(v) }
	if a.p != nil && a.p.h != nil {
		in = func(v float32) float64 { return float64(fromBF16(toBF16(v))) }
	}
	for r := range m {
		for j := range n {
			sum, mag := float64(a.b[j]), math.Abs(float64(a.b[j]))
			for k := range x.Cols {
				term := in(x.Data[r*x.Stride+k]) * in(a.w.Data[k*a.w.Stride+j])
				sum += term
				mag += math.Abs(term)
			}
			want := naiveAct(act, sum)
			got := float64(out.Data[r*outStride+j])
			if math.IsNaN(got) || math.Abs(got-want) > tol*mag+1e-6 {
				t.Fatalf("out[%d][%d] = %v, want %v (±%.2g)", r, j, got, want, tol*mag+1e-6)
			}
		}
	}
	for i, v := range out.Data {
		if i/outStride < m && i%outStride < n {
			continue
		}
		if v != sentinel {
			t.Fatalf("out.Data[%d] (row %d, column %d) outside the %d×%d output was written: %v", i, i/outStride, i%outStride, m, n, v)
		}
	}
}

func TestAffineMatchesNaiveAcrossShapes(t *testing.T) {
	rows := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 300}
	cols := []int{1, 5, 15, 16, 17, 128, 256}
	depths := []int{1, 3, 195}
	for _, p := range computePaths() {
		for _, k := range depths {
			for _, n := range cols {
				r := rand.New(rand.NewPCG(uint64(k), uint64(n)))
				w := randMatrix(r, k, n, n)
				b := randMatrix(r, 1, n, n).Data
				a := p.newAffine(w, b)
				for _, m := range rows {
					t.Run(fmt.Sprintf("%s/M=%d,N=%d,K=%d", p.name, m, n, k), func(t *testing.T) {
						checkAffine(t, a, randMatrix(r, m, k, k), Identity, n)
					})
				}
			}
		}
	}
}

func TestAffineStridesAndActivations(t *testing.T) {
	tests := map[string]struct {
		m, n, k          int
		xStride, wStride int // 0: packed
		outStride        int // 0: packed
		act              Activation
	}{
		"relu fused on a short tile":       {m: 7, n: 17, k: 3, act: ReLU},
		"relu on whole panels":             {m: 12, n: 32, k: 20, act: ReLU},
		"sigmoid heads":                    {m: 300, n: 5, k: 128, act: Sigmoid},
		"tanh":                             {m: 4, n: 9, k: 8, act: Tanh},
		"gelu":                             {m: 13, n: 18, k: 7, act: GELU},
		"gelu tanh":                        {m: 1, n: 16, k: 1, act: GELUTanh},
		"input view of a wider matrix":     {m: 13, n: 17, k: 195, xStride: 203, act: ReLU},
		"weights view of a wider matrix":   {m: 9, n: 21, k: 10, wStride: 40},
		"output with a wider stride":       {m: 8, n: 15, k: 4, outStride: 19, act: ReLU},
		"all three strided, partial panel": {m: 11, n: 33, k: 5, xStride: 6, wStride: 35, outStride: 40, act: Sigmoid},
	}
	for name, tc := range tests {
		for _, p := range computePaths() {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(uint64(tc.m), uint64(tc.k)))
				stride := func(s, cols int) int { return max(s, cols) }
				w := randMatrix(r, tc.k, tc.n, stride(tc.wStride, tc.n))
				b := randMatrix(r, 1, tc.n, tc.n).Data
				a := p.newAffine(w, b)
				checkAffine(t, a, randMatrix(r, tc.m, tc.k, stride(tc.xStride, tc.k)), tc.act, stride(tc.outStride, tc.n))
			})
		}
	}
}

// TestReLUKeepsNaN checks that the fused ReLU treats NaN as the Go one does,
// passing it on rather than turning it into zero.
func TestReLUKeepsNaN(t *testing.T) {
	for _, p := range computePaths() {
		t.Run(p.name, func(t *testing.T) {
			w := blas32.General{Rows: 1, Cols: 2, Stride: 2, Data: []float32{1, -1}}
			a := p.newAffine(w, []float32{0, 0})
			x := blas32.General{Rows: 2, Cols: 1, Stride: 1, Data: []float32{float32(math.NaN()), 3}}
			out := blas32.General{Rows: 2, Cols: 2, Stride: 2, Data: make([]float32, 4)}
			a.apply(x, nil, out, ReLU)
			if !math.IsNaN(float64(out.Data[0])) || !math.IsNaN(float64(out.Data[1])) {
				t.Errorf("relu(NaN) gave %v, want NaN", out.Data[:2])
			}
			if out.Data[2] != 3 || out.Data[3] != 0 {
				t.Errorf("relu(3, -3) gave %v, want [3 0]", out.Data[2:])
			}
		})
	}
}

// TestPredictKernelMatchesGonum compares the two paths on the production
// shape, where the order of summation differs.
func TestPredictKernelMatchesGonum(t *testing.T) {
	if !useKernel {
		t.Skip("no kernel on this machine")
	}
	m := prodMTMLManifest()
	tensors := randTensors(m, 3)
	var onKernel, onGonum *Artifact
	var err error
	computePath{kernel: true}.build(func() { onKernel, err = New(m, tensors) })
	if err != nil {
		t.Fatal(err)
	}
	computePath{}.build(func() { onGonum, err = New(m, tensors) })
	if err != nil {
		t.Fatal(err)
	}
	const batch = 300
	in := randInput(4, batch, onKernel.MTML.In(), onKernel.MTML.In())
	got := make([]float32, batch*len(m.Heads))
	want := make([]float32, len(got))
	onKernel.MTML.Predict(in, got, &Workspace{})
	onGonum.MTML.Predict(in, want, &Workspace{})
	tol := 1e-5 * math.Sqrt(float64(onKernel.MTML.In()))
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > tol {
			t.Fatalf("P(%s) for candidate %d = %v on the kernel, %v on gonum", m.Heads[i%len(m.Heads)], i/len(m.Heads), got[i], want[i])
		}
	}
}

func TestPackPadsPanels(t *testing.T) {
	w := blas32.General{Rows: 2, Cols: 17, Stride: 20, Data: make([]float32, 40)}
	for i := range w.Data {
		w.Data[i] = float32(i + 1)
	}
	b := make([]float32, 17)
	for i := range b {
		b[i] = float32(-i - 1)
	}
	p := pack(w, b)
	if len(p.w) != 2*32 || len(p.b) != 32 {
		t.Fatalf("packed %d weights and %d biases, want 64 and 32", len(p.w), len(p.b))
	}
	for j := range 32 {
		for k := range 2 {
			var want float32
			if j < 17 {
				want = w.Data[k*w.Stride+j]
			}
			if got := p.w[j/16*2*16+k*16+j%16]; got != want {
				t.Errorf("weight (%d, %d) packed as %v, want %v", k, j, got, want)
			}
		}
		var want float32
		if j < 17 {
			want = b[j]
		}
		if p.b[j] != want {
			t.Errorf("bias %d packed as %v, want %v", j, p.b[j], want)
		}
	}
}
