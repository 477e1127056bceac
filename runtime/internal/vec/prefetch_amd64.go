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

import "unsafe"

// Prefetch starts loading the cache lines of s, so that a later read of it
// need not wait on memory. Hot loops that read scattered rows (an ANN
// search's neighbours, a batch of items' features) ask for the rows of the
// next few steps while they work on this one.
func Prefetch[T any](s []T) {
	var zero T
	prefetchRange(unsafe.Pointer(unsafe.SliceData(s)), uintptr(len(s))*unsafe.Sizeof(zero))
}

// PrefetchRows starts loading the n elements from each pointer of rows, in
// one call for the batch: the rows of the neighbours an HNSW search is about
// to score, where a call per row cost more than the prefetches.
func PrefetchRows[T any](rows []*T, n int) {
	var zero T
	prefetchRows(unsafe.Pointer(unsafe.SliceData(rows)), uintptr(len(rows)), uintptr(n)*unsafe.Sizeof(zero))
}

//go:noescape
func prefetchRows(rows unsafe.Pointer, count, n uintptr)

// prefetchRange asks for the cache lines of the n bytes from p.
//
//go:noescape
func prefetchRange(p unsafe.Pointer, n uintptr)
