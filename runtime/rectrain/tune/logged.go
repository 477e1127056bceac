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

	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/rectrain"
)

// sessionSeconds is the length of a session: a user's impressions of one
// UTC day form one session.
const sessionSeconds = 24 * 3600

// Logged builds the session table of d's test impressions (those at or
// after d.Split) scored by the MTML artifact a. A session is a user's
// impressions of one UTC day, in log order; sessions are ordered by day,
// then by user, so that a split of the table is a split in time. The
// artifact's input is assembled from its feature spec with the rectrain
// feature names, exactly as rectrain trained it.
func Logged(d *rectrain.Data, a *model.Artifact) (*Table, error) {
	if a.MTML == nil {
		return nil, fmt.Errorf("artifact %q is a %s, not an MTML", a.Manifest.Name, a.Manifest.Kind)
	}
	spec := a.Manifest.Networks[model.NetBottom].Input
	fill, err := rowFiller(d, spec)
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

// rowFiller returns a function writing the input of impression k by spec.
func rowFiller(d *rectrain.Data, spec model.FeatureSpec) (func(dst []float32, k int), error) {
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
