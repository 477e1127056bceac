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
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// byValue ranks by the candidates' values as they come.
type byValue struct{}

func (byValue) Rank(_ context.Context, _ *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	return TopK(cands, keep), nil, nil
}

// TestFreshKeepsFollowedAuthorsNewItemsThroughTheCut: of ten items valued
// 9..0, the three lowest are new; two by followed authors pass the cut of
// three (the newest first when they lead), the unfollowed one does not, and
// an old item by a followed author gets nothing.
func TestFreshKeepsFollowedAuthorsNewItemsThroughTheCut(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cat, err := catalog.New(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := []time.Duration{48 * time.Hour, 48 * time.Hour, 48 * time.Hour, 48 * time.Hour, 48 * time.Hour,
		48 * time.Hour, 2 * time.Hour, 10 * time.Minute, 5 * time.Minute, 20 * time.Minute}
	authors := []string{"a0", "a1", "a2", "a3", "a4", "a5", "followed", "followed", "other", "followed"}
	var cands []Candidate
	for i := range created {
		o, err := cat.Add(dataset.Item{ID: fmt.Sprintf("i%d", i), Author: authors[i], Created: now.Add(-created[i])})
		if err != nil {
			t.Fatal(err)
		}
		cands = append(cands, Candidate{Item: o, ID: fmt.Sprintf("i%d", i), Value: float32(9 - i)})
	}
	req := NewRequest(&store.UserState{User: "u", Now: now, Follows: []string{"followed"}}, cat)
	ids := func(cs []Candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	f := &Fresh{Ranker: byValue{}, MaxAge: time.Hour, Slots: 2}
	got, _, err := f.Rank(context.Background(), req, slices.Clone(cands), 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"i0", "i1", "i2", "i7", "i9"}; !slices.Equal(ids(got), want) {
		t.Errorf("kept %v, want %v: the best three, then the followed new items (i6 is two hours old, i8 not followed)", ids(got), want)
	}

	f.Lead = true
	got, _, _ = f.Rank(context.Background(), req, slices.Clone(cands), 3)
	if want := []string{"i7", "i9", "i0", "i1", "i2"}; !slices.Equal(ids(got), want) {
		t.Errorf("kept %v, want %v: the followed new items first, the newest leading", ids(got), want)
	}
	if !(got[0].Value > got[1].Value && got[1].Value > got[2].Value) {
		t.Errorf("values %v, %v, %v: leading items must be valued above the best kept", got[0].Value, got[1].Value, got[2].Value)
	}

	f.Slots = 1
	got, _, _ = f.Rank(context.Background(), req, slices.Clone(cands), 3)
	if want := []string{"i7", "i0", "i1", "i2"}; !slices.Equal(ids(got), want) {
		t.Errorf("with one slot kept %v, want %v", ids(got), want)
	}
}
