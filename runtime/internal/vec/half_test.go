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

package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// TestEncodeHalf checks the rounding and range of the half-precision
// encoding against values whose encodings are known.
func TestEncodeHalf(t *testing.T) {
	tests := []struct {
		in   float32
		want uint16
	}{
		{0, 0x0000},
		{1, 0x3c00},
		{-2, 0xc000},
		{0.333251953125, 0x3555},            // exact
		{1 + 1.0/2048, 0x3c00},              // a tie rounds to the even 1
		{1 + 3.0/2048, 0x3c02},              // a tie rounds to the even 1+2⁻⁹
		{65504, 0x7bff},                     // the largest finite
		{1e6, 0x7c00},                       // past the range: +Inf
		{float32(math.Pow(2, -24)), 0x0001}, // the smallest subnormal
		{float32(math.Pow(2, -14)), 0x0400}, // the smallest normal
	}
	impls := map[string]func([]uint16, []float32){"EncodeHalf": EncodeHalf, "encodeHalfGeneric": encodeHalfGeneric}
	for name, encode := range impls {
		for _, tc := range tests {
			got := make([]uint16, 1)
			encode(got, []float32{tc.in})
			if got[0] != tc.want {
				t.Errorf("%s(%g) = %#04x, want %#04x", name, tc.in, got[0], tc.want)
			}
		}
	}
}

// TestEncodeHalfKernels checks that EncodeHalf gives the portable
// encoder's bits for values of every magnitude the format has (subnormal,
// normal, past the range) and both signs, in every length's tail, and
// writes nothing past the source's length.
func TestEncodeHalfKernels(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	src := make([]float32, 4096)
	for i := range src {
		src[i] = float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(50)-30))
		if i%2 == 1 {
			src[i] = -src[i]
		}
	}
	got, want := make([]uint16, len(src)), make([]uint16, len(src))
	EncodeHalf(got, src)
	encodeHalfGeneric(want, src)
	for i := range src {
		if got[i] != want[i] {
			t.Fatalf("EncodeHalf(%g) = %#04x, the portable encoder %#04x", src[i], got[i], want[i])
		}
	}
	for n := 0; n <= 40; n++ {
		dst := make([]uint16, n+1)
		dst[n] = 0xabcd
		EncodeHalf(dst, src[:n])
		for i := 0; i < n; i++ {
			if dst[i] != want[i] {
				t.Fatalf("length %d: element %d = %#04x, want %#04x", n, i, dst[i], want[i])
			}
		}
		if dst[n] != 0xabcd {
			t.Fatalf("length %d: wrote past the source's length", n)
		}
	}
}

// halves returns n random half-precision values and their float32 values.
func halves(rng *rand.Rand, n int) ([]uint16, []float32) {
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	h := make([]uint16, n)
	EncodeHalf(h, f)
	decodeHalfGeneric(f, h)
	return h, f
}

// TestDecodeHalf checks that DecodeHalf widens every half-precision value,
// subnormals, infinities and the tail of every length included, exactly as
// the portable decoder does, and that encoding the result gives the same
// bits back.
func TestDecodeHalf(t *testing.T) {
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	got, want := make([]float32, len(all)), make([]float32, len(all))
	DecodeHalf(got, all)
	decodeHalfGeneric(want, all)
	back := make([]uint16, len(all))
	EncodeHalf(back, got)
	for i := range all {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(math.IsNaN(float64(got[i])) && math.IsNaN(float64(want[i]))) {
			t.Fatalf("DecodeHalf(%#04x) = %g, want %g", i, got[i], want[i])
		}
		if !math.IsNaN(float64(got[i])) && back[i] != all[i] {
			t.Fatalf("EncodeHalf(DecodeHalf(%#04x)) = %#04x", i, back[i])
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	h, f := halves(rng, 40)
	for n := 0; n <= len(h); n++ {
		dst := make([]float32, n+1)
		dst[n] = 7 // past the length: left alone
		DecodeHalf(dst, h[:n])
		for i := 0; i < n; i++ {
			if dst[i] != f[i] {
				t.Fatalf("length %d: element %d = %g, want %g", n, i, dst[i], f[i])
			}
		}
		if dst[n] != 7 {
			t.Fatalf("length %d: wrote past the source's length", n)
		}
	}
}

// TestDotHalf checks both half-precision inner products against float64
// arithmetic on the decoded values, for lengths that exercise each unrolled
// step and its tail and for slices that start off any alignment.
func TestDotHalf(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	a := make([]float32, 300)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	h, f := halves(rng, 300)
	impls := map[string]func([]float32, []uint16) float32{"DotHalf": DotHalf, "dotHalfGeneric": dotHalfGeneric}
	for name, dot := range impls {
		for n := 0; n <= 100; n++ {
			for _, off := range []int{0, 1, 3} {
				x, y, yf := a[off:off+n], h[150+2*off:150+2*off+n], f[150+2*off:150+2*off+n]
				var want, mag float64
				for i := range x {
					want += float64(x[i]) * float64(yf[i])
					mag += math.Abs(float64(x[i]) * float64(yf[i]))
				}
				got := float64(dot(x, y))
				if math.Abs(got-want) > 1e-5*(mag+1) {
					t.Errorf("%s, length %d, offset %d: got %g, want %g", name, n, off, got, want)
				}
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("DotHalf with a shorter b did not panic")
		}
	}()
	DotHalf(a[:3], h[:2:2])
}

// TestDotHalfRows checks that scoring a batch of rows gives each row exactly
// what DotHalf gives it, on both paths (each against its own DotHalf), for widths that exercise each step
// and its tail and rows that start off any alignment, and that a batch of
// none writes nothing.
func TestDotHalfRows(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	a := make([]float32, 100)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	h, _ := halves(rng, 4000)
	impls := map[string]struct {
		rows func([]float32, []*uint16, []float32)
		one  func([]float32, []uint16) float32
	}{"DotHalfRows": {DotHalfRows, DotHalf}, "dotHalfRowsGeneric": {dotHalfRowsGeneric, dotHalfGeneric}}
	for name, impl := range impls {
		rowsDot := impl.rows
		for _, n := range []int{1, 7, 8, 31, 32, 33, 64, 70, 100} {
			var rows []*uint16
			var want []float32
			for r := 0; r < 23; r++ {
				at := rng.IntN(len(h) - n)
				rows = append(rows, &h[at])
				want = append(want, impl.one(a[:n], h[at:at+n]))
			}
			out := make([]float32, len(rows)+1)
			out[len(rows)] = 42
			rowsDot(a[:n], rows, out)
			for i := range rows {
				if out[i] != want[i] {
					t.Errorf("%s, width %d, row %d: got %g, want %g", name, n, i, out[i], want[i])
				}
			}
			if out[len(rows)] != 42 {
				t.Errorf("%s, width %d: wrote past the rows", name, n)
			}
		}
		out := []float32{42}
		rowsDot(a[:8], nil, out)
		if out[0] != 42 {
			t.Errorf("%s: no rows wrote %g", name, out[0])
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("DotHalfRows with a shorter out did not panic")
		}
	}()
	DotHalfRows(a[:8], []*uint16{&h[0], &h[8]}, make([]float32, 1))
}

// BenchmarkDotHalfRows scores 32 rows scattered over 4 MiB, an HNSW node's
// neighbours, in one call and a call per row.
func BenchmarkDotHalfRows(b *testing.B) {
	const dim, n = 64, 1 << 15
	x, y := make([]float32, dim), make([]uint16, dim*n)
	for i := range x {
		x[i] = float32(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]*uint16, 32)
	for i := range rows {
		rows[i] = &y[rng.IntN(n)*dim]
	}
	out := make([]float32, len(rows))
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			DotHalfRows(x, rows, out)
		}
	})
	b.Run("each", func(b *testing.B) {
		for b.Loop() {
			for i, r := range rows {
				out[i] = DotHalf(x, unsafe.Slice(r, dim))
			}
		}
	})
}

// BenchmarkDotHalf measures one inner product with a half-precision vector
// at the ANN index's width and a wide one, beside BenchmarkDot's float32.
func BenchmarkDotHalf(b *testing.B) {
	for _, n := range []int{64, 256} {
		x, y := make([]float32, n), make([]uint16, n)
		for i := range x {
			x[i] = float32(i)
		}
		EncodeHalf(y, x)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				sink += DotHalf(x, y)
			}
		})
	}
}
