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
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// tiny is a world small enough to generate in a few milliseconds.
var tiny = []string{"-users", "60", "-items", "400", "-events", "2000", "-seed", "3", "-workers", "1"}

func generate(t *testing.T, extra ...string) (dir, stdout string) {
	t.Helper()
	dir = t.TempDir()
	var out bytes.Buffer
	if err := run(append(append([]string{"-out", dir}, tiny...), extra...), &out); err != nil {
		t.Fatal(err)
	}
	return dir, out.String()
}

func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// TestShapesLoadForTraining generates each shape of world the flags give
// and loads it the way rectrain does (-data DIR or -movielens FILE).
func TestShapesLoadForTraining(t *testing.T) {
	jsonl := []string{synth.CatalogFile, synth.EventsFile, synth.FollowsFile, synth.TruthFile,
		synth.TruthAuthorsFile, synth.TruthItemsFile, synth.TruthUsersFile, synth.UsersFile}
	tests := map[string]struct {
		args      []string
		files     []string
		featDim   int    // of the -data load
		summary   string // a line of the printed summary
		movieLens bool
	}{
		"default":          {files: jsonl, featDim: 8, summary: "features 8 per item and user"},
		"id-only":          {args: []string{"-feature-dim", "0"}, files: jsonl, featDim: 0, summary: "features none (id-only world)"},
		"movielens":        {args: []string{"-format", "movielens"}, files: []string{synth.MovieLensFile}, summary: "ratings.csv ", movieLens: true},
		"id-only and both": {args: []string{"-feature-dim", "0", "-format", "both"}, files: append([]string{synth.MovieLensFile}, jsonl...), featDim: 0, movieLens: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir, stdout := generate(t, tc.args...)
			want := slices.Sorted(slices.Values(tc.files))
			if got := filesIn(t, dir); !slices.Equal(got, want) {
				t.Errorf("wrote %v, want %v", got, want)
			}
			if !strings.Contains(stdout, tc.summary) {
				t.Errorf("summary lacks %q:\n%s", tc.summary, stdout)
			}
			if slices.Contains(tc.files, synth.EventsFile) {
				d, err := rectrain.LoadDir(dir, rectrain.LoadOptions{Strict: true})
				if err != nil {
					t.Fatal(err)
				}
				if d.ItemDim != tc.featDim || d.UserDim != tc.featDim || len(d.Imps) == 0 || d.Truth == nil {
					t.Errorf("loaded item width %d, user width %d, %d impressions, truth %v; want width %d",
						d.ItemDim, d.UserDim, len(d.Imps), d.Truth != nil, tc.featDim)
				}
			}
			if tc.movieLens {
				d, err := rectrain.LoadMovieLens(filepath.Join(dir, synth.MovieLensFile), rectrain.LoadOptions{Strict: true})
				if err != nil {
					t.Fatal(err)
				}
				var rows int
				if _, err := dataset.ReadMovieLens(filepath.Join(dir, synth.MovieLensFile), dataset.MovieLensAuto, dataset.ReadOptions{Strict: true},
					func(e dataset.Event) error {
						if e.Type == dataset.Impression {
							rows++
						}
						return nil
					}); err != nil {
					t.Fatal(err)
				}
				if len(d.Imps) != rows || rows == 0 {
					t.Errorf("rectrain loaded %d impressions from %d ratings", len(d.Imps), rows)
				}
			}
		})
	}
}

// TestIDOnlyIsTheFeaturedWorldWithoutFeatures checks that -feature-dim 0
// changes nothing but the features: the log is that of -feature-dim 8.
func TestIDOnlyIsTheFeaturedWorldWithoutFeatures(t *testing.T) {
	idOnly, _ := generate(t, "-feature-dim", "0")
	featured, _ := generate(t, "-feature-dim", "8")
	for _, f := range []string{synth.EventsFile, synth.FollowsFile} {
		a, err := os.ReadFile(filepath.Join(idOnly, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(featured, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || len(a) == 0 {
			t.Errorf("%s: %d bytes with -feature-dim 0, %d with -feature-dim 8, or they differ", f, len(a), len(b))
		}
	}
	cat, err := dataset.OpenCatalog(filepath.Join(idOnly, synth.CatalogFile), dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	if d := cat.Header().FeatureDim; d != 0 {
		t.Errorf("catalog feature_dim %d with -feature-dim 0", d)
	}
}

func TestRejectsBadFlags(t *testing.T) {
	tests := map[string][]string{
		"negative feature width": {"-feature-dim", "-1"},
		"unknown format":         {"-format", "parquet"},
		"no -out":                {"-out", ""},
		"an argument":            {"extra"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "world")
			fl := append(append([]string{"-out", dir}, tiny...), args...)
			if err := run(fl, io.Discard); err == nil {
				t.Errorf("run(%q) succeeded", fl)
			}
			if _, err := os.Stat(dir); err == nil {
				t.Errorf("run(%q) wrote %s", fl, dir)
			}
		})
	}
}
