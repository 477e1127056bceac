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

import "github.com/x448/float16"

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

// dotHalfGeneric is DotHalf without the assembly kernel, its sums in the
// order dotGeneric's are.
func dotHalfGeneric(a []float32, b []uint16) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += aa[0]*half(bb[0]) + aa[4]*half(bb[4])
		s1 += aa[1]*half(bb[1]) + aa[5]*half(bb[5])
		s2 += aa[2]*half(bb[2]) + aa[6]*half(bb[6])
		s3 += aa[3]*half(bb[3]) + aa[7]*half(bb[7])
	}
	for ; i < len(a); i++ {
		s0 += a[i] * half(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}

func half(h uint16) float32 { return float16.Frombits(h).Float32() }
