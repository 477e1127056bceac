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
	"unsafe"

	"github.com/x448/float16"
)

// Half-precision vectors hold IEEE 754 binary16 values as their bits, a
// uint16 each: half the memory of float32, and half the cache lines that a
// search must bring in from memory per vector it scores. Each value keeps
// 11 significant bits (a relative error of at most 2⁻¹¹), over a range of
// ±65504 with normal values from 6.1e-5.

// encodeHalfGeneric is EncodeHalf without the assembly kernel.
func encodeHalfGeneric(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = float16.Fromfloat32(x).Bits()
	}
}

// decodeHalfGeneric is DecodeHalf without the assembly kernel.
func decodeHalfGeneric(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = float16.Frombits(h).Float32()
	}
}

// dotHalfGeneric is DotHalf without the assembly kernel: dotGeneric over
// b widened 64 values at a time.
func dotHalfGeneric(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var wide [64]float32
	var sum float32
	for len(a) > 0 {
		k := min(len(a), len(wide))
		decodeHalfGeneric(wide[:k], b[:k])
		sum += dotGeneric(a[:k], wide[:k])
		a, b = a[k:], b[k:]
	}
	return sum
}

func dotHalfRowsGeneric(a []float32, rows []*uint16, out []float32) {
	for i, r := range rows {
		out[i] = dotHalfGeneric(a, unsafe.Slice(r, len(a)))
	}
}
