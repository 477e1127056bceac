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
	"slices"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// First is the first stage: it scores each candidate by the dot product of
// the two-tower model's user embedding with the candidate's precomputed
// item embedding, and keeps the best.
type First struct {
	tower   *Tower
	scratch sync.Pool // *firstScratch
}

// firstScratch is a request's user embedding and candidates' rows and
// scores.
type firstScratch struct {
	user   []float32
	rows   []*uint16
	scores []float32
	zero   []uint16 // the row of a candidate without an embedding
}

var _ Ranker = (*First)(nil)

// NewFirst returns the first stage of the two-tower model t.
func NewFirst(t *Tower) *First { return &First{tower: t} }

// Rank implements Ranker. A new item not embedded yet scores −∞.
func (f *First) Rank(_ context.Context, req *Request, cands []Candidate, keep int) ([]Candidate, []string, error) {
	sc, _ := f.scratch.Get().(*firstScratch)
	if sc == nil {
		sc = new(firstScratch)
	}
	defer f.scratch.Put(sc)
	sc.user = f.tower.UserEmbedding(req.User(), sc.user)
	sc.score(f.tower.vectors, cands)
	return TopK(cands, keep), nil, nil
}

// score sets each candidate's First and Value to the dot product of sc.user
// with its embedding in vecs, or −∞ if it has none.
func (sc *firstScratch) score(vecs *Vectors, cands []Candidate) {
	dim := len(sc.user)
	if len(sc.zero) != dim {
		sc.zero = make([]uint16, dim)
	}
	sc.rows = slices.Grow(sc.rows[:0], len(cands))
	for i := range cands {
		if v := vecs.Half(cands[i].Item); v != nil {
			sc.rows = append(sc.rows, &v[0])
		} else {
			sc.rows = append(sc.rows, &sc.zero[0])
		}
	}
	sc.scores = slices.Grow(sc.scores[:0], len(cands))[:len(cands)]
	// The candidates' embeddings are scattered over the table: each batch
	// is asked for while the batch before it is scored.
	const batch = 16
	vec.PrefetchRows(sc.rows[:min(batch, len(cands))], dim)
	for from := 0; from < len(cands); from += batch {
		to := min(from+batch, len(cands))
		vec.PrefetchRows(sc.rows[to:min(to+batch, len(cands))], dim)
		vec.DotHalfRows(sc.user, sc.rows[from:to], sc.scores[from:to])
	}
	for i := range cands {
		cands[i].First = sc.scores[i]
		if sc.rows[i] == &sc.zero[0] {
			cands[i].First = float32(math.Inf(-1))
		}
		cands[i].Value = cands[i].First
	}
}
