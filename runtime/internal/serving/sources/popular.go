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
		for _, it := range top {
			sc.ids = append(sc.ids, it.Item)
		}
		ords := sc.ordinals(s.items)
		for i, it := range top {
			if ords[i] >= 0 {
				dst = append(dst, Candidate{Item: uint32(ords[i]), Score: float32(it.Score)})
			}
		}
		return dst, len(top) >= ask, nil
	})
}
