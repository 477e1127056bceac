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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

func TestRunWritesLoadableArtifacts(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	if err := synth.Generate(synth.Config{Users: 100, Items: 500, Seed: 1}).WriteDirWith(data, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	// One epoch of tiny networks is about the plumbing, not the quality.
	args := []string{"-allow-weak", "-data", data, "-out", out, "-epochs", "1", "-hidden", "16,8", "-dim", "8", "-tower-hidden", "16",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "64", "-weights", "click:1,like:2,see_less:-8", "-index=false"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "two-tower", engine.IndexFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("-index=false wrote the ANN index (stat: %v)", err)
	}
	for name, kind := range map[string]model.Kind{"two-tower": model.KindTwoTower, "first-stage": model.KindTwoTower, "mtml": model.KindMTML} {
		a, err := model.LoadDir(filepath.Join(out, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.Manifest.Kind != kind {
			t.Errorf("%s: kind %s, want %s", name, a.Manifest.Kind, kind)
		}
	}
	if err := run([]string{"-data", data}); err == nil {
		t.Errorf("run without -out succeeded")
	}
	if err := run([]string{"-data", data, "-out", out, "-weights", "clicks:1"}); err == nil {
		t.Errorf("run with a weight for an unknown event succeeded")
	}
}

// TestMovieLensEndToEnd trains on a small u.data written here (MovieLens
// itself is not redistributable) and loads the artifacts back.
func TestMovieLensEndToEnd(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	var b strings.Builder
	line := 0
	for u := 1; u <= 40; u++ {
		for k := range 12 {
			item := (u*7+k*k*3)%50 + 1
			rating := 1 + (u+item*3)%5
			fmt.Fprintf(&b, "%d\t%d\t%d\t%d\n", u, item, rating, 880000000+((u*131+k*977)%5000)*60)
			if line++; line == 17 {
				b.WriteString("17\tnot-a-rating\n")
				line++
			}
		}
	}
	path := filepath.Join(dir, "u.data")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-allow-weak", "-movielens", path, "-out", out, "-epochs", "1", "-hidden", "8", "-dim", "4", "-tower-hidden", "8",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "32", "-test-frac", "0.2"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"two-tower", "first-stage", "mtml"} {
		if _, err := model.LoadDir(filepath.Join(out, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"config.json", "catalog.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, name)); err != nil {
			t.Errorf("a MovieLens run wrote no %s: %v", name, err)
		}
	}
	err := run(append([]string{"-strict"}, args...))
	if err == nil || !strings.Contains(err.Error(), "u.data:18:") {
		t.Errorf("-strict on a bad row: %v, want an error at u.data:18", err)
	}
	if err := run([]string{"-movielens", path, "-data", dir, "-out", out}); err == nil {
		t.Errorf("run with both -movielens and -data succeeded")
	}
	if err := run([]string{"-movielens", path, "-out", out, "-resume"}); err == nil {
		t.Errorf("run with -resume and no -checkpoint succeeded")
	}
}

// writeRatings writes a ratings.csv of users rating items by taste: user u
// likes the items of its group (u mod 4) in items mod 4, and a few others
// at random; when random is set every rating's item is drawn by a
// popularity skew alone, which no model of the users can beat.
func writeRatings(t *testing.T, path string, random bool) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("userId,movieId,rating,timestamp\n")
	type row struct {
		u, i int
		ts   int64
	}
	var rows []row
	for u := range 300 {
		seen := map[int]bool{}
		for k := range 40 {
			var i int
			switch {
			case random:
				i = int(math.Floor(math.Pow(r.Float64(), 3) * 400))
			case k%5 == 0:
				i = r.IntN(400)
			default:
				i = 4*r.IntN(100) + u%4
			}
			if seen[i] {
				continue
			}
			seen[i] = true
			rows = append(rows, row{u, i, 1_000_000_000 + int64(r.IntN(30*86400))})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return int(a.ts - b.ts) })
	for _, x := range rows {
		fmt.Fprintf(&b, "%d,%d,4,%d\n", x.u, x.i, x.ts)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A bare ratings log given as -data becomes a servable directory: the
// artifacts, the catalog and a recserve config that parses and names them.
func TestBareLogBecomesServable(t *testing.T) {
	dir, out := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "ratings.csv")
	writeRatings(t, path, false)
	args := []string{"-data", path, "-out", out, "-epochs", "3", "-hidden", "32,16", "-dim", "16", "-tower-hidden", "32",
		"-first-stage-hidden", "16", "-first-stage-dim", "8", "-batch", "128", "-lr", "3e-3"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatalf("the written config does not parse: %v\n%s", err, b)
	}
	if want := "file://" + out; c.Deploy.Catalog != want {
		t.Errorf("catalog %q, want %q", c.Deploy.Catalog, want)
	}
	for _, m := range c.Deploy.Models {
		if _, err := model.LoadDir(strings.TrimPrefix(m.URI, "file://")); err != nil {
			t.Errorf("model %s at %s: %v", m.Name, m.URI, err)
		}
	}
	if got := c.Live.Clock.TypeOrDefault(); got != config.ClockEvent {
		t.Errorf("clock %q, want %q: a historical log is served as of its own time", got, config.ClockEvent)
	}
	cat, err := catalog.Load(context.Background(), c.Deploy.Catalog, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cat.Len() == 0 || cat.FeatureDim() != 0 {
		t.Errorf("catalog of %d items, feature_dim %d; want the rated items and no features", cat.Len(), cat.FeatureDim())
	}

	// The ANN index was written beside the retrieval model, and recserve's
	// engine on the written config loads it rather than building it.
	if _, err := os.Stat(filepath.Join(out, "two-tower", engine.IndexFile)); err != nil {
		t.Fatalf("no ANN index beside the retrieval model: %v", err)
	}
	var logs bytes.Buffer
	e, err := engine.Open(context.Background(), c, engine.Options{StateDir: t.TempDir(), Log: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Close() }()
	if l := logs.String(); !strings.Contains(l, `"msg":"Loaded the ANN index"`) || strings.Contains(l, "Built the ANN index") {
		t.Errorf("the engine did not load the index rectrain wrote; log:\n%s", l)
	}
}

// A log no model can learn fails the quality gate: the run says why, ends
// with errWeak and writes nothing; -allow-weak writes the models.
func TestWeakModelsAreRefused(t *testing.T) {
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "models")
	path := filepath.Join(dir, "ratings.csv")
	writeRatings(t, path, true)
	args := []string{"-data", path, "-out", out, "-epochs", "2", "-hidden", "16,8", "-dim", "8", "-tower-hidden", "16",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "64"}
	if err := run(args); !errors.Is(err, errWeak) {
		t.Fatalf("run on an unlearnable log: %v, want errWeak", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused run left %s (%v)", out, err)
	}
	if err := run(append([]string{"-allow-weak"}, args...)); err != nil {
		t.Fatalf("-allow-weak: %v", err)
	}
	if _, err := model.LoadDir(filepath.Join(out, "mtml")); err != nil {
		t.Errorf("-allow-weak wrote no loadable mtml: %v", err)
	}
}

// -result-file receives, after a run, the version, the artifact directories
// by role (each one a loadable model of that version) and the evaluation's
// figures, within the 4 KiB of a termination message; a run that fails
// writes nothing there.
func TestResultFile(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	if err := synth.Generate(synth.Config{Users: 100, Items: 500, Seed: 1}).WriteDirWith(data, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	result := filepath.Join(t.TempDir(), "termination-log")
	args := []string{"-allow-weak", "-data", data, "-out", out, "-version", "feed-training-29000000", "-result-file", result,
		"-epochs", "1", "-hidden", "16,8", "-dim", "8", "-tower-hidden", "16", "-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "64"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxResultBytes {
		t.Errorf("result of %d bytes, more than a termination message holds (%d)", len(b), maxResultBytes)
	}
	var r struct {
		Version   string             `json:"version"`
		Artifacts map[string]string  `json:"artifacts"`
		Metrics   map[string]float64 `json:"metrics"`
		Weak      []string           `json:"weak"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("result does not decode: %v\n%s", err, b)
	}
	if r.Version != "feed-training-29000000" {
		t.Errorf("version %q", r.Version)
	}
	wantKinds := map[string]model.Kind{roleRetrieval: model.KindTwoTower, roleFirstStage: model.KindTwoTower, roleSecondStage: model.KindMTML}
	if len(r.Artifacts) != len(wantKinds) {
		t.Errorf("artifacts %v, want one per role of %v", r.Artifacts, wantKinds)
	}
	var twoTower *model.Artifact
	for role, kind := range wantKinds {
		a, err := model.LoadDir(filepath.Join(out, r.Artifacts[role]))
		if err != nil {
			t.Fatalf("artifact of role %s (%q): %v", role, r.Artifacts[role], err)
		}
		if a.Manifest.Kind != kind || a.Manifest.Version != r.Version {
			t.Errorf("artifact of role %s: kind %s version %q, want %s %q", role, a.Manifest.Kind, a.Manifest.Version, kind, r.Version)
		}
		if role == roleRetrieval {
			twoTower = a
		}
	}
	for _, name := range []string{"test.users", "test.impressions", "funnel.users", "two-tower.recall@100", "two-tower.ndcg@10",
		"popular.recall@100", "funnel.ndcg@100", "funnel.popular.ndcg@100", "first-stage.spearman@300", "mtml.auc.click"} {
		if _, ok := r.Metrics[name]; !ok {
			t.Errorf("metrics lack %s: %v", name, r.Metrics)
		}
	}
	if r.Metrics["test.users"] < 1 {
		t.Errorf("test.users %v: the evaluation had users", r.Metrics["test.users"])
	}
	// The same figure the two-tower model's manifest records.
	if got, want := r.Metrics["two-tower.recall@100"], twoTower.Manifest.Metadata["recall@100"]; fmt.Sprintf("%.4f", got) != want {
		t.Errorf("two-tower.recall@100 %v, the manifest says %s", got, want)
	}

	failed := filepath.Join(t.TempDir(), "termination-log")
	if err := run([]string{"-data", filepath.Join(data, "missing"), "-out", t.TempDir(), "-result-file", failed}); err == nil {
		t.Fatal("a run on a missing dataset succeeded")
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Errorf("a failed run wrote its result file (%v)", err)
	}
}
