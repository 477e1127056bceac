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

package rank

import (
	"context"
	"math"
	"slices"
	"time"
)

// Fresh is the freshness policy of a ranker: an item just published by an
// author the user follows has no engagement yet, so the models score it
// low and a ranker's cut would drop it before any user could engage with
// it. Fresh keeps, beside the keep best, up to Slots candidates by followed
// authors created less than MaxAge before the request, the newest first;
// with Lead they lead the stage's list (the second stage's, so that they
// head the feed, the rerank rules applying after), otherwise they follow
// the kept ones (the first stage's, so that they reach the second). Leading
// items take values above the best kept, the newest highest.
type Fresh struct {
	Ranker Ranker
	MaxAge time.Duration
	Slots  int
	Lead   bool
}

// Rank implements Ranker.
func (f *Fresh) Rank(ctx context.Context, req *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	kept, heads, err := f.Ranker.Rank(ctx, req, cands, keep)
	if err != nil || f.Slots <= 0 || len(req.State.Follows) == 0 || req.cat == nil {
		return kept, heads, err
	}
	// kept is cands' first len(kept), the rest of cands the candidates
	// the ranker cut (a local ranker ranks in place).
	var fresh []int
	for i := range cands {
		c := &cands[i]
		age := req.State.Now.Sub(req.cat.Created(c.Item))
		if age < 0 || age >= f.MaxAge {
			continue
		}
		if _, ok := slices.BinarySearch(req.State.Follows, req.cat.Author(c.Item)); ok {
			fresh = append(fresh, i)
		}
	}
	if len(fresh) == 0 {
		return kept, heads, nil
	}
	slices.SortFunc(fresh, func(a, b int) int {
		if c := req.cat.Created(cands[b].Item).Compare(req.cat.Created(cands[a].Item)); c != 0 {
			return c
		}
		return Compare(&cands[a], &cands[b])
	})
	fresh = fresh[:min(len(fresh), f.Slots)]
	out := make([]Candidate, 0, len(kept)+len(fresh))
	if !f.Lead {
		out = append(out, kept...)
		for _, i := range fresh {
			if i >= len(kept) {
				out = append(out, cands[i])
			}
		}
		return cands[:copy(cands, out)], heads, nil
	}
	// Their values rise above the best kept, so that a rule that re-sorts
	// by value (integrity downranking) keeps them first unless it demotes
	// them.
	top := float32(math.Inf(-1))
	for i := range kept {
		top = max(top, kept[i].Value)
	}
	for _, i := range fresh {
		top = max(top, cands[i].Value)
	}
	step := max(float32(math.Abs(float64(top))), 1) / 1024
	for j, i := range fresh {
		c := cands[i]
		c.Value = top + float32(len(fresh)-j)*step
		out = append(out, c)
	}
	for i := range kept {
		if !slices.Contains(fresh, i) {
			out = append(out, cands[i])
		}
	}
	return cands[:copy(cands, out)], heads, nil
}
