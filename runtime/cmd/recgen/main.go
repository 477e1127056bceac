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

// Command recgen writes a synthetic world (runtime/internal/training/synth) to a directory:
// catalog.jsonl, users.jsonl, follows.jsonl and events.jsonl in the
// runtime/internal/dataset formats, and the planted ground truth (truth*.json*).
//
//	recgen -out DIR -users N -items N -events N -seed S
//
// Two flags give the world the shape of a public ratings log, which has no
// features and no negatives.
//
// -feature-dim 0 writes an id-only world: the catalog and users.jsonl have
// feature_dim 0 and every features array is empty. The features are drawn
// and discarded, so the world is otherwise the -feature-dim 8 world of the
// same seed: the same follows, log and truth rows, byte for byte. A
// negative width is an error.
//
// -format movielens writes the log as a MovieLens ratings.csv
// (userId,movieId,rating,timestamp) instead of the JSONL and truth files;
// -format both writes all of them. There is one row per (user, item) the
// user clicked, at the first click's Unix second, in time order: rating 5
// if the user also liked the item and commented on or shared it, 4 if
// liked, 3 otherwise, so that dataset.ReadMovieLens (a like from 4 stars)
// gives back the world's clicked and liked pairs. Impressions without a
// click, see_less, follow and unfollow make no row. userId and movieId are
// the world's user and item IDs without their u and i prefix (u12 is
// userId 12, i7 movieId 7).
//
//	recgen -out DIR -feature-dim 0 -format both
//	rectrain -data DIR -out ART1                 # the id-only world
//	rectrain -movielens DIR/ratings.csv -out ART2 # its log, as MovieLens
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "recgen:", err)
		os.Exit(1)
	}
}

// formats are the values of -format.
var formats = map[string]synth.Format{
	"jsonl":     synth.FormatJSONL,
	"movielens": synth.FormatMovieLens,
	"both":      synth.FormatBoth,
}

func run(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("recgen", flag.ContinueOnError)
	var (
		cfg    synth.Config
		opts   synth.WriteOptions
		out    = fl.String("out", "", "directory to write the world to (required)")
		seed   = fl.Uint64("seed", 1, "seed of the world")
		start  = fl.String("start", "2025-01-01T00:00:00Z", "start of the log, RFC 3339")
		format = fl.String("format", "jsonl", "files to write: jsonl (catalog, users, follows, events and truth files), "+
			"movielens (the log alone as a MovieLens ratings.csv: one row per clicked user and item at the first click, "+
			"rating 5 liked and commented or shared, 4 liked, 3 otherwise; ids without the u/i prefix), or both")
	)
	fl.IntVar(&cfg.Users, "users", 1000, "number of users")
	fl.IntVar(&cfg.Items, "items", 10000, "number of items")
	fl.IntVar(&cfg.Authors, "authors", 0, "number of authors (0: items/20)")
	fl.IntVar(&cfg.Events, "events", 0, "approximate number of log rows (0: 50 per user)")
	fl.IntVar(&cfg.Days, "days", 30, "length of the log in days")
	fl.IntVar(&cfg.Topics, "topics", 12, "number of planted topics")
	fl.IntVar(&cfg.Dim, "dim", 16, "width of the latent vectors")
	fl.IntVar(&cfg.FeatureDim, "feature-dim", 8, "width of the observable user and item features; "+
		"0: an id-only world (feature_dim 0, empty features), otherwise the same as -feature-dim 8")
	fl.IntVar(&cfg.TopicCandidates, "topic-candidates", 10, "items of the topic the previous recommender scores per Topic impression (1: uniform)")
	fl.Float64Var(&cfg.RankerNoise, "ranker-noise", 1, "standard deviation of the previous recommender's error on the click logit (negative: none)")
	fl.IntVar(&cfg.Workers, "workers", 0, "goroutines (0: GOMAXPROCS); the world does not depend on it")
	fl.BoolVar(&opts.Gzip, "gzip", false, "gzip every file (names end in .gz)")
	fl.BoolVar(&opts.SkipTruth, "no-truth", false, "do not write the truth files (-format movielens never does)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *out == "" || fl.NArg() > 0 {
		fl.Usage()
		return fmt.Errorf("-out is required and no arguments are accepted")
	}
	f, ok := formats[*format]
	if !ok {
		return fmt.Errorf("-format %q is not jsonl, movielens or both", *format)
	}
	opts.Format = f
	switch {
	case cfg.FeatureDim < 0:
		return fmt.Errorf("-feature-dim %d is negative", cfg.FeatureDim)
	case cfg.FeatureDim == 0:
		// The features are drawn at the default width and withheld.
		cfg.IDOnly = true
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
	fmt.Fprintf(stdout, "world written to %s (seed %d)\n", *out, *seed)
	fmt.Fprintf(stdout, "  users %d  items %d  authors %d  initial follows %d\n", s.Users, s.Items, s.Authors, s.Follows)
	if w.FeatureDim() == 0 {
		fmt.Fprintf(stdout, "  features none (id-only world)\n")
	} else {
		fmt.Fprintf(stdout, "  features %d per item and user\n", w.FeatureDim())
	}
	fmt.Fprintf(stdout, "  events %d\n", s.Events)
	for _, et := range dataset.EventTypes() {
		n := s.ByType[et]
		fmt.Fprintf(stdout, "    %-10s %10d  %6.2f%%\n", et, n, 100*float64(n)/float64(max(s.Events, 1)))
	}
	if imp := s.ByType[dataset.Impression]; imp > 0 {
		fmt.Fprintf(stdout, "  click-through rate %.4f\n", float64(s.ByType[dataset.Click])/float64(imp))
	}
	if opts.Format != synth.FormatJSONL {
		rs := w.MovieLensRatings()
		liked := 0
		for _, r := range rs {
			if r.Rating >= dataset.LikeRating {
				liked++
			}
		}
		fmt.Fprintf(stdout, "  %s %d ratings, %d (%.2f%%) of %g stars or more\n",
			synth.MovieLensFile, len(rs), liked, 100*float64(liked)/float64(max(len(rs), 1)), dataset.LikeRating)
	}
	size, err := dirSize(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  on disk %.1f MiB\n", float64(size)/(1<<20))
	fmt.Fprintf(stdout, "  elapsed: generate %s, write %s, total %s\n",
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
