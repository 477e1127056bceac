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
	"fmt"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Popular proposes the most popular items, their popularity decayed to the
// request's time.
//
// The decay is the store's: popularity is kept, and ordered, by the store
// with one half-life for every reader, so a source's Window is not applied
// per request. Whoever opens the store sets its half-life
// (store.StateOptions.HalfLife) from the Popular source's Window; a change of
// Window takes effect when the store is opened again.
type Popular struct {
	pop   store.PopularReader
	items Items
	// known is the list last read with its items' ordinals. The store
	// hands out its own strings, the same memory for as long as its list
	// does not change, so an item at the same place in the same memory
	// needs no lookup: every request reads the list, and the 200 lookups of
	// a list cost 4% of a request's CPU at a million items.
	known atomic.Pointer[popularOrdinals]
}

// popularOrdinals is a list of item ids as the store handed them out and
// their catalog ordinals, -1 for an id the catalog did not hold.
type popularOrdinals struct {
	ids  []string
	ords []int64
}

// sameMemory reports whether a and b are the same string in the same memory.
func sameMemory(a, b string) bool {
	return len(a) == len(b) && unsafe.StringData(a) == unsafe.StringData(b)
}

// ordinals returns the catalog ordinals of the items of top, in sc's
// memory: those of the list read before where top repeats it, looked up
// otherwise. An id the catalog did not hold is looked up again, as the
// catalog may hold it since.
func (s *Popular) ordinals(top []store.ItemScore, sc *lookupScratch) []int64 {
	known := s.known.Load()
	same := known != nil && len(known.ids) >= len(top)
	for i := 0; same && i < len(top); i++ {
		same = sameMemory(known.ids[i], top[i].Item)
	}
	if same {
		sc.ords = append(sc.ords[:0], known.ords[:len(top)]...)
		for i, o := range sc.ords {
			if o < 0 {
				if o, ok := s.items.Ordinal(top[i].Item); ok {
					sc.ords[i] = int64(o)
				}
			}
		}
		return sc.ords
	}
	for _, it := range top {
		sc.ids = append(sc.ids, it.Item)
	}
	ords := sc.ordinals(s.items)
	k := &popularOrdinals{ids: make([]string, len(top)), ords: slices.Clone(ords)}
	for i, it := range top {
		k.ids[i] = it.Item
	}
	s.known.Store(k)
	return ords
}

// NewPopular returns the source of cfg; see Popular for how cfg.Window
// applies.
func NewPopular(cfg config.Source, pop store.PopularReader, items Items) *Popular {
	return &Popular{pop: pop, items: items}
}

// Fetch implements Source. The score is the decayed popularity. The store's
// list is read past the items the request excludes (see FetchUnseen).
// Items the catalog does not hold are skipped, so fewer than limit may be
// returned.
func (s *Popular) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	now := req.now()
	return FetchUnseen(ctx, req, limit, dst, func(ask int, dst []Candidate) ([]Candidate, bool, error) {
		sc := lookupPool.Get().(*lookupScratch)
		defer lookupPool.Put(sc)
		var top []store.ItemScore
		var err error
		if app, ok := s.pop.(store.PopularAppender); ok {
			top, err = app.AppendPopular(ctx, now, ask, sc.scores[:0])
			sc.scores = top
			defer clear(top) // drop the strings the pool would keep alive
		} else {
			top, err = s.pop.Popular(ctx, now, ask)
		}
		if err != nil {
			return dst, false, fmt.Errorf("failed to read popular items: %w", err)
		}
		ords := s.ordinals(top, sc)
		for i, it := range top {
			if ords[i] >= 0 {
				dst = append(dst, Candidate{Item: uint32(ords[i]), Score: float32(it.Score)})
			}
		}
		return dst, len(top) >= ask, nil
	})
}
