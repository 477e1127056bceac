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
	"testing"
	"time"
	"unsafe"

	"github.com/recpipeline/recpipeline/runtime/internal/race"
)

func TestHugeSlabIsAlignedChargedAndReleased(t *testing.T) {
	if race.Enabled {
		t.Skip("under the race detector slabs come from the heap")
	}
	// A slab mapped without a limit, collected while one is set, leaves it
	// alone.
	old := debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	earlier := new(int)
	_ = hugeSlab[uint16](earlier, hugePage)
	const limit = 8 << 30
	debug.SetMemoryLimit(limit)
	runtime.KeepAlive(earlier)
	for range 3 {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Fatalf("memory limit %d after a slab mapped without one was collected, want %d", got, limit)
	}

	owner := new(int)
	n := (3<<20)/4 + 5 // 3 MiB and a few bytes of uint32s
	s := hugeSlab[uint32](owner, n)
	if len(s) != n {
		t.Fatalf("len %d, want %d", len(s), n)
	}
	if p := uintptr(unsafe.Pointer(unsafe.SliceData(s))); p%hugePage != 0 {
		t.Errorf("slab at %#x, not on a huge page boundary", p)
	}
	for i, x := range s {
		if x != 0 {
			t.Fatalf("s[%d] = %d, want zeroed memory", i, x)
		}
	}
	s[0], s[n-1] = 1, 2 // the whole slab is writable
	size := int64(n*4+4095) &^ 4095
	if got := debug.SetMemoryLimit(-1); got != limit-size {
		t.Fatalf("memory limit %d while mapped, want %d (lowered by the slab's %d bytes)", got, limit-size, size)
	}
	runtime.KeepAlive(owner)

	// Past its last use the owner is unreachable: the slab is unmapped and
	// the limit given back.
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) != limit {
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d after the owner was collected, want %d", debug.SetMemoryLimit(-1), limit)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}

	// A slab below a huge page comes from the heap and charges nothing.
	small := hugeSlab[uint16](new(int), 1000)
	if len(small) != 1000 || debug.SetMemoryLimit(-1) != limit {
		t.Errorf("small slab: len %d, limit %d; want 1000 and %d", len(small), debug.SetMemoryLimit(-1), limit)
	}
}
