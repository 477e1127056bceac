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
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
)

// TestItemIDGradients checks the item_id table's gradient, gathered from
// the item tower's input (item_id) and the user tower's (the mean rows of
// engagement_id_pool), against finite differences of a loss through both
// towers.
func TestItemIDGradients(t *testing.T) {
	d, _ := tinyWorld(t)
	tt, err := newTwoTower(d, towerShape{layers: 2, hidden: 6, dim: 3, idDim: 2, idPool: true}, 9)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for k := range tt.ItemIDs.W {
		tt.ItemIDs.W[k] = r.NormFloat64()
	}
	// Rows whose users have short pools keep the check small.
	var imps []int // impressions
	for k := range d.TrainN {
		if im := &d.Imps[k]; im.PoolN > 0 && im.PoolN < 4 {
			imps = append(imps, k)
		}
		if len(imps) == 3 {
			break
		}
	}
	if len(imps) < 3 {
		t.Fatalf("the tiny world has %d impressions with short pools", len(imps))
	}
	n, uw, iw := len(imps), tt.UserSpec.Width(), tt.ItemSpec.Width()
	probeU, probeI := make([]float64, n*3), make([]float64, n*3)
	for k := range probeU {
		probeU[k], probeI[k] = r.NormFloat64(), r.NormFloat64()
	}
	var tu, ti nn.Tape
	items := make([]int32, n)
	pools := make([][]int32, n)
	forward := func() float64 {
		ub, ux := matrix(nil, n, uw)
		ib, ix := matrix(nil, n, iw)
		for j, k := range imps {
			im := &d.Imps[k]
			items[j], pools[j] = im.Item, d.PoolItems(im.User, im.PoolN)
			tt.userRow(d, ub[j*uw:(j+1)*uw], im.User, d.Pool(k), pools[j])
			tt.itemRow(d, ib[j*iw:(j+1)*iw], im.Item)
		}
		var s float64
		for k, v := range tt.User.Forward(ux, &tu).Data {
			s += v * probeU[k]
		}
		for k, v := range tt.Item.Forward(ix, &ti).Data {
			s += v * probeI[k]
		}
		return s
	}
	forward()
	g := tt.ItemIDs.NewRowGrads()
	dxu := tt.User.Backward(&tu, blas64.General{Rows: n, Cols: 3, Stride: 3, Data: append([]float64(nil), probeU...)}, tt.User.NewGrads(), true)
	tt.addPoolGrads(g, dxu, pools)
	dxi := tt.Item.Backward(&ti, blas64.General{Rows: n, Cols: 3, Stride: 3, Data: append([]float64(nil), probeI...)}, tt.Item.NewGrads(), true)
	tt.addIDGrads(g, dxi, items)
	if len(g.Touched) < n {
		t.Fatalf("%d rows have a gradient, want at least %d", len(g.Touched), n)
	}
	const step = 1e-6
	for _, row := range g.Touched {
		for c := range 2 {
			k := int(row)*2 + c
			orig := tt.ItemIDs.W[k]
			tt.ItemIDs.W[k] = orig + step
			fp := forward()
			tt.ItemIDs.W[k] = orig - step
			fm := forward()
			tt.ItemIDs.W[k] = orig
			num := (fp - fm) / (2 * step)
			if got := g.Of(row)[c]; math.Abs(num-got) > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("item_id row %d column %d: gradient %.9g, finite difference %.9g", row, c, got, num)
			}
		}
	}
}
