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
// maximise a declared objective on held-out logged data, by Bayesian
// optimisation: a Gaussian-process surrogate of the objective over a box of
// weights and the expected-improvement acquisition.
//
// The optimiser is written here rather than imported: the Go Bayesian
// optimisation libraries available through the module proxy are small and
// unmaintained, and the method needs only a Cholesky factorisation, the
// normal distribution and a Nelder–Mead search, all three from gonum.
//
// Everything is deterministic for a seed: the initial Latin-hypercube
// design, the acquisition's candidates and the hyperparameter search draw
// from one seeded generator, and the objective and the searches evaluate
// one point at a time.
package tune

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/stat/distuv"
)

// Bounds is one dimension of the search box.
type Bounds struct {
	Name   string
	Lo, Hi float64
}

// Options controls Maximize. Zero fields take the defaults noted beside them.
type Options struct {
	// Init is the size of the initial Latin-hypercube design; default
	// max(5, 2·len(bounds)).
	Init int
	// Iters is the number of evaluations chosen by expected improvement
	// after the initial design; default 30.
	Iters int
	// Seed seeds the design and the acquisition's candidates; 0 is a valid
	// seed.
	Seed uint64
	// Start are points evaluated before the design, for example the weights
	// in use today, so that the result is never worse than them; each must
	// lie in the box.
	Start [][]float64
	// Kernel is the surrogate's covariance; default Matern52.
	Kernel Kernel
	// Candidates is the number of random points the acquisition is scored
	// on before local refinement; default 2000.
	Candidates int
	// Xi is the improvement, in standard deviations of the observed values,
	// that expected improvement asks for beyond the best value; default 0
	// (a positive value explores more but converges more slowly).
	Xi float64
	// OnEval, when set, is called after every evaluation with its 1-based
	// number, the point and the best point so far.
	OnEval func(n int, p, best Point)
}

// Point is one evaluation of the objective.
type Point struct {
	X     []float64
	Value float64
}

// Result is the outcome of Maximize.
type Result struct {
	// Best is the point with the highest value, Value its value.
	Best  []float64
	Value float64
	// Trace lists every evaluation in order: Start, the design, then the
	// acquisition's choices.
	Trace []Point
}

// Maximize maximises f over the box by Bayesian optimisation: it evaluates
// opts.Start and a Latin-hypercube design, then repeatedly fits a GP to the
// values seen (inputs scaled to the unit cube, values standardised,
// hyperparameters by maximum marginal likelihood) and evaluates f where the
// expected improvement is highest. f is never called outside the box. An
// error of f, a NaN or infinite value, or ctx's end stops the search.
func Maximize(ctx context.Context, f func([]float64) (float64, error), bounds []Bounds, opts Options) (Result, error) {
	if err := opts.complete(bounds); err != nil {
		return Result{}, err
	}
	r := rand.New(rand.NewPCG(opts.Seed, 0x74756e65))
	s := &search{ctx: ctx, f: f, bounds: bounds, onEval: opts.OnEval}
	for _, p := range opts.Start {
		u, err := s.toUnit(p)
		if err != nil {
			return s.res, err
		}
		if err := s.eval(u); err != nil {
			return s.res, err
		}
	}
	for _, u := range latinHypercube(r, opts.Init, len(bounds)) {
		if err := s.eval(u); err != nil {
			return s.res, err
		}
	}
	y := make([]float64, 0, len(s.unit)+opts.Iters)
	for range opts.Iters {
		y = y[:0]
		for _, p := range s.res.Trace {
			y = append(y, p.Value)
		}
		standardise(y)
		g, err := FitGP(opts.Kernel, s.unit, y)
		if err != nil {
			return s.res, fmt.Errorf("failed to fit the surrogate: %w", err)
		}
		best := math.Inf(-1)
		for _, v := range y {
			best = math.Max(best, v)
		}
		if err := s.eval(nextPoint(r, g, s.unit, y, best, opts)); err != nil {
			return s.res, err
		}
	}
	return s.res, nil
}

// complete checks the bounds and the options and fills the options'
// defaults.
func (o *Options) complete(bounds []Bounds) error {
	d := len(bounds)
	if d == 0 {
		return fmt.Errorf("tune: no bounds")
	}
	for _, b := range bounds {
		if !(b.Lo < b.Hi) || math.IsInf(b.Lo, 0) || math.IsInf(b.Hi, 0) {
			return fmt.Errorf("tune: bounds of %q are [%v, %v], want finite lo < hi", b.Name, b.Lo, b.Hi)
		}
	}
	if o.Init <= 0 {
		o.Init = max(5, 2*d)
	}
	if o.Iters < 0 {
		return fmt.Errorf("tune: %d iterations", o.Iters)
	}
	if o.Iters == 0 {
		o.Iters = 30
	}
	if o.Candidates <= 0 {
		o.Candidates = 2000
	}
	if o.Xi < 0 || math.IsNaN(o.Xi) {
		return fmt.Errorf("tune: xi is %v, want at least 0", o.Xi)
	}
	return nil
}

// search is the state of one Maximize: the evaluations so far.
type search struct {
	ctx    context.Context
	f      func([]float64) (float64, error)
	bounds []Bounds
	onEval func(n int, p, best Point)
	res    Result
	unit   [][]float64 // the evaluated points scaled to the unit cube
}

// toUnit scales a start point to the unit cube, refusing one outside the
// box.
func (s *search) toUnit(p []float64) ([]float64, error) {
	if len(p) != len(s.bounds) {
		return nil, fmt.Errorf("tune: a start point has %d coordinates, want %d", len(p), len(s.bounds))
	}
	u := make([]float64, len(p))
	for i, b := range s.bounds {
		if p[i] < b.Lo || p[i] > b.Hi {
			return nil, fmt.Errorf("tune: start point %v is outside the bounds of %q", p, b.Name)
		}
		u[i] = (p[i] - b.Lo) / (b.Hi - b.Lo)
	}
	return u, nil
}

// eval evaluates f at the point of the box that u (in the unit cube)
// stands for, and records it.
func (s *search) eval(u []float64) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	x := make([]float64, len(s.bounds))
	for i, b := range s.bounds {
		x[i] = b.Lo + clamp(u[i], 0, 1)*(b.Hi-b.Lo)
	}
	v, err := s.f(x)
	if err != nil {
		return err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("tune: objective is %v at %v", v, x)
	}
	p := Point{X: x, Value: v}
	s.res.Trace = append(s.res.Trace, p)
	s.unit = append(s.unit, u)
	if len(s.res.Trace) == 1 || v > s.res.Value {
		s.res.Best, s.res.Value = x, v
	}
	if s.onEval != nil {
		s.onEval(len(s.res.Trace), p, Point{X: s.res.Best, Value: s.res.Value})
	}
	return nil
}

// standardise rescales y in place to mean 0 and standard deviation 1 (only
// centred when the values are all equal).
func standardise(y []float64) {
	var m, s float64
	for _, v := range y {
		m += v
	}
	m /= float64(len(y))
	for _, v := range y {
		s += (v - m) * (v - m)
	}
	s = math.Sqrt(s / float64(len(y)))
	if s == 0 {
		s = 1
	}
	for i := range y {
		y[i] = (y[i] - m) / s
	}
}

// ExpectedImprovement is E[max(0, f − best − xi)] for f ~ N(mean, variance):
// (μ − best − ξ)·Φ(z) + σ·φ(z) with z = (μ − best − ξ)/σ, and
// max(0, μ − best − ξ) when σ is 0.
func ExpectedImprovement(mean, variance, best, xi float64) float64 {
	imp := mean - best - xi
	sd := math.Sqrt(math.Max(variance, 0))
	if sd < 1e-12 {
		return math.Max(imp, 0)
	}
	z := imp / sd
	n := distuv.UnitNormal
	return imp*n.CDF(z) + sd*n.Prob(z)
}

// nextPoint maximises expected improvement over the unit cube: it scores
// uniform candidates and perturbations of the best points seen, refines
// the five best candidates by Nelder–Mead, and falls back to a uniform
// point if the winner repeats an evaluated point.
func nextPoint(r *rand.Rand, g *GP, seen [][]float64, y []float64, best float64, o Options) []float64 {
	d := len(seen[0])
	ei := func(u []float64) float64 {
		c := make([]float64, d)
		for i, v := range u {
			c[i] = clamp(v, 0, 1)
		}
		m, v := g.Predict(c)
		return ExpectedImprovement(m, v, best, o.Xi)
	}
	type cand struct {
		u  []float64
		ei float64
	}
	cands := make([]cand, 0, o.Candidates+100)
	for range o.Candidates {
		u := make([]float64, d)
		for i := range u {
			u[i] = r.Float64()
		}
		cands = append(cands, cand{u, ei(u)})
	}
	// Local candidates around the five best points seen.
	order := make([]int, len(y))
	for i := range order {
		order[i] = i
	}
	for i := range order {
		for j := i + 1; j < len(order); j++ {
			if y[order[j]] > y[order[i]] {
				order[i], order[j] = order[j], order[i]
			}
		}
	}
	for _, k := range order[:min(5, len(order))] {
		for range 20 {
			u := make([]float64, d)
			for i := range u {
				u[i] = clamp(seen[k][i]+0.05*r.NormFloat64(), 0, 1)
			}
			cands = append(cands, cand{u, ei(u)})
		}
	}
	for i := range cands {
		for j := i + 1; j < len(cands); j++ {
			if cands[j].ei > cands[i].ei {
				cands[i], cands[j] = cands[j], cands[i]
			}
		}
		if i == 4 {
			break
		}
	}
	var top cand
	top.ei = math.Inf(-1)
	for _, c := range cands[:min(5, len(cands))] {
		u, v := nelderMead(func(u []float64) float64 { return -ei(u) }, c.u, 0.05, 40*(d+1))
		if top.u == nil || -v > top.ei {
			top = cand{u, -v}
		}
	}
	for i := range top.u {
		top.u[i] = clamp(top.u[i], 0, 1)
	}
	for _, s := range seen {
		var dist float64
		for i := range s {
			dist = math.Max(dist, math.Abs(s[i]-top.u[i]))
		}
		if dist < 1e-6 {
			for i := range top.u {
				top.u[i] = r.Float64()
			}
			break
		}
	}
	return top.u
}

// latinHypercube returns n points of the unit cube with one point in each
// of n equal slices of every axis; of ten random designs it keeps the one
// whose closest pair of points is farthest apart.
func latinHypercube(r *rand.Rand, n, d int) [][]float64 {
	var best [][]float64
	bestSep := -1.0
	for range 10 {
		pts := make([][]float64, n)
		for i := range pts {
			pts[i] = make([]float64, d)
		}
		for j := range d {
			perm := r.Perm(n)
			for i := range pts {
				pts[i][j] = (float64(perm[i]) + r.Float64()) / float64(n)
			}
		}
		sep := math.Inf(1)
		for a := range pts {
			for b := a + 1; b < len(pts); b++ {
				var s float64
				for j := range d {
					s += (pts[a][j] - pts[b][j]) * (pts[a][j] - pts[b][j])
				}
				sep = math.Min(sep, s)
			}
		}
		if sep > bestSep {
			best, bestSep = pts, sep
		}
	}
	return best
}
