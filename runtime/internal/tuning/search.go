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

package tuning

import (
	"context"
	"math/rand/v2"

	"github.com/recpipeline/recpipeline/runtime/bayesopt"
)

// Trial is one measured point of a search.
type Trial struct {
	X              []float64
	Mean, Variance float64
	// Best is the point the search would promote after this trial.
	Best []float64
}

// Searcher proposes the next trial and, after each, the point it would
// promote.
type Searcher interface {
	Suggest() ([]float64, error)
	Observe(x []float64, mean, variance float64) error
	Best() ([]float64, error)
}

// Run measures trials points chosen by s on sim.
func Run(ctx context.Context, sim *Sim, box Box, s Searcher, trials int, r *rand.Rand) ([]Trial, error) {
	out := make([]Trial, 0, trials)
	for range trials {
		x, err := s.Suggest()
		if err != nil {
			return out, err
		}
		mean, variance, err := sim.Measure(ctx, r, box.weights(x))
		if err != nil {
			return out, err
		}
		if err := s.Observe(x, mean, variance); err != nil {
			return out, err
		}
		best, err := s.Best()
		if err != nil {
			return out, err
		}
		out = append(out, Trial{X: x, Mean: mean, Variance: variance, Best: best})
	}
	return out, nil
}

// BO is Bayesian optimisation with noisy measurements (bayesopt).
type BO struct{ *bayesopt.Optimizer }

// NewBO starts a Bayesian optimisation over box.
func NewBO(box Box, seed uint64, start []float64) (*BO, error) {
	bounds := make([]bayesopt.Bounds, len(box.Events))
	for i, e := range box.Events {
		bounds[i] = bayesopt.Bounds{Name: e, Lo: box.Lo[i], Hi: box.Hi[i]}
	}
	opts := bayesopt.Options{Seed: seed, Init: 2 * len(bounds)}
	if start != nil {
		opts.Start = [][]float64{start}
	}
	o, err := bayesopt.NewOptimizer(bounds, opts)
	if err != nil {
		return nil, err
	}
	return &BO{o}, nil
}

// Best implements Searcher: the measured point of highest posterior mean.
func (b *BO) Best() ([]float64, error) {
	p, _, err := b.Optimizer.Best()
	return p.X, err
}

// Random is random search: uniform points, the best measured promoted.
type Random struct {
	box  Box
	r    *rand.Rand
	best []float64
	val  float64
}

// NewRandom starts a random search over box.
func NewRandom(box Box, seed uint64, start []float64) *Random {
	return &Random{box: box, r: rand.New(rand.NewPCG(seed, 17)), best: start}
}

// Suggest implements Searcher.
func (s *Random) Suggest() ([]float64, error) {
	x := make([]float64, len(s.box.Events))
	for i := range x {
		x[i] = s.box.Lo[i] + s.r.Float64()*(s.box.Hi[i]-s.box.Lo[i])
	}
	return x, nil
}

// Observe implements Searcher.
func (s *Random) Observe(x []float64, mean, _ float64) error {
	if s.best == nil || s.val < mean {
		s.best, s.val = x, mean
	}
	return nil
}

// Best implements Searcher.
func (s *Random) Best() ([]float64, error) { return s.best, nil }
