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
	"sync/atomic"
)

// Agreement is how a shadow ranker's order agreed with the served one on
// one request.
type Agreement struct {
	// Overlap is the share of the served list the shadow also kept.
	Overlap float64
	// Spearman is the rank correlation of the items both kept, by their
	// places in each list; 1 when fewer than two are shared.
	Spearman float64
}

// Shadow serves Main's ranking and, for a share of the requests, ranks the
// same candidates with Candidate as well and reports how the two orders
// agree: a candidate model is measured on live traffic without serving it.
type Shadow struct {
	Main, Candidate Ranker
	// Fraction of the requests the candidate also ranks, in (0, 1].
	Fraction float64
	// Report receives each comparison; it must not block.
	Report func(Agreement)

	n atomic.Uint64
}

var _ Ranker = (*Shadow)(nil)

// sampled picks Fraction of the requests, evenly spread.
func (s *Shadow) sampled() bool {
	n := s.n.Add(1)
	return uint64(float64(n)*s.Fraction) != uint64(float64(n-1)*s.Fraction)
}

// Rank implements Ranker: Main's answer, whatever the candidate does.
func (s *Shadow) Rank(ctx context.Context, req *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	if !s.sampled() {
		return s.Main.Rank(ctx, req, cands, keep)
	}
	// Both rankers reorder their input in place.
	copied := append([]Candidate(nil), cands...)
	served, degraded, err := s.Main.Rank(ctx, req, cands, keep)
	if err != nil {
		return served, degraded, err
	}
	if shadow, _, err := s.Candidate.Rank(ctx, req, copied, keep); err == nil {
		s.Report(Agree(served, shadow))
	}
	return served, degraded, nil
}

// Agree compares two ranked lists of the same candidates.
func Agree(served, shadow []Candidate) Agreement {
	if len(served) == 0 {
		return Agreement{Overlap: 1, Spearman: 1}
	}
	place := make(map[uint32]int, len(shadow))
	for i, c := range shadow {
		place[c.Item] = i
	}
	// The places, in each list, of the items both kept; re-ranked within
	// the shared items so that Spearman's formula applies.
	var a, b []int
	for i, c := range served {
		if j, ok := place[c.Item]; ok {
			a, b = append(a, i), append(b, j)
		}
	}
	out := Agreement{Overlap: float64(len(a)) / float64(len(served)), Spearman: 1}
	n := len(a)
	if n < 2 {
		return out
	}
	rb := ranks(b)
	d2 := 0.0
	for i := range n {
		d := float64(i - rb[i]) // a is increasing: its ranks are 0..n-1
		d2 += d * d
	}
	out.Spearman = 1 - 6*d2/(float64(n)*float64(n*n-1))
	return out
}

// ranks returns the rank of each value of v among v (distinct values).
func ranks(v []int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	// Insertion sort: lists are at most a stage's keep long, and usually
	// nearly in order.
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && v[idx[j]] < v[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	out := make([]int, len(v))
	for r, i := range idx {
		out[i] = r
	}
	return out
}
