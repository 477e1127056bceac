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
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/race"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// randCands draws n candidates whose values come from `distinct` levels
// (0 for continuous values), so that small levels force ties.
func randCands(r *rand.Rand, n, distinct int) []Candidate {
	c := make([]Candidate, n)
	for i := range c {
		v := r.Float32()*2 - 1
		if distinct > 0 {
			v = float32(r.IntN(distinct))
		}
		c[i] = Candidate{Item: uint32(i), ID: fmt.Sprintf("item-%04d", r.IntN(n*2)), Value: v}
	}
	return c
}

// fullSort is the reference: every candidate ordered by value descending,
// ties by ID then Item ascending.
func fullSort(c []Candidate) []Candidate {
	s := slices.Clone(c)
	slices.SortStableFunc(s, func(a, b Candidate) int {
		switch {
		case a.Value > b.Value:
			return -1
		case a.Value < b.Value:
			return 1
		case a.ID != b.ID:
			if a.ID < b.ID {
				return -1
			}
			return 1
		default:
			return int(a.Item) - int(b.Item)
		}
	})
	return s
}

func keys(c []Candidate) []string {
	k := make([]string, len(c))
	for i := range c {
		k[i] = fmt.Sprintf("%v/%s/%d", c[i].Value, c[i].ID, c[i].Item)
	}
	return k
}

func TestTopKMatchesFullSort(t *testing.T) {
	tests := map[string]struct {
		n, k, distinct int
	}{
		"300 to 100, continuous values": {n: 300, k: 100},
		"300 to 100, many ties":         {n: 300, k: 100, distinct: 5},
		"1500 to 300":                   {n: 1500, k: 300},
		"all values equal":              {n: 50, k: 20, distinct: 1},
		"k equals n":                    {n: 64, k: 64},
		"k above n keeps all, sorted":   {n: 10, k: 25},
		"k one":                         {n: 100, k: 1, distinct: 3},
		"single candidate":              {n: 1, k: 1},
		"empty input":                   {n: 0, k: 5},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(20) {
				r := newRand(seed)
				in := randCands(r, tc.n, tc.distinct)
				ref := fullSort(in)[:min(tc.k, tc.n)]
				got := TopK(slices.Clone(in), tc.k)
				if !slices.Equal(keys(got), keys(ref)) {
					t.Fatalf("seed %d: TopK = %v\nwant %v", seed, keys(got), keys(ref))
				}
			}
		})
	}
}

func TestTopKKeepsEveryCandidate(t *testing.T) {
	r := newRand(7)
	for _, k := range []int{1, 100, 299, 300} {
		in := randCands(r, 300, 0)
		c := slices.Clone(in)
		TopK(c, k)
		// TopK only permutes: the tail still holds the dropped candidates.
		if !slices.Equal(keys(fullSort(c)), keys(fullSort(in))) {
			t.Errorf("TopK(300, %d) lost or duplicated candidates", k)
		}
	}
}

func TestTopKTieBreaks(t *testing.T) {
	nan := float32(math.NaN())
	tests := map[string]struct {
		in   []Candidate
		k    int
		want []uint32 // items, in order
	}{
		"equal values ordered by ID": {
			in:   []Candidate{{Item: 1, ID: "c", Value: 1}, {Item: 2, ID: "a", Value: 1}, {Item: 3, ID: "b", Value: 1}},
			k:    3,
			want: []uint32{2, 3, 1},
		},
		"equal value and ID ordered by item": {
			in:   []Candidate{{Item: 9, ID: "x", Value: 2}, {Item: 4, ID: "x", Value: 2}},
			k:    2,
			want: []uint32{4, 9},
		},
		"tie at the cut keeps the smaller ID": {
			in:   []Candidate{{Item: 1, ID: "z", Value: 0.5}, {Item: 2, ID: "m", Value: 0.9}, {Item: 3, ID: "a", Value: 0.5}},
			k:    2,
			want: []uint32{2, 3},
		},
		"NaN ranks last": {
			in:   []Candidate{{Item: 1, ID: "a", Value: nan}, {Item: 2, ID: "b", Value: -1e30}, {Item: 3, ID: "c", Value: 0}},
			k:    3,
			want: []uint32{3, 2, 1},
		},
		"negative values": {
			in:   []Candidate{{Item: 1, ID: "a", Value: -3}, {Item: 2, ID: "b", Value: -0.5}, {Item: 3, ID: "c", Value: -2}},
			k:    2,
			want: []uint32{2, 3},
		},
		"-0 and +0 tie, ordered by ID": {
			in:   []Candidate{{Item: 1, ID: "b", Value: 0}, {Item: 2, ID: "a", Value: float32(math.Copysign(0, -1))}, {Item: 3, ID: "c", Value: -1}},
			k:    2,
			want: []uint32{2, 1},
		},
		"NaNs of either sign rank after -Inf, by ID": {
			in: []Candidate{
				{Item: 1, ID: "d", Value: float32(math.Copysign(math.NaN(), -1))},
				{Item: 2, ID: "c", Value: float32(math.Inf(-1))},
				{Item: 3, ID: "b", Value: nan},
				{Item: 4, ID: "a", Value: float32(math.Inf(1))},
			},
			k:    4,
			want: []uint32{4, 2, 3, 1},
		},
		"k zero keeps none": {
			in:   []Candidate{{Item: 1, ID: "a", Value: 1}},
			k:    0,
			want: []uint32{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := TopK(slices.Clone(tc.in), tc.k)
			items := make([]uint32, len(got))
			for i := range got {
				items[i] = got[i].Item
			}
			if !slices.Equal(items, tc.want) {
				t.Errorf("TopK items = %v, want %v", items, tc.want)
			}
		})
	}
}

func TestSortOrdersAll(t *testing.T) {
	r := newRand(3)
	in := randCands(r, 200, 10)
	got := slices.Clone(in)
	Sort(got)
	if !slices.Equal(keys(got), keys(fullSort(in))) {
		t.Error("Sort does not match the reference order")
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	heads := []string{"click", "like", "comment", "see_less"}
	w, err := CompileWeights(map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8}, heads)
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(5)
	probs := make([]float32, 300*len(heads))
	for i := range probs {
		probs[i] = r.Float32()
	}
	in := randCands(r, 300, 0)
	for i := range in {
		in[i].Probs = probs[i*len(heads) : (i+1)*len(heads)]
	}
	c := make([]Candidate, len(in))
	out := make([]float32, 300)
	allocs := testing.AllocsPerRun(20, func() {
		copy(c, in)
		w.Values(probs, out)
		w.Score(c)
		TopK(c, 100)
	})
	if allocs != 0 && !race.Enabled {
		t.Errorf("Values, Score and TopK allocate %v times per run, want 0", allocs)
	}
}

func TestSourceSet(t *testing.T) {
	var s SourceSet
	s.Add(0)
	s.Add(3)
	s.Add(MaxSources - 1)
	for i := -1; i <= MaxSources; i++ {
		want := i == 0 || i == 3 || i == MaxSources-1
		if s.Has(i) != want {
			t.Errorf("Has(%d) = %v, want %v", i, s.Has(i), want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Add(MaxSources) did not panic")
		}
	}()
	s.Add(MaxSources)
}
