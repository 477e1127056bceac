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

package store

import (
	"container/heap"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
)

// ErrInvalidList is wrapped by PutLists's error when a list of the batch
// lacks its user, has an item without an id or a score that is not finite,
// or does not expire after it was created.
var ErrInvalidList = errors.New("invalid list")

// MaxListUser is the longest user id, in bytes, a List may have.
const MaxListUser = 256

// checkLists validates a batch of lists, naming the first bad one.
func checkLists(lists []List) error {
	for i := range lists {
		if err := checkList(&lists[i]); err != nil {
			return fmt.Errorf("failed to accept list %d (user %q): %w", i, lists[i].User, err)
		}
	}
	return nil
}

func checkList(l *List) error {
	switch {
	case l.User == "":
		return fmt.Errorf("%w: no user", ErrInvalidList)
	case len(l.User) > MaxListUser:
		return fmt.Errorf("%w: user id of %d bytes, more than %d", ErrInvalidList, len(l.User), MaxListUser)
	case l.Created.IsZero():
		return fmt.Errorf("%w: no creation time", ErrInvalidList)
	case !l.Expires.After(l.Created):
		return fmt.Errorf("%w: expires at %v, not after its creation at %v", ErrInvalidList, l.Expires, l.Created)
	}
	for k := range l.Items {
		it := &l.Items[k]
		if it.Item == "" {
			return fmt.Errorf("%w: item %d has no id", ErrInvalidList, k)
		}
		if math.IsNaN(it.Score) || math.IsInf(it.Score, 0) {
			return fmt.Errorf("%w: item %d (%q) has score %v", ErrInvalidList, k, it.Item, it.Score)
		}
	}
	return nil
}

// cloneList copies a list deeply, so that the caller may reuse what it
// passed, and drops its times' monotonic readings: expiry is decided on
// the engine's clock, by wall-clock comparison.
func cloneList(l *List) List {
	c := *l
	c.Created, c.Expires = l.Created.Round(0), l.Expires.Round(0)
	c.Items = slices.Clone(l.Items)
	for k := range c.Items {
		c.Items[k].Sources = slices.Clone(c.Items[k].Sources)
	}
	return c
}

// listCache holds the Memory store's lists, sharded like the state's
// users, at most perShard lists a shard. A shard keeps its lists in a heap
// by expiry too, so that the soonest-expiring list (an expired one first)
// is the one dropped to make room.
type listCache struct {
	seed     maphash.Seed
	perShard int
	shards   [shards]listShard
}

type listShard struct {
	mu     sync.RWMutex
	byUser map[string]*listEntry
	heap   listHeap
}

// listEntry is a stored list. Its list is never modified once stored: a
// replacement is a new entry, so that UserList can hand out the pointer.
type listEntry struct {
	list List
	idx  int // in the shard's heap
}

func newListCache(seed maphash.Seed, users int) *listCache {
	c := &listCache{seed: seed, perShard: max(1, (users+shards-1)/shards)}
	for i := range c.shards {
		c.shards[i].byUser = make(map[string]*listEntry)
	}
	return c
}

func (c *listCache) shard(user string) *listShard {
	return &c.shards[maphash.String(c.seed, user)%shards]
}

// put stores validated lists: each replaces its user's list, and one
// already expired at now only removes the user's list. Lists expired at
// now are dropped from the shards written, and then the soonest-expiring
// past the bound.
func (c *listCache) put(lists []List, now time.Time) {
	byShard := make(map[*listShard][]int)
	for i := range lists {
		sh := c.shard(lists[i].User)
		byShard[sh] = append(byShard[sh], i)
	}
	for sh, idx := range byShard {
		sh.mu.Lock()
		for _, i := range idx {
			l := &lists[i]
			old := sh.byUser[l.User]
			if !l.Expires.After(now) {
				if old != nil {
					sh.remove(old)
				}
				continue
			}
			e := &listEntry{list: cloneList(l)}
			if old != nil {
				e.idx = old.idx
				sh.heap[e.idx] = e
				sh.byUser[l.User] = e
				heap.Fix(&sh.heap, e.idx)
				continue
			}
			sh.byUser[l.User] = e
			heap.Push(&sh.heap, e)
		}
		for len(sh.heap) > 0 && !sh.heap[0].list.Expires.After(now) {
			sh.remove(sh.heap[0])
		}
		for len(sh.heap) > c.perShard {
			sh.remove(sh.heap[0])
		}
		sh.mu.Unlock()
	}
}

// remove drops e from the shard; sh.mu is held.
func (sh *listShard) remove(e *listEntry) {
	heap.Remove(&sh.heap, e.idx)
	delete(sh.byUser, e.list.User)
}

// get returns the user's list unless it expired at now. The list is
// shared: callers must not modify it.
func (c *listCache) get(user string, now time.Time) *List {
	sh := c.shard(user)
	sh.mu.RLock()
	e := sh.byUser[user]
	sh.mu.RUnlock()
	if e == nil || !e.list.Expires.After(now) {
		return nil
	}
	return &e.list
}

// len returns how many lists are stored, expired ones not yet dropped
// included.
func (c *listCache) len() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.byUser)
		sh.mu.RUnlock()
	}
	return n
}

// listHeap orders entries by expiry, soonest first, ties by user.
type listHeap []*listEntry

func (h listHeap) Len() int { return len(h) }
func (h listHeap) Less(i, j int) bool {
	if c := h[i].list.Expires.Compare(h[j].list.Expires); c != 0 {
		return c < 0
	}
	return h[i].list.User < h[j].list.User
}
func (h listHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *listHeap) Push(x any) {
	e := x.(*listEntry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *listHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
