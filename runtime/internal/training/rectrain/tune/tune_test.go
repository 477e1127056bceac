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
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// handTable has three sessions over heads click, like, see_less:
//
//	session 0 (4 rows): P(like) .9 .1 .5 .2, P(see_less) .0 .0 .6 .0;
//	                    rows 0 and 2 liked, row 2 see-less, row 3 liked.
//	session 1 (2 rows): too short for K = 2, never counted.
//	session 2 (3 rows): P(like) .3 .8 .3; row 0 liked, row 2 see-less.
func handTable() *Table {
	return &Table{
		Heads: []string{"click", "like", "see_less"},
		Probs: []float64{
			0, .9, 0, 0, .1, 0, 0, .5, .6, 0, .2, 0,
			0, .9, 0, 0, .9, 0,
			0, .3, 0, 0, .8, 0, 0, .3, 0,
		},
		Labels: []uint8{0b010, 0, 0b110, 0b010, 0b010, 0b010, 0b010, 0, 0b100},
		Start:  []int{0, 4, 6, 9},
	}
}

func TestObjectiveOnAHandMadeTable(t *testing.T) {
	obj := Objective{Outcome: map[string]float64{"like": 1, "see_less": -8}, K: 2}
	cases := map[string]struct {
		weights []float64
		want    float64
	}{
		// Session 0 ranks rows 0, 2 (like .9, .5): 1 + (1 − 8) = −6.
		// Session 2 ranks rows 1, 0 (.8, then the tie .3 goes to row 0): 0 + 1.
		"like only": {[]float64{0, 1, 0}, (-6.0 + 1) / 4},
		// see_less −1 pushes row 2 to the bottom: session 0 takes rows 0, 3.
		"see_less penalised": {[]float64{0, 1, -1}, (2.0 + 1) / 4},
		// All scores zero: ties keep log order, rows 0, 1 and rows 0, 1.
		"zero weights keep log order": {[]float64{0, 0, 0}, (1.0 + 1) / 4},
		// Negative like weight ranks the least liked first: rows 1, 3 and
		// rows 0, 2 (the tie .3 in log order).
		"inverted": {[]float64{0, -1, 0}, (1.0 + (1 - 8)) / 4},
	}
	e, err := NewEvaluator(handTable(), obj)
	if err != nil {
		t.Fatal(err)
	}
	if e.Counted() != 2 {
		t.Errorf("%d sessions counted, want 2", e.Counted())
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := e.Value(tc.weights); !near(got, tc.want, 1e-12) {
				t.Errorf("objective %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := NewEvaluator(handTable(), Objective{Outcome: map[string]float64{"comment": 1}}); err == nil {
		t.Errorf("an objective on an event the table lacks was accepted")
	}
}

func TestTableSplit(t *testing.T) {
	first, rest := handTable().Split(0.5)
	if first.Sessions() != 1 || rest.Sessions() != 2 || first.Rows() != 4 || rest.Rows() != 5 {
		t.Fatalf("split into %d sessions/%d rows and %d/%d, want 1/4 and 2/5", first.Sessions(), first.Rows(), rest.Sessions(), rest.Rows())
	}
	e, err := NewEvaluator(rest, Objective{Outcome: map[string]float64{"like": 1, "see_less": -8}, K: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Value([]float64{0, 1, 0}); got != 0.5 {
		t.Errorf("objective of the second half %v, want 0.5 (session 2 alone)", got)
	}
}

func TestParseWeights(t *testing.T) {
	got, err := ParseWeights("like:1, comment:1,see_less:-8")
	if err != nil || len(got) != 3 || got["see_less"] != -8 {
		t.Errorf("ParseWeights = %v, %v", got, err)
	}
	for _, bad := range []string{"like", "like:x", "like:1,like:2", ":1", "like:NaN"} {
		if _, err := ParseWeights(bad); err == nil {
			t.Errorf("ParseWeights(%q) succeeded", bad)
		}
	}
}
