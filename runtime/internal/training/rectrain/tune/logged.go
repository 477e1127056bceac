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

package tune

import (
	"cmp"
	"fmt"
	"slices"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

// sessionSeconds is the length of a session: a user's impressions of one
// UTC day form one session.
const sessionSeconds = 24 * 3600

// Logged builds the session table of d's test impressions (those at or
// after d.Split) scored by the MTML artifact a. A session is a user's
// impressions of one UTC day, in log order; sessions are ordered by day,
// then by user, so that a split of the table is a split in time. The
// artifact's input is assembled from its feature spec with the rectrain
// feature names, exactly as rectrain trained it; retrieval is the
// two-tower artifact its two_tower_score block reads (nil when it has
// none).
func Logged(d *rectrain.Data, a, retrieval *model.Artifact) (*Table, error) {
	if a.MTML == nil {
		return nil, fmt.Errorf("artifact %q is a %s, not an MTML", a.Manifest.Name, a.Manifest.Kind)
	}
	spec := a.Manifest.Networks[model.NetBottom].Input
	fill, err := rowFiller(d, spec, a.Embeddings[rectrain.FeatItemID], retrieval)
	if err != nil {
		return nil, err
	}
	type key struct {
		day  int64
		user int32
	}
	groups := map[key][]int{}
	var keys []key
	for k := d.TrainN; k < len(d.Imps); k++ {
		im := &d.Imps[k]
		kk := key{im.T / sessionSeconds, im.User}
		if _, ok := groups[kk]; !ok {
			keys = append(keys, kk)
		}
		groups[kk] = append(groups[kk], k)
	}
	slices.SortFunc(keys, func(x, y key) int { return cmp.Or(cmp.Compare(x.day, y.day), cmp.Compare(x.user, y.user)) })

	heads := a.MTML.Heads()
	nh := len(heads)
	// The artifact's heads map to the log's labels by name.
	bit := make([]int, nh)
	for h, name := range heads {
		bit[h] = slices.Index(rectrain.Heads, name)
	}
	t := &Table{Heads: slices.Clone(heads), Start: []int{0}}
	var rows []int
	for _, kk := range keys {
		rows = append(rows, groups[kk]...)
		t.Start = append(t.Start, len(rows))
	}
	t.Probs = make([]float64, len(rows)*nh)
	t.Labels = make([]uint8, len(rows))

	const batch = 1024
	w := spec.Width()
	in := make([]float32, batch*w)
	out := make([]float32, batch*nh)
	ws := model.NewWorkspace(a.MTML.Bottom(), batch)
	for s := 0; s < len(rows); s += batch {
		n := min(batch, len(rows)-s)
		for j := range n {
			fill(in[j*w:(j+1)*w], rows[s+j])
		}
		a.MTML.Predict(blas32.General{Rows: n, Cols: w, Stride: w, Data: in[:n*w]}, out, ws)
		for j := range n {
			r := s + j
			im := &d.Imps[rows[r]]
			for h := range nh {
				t.Probs[r*nh+h] = float64(out[j*nh+h])
				if bit[h] >= 0 && im.Labels>>bit[h]&1 == 1 {
					t.Labels[r] |= 1 << h
				}
			}
		}
	}
	return t, nil
}

// rowFiller returns a function writing the input of impression k (a test
// impression) by spec; ids is the model's item_id table, nil when it has
// none, and retrieval the two-tower model two_tower_score reads.
func rowFiller(d *rectrain.Data, spec model.FeatureSpec, ids *model.Embedding, retrieval *model.Artifact) (func(dst []float32, k int), error) {
	type block struct {
		off  int
		fill func(dst []float32, k int)
	}
	var blocks []block
	off := 0
	vec := func(name string, width, have int, get func(k int) []float32) error {
		if width != max(have, 1) {
			return fmt.Errorf("the model's %s block is %d wide, the data's %d", name, width, max(have, 1))
		}
		blocks = append(blocks, block{off, func(dst []float32, k int) {
			if have == 0 {
				dst[0] = 0
				return
			}
			copy(dst, get(k))
		}})
		return nil
	}
	scalar := func(name string, width int, get func(k int) float32) error {
		if width != 1 {
			return fmt.Errorf("the model's %s block is %d wide, want 1", name, width)
		}
		blocks = append(blocks, block{off, func(dst []float32, k int) { dst[0] = get(k) }})
		return nil
	}
	for _, b := range spec {
		var err error
		switch b.Name {
		case rectrain.FeatUser:
			err = vec(b.Name, b.Width, d.UserDim, func(k int) []float32 { return d.User(d.Imps[k].User) })
		case rectrain.FeatEngagementPool:
			err = vec(b.Name, b.Width, d.ItemDim, d.Pool)
		case rectrain.FeatItem:
			err = vec(b.Name, b.Width, d.ItemDim, func(k int) []float32 { return d.Item(d.Imps[k].Item) })
		case rectrain.FeatItemRisk:
			err = scalar(b.Name, b.Width, func(k int) float32 { return d.ItemRisk[d.Imps[k].Item] })
		case rectrain.FeatItemAge:
			err = scalar(b.Name, b.Width, func(k int) float32 {
				im := &d.Imps[k]
				return float32(d.ItemAge(im.Item, im.T))
			})
		case rectrain.FeatAuthorFollowed:
			err = scalar(b.Name, b.Width, func(k int) float32 {
				if d.Imps[k].Followed {
					return 1
				}
				return 0
			})
		case rectrain.FeatTwoTowerScore:
			var scores []float32
			if scores, err = towerScores(d, retrieval); err == nil {
				err = scalar(b.Name, b.Width, func(k int) float32 { return scores[k-d.TrainN] })
			}
		case rectrain.FeatItemID, rectrain.FeatEngagementIDs, rectrain.FeatIDAffinity:
			var fill func(dst []float32, k int)
			if fill, err = idFiller(d, b, ids); err == nil {
				blocks = append(blocks, block{off, fill})
			}
		default:
			err = fmt.Errorf("the model takes a feature %q that rectrain does not compute", b.Name)
		}
		if err != nil {
			return nil, err
		}
		off += b.Width
	}
	return func(dst []float32, k int) {
		for _, b := range blocks {
			b.fill(dst[b.off:], k)
		}
	}, nil
}

// idFiller returns the filler of a block reading the model's item_id table
// ids, computed as recserve's features package does: the item's row (zeros
// for an item the table does not list), the mean row of the user's
// engagement pool, or their dot product.
func idFiller(d *rectrain.Data, b model.FeatureBlock, ids *model.Embedding) (func(dst []float32, k int), error) {
	if ids == nil {
		return nil, fmt.Errorf("the model's %s block reads an %s table it does not have", b.Name, rectrain.FeatItemID)
	}
	w := ids.Width()
	if want := map[bool]int{true: 1, false: w}[b.Name == rectrain.FeatIDAffinity]; b.Width != want {
		return nil, fmt.Errorf("the model's %s block is %d wide, want %d", b.Name, b.Width, want)
	}
	row := func(i int32) []float32 { return ids.Lookup(d.ItemIDs[i]) }
	pool := func(dst []float32, k int) {
		im := &d.Imps[k]
		items := d.PoolItems(im.User, im.PoolN)
		acc := make([]float64, w)
		for _, i := range items {
			for c, v := range row(i) {
				acc[c] += float64(v)
			}
		}
		for c := range dst[:w] {
			dst[c] = 0
			if len(items) > 0 {
				dst[c] = float32(acc[c] / float64(len(items)))
			}
		}
	}
	switch b.Name {
	case rectrain.FeatItemID:
		return func(dst []float32, k int) {
			clear(dst[:w])
			copy(dst, row(d.Imps[k].Item))
		}, nil
	case rectrain.FeatEngagementIDs:
		return pool, nil
	}
	buf := make([]float32, w)
	return func(dst []float32, k int) {
		pool(buf, k)
		var dot float64
		for c, v := range row(d.Imps[k].Item) {
			dot += float64(v) * float64(buf[c])
		}
		dst[0] = float32(dot)
	}, nil
}

// towerScores returns the two-tower model a's score of every test
// impression's item for its user (index k − d.TrainN), its towers' inputs
// assembled as rectrain trained them.
func towerScores(d *rectrain.Data, a *model.Artifact) ([]float32, error) {
	if a == nil || a.TwoTower == nil {
		return nil, fmt.Errorf("the model's %s block needs the retrieval two-tower model", rectrain.FeatTwoTowerScore)
	}
	ids := a.Embeddings[rectrain.FeatItemID]
	uspec, ispec := a.Manifest.Networks[model.NetUser].Input, a.Manifest.Networks[model.NetItem].Input
	ufill, err := rowFiller(d, uspec, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("user tower: %w", err)
	}
	ifill, err := rowFiller(d, ispec, ids, nil)
	if err != nil {
		return nil, fmt.Errorf("item tower: %w", err)
	}
	const batch = 1024
	n := len(d.Imps) - d.TrainN
	out := make([]float32, n)
	uw, iw := uspec.Width(), ispec.Width()
	ub, ib := make([]float32, batch*uw), make([]float32, batch*iw)
	uws, iws := &model.Workspace{}, &model.Workspace{}
	for s := 0; s < n; s += batch {
		bn := min(batch, n-s)
		for j := range bn {
			ufill(ub[j*uw:(j+1)*uw], d.TrainN+s+j)
			ifill(ib[j*iw:(j+1)*iw], d.TrainN+s+j)
		}
		ue := a.TwoTower.UserEmbeddings(blas32.General{Rows: bn, Cols: uw, Stride: uw, Data: ub[:bn*uw]}, uws)
		ie := a.TwoTower.ItemEmbeddings(blas32.General{Rows: bn, Cols: iw, Stride: iw, Data: ib[:bn*iw]}, iws)
		for j := range bn {
			var dot float64
			for c := range ue.Cols {
				dot += float64(ue.Data[j*ue.Stride+c]) * float64(ie.Data[j*ie.Stride+c])
			}
			out[s+j] = float32(dot)
		}
	}
	return out, nil
}
