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

// Command rectrain trains the funnel's models from a dataset directory
// (catalog.jsonl, users.jsonl, follows.jsonl, events.jsonl in the
// runtime/dataset formats) and writes three artifacts that recserve loads:
// OUT/two-tower (retrieval), OUT/first-stage (distilled from the ranker) and
// OUT/mtml (the ranker). It prints progress and an offline evaluation on the
// last part of the log.
//
//	rectrain -data DIR -out DIR [-epochs N -seed S -dim D -hidden 256,128 ...]
//
// The tune subcommand finds the event weights of the ranking value that
// maximise a declared objective on the held-out part of the log, by Bayesian
// optimisation over bounded weights, and prints them as a ranking.weights
// YAML snippet (see tune.go):
//
//	rectrain tune -data DIR -models DIR [-objective like:1,comment:1,see_less:-8 -iters 40 -seed 1]
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/rectrain"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rectrain:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "tune" {
		return runTune(args[1:], os.Stdout)
	}
	fl := flag.NewFlagSet("rectrain", flag.ContinueOnError)
	var (
		o       rectrain.Options
		lo      rectrain.LoadOptions
		data    = fl.String("data", "", "dataset directory (required)")
		out     = fl.String("out", "", "directory to write the artifacts to (required)")
		version = fl.String("version", "1", "version recorded in the manifests")
		hidden  = fl.String("hidden", "256,128", "hidden widths of the MTML bottom, comma-separated")
		weights = fl.String("weights", "click:1,like:2,comment:4,share:4,see_less:-8", "event weights of the teacher's value")
	)
	fl.IntVar(&o.Epochs, "epochs", 3, "passes over the training examples per model")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of initialisation and shuffling")
	fl.IntVar(&o.Dim, "dim", 32, "retrieval embedding width")
	fl.IntVar(&o.TowerHidden, "tower-hidden", 128, "hidden width of the retrieval towers")
	fl.IntVar(&o.FirstStageDim, "first-stage-dim", 16, "first-stage embedding width")
	fl.IntVar(&o.FirstStageHidden, "first-stage-hidden", 64, "hidden width of the first-stage towers")
	fl.IntVar(&o.Batch, "batch", 512, "minibatch size")
	fl.Float64Var(&o.LR, "lr", 1e-3, "Adam learning rate (the towers use 3×)")
	fl.IntVar(&o.EvalUsers, "eval-users", 500, "users of the first-stage vs teacher evaluation")
	fl.Float64Var(&lo.TestFrac, "test-frac", 0.1, "fraction of the log's time span held out for evaluation")
	fl.BoolVar(&lo.Strict, "strict", false, "fail on the first bad row instead of skipping it")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *data == "" || *out == "" || fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("-data and -out are required and no arguments are accepted")
	}
	var err error
	if o.Hidden, err = parseInts(*hidden); err != nil {
		return fmt.Errorf("failed to parse -hidden: %w", err)
	}
	if o.Weights, err = parseWeights(*weights); err != nil {
		return fmt.Errorf("failed to parse -weights: %w", err)
	}
	o.Progress = os.Stdout

	began := time.Now()
	d, err := rectrain.LoadDir(*data, lo)
	if err != nil {
		return err
	}
	fmt.Printf("loaded %s: %d users, %d items, %d impressions (%d train, %d test) in %s\n",
		*data, len(d.UserIDs), len(d.ItemIDs), len(d.Imps), d.TrainN, len(d.Imps)-d.TrainN, time.Since(began).Round(time.Millisecond))
	for what, n := range d.Skipped {
		fmt.Printf("  skipped %d: %s\n", n, what)
	}
	res, err := rectrain.Train(d, o)
	if err != nil {
		return err
	}
	if err := res.Save(*out, *version); err != nil {
		return err
	}
	res.Eval.Table(os.Stdout)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("artifacts written to %s/{two-tower,first-stage,mtml}; total %s, heap in use from the OS %.0f MiB\n",
		*out, time.Since(began).Round(time.Millisecond), float64(ms.Sys)/(1<<20))
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, f := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not event:weight", f)
		}
		w, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out[name] = w
	}
	return out, nil
}
