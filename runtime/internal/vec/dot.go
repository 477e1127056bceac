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

// Package vec holds the float32 vector kernels the runtime shares: the
// inner product that the ANN index, the ranker's value and the synthetic
// world's affinities compute, and DescKey, which sorts scores best first
// by integer. On amd64 CPUs with AVX2 and FMA the inner product runs an
// assembly kernel; elsewhere (and with the purego build tag) a portable
// unrolled loop. The two may differ in the last bits of a float32 sum.
package vec

// dotGeneric returns the inner product of a and b, which must have equal
// lengths. The loop is unrolled by eight with four accumulators so that the
// compiler keeps them in registers and hoists the bounds checks. It serves
// CPUs without AVX2 and FMA.
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += aa[0]*bb[0] + aa[4]*bb[4]
		s1 += aa[1]*bb[1] + aa[5]*bb[5]
		s2 += aa[2]*bb[2] + aa[6]*bb[6]
		s3 += aa[3]*bb[3] + aa[7]*bb[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}
