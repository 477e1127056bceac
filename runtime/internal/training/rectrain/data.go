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

package rectrain

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// File names of a dataset directory; each may also be gzip-compressed with
// a ".gz" suffix.
const (
	CatalogFile = "catalog.jsonl"
	UsersFile   = "users.jsonl"
	FollowsFile = "follows.jsonl"
	EventsFile  = "events.jsonl"
)

// Heads are the MTML's events, in output column order.
var Heads = []string{"click", "like", "comment", "share", "see_less"}

// headOf maps an engagement event type to its head index, -1 for others.
func headOf(t dataset.EventType) int {
	switch t {
	case dataset.Click:
		return 0
	case dataset.Like:
		return 1
	case dataset.Comment:
		return 2
	case dataset.Share:
		return 3
	case dataset.SeeLess:
		return 4
	}
	return -1
}

// seeLessHead is the index of see_less in Heads.
const seeLessHead = 4

// positiveMask selects the labels of positive engagements (click, like,
// comment, share): those feed the engagement pool and the retrieval model.
const positiveMask = 0b01111

// PoolSize is the number of most recent positive engagements the
// engagement_pool feature averages.
const PoolSize = 50

// Impression is one impression of the log with the features that depend on
// the time it happened and the engagements that followed it.
type Impression struct {
	// T is the time, Unix seconds.
	T          int64
	User, Item int32
	// Followed records whether the user followed the item's author at T.
	Followed bool
	// PoolN is the number of the user's positive engagements before the
	// impression: its engagement pool is the last PoolSize of
	// Data.Engaged(User)[:PoolN].
	PoolN int32
	// Labels has bit h set when the head Heads[h]'s event followed.
	Labels uint8
}

// Data is a dataset replayed in time order into training examples.
type Data struct {
	// UserDim and ItemDim are the widths of user and item features.
	UserDim, ItemDim int

	UserIDs  []string
	UserFeat []float32 // len(UserIDs)×UserDim; zeros for users absent from users.jsonl

	ItemIDs     []string
	ItemFeat    []float32 // len(ItemIDs)×ItemDim
	ItemRisk    []float32
	ItemCreated []int64 // Unix seconds
	ItemAuthor  []int32

	// Imps are the impressions in log order; Pools holds each one's
	// engagement_pool (len(Imps)×ItemDim).
	Imps  []Impression
	Pools []float32

	// Split is the first test time (Unix seconds): impressions at or after
	// it form the test set, those before the training set. TrainN is the
	// number of training impressions (they come first in Imps).
	Split  int64
	TrainN int
	// SplitPools is every user's engagement_pool at Split
	// (len(UserIDs)×ItemDim) and SplitFollows the follow graph then (keys
	// followKey(user, author)).
	SplitPools   []float32
	SplitFollows map[uint64]struct{}
	// SplitPoolN is every user's number of positive engagements before the
	// split (see Impression.PoolN).
	SplitPoolN []int32
	// engaged holds each user's positive engagements' items in log order.
	engaged [][]int32

	// Start and End are the times of the first and last events.
	Start, End int64

	// Skipped counts rows left out: bad rows the readers skipped, events of
	// unknown items, engagements without an earlier impression.
	Skipped map[string]int
	// Errors are the first bad rows of each file (LoadOptions.MaxErrors
	// per file), with their line numbers.
	Errors []*dataset.RowError

	// Truth is the planted truth when the dataset is a synth world written
	// with its truth files; nil otherwise. TruthUser and TruthItem map the
	// indexes of UserIDs and ItemIDs to the truth's (-1 when absent).
	Truth                *synth.World
	TruthUser, TruthItem []int32
}

// noteBad records a reader's skipped rows.
func (d *Data) noteBad(file string, r dataset.Report) {
	d.Skipped[file] += r.Skipped
	d.Errors = append(d.Errors, r.Errors...)
}

// attachTruth reads synth's truth files in dir and maps the IDs onto them.
func (d *Data) attachTruth(dir string) error {
	w, err := synth.ReadTruth(dir)
	if err != nil {
		return fmt.Errorf("failed to read the planted truth: %w", err)
	}
	d.Truth = w
	d.TruthUser = make([]int32, len(d.UserIDs))
	for u, id := range d.UserIDs {
		d.TruthUser[u] = -1
		if k, ok := synth.ParseID('u', id); ok && k < w.NumUsers() {
			d.TruthUser[u] = int32(k)
		}
	}
	d.TruthItem = make([]int32, len(d.ItemIDs))
	for i, id := range d.ItemIDs {
		d.TruthItem[i] = -1
		if k, ok := synth.ParseID('i', id); ok && k < w.NumItems() {
			d.TruthItem[i] = int32(k)
		}
	}
	return nil
}

func followKey(user, author int32) uint64 { return uint64(uint32(user))<<32 | uint64(uint32(author)) }

// Engaged returns the items of user u's positive engagements in log order;
// the slice is shared.
func (d *Data) Engaged(u int32) []int32 {
	if int(u) >= len(d.engaged) {
		return nil
	}
	return d.engaged[u]
}

// PoolItems returns the items of the engagement pool of a user with n
// positive engagements so far: the last PoolSize of them, oldest first.
func (d *Data) PoolItems(u int32, n int32) []int32 {
	e := d.Engaged(u)[:n]
	return e[max(0, len(e)-PoolSize):]
}

// Pool returns the engagement_pool of impression k.
func (d *Data) Pool(k int) []float32 { return d.Pools[k*d.ItemDim : (k+1)*d.ItemDim] }

// User returns the features of user u.
func (d *Data) User(u int32) []float32 {
	return d.UserFeat[int(u)*d.UserDim : (int(u)+1)*d.UserDim]
}

// Item returns the features of item i.
func (d *Data) Item(i int32) []float32 {
	return d.ItemFeat[int(i)*d.ItemDim : (int(i)+1)*d.ItemDim]
}

// ItemAge is the item_age feature of item i at time t (Unix seconds):
// ln(1 + max(0, t − created)/1h).
func (d *Data) ItemAge(i int32, t int64) float64 {
	return math.Log1p(float64(max(0, t-d.ItemCreated[i])) / 3600)
}

// LoadOptions controls LoadDir.
type LoadOptions struct {
	// TestFrac is the fraction of the log's time span, at its end, held out
	// for evaluation. Default 0.1.
	TestFrac float64
	// Strict makes a bad row fatal instead of skipped and counted. Default
	// false.
	Strict bool
	// MaxErrors is how many bad rows of each file are kept in Data.Errors;
	// default 10, negative keeps none.
	MaxErrors int
}

// LoadDir reads the dataset in dir (catalog, users, follows and events, in
// the runtime/internal/dataset formats) and replays the log in time order. When dir
// also holds synth's truth files, Data.Truth is the planted truth.
func LoadDir(dir string, opts LoadOptions) (*Data, error) {
	if opts.TestFrac == 0 {
		opts.TestFrac = 0.1
	}
	if opts.TestFrac <= 0 || opts.TestFrac >= 1 {
		return nil, fmt.Errorf("test fraction %v outside (0, 1)", opts.TestFrac)
	}
	l := &dirLoader{
		dir: dir, ro: dataset.ReadOptions{Strict: opts.Strict, MaxErrors: opts.MaxErrors},
		d:     &Data{Skipped: map[string]int{}},
		items: map[string]int32{}, users: map[string]int32{}, authors: map[string]int32{},
	}
	if err := l.readCatalog(); err != nil {
		return nil, err
	}
	if err := l.readUsers(); err != nil {
		return nil, err
	}
	follows, err := l.readFollows()
	if err != nil {
		return nil, err
	}
	log, err := l.readEvents()
	if err != nil {
		return nil, err
	}
	d := l.d
	d.replay(log, follows, opts.TestFrac)
	if synth.HasTruth(dir) {
		if err := d.attachTruth(dir); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// dirLoader reads the files of a dataset directory into d, numbering the
// items, users and authors in the order they first appear.
type dirLoader struct {
	dir                   string
	ro                    dataset.ReadOptions
	d                     *Data
	items, users, authors map[string]int32
}

func (l *dirLoader) author(id string) int32 {
	a, ok := l.authors[id]
	if !ok {
		a = int32(len(l.authors))
		l.authors[id] = a
	}
	return a
}

// user returns the index of a user; one absent from users.jsonl is added
// with zero features.
func (l *dirLoader) user(id string) int32 {
	u, ok := l.users[id]
	if !ok {
		d := l.d
		u = int32(len(d.UserIDs))
		l.users[id] = u
		d.UserIDs = append(d.UserIDs, id)
		d.UserFeat = append(d.UserFeat, make([]float32, d.UserDim)...)
	}
	return u
}

func (l *dirLoader) readCatalog() error {
	d := l.d
	cat, err := openIn(l.dir, CatalogFile, l.ro, dataset.OpenCatalog)
	if err != nil {
		return err
	}
	defer cat.Close()
	d.ItemDim = cat.Header().FeatureDim
	for it, err := range cat.All() {
		if err != nil {
			return fmt.Errorf("failed to read the catalog: %w", err)
		}
		l.items[it.ID] = int32(len(d.ItemIDs))
		d.ItemIDs = append(d.ItemIDs, it.ID)
		d.ItemFeat = append(d.ItemFeat, it.Features...)
		d.ItemRisk = append(d.ItemRisk, float32(it.IntegrityRisk))
		d.ItemCreated = append(d.ItemCreated, it.Created.Unix())
		d.ItemAuthor = append(d.ItemAuthor, l.author(it.Author))
	}
	d.noteBad(CatalogFile, cat.Report())
	if len(d.ItemIDs) == 0 {
		return fmt.Errorf("the catalog in %s has no items", l.dir)
	}
	return nil
}

func (l *dirLoader) readUsers() error {
	d := l.d
	ur, err := openIn(l.dir, UsersFile, l.ro, dataset.OpenUsers)
	if err != nil {
		return err
	}
	defer ur.Close()
	d.UserDim = ur.Header().FeatureDim
	for u, err := range ur.All() {
		if err != nil {
			return fmt.Errorf("failed to read the users: %w", err)
		}
		l.users[u.ID] = int32(len(d.UserIDs))
		d.UserIDs = append(d.UserIDs, u.ID)
		d.UserFeat = append(d.UserFeat, u.Features...)
	}
	d.noteBad(UsersFile, ur.Report())
	return nil
}

// readFollows returns the follow graph before the log, as followKey pairs.
func (l *dirLoader) readFollows() (map[uint64]struct{}, error) {
	follows := map[uint64]struct{}{}
	fr, err := openIn(l.dir, FollowsFile, l.ro, dataset.OpenFollows)
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	for f, err := range fr.All() {
		if err != nil {
			return nil, fmt.Errorf("failed to read the follows: %w", err)
		}
		follows[followKey(l.user(f.User), l.author(f.Author))] = struct{}{}
	}
	l.d.noteBad(FollowsFile, fr.Report())
	return follows, nil
}

// readEvents returns the log in file order, leaving out (and counting) the
// events of items the catalog does not hold, but for follows and
// unfollows.
func (l *dirLoader) readEvents() ([]logRow, error) {
	var log []logRow
	er, err := openIn(l.dir, EventsFile, l.ro, dataset.OpenEvents)
	if err != nil {
		return nil, err
	}
	defer er.Close()
	for e, err := range er.All() {
		if err != nil {
			return nil, fmt.Errorf("failed to read the events: %w", err)
		}
		r := logRow{t: e.Time.Unix(), user: l.user(e.User), item: -1, author: -1, typ: e.Type}
		if e.Item != "" {
			i, ok := l.items[e.Item]
			if !ok {
				if e.Type != dataset.Follow && e.Type != dataset.Unfollow {
					l.d.Skipped["events of unknown items"]++
					continue
				}
			} else {
				r.item = i
			}
		}
		if e.Author != "" {
			r.author = l.author(e.Author)
		}
		log = append(log, r)
	}
	l.d.noteBad(EventsFile, er.Report())
	if len(log) == 0 {
		return nil, fmt.Errorf("the log in %s has no usable events", l.dir)
	}
	return log, nil
}

// logRow is one event of the log with its IDs resolved; item and author are
// -1 when absent.
type logRow struct {
	t          int64
	user, item int32
	author     int32
	typ        dataset.EventType
}

// replay walks the log in time order, building the impressions with their
// features and labels, and the state at the split.
func (d *Data) replay(log []logRow, follows map[uint64]struct{}, testFrac float64) {

	d.Start, d.End = log[0].t, log[len(log)-1].t
	d.Split = d.End - int64(math.Round(testFrac*float64(d.End-d.Start)))

	nu := len(d.UserIDs)
	pools := newPoolState(nu, d)
	last := map[uint64]int32{} // user×item → latest impression
	snap := func() {
		d.SplitPools = make([]float32, nu*d.ItemDim)
		for u := range nu {
			copy(d.SplitPools[u*d.ItemDim:], pools.mean(int32(u)))
		}
		d.SplitFollows = make(map[uint64]struct{}, len(follows))
		for k := range follows {
			d.SplitFollows[k] = struct{}{}
		}
		d.SplitPoolN = make([]int32, nu)
		for u := range nu {
			d.SplitPoolN[u] = int32(len(pools.engaged(int32(u))))
		}
	}
	d.TrainN = -1
	for _, r := range log {
		if d.TrainN < 0 && r.t >= d.Split {
			d.TrainN = len(d.Imps)
			snap()
		}
		switch r.typ {
		case dataset.Impression:
			last[uint64(uint32(r.user))<<32|uint64(uint32(r.item))] = int32(len(d.Imps))
			_, fol := follows[followKey(r.user, d.ItemAuthor[r.item])]
			d.Imps = append(d.Imps, Impression{T: r.t, User: r.user, Item: r.item, Followed: fol, PoolN: int32(len(pools.engaged(r.user)))})
			d.Pools = append(d.Pools, pools.mean(r.user)...)
		case dataset.Follow:
			follows[followKey(r.user, r.author)] = struct{}{}
		case dataset.Unfollow:
			delete(follows, followKey(r.user, r.author))
		default:
			h := headOf(r.typ)
			k, ok := last[uint64(uint32(r.user))<<32|uint64(uint32(r.item))]
			if !ok {
				d.Skipped["engagements without an earlier impression"]++
			} else {
				d.Imps[k].Labels |= 1 << h
			}
			if positiveMask&(1<<h) != 0 {
				pools.add(r.user, r.item)
			}
		}
	}
	if d.TrainN < 0 {
		d.TrainN = len(d.Imps)
		snap()
	}
	d.engaged = pools.hist
	for k, n := range d.Skipped {
		if n == 0 {
			delete(d.Skipped, k)
		}
	}
}

// openIn opens name in dir, or name.gz when only that exists.
func openIn[T any](dir, name string, ro dataset.ReadOptions, open func(string, dataset.ReadOptions) (*dataset.Reader[T], error)) (*dataset.Reader[T], error) {
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, gzErr := os.Stat(path + ".gz"); gzErr == nil {
			path += ".gz"
		}
	}
	r, err := open(path, ro)
	if err != nil {
		return nil, fmt.Errorf("failed to open %s: %w", name, err)
	}
	return r, nil
}

// poolState keeps each user's last PoolSize positive engagements and the
// mean of their item features, recomputed only after a change.
type poolState struct {
	d     *Data
	ring  [][]int32 // per user, up to PoolSize items, oldest overwritten
	hist  [][]int32 // per user, every item, in order
	next  []int32
	means [][]float32
	dirty []bool
	zero  []float32
	acc   []float64
}

func newPoolState(users int, d *Data) *poolState {
	return &poolState{d: d, ring: make([][]int32, users), hist: make([][]int32, users), next: make([]int32, users),
		means: make([][]float32, users), dirty: make([]bool, users),
		zero: make([]float32, d.ItemDim), acc: make([]float64, d.ItemDim)}
}

func (p *poolState) grow(u int32) {
	for int(u) >= len(p.ring) {
		p.ring = append(p.ring, nil)
		p.hist = append(p.hist, nil)
		p.next = append(p.next, 0)
		p.means = append(p.means, nil)
		p.dirty = append(p.dirty, false)
	}
}

func (p *poolState) add(u, item int32) {
	p.grow(u)
	if len(p.ring[u]) < PoolSize {
		p.ring[u] = append(p.ring[u], item)
	} else {
		p.ring[u][p.next[u]] = item
		p.next[u] = (p.next[u] + 1) % PoolSize
	}
	p.hist[u] = append(p.hist[u], item)
	p.dirty[u] = true
}

// engaged returns the user's engaged items so far.
func (p *poolState) engaged(u int32) []int32 {
	if int(u) >= len(p.hist) {
		return nil
	}
	return p.hist[u]
}

// mean returns the user's engagement_pool; the slice is shared.
func (p *poolState) mean(u int32) []float32 {
	if int(u) >= len(p.ring) || len(p.ring[u]) == 0 {
		return p.zero
	}
	if p.dirty[u] || p.means[u] == nil {
		clear(p.acc)
		for _, it := range p.ring[u] {
			for k, v := range p.d.Item(it) {
				p.acc[k] += float64(v)
			}
		}
		m := p.means[u]
		if m == nil {
			m = make([]float32, p.d.ItemDim)
		}
		for k, v := range p.acc {
			m[k] = float32(v / float64(len(p.ring[u])))
		}
		p.means[u], p.dirty[u] = m, false
	}
	return p.means[u]
}
