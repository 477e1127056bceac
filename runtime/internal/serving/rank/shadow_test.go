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
	"errors"
	"math"
	"slices"
	"testing"
)

func list(items ...uint32) []Candidate {
	out := make([]Candidate, len(items))
	for i, it := range items {
		out[i] = Candidate{Item: it}
	}
	return out
}

func TestAgree(t *testing.T) {
	cases := map[string]struct {
		served, shadow        []Candidate
		overlap, spearmanWant float64
	}{
		"the same order":        {list(1, 2, 3, 4), list(1, 2, 3, 4), 1, 1},
		"the reverse order":     {list(1, 2, 3, 4), list(4, 3, 2, 1), 1, -1},
		"half kept, same order": {list(1, 2, 3, 4), list(1, 9, 2, 8), 0.5, 1},
		"one swap of four":      {list(1, 2, 3, 4), list(2, 1, 3, 4), 1, 0.8},
		"nothing shared":        {list(1, 2), list(3, 4), 0, 1},
		"an empty served list":  {nil, list(1), 1, 1},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := Agree(tc.served, tc.shadow)
			if math.Abs(got.Overlap-tc.overlap) > 1e-9 || math.Abs(got.Spearman-tc.spearmanWant) > 1e-9 {
				t.Errorf("Agree = %+v, want overlap %v spearman %v", got, tc.overlap, tc.spearmanWant)
			}
		})
	}
}

// orderRanker keeps the candidates in a fixed order of items.
type orderRanker struct {
	order []uint32
	err   error
	calls int
}

func (r *orderRanker) Rank(_ context.Context, _ *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	r.calls++
	if r.err != nil {
		return nil, nil, r.err
	}
	slices.SortFunc(cands, func(a, b Candidate) int { return slices.Index(r.order, a.Item) - slices.Index(r.order, b.Item) })
	return cands[:min(keep, len(cands))], nil, nil
}

// The shadow serves the main ranker's answer, compares on the share of
// requests asked, and a failing candidate changes nothing served.
func TestShadowServesMainAndComparesASample(t *testing.T) {
	main := &orderRanker{order: []uint32{1, 2, 3, 4}}
	cand := &orderRanker{order: []uint32{4, 3, 2, 1}}
	var reports []Agreement
	s := &Shadow{Main: main, Candidate: cand, Fraction: 0.25, Report: func(a Agreement) { reports = append(reports, a) }}
	for range 100 {
		got, _, err := s.Rank(context.Background(), &Request{}, list(3, 1, 4, 2), 3)
		if err != nil || !slices.Equal([]uint32{got[0].Item, got[1].Item, got[2].Item}, []uint32{1, 2, 3}) {
			t.Fatalf("served %v, %v; want the main ranker's 1 2 3", got, err)
		}
	}
	if len(reports) != 25 || cand.calls != 25 {
		t.Fatalf("compared %d of 100 requests (candidate ran %d times), want 25", len(reports), cand.calls)
	}
	// Kept 1 2 3 against 4 3 2: 2 and 3 shared, in opposite orders.
	if r := reports[0]; math.Abs(r.Overlap-2.0/3) > 1e-9 || r.Spearman != -1 {
		t.Errorf("agreement %+v, want overlap 2/3 and spearman -1", r)
	}
	cand.err = errors.New("the candidate failed")
	for range 4 {
		if got, _, err := s.Rank(context.Background(), &Request{}, list(3, 1, 4, 2), 3); err != nil || got[0].Item != 1 {
			t.Errorf("with a failing candidate: %v, %v", got, err)
		}
	}
	if cand.calls != 26 || len(reports) != 25 {
		t.Errorf("the failing candidate ran %d times and %d comparisons were reported, want 26 and 25", cand.calls, len(reports))
	}
}
