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

// Package strpack keeps many small strings in a few large blocks, for the
// tables of a million ids that serving holds for its whole life.
//
// A garbage collection marks every object it can reach: a million ids
// decoded one by one are a million objects, marked again by every
// collection, which at a million items was most of a collection's work and
// lengthened the phase in which the collector takes a quarter of the CPU.
// The same ids in shared blocks are a few hundred objects (Packer), still
// behind a million pointers; an Arena locates them by integers, which a
// collection does not read at all. Go's unique
// package does not help here (it keeps each distinct string as its own
// object, behind weak pointers); no library packs strings this way, so it is
// written here.
package strpack

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"unsafe"
)

// blockSize is the size of a Packer's blocks. A string longer than an
// eighth of it gets an object of its own, so that a block wastes at most
// that much.
const blockSize = 64 << 10

// Packer copies strings into shared blocks. A block is never written
// where a returned string lies, so the strings are immutable as Go
// requires; a block is freed once no string returned from it is reachable.
// It is not safe for concurrent use.
type Packer struct {
	block []byte
}

// String returns a copy of s held in a shared block.
func (p *Packer) String(s string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > blockSize/8 {
		return strings.Clone(s)
	}
	if len(s) > cap(p.block)-len(p.block) {
		p.block = make([]byte, 0, blockSize)
	}
	off := len(p.block)
	p.block = append(p.block, s...)
	return unsafe.String(&p.block[off], len(s))
}

// Table is a fixed list of strings in one block with the end offset of
// each: two objects without pointers, which a collection marks without
// reading. The zero Table is empty.
type Table struct {
	data []byte
	end  []uint32
}

// NewTable copies ss into a Table. It fails when the strings total 4 GiB or
// more.
func NewTable(ss []string) (Table, error) {
	total := 0
	for _, s := range ss {
		total += len(s)
	}
	if total > math.MaxUint32 {
		return Table{}, fmt.Errorf("strpack: %d bytes of strings, at most %d", total, math.MaxUint32)
	}
	t := Table{data: make([]byte, 0, total), end: make([]uint32, len(ss))}
	for i, s := range ss {
		t.data = append(t.data, s...)
		t.end[i] = uint32(len(t.data))
	}
	return t, nil
}

// Len is the number of strings.
func (t *Table) Len() int { return len(t.end) }

// At returns string i, a view of the table (it allocates nothing).
func (t *Table) At(i int) string {
	start := uint32(0)
	if i > 0 {
		start = t.end[i-1]
	}
	n := t.end[i] - start
	if n == 0 {
		return ""
	}
	return unsafe.String(&t.data[start], n)
}

// arenaBlock is the size of an Arena's blocks, and so the longest string an
// Arena holds.
const arenaBlock = 64 << 10

// MaxArenaString is the longest string an Arena holds.
const MaxArenaString = math.MaxUint16

// Loc locates a string of an Arena: its block, offset and length.
type Loc uint64

// Arena copies strings into shared blocks and locates each by a Loc, a
// plain integer: a table of a million Locs is an object without pointers,
// which a collection does not read, where a million string headers (even
// into shared blocks, as Packer's) are a million pointers for every
// collection to follow. Blocks are only appended to, so a string stays
// where it was written. Add must be called by one goroutine at a time; At
// is safe concurrently with Add for any Loc that Add has returned, once the
// Loc has reached the reader through a synchronising operation (an atomic
// store and load, a lock).
type Arena struct {
	blocks atomic.Pointer[[]*[arenaBlock]byte]
	fill   int // bytes used of the last block; the writer's alone
}

// Add copies s into the arena and returns its Loc. It panics if s is longer
// than MaxArenaString.
func (a *Arena) Add(s string) Loc {
	if len(s) > MaxArenaString {
		panic(fmt.Sprintf("strpack: a %d-byte string in an Arena, at most %d", len(s), MaxArenaString))
	}
	if len(s) == 0 {
		return 0
	}
	p := a.blocks.Load()
	if p == nil || len(s) > arenaBlock-a.fill {
		var blocks []*[arenaBlock]byte
		if p != nil {
			blocks = *p
		}
		// A new slice each time: readers may hold the old one.
		grown := append(blocks[:len(blocks):len(blocks)], new([arenaBlock]byte))
		a.blocks.Store(&grown)
		p, a.fill = &grown, 0
	}
	b := len(*p) - 1
	off := a.fill
	copy((*p)[b][off:], s)
	a.fill += len(s)
	return Loc(uint64(b)<<32 | uint64(off)<<16 | uint64(len(s)))
}

// At returns the string at loc, a view of the arena (it allocates
// nothing).
func (a *Arena) At(loc Loc) string {
	n := uint16(loc)
	if n == 0 {
		return ""
	}
	block := (*a.blocks.Load())[loc>>32]
	return unsafe.String(&block[uint16(loc>>16)], n)
}
