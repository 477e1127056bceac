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
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"
)

// The layers of a network run on a hand-written float32 GEMM kernel
// (sgemm_amd64.s, AVX2 and FMA) where the CPU has one, and on gonum's
// blas32.Gemm elsewhere. The kernel is hand-written because nothing else fits:
// gonum's float32 GEMM is Go loops around an assembly axpy, with no
// register-blocked kernel; no maintained pure-Go library provides one; and a
// cgo BLAS would break the static images.
//
// The kernel computes a tile of kernelRows×panelWidth outputs in registers
// (BLIS's 6×16 for 16 YMM registers): the accumulators start at the bias, take
// one FMA per input element and weight row, and get their ReLU before a single
// store. The weights are packed once, when a network is built, into panels of
// panelWidth columns so that the kernel reads them contiguously.
const (
	kernelRows = 6
	panelWidth = 16
)

// affine is one x·W + b product together with, when the kernel is in use,
// its packed form. It is read-only after construction.
type affine struct {
	w blas32.General
	b []float32
	// p is nil when the network runs on gonum.
	p *packed
}

func newAffine(w blas32.General, b []float32) affine {
	a := affine{w: w, b: b}
	if useKernel {
		a.p = pack(w, b)
	}
	return a
}

// biasLen is the length apply needs of a bias given in place of b.
func (a *affine) biasLen() int { return paddedWidth(a.w.Cols) }

// apply computes out = act(x·W + bias), bias being b if nil. A bias given must
// have biasLen values, of which the first w.Cols are used. out must not
// overlap x.
func (a *affine) apply(x blas32.General, bias []float32, out blas32.General, act Activation) {
	if x.Cols != a.w.Rows || out.Rows != x.Rows || out.Cols != a.w.Cols {
		panic(fmt.Sprintf("model: %d×%d input and %d×%d output for %d×%d weights", x.Rows, x.Cols, out.Rows, out.Cols, a.w.Rows, a.w.Cols))
	}
	if x.Rows == 0 {
		return
	}
	fused := false
	switch {
	case x.Cols == 0:
		// Every input column is in the bias (a split network whose input
		// is all shared): each row is the bias.
		if bias == nil {
			bias = a.b
		}
		for r := range out.Rows {
			copy(out.Data[r*out.Stride:r*out.Stride+out.Cols], bias)
		}
	case a.p != nil:
		if bias == nil {
			bias = a.p.b
		}
		fused = act == ReLU
		a.p.gemm(x, bias, out, fused)
	default:
		if bias == nil {
			bias = a.b
		}
		dense(x, a.w, bias, out)
	}
	if !fused && act != Identity {
		for r := range out.Rows {
			applyActivation(act, out.Data[r*out.Stride:r*out.Stride+out.Cols])
		}
	}
}

// packed is a k×n weight matrix in panels of panelWidth columns: panel p
// holds columns [p·panelWidth, (p+1)·panelWidth) as k rows of panelWidth
// values, the columns beyond n zero. b is the bias padded with zeros to the
// same width.
type packed struct {
	k, n int
	w    []float32
	b    []float32
	// h holds the weights in bfloat16 for bf16Tile (see packBF16) when the
	// product is computed in BFloat16 (see affine.inPrecision); nil
	// otherwise.
	h []uint16
}

// paddedWidth rounds n up to a whole number of panels.
func paddedWidth(n int) int { return (n + panelWidth - 1) / panelWidth * panelWidth }

// pack lays out w and b (nil: zero) for the kernel.
func pack(w blas32.General, b []float32) *packed {
	np := paddedWidth(w.Cols)
	p := &packed{k: w.Rows, n: w.Cols, w: alignedFloats(w.Rows * np), b: make([]float32, np)}
	copy(p.b, b)
	for j0 := 0; j0 < w.Cols; j0 += panelWidth {
		panel := p.w[j0*w.Rows : (j0+panelWidth)*w.Rows]
		cols := min(panelWidth, w.Cols-j0)
		for k := range w.Rows {
			copy(panel[k*panelWidth:k*panelWidth+cols], w.Data[k*w.Stride+j0:])
		}
	}
	return p
}

// alignedFloats returns n zeros starting on a cache line, so that each row of
// a panel (64 bytes) is one line.
func alignedFloats(n int) []float32 {
	const line = 64 / 4
	s := make([]float32, n+line)
	off := int(uintptr(unsafe.Pointer(&s[0]))%64) / 4
	if off != 0 {
		off = line - off
	}
	return s[off : off+n : off+n]
}

// gemm computes out = x·W + bias, with ReLU if relu. bias has
// paddedWidth(n) values. x has k ≥ 1 columns.
func (p *packed) gemm(x blas32.General, bias []float32, out blas32.General, relu bool) {
	m := x.Rows
	// The kernel reads and writes through pointers: check the extents once
	// here, since it cannot.
	if x.Cols != p.k || p.k < 1 || x.Stride < p.k || len(x.Data) < (m-1)*x.Stride+p.k {
		panic(fmt.Sprintf("model: malformed %d×%d input (stride %d, %d values) for %d inputs", m, x.Cols, x.Stride, len(x.Data), p.k))
	}
	if out.Rows != m || out.Cols != p.n || out.Stride < p.n || len(out.Data) < (m-1)*out.Stride+p.n {
		panic(fmt.Sprintf("model: malformed %d×%d output (stride %d, %d values) for %d×%d", out.Rows, out.Cols, out.Stride, len(out.Data), m, p.n))
	}
	if len(bias) < paddedWidth(p.n) {
		panic(fmt.Sprintf("model: bias has %d values, the kernel reads %d", len(bias), paddedWidth(p.n)))
	}
	if p.h != nil {
		p.gemmBF16(x, bias, out, relu)
		return
	}
	// The last panel, when n is not a multiple of panelWidth, is written to
	// tmp and its valid columns copied out, so that the kernel always
	// stores whole rows.
	var a, c [kernelRows]*float32
	var tmp [kernelRows * panelWidth]float32
	for j0 := 0; j0 < p.n; j0 += panelWidth {
		panel := &p.w[j0*p.k]
		cols := min(panelWidth, p.n-j0)
		for i0 := 0; i0 < m; i0 += kernelRows {
			for r := range kernelRows {
				i := min(i0+r, m-1) // short tile: repeat the last row
				a[r] = &x.Data[i*x.Stride]
				if cols == panelWidth {
					c[r] = &out.Data[i*out.Stride+j0]
				} else {
					c[r] = &tmp[r*panelWidth]
				}
			}
			sgemmTile(p.k, &a, panel, &bias[j0], &c, relu)
			if cols < panelWidth {
				for r := range min(kernelRows, m-i0) {
					o := (i0+r)*out.Stride + j0
					copy(out.Data[o:o+cols], tmp[r*panelWidth:])
				}
			}
		}
	}
}
