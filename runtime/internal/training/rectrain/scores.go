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
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
)

// towerScores are a trained two-tower model's embeddings of every
// impression's user (as the user stood at the impression) and of every
// item, rounded to float32 as recserve keeps them: the retrieval model's
// score of any item for any impression's user state is a dot product.
type towerScores struct {
	dim          int
	users, items []float32 // len(Imps)×dim and len(ItemIDs)×dim
}

// newTowerScores embeds d's impressions' users and items with t, in chunks
// on two goroutines.
func newTowerScores(d *Data, t *TwoTower) *towerScores {
	ie := embedItems(d, t)
	s := &towerScores{dim: ie.Cols, items: nn.To32(ie.Data), users: make([]float32, len(d.Imps)*ie.Cols)}
	inChunks(len(d.Imps), 4096, func() func(c, lo, hi int) {
		var tape nn.Tape
		var ub []float64
		uw := t.UserSpec.Width()
		return func(_, lo, hi int) {
			x := matrixOf(&ub, hi-lo, uw)
			for k := lo; k < hi; k++ {
				im := &d.Imps[k]
				t.userRow(d, ub[(k-lo)*uw:(k-lo+1)*uw], im.User, d.Pool(k), d.PoolItems(im.User, im.PoolN))
			}
			ue := t.User.Forward(x, &tape)
			for r := range hi - lo {
				for c, v := range ue.Data[r*ue.Stride : r*ue.Stride+s.dim] {
					s.users[(lo+r)*s.dim+c] = float32(v)
				}
			}
		}
	})
	return s
}

// item is item i's embedding.
func (s *towerScores) item(i int32) []float32 {
	return s.items[int(i)*s.dim : (int(i)+1)*s.dim]
}

// at is the score of item i for impression k's user.
func (s *towerScores) at(k, i int32) float64 {
	var dot float64
	for c, v := range s.item(i) {
		dot += float64(v) * float64(s.users[int(k)*s.dim+c])
	}
	return dot
}

// of is the score of item i for the user embedding u (float64, rounded to
// float32 first as recserve's is).
func (s *towerScores) of(u []float64, i int32) float64 {
	var dot float64
	for c, v := range s.item(i) {
		dot += float64(v) * float64(float32(u[c]))
	}
	return dot
}
