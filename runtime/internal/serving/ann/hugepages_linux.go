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

import (
	"syscall"
	"unsafe"
)

// adviseHugePages asks Linux to back s with 2 MiB pages where it is first
// touched, when transparent huge pages are enabled in "madvise" mode (in
// "always" mode they are used anyway, in "never" mode this does nothing). A
// search reads hundreds of vectors and neighbour lists scattered over the
// slabs; with 4 KiB pages nearly every such read also misses the TLB and
// walks the page table, which costs about a tenth of a search on a million
// items. Only whole huge pages inside s are advised, so other memory is
// untouched.
func adviseHugePages[T any](s []T) {
	const huge = 2 << 20
	if len(s) == 0 {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(s))
	p := uintptr(base)
	lo := (p + huge - 1) &^ (huge - 1)
	hi := (p + uintptr(len(s))*unsafe.Sizeof(s[0])) &^ (huge - 1)
	if lo >= hi {
		return
	}
	// The advice is a hint: without it, the slab works as before.
	_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, lo-p)), hi-lo), syscall.MADV_HUGEPAGE)
}
