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
	"math"
	"slices"
	"strings"
	"testing"
)

// want computes Σ w·P from the config map directly, in float64, without the
// compiled dense form.
func want(weights map[string]float64, heads []string, probs []float32) float64 {
	var s float64
	for event, w := range weights {
		s += w * float64(probs[slices.Index(heads, event)])
	}
	return s
}

func TestWeightsValue(t *testing.T) {
	heads := []string{"click", "like", "comment", "see_less"}
	tests := map[string]struct {
		weights map[string]float64
		probs   []float32
	}{
		"design sample weights": {
			weights: map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8},
			probs:   []float32{0.3, 0.1, 0.02, 0.01},
		},
		"unweighed heads count zero": {
			weights: map[string]float64{"like": 1.5},
			probs:   []float32{0.9, 0.2, 0.7, 0.6},
		},
		"all probabilities one": {
			weights: map[string]float64{"click": 0.25, "comment": 3, "see_less": -1},
			probs:   []float32{1, 1, 1, 1},
		},
		"all probabilities zero": {
			weights: map[string]float64{"click": 7, "like": -3},
			probs:   []float32{0, 0, 0, 0},
		},
		"large weights": {
			weights: map[string]float64{"click": 1000, "like": -1000, "comment": 999.5, "see_less": -0.001},
			probs:   []float32{0.123, 0.456, 0.789, 0.999},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w, err := CompileWeights(tc.weights, heads)
			if err != nil {
				t.Fatalf("CompileWeights: %v", err)
			}
			exp := want(tc.weights, heads, tc.probs)
			got := w.Value(tc.probs)
			if math.Abs(float64(got)-exp) > 1e-5*math.Max(1, math.Abs(exp)) {
				t.Errorf("Value = %v, want %v", got, exp)
			}
		})
	}
}

func TestValuesMatchesPerRowSum(t *testing.T) {
	heads := []string{"click", "like", "comment", "see_less"}
	weights := map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8}
	w, err := CompileWeights(weights, heads)
	if err != nil {
		t.Fatal(err)
	}
	r := newRand(1)
	const batch = 37
	probs := make([]float32, batch*len(heads))
	for i := range probs {
		probs[i] = r.Float32()
	}
	out := make([]float32, batch)
	w.Values(probs, out)
	for i := range out {
		exp := want(weights, heads, probs[i*len(heads):(i+1)*len(heads)])
		if math.Abs(float64(out[i])-exp) > 1e-5*math.Max(1, math.Abs(exp)) {
			t.Errorf("row %d: Values = %v, want %v", i, out[i], exp)
		}
	}

	cands := make([]Candidate, batch)
	for i := range cands {
		cands[i].Probs = probs[i*len(heads) : (i+1)*len(heads)]
	}
	w.Score(cands)
	for i := range cands {
		if cands[i].Value != out[i] {
			t.Errorf("row %d: Score set %v, Values wrote %v", i, cands[i].Value, out[i])
		}
	}
}

func TestCompileWeightsRefusesUnknownEvent(t *testing.T) {
	heads := []string{"click", "like", "see_less"}
	tests := map[string]struct {
		weights map[string]float64
		// named must all appear in the error.
		named []string
	}{
		"one unknown event": {
			weights: map[string]float64{"click": 1, "share": 2},
			named:   []string{`"share"`, "click, like, see_less"},
		},
		"misspelt head": {
			weights: map[string]float64{"see-less": -8},
			named:   []string{`"see-less"`},
		},
		"several unknown events": {
			weights: map[string]float64{"like": 1, "save": 1, "comment": 4},
			named:   []string{`"comment"`, `"save"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w, err := CompileWeights(tc.weights, heads)
			if err == nil {
				t.Fatalf("CompileWeights accepted %v for heads %v: %+v", tc.weights, heads, w)
			}
			for _, s := range tc.named {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
		})
	}
}

func TestCompileWeightsAlignsWithHeadOrder(t *testing.T) {
	heads := []string{"see_less", "comment", "click"}
	w, err := CompileWeights(map[string]float64{"click": 1, "see_less": -8}, heads)
	if err != nil {
		t.Fatal(err)
	}
	if w.Heads() != 3 {
		t.Errorf("Heads() = %d, want 3", w.Heads())
	}
	for event, exp := range map[string]float32{"see_less": -8, "comment": 0, "click": 1, "share": 0} {
		if got := w.Weight(event); got != exp {
			t.Errorf("Weight(%q) = %v, want %v", event, got, exp)
		}
	}
	// Only the click column carries positive weight.
	if got := w.Value([]float32{0, 0, 1}); got != 1 {
		t.Errorf("Value with P(click)=1 only = %v, want 1", got)
	}
}

func TestNegativeWeightLowersValue(t *testing.T) {
	heads := []string{"click", "like", "see_less"}
	w, err := CompileWeights(map[string]float64{"click": 1, "like": 2, "see_less": -8}, heads)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		low, high []float32
	}{
		"more likely see_less, same engagement": {
			low:  []float32{0.5, 0.2, 0.3},
			high: []float32{0.5, 0.2, 0.1},
		},
		"see_less outweighs a likelier click": {
			low:  []float32{0.9, 0.2, 0.2},
			high: []float32{0.5, 0.2, 0.05},
		},
		"value goes below zero": {
			low:  []float32{0.1, 0, 0.5},
			high: []float32{0.1, 0, 0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lo, hi := w.Value(tc.low), w.Value(tc.high)
			if lo >= hi {
				t.Errorf("Value(%v) = %v, not below Value(%v) = %v", tc.low, lo, tc.high, hi)
			}
		})
	}
	if v := w.Value([]float32{0.1, 0, 0.5}); v >= 0 {
		t.Errorf("Value with P(see_less)=0.5 = %v, want negative", v)
	}
}

func TestWeightsPanicOnShapeMismatch(t *testing.T) {
	w, err := CompileWeights(map[string]float64{"click": 1}, []string{"click", "like"})
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(){
		"Value with too few probabilities": func() { w.Value([]float32{1}) },
		"Values with a partial row":        func() { w.Values(make([]float32, 5), make([]float32, 3)) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			f()
		})
	}
}
