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
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// FollowedAuthorsRecent proposes the recent items of the authors the user
// follows, newest first. It is the real-time source: an item is a candidate
// as soon as its new_item event is applied to the store.
type FollowedAuthorsRecent struct {
	social store.SocialReader
	items  Items
	maxAge time.Duration
}

// NewFollowedAuthorsRecent returns the source of cfg, which must have a
// positive MaxAge: items older than that are not proposed.
func NewFollowedAuthorsRecent(cfg config.Source, social store.SocialReader, items Items) (*FollowedAuthorsRecent, error) {
	if cfg.MaxAge <= 0 {
		return nil, fmt.Errorf("failed to create source %q: maxAge must be positive", cfg.Name)
	}
	return &FollowedAuthorsRecent{social: social, items: items, maxAge: time.Duration(cfg.MaxAge)}, nil
}

// Fetch implements Source. The score is the item's freshness,
// 1 − age/maxAge: 1 for an item published at the request's time, 0 for one
// maxAge old. The store's list is read past the items the request excludes
// (see FetchUnseen). Items the catalog does not hold are skipped, so fewer
// than limit may be returned.
func (s *FollowedAuthorsRecent) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if limit <= 0 {
		return dst, nil
	}
	v, err := req.shared(ctx, followsKey{}, func(ctx context.Context) (any, error) {
		return req.follows(ctx, s.social)
	})
	if err != nil {
		return dst, fmt.Errorf("failed to read follows: %w", err)
	}
	authors := v.([]string)
	if len(authors) == 0 {
		return dst, nil
	}
	now := req.now()
	return FetchUnseen(ctx, req, limit, dst, func(ask int, dst []Candidate) ([]Candidate, bool, error) {
		sc := lookupPool.Get().(*lookupScratch)
		defer lookupPool.Put(sc)
		recent, err := s.social.RecentByAuthors(ctx, authors, now.Add(-s.maxAge), ask, sc.recent)
		if err != nil {
			return dst, false, fmt.Errorf("failed to read recent items of followed authors: %w", err)
		}
		defer func() {
			clear(recent) // drop the strings the pool would keep alive
			sc.recent = recent[:0]
		}()
		for _, it := range recent {
			sc.ids = append(sc.ids, it.Item)
		}
		ords := sc.ordinals(s.items)
		for i, it := range recent {
			ord := ords[i]
			if ord < 0 {
				continue
			}
			fresh := 1 - float64(now.Sub(it.Time))/float64(s.maxAge)
			dst = append(dst, Candidate{Item: uint32(ord), Score: float32(min(max(fresh, 0), 1))})
		}
		return dst, len(recent) >= ask, nil
	})
}
