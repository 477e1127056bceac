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
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/recpipeline/recpipeline/runtime/internal/race"
)

// hugePage is the size of a transparent huge page on amd64 and arm64.
const hugePage = 2 << 20

// hugeSlab returns n zeroed Ts for a slab that searches read at random, in
// a mapping of its own that starts on a huge page boundary and asks Linux
// to back it with 2 MiB pages (when transparent huge pages are enabled in
// "madvise" mode; in "always" mode they are used anyway, in "never" mode
// the advice does nothing). A search reads hundreds of vectors and
// neighbour lists scattered over the slabs; with 4 KiB pages nearly every
// such read also misses the TLB and walks the page table. Go heap memory
// starts wherever its span does, so only the huge pages wholly inside a
// slab could be advised there: half of the index's memory at 32,768 nodes a
// segment. Aligned, the for-you search of the 800 best of a million items
// takes about a third less CPU in recserve (BENCHMARKS.md, issue 16).
// The mapping is unmapped once owner is unreachable, so the slab must not
// be used past owner; T must hold no pointers. Slabs below a huge page, or
// a failed mapping, come from the heap, as do all slabs under the race
// detector, which sees no synchronisation in memory it does not shadow (a
// node's neighbour lists publish the fields stored before them).
//
// The Go memory limit counts only the heap: it is lowered by the slab's
// size while the slab is mapped, so that the process stays within it.
func hugeSlab[T any, O any](owner *O, n int) []T {
	var zero T
	size := uintptr(n) * unsafe.Sizeof(zero)
	if size < hugePage || race.Enabled {
		return make([]T, n)
	}
	size = (size + 4095) &^ 4095
	m, err := unix.MmapPtr(-1, 0, nil, size+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]T, n)
	}
	// Keep the aligned part of the mapping and return the rest.
	p := uintptr(m)
	lo := (p + hugePage - 1) &^ (hugePage - 1)
	if lo > p {
		_ = unix.MunmapPtr(m, lo-p)
	}
	if end := p + size + hugePage; end > lo+size {
		_ = unix.MunmapPtr(unsafe.Add(m, lo+size-p), end-lo-size)
	}
	slab := unsafe.Add(m, lo-p)
	// The advice is a hint: without it, the slab works as before.
	_ = unix.Madvise(unsafe.Slice((*byte)(slab), size), unix.MADV_HUGEPAGE)
	charged := chargeLimit(int64(size))
	runtime.AddCleanup(owner, func(slab unsafe.Pointer) {
		if unix.MunmapPtr(slab, size) == nil && charged {
			chargeLimit(-int64(size))
		}
	}, slab)
	return unsafe.Slice((*T)(slab), n)
}

// limitMu serialises chargeLimit's changes of the memory limit.
var limitMu sync.Mutex

// chargeLimit lowers the Go memory limit by delta bytes mapped outside the
// heap, or raises it for a negative delta, unless no limit is set, and
// reports whether it changed the limit: a slab mapped while there was none
// gives nothing back.
func chargeLimit(delta int64) bool {
	limitMu.Lock()
	defer limitMu.Unlock()
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		return false
	}
	debug.SetMemoryLimit(max(limit-delta, 0))
	return true
}
