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
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
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
	dim := t.Item.Out()
	s := &towerScores{dim: dim, items: make([]float32, len(d.ItemIDs)*dim), users: make([]float32, len(d.Imps)*dim)}
	embedRows(t.Item, t.ItemSpec.Width(), len(d.ItemIDs), func(i int, dst []float64) {
		t.itemRow(d, dst, int32(i))
	}, func(i int, y []float64) {
		for c, v := range y {
			s.items[i*dim+c] = float32(v)
		}
	})
	embedRows(t.User, t.UserSpec.Width(), len(d.Imps), func(k int, dst []float64) {
		im := &d.Imps[k]
		t.userRow(d, dst, im.User, d.Pool(k), d.PoolItems(im.User, im.PoolN))
	}, func(k int, y []float64) {
		for c, v := range y {
			s.users[k*dim+c] = float32(v)
		}
	})
	return s
}

// itemMatrix is the items' embeddings as a matrix (shared).
func (s *towerScores) itemMatrix() mat32 {
	return mat32{Rows: len(s.items) / s.dim, Cols: s.dim, Data: s.items}
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

// approx is at in float32 on the SIMD kernel, for where only the order of
// many scores matters (the first stage's partners: at a million items each
// of 1.2M training impressions draws 667).
func (s *towerScores) approx(k, i int32) float32 {
	return vec.Dot(s.users[int(k)*s.dim:(int(k)+1)*s.dim], s.item(i))
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
