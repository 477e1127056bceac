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

package vec

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDescKeyOrdersScoresBestFirst: a score's key is smaller exactly when
// the score is higher, over signs, zeros and infinities.
func TestDescKeyOrdersScoresBestFirst(t *testing.T) {
	scores := []float32{float32(math.Inf(1)), 1, 0.75, 0.5, 1e-30, 0, -1e-30, -0.5, -2, float32(math.Inf(-1))}
	for i, a := range scores {
		for j, b := range scores {
			if got, want := DescKey(a) < DescKey(b), i < j; got != want {
				t.Errorf("DescKey(%g) < DescKey(%g) = %v, want %v", a, b, got, want)
			}
		}
	}
	if negZero := float32(math.Copysign(0, -1)); DescKey(negZero) != DescKey(0) {
		t.Errorf("-0 and +0 have keys %#x and %#x, want equal", DescKey(negZero), DescKey(0))
	}
}

// TestSortHigh32 checks the radix sort against a stable comparison sort on
// the upper halves, for keys that differ in every byte, in some, and not
// at all, with payloads in the lower halves that must keep their order.
func TestSortHigh32(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		n    int
		mask uint32 // bits of the upper half that vary
	}{{0, 0}, {1, ^uint32(0)}, {2, 1}, {1500, ^uint32(0)}, {1500, 0x00ff0f00}, {300, 0}, {700, 0x80000003}} {
		keys := make([]uint64, tc.n)
		for i := range keys {
			keys[i] = uint64(rng.Uint32()&tc.mask|0x12345678&^tc.mask)<<32 | uint64(i)
		}
		want := slices.Clone(keys)
		slices.SortStableFunc(want, func(a, b uint64) int { return cmp.Compare(a>>32, b>>32) })
		got := SortHigh32(slices.Clone(keys), make([]uint64, tc.n))
		if !slices.Equal(got, want) {
			t.Errorf("%d keys varying in %#x: not sorted stably by their upper halves", tc.n, tc.mask)
		}
	}
}

// TestSortTies checks that each run of equal upper halves is sorted by the
// comparison and that no key crosses into another run.
func TestSortTies(t *testing.T) {
	keys := []uint64{1<<32 | 9, 1<<32 | 3, 1<<32 | 5, 2<<32 | 1, 3<<32 | 8, 3<<32 | 2}
	SortTies(keys, func(a, b uint64) int { return cmp.Compare(uint32(a), uint32(b)) })
	want := []uint64{1<<32 | 3, 1<<32 | 5, 1<<32 | 9, 2<<32 | 1, 3<<32 | 2, 3<<32 | 8}
	if !slices.Equal(keys, want) {
		t.Errorf("SortTies = %x, want %x", keys, want)
	}
}
