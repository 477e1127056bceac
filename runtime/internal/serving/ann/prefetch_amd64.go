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

package ann

import "unsafe"

// prefetchU16 starts loading v into the cache, so that a later read of it
// need not wait on memory.
func prefetchU16(v []uint16) {
	prefetchRange(unsafe.Pointer(unsafe.SliceData(v)), uintptr(len(v))*2)
}

// prefetchU32 is prefetchU16 for a slice of uint32.
func prefetchU32(v []uint32) {
	prefetchRange(unsafe.Pointer(unsafe.SliceData(v)), uintptr(len(v))*4)
}

// prefetchF32 is prefetchU16 for a slice of float32.
func prefetchF32(v []float32) {
	prefetchRange(unsafe.Pointer(unsafe.SliceData(v)), uintptr(len(v))*4)
}

// prefetchRange asks for the cache lines of the n bytes from p.
//
//go:noescape
func prefetchRange(p unsafe.Pointer, n uintptr)
