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
	"math"
	"math/rand/v2"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// TestFirstScores checks the first stage's scores over batches of every
// length around its prefetch batch: each candidate's First and Value are
// the dot product of the user embedding with its stored embedding, exactly
// as DotHalf computes it, and a candidate without one (a new item not
// embedded yet) scores −∞; scratch space reused from a longer request
// leaves nothing behind.
func TestFirstScores(t *testing.T) {
	const dim, n = 24, 100
	rng := rand.New(rand.NewPCG(3, 4))
	rows := make([]float32, n*dim)
	for i := range rows {
		rows[i] = float32(rng.NormFloat64())
	}
	v := newVectors(dim)
	v.append(rows)
	sc := &firstScratch{user: make([]float32, dim)}
	for i := range sc.user {
		sc.user[i] = float32(rng.NormFloat64())
	}
	for _, count := range []int{50, 0, 1, 15, 16, 17, 33} {
		cands := make([]Candidate, count)
		for i := range cands {
			cands[i].Item = uint32(rng.IntN(n + 10)) // past n: not embedded
		}
		if count > 0 {
			cands[count-1].Item = n + 3
		}
		sc.score(v, cands)
		for i, c := range cands {
			want := float32(math.Inf(-1))
			if h := v.Half(c.Item); h != nil {
				want = vec.DotHalf(sc.user, h)
			}
			if c.First != want || c.Value != want {
				t.Fatalf("%d candidates, #%d (item %d): First %v, Value %v, want %v", count, i, c.Item, c.First, c.Value, want)
			}
		}
	}
}
