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
	"sync"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/features"
)

// Second is the second stage: the MTML model predicts each candidate's
// per-event probabilities from its assembled features, the value weighs
// them into one score, and the best are kept.
type Second struct {
	mtml *model.MTML
	in   *features.Assembler
	// split is mtml with the first layer's user columns (the in columns
	// every candidate shares) computed once per request.
	split *model.SplitMTML
	// scorer is the retrieval model whose user embedding two_tower_score
	// reads; nil when the model reads none.
	scorer *Tower
	// scoreCol is two_tower_score's column in the per-candidate input, -1
	// when the model has none.
	scoreCol int
	value    *Weights
	scratch  *sync.Pool // *secondScratch, shared by the copies WithValue makes
}

// secondScratch holds one request's buffers.
type secondScratch struct {
	tower  []float32 // the retrieval model's user embedding
	in     []float32
	shared []float32 // the input columns every candidate shares
	probs  []float32
	items  []uint32
	ws     model.Workspace
}

// NewSecond prepares the MTML model a to rank the items of cat. scorer is
// the retrieval model that two_tower_score reads (nil if none); it is used
// only when the model's input has that block. The candidates' products are
// computed in precision (see model.SplitMTML.WithPrecision). The value is
// set by WithValue.
func NewSecond(a *model.Artifact, cat *catalog.Catalog, scorer *Tower, precision model.Precision) (*Second, error) {
	var vecs features.ItemVectors
	if scorer != nil {
		vecs = scorer.vectors
	}
	in, err := features.CompileRanker(a.Manifest.Networks[model.NetBottom].Input, cat, a.Embeddings, vecs)
	if err != nil {
		return nil, err
	}
	split, err := a.MTML.Split(in.SharedColumns())
	if err == nil && precision != model.Float32 {
		split, err = split.WithPrecision(precision)
	}
	if err != nil {
		return nil, err
	}
	s := &Second{mtml: a.MTML, in: in, split: split, scratch: &sync.Pool{}}
	// two_tower_score is per candidate, so it has a split column exactly
	// when the ranker reads it.
	if s.scoreCol = in.SplitColumn(features.TwoTowerScore); s.scoreCol >= 0 {
		s.scorer = scorer
	}
	return s, nil
}

// Heads names the model's heads, the order of Probs.
func (s *Second) Heads() []string { return s.mtml.Heads() }

// ReadsRetrieval reports whether the model reads two_tower_score, so that
// a value may weigh it (RetrievalWeight).
func (s *Second) ReadsRetrieval() bool { return s.scoreCol >= 0 }

// WithValue returns the stage ranking by value, which must be compiled for
// s's heads.
func (s *Second) WithValue(value *Weights) *Second {
	c := *s
	c.value = value
	return &c
}

var _ Ranker = (*Second)(nil)

// Rank implements Ranker. Probs of the returned candidates point into a
// buffer the request holds until it is released.
func (s *Second) Rank(_ context.Context, req *Request, top []Candidate, keep int) ([]Candidate, []string, error) {
	sc, _ := s.scratch.Get().(*secondScratch)
	if sc == nil {
		sc = new(secondScratch)
	}
	req.hold(func() { s.scratch.Put(sc) })
	uc := req.User()
	width := s.split.In()
	heads := len(s.mtml.Heads())
	sc.in = grow(sc.in, len(top)*width)
	sc.shared = grow(sc.shared, s.in.Width()-width)
	sc.probs = grow(sc.probs, len(top)*heads)
	sc.items = sc.items[:0]
	for i := range top {
		sc.items = append(sc.items, top[i].Item)
	}
	batch := blas32.General{Rows: len(top), Cols: width, Stride: width, Data: sc.in}
	if s.scorer != nil {
		sc.tower = s.scorer.UserEmbedding(uc, sc.tower)
		uc.TowerUser = sc.tower
	}
	s.in.FillSplit(uc, sc.items, sc.shared, batch)
	s.split.Predict(sc.shared, batch, sc.probs, &sc.ws)
	for i := range top {
		top[i].Probs = sc.probs[i*heads : (i+1)*heads : (i+1)*heads]
		if s.scoreCol >= 0 {
			top[i].Retrieval = sc.in[i*width+s.scoreCol]
		}
	}
	s.value.Score(top)
	return TopK(top, keep), s.mtml.Heads(), nil
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}
