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

package strpack

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func TestPacker(t *testing.T) {
	var p Packer
	in := []string{"", "a", "item-1", strings.Repeat("x", blockSize/8), strings.Repeat("y", blockSize/8+1), "é"}
	for i := range 20000 {
		in = append(in, fmt.Sprintf("item-%d", i))
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = p.String(s)
	}
	// Every string is still its value after all the packing that followed.
	for i := range in {
		if out[i] != in[i] {
			t.Fatalf("string %d = %q, want %q", i, out[i], in[i])
		}
	}
}

func TestPackerObjects(t *testing.T) {
	const n = 100000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("item-%07d", i)
	}
	objects := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapObjects
	}
	before := objects()
	var p Packer
	packed := make([]string, n)
	for i, s := range ids {
		packed[i] = p.String(s)
	}
	// ids is not used again: the decoded copies are garbage now.
	after := objects()
	// The decoded ids (n objects) are garbage; the packed ones fill
	// n·12/64Ki blocks, and packed is one object more.
	if after > before-n/2 {
		t.Errorf("heap objects %d → %d after packing %d ids: the ids are still objects of their own", before, after, n)
	}
	if packed[n-1] != fmt.Sprintf("item-%07d", n-1) {
		t.Errorf("last id = %q", packed[n-1])
	}
	runtime.KeepAlive(packed)
}

func TestTable(t *testing.T) {
	tests := map[string][]string{
		"empty":          nil,
		"one":            {"a"},
		"empty strings":  {"", "b", "", ""},
		"ids":            {"item-1", "item-22", "item-333", "é"},
		"first is empty": {"", "x"},
		"last is long":   {"a", strings.Repeat("z", 1000)},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			tab, err := NewTable(in)
			if err != nil {
				t.Fatal(err)
			}
			if tab.Len() != len(in) {
				t.Fatalf("Len = %d, want %d", tab.Len(), len(in))
			}
			for i, s := range in {
				if got := tab.At(i); got != s {
					t.Errorf("At(%d) = %q, want %q", i, got, s)
				}
			}
		})
	}
}

func TestTableAtAllocates(t *testing.T) {
	tab, err := NewTable([]string{"item-1", "item-2", ""})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if a := testing.AllocsPerRun(100, func() { n += len(tab.At(1)) + len(tab.At(2)) }); a != 0 {
		t.Errorf("At allocates %v times a call, want 0", a)
	}
}

// TestArena: every string comes back from its Loc, whatever was added
// after it, across block ends, for the empty string and the longest one;
// a longer one is refused.
func TestArena(t *testing.T) {
	var a Arena
	in := []string{"", "a", strings.Repeat("x", MaxArenaString), "é", strings.Repeat("y", arenaBlock/2+1), strings.Repeat("z", arenaBlock/2+1)}
	for i := range 50000 {
		in = append(in, fmt.Sprintf("item-%d", i))
	}
	locs := make([]Loc, len(in))
	for i, s := range in {
		locs[i] = a.Add(s)
	}
	if n := len(*a.blocks.Load()); n < 3 {
		t.Fatalf("%d blocks: the strings should span several", n)
	}
	for i := range in {
		if got := a.At(locs[i]); got != in[i] {
			t.Fatalf("string %d = %.20q (%d bytes), want %.20q (%d bytes)", i, got, len(got), in[i], len(in[i]))
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Add of a string past MaxArenaString did not panic")
		}
	}()
	a.Add(strings.Repeat("w", MaxArenaString+1))
}

// TestArenaReadWhileAdding: readers read every Loc published so far while
// one writer adds (run with -race: At must not read what Add writes).
func TestArenaReadWhileAdding(t *testing.T) {
	var a Arena
	const n = 30000
	locs := make([]Loc, n)
	var published atomic.Int64
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r; ; i++ {
				m := published.Load()
				if m == n {
					return
				}
				if m == 0 {
					continue
				}
				j := int64(i) % m
				if got, want := a.At(locs[j]), fmt.Sprintf("id-%d", j); got != want {
					t.Errorf("Loc %d reads %q, want %q", j, got, want)
					return
				}
			}
		}()
	}
	for i := range n {
		locs[i] = a.Add(fmt.Sprintf("id-%d", i))
		published.Store(int64(i + 1))
	}
	wg.Wait()
}
