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
	"fmt"
	"slices"
	"strings"
)

// Weights turns the per-event probabilities of the second-stage model into
// one value, Σ_h w_h·P_h. It holds one weight per model head, in the model's
// head order; a head the config does not weigh counts zero. Weights is
// read-only after CompileWeights and safe for concurrent use.
type Weights struct {
	heads []string
	w     []float32
	// retrieval is the weight of Candidate.Retrieval (RetrievalWeight).
	retrieval float32
}

// CompileWeights aligns the configured event weights (live.weights) with the
// heads of the model, in head order. It refuses a weight whose event is not a
// head of the model, naming the event and the heads the model has, since such
// a weight would silently count for nothing.
func CompileWeights(weights map[string]float64, heads []string) (*Weights, error) {
	return CompileValue(weights, heads, false)
}

// RetrievalWeight is the weight key of the retrieval model's score in the
// value: Σ w_h·P_h + w·two_tower_score, accepted when the ranker reads that
// score (its two_tower_score input). Logged engagements happen to what was
// shown, which the ranker's probabilities, learnt given the showing, do
// not model and the retrieval model, learnt from the engagements, does:
// the weight blends the two, and rectrain chooses it on held-out users.
const RetrievalWeight = "two_tower_score"

// CompileValue is CompileWeights for a ranker that, when retrieval is set,
// also gives each candidate the retrieval model's score
// (Candidate.Retrieval), which the weight RetrievalWeight counts.
func CompileValue(weights map[string]float64, heads []string, retrieval bool) (*Weights, error) {
	var unknown []string
	for event := range weights {
		if !slices.Contains(heads, event) && (event != RetrievalWeight || !retrieval) {
			unknown = append(unknown, event)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		also := ""
		if retrieval {
			also = ", or " + RetrievalWeight
		}
		return nil, fmt.Errorf("weights: %s not a head of the model (heads: %s%s)",
			quoteList(unknown), strings.Join(heads, ", "), also)
	}
	w := &Weights{heads: slices.Clone(heads), w: make([]float32, len(heads)), retrieval: float32(weights[RetrievalWeight])}
	for i, h := range heads {
		w.w[i] = float32(weights[h])
	}
	return w, nil
}

func quoteList(events []string) string {
	q := make([]string, len(events))
	for i, e := range events {
		q[i] = fmt.Sprintf("%q", e)
	}
	if len(q) == 1 {
		return "event " + q[0] + " is"
	}
	return "events " + strings.Join(q, ", ") + " are"
}

// Heads returns the number of heads, the width of a probability row.
func (w *Weights) Heads() int { return len(w.w) }

// Weight returns the weight of the named event, zero for an unweighed or
// unknown one.
func (w *Weights) Weight(event string) float32 {
	if i := slices.Index(w.heads, event); i >= 0 {
		return w.w[i]
	}
	return 0
}

// Value returns Σ_h w_h·probs[h] for one candidate's probabilities. It
// panics if len(probs) != Heads().
func (w *Weights) Value(probs []float32) float32 {
	if len(probs) != len(w.w) {
		panic(fmt.Sprintf("rank: %d probabilities for %d heads", len(probs), len(w.w)))
	}
	return weighted(w.w, probs)
}

// Values computes the value of each row of probs, a batch×Heads() row-major
// buffer as the model's Predict writes it, into out[:batch]. It panics if
// len(probs) is not len(out)×Heads().
func (w *Weights) Values(probs []float32, out []float32) {
	h := len(w.w)
	if len(probs) != len(out)*h {
		panic(fmt.Sprintf("rank: %d probabilities for %d candidates × %d heads", len(probs), len(out), h))
	}
	for i := range out {
		out[i] = weighted(w.w, probs[i*h:(i+1)*h])
	}
}

// Score sets the Value of each candidate from its Probs, and its
// Retrieval score when the value weighs it.
func (w *Weights) Score(cands []Candidate) {
	for i := range cands {
		cands[i].Value = w.Value(cands[i].Probs) + w.retrieval*cands[i].Retrieval
	}
}

// weighted is Σ w·p over the few heads of a value, one candidate at a
// time. It is not vec.Dot on purpose: this loop is inlined into Values,
// while a call to the kernel costs more than the 4–8 products (300
// candidates × 4 heads: 2.1 µs through vec.Dot, 0.64 µs inlined).
func weighted(w, p []float32) float32 {
	p = p[:len(w)]
	var s float32
	for i, x := range w {
		s += x * p[i]
	}
	return s
}
