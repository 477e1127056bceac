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
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/strpack"
)

// state is the in-memory state of the Memory backend. Writes come from one
// goroutine at a time (replay, then the log's applier); the locks are sharded
// so that readers of different users or authors do not wait on each other or
// on most writes.
type state struct {
	opts  StateOptions
	decay decay
	seed  maphash.Seed

	users   [shards]userShard
	authors [shards]authorShard

	// itemIDs holds the ids the authors' lists name, which name them by
	// Loc; itemMu serialises its Adds.
	itemIDs strpack.Arena
	itemMu  sync.Mutex

	newMu    sync.RWMutex
	newItems []ItemTime          // first publications, oldest first
	newIDs   map[string]struct{} // the items of newItems

	riskMu sync.RWMutex
	risks  map[string]float64 // the last risk set of each item given one

	popMu    sync.Mutex
	pop      map[string]float64 // item → stored popularity, see decay
	popWrite atomic.Uint64      // bumped by every popularity change

	// newest is the latest event time applied, in Unix milliseconds;
	// math.MinInt64 before the first event.
	newest atomic.Int64

	// touched counts the user events applied: a user's last is when it
	// was last active, for eviction.
	touched uint64
	// evicted counts the users forgotten to keep opts.Users.
	evicted atomic.Int64
}

const shards = 64

type userShard struct {
	mu    sync.RWMutex
	users map[string]*userState
}

type authorShard struct {
	mu      sync.RWMutex
	authors map[string][]authorItem // oldest first
}

// authorItem is an entry of an author's list: 16 bytes and no pointer,
// where an ItemTime takes 56 and three (the item, the author, which the
// list's key names already, and the time's location). The catalog seeds an
// entry an item: as strings, a million pointers for every collection to
// follow.
type authorItem struct {
	item strpack.Loc // in state.itemIDs
	ms   int64       // Unix milliseconds
}

// itemLoc stores id in itemIDs. A list keeps its entry's Loc when the item
// is dated again, so the arena holds each item the lists ever named once
// (the catalog's, and those published since: a bounded number).
func (s *state) itemLoc(id string) strpack.Loc {
	s.itemMu.Lock()
	defer s.itemMu.Unlock()
	return s.itemIDs.Add(id)
}

// itemID returns the id at loc.
func (s *state) itemID(loc strpack.Loc) string { return s.itemIDs.At(loc) }

type userState struct {
	last uint64 // state.touched at the user's last event
	// lastEvent is the latest Time of the user's events, in Unix
	// milliseconds, and events counts them (ActivityReader); events is 0,
	// and lastEvent math.MinInt64, for a user restored from a snapshot
	// that did not carry them and not active since.
	lastEvent int64
	events    int64
	// follows are the followed authors, sorted: one object rather than a
	// map's two or more, and already in the order follows returns.
	follows        []string
	engagements    ring
	seen           recentSet
	seeLessItems   recentSet
	seeLessAuthors recentSet
}

func newState(o StateOptions) *state {
	s := &state{opts: o, decay: newDecay(o), seed: maphash.MakeSeed(), pop: make(map[string]float64), newIDs: make(map[string]struct{}), risks: make(map[string]float64)}
	for i := range s.users {
		s.users[i].users = make(map[string]*userState)
		s.authors[i].authors = make(map[string][]authorItem)
	}
	s.newest.Store(math.MinInt64)
	return s
}

func (s *state) shard(key string) int {
	return int(maphash.String(s.seed, key) % shards)
}

func (s *state) user(key string) *userShard { return &s.users[s.shard(key)] }

// perShard is how many users a shard keeps: opts.Users over the shards.
func (s *state) perShard() int { return max(1, (s.opts.Users+shards-1)/shards) }

// evictSample is how many users evictOne compares.
const evictSample = 8

// evictOne forgets the least recently active of a few users of the shard
// (the approximate LRU of Redis's maxmemory policies: exact over the
// sample, which Go's map order draws at random), so that a flood of new
// user ids cannot grow the state without bound. sh.mu is held.
func (sh *userShard) evictOne() {
	victim, oldest, n := "", uint64(math.MaxUint64), 0
	for id, u := range sh.users {
		if u.last < oldest {
			victim, oldest = id, u.last
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(sh.users, victim)
}

func (s *state) author(key string) *authorShard { return &s.authors[s.shard(key)] }

// apply applies a validated, normalized batch.
func (s *state) apply(events []Event) {
	popChanged := false
	newest := s.newest.Load()
	defer func() { s.newest.Store(newest) }() // one writer at a time
	for i := range events {
		e := &events[i]
		newest = max(newest, e.Time.UnixMilli())
		if e.Type == NewItem {
			it := ItemTime{Item: e.Item, Author: e.Author, Time: e.Time}
			s.addAuthorItem(it)
			s.addNewItem(it)
			if e.Risk != 0 {
				s.initRisk(e.Item, e.Risk)
			}
			continue
		}
		if e.Type == Integrity {
			s.setRisk(e.Item, e.Risk)
			continue
		}
		sh := s.user(e.User)
		sh.mu.Lock()
		u := sh.users[e.User]
		if u == nil {
			if len(sh.users) >= s.perShard() {
				sh.evictOne()
				s.evicted.Add(1)
			}
			u = &userState{lastEvent: math.MinInt64}
			sh.users[e.User] = u
		}
		s.touched++
		u.last = s.touched
		u.events++
		u.lastEvent = max(u.lastEvent, e.Time.UnixMilli())
		switch e.Type {
		case Impression:
			u.seen.add(e.Item, s.opts.SeenItems)
		case Click, Like, Comment, Share:
			u.engagements.push(Engagement{Item: e.Item, Type: e.Type, Time: e.Time}, s.opts.RecentEngagements)
		case SeeLess:
			if e.Item != "" {
				u.seeLessItems.add(e.Item, s.opts.SeeLess)
			}
			if e.Author != "" {
				u.seeLessAuthors.add(e.Author, s.opts.SeeLess)
			}
		case Follow:
			if i, found := slices.BinarySearch(u.follows, e.Author); !found && len(u.follows) < s.opts.Follows {
				u.follows = slices.Insert(u.follows, i, e.Author)
			}
		case Unfollow:
			if i, found := slices.BinarySearch(u.follows, e.Author); found {
				u.follows = slices.Delete(u.follows, i, i+1)
			}
		}
		sh.mu.Unlock()
		if lw, ok := s.decay.logWeight(e); ok {
			s.popMu.Lock()
			if old, ok := s.pop[e.Item]; ok {
				lw = logAddExp(old, lw)
			}
			s.pop[e.Item] = lw
			s.popMu.Unlock()
			popChanged = true
		}
	}
	if popChanged {
		s.popWrite.Add(1)
		s.prunePopular()
	}
}

func (s *state) setRisk(item string, risk float64) {
	s.riskMu.Lock()
	s.risks[item] = risk
	s.riskMu.Unlock()
}

// initRisk sets an item's risk unless one is set: a new_item gives the
// risk of its first publication, and a publication repeated (a client's
// retry) does not undo an integrity event.
func (s *state) initRisk(item string, risk float64) {
	s.riskMu.Lock()
	if _, ok := s.risks[item]; !ok {
		s.risks[item] = risk
	}
	s.riskMu.Unlock()
}

func (s *state) allRisks() map[string]float64 {
	s.riskMu.RLock()
	defer s.riskMu.RUnlock()
	return maps.Clone(s.risks)
}

// addAuthorItem records or re-dates an author's item, keeping the newest
// AuthorItems.
func (s *state) addAuthorItem(it ItemTime) {
	sh := s.author(it.Author)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	items := sh.authors[it.Author]
	var loc strpack.Loc
	if i := slices.IndexFunc(items, func(x authorItem) bool { return s.itemID(x.item) == it.Item }); i >= 0 {
		loc = items[i].item
		items = slices.Delete(items, i, i+1)
	} else {
		loc = s.itemLoc(it.Item)
	}
	// Insert after every item not newer, so the slice stays oldest first.
	ms := it.Time.UnixMilli()
	i := len(items)
	for i > 0 && items[i-1].ms > ms {
		i--
	}
	items = slices.Insert(items, i, authorItem{item: loc, ms: ms})
	if n := len(items) - s.opts.AuthorItems; n > 0 {
		items = slices.Delete(items, 0, n)
	}
	sh.authors[it.Author] = items
}

// addNewItem records the first publication of an item, keeping the newest
// NewItems; the oldest are dropped once there are an eighth more.
func (s *state) addNewItem(it ItemTime) {
	s.newMu.Lock()
	defer s.newMu.Unlock()
	if _, ok := s.newIDs[it.Item]; ok {
		return
	}
	s.newIDs[it.Item] = struct{}{}
	s.newItems = append(s.newItems, it)
	limit := s.opts.NewItems
	if len(s.newItems) <= limit+limit/8 {
		return
	}
	drop := len(s.newItems) - limit
	for _, old := range s.newItems[:drop] {
		delete(s.newIDs, old.Item)
	}
	s.newItems = append([]ItemTime(nil), s.newItems[drop:]...)
}

func (s *state) publishedItems() []ItemTime {
	s.newMu.RLock()
	defer s.newMu.RUnlock()
	items := s.newItems
	if n := len(items) - s.opts.NewItems; n > 0 {
		items = items[n:]
	}
	return slices.Clone(items)
}

// prunePopular drops the least popular items once there are an eighth more
// than PopularItems, so the cost is paid rarely.
func (s *state) prunePopular() {
	s.popMu.Lock()
	defer s.popMu.Unlock()
	limit := s.opts.PopularItems
	if len(s.pop) <= limit+limit/8 {
		return
	}
	keep := topK(s.pop, limit)
	floor := keep[len(keep)-1].score
	for item, v := range s.pop {
		if v < floor {
			delete(s.pop, item)
		}
	}
}

// newestEvent returns the latest event time applied, zero if none.
func (s *state) newestEvent() time.Time {
	ms := s.newest.Load()
	if ms == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (s *state) follows(user string) []string {
	sh := s.user(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[user]
	if u == nil {
		return nil
	}
	return slices.Clone(u.follows)
}

func (s *state) recentByAuthors(authors []string, since time.Time, limit int, buf []ItemTime) []ItemTime {
	if limit <= 0 {
		return nil
	}
	if !strictlyIncreasing(authors) {
		// Follows come sorted from this store; others are sorted in a
		// copy, the caller's slice being read-only.
		authors = slices.Compact(slices.Sorted(slices.Values(authors)))
	}
	// The newest limit items over all the authors, kept in a heap whose
	// root is the worst kept, so that memory stays within limit items and
	// an author's older items are not even read once they cannot enter.
	// The heap holds the lists' own compact entries, compared on integer
	// milliseconds; the ItemTimes are built once, for the items kept.
	hp := authorHeaps.Get().(*[]authorEntry)
	defer authorHeaps.Put(hp)
	h := (*hp)[:0]
	if cap(h) < min(limit, 512) {
		h = make([]authorEntry, 0, min(limit, 512))
	}
	from := ceilMilli(since) // the lists' times are whole milliseconds
	for ai, a := range authors {
		sh := s.author(a)
		sh.mu.RLock()
		items := sh.authors[a]
		for i := len(items) - 1; i >= 0 && items[i].ms >= from; i-- {
			x := authorEntry{authorItem: items[i], author: int32(ai)}
			if len(h) < limit {
				h = append(h, x)
				s.siftUpOldest(h, len(h)-1)
				continue
			}
			if x.ms < h[0].ms {
				break // the rest of this author's items are older still
			}
			if x.ms > h[0].ms || x.ms == h[0].ms && s.lessID(x.item, h[0].item) {
				h[0] = x
				s.siftDownOldest(h, 0)
			}
		}
		sh.mu.RUnlock()
	}
	kp := sortKeys.Get().(*[]uint64)
	defer sortKeys.Put(kp)
	*kp = s.newestFirst(h, (*kp)[:0])
	out := slices.Grow(buf[:0], len(h))
	for _, i := range *kp {
		x := h[i]
		out = append(out, ItemTime{Item: s.itemID(x.item), Author: authors[x.author], Time: time.UnixMilli(x.ms)})
	}
	*hp = h[:0]
	return out
}

// strictlyIncreasing reports whether s is sorted without repeats.
func strictlyIncreasing(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// sortKeys pools newestFirst's keys.
var sortKeys = sync.Pool{New: func() any { return new([]uint64) }}

// newestFirst appends to keys the positions of h's entries in
// lessItemTime's order and returns the extended slice. The entries are sorted as integers, each its
// age below the newest in the high bits and its position in the low ones,
// which sorts without a comparison function; entries of equal time are
// then ordered by id among themselves.
func (s *state) newestFirst(h []authorEntry, keys []uint64) []uint64 {
	const posBits = 24
	newest, oldest := int64(math.MinInt64), int64(math.MaxInt64)
	for _, x := range h {
		newest, oldest = max(newest, x.ms), min(oldest, x.ms)
	}
	if len(h) >= 1<<posBits || len(h) > 0 && uint64(newest-oldest) >= 1<<(64-posBits) {
		// Out of the keys' range (ages over 34 years): compare.
		for i := range h {
			keys = append(keys, uint64(i))
		}
		slices.SortFunc(keys, func(a, b uint64) int {
			switch {
			case s.newer(h[a], h[b]):
				return -1
			case s.newer(h[b], h[a]):
				return 1
			}
			return 0
		})
		return keys
	}
	for i, x := range h {
		keys = append(keys, uint64(newest-x.ms)<<posBits|uint64(i))
	}
	slices.Sort(keys)
	for lo := 0; lo < len(keys); {
		hi := lo + 1
		for hi < len(keys) && keys[hi]>>posBits == keys[lo]>>posBits {
			hi++
		}
		if hi-lo > 1 {
			slices.SortFunc(keys[lo:hi], func(a, b uint64) int {
				return strings.Compare(s.itemID(h[a&(1<<posBits-1)].item), s.itemID(h[b&(1<<posBits-1)].item))
			})
		}
		lo = hi
	}
	for i := range keys {
		keys[i] &= 1<<posBits - 1
	}
	return keys
}

var authorHeaps = sync.Pool{New: func() any { return new([]authorEntry) }}

// authorEntry is an author's list entry with the author's place in
// recentByAuthors' sorted authors.
type authorEntry struct {
	authorItem
	author int32
}

// newer reports whether x comes before y in lessItemTime's order: newer,
// or as new with a smaller id.
func (s *state) newer(x, y authorEntry) bool {
	return x.ms > y.ms || x.ms == y.ms && s.lessID(x.item, y.item)
}

// lessID orders two list entries' items by id. The heap's loops write
// newer out, so that its common case (different times) makes no call.
func (s *state) lessID(a, b strpack.Loc) bool { return s.itemID(a) < s.itemID(b) }

// siftUpOldest and siftDownOldest keep h a heap whose root is the last
// entry in lessItemTime's order (the oldest) after h[i] was appended or
// replaced. Written out rather than through container/heap, whose
// interface calls and swaps of whole items made the followed-authors read
// two fifths slower (BenchmarkMemoryRecentByAuthors: 270 → 193 µs).
func (s *state) siftUpOldest(h []authorEntry, i int) {
	x := h[i]
	for i > 0 {
		p := (i - 1) / 2
		if h[p].ms < x.ms || h[p].ms == x.ms && !s.lessID(h[p].item, x.item) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = x
}

func (s *state) siftDownOldest(h []authorEntry, i int) {
	x := h[i]
	for {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if r := c + 1; r < len(h) && (h[c].ms > h[r].ms || h[c].ms == h[r].ms && s.lessID(h[c].item, h[r].item)) {
			c = r
		}
		if x.ms < h[c].ms || x.ms == h[c].ms && !s.lessID(x.item, h[c].item) {
			break
		}
		h[i] = h[c]
		i = c
	}
	h[i] = x
}

func (s *state) recentEngagements(user string, limit int) []Engagement {
	if limit <= 0 {
		return nil
	}
	sh := s.user(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[user]
	if u == nil {
		return nil
	}
	return u.engagements.newest(limit)
}

func (s *state) seen(user string) *Filter {
	sh := s.user(user)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[user]
	if u == nil {
		return newFilter(0, 0)
	}
	f := newFilter(u.seen.len()+u.seeLessItems.len(), u.seeLessAuthors.len())
	for it := range u.seen.all {
		f.items[it] = struct{}{}
	}
	for it := range u.seeLessItems.all {
		f.items[it] = struct{}{}
	}
	for a := range u.seeLessAuthors.all {
		f.authors[a] = struct{}{}
	}
	return f
}

// activeUsers returns the users whose latest event is at or after since,
// in activity order (sortActivity), at most limit of them (limit <= 0: no
// bound).
func (s *state) activeUsers(since time.Time, limit int) []UserActivity {
	from := ceilMilli(since)
	var out []UserActivity
	for i := range s.users {
		sh := &s.users[i]
		sh.mu.RLock()
		for id, u := range sh.users {
			if u.events > 0 && u.lastEvent >= from {
				out = append(out, UserActivity{User: id, Last: time.UnixMilli(u.lastEvent), Events: u.events})
			}
		}
		sh.mu.RUnlock()
	}
	return sortActivity(out, limit)
}

// sortActivity sorts users the most events first, ties by user id, and
// keeps the first limit (limit <= 0: all).
func sortActivity(users []UserActivity, limit int) []UserActivity {
	slices.SortFunc(users, func(a, b UserActivity) int {
		if a.Events != b.Events {
			if a.Events > b.Events {
				return -1
			}
			return 1
		}
		return strings.Compare(a.User, b.User)
	})
	if limit > 0 && len(users) > limit {
		clear(users[limit:])
		users = users[:limit]
	}
	return users
}

// ceilMilli is the first Unix millisecond at or after t: event times are
// whole milliseconds, so an event is at or after t when its millisecond
// is at or after ceilMilli(t).
func ceilMilli(t time.Time) int64 {
	ms := t.UnixMilli()
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		ms++
	}
	return ms
}

// ring keeps the last entries pushed.
type ring struct {
	buf   []Engagement
	total int // entries ever pushed
}

func (r *ring) push(e Engagement, size int) {
	if len(r.buf) < size {
		r.buf = append(r.buf, e)
	} else {
		r.buf[r.total%len(r.buf)] = e
	}
	r.total++
}

// newest returns up to limit entries, the last pushed first.
func (r *ring) newest(limit int) []Engagement {
	n := min(limit, len(r.buf))
	out := make([]Engagement, n)
	for k := range out {
		out[k] = r.buf[(r.total-1-k)%len(r.buf)]
	}
	return out
}

// recentSet keeps the most recently added distinct keys.
type recentSet struct {
	seq uint64
	// last maps each key to the seq of its latest add; nil while the set
	// has had at most smallSet keys, order[head:] then holding them
	// without repeats. Most users have seen a few items: a map for each
	// would be two more objects for the collector to mark.
	last  map[string]uint64
	order []recentEntry // adds, oldest first; with last, an entry is stale once its key is added again
	head  int           // order[:head] were evicted
}

// smallSet is the most keys a recentSet keeps without a map.
const smallSet = 16

type recentEntry struct {
	key string
	seq uint64
}

func (s *recentSet) add(key string, size int) {
	s.seq++
	if s.last == nil {
		live := s.order[s.head:]
		if i := slices.IndexFunc(live, func(e recentEntry) bool { return e.key == key }); i >= 0 {
			copy(live[i:], live[i+1:])
			live[len(live)-1] = recentEntry{key, s.seq}
			return
		}
		if len(live) < smallSet || size <= smallSet {
			s.order = append(s.order, recentEntry{key, s.seq})
			for len(s.order)-s.head > size {
				s.order[s.head] = recentEntry{}
				s.head++
			}
			s.compact(size)
			return
		}
		s.last = make(map[string]uint64, 2*smallSet)
		for _, e := range live {
			s.last[e.key] = e.seq
		}
	}
	s.last[key] = s.seq
	s.order = append(s.order, recentEntry{key, s.seq})
	for len(s.last) > size {
		e := s.order[s.head]
		s.order[s.head] = recentEntry{}
		s.head++
		if s.last[e.key] == e.seq {
			delete(s.last, e.key)
		}
	}
	s.compact(size)
}

// compact moves the live entries to the front of order once the evicted
// or stale ones outnumber them.
func (s *recentSet) compact(size int) {
	if live := len(s.order) - s.head; s.head <= live && live <= 2*size+16 {
		return
	}
	kept := s.order[:0]
	for _, e := range s.order[s.head:] {
		if s.last == nil || s.last[e.key] == e.seq {
			kept = append(kept, e)
		}
	}
	clear(s.order[len(kept):])
	s.order, s.head = kept, 0
}

// len returns the number of keys in the set.
func (s *recentSet) len() int {
	if s.last == nil {
		return len(s.order) - s.head
	}
	return len(s.last)
}

// all yields the keys of the set, the oldest added first.
func (s *recentSet) all(yield func(string) bool) {
	for _, e := range s.order[s.head:] {
		if s.last != nil && s.last[e.key] != e.seq {
			continue
		}
		if !yield(e.key) {
			return
		}
	}
}

// popEntry is an item with its stored popularity.
type popEntry struct {
	item  string
	score float64
}

// popHeap is a min-heap on score, ties broken so that the greater item is
// evicted first.
type popHeap []popEntry

func (h popHeap) Len() int { return len(h) }
func (h popHeap) Less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score < h[j].score
	}
	return h[i].item > h[j].item
}
func (h popHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *popHeap) Push(x any)   { *h = append(*h, x.(popEntry)) }
func (h *popHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topK returns the k highest scores, highest first, ties by item.
func topK(scores map[string]float64, k int) []popEntry {
	h := make(popHeap, 0, min(k, len(scores)))
	for item, v := range scores {
		e := popEntry{item, v}
		if len(h) < k {
			heap.Push(&h, e)
			continue
		}
		if k > 0 && (v > h[0].score || v == h[0].score && item < h[0].item) {
			h[0] = e
			heap.Fix(&h, 0)
		}
	}
	out := make([]popEntry, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(popEntry)
	}
	return out
}
