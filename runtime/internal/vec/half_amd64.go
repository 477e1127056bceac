//go:build amd64 && !purego

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

// useHalf reports whether the CPU also converts half-precision values
// (F16C), which the half-precision kernels need besides AVX2 and FMA.
var useHalf = useAVX2 && hasF16C()

// DotHalf returns the inner product of a and the half-precision vector b
// (see EncodeHalf). It panics if b is shorter than a; b's elements past
// len(a) are ignored.
func DotHalf(a []float32, b []uint16) float32 {
	if useHalf {
		b = b[:len(a)]
		if len(a) == 0 {
			return 0
		}
		// One row of the batch kernel: one copy of the loop.
		rows, out := [1]*uint16{&b[0]}, [1]float32{}
		dotHalfRowsAVX2(a, rows[:], out[:])
		return out[0]
	}
	return dotHalfGeneric(a, b)
}

// DotHalfRows sets out[i] to DotHalf(a, the row at rows[i]) for every row:
// each row is len(a) half-precision values from its pointer. One call
// scores a whole batch, as an HNSW search scores a node's neighbours, where
// a call per row (and its ABI wrapper) cost as much as the arithmetic. It
// panics if out is shorter than rows.
func DotHalfRows(a []float32, rows []*uint16, out []float32) {
	out = out[:len(rows)]
	if useHalf {
		dotHalfRowsAVX2(a, rows, out)
		return
	}
	dotHalfRowsGeneric(a, rows, out)
}

// EncodeHalf stores src in dst at half precision, rounding to nearest even;
// values past the range become ±Inf. It panics if dst is shorter than src.
func EncodeHalf(dst []uint16, src []float32) {
	if useHalf {
		encodeHalfAVX2(dst[:len(src)], src)
		return
	}
	encodeHalfGeneric(dst, src)
}

// DecodeHalf widens the half-precision values of src into dst, exactly. It
// panics if dst is shorter than src.
func DecodeHalf(dst []float32, src []uint16) {
	if useHalf {
		decodeHalfAVX2(dst[:len(src)], src)
		return
	}
	decodeHalfGeneric(dst, src)
}

// hasF16C reports whether CPUID announces F16C (leaf 1, ECX bit 29);
// golang.org/x/sys/cpu does not report it.
func hasF16C() bool {
	_, _, ecx, _ := cpuid(1, 0)
	return ecx&(1<<29) != 0
}

//go:noescape
func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

// dotHalfRowsAVX2 is DotHalfRows with AVX2, FMA and F16C; len(out) must
// equal len(rows).
//
//go:noescape
func dotHalfRowsAVX2(a []float32, rows []*uint16, out []float32)

// encodeHalfAVX2 is EncodeHalf with F16C; len(dst) must equal len(src).
//
//go:noescape
func encodeHalfAVX2(dst []uint16, src []float32)

// decodeHalfAVX2 is DecodeHalf with F16C; len(dst) must equal len(src).
//
//go:noescape
func decodeHalfAVX2(dst []float32, src []uint16)
