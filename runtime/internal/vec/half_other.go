//go:build !amd64 || purego

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

// DotHalf returns the inner product of a and the half-precision vector b
// (see EncodeHalf). It panics if b is shorter than a; b's elements past
// len(a) are ignored.
func DotHalf(a []float32, b []uint16) float32 { return dotHalfGeneric(a, b) }

// DotHalfRows sets out[i] to DotHalf(a, the row at rows[i]) for every row:
// each row is len(a) half-precision values from its pointer. It panics if
// out is shorter than rows.
func DotHalfRows(a []float32, rows []*uint16, out []float32) {
	dotHalfRowsGeneric(a, rows, out[:len(rows)])
}

// EncodeHalf stores src in dst at half precision, rounding to nearest even;
// values past the range become ±Inf. It panics if dst is shorter than src.
func EncodeHalf(dst []uint16, src []float32) { encodeHalfGeneric(dst, src) }

// DecodeHalf widens the half-precision values of src into dst, exactly. It
// panics if dst is shorter than src.
func DecodeHalf(dst []float32, src []uint16) { decodeHalfGeneric(dst, src) }
