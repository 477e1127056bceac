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

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/bayesopt"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/tune"
)

// defaultBounds is the search box of each event weight.
const defaultBounds = "click:0:5,like:0:10,comment:0:20,share:0:20,see_less:-50:0"

// runTune is the tune subcommand: it scores the test split's impressions
// with the MTML artifact, groups them into sessions (a user's impressions of
// one UTC day), tunes the weights on the earlier sessions and reports the
// default and tuned weights' objective on the later ones.
func runTune(args []string, w io.Writer) error {
	f, err := parseTuneFlags(args, w)
	if err != nil {
		return err
	}
	began := time.Now()
	table, err := loadTuneTable(f)
	if err != nil {
		return err
	}
	p, err := newTuneProblem(f, table)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "loaded %s and %s/mtml in %s: %d test sessions (%d impressions); tuning on the first %d sessions (%d counted), validating on the last %d (%d counted)\n",
		f.data, f.models, time.Since(began).Round(time.Millisecond), table.Sessions(), table.Rows(),
		p.tuningSessions, p.tuning.Counted(), p.validationSessions, p.validation.Counted())
	fmt.Fprintf(w, "objective: Σ (%s) over the top %d impressions of each session by Σ w·P, per impression counted\n", formatWeights(p.heads, f.outcome, ", "), f.k)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := bayesopt.Maximize(ctx, func(x []float64) (float64, error) { return p.tuning.Value(p.weights(x)), nil }, f.box, p.options(f, w))
	if err != nil {
		return err
	}
	p.report(w, f.k, p.weights(res.Best), len(res.Trace), time.Since(began))
	return nil
}

// tuneFlags are the tune subcommand's flags, parsed.
type tuneFlags struct {
	lo            rectrain.LoadOptions
	opts          bayesopt.Options
	data, models  string
	outcome, base map[string]float64
	k             int
	box           []bayesopt.Bounds
	tuneFrac      float64
}

func parseTuneFlags(args []string, w io.Writer) (*tuneFlags, error) {
	var f tuneFlags
	fl := flag.NewFlagSet("rectrain tune", flag.ContinueOnError)
	fl.SetOutput(w)
	fl.StringVar(&f.data, "data", "", "dataset directory (required)")
	fl.StringVar(&f.models, "models", "", "directory of rectrain's artifacts; the MTML is read from DIR/mtml (required)")
	objective := fl.String("objective", tune.DefaultObjective, "value of each logged event among the top K of a session")
	fl.IntVar(&f.k, "k", tune.DefaultK, "impressions per session the objective counts")
	bounds := fl.String("bounds", defaultBounds, "search box of each weight, event:lo:hi; events left out keep their -baseline weight")
	baseline := fl.String("baseline", "click:1,like:2,comment:4,share:4,see_less:-8", "weights to compare with (rectrain's defaults)")
	fl.Float64Var(&f.tuneFrac, "tune-frac", 0.5, "fraction of the test sessions, the earliest, to tune on; the rest validate")
	fl.IntVar(&f.opts.Iters, "iters", 40, "evaluations chosen by expected improvement")
	fl.IntVar(&f.opts.Init, "init", 0, "size of the initial Latin-hypercube design (0: max(5, 2×weights))")
	fl.Uint64Var(&f.opts.Seed, "seed", 1, "seed of the design and the acquisition")
	fl.Float64Var(&f.lo.TestFrac, "test-frac", 0.1, "fraction of the log's time span held out (as in training)")
	fl.BoolVar(&f.lo.Strict, "strict", false, "fail on the first bad row instead of skipping it")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if f.data == "" || f.models == "" || fl.NArg() > 0 {
		fl.Usage()
		return nil, fmt.Errorf("tune: -data and -models are required and no arguments are accepted")
	}
	if !(f.tuneFrac > 0 && f.tuneFrac < 1) {
		return nil, fmt.Errorf("tune: -tune-frac %v outside (0, 1)", f.tuneFrac)
	}
	var err error
	if f.outcome, err = tune.ParseWeights(*objective); err != nil {
		return nil, fmt.Errorf("failed to parse -objective: %w", err)
	}
	if f.base, err = tune.ParseWeights(*baseline); err != nil {
		return nil, fmt.Errorf("failed to parse -baseline: %w", err)
	}
	if f.box, err = parseBounds(*bounds); err != nil {
		return nil, fmt.Errorf("failed to parse -bounds: %w", err)
	}
	return &f, nil
}

// loadTuneTable loads the MTML (and the two-tower model when the MTML
// reads its score) and the data, and scores the test impressions.
func loadTuneTable(f *tuneFlags) (*tune.Table, error) {
	art, err := model.LoadDir(filepath.Join(f.models, "mtml"))
	if err != nil {
		return nil, fmt.Errorf("failed to load the MTML: %w", err)
	}
	d, err := rectrain.LoadDir(f.data, f.lo)
	if err != nil {
		return nil, err
	}
	var retrieval *model.Artifact
	if _, _, ok := art.Manifest.Networks[model.NetBottom].Input.Block(rectrain.FeatTwoTowerScore); ok {
		if retrieval, err = model.LoadDir(filepath.Join(f.models, "two-tower")); err != nil {
			return nil, fmt.Errorf("failed to load the two-tower model the MTML reads: %w", err)
		}
	}
	table, err := tune.Logged(d, art, retrieval)
	if err != nil {
		return nil, fmt.Errorf("failed to score the test impressions: %w", err)
	}
	return table, nil
}

// tuneProblem is what the search runs on: the baseline weights in head
// order, the head of each searched dimension, and the objective on the
// tuning sessions, the validation sessions and both.
type tuneProblem struct {
	heads                              []string
	baseVec                            []float64
	dims                               []int
	tuning, validation, all            *tune.Evaluator
	tuningSessions, validationSessions int
}

func newTuneProblem(f *tuneFlags, table *tune.Table) (*tuneProblem, error) {
	p := &tuneProblem{heads: table.Heads, dims: make([]int, len(f.box))}
	var err error
	if p.baseVec, err = tune.Vector(p.heads, f.base); err != nil {
		return nil, fmt.Errorf("-baseline: %w", err)
	}
	for i, b := range f.box {
		if p.dims[i] = slices.Index(p.heads, b.Name); p.dims[i] < 0 {
			return nil, fmt.Errorf("-bounds: unknown event %q (the model's heads are %v)", b.Name, p.heads)
		}
	}
	obj := tune.Objective{Outcome: f.outcome, K: f.k}
	tuning, validation := table.Split(f.tuneFrac)
	p.tuningSessions, p.validationSessions = tuning.Sessions(), validation.Sessions()
	for _, e := range []struct {
		dst **tune.Evaluator
		t   *tune.Table
	}{{&p.tuning, tuning}, {&p.validation, validation}, {&p.all, table}} {
		if *e.dst, err = tune.NewEvaluator(e.t, obj); err != nil {
			return nil, err
		}
	}
	if p.tuning.Counted() == 0 || p.validation.Counted() == 0 {
		return nil, fmt.Errorf("tune: %d tuning and %d validation sessions have more than %d impressions; both need some (lower -k or hold out more with -test-frac)",
			p.tuning.Counted(), p.validation.Counted(), f.k)
	}
	return p, nil
}

// weights returns the weights at a point of the box: the baseline with the
// searched ones replaced.
func (p *tuneProblem) weights(x []float64) []float64 {
	v := slices.Clone(p.baseVec)
	for i, h := range p.dims {
		v[h] = x[i]
	}
	return v
}

// options completes the search's options: the baseline, clamped into the
// box, is evaluated first so that the tuned weights are never worse on the
// tuning sessions, and every evaluation is printed to w.
func (p *tuneProblem) options(f *tuneFlags, w io.Writer) bayesopt.Options {
	opts := f.opts
	start := make([]float64, len(f.box))
	for i, b := range f.box {
		start[i] = min(max(p.baseVec[p.dims[i]], b.Lo), b.Hi)
	}
	opts.Start = [][]float64{start}
	total := 1 + opts.Iters
	if opts.Init > 0 {
		total += opts.Init
	} else {
		total += max(5, 2*len(f.box))
	}
	opts.OnEval = func(n int, pt, best bayesopt.Point) {
		fmt.Fprintf(w, "eval %3d/%d  objective %.5f  best %.5f  %s\n", n, total, pt.Value, best.Value, formatPoint(f.box, pt.X))
	}
	return opts
}

// report prints the default and tuned weights' objective on the tuning
// sessions, the validation sessions and both, and the tuned weights as a
// RecPipeline snippet.
func (p *tuneProblem) report(w io.Writer, k int, best []float64, evals int, elapsed time.Duration) {
	fmt.Fprintf(w, "\nobjective per impression counted (top %d of each session)\n", k)
	fmt.Fprintf(w, "  %-10s %12s %12s %12s\n", "weights", "tuning", "validation", "all")
	for _, row := range []struct {
		name string
		v    []float64
	}{{"default", p.baseVec}, {"tuned", best}} {
		fmt.Fprintf(w, "  %-10s %12.5f %12.5f %12.5f\n", row.name, p.tuning.Value(row.v), p.validation.Value(row.v), p.all.Value(row.v))
	}
	m := map[string]float64{}
	for h, name := range p.heads {
		m[name] = best[h]
	}
	fmt.Fprintf(w, "\n# tuned weights (%d evaluations, %s); apply as spec.ranking.weights of the RecPipeline:\n", evals, elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "ranking:\n  weights: {%s}\n", formatWeights(p.heads, m, ", "))
}

// parseBounds parses "event:lo:hi,..." into the search box.
func parseBounds(s string) ([]bayesopt.Bounds, error) {
	var out []bayesopt.Bounds
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("%q is not event:lo:hi", f)
		}
		lo, err1 := strconv.ParseFloat(parts[1], 64)
		hi, err2 := strconv.ParseFloat(parts[2], 64)
		if err1 != nil || err2 != nil || !(lo < hi) {
			return nil, fmt.Errorf("%q: want numbers lo < hi", f)
		}
		if slices.ContainsFunc(out, func(b bayesopt.Bounds) bool { return b.Name == parts[0] }) {
			return nil, fmt.Errorf("%q: %s given twice", f, parts[0])
		}
		out = append(out, bayesopt.Bounds{Name: parts[0], Lo: lo, Hi: hi})
	}
	return out, nil
}

// formatWeights writes the weights of m present in heads, in heads order,
// as "name: value".
func formatWeights(heads []string, m map[string]float64, sep string) string {
	var parts []string
	for _, h := range heads {
		if v, ok := m[h]; ok {
			parts = append(parts, h+": "+formatFloat(v))
		}
	}
	return strings.Join(parts, sep)
}

func formatPoint(box []bayesopt.Bounds, x []float64) string {
	parts := make([]string, len(box))
	for i, b := range box {
		parts[i] = b.Name + "=" + formatFloat(x[i])
	}
	return strings.Join(parts, " ")
}

// formatFloat rounds to three decimals without trailing zeros.
func formatFloat(v float64) string {
	s := strconv.FormatFloat(v, 'f', 3, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}
