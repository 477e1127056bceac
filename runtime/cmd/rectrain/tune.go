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

	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/rectrain"
	"github.com/recpipeline/recpipeline/runtime/rectrain/tune"
)

// defaultBounds is the search box of each event weight.
const defaultBounds = "click:0:5,like:0:10,comment:0:20,share:0:20,see_less:-50:0"

// runTune is the tune subcommand: it scores the test split's impressions
// with the MTML artifact, groups them into sessions (a user's impressions of
// one UTC day), tunes the weights on the earlier sessions and reports the
// default and tuned weights' objective on the later ones.
func runTune(args []string, w io.Writer) error {
	fl := flag.NewFlagSet("rectrain tune", flag.ContinueOnError)
	fl.SetOutput(w)
	var (
		lo        rectrain.LoadOptions
		opts      tune.Options
		data      = fl.String("data", "", "dataset directory (required)")
		models    = fl.String("models", "", "directory of rectrain's artifacts; the MTML is read from DIR/mtml (required)")
		objective = fl.String("objective", tune.DefaultObjective, "value of each logged event among the top K of a session")
		k         = fl.Int("k", tune.DefaultK, "impressions per session the objective counts")
		bounds    = fl.String("bounds", defaultBounds, "search box of each weight, event:lo:hi; events left out keep their -baseline weight")
		baseline  = fl.String("baseline", "click:1,like:2,comment:4,share:4,see_less:-8", "weights to compare with (rectrain's defaults)")
		tuneFrac  = fl.Float64("tune-frac", 0.5, "fraction of the test sessions, the earliest, to tune on; the rest validate")
	)
	fl.IntVar(&opts.Iters, "iters", 40, "evaluations chosen by expected improvement")
	fl.IntVar(&opts.Init, "init", 0, "size of the initial Latin-hypercube design (0: max(5, 2×weights))")
	fl.Uint64Var(&opts.Seed, "seed", 1, "seed of the design and the acquisition")
	fl.Float64Var(&lo.TestFrac, "test-frac", 0.1, "fraction of the log's time span held out (as in training)")
	fl.BoolVar(&lo.Strict, "strict", false, "fail on the first bad row instead of skipping it")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *data == "" || *models == "" || fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("tune: -data and -models are required and no arguments are accepted")
	}
	if !(*tuneFrac > 0 && *tuneFrac < 1) {
		return fmt.Errorf("tune: -tune-frac %v outside (0, 1)", *tuneFrac)
	}
	outcome, err := tune.ParseWeights(*objective)
	if err != nil {
		return fmt.Errorf("failed to parse -objective: %w", err)
	}
	base, err := tune.ParseWeights(*baseline)
	if err != nil {
		return fmt.Errorf("failed to parse -baseline: %w", err)
	}
	box, err := parseBounds(*bounds)
	if err != nil {
		return fmt.Errorf("failed to parse -bounds: %w", err)
	}

	began := time.Now()
	art, err := model.LoadDir(filepath.Join(*models, "mtml"))
	if err != nil {
		return fmt.Errorf("failed to load the MTML: %w", err)
	}
	d, err := rectrain.LoadDir(*data, lo)
	if err != nil {
		return err
	}
	var retrieval *model.Artifact
	if _, _, ok := art.Manifest.Networks[model.NetBottom].Input.Block(rectrain.FeatTwoTowerScore); ok {
		if retrieval, err = model.LoadDir(filepath.Join(*models, "two-tower")); err != nil {
			return fmt.Errorf("failed to load the two-tower model the MTML reads: %w", err)
		}
	}
	table, err := tune.Logged(d, art, retrieval)
	if err != nil {
		return fmt.Errorf("failed to score the test impressions: %w", err)
	}
	heads := table.Heads
	baseVec, err := tune.Vector(heads, base)
	if err != nil {
		return fmt.Errorf("-baseline: %w", err)
	}
	dims := make([]int, len(box)) // head of each searched dimension
	for i, b := range box {
		if dims[i] = slices.Index(heads, b.Name); dims[i] < 0 {
			return fmt.Errorf("-bounds: unknown event %q (the model's heads are %v)", b.Name, heads)
		}
	}
	obj := tune.Objective{Outcome: outcome, K: *k}
	tuning, validation := table.Split(*tuneFrac)
	evals := map[string]*tune.Evaluator{}
	for name, t := range map[string]*tune.Table{"tuning": tuning, "validation": validation, "all": table} {
		if evals[name], err = tune.NewEvaluator(t, obj); err != nil {
			return err
		}
	}
	if evals["tuning"].Counted() == 0 || evals["validation"].Counted() == 0 {
		return fmt.Errorf("tune: %d tuning and %d validation sessions have more than %d impressions; both need some (lower -k or hold out more with -test-frac)",
			evals["tuning"].Counted(), evals["validation"].Counted(), *k)
	}
	fmt.Fprintf(w, "loaded %s and %s/mtml in %s: %d test sessions (%d impressions); tuning on the first %d sessions (%d counted), validating on the last %d (%d counted)\n",
		*data, *models, time.Since(began).Round(time.Millisecond), table.Sessions(), table.Rows(),
		tuning.Sessions(), evals["tuning"].Counted(), validation.Sessions(), evals["validation"].Counted())
	fmt.Fprintf(w, "objective: Σ (%s) over the top %d impressions of each session by Σ w·P, per impression counted\n", formatWeights(heads, outcome, ", "), *k)

	// A point of the box is the weights with the searched ones replaced.
	weights := func(x []float64) []float64 {
		v := slices.Clone(baseVec)
		for i, h := range dims {
			v[h] = x[i]
		}
		return v
	}
	// The baseline, clamped into the box, is evaluated first so that the
	// tuned weights are never worse on the tuning sessions.
	start := make([]float64, len(box))
	for i, b := range box {
		start[i] = min(max(baseVec[dims[i]], b.Lo), b.Hi)
	}
	opts.Start = [][]float64{start}
	total := 1 + opts.Iters
	if opts.Init > 0 {
		total += opts.Init
	} else {
		total += max(5, 2*len(box))
	}
	opts.OnEval = func(n int, p, best tune.Point) {
		fmt.Fprintf(w, "eval %3d/%d  objective %.5f  best %.5f  %s\n", n, total, p.Value, best.Value, formatPoint(box, p.X))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tuner := evals["tuning"]
	res, err := tune.Maximize(ctx, func(x []float64) (float64, error) { return tuner.Value(weights(x)), nil }, box, opts)
	if err != nil {
		return err
	}
	best := weights(res.Best)

	fmt.Fprintf(w, "\nobjective per impression counted (top %d of each session)\n", *k)
	fmt.Fprintf(w, "  %-10s %12s %12s %12s\n", "weights", "tuning", "validation", "all")
	for _, row := range []struct {
		name string
		v    []float64
	}{{"default", baseVec}, {"tuned", best}} {
		fmt.Fprintf(w, "  %-10s %12.5f %12.5f %12.5f\n", row.name, evals["tuning"].Value(row.v), evals["validation"].Value(row.v), evals["all"].Value(row.v))
	}
	m := map[string]float64{}
	for h, name := range heads {
		m[name] = best[h]
	}
	fmt.Fprintf(w, "\n# tuned weights (%d evaluations, %s); apply as spec.ranking.weights of the RecPipeline:\n", len(res.Trace), time.Since(began).Round(time.Millisecond))
	fmt.Fprintf(w, "ranking:\n  weights: {%s}\n", formatWeights(heads, m, ", "))
	return nil
}

// parseBounds parses "event:lo:hi,..." into the search box.
func parseBounds(s string) ([]tune.Bounds, error) {
	var out []tune.Bounds
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
		if slices.ContainsFunc(out, func(b tune.Bounds) bool { return b.Name == parts[0] }) {
			return nil, fmt.Errorf("%q: %s given twice", f, parts[0])
		}
		out = append(out, tune.Bounds{Name: parts[0], Lo: lo, Hi: hi})
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

func formatPoint(box []tune.Bounds, x []float64) string {
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
