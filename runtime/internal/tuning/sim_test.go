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
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/testworld"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// newSim builds a world of cfg with its models, serves it in process and
// measures its first users.
func newSim(tb testing.TB, cfg synth.Config, users int) *Sim {
	tb.Helper()
	w, err := testworld.Build(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(w.Dir) })
	timeout := config.Duration(5 * time.Second)
	c := &config.Config{
		Version: config.SchemaVersion, Pipeline: "test/tuning",
		Deploy: config.Deploy{
			Catalog: "file://" + w.Data,
			Store:   config.Store{Type: "Memory"},
			Models: []config.Model{
				{Name: "two-tower", URI: w.Model("two-tower")},
				{Name: "first-stage", URI: w.Model("first-stage")},
				{Name: "mtml", URI: w.Model("mtml")},
			},
		},
		Live: config.Live{
			Retrieval: config.Retrieval{Candidates: 600, Sources: []config.Source{
				{Name: "for-you", Type: config.SourceTwoTowerANN, Model: "two-tower", Weight: 0.7, Limit: 400, Timeout: timeout},
				{Name: "trending", Type: config.SourcePopular, Weight: 0.3, Limit: 200, Timeout: timeout, Window: config.Duration(24 * time.Hour)},
			}},
			FirstStage:  config.Ranker{Model: "first-stage", Keep: 200},
			SecondStage: config.Ranker{Model: "mtml", Keep: 60},
			Weights:     map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8},
			Rerank:      config.Rerank{Size: 20},
		},
	}
	if err := c.Validate(); err != nil {
		tb.Fatal(err)
	}
	eng, err := engine.Open(context.Background(), c, engine.Options{StateDir: filepath.Join(w.Dir, "state"), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = eng.Close() })
	return NewSim(eng, c, w.Truth, users, 20)
}

// The simulator is what the tuner is judged by: weights that rank by the
// planted preferences' opposite serve less value, and a measured trial's
// mean lies near the exact expectation within its standard error.
func TestSimMeasuresWhatTheWeightsServe(t *testing.T) {
	sim := newSim(t, synth.Config{Users: 150, Items: 800, Events: 8000, Seed: 4}, 150)
	ctx := context.Background()
	good, err := sim.Expected(ctx, map[string]float64{"like": 2, "see_less": -8})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := sim.Expected(ctx, map[string]float64{"like": -50, "see_less": 8})
	if err != nil {
		t.Fatal(err)
	}
	if bad >= good {
		t.Errorf("expected objective %v for like -50 and see_less +8, %v for the defaults: want the defaults higher", bad, good)
	}
	mean, variance, err := sim.Measure(ctx, rand.New(rand.NewPCG(1, 2)), map[string]float64{"like": 2, "see_less": -8})
	if err != nil {
		t.Fatal(err)
	}
	if se := math.Sqrt(variance); variance <= 0 || math.Abs(mean-good) > 4*se {
		t.Errorf("measured %v ± %v, expected %v", mean, se, good)
	}
}

// BenchmarkOnlineTuning is the closed loop of issue 12 without a cluster:
// for each of 10 seeds, Bayesian optimisation (noisy measurements, 20
// trials) and random search (20 trials, best measured promoted) tune like,
// comment and see_less on a synthetic world served in process; each
// promoted point is judged by its exact expected objective, against the
// optimum: the best of a 6×6×6 grid over the box and of every point
// either method promoted.
//
//	go test -run '^$' -bench OnlineTuning -benchtime 1x ./runtime/internal/tuning/
func BenchmarkOnlineTuning(b *testing.B) {
	sim := newSim(b, synth.Config{Users: 300, Items: 2000, Events: 30000, Seed: 3}, 300)
	ctx := context.Background()
	box := Box{Events: []string{"like", "comment", "see_less"}, Lo: []float64{-10, 0, -50}, Hi: []float64{10, 20, 0}}
	oracle := math.Inf(-1)
	const grid = 6
	for i := range grid {
		for j := range grid {
			for k := range grid {
				x := []float64{}
				for d, g := range []int{i, j, k} {
					x = append(x, box.Lo[d]+(box.Hi[d]-box.Lo[d])*float64(g)/(grid-1))
				}
				v, err := sim.Expected(ctx, box.weights(x))
				if err != nil {
					b.Fatal(err)
				}
				oracle = math.Max(oracle, v)
			}
		}
	}
	const seeds, trials = 10, 20
	checkpoints := []int{5, 10, 15, 20}
	// value[method][seed][checkpoint]: the exact objective of the point
	// the method would promote after that many trials.
	value := map[string][][]float64{}
	for iter := 0; iter < b.N; iter++ {
		for _, method := range []string{"bo", "random"} {
			value[method] = nil
			for seed := range uint64(seeds) {
				var s Searcher
				if method == "bo" {
					bo, err := NewBO(box, seed, nil)
					if err != nil {
						b.Fatal(err)
					}
					s = bo
				} else {
					s = NewRandom(box, seed, nil)
				}
				hist, err := Run(ctx, sim, box, s, trials, rand.New(rand.NewPCG(seed, 1)))
				if err != nil {
					b.Fatal(err)
				}
				var vs []float64
				for _, at := range checkpoints {
					v, err := sim.Expected(ctx, box.weights(hist[at-1].Best))
					if err != nil {
						b.Fatal(err)
					}
					vs = append(vs, v)
					// The grid misses the peak: any point found is a
					// lower bound of the optimum too.
					oracle = math.Max(oracle, v)
				}
				value[method] = append(value[method], vs)
			}
		}
	}
	last := len(checkpoints) - 1
	var boWins, boAt95 int
	for seed := range seeds {
		bo, rs := value["bo"][seed][last], value["random"][seed][last]
		if bo > rs {
			boWins++
		}
		if bo >= 0.95*oracle {
			boAt95++
		}
	}
	for c, at := range checkpoints {
		var bo, rs float64
		for seed := range seeds {
			bo += value["bo"][seed][c] / oracle / seeds
			rs += value["random"][seed][c] / oracle / seeds
		}
		b.Logf("after %2d trials: bo %.3f, random %.3f of the optimum %.4f (mean over %d seeds)", at, bo, rs, oracle, seeds)
		if c == last {
			b.ReportMetric(bo, "bo_of_optimum")
			b.ReportMetric(rs, "random_of_optimum")
		}
	}
	for seed := range seeds {
		b.Logf("seed %d: bo %.3f, random %.3f of the optimum", seed, value["bo"][seed][last]/oracle, value["random"][seed][last]/oracle)
	}
	b.ReportMetric(oracle, "optimum_objective")
	b.ReportMetric(float64(boWins), "bo_beats_random_seeds")
	b.ReportMetric(float64(boAt95), "bo_at_95pct_seeds")
}
