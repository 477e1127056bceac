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

package features

import (
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
)

// FillSplit's two parts put back together in the row's order must be the
// row Fill writes, the shared part being the user's blocks alone.
func TestFillSplitPartsMakeUpTheRow(t *testing.T) {
	c := fixture(t)
	u := fixtureUser(c)
	tests := map[string]struct {
		spec   model.FeatureSpec
		shared []int
	}{
		"documented order":        {spec(UserFeatures, EngagementPool, ItemFeatures, ItemRisk, ItemAge, AuthorFollowed), []int{0, 1, 2, 3, 4}},
		"reversed":                {spec(AuthorFollowed, ItemAge, ItemRisk, ItemFeatures, EngagementPool, UserFeatures), []int{5, 6, 7, 8, 9}},
		"item blocks interleaved": {spec(ItemRisk, UserFeatures, ItemAge, EngagementPool, AuthorFollowed, ItemFeatures), []int{1, 2, 3, 5, 6}},
		"no user block":           {spec(ItemFeatures, AuthorFollowed), nil},
	}
	items := []string{"i2", "i0", "i1"}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := Compile(tc.spec, c)
			if err != nil {
				t.Fatal(err)
			}
			cols := a.SharedColumns()
			if !slices.Equal(cols, tc.shared) {
				t.Fatalf("SharedColumns() = %v, want %v", cols, tc.shared)
			}
			ords := make([]uint32, len(items))
			for k, id := range items {
				ords[k], _ = c.Ordinal(id)
			}
			w := a.Width() - len(cols)
			const stride = 13 // wider than any row here: padding must stay alone
			dst := blas32.General{Rows: len(items), Cols: w, Stride: stride, Data: make([]float32, len(items)*stride)}
			for k := range dst.Data {
				dst.Data[k] = float32(math.NaN())
			}
			shared := make([]float32, len(cols))
			a.FillSplit(u, ords, shared, dst)
			for k, id := range items {
				want := expectedRow(tc.spec, id)
				row := make([]float32, 0, len(want))
				si, ci := 0, 0
				for col := range want {
					if si < len(cols) && cols[si] == col {
						row = append(row, shared[si])
						si++
					} else {
						row = append(row, dst.Data[k*stride+ci])
						ci++
					}
				}
				if !near(row, want) {
					t.Errorf("row %d (%s) put back together = %v, want %v", k, id, row, want)
				}
				for p := w; p < stride; p++ {
					if v := dst.Data[k*stride+p]; !math.IsNaN(float64(v)) {
						t.Errorf("row %d: padding column %d written (%v)", k, p, v)
					}
				}
			}
			if n := testing.AllocsPerRun(50, func() { a.FillSplit(u, ords, shared, dst) }); n != 0 {
				t.Errorf("FillSplit allocates %v times per call, want 0", n)
			}
		})
	}
}
