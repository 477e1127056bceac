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

package controllers

import (
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// tuningSpec searches like in [-4, 6] over trials of 1 minute.
func tuningSpec(trials int32) *servingv1alpha1.TuningSpec {
	return &servingv1alpha1.TuningSpec{
		Parameters:     []servingv1alpha1.TuningParameter{{Path: "ranking.weights.like", Min: -4, Max: 6}},
		Objective:      map[string]float64{"click": 1},
		Guardrails:     []servingv1alpha1.Guardrail{{Event: "see_less", MaxIncrease: 0.5}},
		Traffic:        ptr.To(0.1),
		TrialDuration:  &metav1.Duration{Duration: time.Minute},
		MinImpressions: ptr.To[int64](1000),
		MaxTrials:      ptr.To(trials),
		Seed:           3,
	}
}

// clickRate is a world's click rate per impression at a like weight: best
// at 3; see_less triples past 5.
func clickRate(like float64) float64 { return 0.2 * math.Exp(-(like-3)*(like-3)/4) }

func seeLessRate(like float64) float64 {
	if like > 5 {
		return 0.03
	}
	return 0.01
}

// armCounts are an arm's counts on 20,000 impressions at a like weight.
func armCounts(like float64) config.ArmCounts {
	const n = 20000
	return config.ArmCounts{Requests: n / 25, Events: map[string]int64{
		"impression": n, "click": int64(math.Round(clickRate(like) * n)), "see_less": int64(seeLessRate(like) * n),
	}}
}

// TestTuningFindsTheBestWeightTrialByTrial drives stepTuning as the
// controller does, pass after pass, with counts from a world whose click
// rate peaks at like 3: every trial is served as an arm beside its
// baseline, ends after its minute and impressions, and the best point
// lands near the peak, never on a point that broke the guardrail.
func TestTuningFindsTheBestWeightTrialByTrial(t *testing.T) {
	rp := samplePipeline("ns", "tuned")
	rp.Spec.Tuning = tuningSpec(12)
	served := &config.Live{Weights: map[string]float64{"click": 1, "like": 2}}
	p := tuningOf(rp.Spec.Tuning, served.Weights)
	current, err := p.pointOf(served)
	if err != nil || current[0] != 2 {
		t.Fatalf("the point served is %v (%v), want like 2", current, err)
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	names := map[string]bool{}
	for pass := 0; pass < 200; pass++ {
		st := planTuning(rp)
		counts := map[string]config.ArmCounts{}
		for _, tr := range st.Trials {
			if tr.State == servingv1alpha1.TrialRunning {
				counts[tr.Name] = armCounts(tr.Parameters["ranking.weights.like"])
				counts[baselineOf(tr.Name)] = armCounts(2)
			}
		}
		if _, err := stepTuning(&p, st, current, counts, true, now); err != nil {
			t.Fatal(err)
		}
		arms := tuningArms(&p, st, 0.2)
		for _, tr := range st.Trials {
			names[tr.Name] = true
		}
		if st.Phase == servingv1alpha1.TuningRunning && (len(arms) != 2 || *arms[0].From != 0.2 || math.Abs(*arms[1].From-0.3) > 1e-12 || arms[1].Weights != nil) {
			t.Fatalf("pass %d serves arms %+v, want the trial from 0.2 and its baseline (no overrides) from 0.3", pass, arms)
		}
		rp.Status.Tuning = st
		if st.Phase == servingv1alpha1.TuningFinished {
			break
		}
		now = now.Add(30 * time.Second)
	}
	st := rp.Status.Tuning
	if st.Phase != servingv1alpha1.TuningFinished || len(st.Trials) != 12 || len(names) != 12 {
		t.Fatalf("phase %s with %d trials (%d names), want Finished after 12 uniquely named: %s", st.Phase, len(st.Trials), len(names), st.Message)
	}
	if got := st.Trials[0].Parameters["ranking.weights.like"]; got != 2 {
		t.Errorf("the first trial served like %v, want the point served today, 2", got)
	}
	infeasible := 0
	for _, tr := range st.Trials {
		like := tr.Parameters["ranking.weights.like"]
		if want := like > 5; (tr.State == servingv1alpha1.TrialInfeasible) != want {
			t.Errorf("trial at like %.2f is %s (%s)", like, tr.State, tr.Violation)
		}
		if tr.State == servingv1alpha1.TrialInfeasible {
			infeasible++
		}
		if tr.StdErr <= 0 || tr.EndTime == nil {
			t.Errorf("trial %s ended at %v with standard error %v", tr.Name, tr.EndTime, tr.StdErr)
		}
	}
	best := st.Best
	if best == nil {
		t.Fatal("no best point")
	}
	like := best.Parameters["ranking.weights.like"]
	t.Logf("best like %.3f (difference %+.4f) after %d trials, %d infeasible", like, best.Difference, len(st.Trials), infeasible)
	if math.Abs(like-3) > 0.5 || like > 5 {
		t.Errorf("best like %.3f, want within 0.5 of 3 and feasible", like)
	}
	if !strings.Contains(best.Snippet, "ranking:\n  weights:\n    like: ") {
		t.Errorf("snippet %q", best.Snippet)
	}
}

func TestTuningArmsFitPastExperimentsAndRollout(t *testing.T) {
	rp := samplePipeline("ns", "tuned")
	experiments := []config.Experiment{{Name: "a", Traffic: 0.2}}
	if from := tuningRegion(rp, experiments); from != 0.2 {
		t.Errorf("trials start at %v after an experiment of 0.2, want 0.2", from)
	}
	rp.Spec.Rollout = &servingv1alpha1.RolloutSpec{Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.1}, {Traffic: 0.25}}}
	if from := tuningRegion(rp, experiments); math.Abs(from-0.7) > 1e-12 {
		t.Errorf("trials start at %v past the rollout's 2 × 0.25, want 0.7", from)
	}

	// Three concurrent trials of 0.1 and their baselines take 0.6: blocked
	// past the rollout's 0.5, and the pass leaves the served config alone.
	rp.Spec.Tuning = tuningSpec(4)
	rp.Spec.Tuning.ConcurrentTrials = ptr.To[int32](3)
	r := &RecPipelineReconciler{}
	cand, err := renderConfig(rp)
	if err != nil {
		t.Fatal(err)
	}
	s := &scope{rp: rp, rendered: cand}
	if _, err := r.reconcileTuning(t.Context(), s, cand, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.tuning.Phase != servingv1alpha1.TuningBlocked || !strings.Contains(s.tuning.Message, "0.6 of the users") || s.rendered != cand {
		t.Errorf("phase %s (%s), served config replaced %v; want Blocked and unchanged", s.tuning.Phase, s.tuning.Message, s.rendered != cand)
	}
}

func TestAutoPromotionServesTheBestPoint(t *testing.T) {
	rp := samplePipeline("ns", "tuned")
	rp.Spec.Tuning = tuningSpec(4)
	cand, err := renderConfig(rp)
	if err != nil {
		t.Fatal(err)
	}
	rp.Status.Tuning = &servingv1alpha1.TuningStatus{
		Phase: servingv1alpha1.TuningFinished, SpecHash: tuningHash(rp.Spec.Tuning),
		Best: &servingv1alpha1.TuningBest{Trial: "t", Parameters: map[string]float64{"ranking.weights.like": 3.5, "retrieval.sources.trending.weight": 0.3}},
	}
	got, err := tunedCandidate(rp, cand)
	if err != nil || got != cand {
		t.Fatalf("with promote Manual the candidate changed (%v)", err)
	}
	rp.Spec.Tuning.Promote = servingv1alpha1.TuningPromoteAuto
	if got, _ = tunedCandidate(rp, cand); got != cand {
		t.Errorf("a best point of another spec.tuning was served")
	}
	rp.Status.Tuning.SpecHash = tuningHash(rp.Spec.Tuning)
	got, err = tunedCandidate(rp, cand)
	if err != nil {
		t.Fatal(err)
	}
	l := got.Config.Live
	trending := 0.0
	for _, s := range l.Retrieval.Sources {
		if s.Name == "trending" {
			trending = s.Weight
		}
	}
	if l.Weights["like"] != 3.5 || l.Weights["click"] != 1 || trending != 0.3 || got.Revision == cand.Revision {
		t.Errorf("the promoted candidate has weights %v and trending %v (revision %s), want like 3.5 beside the others and trending 0.3", l.Weights, trending, got.Revision)
	}
}
