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
	"slices"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// TwoTowerANN proposes the items whose two-tower embeddings score highest
// against the user's: the user tower embeds the user, the ANN index over the
// item tower's embeddings finds the nearest items.
type TwoTowerANN struct {
	users UserEmbedder
	index Searcher
	model string
	ef    int
}

// NewTwoTowerANN returns the source of cfg. Sources naming the same
// cfg.Model share one user embedding per request.
func NewTwoTowerANN(cfg config.Source, users UserEmbedder, index Searcher) *TwoTowerANN {
	return &TwoTowerANN{users: users, index: index, model: cfg.Model, ef: cfg.Ef}
}

// Fetch implements Source. The score is the inner product (or cosine, as the
// index measures) of the user and item embeddings. A user without an
// embedding gets no candidates. The index is searched past the items the
// request excludes (see FetchUnseen), so that the nearest unseen items
// fill the limit.
func (s *TwoTowerANN) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	v, err := req.shared(ctx, embeddingKey{s.model}, func(ctx context.Context) (any, error) {
		return s.users.EmbedUser(ctx, req, nil)
	})
	if err != nil {
		return dst, fmt.Errorf("failed to embed user: %w", err)
	}
	q := v.([]float32)
	if len(q) == 0 {
		return dst, nil
	}
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	buf := resultPool.Get().(*[]ann.Result)
	defer resultPool.Put(buf)
	return FetchUnseen(ctx, req, limit, dst, func(ask int, dst []Candidate) ([]Candidate, bool, error) {
		res, err := s.index.SearchBeam(q, ask, s.ef, (*buf)[:0])
		*buf = res[:0]
		if err != nil {
			return dst, false, fmt.Errorf("failed to search items near the user: %w", err)
		}
		for _, r := range res[:min(len(res), ask)] {
			dst = append(dst, Candidate{Item: r.ID, Score: r.Score})
		}
		return dst, len(res) >= ask, nil
	})
}

var resultPool = sync.Pool{New: func() any { return new([]ann.Result) }}

// ItemToItemANN proposes the items nearest, in the two-tower item embedding
// space, to the items the user engaged with most recently ("more like
// this").
type ItemToItemANN struct {
	users   store.UserReader
	items   Items
	vectors ItemVectors
	index   Searcher
	seeds   int
	ef      int
}

// NewItemToItemANN returns the source of cfg, which must have a positive
// SeedItems: the number of the user's latest engagements searched from.
func NewItemToItemANN(cfg config.Source, users store.UserReader, items Items, vectors ItemVectors, index Searcher) (*ItemToItemANN, error) {
	if cfg.SeedItems < 1 {
		return nil, fmt.Errorf("failed to create source %q: seedItems must be at least 1", cfg.Name)
	}
	return &ItemToItemANN{users: users, items: items, vectors: vectors, index: index, seeds: cfg.SeedItems, ef: cfg.Ef}, nil
}

type i2iScratch struct {
	seeds []uint32
	res   []ann.Result
	query []float32
}

var i2iPool = sync.Pool{New: func() any { return new(i2iScratch) }}

// Fetch implements Source. The distinct items among the user's latest
// SeedItems engagements that have an embedding are the seeds; each is
// searched for its ceil(limit/seeds)+seeds nearest items, the extra seeds
// making room for the seeds themselves, which are never proposed. An item
// near several seeds scores its best inner product with any of them. The
// searches reach past the items the request excludes as TwoTowerANN's do,
// the limit in that count growing as FetchUnseen asks.
func (s *ItemToItemANN) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	v, err := req.shared(ctx, engagementsKey{s.seeds}, func(ctx context.Context) (any, error) {
		return req.engagements(ctx, s.users, s.seeds)
	})
	if err != nil {
		return dst, fmt.Errorf("failed to read recent engagements: %w", err)
	}
	engs := v.([]store.Engagement)

	sc := i2iPool.Get().(*i2iScratch)
	defer i2iPool.Put(sc)
	sc.seeds = sc.seeds[:0]
	for _, e := range engs {
		ord, ok := s.items.Ordinal(e.Item)
		if !ok || slices.Contains(sc.seeds, ord) {
			continue
		}
		v := s.vectors.Vector(ord, sc.query)
		if v == nil {
			continue
		}
		sc.query = v
		sc.seeds = append(sc.seeds, ord)
	}
	if len(sc.seeds) == 0 {
		return dst, nil
	}
	slices.Sort(sc.seeds)
	return FetchUnseen(ctx, req, limit, dst, func(ask int, dst []Candidate) ([]Candidate, bool, error) {
		return s.search(ctx, sc, ask, dst)
	})
}

// search appends the best limit items near the seeds in sc and reports
// whether a seed's search came back full, so that a larger limit may find
// more.
func (s *ItemToItemANN) search(ctx context.Context, sc *i2iScratch, limit int, dst []Candidate) ([]Candidate, bool, error) {
	n := len(sc.seeds)
	k := (limit+n-1)/n + n
	res := sc.res[:0]
	more := false
	for _, seed := range sc.seeds {
		if err := ctx.Err(); err != nil {
			sc.res = res[:0]
			return dst, false, err
		}
		from := len(res)
		var err error
		sc.query = s.vectors.Vector(seed, sc.query)
		res, err = s.index.SearchBeam(sc.query, k, s.ef, res)
		if err != nil {
			sc.res = res[:0]
			return dst, false, fmt.Errorf("failed to search items near item %d: %w", seed, err)
		}
		more = more || len(res)-from >= k
	}
	sc.res = res[:0]

	// Keep each item's best score: by id, best first, then the first of each id.
	slices.SortFunc(res, func(a, b ann.Result) int {
		if c := cmp.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(b.Score, a.Score)
	})
	res = slices.CompactFunc(res, func(a, b ann.Result) bool { return a.ID == b.ID })
	res = slices.DeleteFunc(res, func(r ann.Result) bool {
		_, found := slices.BinarySearch(sc.seeds, r.ID)
		return found
	})
	slices.SortFunc(res, func(a, b ann.Result) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	for _, r := range res[:min(len(res), limit)] {
		dst = append(dst, Candidate{Item: r.ID, Score: r.Score})
	}
	return dst, more, nil
}
