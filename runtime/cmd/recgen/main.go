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

// Command recgen writes a synthetic world (runtime/synth) to a directory:
// catalog.jsonl, users.jsonl, follows.jsonl and events.jsonl in the
// runtime/dataset formats, and the planted ground truth (truth*.json*).
//
//	recgen -out DIR -users N -items N -events N -seed S
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/recpipeline/recpipeline/runtime/dataset"
	"github.com/recpipeline/recpipeline/runtime/synth"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "recgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("recgen", flag.ContinueOnError)
	var (
		cfg   synth.Config
		opts  synth.WriteOptions
		out   = fl.String("out", "", "directory to write the world to (required)")
		seed  = fl.Uint64("seed", 1, "seed of the world")
		start = fl.String("start", "2025-01-01T00:00:00Z", "start of the log, RFC 3339")
	)
	fl.IntVar(&cfg.Users, "users", 1000, "number of users")
	fl.IntVar(&cfg.Items, "items", 10000, "number of items")
	fl.IntVar(&cfg.Authors, "authors", 0, "number of authors (0: items/20)")
	fl.IntVar(&cfg.Events, "events", 0, "approximate number of log rows (0: 50 per user)")
	fl.IntVar(&cfg.Days, "days", 30, "length of the log in days")
	fl.IntVar(&cfg.Topics, "topics", 12, "number of planted topics")
	fl.IntVar(&cfg.Dim, "dim", 16, "width of the latent vectors")
	fl.IntVar(&cfg.FeatureDim, "feature-dim", 8, "width of the observable features")
	fl.IntVar(&cfg.TopicCandidates, "topic-candidates", 10, "items of the topic the previous recommender scores per Topic impression (1: uniform)")
	fl.Float64Var(&cfg.RankerNoise, "ranker-noise", 1, "standard deviation of the previous recommender's error on the click logit (negative: none)")
	fl.IntVar(&cfg.Workers, "workers", 0, "goroutines (0: GOMAXPROCS); the world does not depend on it")
	fl.BoolVar(&opts.Gzip, "gzip", false, "gzip every file (names end in .gz)")
	fl.BoolVar(&opts.SkipTruth, "no-truth", false, "do not write the truth files")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" || fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("-out is required and no arguments are accepted")
	}
	t, err := time.Parse(time.RFC3339, *start)
	if err != nil {
		return fmt.Errorf("failed to parse -start: %w", err)
	}
	cfg.Seed, cfg.Start = *seed, t

	began := time.Now()
	w, err := synth.NewWorld(cfg)
	if err != nil {
		return fmt.Errorf("failed to generate the world: %w", err)
	}
	generated := time.Now()
	if err := w.WriteDirWith(*out, opts); err != nil {
		return fmt.Errorf("failed to write the world: %w", err)
	}
	written := time.Now()

	s := w.Summary()
	fmt.Printf("world written to %s (seed %d)\n", *out, *seed)
	fmt.Printf("  users %d  items %d  authors %d  initial follows %d\n", s.Users, s.Items, s.Authors, s.Follows)
	fmt.Printf("  events %d\n", s.Events)
	for _, et := range dataset.EventTypes() {
		n := s.ByType[et]
		fmt.Printf("    %-10s %10d  %6.2f%%\n", et, n, 100*float64(n)/float64(max(s.Events, 1)))
	}
	if imp := s.ByType[dataset.Impression]; imp > 0 {
		fmt.Printf("  click-through rate %.4f\n", float64(s.ByType[dataset.Click])/float64(imp))
	}
	size, err := dirSize(*out)
	if err != nil {
		return err
	}
	fmt.Printf("  on disk %.1f MiB\n", float64(size)/(1<<20))
	fmt.Printf("  elapsed: generate %s, write %s, total %s\n",
		generated.Sub(began).Round(time.Millisecond), written.Sub(generated).Round(time.Millisecond), written.Sub(began).Round(time.Millisecond))
	return nil
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("failed to measure %s: %w", dir, err)
	}
	return n, nil
}
