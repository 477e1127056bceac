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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/synth"
)

func TestRunWritesLoadableArtifacts(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	if err := synth.Generate(synth.Config{Users: 100, Items: 500, Seed: 1}).WriteDirWith(data, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	args := []string{"-data", data, "-out", out, "-epochs", "1", "-hidden", "16,8", "-dim", "8", "-tower-hidden", "16",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "64", "-weights", "click:1,like:2,see_less:-8"}
	if err := run(args); err != nil {
		t.Fatal(err)
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
	args := []string{"-movielens", path, "-out", out, "-epochs", "1", "-hidden", "8", "-dim", "4", "-tower-hidden", "8",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "32", "-test-frac", "0.2"}
	if err := run(args); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"two-tower", "first-stage", "mtml"} {
		if _, err := model.LoadDir(filepath.Join(out, name)); err != nil {
			t.Errorf("%s: %v", name, err)
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
