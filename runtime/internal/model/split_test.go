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
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// splitInput divides the rows of full into the values of the constant
// columns, taken from row 0, and the other columns; it sets the constant
// columns of every row to row 0's, so that full is what the split network
// sees.
func splitInput(full blas32.General, constant []int) (shared []float32, rest blas32.General) {
	for _, c := range constant {
		shared = append(shared, full.Data[c])
		for r := 1; r < full.Rows; r++ {
			full.Data[r*full.Stride+c] = full.Data[c]
		}
	}
	cols := full.Cols - len(constant)
	// A stride wider than the columns, to check it is honoured.
	rest = blas32.General{Rows: full.Rows, Cols: cols, Stride: cols + 3, Data: make([]float32, full.Rows*(cols+3))}
	for r := range full.Rows {
		j := 0
		for c := range full.Cols {
			if !slices.Contains(constant, c) {
				rest.Data[r*rest.Stride+j] = full.Data[r*full.Stride+c]
				j++
			}
		}
	}
	return shared, rest
}

func TestSplitMTMLMatchesPredict(t *testing.T) {
	m := prodMTMLManifest()
	tensors := randTensors(m, 17)
	in := m.Networks[NetBottom].Input.Width()
	span := func(from, to int) []int {
		var s []int
		for c := from; c < to; c++ {
			s = append(s, c)
		}
		return s
	}
	tests := map[string]struct {
		constant []int
	}{
		"no constant column":                   {constant: nil},
		"the user's columns":                   {constant: span(0, 128)},
		"all columns but one":                  {constant: append(span(0, 100), span(101, in)...)},
		"every column":                         {constant: span(0, in)},
		"non-contiguous columns, out of order": {constant: []int{190, 3, 64, 65, 7, 194, 0, 128}},
		"one column":                           {constant: []int{129}},
	}
	for _, p := range computePaths() {
		if p.bf16 {
			continue // TestSplitWithPrecision
		}
		var a *Artifact
		var err error
		p.build(func() { a, err = New(m, tensors) })
		if err != nil {
			t.Fatal(err)
		}
		for name, tc := range tests {
			for _, batch := range []int{1, 7, 300} {
				t.Run(fmt.Sprintf("%s/%s/batch=%d", p.name, name, batch), func(t *testing.T) {
					var s *SplitMTML
					p.build(func() { s, err = a.MTML.Split(tc.constant) })
					if err != nil {
						t.Fatalf("Split: %v", err)
					}
					if s.In() != in-len(tc.constant) {
						t.Fatalf("In() = %d, want %d", s.In(), in-len(tc.constant))
					}
					if s.MTML() != a.MTML {
						t.Fatal("MTML() is not the network split")
					}
					full := randInput(uint64(batch), batch, in, in)
					shared, rest := splitInput(full, tc.constant)
					want := make([]float32, batch*len(m.Heads))
					a.MTML.Predict(full, want, &Workspace{})
					got := make([]float32, len(want))
					ws := &Workspace{}
					// Twice with the same workspace: the second call must
					// not see leftovers of the first.
					for pass := range 2 {
						s.Predict(shared, rest, got, ws)
						tol := 1e-5 * math.Sqrt(float64(in))
						for i := range got {
							if math.Abs(float64(got[i]-want[i])) > tol {
								t.Fatalf("pass %d, batch %d: P(%s) for candidate %d = %v split, %v whole", pass, batch, m.Heads[i%len(m.Heads)], i/len(m.Heads), got[i], want[i])
							}
						}
					}
				})
			}
		}
	}
}

func TestSplitRejectsBadColumns(t *testing.T) {
	m := mtmlManifest()
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		constant []int
		wantErr  string
	}{
		"negative column":       {constant: []int{0, -1}, wantErr: "column -1 is not an input column"},
		"column past the input": {constant: []int{a.MTML.In()}, wantErr: "column 41 is not an input column"},
		"column listed twice":   {constant: []int{3, 5, 3}, wantErr: "column 3 is listed twice"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := a.MTML.Split(tc.constant)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Split(%v) = %v, %v; want an error containing %q", tc.constant, s, err, tc.wantErr)
			}
		})
	}
}

func TestSplitPredictPanicsOnWidthMismatch(t *testing.T) {
	m := mtmlManifest()
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.MTML.Split([]int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 2*len(m.Heads))
	tests := map[string]struct {
		shared []float32
		in     blas32.General
	}{
		"shared values short":   {shared: make([]float32, 2), in: randInput(1, 2, s.In(), s.In())},
		"input one column wide": {shared: make([]float32, 3), in: randInput(1, 2, s.In()+1, s.In()+1)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Predict did not panic")
				}
			}()
			s.Predict(tc.shared, tc.in, out, &Workspace{})
		})
	}
}

func TestSplitPredictAllocatesNothing(t *testing.T) {
	m := prodMTMLManifest()
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.MTML.Split([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	if err != nil {
		t.Fatal(err)
	}
	in := randInput(1, 300, s.In(), s.In())
	shared := make([]float32, 17)
	out := make([]float32, in.Rows*len(m.Heads))
	ws := NewWorkspace(a.MTML.Bottom(), in.Rows)
	if n := testing.AllocsPerRun(5, func() { s.Predict(shared, in, out, ws) }); n != 0 {
		t.Errorf("SplitMTML.Predict allocates %v times per call, want 0", n)
	}
}
