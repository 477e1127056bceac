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

package engine

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// TestAShadowModelIsComparedNotServed: a second stage with a shadow ranks
// the control arm's requests with both models and reports their agreement
// (an entry of the same artifact agrees fully); the served scores are the
// stage's own; an arm's requests are not compared; removing the shadow
// drops its report.
func TestAShadowModelIsComparedNotServed(t *testing.T) {
	f := world(t)
	cfg := testConfig(f)
	cfg.Deploy.Models = append(cfg.Deploy.Models, config.Model{Name: "mtml-v2", URI: "file://" + filepath.Join(f.models, "mtml")})
	cfg.Live.SecondStage.Shadow = &config.Shadow{Model: "mtml-v2", Fraction: 1}
	cfg.Live.Experiments = []config.Experiment{{Name: "arm", Traffic: 0.5, Weights: map[string]float64{"like": -50}}}
	e := openStage(t, cfg, config.StageRankerSecond)
	cands := catalogCandidates(e, 80)
	rankAs := func(arm string) {
		if _, err := e.Rank(context.Background(), &RankCall{User: &store.UserState{User: "u1", Now: time.Now()}, Arm: arm, Candidates: cands}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		rankAs(config.ControlArm)
	}
	rankAs("arm")
	got := e.ShadowCounts()[config.StageRankerSecond]
	if got.Model != "mtml-v2" || got.Compared != 3 || got.Overlap != 3 || got.Spearman != 3 {
		t.Errorf("shadow counts %+v, want 3 control requests compared, in full agreement", got)
	}
	plain := *cfg
	plain.Live.SecondStage.Shadow = nil
	if err := e.Apply(&plain, "r2"); err != nil {
		t.Fatal(err)
	}
	if got := e.ShadowCounts(); got != nil {
		t.Errorf("without a shadow the stage reports %v", got)
	}
}
