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

	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// StoredLists is a Precomputed source without a URI: it proposes the items
// of the user's list of the last precompute run, which the store keeps
// until it expires, whatever arm or config revision computed it (the
// rankers rank them as any other candidates). It is how a precompute
// run's lists are merged into the funnel rather than served whole.
type StoredLists struct {
	lists store.ListStore
	items Items
}

// NewStoredLists returns the source of the lists that lists keeps.
func NewStoredLists(lists store.ListStore, items Items) *StoredLists {
	return &StoredLists{lists: lists, items: items}
}

// Fetch implements Source. The score of the item at rank r of a list of n
// is (n−r)/n, as Precomputed's. Items the request excludes, and items the
// catalog does not hold, are passed over without taking the limit.
func (s *StoredLists) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	l, err := s.lists.UserList(ctx, req.User, req.Time())
	if err != nil || l == nil {
		return dst, err
	}
	n := float32(len(l.Items))
	for r, it := range l.Items {
		o, ok := s.items.Ordinal(it.Item)
		if !ok || req.Excludes(o) {
			continue
		}
		dst = append(dst, Candidate{Item: o, Score: (n - float32(r)) / n})
		if limit--; limit == 0 {
			break
		}
	}
	return dst, nil
}
