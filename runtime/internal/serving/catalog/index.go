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

package catalog

import (
	"hash/maphash"
	"sync/atomic"
)

// hashIndex maps string keys to ordinals without locks on the read side. It
// is an open-addressing table with linear probing whose slots hold, in one
// 64-bit word, the top half of the key's hash and the ordinal plus one (0
// marks an empty slot). The keys themselves are not stored: a probe confirms
// a candidate slot by comparing the key with the name the owner stores for
// that ordinal.
//
// One writer at a time inserts (the owner serialises writers); any number of
// readers probe concurrently. A slot is published with an atomic store after
// everything the owner stores for the ordinal, so a reader that finds the
// slot sees the owner's data. When the table is half full the writer builds
// a table twice the size and swaps it in atomically; readers still probing
// the old one finish there, which is never written again.
type hashIndex struct {
	seed  maphash.Seed
	table atomic.Pointer[slotTable]
	count int // writer only
}

type slotTable struct {
	slots []atomic.Uint64
	mask  uint64
}

const minSlots = 64

func newHashIndex(capacity int) *hashIndex {
	x := &hashIndex{seed: maphash.MakeSeed()}
	x.table.Store(newSlotTable(slotsFor(capacity)))
	return x
}

// slotsFor returns the power-of-two table size that holds n keys at most
// half full.
func slotsFor(n int) int {
	size := minSlots
	for size < 2*n {
		size *= 2
	}
	return size
}

func newSlotTable(size int) *slotTable {
	return &slotTable{slots: make([]atomic.Uint64, size), mask: uint64(size - 1)}
}

// hash32 is the key's 32-bit hash: it both starts the probe and is kept in
// the slot, so growing the table needs no key.
func (x *hashIndex) hash32(key string) uint64 { return maphash.String(x.seed, key) >> 32 }

// lookup returns the ordinal whose key is key; is(o) reports whether the key
// stored for ordinal o equals key.
func (x *hashIndex) lookup(key string, is func(o uint32) bool) (uint32, bool) {
	h := x.hash32(key)
	t := x.table.Load()
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i].Load()
		if s == 0 {
			return 0, false
		}
		if s>>32 == h {
			if o := uint32(s) - 1; is(o) {
				return o, true
			}
		}
	}
}

// lookupMany appends to dst the ordinal of each of keys, -1 for a key not
// found, and returns the extended slice; name(o) is the key stored for
// ordinal o. A lookup waits on three cache misses one after another (its
// slot, the stored name's location, the name's bytes); lookupMany takes each
// step for a batch of keys before the next, so that the misses of the
// batch are in flight together, and probes on past a collision as lookup
// does.
func (x *hashIndex) lookupMany(keys []string, name func(o uint32) string, dst []int64) []int64 {
	const batch = 64
	var (
		hash, slot [batch]uint64
		stored     [batch]string
	)
	for len(keys) > 0 {
		part := keys[:min(len(keys), batch)]
		keys = keys[len(part):]
		t := x.table.Load()
		for j, key := range part {
			hash[j] = x.hash32(key)
			slot[j] = t.slots[hash[j]&t.mask].Load()
		}
		for j := range part {
			if s := slot[j]; s != 0 && s>>32 == hash[j] {
				stored[j] = name(uint32(s) - 1)
			}
		}
		for j, key := range part {
			switch s := slot[j]; {
			case s == 0: // the probe ends at its first slot
				dst = append(dst, -1)
			case s>>32 == hash[j] && stored[j] == key:
				dst = append(dst, int64(uint32(s)-1))
			default: // a collision: probe on
				if o, ok := x.lookup(key, func(o uint32) bool { return name(o) == key }); ok {
					dst = append(dst, int64(o))
				} else {
					dst = append(dst, -1)
				}
			}
			stored[j] = ""
		}
	}
	return dst
}

// insert adds key → o. The caller holds the writer lock and has checked that
// key is absent.
func (x *hashIndex) insert(key string, o uint32) {
	t := x.table.Load()
	if 2*(x.count+1) > len(t.slots) {
		t = grow(t)
		x.table.Store(t)
	}
	put(t, x.hash32(key)<<32|(uint64(o)+1))
	x.count++
}

func put(t *slotTable, slot uint64) {
	i := (slot >> 32) & t.mask
	for t.slots[i].Load() != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i].Store(slot)
}

// grow copies the slots into a table twice the size.
func grow(old *slotTable) *slotTable {
	nt := newSlotTable(2 * len(old.slots))
	for i := range old.slots {
		if s := old.slots[i].Load(); s != 0 {
			put(nt, s)
		}
	}
	return nt
}
