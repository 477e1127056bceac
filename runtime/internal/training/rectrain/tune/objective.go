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

// Package tune finds the event weights of the ranking value Σ w·P that
// maximise a declared objective on held-out logged data: it scores the
// logged sessions (Logged), measures an objective of a weight vector on
// them (Objective), and leaves the search to runtime/bayesopt.
package tune

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// DefaultObjective is the declared objective when none is given: likes plus
// comments minus eight times see-less.
const DefaultObjective = "like:1,comment:1,see_less:-8"

// DefaultK is the number of impressions of a session the objective counts.
const DefaultK = 3

// Table is logged impressions grouped into sessions, each with the ranker's
// predicted probabilities and the events that followed it.
type Table struct {
	// Heads are the events, in the column order of Probs and the bit order
	// of Labels.
	Heads []string
	// Probs is rows×len(Heads): the ranker's P(event) of each impression.
	Probs []float64
	// Labels has bit h set when the event Heads[h] followed the impression.
	Labels []uint8
	// Start delimits the sessions: session s is rows Start[s]:Start[s+1].
	Start []int
}

// Sessions returns the number of sessions.
func (t *Table) Sessions() int { return max(len(t.Start)-1, 0) }

// Rows returns the number of impressions.
func (t *Table) Rows() int { return len(t.Labels) }

// Slice returns the sessions [from, to) as a table sharing t's storage.
func (t *Table) Slice(from, to int) *Table {
	a, b := t.Start[from], t.Start[to]
	nh := len(t.Heads)
	start := make([]int, 0, to-from+1)
	for _, s := range t.Start[from : to+1] {
		start = append(start, s-a)
	}
	return &Table{Heads: t.Heads, Probs: t.Probs[a*nh : b*nh], Labels: t.Labels[a:b], Start: start}
}

// Split returns the first ⌊frac·Sessions()⌋ sessions and the rest.
func (t *Table) Split(frac float64) (first, rest *Table) {
	k := int(frac * float64(t.Sessions()))
	return t.Slice(0, k), t.Slice(k, t.Sessions())
}

// Objective is the declared quantity to maximise: the value of each logged
// event among the top K impressions of every session, per impression
// counted.
type Objective struct {
	// Outcome is the value of each event by head name, e.g. like 1,
	// comment 1, see_less −8.
	Outcome map[string]float64
	// K is the number of impressions per session counted; default DefaultK.
	K int
}

// ParseWeights parses "event:value,event:value" into a map.
func ParseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, f := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not event:value", f)
		}
		w, err := strconv.ParseFloat(val, 64)
		if err != nil || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("%q: the value is not a finite number", f)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%q: %s given twice", f, name)
		}
		out[name] = w
	}
	return out, nil
}

// Vector returns m in the order of heads, zero for a missing head; it
// refuses a name that is not a head.
func Vector(heads []string, m map[string]float64) ([]float64, error) {
	v := make([]float64, len(heads))
	for name, w := range m {
		h := slices.Index(heads, name)
		if h < 0 {
			return nil, fmt.Errorf("unknown event %q (want one of %v)", name, heads)
		}
		v[h] = w
	}
	return v, nil
}

// Evaluator computes an objective on a table for many weight vectors,
// reusing its buffers; it is not safe for concurrent use.
type Evaluator struct {
	t       *Table
	k       int
	outcome []float64 // by head
	gain    []float64 // by row: Σ outcome·label
	score   []float64
	idx     []int
}

// NewEvaluator prepares o on t.
func NewEvaluator(t *Table, o Objective) (*Evaluator, error) {
	out, err := Vector(t.Heads, o.Outcome)
	if err != nil {
		return nil, fmt.Errorf("objective: %w", err)
	}
	if o.K == 0 {
		o.K = DefaultK
	}
	if o.K < 1 {
		return nil, fmt.Errorf("objective: K is %d, want at least 1", o.K)
	}
	e := &Evaluator{t: t, k: o.K, outcome: out, gain: make([]float64, t.Rows())}
	for r, l := range t.Labels {
		for h, v := range out {
			if l>>h&1 == 1 {
				e.gain[r] += v
			}
		}
	}
	return e, nil
}

// Counted returns the number of sessions the objective counts: those with
// more than K impressions, where the weights choose which are counted.
func (e *Evaluator) Counted() int {
	n := 0
	for s := range e.t.Sessions() {
		if e.t.Start[s+1]-e.t.Start[s] > e.k {
			n++
		}
	}
	return n
}

// Value ranks every session's impressions by Σ w·P (ties keep log order)
// and returns the total outcome of the top K of each, divided by the
// number of impressions counted. Sessions of K impressions or fewer are
// left out: their value does not depend on the weights. weights are in the
// table's Heads order. A table with no counted session has value 0.
func (e *Evaluator) Value(weights []float64) float64 {
	t := e.t
	nh := len(t.Heads)
	var total float64
	shown := 0
	for s := range t.Sessions() {
		a, b := t.Start[s], t.Start[s+1]
		if b-a <= e.k {
			continue
		}
		e.score = e.score[:0]
		e.idx = e.idx[:0]
		for r := a; r < b; r++ {
			var v float64
			for h, w := range weights {
				v += w * t.Probs[r*nh+h]
			}
			e.score = append(e.score, v)
			e.idx = append(e.idx, r-a)
		}
		// Partial selection of the K best; the lower row wins a tie.
		for i := range e.k {
			bi := i
			for j := i + 1; j < len(e.idx); j++ {
				x, y := e.idx[j], e.idx[bi]
				if e.score[x] > e.score[y] || (e.score[x] == e.score[y] && x < y) {
					bi = j
				}
			}
			e.idx[i], e.idx[bi] = e.idx[bi], e.idx[i]
			total += e.gain[a+e.idx[i]]
		}
		shown += e.k
	}
	if shown == 0 {
		return 0
	}
	return total / float64(shown)
}
