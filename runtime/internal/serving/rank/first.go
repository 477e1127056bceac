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
	"math"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// First is the first stage: it scores each candidate by the dot product of
// the two-tower model's user embedding with the candidate's precomputed
// item embedding, and keeps the best.
type First struct {
	tower *Tower
	users sync.Pool // *[]float32, a user embedding
}

var _ Ranker = (*First)(nil)

// NewFirst returns the first stage of the two-tower model t.
func NewFirst(t *Tower) *First { return &First{tower: t} }

// Rank implements Ranker. A new item not embedded yet scores −∞.
func (f *First) Rank(_ context.Context, req *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	buf, _ := f.users.Get().(*[]float32)
	if buf == nil {
		buf = new([]float32)
	}
	defer f.users.Put(buf)
	user := f.tower.UserEmbedding(req.User(), *buf)
	*buf = user
	vecs := f.tower.vectors
	// The candidates' embeddings are scattered over the table: each is
	// asked for a few candidates ahead of its dot product.
	const ahead = 8
	for i := range min(ahead, len(cands)) {
		vec.Prefetch(vecs.Half(cands[i].Item))
	}
	for i := range cands {
		if i+ahead < len(cands) {
			vec.Prefetch(vecs.Half(cands[i+ahead].Item))
		}
		if v := vecs.Half(cands[i].Item); v != nil {
			cands[i].First = vec.DotHalf(user, v)
		} else {
			cands[i].First = float32(math.Inf(-1))
		}
		cands[i].Value = cands[i].First
	}
	return TopK(cands, keep), nil, nil
}
