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

package sources

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// Weighted is a source with its place in the mix.
type Weighted struct {
	// Name labels the source in observations.
	Name   string
	Source Source
	// Weight is the source's share of the budget. Zero, negative and NaN
	// weights count as zero; a source weighing zero is not run, unless
	// every source does, in which case all weigh the same.
	Weight float64
	// Limit is how many candidates the source is asked for, and caps what
	// it contributes. Asking for more than the budget leaves room for the
	// candidates that the seen filter and de-duplication remove. Zero or
	// less: the budget.
	Limit int
	// Timeout is the source's own deadline, counted from the start of Mix.
	// Zero or less: only the deadline of Mix's context.
	Timeout time.Duration
	// Index is the source's bit in rank.SourceSet, its position in the live
	// retrieval config.
	Index int
}

// Observer is told how each source fared, for metrics. It is called from the
// goroutine running Mix, once per source run, and must be safe for
// concurrent Mix calls.
type Observer interface {
	// SourceDone reports a source's latency, the number of candidates it
	// returned (zero when it failed) and its error: the source's own, or
	// context.DeadlineExceeded when it outlived its timeout, or the error of
	// Mix's context when that ended first.
	SourceDone(name string, d time.Duration, n int, err error)
}

type nopObserver struct{}

func (nopObserver) SourceDone(string, time.Duration, int, error) {}

// Mixed is one candidate after mixing.
type Mixed struct {
	Item uint32
	// Sources records every source that returned the item.
	Sources rank.SourceSet
	// Score orders the mix fairly across sources; higher is better. It lies
	// in (0, 1).
	Score float32
}

// MixerOptions configure a Mixer.
type MixerOptions struct {
	// Observer is told how each source fared. Default nil: no one.
	Observer Observer
	// Backfill tops up a mix that its sources, once the seen filter and
	// de-duplication are done, left short of Min candidates: it is asked
	// for Min candidates (under Mix's context, after the sources), and
	// those that the mix lacks and the seen filter lets through are
	// appended, in its order, after the mixed ones, with no source in
	// their Sources. It is observed as BackfillName. Default nil: no
	// backfill.
	Backfill Source
	// Min is the least number of candidates Mix returns when Backfill can
	// provide them, capped by the budget. Default 0: no backfill.
	Min int
}

// BackfillName labels the backfill in observations; no source can be
// named so.
const BackfillName = "(backfill)"

// Mixer runs sources in parallel and mixes their candidates into one budget.
// A Mixer is immutable and safe for concurrent use; a changed live config
// makes a new one.
type Mixer struct {
	slots    []slot
	items    Items
	obs      Observer
	backfill Source
	min      int
	pool     sync.Pool // *mixScratch
}

type slot struct {
	Weighted
	weight float64 // effective
}

// NewMixer returns a mixer of the sources. It panics, as for a programming
// error, if there are more than rank.MaxSources sources, an Index lies
// outside [0, rank.MaxSources), a Source is nil or items is nil.
func NewMixer(sources []Weighted, items Items, opts MixerOptions) *Mixer {
	if len(sources) > rank.MaxSources {
		panic(fmt.Sprintf("sources: %d sources, more than %d", len(sources), rank.MaxSources))
	}
	if items == nil {
		panic("sources: nil Items")
	}
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	weight := func(w float64) float64 {
		if w > 0 && !math.IsInf(w, 1) {
			return w
		}
		return 0
	}
	total := 0.0
	for _, s := range sources {
		total += weight(s.Weight)
	}
	m := &Mixer{items: items, obs: obs}
	if opts.Backfill != nil && opts.Min > 0 {
		m.backfill, m.min = opts.Backfill, opts.Min
	}
	for _, s := range sources {
		if s.Index < 0 || s.Index >= rank.MaxSources {
			panic(fmt.Sprintf("sources: source %q has index %d outside [0, %d)", s.Name, s.Index, rank.MaxSources))
		}
		if s.Source == nil {
			panic(fmt.Sprintf("sources: source %q is nil", s.Name))
		}
		w := weight(s.Weight)
		if total == 0 {
			w = 1
		}
		if w > 0 {
			m.slots = append(m.slots, slot{Weighted: s, weight: w})
		}
	}
	n := len(m.slots)
	m.pool.New = func() any {
		sc := &mixScratch{
			st:    make([]slotState, n),
			ch:    make(chan fetched, n),
			timer: newStoppedTimer(),
			excl:  newExclusion(),
		}
		for i := range sc.st {
			st := &sc.st[i]
			st.fetch = func() { m.run(st.ctx, sc.ch, i, st.req, st.limit, st.buf[:0]) }
		}
		return sc
	}
	return m
}

func newStoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// mixScratch is the per-request state of Mix, reused through the pool. A
// scratch whose sources have not all returned is dropped rather than reused:
// the stragglers still hold its buffers and channel.
type mixScratch struct {
	st        []slotState
	ch        chan fetched
	timer     *time.Timer
	abandoned int

	entries []entry
	where   ordIndex // item -> index in entries
	lists   []int32  // each source's usable candidates, as entry indices
	keys    []uint64 // the taken entries, to sort (see mix)
	tmpKeys []uint64
	active  []int

	// excl is the seen filter by catalog ordinal, which the sources read
	// through the Request while they run.
	excl exclusion
	fill []Candidate // the backfill's Fetch dst, kept for its capacity
}

type slotState struct {
	buf      []Candidate // Fetch's dst, kept for its capacity
	got      []Candidate // what the source returned, nil if it failed
	pending  bool
	lost     bool // abandoned at its deadline, still running
	deadline time.Time

	// fetch runs the source's Fetch with ctx, req and limit, which Mix
	// sets before it starts fetch's goroutine: one closure a scratch
	// rather than one a source and request.
	fetch func()
	ctx   context.Context
	req   *Request
	limit int

	off, n   int // the source's list in lists
	cursor   int // positions of the list consumed
	taken    int // items the source brought into the mix
	quota    int
	capacity int
	frac     float64
	fixed    bool
}

type entry struct {
	item     uint32
	set      rank.SourceSet
	slots    uint32 // sources, by slot, whose lists hold the item
	excluded bool
	taken    bool
	score    float32
}

type fetched struct {
	slot  int
	cands []Candidate
	err   error
	d     time.Duration
}

// Mix runs every source in parallel and appends to dst at most budget
// distinct candidates, best first by Mixed.Score, and returns the extended
// slice. Items and authors seen excludes are dropped before they take any
// budget or any source's limit (req tells the sources what they are);
// seen may be nil. A source that fails, panics or outlives its timeout is
// observed and contributes nothing; Mix itself fails only when ctx ends
// first, returning ctx's error. A mix left short of MixerOptions.Min is
// topped up by the backfill. A source given up on may go on reading req
// after Mix returns, so the caller must not reuse req.
func (m *Mixer) Mix(ctx context.Context, req *Request, budget int, seen *store.Filter, dst []Mixed) ([]Mixed, error) {
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	if budget <= 0 || len(m.slots) == 0 {
		return dst, nil
	}
	sc := m.pool.Get().(*mixScratch)
	sc.excl.reset(seen, m.items)
	req.excl = &sc.excl
	start := time.Now()
	// A context a distinct timeout rather than one a source: configs
	// mostly give every source the same, and a context with a deadline is
	// a timer and two objects for the collector.
	var timed [rank.MaxSources]struct {
		d      time.Duration
		ctx    context.Context
		cancel context.CancelFunc
	}
	n := 0
	defer func() {
		for k := range n {
			timed[k].cancel()
		}
	}()
	for i := range m.slots {
		s, st := &m.slots[i], &sc.st[i]
		limit := budget
		if s.Limit > 0 {
			limit = s.Limit
		}
		st.pending, st.got = true, nil
		st.deadline = time.Time{}
		sctx := ctx
		if s.Timeout > 0 {
			st.deadline = start.Add(s.Timeout)
			k := 0
			for k < n && timed[k].d != s.Timeout {
				k++
			}
			if k == n {
				timed[k].d = s.Timeout
				timed[k].ctx, timed[k].cancel = context.WithDeadline(ctx, st.deadline)
				n++
			}
			sctx = timed[k].ctx
		}
		st.ctx, st.req, st.limit = sctx, req, limit
		go st.fetch()
	}
	if err := m.wait(ctx, sc, req, start); err != nil {
		// Sources still running hold the scratch; leave it to them.
		return dst, err
	}
	first := len(dst)
	dst = m.mix(sc, budget, dst)
	if m.backfill != nil && len(dst)-first < min(m.min, budget) {
		dst = m.topUp(ctx, sc, req, min(m.min, budget), first, dst)
	}
	for i := range sc.st {
		sc.st[i].got = nil
	}
	if sc.abandoned == 0 {
		for i := range sc.st {
			sc.st[i].ctx, sc.st[i].req = nil, nil
		}
		// No source reads req any more, nor, once it is pooled, the
		// scratch's filter.
		req.excl = nil
		m.pool.Put(sc)
	}
	return dst, nil
}

// topUp appends to the mix in dst[first:] the backfill's candidates that it
// lacks until it holds want, each scoring below every mixed one, in the
// backfill's order. A failing backfill is observed and adds nothing.
// sourceDone tells the observer how a source fared and notes on the
// request a source that gave it nothing.
func (m *Mixer) sourceDone(req *Request, name string, d time.Duration, n int, err error) {
	m.obs.SourceDone(name, d, n, err)
	if err != nil {
		req.noteFailure(name, err)
	}
}

func (m *Mixer) topUp(ctx context.Context, sc *mixScratch, req *Request, want, first int, dst []Mixed) []Mixed {
	t0 := time.Now()
	got, err := m.backfill.Fetch(ctx, req, want, sc.fill[:0])
	if got != nil {
		sc.fill = got[:0]
	}
	if err != nil {
		m.sourceDone(req, BackfillName, time.Since(t0), 0, err)
		return dst
	}
	m.obs.SourceDone(BackfillName, time.Since(t0), len(got), nil)
	// Mixed scores lie in (0, 1) and dst[first:] is sorted best first.
	lowest := float32(1)
	if len(dst) > first {
		lowest = dst[len(dst)-1].Score
	}
	need := want - (len(dst) - first)
	added := 0
	for _, c := range got {
		if added == need {
			break
		}
		if e, ok := sc.where.get(c.Item); ok {
			en := &sc.entries[e]
			if en.taken || en.excluded {
				continue
			}
			en.taken = true
		} else {
			if sc.excl.excludes(c.Item) {
				continue
			}
			sc.where.put(c.Item, int32(len(sc.entries)))
			sc.entries = append(sc.entries, entry{item: c.Item, taken: true})
		}
		score := lowest * (float32(need-added) - 0.5) / float32(need)
		dst = append(dst, Mixed{Item: c.Item, Score: score})
		added++
	}
	return dst
}

// run fetches from source i under ctx, which carries the source's deadline,
// and sends the outcome to ch, which has room for every source so that a
// straggler never blocks.
func (m *Mixer) run(ctx context.Context, ch chan<- fetched, i int, req *Request, limit int, buf []Candidate) {
	s := &m.slots[i]
	t0 := time.Now()
	res := fetched{slot: i}
	defer func() {
		if p := recover(); p != nil {
			res.cands, res.err = nil, fmt.Errorf("source %q panicked: %v", s.Name, p)
		}
		res.d = time.Since(t0)
		ch <- res
	}()
	res.cands, res.err = s.Source.Fetch(ctx, req, limit, buf)
	if len(res.cands) > limit {
		res.cands = res.cands[:limit]
	}
}

// wait collects the sources' outcomes until every source has returned or
// passed its deadline. It returns ctx's error if ctx ends first.
func (m *Mixer) wait(ctx context.Context, sc *mixScratch, req *Request, start time.Time) error {
	sc.abandoned = 0
	pending := len(m.slots)
	for i := range sc.st {
		sc.st[i].lost = false
	}
	collect := func(r fetched) {
		st := &sc.st[r.slot]
		if r.cands != nil {
			st.buf = r.cands[:0]
		}
		if st.lost {
			// Returned after being given up on: its buffer is free again.
			st.lost = false
			sc.abandoned--
			return
		}
		st.pending = false
		pending--
		if r.err != nil {
			m.sourceDone(req, m.slots[r.slot].Name, r.d, 0, r.err)
			return
		}
		st.got = r.cands
		m.obs.SourceDone(m.slots[r.slot].Name, r.d, len(r.cands), nil)
	}
	defer sc.timer.Stop()
	for pending > 0 {
		var next time.Time
		for i := range sc.st {
			st := &sc.st[i]
			if st.pending && !st.deadline.IsZero() && (next.IsZero() || st.deadline.Before(next)) {
				next = st.deadline
			}
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			sc.timer.Reset(time.Until(next))
			tc = sc.timer.C
		}
		select {
		case r := <-sc.ch:
			collect(r)
		case <-tc:
			// Take what has arrived in the meantime, then give up on the
			// sources past their deadline.
			for drained := false; !drained; {
				select {
				case r := <-sc.ch:
					collect(r)
				default:
					drained = true
				}
			}
			now := time.Now()
			for i := range sc.st {
				st := &sc.st[i]
				if st.pending && !st.deadline.IsZero() && !now.Before(st.deadline) {
					st.pending, st.lost = false, true
					sc.abandoned++
					pending--
					m.sourceDone(req, m.slots[i].Name, now.Sub(start), 0, context.DeadlineExceeded)
				}
			}
		case <-ctx.Done():
			now := time.Now()
			for i := range sc.st {
				if sc.st[i].pending {
					m.obs.SourceDone(m.slots[i].Name, now.Sub(start), 0, ctx.Err())
				}
			}
			return ctx.Err()
		}
	}
	return ctx.Err()
}

// mix allocates the budget over the sources' candidates; see the package
// comment for the rules.
func (m *Mixer) mix(sc *mixScratch, budget int, dst []Mixed) []Mixed {
	sc.where.reset()
	sc.entries, sc.lists = sc.entries[:0], sc.lists[:0]

	// Each source's list: its candidates in score order, without the
	// filtered ones and its own repeats, as indices of shared entries.
	for i := range m.slots {
		st := &sc.st[i]
		st.off, st.cursor, st.taken = len(sc.lists), 0, 0
		got := st.got
		if !slices.IsSortedFunc(got, byScoreDesc) {
			slices.SortStableFunc(got, byScoreDesc)
		}
		for _, c := range got {
			e, ok := sc.where.get(c.Item)
			if !ok {
				e = int32(len(sc.entries))
				sc.where.put(c.Item, e)
				excl := sc.excl.excludes(c.Item)
				sc.entries = append(sc.entries, entry{item: c.Item, excluded: excl})
			}
			en := &sc.entries[e]
			if en.excluded || en.slots&(1<<uint(i)) != 0 {
				continue
			}
			en.slots |= 1 << uint(i)
			en.set.Add(m.slots[i].Index)
			sc.lists = append(sc.lists, e)
		}
		st.n = len(sc.lists) - st.off
	}

	// Rounds: split what is left of the budget over the sources that still
	// have candidates, by weight, and take each source's share in its order.
	// A source that comes up short leaves the rounds; its shortfall goes to
	// the others in the next.
	active := sc.active[:0]
	for i := range m.slots {
		if sc.st[i].n > 0 {
			active = append(active, i)
		}
	}
	left := budget
	for left > 0 && len(active) > 0 {
		for _, i := range active {
			st := &sc.st[i]
			st.capacity = m.limit(i, budget) - st.taken
		}
		m.apportion(sc, left, active)
		next := active[:0]
		for _, i := range active {
			st := &sc.st[i]
			list := sc.lists[st.off : st.off+st.n]
			got := 0
			for got < st.quota && st.cursor < len(list) {
				en := &sc.entries[list[st.cursor]]
				st.cursor++
				if !en.taken {
					en.taken = true
					got++
				}
			}
			st.taken += got
			left -= got
			if got == st.quota && st.cursor < len(list) && st.taken < m.limit(i, budget) {
				next = append(next, i)
			}
		}
		active = next
	}
	sc.active = active[:0]

	// Scores: position p of the c positions a source consumed scores
	// 1 − (p+½)/c, so each source's picks spread evenly over (0, 1] and
	// sorting by score interleaves sources in proportion to what they
	// contributed. An item consumed by several sources keeps its best.
	for i := range m.slots {
		st := &sc.st[i]
		c := float32(st.cursor)
		for p, e := range sc.lists[st.off : st.off+st.cursor] {
			en := &sc.entries[e]
			if s := 1 - (float32(p)+0.5)/c; s > en.score {
				en.score = s
			}
		}
	}
	// Best first, ties by item: one integer key an entry, its score's
	// order over its index, sorted by radix, then each run of equal scores
	// by item.
	sc.keys, sc.tmpKeys = sc.keys[:0], slices.Grow(sc.tmpKeys[:0], len(sc.entries))
	for i := range sc.entries {
		if en := &sc.entries[i]; en.taken {
			sc.keys = append(sc.keys, uint64(vec.DescKey(en.score))<<32|uint64(i))
		}
	}
	keys := vec.SortHigh32(sc.keys, sc.tmpKeys[:len(sc.keys)])
	vec.SortTies(keys, func(a, b uint64) int {
		return cmp.Compare(sc.entries[uint32(a)].item, sc.entries[uint32(b)].item)
	})
	for _, k := range keys {
		en := &sc.entries[uint32(k)]
		dst = append(dst, Mixed{Item: en.item, Sources: en.set, Score: en.score})
	}
	return dst
}

func (m *Mixer) limit(i, budget int) int {
	if l := m.slots[i].Limit; l > 0 {
		return min(l, budget)
	}
	return budget
}

// apportion sets the quota of each source in idx: total split in proportion
// to the weights, none above its capacity, integer shares rounded by largest
// remainder (ties to the earlier source). The quotas add up to total, or to
// the sum of the capacities if that is smaller.
func (m *Mixer) apportion(sc *mixScratch, total int, idx []int) {
	for _, i := range idx {
		st := &sc.st[i]
		st.quota, st.fixed = 0, false
		if st.capacity <= 0 {
			st.fixed = true
		}
	}
	for total > 0 {
		w := 0.0
		for _, i := range idx {
			if !sc.st[i].fixed {
				w += m.slots[i].weight
			}
		}
		if w <= 0 {
			return
		}
		// A source whose share reaches its capacity gets exactly that; the
		// others' shares only grow from it, so all such are fixed at once.
		capped := false
		for _, i := range idx {
			st := &sc.st[i]
			if !st.fixed && float64(total)*m.slots[i].weight/w >= float64(st.capacity) {
				st.quota, st.fixed = st.capacity, true
				total -= st.capacity
				capped = true
			}
		}
		if capped {
			continue
		}
		rest := total
		for _, i := range idx {
			st := &sc.st[i]
			if st.fixed {
				continue
			}
			exact := float64(total) * m.slots[i].weight / w
			fl := math.Floor(exact)
			st.quota, st.frac = int(fl), exact-fl
			rest -= st.quota
		}
		for ; rest > 0; rest-- {
			best := -1
			for _, i := range idx {
				st := &sc.st[i]
				if !st.fixed && st.frac >= 0 && (best < 0 || st.frac > sc.st[best].frac) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			sc.st[best].quota++
			sc.st[best].frac = -1
		}
		return
	}
}

// byScoreDesc orders candidates best first, NaN scores last.
func byScoreDesc(a, b Candidate) int { return cmp.Compare(b.Score, a.Score) }
