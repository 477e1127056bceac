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

package model

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// TwoTower is a retrieval or first-stage model: a user tower and an item tower
// mapping their inputs to embeddings of width Dim; the score of an item for a
// user is the dot product of their embeddings. It is read-only after
// construction and safe for concurrent use with one Workspace per goroutine.
type TwoTower struct {
	User, Item *MLP
	// Dim is the embedding width, the output width of both towers.
	Dim int
	// Normalize L2-normalises embeddings, making scores cosines.
	Normalize bool
}

// NewTwoTower builds a TwoTower model from its towers.
func NewTwoTower(user, item *MLP, normalize bool) (*TwoTower, error) {
	if user.Out() != item.Out() {
		return nil, invalidf("twotower: user tower gives %d values, item tower %d", user.Out(), item.Out())
	}
	return &TwoTower{User: user, Item: item, Dim: user.Out(), Normalize: normalize}, nil
}

// UserEmbeddings runs the user tower over in (batch×User.In()) and returns the
// batch×Dim embeddings, which live in ws until its next use.
func (t *TwoTower) UserEmbeddings(in blas32.General, ws *Workspace) blas32.General {
	return t.embed(t.User, in, ws)
}

// ItemEmbeddings runs the item tower over in (batch×Item.In()) and returns the
// batch×Dim embeddings, which live in ws until its next use.
func (t *TwoTower) ItemEmbeddings(in blas32.General, ws *Workspace) blas32.General {
	return t.embed(t.Item, in, ws)
}

func (t *TwoTower) embed(m *MLP, in blas32.General, ws *Workspace) blas32.General {
	e := m.Forward(in, ws)
	if t.Normalize {
		normalizeRows(e)
	}
	return e
}

// Score runs the item tower over items (batch×Item.In()) and writes the dot
// product of each item embedding with user (length Dim) to out[:batch]. It
// allocates nothing with a reused Workspace. Score panics if user or out is
// too short or items.Cols != Item.In().
func (t *TwoTower) Score(user []float32, items blas32.General, out []float32, ws *Workspace) {
	if len(user) != t.Dim {
		panic(fmt.Sprintf("model: user embedding has %d values, want %d", len(user), t.Dim))
	}
	if len(out) < items.Rows {
		panic(fmt.Sprintf("model: output buffer has %d values for %d items", len(out), items.Rows))
	}
	if items.Rows == 0 {
		return
	}
	e := t.ItemEmbeddings(items, ws)
	blas32.Gemv(blas.NoTrans, 1, e, blas32.Vector{N: t.Dim, Inc: 1, Data: user}, 0, blas32.Vector{N: items.Rows, Inc: 1, Data: out})
}

// normalizeRows scales each row of e to unit L2 norm; zero rows stay zero.
func normalizeRows(e blas32.General) {
	for r := 0; r < e.Rows; r++ {
		row := e.Data[r*e.Stride : r*e.Stride+e.Cols]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		if ss == 0 {
			continue
		}
		inv := float32(1 / math.Sqrt(ss))
		for i := range row {
			row[i] *= inv
		}
	}
}
