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
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

func TestTunePrintsApplicableWeights(t *testing.T) {
	data, models := t.TempDir(), t.TempDir()
	if err := synth.Generate(synth.Config{Users: 150, Items: 600, Events: 15000, Seed: 2}).WriteDirWith(data, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	// One epoch of tiny networks is about the plumbing, not the quality.
	train := []string{"-allow-weak", "-data", data, "-out", models, "-epochs", "1", "-hidden", "16,8", "-dim", "8", "-tower-hidden", "16",
		"-first-stage-hidden", "8", "-first-stage-dim", "4", "-batch", "64", "-eval-users", "20"}
	if err := run(train); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	bounds := "click:0:5,like:0:10,comment:0:20,share:0:20,see_less:-50:0"
	if err := runTune([]string{"-data", data, "-models", models, "-iters", "6", "-init", "5", "-seed", "3", "-bounds", bounds}, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()

	// The snippet is the tail from "ranking:" and parses as YAML.
	at := strings.Index(text, "\nranking:\n")
	if at < 0 {
		t.Fatalf("no ranking snippet in the output:\n%s", text)
	}
	var snippet struct {
		Ranking struct {
			Weights map[string]float64 `json:"weights"`
		} `json:"ranking"`
	}
	if err := yaml.UnmarshalStrict([]byte(text[at+1:]), &snippet); err != nil {
		t.Fatalf("snippet does not parse: %v\n%s", err, text[at+1:])
	}
	box, err := parseBounds(bounds)
	if err != nil {
		t.Fatal(err)
	}
	if len(snippet.Ranking.Weights) != len(box) {
		t.Errorf("snippet has weights %v, want one per event of %v", snippet.Ranking.Weights, box)
	}
	for _, b := range box {
		v, ok := snippet.Ranking.Weights[b.Name]
		if !ok || v < b.Lo || v > b.Hi {
			t.Errorf("weight of %s is %v (present %v), want within [%v, %v]", b.Name, v, ok, b.Lo, b.Hi)
		}
	}

	// On the sessions it tuned on, tuned is at least the default.
	tuning := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && (f[0] == "default" || f[0] == "tuned") {
			if tuning[f[0]], err = strconv.ParseFloat(f[1], 64); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
		}
	}
	if len(tuning) != 2 {
		t.Fatalf("no default/tuned table in the output:\n%s", text)
	}
	if tuning["tuned"] < tuning["default"] {
		t.Errorf("tuned objective %v below the default's %v on the tuning sessions", tuning["tuned"], tuning["default"])
	}
	// One progress line per evaluation: the default weights, the design
	// of 5 and 6 chosen by expected improvement.
	if got := strings.Count(text, "\neval "); got != 1+5+6 {
		t.Errorf("%d progress lines, want 12", got)
	}

	for name, args := range map[string][]string{
		"no models":             {"-data", data},
		"unknown bounded event": {"-data", data, "-models", models, "-bounds", "clicks:0:1"},
		"empty bounds":          {"-data", data, "-models", models, "-bounds", "click:1:1"},
		"unknown outcome":       {"-data", data, "-models", models, "-objective", "likes:1"},
		"missing artifact":      {"-data", data, "-models", data},
	} {
		var sink bytes.Buffer
		if err := runTune(args, &sink); err == nil {
			t.Errorf("%s: tune succeeded", name)
		}
	}
}
