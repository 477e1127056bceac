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
	"context"
	"errors"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Items is what the sources and the mixer read of the catalog.
type Items interface {
	// Ordinal returns the catalog ordinal of an item id, and false for an
	// id the catalog does not hold.
	Ordinal(id string) (uint32, bool)
	// Ordinals appends to dst the ordinal of each of ids, -1 for an id the
	// catalog does not hold, and returns the extended slice.
	Ordinals(ids []string, dst []int64) []int64
	// ID returns the id of the item at ordinal i.
	ID(i uint32) string
	// Author returns the author id of the item at ordinal i.
	Author(i uint32) string
	// AuthorIndex returns the index of the author of the item at ordinal i.
	AuthorIndex(i uint32) uint32
	// LookupAuthor returns the index of an author id, and false for an
	// author with no item in the catalog.
	LookupAuthor(id string) (uint32, bool)
	// Created returns the publication time of the item at ordinal i.
	Created(i uint32) time.Time
}

// UserEmbedder is the user tower of the two-tower model.
type UserEmbedder interface {
	// EmbedUser appends the embedding of the request's user at the
	// request's time to dst and returns the extended slice. An empty result
	// means the user has no embedding.
	EmbedUser(ctx context.Context, req *Request, dst []float32) ([]float32, error)
}

// ItemVectors holds the item embeddings of the two-tower model, the vectors
// its ANN index was built from.
type ItemVectors interface {
	// Vector returns the embedding of the item at ordinal item in dst's
	// memory (grown if short), or nil if it has none.
	Vector(item uint32, dst []float32) []float32
}

// Searcher finds the items whose embeddings score highest against a query;
// *ann.Index implements it, with result ids being catalog ordinals.
type Searcher interface {
	SearchBeam(query []float32, k, beam int, dst []ann.Result) ([]ann.Result, error)
}

var _ Searcher = (*ann.Index)(nil)

// Candidate is one item proposed by a source.
type Candidate struct {
	// Item is the catalog ordinal.
	Item uint32
	// Score is the source's own score; higher is better. Scores of different
	// sources are not comparable.
	Score float32
}

// Source proposes candidates for a request.
type Source interface {
	// Fetch appends at most limit candidates to dst, best first, and returns
	// the extended slice. Items the request Excludes should not be among
	// them: a source reaches past them, so that what the user has seen
	// does not take its limit (the mixer drops any that come). It honours
	// ctx's deadline. The mixer owns dst and may reuse it once Fetch has
	// returned.
	Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error)
}

// Request is the user a retrieval is for. Sources running in parallel for the
// same request share, through it, what more than one of them reads (the
// user's follows, recent engagements, embedding): the first source to need a
// value computes it and the others wait for it. A Request must not be copied
// once used, nor reused for another user.
type Request struct {
	// User is the user's id.
	User string
	// Now is the time of the request; a zero Now means the time the request
	// is first looked at.
	Now time.Time
	// State is the user's state read once for the request (the frontend
	// reads it from the store; a stage call carries it). Sources read the
	// user's follows and engagements from it; when it is nil they read
	// their store.
	State *store.UserState

	mu          sync.Mutex
	memo        []*memoEntry
	failed      []string
	failedNames []string

	// excl is the seen filter by catalog ordinal, which the mixer sets
	// before it runs the sources; nil excludes nothing.
	excl *exclusion
}

// exclusion is a request's seen filter by catalog ordinal and author index,
// so that a candidate is checked without reading its id and author
// strings. It is read-only while the sources run.
type exclusion struct {
	items   map[uint32]struct{}
	authors map[uint32]struct{}
	cat     Items
}

func newExclusion() exclusion {
	return exclusion{items: make(map[uint32]struct{}), authors: make(map[uint32]struct{})}
}

// reset fills the exclusion from seen, looking items and authors up in cat;
// those cat does not hold cannot be proposed and are left out.
func (x *exclusion) reset(seen *store.Filter, cat Items) {
	clear(x.items)
	clear(x.authors)
	x.cat = cat
	for id := range seen.Items() {
		if o, ok := cat.Ordinal(id); ok {
			x.items[o] = struct{}{}
		}
	}
	for id := range seen.Authors() {
		if a, ok := cat.LookupAuthor(id); ok {
			x.authors[a] = struct{}{}
		}
	}
}

func (x *exclusion) excludes(o uint32) bool {
	if _, ok := x.items[o]; ok {
		return true
	}
	if len(x.authors) == 0 {
		return false
	}
	_, ok := x.authors[x.cat.AuthorIndex(o)]
	return ok
}

// Excludes reports whether the request's seen filter drops the item at
// catalog ordinal o: the user saw it, or asked to see less of it or of its
// author. Sources drop such items before they count towards their limit.
func (r *Request) Excludes(o uint32) bool {
	return r.excl != nil && r.excl.excludes(o)
}

// Excluded returns how many catalog items the request's seen filter drops
// by item, and whether it drops whole authors too, so that any number of
// items may be dropped: what a source over-fetches by.
func (r *Request) Excluded() (items int, authors bool) {
	if r.excl == nil {
		return 0, false
	}
	return len(r.excl.items), len(r.excl.authors) > 0
}

type memoEntry struct {
	key  any
	done chan struct{}
	val  any
	err  error
}

// follows returns the authors the user follows, from State when the
// request carries it.
func (r *Request) follows(ctx context.Context, social store.SocialReader) (any, error) {
	if r.State != nil {
		return r.State.Follows, nil
	}
	return social.Follows(ctx, r.User)
}

// engagements returns the user's latest n positive engagements, from State
// when the request carries it.
func (r *Request) engagements(ctx context.Context, users store.UserReader, n int) (any, error) {
	if r.State != nil {
		return r.State.Engagements[:min(n, len(r.State.Engagements))], nil
	}
	return users.RecentEngagements(ctx, r.User, n)
}

// noteFailure records that the source name gave the request nothing.
func (r *Request) noteFailure(name string, err error) {
	why := err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		why = "past its deadline"
	}
	r.mu.Lock()
	r.failed = append(r.failed, name+": "+why)
	r.failedNames = append(r.failedNames, name)
	r.mu.Unlock()
}

// FailedSources names the sources of Failed, in the same order.
func (r *Request) FailedSources() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failedNames...)
}

// Failed lists the sources that failed the request or were given up on at
// their deadline, each as "name: why", in the order the mixer learnt it.
func (r *Request) Failed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failed...)
}

// Time returns the time the request is served at (Now, fixed on first use
// when it is zero).
func (r *Request) Time() time.Time { return r.now() }

// now returns Now, fixing it on first use when it is zero so that every
// source of the request sees the same time.
func (r *Request) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Now.IsZero() {
		r.Now = time.Now()
	}
	return r.Now
}

// shared returns the value under key, computing it with fill if no other
// source of the request has. While one caller computes, others with the same
// key wait for it, each within its own ctx. A failed computation is not
// remembered: a waiter whose context outlives the one that failed computes
// the value itself, so one source's short deadline does not fail another.
// The value is shared and must be treated as read-only. key must be
// comparable.
func (r *Request) shared(ctx context.Context, key any, fill func(ctx context.Context) (any, error)) (any, error) {
	for {
		r.mu.Lock()
		var e *memoEntry
		for _, m := range r.memo {
			if m.key == key {
				e = m
				break
			}
		}
		if e == nil {
			e = &memoEntry{key: key, done: make(chan struct{})}
			r.memo = append(r.memo, e)
			r.mu.Unlock()
			v, err := fill(ctx)
			r.mu.Lock()
			e.val, e.err = v, err
			if err != nil {
				for i, m := range r.memo {
					if m == e {
						r.memo = append(r.memo[:i], r.memo[i+1:]...)
						break
					}
				}
			}
			r.mu.Unlock()
			close(e.done)
			return v, err
		}
		r.mu.Unlock()
		select {
		case <-e.done:
			if e.err == nil {
				return e.val, nil
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Keys of the values sources share through a Request.
type (
	followsKey     struct{}
	engagementsKey struct{ n int }
	embeddingKey   struct{ model string }
)

// lookupScratch holds the ids a source looks up at once (Items.Ordinals)
// and their ordinals, and the followed authors' items they come from.
type lookupScratch struct {
	ids    []string
	ords   []int64
	recent []store.ItemTime
	scores []store.ItemScore
}

// ordinals looks up the ids appended to sc.ids, empties sc.ids and returns
// their ordinals (-1 for an id items does not hold), valid until sc is
// next used.
func (sc *lookupScratch) ordinals(items Items) []int64 {
	sc.ords = items.Ordinals(sc.ids, sc.ords[:0])
	clear(sc.ids) // drop the strings the pool would keep alive
	sc.ids = sc.ids[:0]
	return sc.ords
}

var lookupPool = sync.Pool{New: func() any { return new(lookupScratch) }}
