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
	"fmt"
	"math"
)

// Adam is the Adam optimiser (Kingma and Ba) over a fixed list of parameter
// slices.
type Adam struct {
	LR, Beta1, Beta2, Eps float64
	// RowLR is the learning rate of the tables StepRows updates row by
	// row; 0 means LR.
	RowLR  float64
	params [][]float64
	m, v   [][]float64
	t      int
}

// NewAdam returns an optimiser for params with learning rate lr and the usual
// β1 = 0.9, β2 = 0.999, ε = 1e-8.
func NewAdam(params [][]float64, lr float64) *Adam {
	a := &Adam{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, params: params}
	for _, p := range params {
		a.m = append(a.m, make([]float64, len(p)))
		a.v = append(a.v, make([]float64, len(p)))
	}
	return a
}

// Step applies one update with grads, which must match the parameters slice
// for slice.
func (a *Adam) Step(grads [][]float64) { a.StepRows(grads, nil) }

// StepRows is Step where some parameters are tables (see Table) updated on
// the rows of their gradient only, "lazy" Adam: a row the batch did not
// touch keeps its value and moments, so a step costs what the batch reads,
// not the table's size. rows[i], when not nil, is the gradient of parameter
// i (grads[i] is then ignored); rows may be nil or shorter than grads.
func (a *Adam) StepRows(grads [][]float64, rows []*RowGrads) {
	a.t++
	c1 := 1 - math.Pow(a.Beta1, float64(a.t))
	c2 := 1 - math.Pow(a.Beta2, float64(a.t))
	lr := a.LR * math.Sqrt(c2) / c1
	rowLR := lr
	if a.RowLR > 0 {
		rowLR = a.RowLR * math.Sqrt(c2) / c1
	}
	update := func(p, g, m, v []float64, lr float64) {
		for k := range p {
			m[k] = a.Beta1*m[k] + (1-a.Beta1)*g[k]
			v[k] = a.Beta2*v[k] + (1-a.Beta2)*g[k]*g[k]
			p[k] -= lr * m[k] / (math.Sqrt(v[k]) + a.Eps)
		}
	}
	for i, p := range a.params {
		if i < len(rows) && rows[i] != nil {
			rg := rows[i]
			for j, r := range rg.Touched {
				lo, hi := int(r)*rg.Width, (int(r)+1)*rg.Width
				update(p[lo:hi], rg.G[j*rg.Width:(j+1)*rg.Width], a.m[i][lo:hi], a.v[i][lo:hi], rowLR)
			}
			continue
		}
		update(p, grads[i], a.m[i], a.v[i], lr)
	}
}

// State returns the first and second moment estimates and the number of
// steps taken; the slices are Adam's own.
func (a *Adam) State() (m, v [][]float64, t int) { return a.m, a.v, a.t }

// SetState copies in moment estimates and a step count saved by State from
// an optimiser over parameters of the same shapes.
func (a *Adam) SetState(m, v [][]float64, t int) error {
	if len(m) != len(a.m) || len(v) != len(a.v) {
		return fmt.Errorf("optimiser state has %d and %d tensors, want %d", len(m), len(v), len(a.m))
	}
	for i := range a.m {
		if len(m[i]) != len(a.m[i]) || len(v[i]) != len(a.v[i]) {
			return fmt.Errorf("optimiser state tensor %d has %d and %d values, want %d", i, len(m[i]), len(v[i]), len(a.m[i]))
		}
		copy(a.m[i], m[i])
		copy(a.v[i], v[i])
	}
	a.t = t
	return nil
}
