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

package ann

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSortDesc checks the radix sort against a comparison sort, on scores
// that share leading bytes, differ in sign, repeat, or are few.
func TestSortDesc(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := map[string]struct {
		n     int
		score func(i int) float32
	}{
		"empty":                {0, nil},
		"one":                  {1, func(int) float32 { return 3 }},
		"narrow positive band": {800, func(int) float32 { return 20 + rng.Float32() }},
		"both signs":           {500, func(int) float32 { return float32(rng.NormFloat64()) * 100 }},
		"ties and zeros":       {300, func(i int) float32 { return float32(i%7) - 3 }},
		"extremes": {6, func(i int) float32 {
			return []float32{math.MaxFloat32, -math.MaxFloat32, 1e-38, -1e-38, float32(math.Inf(1)), float32(math.Inf(-1))}[i]
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := make([]cand, tc.n)
			for i := range c {
				c[i] = cand{tc.score(i), uint32(i)}
			}
			want := slices.Clone(c)
			slices.SortStableFunc(want, byScoreDesc)
			got := sortDesc(c, make([]cand, tc.n))
			if len(got) != len(want) {
				t.Fatalf("%d results, want %d", len(got), len(want))
			}
			seen := make(map[uint32]bool)
			for i := range got {
				if got[i].score != want[i].score {
					t.Fatalf("position %d: score %g, want %g", i, got[i].score, want[i].score)
				}
				seen[got[i].node] = true
			}
			if len(seen) != tc.n {
				t.Errorf("%d distinct nodes, want %d", len(seen), tc.n)
			}
		})
	}
}

// TestHeaps drives the candidate heaps with random pushes, pops and root
// replacements and checks every pop against a sorted model.
func TestHeaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var maxH, minH []cand
	var maxM, minM []float32 // the same elements, kept sorted ascending
	insert := func(m []float32, v float32) []float32 {
		i, _ := slices.BinarySearch(m, v)
		return slices.Insert(m, i, v)
	}
	for step := 0; step < 20000; step++ {
		v := float32(rng.IntN(1000)) // ties are common
		switch op := rng.IntN(5); {
		case op < 2 || len(maxH) == 0:
			maxH, maxM = pushMax(maxH, cand{v, 0}), insert(maxM, v)
			minH, minM = pushMin(minH, cand{v, 0}), insert(minM, v)
		case op == 2:
			var c cand
			maxH, c = popMax(maxH)
			if want := maxM[len(maxM)-1]; c.score != want {
				t.Fatalf("step %d: popMax = %g, want %g", step, c.score, want)
			}
			maxM = maxM[:len(maxM)-1]
		case op == 3:
			var c cand
			minH, c = popMin(minH)
			if c.score != minM[0] {
				t.Fatalf("step %d: popMin = %g, want %g", step, c.score, minM[0])
			}
			minM = minM[1:]
		default:
			if len(minH) == 0 {
				continue
			}
			replaceMin(minH, cand{v, 0})
			minM = insert(minM[1:], v)
		}
		if len(minH) > 0 && minH[0].score != minM[0] {
			t.Fatalf("step %d: min-heap root %g, want %g", step, minH[0].score, minM[0])
		}
	}
}
