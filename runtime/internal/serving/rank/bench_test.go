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

import "testing"

// benchSetup is the second stage's shape: 300 candidates from the first
// stage, 4 heads.
func benchSetup(b *testing.B) (*Weights, []float32, []Candidate) {
	heads := []string{"click", "like", "comment", "see_less"}
	w, err := CompileWeights(map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8}, heads)
	if err != nil {
		b.Fatal(err)
	}
	r := newRand(11)
	probs := make([]float32, 300*len(heads))
	for i := range probs {
		probs[i] = r.Float32()
	}
	cands := randCands(r, 300, 0)
	for i := range cands {
		cands[i].Probs = probs[i*len(heads) : (i+1)*len(heads)]
	}
	return w, probs, cands
}

func BenchmarkValues300x4(b *testing.B) {
	w, probs, _ := benchSetup(b)
	out := make([]float32, 300)
	b.ReportAllocs()
	for b.Loop() {
		w.Values(probs, out)
	}
}

func BenchmarkScore300x4(b *testing.B) {
	w, _, cands := benchSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		w.Score(cands)
	}
}

// BenchmarkTopK300to100 includes restoring the 300 unsorted candidates each
// iteration, since TopK reorders its input.
func BenchmarkTopK300to100(b *testing.B) {
	w, _, in := benchSetup(b)
	w.Score(in)
	c := make([]Candidate, len(in))
	b.ReportAllocs()
	for b.Loop() {
		copy(c, in)
		TopK(c, 100)
	}
}

// BenchmarkTopK1500to300 is the first stage's cut of the mixed candidates,
// restoring them each iteration.
func BenchmarkTopK1500to300(b *testing.B) {
	in := randCands(newRand(12), 1500, 0)
	c := make([]Candidate, len(in))
	b.ReportAllocs()
	for b.Loop() {
		copy(c, in)
		TopK(c, 300)
	}
}

// BenchmarkScoreTopK300to100 is the second stage after the model: value
// every candidate, keep the best 100.
func BenchmarkScoreTopK300to100(b *testing.B) {
	w, _, in := benchSetup(b)
	c := make([]Candidate, len(in))
	b.ReportAllocs()
	for b.Loop() {
		copy(c, in)
		w.Score(c)
		TopK(c, 100)
	}
}
