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

package nn

import (
	"slices"
	"testing"
)

func TestRowGradsAccumulateAndClearTouchedRows(t *testing.T) {
	tb := NewTable(4, 2)
	g := tb.NewRowGrads()
	g.Add(2, []float64{1, 2})
	g.Add(0, []float64{3, 4})
	g.Add(2, []float64{10, 20})
	if want := []int32{2, 0}; !slices.Equal(g.Touched, want) {
		t.Errorf("touched rows %v, want %v (order of first Add)", g.Touched, want)
	}
	for r, want := range map[int32][]float64{2: {11, 22}, 0: {3, 4}, 1: nil, 3: nil} {
		if got := g.Of(r); !slices.Equal(got, want) {
			t.Errorf("row %d: gradient %v, want %v", r, got, want)
		}
	}
	if len(g.G) != 2*2 {
		t.Errorf("%d gradient values held for 2 touched rows of width 2, want 4", len(g.G))
	}
	g.Zero()
	if len(g.Touched) != 0 || g.Of(2) != nil {
		t.Errorf("after Zero: touched %v, row 2 %v", g.Touched, g.Of(2))
	}
	g.Add(1, []float64{5, 5})
	if want := []int32{1}; !slices.Equal(g.Touched, want) {
		t.Errorf("touched rows after Zero and Add %v, want %v", g.Touched, want)
	}
	if got, want := g.Of(1), []float64{5, 5}; !slices.Equal(got, want) {
		t.Errorf("row 1 after Zero and Add: %v, want %v (the old values must not leak)", got, want)
	}
}

// TestStepRowsIsLazyAdam checks that StepRows updates a touched row exactly
// as Step updates the same values, and leaves the other rows' values and
// moments alone.
func TestStepRowsIsLazyAdam(t *testing.T) {
	t.Run("same rate", func(t *testing.T) { stepRowsIsLazyAdam(t, 0) })
	t.Run("row rate", func(t *testing.T) { stepRowsIsLazyAdam(t, 0.1) })
}

func stepRowsIsLazyAdam(t *testing.T, rowLR float64) {
	dense := []float64{1, 2, 3, 4, 5, 6}
	sparse := NewTable(3, 2)
	copy(sparse.W, dense)
	other := []float64{0.5}
	a := NewAdam([][]float64{dense}, 0.1)
	b := NewAdam([][]float64{other, sparse.W}, 0.3)
	b.RowLR = 0.1
	if rowLR == 0 {
		b = NewAdam([][]float64{other, sparse.W}, 0.1)
	}
	rg := sparse.NewRowGrads()
	for step := range 3 {
		// Row 1 has a gradient every step; row 0 only at step 1; row 2 never.
		gd := []float64{0, 0, 0.3, -0.2, 0, 0}
		rg.Add(1, []float64{0.3, -0.2})
		if step == 1 {
			gd[0], gd[1] = 0.1, 0.1
			rg.Add(0, []float64{0.1, 0.1})
		}
		a.Step([][]float64{gd})
		b.StepRows([][]float64{{1}, nil}, []*RowGrads{nil, rg})
		rg.Zero()
	}
	// Row 1 was touched every step: it matches dense Adam.
	if !slices.Equal(sparse.W[2:4], dense[2:4]) {
		t.Errorf("row touched every step %v, dense Adam %v", sparse.W[2:4], dense[2:4])
	}
	// Row 2 was never touched: unchanged, moments zero.
	m, v, _ := b.State()
	if !slices.Equal(sparse.W[4:6], []float64{5, 6}) || m[1][4] != 0 || v[1][5] != 0 {
		t.Errorf("untouched row %v, moments %v %v; want it unchanged", sparse.W[4:6], m[1][4:6], v[1][4:6])
	}
	// Row 0 was updated once, at step 1, with that step's bias correction;
	// dense Adam also moved it (decaying momentum) at step 2.
	if sparse.W[0] == 1 || sparse.W[0] == dense[0] {
		t.Errorf("row touched once is %v (dense Adam %v): want an update unlike the dense one", sparse.W[0], dense[0])
	}
	// The dense parameter beside the table had Step's update.
	if other[0] == 0.5 {
		t.Errorf("dense parameter beside the table was not updated")
	}
}
