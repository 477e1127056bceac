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

package rectrain

import (
	"math/rand/v2"
)

// distillPartners draws, for every training impression, the item the first
// stage learns the teacher's value of beside the one shown, with the same
// user state: the best of M items drawn uniformly from the catalog by the
// trained retrieval model's score for that state, M = catalog size /
// FunnelCandidates. Such an item lies in about the top FunnelCandidates of
// the catalog for the user, as the candidates retrieval hands the first
// stage do, where the items shown in the log lean towards popular ones and
// a uniform item is far from anything the funnel ranks.
//
// The draws depend on the seed and the impression alone (each chunk of
// impressions has its own generator), not on the goroutines.
func distillPartners(d *Data, res *Result, seed uint64) []int32 {
	n, ni := d.TrainN, len(d.ItemIDs)
	out := make([]int32, n)
	m := max(1, (ni+FunnelCandidates/2)/FunnelCandidates)
	inChunks(n, 4096, func() func(c, lo, hi int) {
		return func(c, lo, hi int) {
			r := rand.New(rand.NewPCG(seed, 0x70617274<<32|uint64(c)))
			for k := lo; k < hi; k++ {
				best, top := int32(-1), float32(0)
				for range m {
					i := int32(r.IntN(ni))
					if s := res.scores.approx(int32(k), i); best < 0 || s > top {
						best, top = i, s
					}
				}
				out[k] = best
			}
		}
	})
	return out
}
