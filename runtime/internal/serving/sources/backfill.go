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
	"slices"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Catalog is the catalog as the backfill walks it.
type Catalog interface {
	Items
	// Len returns the number of items; their ordinals are 0..Len()-1.
	Len() int
}

// Backfill is the mixer's backfill (MixerOptions.Backfill): what tops up a
// mix left short, say for a user who has seen most of what the sources
// propose. It proposes the most popular items, their popularity decayed to
// the request's time as for Popular, and after them the rest of the
// catalog, the most recently added first (the items published live, then
// the deploy catalog from its last line up). Items the request excludes are
// passed over, so it finds limit candidates whenever the catalog holds that
// many the user may still see.
type Backfill struct {
	popular *Popular
	items   Catalog
}

// NewBackfill returns the backfill over pop's popularity and the catalog.
func NewBackfill(pop store.PopularReader, items Catalog) *Backfill {
	return &Backfill{popular: &Popular{pop: pop, items: items}, items: items}
}

var ordinalPool = sync.Pool{New: func() any { return new([]uint32) }}

// Fetch implements Source. The popular items score their decayed
// popularity, the others zero. A failure to read popularity leaves the
// catalog's items.
func (b *Backfill) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	start := len(dst)
	if out, err := b.popular.Fetch(ctx, req, limit, dst); err == nil {
		dst = out
	} else {
		dst = dst[:start]
	}
	if len(dst)-start >= limit {
		return dst, nil
	}
	taken := ordinalPool.Get().(*[]uint32)
	defer ordinalPool.Put(taken)
	popular := (*taken)[:0]
	for _, c := range dst[start:] {
		popular = append(popular, c.Item)
	}
	slices.Sort(popular)
	*taken = popular[:0]
	for o := b.items.Len() - 1; o >= 0 && len(dst)-start < limit; o-- {
		if o%1024 == 0 && ctx.Err() != nil {
			return dst, ctx.Err()
		}
		item := uint32(o)
		if req.Excludes(item) {
			continue
		}
		if _, found := slices.BinarySearch(popular, item); found {
			continue
		}
		dst = append(dst, Candidate{Item: item})
	}
	return dst, nil
}
