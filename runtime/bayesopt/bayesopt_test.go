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
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestGPPosteriorMatchesHandComputation(t *testing.T) {
	// Two points x = 0, 1 with y = 1, −1 under an RBF kernel (ℓ = 1,
	// σf² = 1). With a = k(0, 1) = e^−½ and noise σn²:
	//   α = (K + σn²I)⁻¹ y = [1, −1] / (1 + σn² − a),
	//   mean(x*) = (k(x*, 0) − k(x*, 1)) / (1 + σn² − a),
	//   var(x*) = 1 − k*ᵀ (K + σn²I)⁻¹ k*.
	a := math.Exp(-0.5)
	x := [][]float64{{0}, {1}}
	y := []float64{1, -1}
	cases := map[string]struct {
		noise, at, mean, variance float64
	}{
		"midpoint is the mean of the two, with little variance left": {
			noise: 0, at: 0.5, mean: 0,
			// k* = [b, b] with b² = e^−¼: var = 1 − 2e^−¼/(1 + a).
			variance: 1 - 2*math.Exp(-0.25)/(1+a),
		},
		"extrapolation reverts towards the prior": {
			noise: 0, at: 2, mean: (math.Exp(-2) - a) / (1 - a),
			// k* = [e^−2, a]; K⁻¹ = [[1, −a], [−a, 1]] / (1 − a²).
			variance: 1 - (math.Exp(-4)-2*a*math.Exp(-2)*a+a*a)/(1-a*a),
		},
		"noise shrinks the mean at a data point": {
			noise: 0.1, at: 0, mean: (1 - a) / (1.1 - a),
			// k* = [1, a]; (K + 0.1I)⁻¹ = [[1.1, −a], [−a, 1.1]] / (1.21 − a²).
			variance: 1 - (1.1-2*a*a+1.1*a*a)/(1.21-a*a),
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g, err := NewGP(RBF, Hyper{LengthScales: []float64{1}, SignalVar: 1, NoiseVar: tc.noise}, x, y)
			if err != nil {
				t.Fatal(err)
			}
			m, v := g.Predict([]float64{tc.at})
			if !near(m, tc.mean, 1e-8) || !near(v, tc.variance, 1e-8) {
				t.Errorf("posterior at %v = (%.10f, %.10f), want (%.10f, %.10f)", tc.at, m, v, tc.mean, tc.variance)
			}
		})
	}
}

func TestGPLogMarginalLikelihood(t *testing.T) {
	// One point, y = 2, prior variance 1 + σn² = 1.5:
	// log p = −½·4/1.5 − ½·log 1.5 − ½·log 2π.
	g, err := NewGP(Matern52, Hyper{LengthScales: []float64{1}, SignalVar: 1, NoiseVar: 0.5}, [][]float64{{0.3}}, []float64{2})
	if err != nil {
		t.Fatal(err)
	}
	want := -2/1.5 - 0.5*math.Log(1.5) - 0.5*math.Log(2*math.Pi)
	if got := g.LogMarginalLikelihood(); !near(got, want, 1e-9) {
		t.Errorf("log marginal likelihood %v, want %v", got, want)
	}
}

func TestMatern52Kernel(t *testing.T) {
	// r = |0 − 1|/0.5 = 2: k = 2·(1 + 2√5 + 20/3)·e^−2√5.
	h := Hyper{LengthScales: []float64{0.5}, SignalVar: 2}
	want := 2 * (1 + 2*math.Sqrt(5) + 20.0/3) * math.Exp(-2*math.Sqrt(5))
	if got := h.cov(Matern52, []float64{0}, []float64{1}); !near(got, want, 1e-12) {
		t.Errorf("k = %v, want %v", got, want)
	}
	// Without noise the posterior interpolates the data.
	x := [][]float64{{0.1, 0.2}, {0.7, 0.4}, {0.3, 0.9}}
	y := []float64{0.5, -1, 2}
	g, err := NewGP(Matern52, Hyper{LengthScales: []float64{0.3, 0.6}, SignalVar: 1.5}, x, y)
	if err != nil {
		t.Fatal(err)
	}
	for i := range x {
		if m, v := g.Predict(x[i]); !near(m, y[i], 1e-6) || v > 1e-6 {
			t.Errorf("posterior at data point %v = (%v, %v), want (%v, 0)", x[i], m, v, y[i])
		}
	}
}

func TestFitGPPrefersTheRightLengthScale(t *testing.T) {
	// A slowly varying function in x₀ that ignores x₁: the fitted length
	// scale of x₀ is long, that of the irrelevant x₁ longer still, and the
	// fit predicts a held-out point well.
	r := rand.New(rand.NewPCG(1, 2))
	var x [][]float64
	var y []float64
	for range 25 {
		p := []float64{r.Float64(), r.Float64()}
		x = append(x, p)
		y = append(y, math.Sin(3*p[0]))
	}
	standardise(y)
	g, err := FitGP(Matern52, x, y)
	if err != nil {
		t.Fatal(err)
	}
	h := g.Hyper()
	if h.LengthScales[1] <= h.LengthScales[0] {
		t.Errorf("length scales %v: the irrelevant input is not the longer", h.LengthScales)
	}
	if h.NoiseVar > 1e-2 {
		t.Errorf("noise %v fitted to noiseless data", h.NoiseVar)
	}
}

func TestExpectedImprovement(t *testing.T) {
	cases := map[string]struct {
		mean, variance, best, xi, want float64
	}{
		// z = 0.25: 0.5·Φ(0.25) + 2·φ(0.25), Φ(0.25) = 0.5987063257,
		// φ(0.25) = 0.3866681168.
		"closed form above the best": {1, 4, 0.5, 0, 0.5*0.5987063257 + 2*0.3866681168},
		// z = −1: −1·Φ(−1) + 1·φ(−1), Φ(−1) = 0.1586552539, φ(−1) = 0.2419707245.
		"closed form below the best": {0, 1, 0.9, 0.1, -0.1586552539 + 0.2419707245},
		"no variance, improvement":   {2, 0, 1, 0.5, 0.5},
		"no variance, no gain":       {0, 0, 1, 0, 0},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := ExpectedImprovement(tc.mean, tc.variance, tc.best, tc.xi); !near(got, tc.want, 1e-9) {
				t.Errorf("EI = %.10f, want %.10f", got, tc.want)
			}
		})
	}
}

// branin is the Branin–Hoo function; its minimum 0.397887 is reached at
// (−π, 12.275), (π, 2.275) and (9.42478, 2.475).
func branin(x []float64) float64 {
	a, b, c := 1.0, 5.1/(4*math.Pi*math.Pi), 5/math.Pi
	r, s, tt := 6.0, 10.0, 1/(8*math.Pi)
	q := x[1] - b*x[0]*x[0] + c*x[0] - r
	return a*q*q + s*(1-tt)*math.Cos(x[0]) + s
}

const braninMin = 0.397887

var braninBox = []Bounds{{"x1", -5, 10}, {"x2", 0, 15}}

// randomSearch returns the best of n uniform draws in the box.
func randomSearch(f func([]float64) float64, box []Bounds, n int, seed uint64) float64 {
	r := rand.New(rand.NewPCG(seed, 99))
	best := math.Inf(-1)
	for range n {
		x := make([]float64, len(box))
		for i, b := range box {
			x[i] = b.Lo + r.Float64()*(b.Hi-b.Lo)
		}
		best = math.Max(best, f(x))
	}
	return best
}

func TestMaximizeFindsKnownOptima(t *testing.T) {
	cases := map[string]struct {
		f        func([]float64) float64
		box      []Bounds
		opts     Options
		optimum  float64
		tol      float64 // on the value
		argmax   []float64
		argTol   float64
		beatsRnd bool
	}{
		"1-D quadratic": {
			f:    func(x []float64) float64 { return -(x[0] - 0.3) * (x[0] - 0.3) },
			box:  []Bounds{{"x", -2, 3}},
			opts: Options{Init: 4, Iters: 8, Seed: 1}, optimum: 0, tol: 1e-4,
			argmax: []float64{0.3}, argTol: 0.01,
		},
		"2-D Branin within 1%": {
			f:    func(x []float64) float64 { return -branin(x) },
			box:  braninBox,
			opts: Options{Init: 6, Iters: 30, Seed: 1}, optimum: -braninMin, tol: 0.01 * braninMin,
			beatsRnd: true,
		},
		"optimum in a corner of a bounded box": {
			f:    func(x []float64) float64 { return x[0] - 2*x[1] + 0.5*x[2] },
			box:  []Bounds{{"a", -1, 2}, {"b", 0.5, 4}, {"c", -3, -1}},
			opts: Options{Init: 6, Iters: 14, Seed: 3}, optimum: 2 - 1 - 0.5, tol: 0.05,
			argmax: []float64{2, 0.5, -1}, argTol: 0.05,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			evals := 0
			res, err := Maximize(context.Background(), func(x []float64) (float64, error) {
				evals++
				for i, b := range tc.box {
					if x[i] < b.Lo || x[i] > b.Hi {
						t.Fatalf("evaluated %v outside the box %v", x, tc.box)
					}
				}
				return tc.f(x), nil
			}, tc.box, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.opts.Init + tc.opts.Iters; evals != want || len(res.Trace) != want {
				t.Errorf("%d evaluations and %d trace points, want %d", evals, len(res.Trace), want)
			}
			if !near(res.Value, tc.optimum, tc.tol) {
				t.Errorf("best value %v at %v, want %v ± %v", res.Value, res.Best, tc.optimum, tc.tol)
			}
			for i, v := range tc.argmax {
				if !near(res.Best[i], v, tc.argTol) {
					t.Errorf("best point %v, want %v ± %v", res.Best, tc.argmax, tc.argTol)
				}
			}
			if tc.beatsRnd {
				var rnd []float64
				for s := range 21 {
					rnd = append(rnd, randomSearch(tc.f, tc.box, evals, uint64(s)))
				}
				slices.Sort(rnd)
				if med := rnd[len(rnd)/2]; res.Value <= med {
					t.Errorf("best value %v is no better than random search's median %v with %d evaluations", res.Value, med, evals)
				}
			}
		})
	}
}

func TestMaximizeIsDeterministicForASeed(t *testing.T) {
	f := func(x []float64) (float64, error) { return -branin(x), nil }
	run := func(seed uint64) Result {
		res, err := Maximize(context.Background(), f, braninBox, Options{Init: 5, Iters: 6, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b, c := run(7), run(7), run(8)
	eq := func(x, y Result) bool {
		return slices.EqualFunc(x.Trace, y.Trace, func(p, q Point) bool { return p.Value == q.Value && slices.Equal(p.X, q.X) })
	}
	if !eq(a, b) {
		t.Errorf("two runs with seed 7 differ")
	}
	if eq(a, c) {
		t.Errorf("seeds 7 and 8 gave the same trace")
	}
}

func TestMaximizeStartPointsAndErrors(t *testing.T) {
	box := []Bounds{{"w", 0, 10}}
	res, err := Maximize(context.Background(), func(x []float64) (float64, error) { return -math.Abs(x[0] - 4), nil },
		box, Options{Init: 3, Iters: 2, Start: [][]float64{{4}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Trace[0].X[0] != 4 || res.Value != 0 {
		t.Errorf("start point not evaluated first or not kept as best: trace %v, best %v", res.Trace[0], res.Value)
	}
	if _, err := Maximize(context.Background(), nil, box, Options{Start: [][]float64{{11}}}); err == nil {
		t.Errorf("a start point outside the box was accepted")
	}
	if _, err := Maximize(context.Background(), nil, []Bounds{{"w", 1, 1}}, Options{}); err == nil {
		t.Errorf("an empty box was accepted")
	}
	boom := errors.New("boom")
	if _, err := Maximize(context.Background(), func([]float64) (float64, error) { return 0, boom }, box, Options{}); !errors.Is(err, boom) {
		t.Errorf("error %v, want the objective's", err)
	}
	if _, err := Maximize(context.Background(), func([]float64) (float64, error) { return math.NaN(), nil }, box, Options{}); err == nil {
		t.Errorf("a NaN objective was accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = Maximize(ctx, func([]float64) (float64, error) {
		n++
		if n == 3 {
			cancel()
		}
		return 0, nil
	}, box, Options{Init: 5, Iters: 5})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("after cancel: error %v after %d evaluations, want context.Canceled after 3", err, n)
	}
}

// A noisy objective, measured as an online trial is: the optimiser's best
// point (by posterior mean) lands near the true optimum in most seeds, and
// is truly better than the best-measured point of a random search with as
// many measurements in most seeds.
func TestOptimizerFindsTheOptimumOfANoisyObjective(t *testing.T) {
	truth := func(x []float64) float64 { return 1 - (x[0]-0.3)*(x[0]-0.3) - (x[1]+0.2)*(x[1]+0.2) }
	box := []Bounds{{Name: "a", Lo: -1, Hi: 1}, {Name: "b", Lo: -1, Hi: 1}}
	const sd, trials, seeds = 0.05, 20, 10
	near, beats := 0, 0
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 99))
		o, err := NewOptimizer(box, Options{Seed: seed, Init: 6})
		if err != nil {
			t.Fatal(err)
		}
		for range trials {
			x, err := o.Suggest()
			if err != nil {
				t.Fatal(err)
			}
			if x[0] < -1 || x[0] > 1 || x[1] < -1 || x[1] > 1 {
				t.Fatalf("suggested %v outside the box", x)
			}
			if err := o.Observe(x, truth(x)+sd*r.NormFloat64(), sd*sd); err != nil {
				t.Fatal(err)
			}
		}
		best, ok, err := o.Best()
		if err != nil || !ok {
			t.Fatalf("Best: %v %v", ok, err)
		}
		if math.Hypot(best.X[0]-0.3, best.X[1]+0.2) < 0.2 {
			near++
		}
		// Random search, judged by its best measured value.
		var rx []float64
		rv := math.Inf(-1)
		for range trials {
			x := []float64{2*r.Float64() - 1, 2*r.Float64() - 1}
			if v := truth(x) + sd*r.NormFloat64(); v > rv {
				rx, rv = x, v
			}
		}
		if truth(best.X) > truth(rx) {
			beats++
		}
	}
	t.Logf("near the optimum in %d of %d seeds, truly better than random search in %d", near, seeds, beats)
	if near < 8 || beats < 8 {
		t.Errorf("the best point was within 0.2 of the optimum in %d of %d seeds and truly beat random search in %d; want at least 8 each", near, seeds, beats)
	}
}

func TestOptimizerRefusesBadMeasurements(t *testing.T) {
	o, err := NewOptimizer([]Bounds{{Name: "a", Lo: 0, Hi: 1}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		x            []float64
		value, noise float64
		want         string
	}{
		"NaN value":       {[]float64{0.5}, math.NaN(), 0, "objective is NaN"},
		"negative noise":  {[]float64{0.5}, 1, -1, "noise variance is -1"},
		"outside the box": {[]float64{2}, 1, 0, "outside the bounds"},
		"wrong dimension": {[]float64{0.5, 0.5}, 1, 0, "has 2 coordinates"},
		"infinite noise":  {[]float64{0.5}, 1, math.Inf(1), "noise variance is +Inf"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if err := o.Observe(tc.x, tc.value, tc.noise); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Observe: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, ok, _ := o.Best(); ok {
		t.Error("refused measurements were recorded")
	}
}

// TestARestartedOptimizerGoesOnFromItsHistory: an online loop that keeps
// only its measurements rebuilds the optimiser, observes them and skips the
// suggestions it made; it then suggests the initial design's next point,
// not one it measured already.
func TestARestartedOptimizerGoesOnFromItsHistory(t *testing.T) {
	box := []Bounds{{Name: "a", Lo: 0, Hi: 1}}
	opts := Options{Seed: 7, Init: 4, Start: [][]float64{{0.5}}}
	first, err := NewOptimizer(box, opts)
	if err != nil {
		t.Fatal(err)
	}
	var xs [][]float64
	for range 3 {
		x, err := first.Suggest()
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
		if err := first.Observe(x, -x[0], 0.01); err != nil {
			t.Fatal(err)
		}
	}
	want, err := first.Suggest()
	if err != nil {
		t.Fatal(err)
	}

	again, err := NewOptimizer(box, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if err := again.Observe(x, -x[0], 0.01); err != nil {
			t.Fatal(err)
		}
	}
	again.Skip(len(xs))
	got, err := again.Suggest()
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != want[0] {
		t.Errorf("the restarted optimiser suggests %v, the one that ran on %v", got, want)
	}
	for _, x := range xs {
		if got[0] == x[0] {
			t.Errorf("the restarted optimiser suggests %v, which was measured", got)
		}
	}
}
