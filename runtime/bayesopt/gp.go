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

package bayesopt

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Kernel is the covariance function of a GP.
type Kernel int

const (
	// Matern52 is the Matérn kernel with ν = 5/2:
	// σf²·(1 + √5·r + 5r²/3)·exp(−√5·r), r the length-scaled distance.
	Matern52 Kernel = iota
	// RBF is the squared-exponential kernel σf²·exp(−r²/2).
	RBF
)

func (k Kernel) String() string {
	switch k {
	case Matern52:
		return "matern52"
	case RBF:
		return "rbf"
	}
	return fmt.Sprintf("Kernel(%d)", int(k))
}

// Hyper are a GP's hyperparameters.
type Hyper struct {
	// LengthScales has one positive length scale per input dimension.
	LengthScales []float64
	// SignalVar is the prior variance σf² of the latent function.
	SignalVar float64
	// NoiseVar is the variance σn² of the observation noise.
	NoiseVar float64
}

// cov returns the kernel between a and b.
func (h Hyper) cov(k Kernel, a, b []float64) float64 {
	var r2 float64
	for i, l := range h.LengthScales {
		d := (a[i] - b[i]) / l
		r2 += d * d
	}
	switch k {
	case RBF:
		return h.SignalVar * math.Exp(-r2/2)
	default:
		s5r := math.Sqrt(5 * r2)
		return h.SignalVar * (1 + s5r + 5*r2/3) * math.Exp(-s5r)
	}
}

// jitter is added to the diagonal of the covariance so that its Cholesky
// factorisation succeeds when points nearly coincide.
const jitter = 1e-10

// GP is a Gaussian-process regression model with a zero prior mean,
// conditioned on observations. It is read-only after construction.
type GP struct {
	kernel Kernel
	hyp    Hyper
	x      [][]float64
	// l is the lower Cholesky factor of K + (σn² + jitter)·I, row-major n×n.
	l     []float64
	alpha []float64 // (K + σn²I)⁻¹ y
	logML float64
}

// NewGP conditions a GP with the given kernel and hyperparameters on the
// observations y at x (each of len(h.LengthScales) values). x is retained.
func NewGP(k Kernel, h Hyper, x [][]float64, y []float64) (*GP, error) {
	return newGP(k, h, x, y, nil)
}

// newGP is NewGP with, when noise is not nil, a known variance of each
// observation's noise added to h.NoiseVar on its own diagonal entry.
func newGP(k Kernel, h Hyper, x [][]float64, y, noise []float64) (*GP, error) {
	n := len(x)
	if n == 0 || len(y) != n || (noise != nil && len(noise) != n) {
		return nil, fmt.Errorf("gp: %d points, %d values and %d noise variances", n, len(y), len(noise))
	}
	for _, p := range x {
		if len(p) != len(h.LengthScales) {
			return nil, fmt.Errorf("gp: a point has %d coordinates, the length scales %d", len(p), len(h.LengthScales))
		}
	}
	sym := mat.NewSymDense(n, nil)
	for i := range n {
		for j := 0; j <= i; j++ {
			v := h.cov(k, x[i], x[j])
			if i == j {
				v += h.NoiseVar + jitter
				if noise != nil {
					v += noise[i]
				}
			}
			sym.SetSym(i, j, v)
		}
	}
	var ch mat.Cholesky
	// Near-duplicate points can leave the matrix numerically singular;
	// growing the jitter is the usual remedy.
	extra := 0.0
	for try := 0; ; try++ {
		if ch.Factorize(sym) {
			break
		}
		if try == 6 {
			return nil, fmt.Errorf("gp: covariance is not positive definite")
		}
		add := math.Max(1e-8, extra*10) - extra
		for i := range n {
			sym.SetSym(i, i, sym.At(i, i)+add)
		}
		extra += add
	}
	var tri mat.TriDense
	ch.LTo(&tri)
	g := &GP{kernel: k, hyp: h, x: x, l: make([]float64, n*n), alpha: make([]float64, n)}
	for i := range n {
		for j := 0; j <= i; j++ {
			g.l[i*n+j] = tri.At(i, j)
		}
	}
	// α = L⁻ᵀ L⁻¹ y.
	z := g.forward(y)
	for i := n - 1; i >= 0; i-- {
		s := z[i]
		for j := i + 1; j < n; j++ {
			s -= g.l[j*n+i] * g.alpha[j]
		}
		g.alpha[i] = s / g.l[i*n+i]
	}
	g.logML = -float64(n) / 2 * math.Log(2*math.Pi)
	for i := range n {
		g.logML -= y[i]*g.alpha[i]/2 + math.Log(g.l[i*n+i])
	}
	return g, nil
}

// forward solves L z = b.
func (g *GP) forward(b []float64) []float64 {
	n := len(g.x)
	z := make([]float64, n)
	for i := range n {
		s := b[i]
		row := g.l[i*n : i*n+i]
		for j, v := range row {
			s -= v * z[j]
		}
		z[i] = s / g.l[i*n+i]
	}
	return z
}

// Hyper returns the hyperparameters.
func (g *GP) Hyper() Hyper { return g.hyp }

// LogMarginalLikelihood returns log p(y | x, hyperparameters).
func (g *GP) LogMarginalLikelihood() float64 { return g.logML }

// Predict returns the posterior mean and variance of the latent function
// at x (the variance excludes the observation noise).
func (g *GP) Predict(x []float64) (mean, variance float64) {
	ks := make([]float64, len(g.x))
	for i, p := range g.x {
		ks[i] = g.hyp.cov(g.kernel, x, p)
		mean += ks[i] * g.alpha[i]
	}
	v := g.forward(ks)
	variance = g.hyp.cov(g.kernel, x, x)
	for _, t := range v {
		variance -= t * t
	}
	return mean, math.Max(variance, 0)
}

// Bounds of the hyperparameter search in FitGP, for inputs scaled to the
// unit cube and standardised observations.
const (
	minLength, maxLength = 0.01, 20.0
	minSignal, maxSignal = 0.05, 20.0
	minNoise, maxNoise   = 1e-8, 1.0
)

// FitGP conditions a GP on y at x with the hyperparameters that maximise
// the log marginal likelihood: the best few of a grid over a shared length
// scale and the noise start a Nelder–Mead search over the log of every
// length scale, the signal and the noise variance. It expects inputs scaled
// to about the unit cube and standardised observations.
func FitGP(k Kernel, x [][]float64, y []float64) (*GP, error) {
	return fitGP(k, x, y, nil)
}

// fitGP is FitGP with the known noise variances of newGP.
func fitGP(k Kernel, x [][]float64, y, noise []float64) (*GP, error) {
	if len(x) == 0 {
		return nil, fmt.Errorf("gp: no points")
	}
	d := len(x[0])
	// θ = (log ℓ₁…log ℓd, log σf², log σn²).
	toHyper := func(th []float64) Hyper {
		h := Hyper{LengthScales: make([]float64, d)}
		for i := range d {
			h.LengthScales[i] = math.Exp(clamp(th[i], math.Log(minLength), math.Log(maxLength)))
		}
		h.SignalVar = math.Exp(clamp(th[d], math.Log(minSignal), math.Log(maxSignal)))
		h.NoiseVar = math.Exp(clamp(th[d+1], math.Log(minNoise), math.Log(maxNoise)))
		return h
	}
	negLML := func(th []float64) float64 {
		g, err := newGP(k, toHyper(th), x, y, noise)
		if err != nil || math.IsNaN(g.logML) {
			return math.Inf(1)
		}
		return -g.logML
	}
	type start struct {
		th []float64
		v  float64
	}
	var starts []start
	for _, l := range []float64{0.05, 0.1, 0.2, 0.4, 0.8, 1.6} {
		for _, nv := range []float64{1e-6, 1e-3, 1e-2, 0.1} {
			th := make([]float64, d+2)
			for i := range d {
				th[i] = math.Log(l)
			}
			th[d+1] = math.Log(nv)
			starts = append(starts, start{th, negLML(th)})
		}
	}
	// Stable selection of the three best starts keeps the fit deterministic.
	for i := range starts {
		for j := i + 1; j < len(starts); j++ {
			if starts[j].v < starts[i].v {
				starts[i], starts[j] = starts[j], starts[i]
			}
		}
	}
	best := starts[0]
	for _, s := range starts[:3] {
		if math.IsInf(s.v, 1) {
			continue
		}
		th, v := nelderMead(negLML, s.th, 0.5, 60*(d+2))
		if v < best.v {
			best = start{th, v}
		}
	}
	if math.IsInf(best.v, 1) {
		return nil, fmt.Errorf("gp: no hyperparameters give a positive definite covariance")
	}
	return newGP(k, toHyper(best.th), x, y, noise)
}

func clamp(v, lo, hi float64) float64 { return math.Min(math.Max(v, lo), hi) }

// nelderMead minimises f from x0 by gonum's Nelder–Mead, with an initial
// simplex of the given step along each axis and the classic coefficients
// (reflection 1, expansion 2, contraction and shrink ½). It stops after
// maxEvals evaluations or on gonum's default convergence (the best value
// has not improved by 1e-10 in 100 iterations). It returns the best point
// and its value; x0 and +Inf when f is not finite at x0.
func nelderMead(f func([]float64) float64, x0 []float64, step float64, maxEvals int) ([]float64, float64) {
	method := &optimize.NelderMead{Reflection: 1, Expansion: 2, Contraction: 0.5, Shrink: 0.5, SimplexSize: step}
	res, err := optimize.Minimize(optimize.Problem{Func: f}, x0, &optimize.Settings{FuncEvaluations: maxEvals}, method)
	if err != nil {
		return slices.Clone(x0), math.Inf(1)
	}
	return res.X, res.F
}
