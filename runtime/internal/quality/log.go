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

package quality

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// evalRow is one event of the log with its IDs interned; item and author
// are -1 when the event names none.
type evalRow struct {
	sec    int64 // Unix seconds: the resolution of rectrain's split
	nsec   int32 // the rest of the log's time, posted as it is
	user   int32
	item   int32
	author int32
	typ    dataset.EventType
}

func (r *evalRow) time() time.Time { return time.Unix(r.sec, int64(r.nsec)).UTC() }

// interner gives each distinct ID a dense index in order of appearance.
type interner struct {
	ids   []string
	index map[string]int32
}

func (in *interner) of(id string) int32 {
	if id == "" {
		return -1
	}
	if in.index == nil {
		in.index = map[string]int32{}
	}
	i, ok := in.index[id]
	if !ok {
		i = int32(len(in.ids))
		in.index[id] = i
		in.ids = append(in.ids, id)
	}
	return i
}

// Log is a log held compactly, its IDs interned, for the evaluation and
// for recbench replay: eval posts its train part and replay all of it, in
// the same order. The catalog's items are items.ids[:catalog] in catalog
// order; items that only events name come after them.
type Log struct {
	users, items, authors interner
	catalog               int
	rows                  []evalRow // log order
	skipped               int       // bad rows skipped in lenient mode
}

func (l *Log) add(e *dataset.Event) {
	l.rows = append(l.rows, evalRow{
		sec: e.Time.Unix(), nsec: int32(e.Time.Nanosecond()),
		user: l.users.of(e.User), item: l.items.of(e.Item), author: l.authors.of(e.Author), typ: e.Type,
	})
}

// Len is the number of events of the log.
func (l *Log) Len() int { return len(l.rows) }

// Skipped counts the bad rows skipped in lenient mode.
func (l *Log) Skipped() int { return l.skipped }

// Send adds the log's first n events to s in log order, at their log
// times; s keeps each user's events in that order.
func (l *Log) Send(s *recclient.Sender, n int) error {
	var k int
	row := func() string { return fmt.Sprintf("event %d of the log", k+1) }
	for ; k < n; k++ {
		e := l.wire(k)
		if err := s.Add(&e, false, row); err != nil {
			return err
		}
	}
	return nil
}

// wire is row k as POST /v1/events takes it, at its log time.
func (l *Log) wire(k int) recclient.Event {
	r := &l.rows[k]
	e := recclient.Event{User: l.users.ids[r.user], Type: r.typ.String(), Time: r.time()}
	if r.item >= 0 {
		e.Item = l.items.ids[r.item]
	}
	if r.author >= 0 {
		e.Author = l.authors.ids[r.author]
	}
	return e
}

// loadWorldLog reads the catalog and the log of a world directory.
func loadWorldLog(dir string, ropts dataset.ReadOptions) (*Log, error) {
	l := &Log{}
	p, err := recclient.WorldFile(dir, "catalog.jsonl")
	if err != nil {
		return nil, err
	}
	cat, err := dataset.OpenCatalog(p, ropts)
	if err != nil {
		return nil, fmt.Errorf("failed to open the catalog: %w", err)
	}
	defer cat.Close()
	for it, err := range cat.All() {
		if err != nil {
			return nil, fmt.Errorf("failed to read the catalog: %w", err)
		}
		l.items.of(it.ID)
	}
	l.catalog = len(l.items.ids)
	l.skipped += cat.Report().Skipped
	if p, err = recclient.WorldFile(dir, "events.jsonl"); err != nil {
		return nil, err
	}
	events, err := dataset.OpenEvents(p, ropts)
	if err != nil {
		return nil, fmt.Errorf("failed to open the log: %w", err)
	}
	defer events.Close()
	for e, err := range events.All() {
		if err != nil {
			return nil, fmt.Errorf("failed to read the log: %w", err)
		}
		l.add(&e)
	}
	l.skipped += events.Report().Skipped
	return l, l.check(dir)
}

// ReadMovieLens reads a MovieLens ratings file (u.data, ratings.csv or
// ratings.dat, optionally .gz) as rectrain does: each rating becomes the
// events of dataset.AppendRatingEvents (an impression and a click, and a
// like at dataset.LikeRating stars and up, at the rating's time), the
// catalog is the movies rated in order of first appearance, and the log is
// the events in the order dataset.SortEvents gives (a stable sort by time).
func ReadMovieLens(path string, ropts dataset.ReadOptions) (*Log, error) {
	l := &Log{}
	rep, err := dataset.ReadMovieLens(path, dataset.MovieLensAuto, ropts, func(e dataset.Event) error {
		l.add(&e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the MovieLens ratings: %w", err)
	}
	l.skipped = rep.Skipped
	l.catalog = len(l.items.ids)
	slices.SortStableFunc(l.rows, func(a, b evalRow) int {
		return cmp.Or(cmp.Compare(a.sec, b.sec), cmp.Compare(a.nsec, b.nsec))
	})
	return l, l.check(path)
}

func (l *Log) check(source string) error {
	switch {
	case l.catalog == 0:
		return fmt.Errorf("%s: the catalog has no items", source)
	case len(l.rows) == 0:
		return fmt.Errorf("%s: the log has no events", source)
	}
	return nil
}

// evalSplit is the test set of a log. Its definitions are rectrain's, so
// that the figures compare with rectrain's report on the same data:
//
//   - the split is the first test second: End − round(testFrac × (End −
//     Start)) in Unix seconds, Start and End the times of the first and
//     last events that rectrain keeps (rectrain.Data.replay; rectrain.LoadDir
//     leaves out the events of items outside the catalog); the train part
//     is the events before the split, the test window those at or after it;
//   - an engagement counts on the latest earlier impression of its item to
//     its user, or not at all when there is none (rectrain.Data.replay);
//   - a user's relevant items are the items of the user's test-window
//     impressions that drew a positive engagement (click, like, comment,
//     share) and were not shown to the user before the split; the test
//     users are those with at least one (see rectrain.Ranked);
//   - the popularity of an item is the number of its impressions before
//     the split that drew a positive engagement (rectrain's evaluate).
type evalSplit struct {
	split     int64 // Unix seconds
	trainRows int   // the rows before the split, which come first in a sorted log
	// seen holds, per user, the items shown before the split, sorted.
	seen [][]int32
	// relevant holds the relevant items of every test user.
	relevant map[int32]map[int32]bool
	// popularity counts each catalog item's positive train impressions.
	popularity []int
}

// kept reports whether rectrain.LoadDir keeps a row: it leaves out the
// events of items outside the catalog, except follows and unfollows.
func (l *Log) kept(r evalRow) bool {
	return r.item < int32(l.catalog) || r.typ == dataset.Follow || r.typ == dataset.Unfollow
}

// evalImp is an impression of the log and whether it drew a positive
// engagement.
type evalImp struct {
	user, item int32
	positive   bool
}

func positiveEngagement(t dataset.EventType) bool {
	return t == dataset.Click || t == dataset.Like || t == dataset.Comment || t == dataset.Share
}

// splitLog splits a log at the last testFrac of its time span.
func splitLog(l *Log, testFrac float64) (*evalSplit, error) {
	first := slices.IndexFunc(l.rows, l.kept)
	if first < 0 {
		return nil, errors.New("the log has no events of catalog items")
	}
	last := len(l.rows) - 1
	for !l.kept(l.rows[last]) {
		last--
	}
	start, end := l.rows[first].sec, l.rows[last].sec
	sp := &evalSplit{
		split:      end - int64(math.Round(testFrac*float64(end-start))),
		trainRows:  -1,
		seen:       make([][]int32, len(l.users.ids)),
		relevant:   map[int32]map[int32]bool{},
		popularity: make([]int, l.catalog),
	}
	var imps []evalImp
	trainImps := -1
	latest := map[uint64]int{} // user<<32|item → index in imps
	for k := range l.rows {
		r := &l.rows[k]
		if sp.trainRows < 0 && r.sec >= sp.split {
			sp.trainRows, trainImps = k, len(imps)
		}
		if r.item < 0 || !l.kept(*r) {
			continue
		}
		key := uint64(uint32(r.user))<<32 | uint64(uint32(r.item))
		switch {
		case r.typ == dataset.Impression:
			latest[key] = len(imps)
			imps = append(imps, evalImp{user: r.user, item: r.item})
		case positiveEngagement(r.typ):
			if j, ok := latest[key]; ok {
				imps[j].positive = true
			}
		}
	}
	if sp.trainRows < 0 {
		sp.trainRows, trainImps = len(l.rows), len(imps)
	}
	for _, im := range imps[:trainImps] {
		sp.seen[im.user] = append(sp.seen[im.user], im.item)
		if im.positive {
			sp.popularity[im.item]++
		}
	}
	for u, items := range sp.seen {
		slices.Sort(items)
		sp.seen[u] = slices.Compact(items)
	}
	for _, im := range imps[trainImps:] {
		if !im.positive || sp.wasShown(im.user, im.item) {
			continue
		}
		if sp.relevant[im.user] == nil {
			sp.relevant[im.user] = map[int32]bool{}
		}
		sp.relevant[im.user][im.item] = true
	}
	return sp, nil
}

// wasShown reports whether item was shown to user before the split.
func (sp *evalSplit) wasShown(user, item int32) bool {
	_, ok := slices.BinarySearch(sp.seen[user], item)
	return ok
}

// testUsers returns the test users ordered by ID; when limit is positive and
// smaller than their number, a sample of limit of them drawn with seed.
func (sp *evalSplit) testUsers(l *Log, limit int, seed uint64) []int32 {
	users := make([]int32, 0, len(sp.relevant))
	for u := range sp.relevant {
		users = append(users, u)
	}
	byID := func(a, b int32) int { return cmp.Compare(l.users.ids[a], l.users.ids[b]) }
	slices.SortFunc(users, byID)
	if limit > 0 && limit < len(users) {
		rng := newRand(seed, 0)
		rng.Shuffle(len(users), func(i, j int) { users[i], users[j] = users[j], users[i] })
		users = users[:limit]
		slices.SortFunc(users, byID)
	}
	return users
}
