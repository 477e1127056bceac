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

package config

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestStages(t *testing.T) {
	tests := map[string]struct {
		stage          string
		wantValid      bool
		wantServesGRPC bool
	}{
		"the whole funnel in one process":   {stage: StageAll, wantValid: true},
		"the frontend calls the others":     {stage: StageFrontend, wantValid: true},
		"retrieval serves the frontend":     {stage: StageRetrieval, wantValid: true, wantServesGRPC: true},
		"the first ranker serves it":        {stage: StageRankerFirst, wantValid: true, wantServesGRPC: true},
		"the second ranker serves it":       {stage: StageRankerSecond, wantValid: true, wantServesGRPC: true},
		"no stage":                          {stage: ""},
		"a stage name in the wrong case":    {stage: "Frontend"},
		"a stage that is not in the funnel": {stage: "rerank"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ValidStage(tc.stage); got != tc.wantValid {
				t.Errorf("ValidStage(%q) = %v, want %v", tc.stage, got, tc.wantValid)
			}
			if got := ServesGRPC(tc.stage); got != tc.wantServesGRPC {
				t.Errorf("ServesGRPC(%q) = %v, want %v", tc.stage, got, tc.wantServesGRPC)
			}
		})
	}
}

// TestSplitStages: the operator deploys exactly the stages recserve runs
// apart, in funnel order, and a caller cannot change another's list.
func TestSplitStages(t *testing.T) {
	want := []string{"frontend", "retrieval", "ranker-first", "ranker-second"}
	got := SplitStages()
	if !slices.Equal(got, want) {
		t.Fatalf("SplitStages() = %v, want %v", got, want)
	}
	for _, stage := range got {
		if !ValidStage(stage) || stage == StageAll {
			t.Errorf("split stage %q is not a stage recserve runs apart", stage)
		}
	}
	got[0] = "changed"
	if again := SplitStages(); again[0] != StageFrontend {
		t.Errorf("SplitStages() = %v after a caller changed its copy", again)
	}
}

// TestArgsParseAsFlags: the arguments the operator builds with Arg are
// read back by Go's flag package, which recserve parses its flags with.
func TestArgsParseAsFlags(t *testing.T) {
	fs := flag.NewFlagSet("recserve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	stage := fs.String(FlagStage, StageAll, "")
	configMap := fs.String(FlagConfigMap, "", "")
	httpPort := fs.Int(FlagHTTPPort, 0, "")
	grpcPort := fs.Int(FlagGRPCPort, 0, "")
	stateDir := fs.String(FlagStateDir, "", "")
	args := []string{
		Arg(FlagStage, StageRankerFirst),
		Arg(FlagConfigMap, "feed-config"),
		Arg(FlagHTTPPort, "8080"),
		Arg(FlagGRPCPort, "9090"),
		Arg(FlagStateDir, StateDir),
	}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("failed to parse %q: %v", args, err)
	}
	if *stage != StageRankerFirst || *configMap != "feed-config" || *httpPort != HTTPPort || *grpcPort != GRPCPort || *stateDir != StateDir {
		t.Errorf("parsed %q as stage %q, config map %q, ports %d and %d, state dir %q",
			args, *stage, *configMap, *httpPort, *grpcPort, *stateDir)
	}
	if fs.NArg() != 0 {
		t.Errorf("arguments left over: %q", fs.Args())
	}
}

func TestClaimMountPath(t *testing.T) {
	if got, want := ClaimMountPath("feed-models"), "/var/lib/recpipeline/volumes/feed-models"; got != want {
		t.Errorf("ClaimMountPath = %q, want %q", got, want)
	}
}
