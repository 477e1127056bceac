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
	"slices"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas/blas32"
)

// Precision is the arithmetic of the networks' matrix products.
type Precision int

const (
	// Float32 multiplies in float32 throughout.
	Float32 Precision = iota
	// BFloat16 rounds each layer's inputs and weights to bfloat16 (8
	// significant bits) and accumulates their products in float32, as
	// inference libraries do on CPUs with native bfloat16 dot products:
	// twice the multiplications per cycle of float32 FMA on them (AVX-512
	// BF16). A layer's output then differs from float32's by up to about
	// 2⁻⁸ of the sum of its terms' magnitudes.
	BFloat16
)

// String returns the name of p as recserve's --matmul-precision takes it.
func (p Precision) String() string {
	switch p {
	case Float32:
		return "float32"
	case BFloat16:
		return "bfloat16"
	default:
		return fmt.Sprintf("Precision(%d)", int(p))
	}
}

// BFloat16Supported reports whether this CPU multiplies bfloat16 natively
// (AVX-512 BF16 with the operating system's support), the only place the
// BFloat16 precision is offered: elsewhere it would be slower than float32.
func BFloat16Supported() bool { return useKernel && hasBF16 }

// inPrecision returns a with its product computed in p: the same weights,
// packed for p's kernel. A network on gonum (no kernel) stays as it is.
func (a affine) inPrecision(p Precision) affine {
	if a.p == nil {
		return a
	}
	packed := *a.p
	packed.h = nil
	if p == BFloat16 {
		packed.h = packBF16(a.w)
	}
	a.p = &packed
	return a
}

// bfPanel is the width in columns of a panel of bfloat16 weights, and of
// the bfloat16 kernel's tile.
const bfPanel = 32

// toBF16 rounds f to bfloat16 (its top 16 bits) to nearest, ties to even,
// as VCVTNEPS2BF16 does: NaNs stay NaN (quiet) and subnormals become zero
// of the same sign.
func toBF16(f float32) uint16 {
	b := math.Float32bits(f)
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return uint16(b>>16) | 0x40
	case b&0x7f800000 == 0: // zero or subnormal
		return uint16(b>>16) & 0x8000
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// fromBF16 widens a bfloat16 to float32 exactly.
func fromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// packBF16 lays out w for the bfloat16 kernel: panels of bfPanel columns,
// each holding, for each pair of rows 2p and 2p+1 of w (an odd last row
// paired with a zero), bfPanel pairs {w[2p][j], w[2p+1][j]}, the columns
// beyond w.Cols zero.
func packBF16(w blas32.General) []uint16 {
	kp := (w.Rows + 1) / 2
	np := (w.Cols + bfPanel - 1) / bfPanel * bfPanel
	h := alignedUint16s(2 * kp * np)
	for j0 := 0; j0 < w.Cols; j0 += bfPanel {
		panel := h[2*kp*j0 : 2*kp*(j0+bfPanel)]
		for k := range w.Rows {
			row := w.Data[k*w.Stride+j0 : k*w.Stride+min(j0+bfPanel, w.Cols)]
			base := k/2*2*bfPanel + k%2
			for j, v := range row {
				panel[base+2*j] = toBF16(v)
			}
		}
	}
	return h
}

// alignedUint16s returns n zeros starting on a cache line, so that a panel's
// pair rows (128 bytes) are whole lines.
func alignedUint16s(n int) []uint16 {
	const line = 64 / 2
	s := make([]uint16, n+line)
	off := int(uintptr(unsafe.Pointer(&s[0]))%64) / 2
	if off != 0 {
		off = line - off
	}
	return s[off : off+n : off+n]
}

// bf16Rows pools the bfloat16 copies of gemmBF16's inputs.
var bf16Rows = sync.Pool{New: func() any { return new([]uint16) }}

// toBF16Row rounds src into dst and zeroes the rest of dst.
func toBF16Row(dst []uint16, src []float32) {
	n := len(src) &^ 15
	if n > 0 {
		toBF16x16(&dst[0], &src[0], n)
	}
	for i := n; i < len(src); i++ {
		dst[i] = toBF16(src[i])
	}
	clear(dst[len(src):])
}

// gemmBF16 is gemm on the bfloat16 kernel: x is rounded to bfloat16 row by
// row (each padded with a zero to an even length), then multiplied by the
// bfloat16 panels tile by tile, in float32.
func (p *packed) gemmBF16(x blas32.General, bias []float32, out blas32.General, relu bool) {
	m := x.Rows
	kp := (p.k + 1) / 2
	stride := 2 * kp
	sc := bf16Rows.Get().(*[]uint16)
	rows := slices.Grow((*sc)[:0], m*stride)[:m*stride]
	for i := range m {
		toBF16Row(rows[i*stride:(i+1)*stride], x.Data[i*x.Stride:i*x.Stride+p.k])
	}
	// As in gemm, a last panel narrower than bfPanel is written to tmp
	// and its valid columns copied out; its bias is padded in tb.
	var a [kernelRows]*uint16
	var c [kernelRows]*float32
	var tmp [kernelRows * bfPanel]float32
	var tb [bfPanel]float32
	for j0 := 0; j0 < p.n; j0 += bfPanel {
		panel := &p.h[stride*j0]
		cols := min(bfPanel, p.n-j0)
		b := &bias[j0]
		if cols < bfPanel {
			clear(tb[copy(tb[:], bias[j0:j0+cols]):])
			b = &tb[0]
		}
		for i0 := 0; i0 < m; i0 += kernelRows {
			for r := range kernelRows {
				i := min(i0+r, m-1) // short tile: repeat the last row
				a[r] = &rows[i*stride]
				if cols == bfPanel {
					c[r] = &out.Data[i*out.Stride+j0]
				} else {
					c[r] = &tmp[r*bfPanel]
				}
			}
			bf16Tile(kp, &a, panel, b, &c, relu)
			if cols < bfPanel {
				for r := range min(kernelRows, m-i0) {
					o := (i0+r)*out.Stride + j0
					copy(out.Data[o:o+cols], tmp[r*bfPanel:])
				}
			}
		}
	}
	*sc = rows[:0]
	bf16Rows.Put(sc)
}
