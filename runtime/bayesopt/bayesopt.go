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

// Package bayesopt maximises an objective over a box by Bayesian
// optimisation: a Gaussian-process surrogate of the objective and the
// expected-improvement acquisition, started from a Latin-hypercube design.
// Maximize drives a function it can call (the offline tuner, rectrain
// tune); an Optimizer is asked for one point at a time and told what was
// measured there, with the measurement's noise (an online tuner, which
// serves each point to a share of the users and counts their engagement).
//
// The optimiser is written here rather than imported: the Go Bayesian
// optimisation libraries available through the module proxy are small and
// unmaintained, and the method needs only a Cholesky factorisation, the
// normal distribution and a Nelder–Mead search, all three from gonum.
//
// Everything is deterministic for a seed: the initial Latin-hypercube
// design, the acquisition's candidates and the hyperparameter search draw
// from one seeded generator.
package bayesopt

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

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
	o, err := NewOptimizer(bounds, opts)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for n := range len(o.queue) + o.opts.Iters {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		x, err := o.Suggest()
		if err != nil {
			return res, err
		}
		v, err := f(x)
		if err != nil {
			return res, err
		}
		if err := o.Observe(x, v, 0); err != nil {
			return res, err
		}
		p := Point{X: x, Value: v}
		res.Trace = append(res.Trace, p)
		if n == 0 || v > res.Value {
			res.Best, res.Value = x, v
		}
		if o.opts.OnEval != nil {
			o.opts.OnEval(n+1, p, Point{X: res.Best, Value: res.Value})
		}
	}
	return res, nil
}

// Optimizer proposes points one at a time and learns from what was
// measured at them, each measurement with its own noise: the online loop
// of "serve a point, count, tell". It suggests opts.Start first, then a
// Latin-hypercube design of opts.Init points, then the point of highest
// expected improvement over the incumbent: the best value measured, or,
// once a measurement is noisy, the best posterior mean at a measured point
// (with noisy measurements the best measured value is mostly the luckiest,
// not the best). It is not safe for concurrent use.
type Optimizer struct {
	bounds []Bounds
	opts   Options
	r      *rand.Rand
	queue  [][]float64 // unit points to suggest before the acquisition
	unit   [][]float64 // measured points, scaled to the unit cube
	y      []float64   // measured values
	noise  []float64   // their noise variances
}

// NewOptimizer checks the box and the options (Iters and OnEval serve
// Maximize only) and draws the initial design.
func NewOptimizer(bounds []Bounds, opts Options) (*Optimizer, error) {
	if err := opts.complete(bounds); err != nil {
		return nil, err
	}
	o := &Optimizer{bounds: bounds, opts: opts, r: rand.New(rand.NewPCG(opts.Seed, 0x74756e65))}
	for _, p := range opts.Start {
		u, err := o.toUnit(p)
		if err != nil {
			return nil, err
		}
		o.queue = append(o.queue, u)
	}
	o.queue = append(o.queue, latinHypercube(o.r, opts.Init, len(bounds))...)
	return o, nil
}

// Suggest returns the next point to measure, in the box.
func (o *Optimizer) Suggest() ([]float64, error) {
	var u []float64
	if len(o.queue) > 0 {
		u, o.queue = o.queue[0], o.queue[1:]
	} else {
		g, y, err := o.surrogate()
		if err != nil {
			return nil, err
		}
		u = nextPoint(o.r, g, o.unit, y, o.incumbent(g, y), o.opts)
	}
	return o.fromUnit(u), nil
}

// Skip drops the next n points of the start and the initial design: an
// online loop that restarts from its recorded history observes what was
// measured and skips as many suggestions as it made, so that it does not
// suggest them again.
func (o *Optimizer) Skip(n int) {
	o.queue = o.queue[min(max(n, 0), len(o.queue)):]
}

// Observe records that value was measured at x (a point of the box) with
// noise variance noiseVar (0 for an exact value).
func (o *Optimizer) Observe(x []float64, value, noiseVar float64) error {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return fmt.Errorf("bayesopt: objective is %v at %v", value, x)
	}
	if math.IsNaN(noiseVar) || math.IsInf(noiseVar, 0) || noiseVar < 0 {
		return fmt.Errorf("bayesopt: noise variance is %v at %v, want a finite value of at least 0", noiseVar, x)
	}
	u, err := o.toUnit(x)
	if err != nil {
		return err
	}
	o.unit, o.y, o.noise = append(o.unit, u), append(o.y, value), append(o.noise, noiseVar)
	return nil
}

// Best returns the measured point the optimiser rates highest and the
// value measured there: with exact measurements the highest measured, with
// noisy ones the highest posterior mean. ok is false before the first
// measurement.
func (o *Optimizer) Best() (p Point, ok bool, err error) {
	if len(o.y) == 0 {
		return Point{}, false, nil
	}
	k := 0
	if o.noisy() {
		g, _, err := o.surrogate()
		if err != nil {
			return Point{}, false, err
		}
		best := math.Inf(-1)
		for i, u := range o.unit {
			if m, _ := g.Predict(u); m > best {
				k, best = i, m
			}
		}
	} else {
		for i, v := range o.y {
			if v > o.y[k] {
				k = i
			}
		}
	}
	return Point{X: o.fromUnit(o.unit[k]), Value: o.y[k]}, true, nil
}

// noisy reports whether any measurement had noise.
func (o *Optimizer) noisy() bool {
	return slices.ContainsFunc(o.noise, func(v float64) bool { return v > 0 })
}

// surrogate fits the GP to the measurements, standardised; the noise
// variances are scaled alike.
func (o *Optimizer) surrogate() (*GP, []float64, error) {
	if len(o.y) == 0 {
		return nil, nil, fmt.Errorf("bayesopt: nothing measured yet")
	}
	y := slices.Clone(o.y)
	scale := standardise(y)
	var noise []float64
	if o.noisy() {
		noise = make([]float64, len(o.noise))
		for i, v := range o.noise {
			noise[i] = v / (scale * scale)
		}
	}
	g, err := fitGP(o.opts.Kernel, o.unit, y, noise)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to fit the surrogate: %w", err)
	}
	return g, y, nil
}

// incumbent is the standardised value expected improvement is measured
// from (see Optimizer).
func (o *Optimizer) incumbent(g *GP, y []float64) float64 {
	best, noisy := math.Inf(-1), o.noisy()
	for i, v := range y {
		if noisy {
			v, _ = g.Predict(o.unit[i])
		}
		best = math.Max(best, v)
	}
	return best
}

// toUnit scales a point of the box to the unit cube, refusing one outside
// the box.
func (o *Optimizer) toUnit(p []float64) ([]float64, error) {
	if len(p) != len(o.bounds) {
		return nil, fmt.Errorf("bayesopt: a point has %d coordinates, want %d", len(p), len(o.bounds))
	}
	u := make([]float64, len(p))
	for i, b := range o.bounds {
		if p[i] < b.Lo || p[i] > b.Hi {
			return nil, fmt.Errorf("bayesopt: point %v is outside the bounds of %q", p, b.Name)
		}
		u[i] = (p[i] - b.Lo) / (b.Hi - b.Lo)
	}
	return u, nil
}

// fromUnit is the point of the box that u, in the unit cube, stands for.
func (o *Optimizer) fromUnit(u []float64) []float64 {
	x := make([]float64, len(o.bounds))
	for i, b := range o.bounds {
		x[i] = b.Lo + clamp(u[i], 0, 1)*(b.Hi-b.Lo)
	}
	return x
}

// complete checks the bounds and the options and fills the options'
// defaults.
func (o *Options) complete(bounds []Bounds) error {
	d := len(bounds)
	if d == 0 {
		return fmt.Errorf("bayesopt: no bounds")
	}
	for _, b := range bounds {
		if !(b.Lo < b.Hi) || math.IsInf(b.Lo, 0) || math.IsInf(b.Hi, 0) {
			return fmt.Errorf("bayesopt: bounds of %q are [%v, %v], want finite lo < hi", b.Name, b.Lo, b.Hi)
		}
	}
	if o.Init <= 0 {
		o.Init = max(5, 2*d)
	}
	if o.Iters < 0 {
		return fmt.Errorf("bayesopt: %d iterations", o.Iters)
	}
	if o.Iters == 0 {
		o.Iters = 30
	}
	if o.Candidates <= 0 {
		o.Candidates = 2000
	}
	if o.Xi < 0 || math.IsNaN(o.Xi) {
		return fmt.Errorf("bayesopt: xi is %v, want at least 0", o.Xi)
	}
	return nil
}

// standardise rescales y in place to mean 0 and standard deviation 1 (only
// centred when the values are all equal) and returns the scale it divided
// by.
func standardise(y []float64) float64 {
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
	return s
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
