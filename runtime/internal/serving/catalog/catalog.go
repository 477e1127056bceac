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

// Package catalog holds recserve's item catalog and user features in memory,
// column by column, for the funnel's hot paths over millions of items.
//
// Items are numbered by dense ordinals (uint32) in the order they were
// loaded or added; every per-item accessor takes an ordinal and costs a few
// loads: IDs, interned author names, creation times, integrity risks and
// feature vectors live in append-only chunks, and a feature vector is a view
// into its chunk's flat slab. Ordinal maps an item ID back through a
// lock-free hash index.
//
// Concurrency: any number of goroutines may read while others Add new items
// (the real-time new_item event). Readers take no lock: Add writes a new
// item's columns and then publishes it with atomic stores of its index slot
// and of the length, so an ordinal obtained from Len, Ordinal or an earlier
// Add is always fully visible, and every ordinal below Len is found by
// Ordinal. Writers are serialised by a mutex that
// readers never touch. The user table is fixed when the catalog is built.
//
// Load reads the files described in runtime/internal/dataset/FORMAT.md strictly: the
// first bad row fails the load with an error naming the file and line.
package catalog

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/strpack"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// MaxItems is the largest number of items a catalog holds.
const MaxItems = math.MaxInt32

// ErrDuplicate is wrapped by Add's error when an item with the same ID is
// already in the catalog.
var ErrDuplicate = errors.New("duplicate item ID")

const (
	chunkBits = 12
	chunkSize = 1 << chunkBits
	chunkMask = chunkSize - 1
)

// chunk holds the columns of chunkSize consecutive ordinals.
// Its one pointer comes first, so that a collection reads no further: the
// ids are located in Catalog.idData rather than held as string headers.
type chunk struct {
	features []float32                // chunkSize × dim, row-major
	ids      [chunkSize]strpack.Loc   // in Catalog.idData
	authors  [chunkSize]uint32        // index into Catalog.authorNames
	created  [chunkSize]int64         // Unix milliseconds
	risk     [chunkSize]atomic.Uint32 // math.Float32bits; SetRisk changes it live
}

// Catalog is the item catalog and the user table. Methods are safe for
// concurrent use; see the package comment.
type Catalog struct {
	dim int

	mu     sync.Mutex     // serialises Add
	pack   strpack.Packer // the author names' and user ids' blocks; held with mu
	idData strpack.Arena  // the item ids; written with mu
	n      atomic.Uint32
	chunks atomic.Pointer[[]*chunk]
	ids    *hashIndex

	authorNames atomic.Pointer[[]string]
	authorIndex *hashIndex

	// newest is the latest creation time of any item, in Unix
	// milliseconds; math.MinInt64 while the catalog is empty.
	newest atomic.Int64

	// The user table; read-only once the catalog is built.
	userDim   int
	users     map[string]uint32 // row in userSlab
	userIDs   []string          // by row; the map's keys, packed
	userSlab  []float32
	userZeros []float32
}

// New returns an empty catalog whose items have featureDim features and a
// user table of users, each with userFeatureDim features. Users are checked
// as a users.jsonl file is: non-empty unique IDs, exactly userFeatureDim
// finite values.
func New(featureDim, userFeatureDim int, users []dataset.User) (*Catalog, error) {
	c, err := newCatalog(featureDim, userFeatureDim, len(users), 0)
	if err != nil {
		return nil, err
	}
	for i := range users {
		if err := c.addUser(&users[i]); err != nil {
			return nil, fmt.Errorf("failed to add user %d: %w", i, err)
		}
	}
	return c, nil
}

func newCatalog(featureDim, userFeatureDim, users, items int) (*Catalog, error) {
	for _, d := range []struct {
		name string
		v    int
	}{{"item feature_dim", featureDim}, {"user feature_dim", userFeatureDim}} {
		if d.v < 0 || d.v > dataset.MaxFeatureDim {
			return nil, fmt.Errorf("%s %d outside 0..%d", d.name, d.v, dataset.MaxFeatureDim)
		}
	}
	c := &Catalog{
		dim:         featureDim,
		ids:         newHashIndex(items),
		authorIndex: newHashIndex(0),
		userDim:     userFeatureDim,
		users:       make(map[string]uint32, users),
		userSlab:    make([]float32, 0, users*userFeatureDim),
		userZeros:   make([]float32, userFeatureDim),
	}
	c.chunks.Store(new([]*chunk))
	c.authorNames.Store(new([]string))
	c.newest.Store(math.MinInt64)
	return c, nil
}

func (c *Catalog) addUser(u *dataset.User) error {
	if err := checkID("id", u.ID); err != nil {
		return err
	}
	if err := checkFeatures(u.Features, c.userDim, false); err != nil {
		return err
	}
	if _, dup := c.users[u.ID]; dup {
		return fmt.Errorf("user %q appears twice", u.ID)
	}
	id := c.pack.String(u.ID)
	c.users[id] = uint32(len(c.userIDs))
	c.userIDs = append(c.userIDs, id)
	c.userSlab = append(c.userSlab, u.Features...)
	return nil
}

// Len returns the number of items.
func (c *Catalog) Len() int { return int(c.n.Load()) }

// FeatureDim returns the width of every item's feature vector.
func (c *Catalog) FeatureDim() int { return c.dim }

// at locates ordinal i. It panics if i was never allocated.
func (c *Catalog) at(i uint32) (*chunk, uint32) {
	return (*c.chunks.Load())[i>>chunkBits], i & chunkMask
}

// Ordinal returns the ordinal of the item with the given ID. While an Add
// is in progress it may find the new item just before Len counts it; the
// item's columns are complete by then.
func (c *Catalog) Ordinal(id string) (uint32, bool) {
	return c.ids.lookup(id, func(o uint32) bool { return c.ID(o) == id })
}

// Ordinals appends to dst the ordinal of each of ids, -1 for an id the
// catalog does not hold, and returns the extended slice: Ordinal for many
// ids at once, and faster (see hashIndex.lookupMany).
func (c *Catalog) Ordinals(ids []string, dst []int64) []int64 {
	return c.ids.lookupMany(ids, c.ID, dst)
}

// ID returns the ID of item i. Like every per-item accessor it expects
// i < Len() and may panic otherwise.
func (c *Catalog) ID(i uint32) string {
	ch, k := c.at(i)
	return c.idData.At(ch.ids[k])
}

// Author returns the author of item i. Equal authors share one string.
func (c *Catalog) Author(i uint32) string {
	ch, k := c.at(i)
	return (*c.authorNames.Load())[ch.authors[k]]
}

// AuthorIndex returns the dense index, in 0..NumAuthors()-1, of the author of
// item i; two items have the same author exactly when their indices are equal.
func (c *Catalog) AuthorIndex(i uint32) uint32 {
	ch, k := c.at(i)
	return ch.authors[k]
}

// AuthorName returns the name of the author with index a.
func (c *Catalog) AuthorName(a uint32) string { return (*c.authorNames.Load())[a] }

// LookupAuthor returns the index of the named author, if any item has it.
func (c *Catalog) LookupAuthor(name string) (uint32, bool) {
	return c.authorIndex.lookup(name, func(a uint32) bool { return c.AuthorName(a) == name })
}

// NumAuthors returns the number of distinct authors.
func (c *Catalog) NumAuthors() int { return len(*c.authorNames.Load()) }

// CreatedMillis returns the creation time of item i in Unix milliseconds.
func (c *Catalog) CreatedMillis(i uint32) int64 {
	ch, k := c.at(i)
	return ch.created[k]
}

// Created returns the creation time of item i, in UTC, to the millisecond.
func (c *Catalog) Created(i uint32) time.Time {
	return time.UnixMilli(c.CreatedMillis(i)).UTC()
}

// NewestCreated returns the latest creation time of any item, in UTC, to
// the millisecond, and false for an empty catalog. Items added later move
// it forward.
func (c *Catalog) NewestCreated() (time.Time, bool) {
	ms := c.newest.Load()
	if ms == math.MinInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// Risk returns the integrity risk of item i, in [0, 1].
func (c *Catalog) Risk(i uint32) float32 {
	ch, k := c.at(i)
	return math.Float32frombits(ch.risk[k].Load())
}

// Prefetch starts loading what ID and Risk read of item i, so that a loop
// over scattered items can ask for the ones a few steps ahead while it
// reads this one: each is otherwise a wait on memory.
func (c *Catalog) Prefetch(i uint32) {
	ch, k := c.at(i)
	vec.Prefetch(ch.ids[k : k+1])
	vec.Prefetch(ch.risk[k : k+1])
}

// PrefetchCreated starts loading what CreatedMillis reads of item i.
func (c *Catalog) PrefetchCreated(i uint32) {
	ch, k := c.at(i)
	vec.Prefetch(ch.created[k : k+1])
}

// PrefetchAuthor starts loading what AuthorIndex reads of item i.
func (c *Catalog) PrefetchAuthor(i uint32) {
	ch, k := c.at(i)
	vec.Prefetch(ch.authors[k : k+1])
}

// PrefetchRisk starts loading what Risk reads of item i.
func (c *Catalog) PrefetchRisk(i uint32) {
	ch, k := c.at(i)
	vec.Prefetch(ch.risk[k : k+1])
}

// SetRisk changes the integrity risk of item i (an integrity event); the
// next Risk returns it. risk must be in [0, 1].
func (c *Catalog) SetRisk(i uint32, risk float32) {
	ch, k := c.at(i)
	ch.risk[k].Store(math.Float32bits(risk))
}

// Features returns the feature vector of item i, FeatureDim() values. It is
// a view into the catalog's storage: callers must not modify it.
func (c *Catalog) Features(i uint32) []float32 {
	ch, k := c.at(i)
	off := int(k) * c.dim
	return ch.features[off : off+c.dim : off+c.dim]
}

// UserFeatureDim returns the width of every user's feature vector.
func (c *Catalog) UserFeatureDim() int { return c.userDim }

// NumUsers returns the number of users in the user table.
func (c *Catalog) NumUsers() int { return len(c.users) }

// UserID returns the user table's copy of id, and whether the table lists
// the user: a string that shares the table's blocks, for what is kept long.
func (c *Catalog) UserID(id string) (string, bool) {
	row, ok := c.users[id]
	if !ok {
		return id, false
	}
	return c.userIDs[row], true
}

// UserFeatures returns the feature vector of the user, UserFeatureDim()
// values, and whether the user is in the user table; for an unknown user it
// returns zeros and false. The slice is a view into the catalog's storage:
// callers must not modify it.
func (c *Catalog) UserFeatures(user string) ([]float32, bool) {
	row, ok := c.users[user]
	if !ok {
		return c.userZeros, false
	}
	off := int(row) * c.userDim
	return c.userSlab[off : off+c.userDim : off+c.userDim], true
}

// Add appends an item and returns its ordinal. The item is checked as a
// catalog row is (Created is required), except that its features may be
// empty, meaning zeros;
// otherwise there must be exactly FeatureDim() finite values. An item whose
// ID is already present is not changed: Add returns its ordinal and an error
// wrapping ErrDuplicate. The features are copied.
func (c *Catalog) Add(item dataset.Item) (uint32, error) {
	if err := checkItem(&item, c.dim); err != nil {
		return 0, fmt.Errorf("failed to add item %q: %w", item.ID, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addLocked(&item)
}

func (c *Catalog) addLocked(item *dataset.Item) (uint32, error) {
	if o, ok := c.Ordinal(item.ID); ok {
		return o, fmt.Errorf("failed to add item %q: %w", item.ID, ErrDuplicate)
	}
	n := c.n.Load()
	if n >= MaxItems {
		return 0, fmt.Errorf("failed to add item %q: the catalog holds its maximum of %d items", item.ID, MaxItems)
	}
	chunks := *c.chunks.Load()
	if int(n>>chunkBits) == len(chunks) {
		grown := append(chunks[:len(chunks):len(chunks)], &chunk{features: make([]float32, chunkSize*c.dim)})
		c.chunks.Store(&grown)
		chunks = grown
	}
	ch, k := chunks[n>>chunkBits], n&chunkMask
	ch.ids[k] = c.idData.Add(item.ID)
	ch.authors[k] = c.internAuthor(item.Author)
	ch.created[k] = item.Created.UnixMilli()
	ch.risk[k].Store(math.Float32bits(float32(item.IntegrityRisk)))
	copy(ch.features[int(k)*c.dim:], item.Features)
	if ms := ch.created[k]; ms > c.newest.Load() {
		c.newest.Store(ms) // writers hold c.mu
	}
	// Index before publishing the length, so that every ordinal below Len
	// is found by Ordinal.
	c.ids.insert(item.ID, n)
	c.n.Store(n + 1)
	return n, nil
}

// internAuthor returns the index of the author, adding it if new. The
// caller holds c.mu.
func (c *Catalog) internAuthor(name string) uint32 {
	if a, ok := c.LookupAuthor(name); ok {
		return a
	}
	names := *c.authorNames.Load()
	a := uint32(len(names))
	name = c.pack.String(name)
	names = append(names, name)
	c.authorNames.Store(&names)
	c.authorIndex.insert(name, a)
	return a
}

func checkItem(it *dataset.Item, dim int) error {
	if err := checkID("id", it.ID); err != nil {
		return err
	}
	if err := checkID("author", it.Author); err != nil {
		return err
	}
	if it.Created.IsZero() {
		return fmt.Errorf("field %q: required", "created")
	}
	if y := it.Created.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("field %q: year %d outside 1..9999", "created", y)
	}
	if err := checkFeatures(it.Features, dim, true); err != nil {
		return err
	}
	if !(it.IntegrityRisk >= 0 && it.IntegrityRisk <= 1) {
		return fmt.Errorf("field %q: %v outside [0, 1]", "integrity_risk", it.IntegrityRisk)
	}
	return nil
}

func checkID(field, id string) error {
	switch {
	case id == "":
		return fmt.Errorf("field %q: must not be empty", field)
	case len(id) > dataset.MaxIDBytes:
		return fmt.Errorf("field %q: longer than %d bytes", field, dataset.MaxIDBytes)
	case !utf8.ValidString(id):
		return fmt.Errorf("field %q: not valid UTF-8", field)
	}
	return nil
}

// checkFeatures checks a feature vector's width and values; absentOK allows
// an empty vector (zeros).
func checkFeatures(fs []float32, dim int, absentOK bool) error {
	if len(fs) != dim && (!absentOK || len(fs) != 0) {
		return fmt.Errorf("field %q: has %d values, want %d", "features", len(fs), dim)
	}
	for i, f := range fs {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return fmt.Errorf("field %q: value %d is not finite", "features", i)
		}
	}
	return nil
}
