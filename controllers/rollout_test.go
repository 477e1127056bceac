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

func TestPlanRollout(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	withRollout := func(prev *servingv1alpha1.RolloutStatus) *servingv1alpha1.RecPipeline {
		rp := samplePipeline("ns", "p")
		rp.Spec.Rollout = &servingv1alpha1.RolloutSpec{Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.1}}}
		rp.Status.Rollout = prev
		return rp
	}
	progressing := &servingv1alpha1.RolloutStatus{Phase: servingv1alpha1.RolloutProgressing, CandidateRevision: "cand", StableRevision: "stable", Step: 1}
	aborted := &servingv1alpha1.RolloutStatus{Phase: servingv1alpha1.RolloutAborted, CandidateRevision: "cand", StableRevision: "stable"}
	promoted := &servingv1alpha1.RolloutStatus{Phase: servingv1alpha1.RolloutPromoted, CandidateRevision: "cand", StableRevision: "stable"}
	cases := map[string]struct {
		rp                *servingv1alpha1.RecPipeline
		candidate, stable string
		aborted           string                       // the stable ConfigMap's record
		wantPhase         servingv1alpha1.RolloutPhase // "" for no status
		wantReason        string
		wantCandidate     bool // every user is served the candidate
	}{
		"no stable config yet": {rp: withRollout(nil), candidate: "cand", wantCandidate: true},
		"nothing changed":      {rp: withRollout(nil), candidate: "cand", stable: "cand", wantCandidate: true},
		"no spec.rollout": {
			rp:        func() *servingv1alpha1.RecPipeline { rp := withRollout(nil); rp.Spec.Rollout = nil; return rp }(),
			candidate: "cand", stable: "stable", wantCandidate: true,
		},
		"a live change starts a canary": {rp: withRollout(nil), candidate: "cand", stable: "stable", wantPhase: servingv1alpha1.RolloutProgressing, wantReason: reasonAnalysing},
		"a canary goes on":              {rp: withRollout(progressing), candidate: "cand", stable: "stable", wantPhase: servingv1alpha1.RolloutProgressing},
		"another change restarts it":    {rp: withRollout(progressing), candidate: "next", stable: "stable", wantPhase: servingv1alpha1.RolloutProgressing, wantReason: reasonAnalysing},
		"a revert supersedes it":        {rp: withRollout(progressing), candidate: "stable", stable: "stable", wantPhase: servingv1alpha1.RolloutSuperseded, wantReason: reasonSpecChanged, wantCandidate: true},
		"a promotion read from a stale status": {
			rp: withRollout(progressing), candidate: "cand", stable: "cand", wantPhase: servingv1alpha1.RolloutPromoted, wantReason: reasonPromoted, wantCandidate: true,
		},
		"an aborted candidate stays off":      {rp: withRollout(aborted), candidate: "cand", stable: "stable", wantPhase: servingv1alpha1.RolloutAborted},
		"a promoted candidate becomes stable": {rp: withRollout(promoted), candidate: "cand", stable: "stable", wantPhase: servingv1alpha1.RolloutPromoted, wantCandidate: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := planRollout(tc.rp, tc.candidate, tc.stable, tc.aborted, now)
			var phase servingv1alpha1.RolloutPhase
			if p.status != nil {
				phase = p.status.Phase
			}
			if phase != tc.wantPhase || p.serveCandidate != tc.wantCandidate {
				t.Fatalf("phase %q serving the candidate %v, want %q %v", phase, p.serveCandidate, tc.wantPhase, tc.wantCandidate)
			}
			if tc.wantReason != "" && p.status.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q", p.status.Reason, tc.wantReason)
			}
			if tc.wantReason == reasonAnalysing && (p.status.Step != 0 || !p.status.StepStartTime.Time.Equal(now) || p.status.CandidateRevision != tc.candidate) {
				t.Errorf("a new canary %+v, want step 0 from now on %s", p.status, tc.candidate)
			}
		})
	}
}

func TestStepRollout(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	spec := &servingv1alpha1.RolloutSpec{
		Steps: []servingv1alpha1.RolloutStep{
			{Traffic: 0.1, Pause: &metav1.Duration{Duration: time.Minute}},
			{Traffic: 0.3},
		},
		Analysis: servingv1alpha1.RolloutAnalysis{MinImpressions: ptr.To[int64](1000)},
	}
	weights := map[string]float64{"click": 1, "like": 2, "see_less": -8}
	good, bad := engagement(3000, 0.2, 0.05, 0.01), engagement(3000, 0.1, 0.01, 0.03)
	passedOver := func(c config.ArmCounts, n int64) config.ArmCounts {
		c.PassedOver = n
		return c
	}
	cases := map[string]struct {
		step          int32
		started       time.Duration // before now
		startImpr     int64
		canary        config.ArmCounts
		baseline      config.ArmCounts
		incomplete    bool // a frontend pod did not answer
		wantPhase     servingv1alpha1.RolloutPhase
		wantStep      int32
		wantStartImpr int64
		wantReason    string
	}{
		"too few impressions":                                 {started: time.Hour, canary: engagement(500, 0.2, 0.05, 0.01), baseline: good, wantPhase: servingv1alpha1.RolloutProgressing},
		"the pause is not over":                               {started: 30 * time.Second, canary: good, baseline: good, wantPhase: servingv1alpha1.RolloutProgressing},
		"the step is done":                                    {started: time.Hour, canary: good, baseline: good, wantPhase: servingv1alpha1.RolloutProgressing, wantStep: 1, wantStartImpr: 3000},
		"the last step promotes":                              {step: 1, started: time.Hour, startImpr: 1500, canary: good, baseline: good, wantPhase: servingv1alpha1.RolloutPromoted, wantStep: 1, wantStartImpr: 1500, wantReason: reasonPromoted},
		"the last step needs more":                            {step: 1, started: time.Hour, startImpr: 2500, canary: good, baseline: good, wantPhase: servingv1alpha1.RolloutProgressing, wantStep: 1, wantStartImpr: 2500},
		"a worse canary aborts":                               {started: 30 * time.Second, canary: bad, baseline: good, wantPhase: servingv1alpha1.RolloutAborted, wantReason: reasonObjectiveDropped},
		"a worse canary aborts on partial counts":             {started: 30 * time.Second, canary: bad, baseline: good, incomplete: true, wantPhase: servingv1alpha1.RolloutAborted, wantReason: reasonObjectiveDropped},
		"a restarted pod's counts start the step again":       {step: 1, started: time.Hour, startImpr: 9000, canary: good, baseline: good, wantPhase: servingv1alpha1.RolloutProgressing, wantStep: 1, wantStartImpr: 3000},
		"a pod that did not answer moves nothing":             {step: 1, started: time.Hour, startImpr: 9000, canary: good, baseline: good, incomplete: true, wantPhase: servingv1alpha1.RolloutProgressing, wantStep: 1, wantStartImpr: 9000},
		"a canary whose answers go without a ranker aborts":   {started: 30 * time.Second, canary: passedOver(good, 30), baseline: passedOver(good, 2), wantPhase: servingv1alpha1.RolloutAborted, wantReason: reasonPassedOver},
		"answers passed over in both arms alike move nothing": {started: 30 * time.Second, canary: passedOver(good, 30), baseline: passedOver(good, 28), wantPhase: servingv1alpha1.RolloutProgressing},
		"partial counts never promote":                        {step: 1, started: time.Hour, startImpr: 1500, canary: good, baseline: good, incomplete: true, wantPhase: servingv1alpha1.RolloutProgressing, wantStep: 1, wantStartImpr: 1500},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			start := metav1.NewTime(now.Add(-tc.started))
			p := rolloutPlan{status: &servingv1alpha1.RolloutStatus{
				Phase: servingv1alpha1.RolloutProgressing, CandidateRevision: "cand", StableRevision: "stable",
				Step: tc.step, StepStartTime: &start, StepStartImpressions: tc.startImpr,
			}}
			canary, baseline := armsOf(p.status)
			complete := !tc.incomplete
			stepRollout(spec, &p, map[string]config.ArmCounts{canary: tc.canary, baseline: tc.baseline}, complete, weights, now)
			if p.status.StepStartImpressions != tc.wantStartImpr {
				t.Errorf("step start impressions %d, want %d", p.status.StepStartImpressions, tc.wantStartImpr)
			}
			if p.status.Phase != tc.wantPhase || p.status.Step != tc.wantStep {
				t.Fatalf("phase %s step %d (%s), want %s step %d", p.status.Phase, p.status.Step, p.status.Decision, tc.wantPhase, tc.wantStep)
			}
			if tc.wantReason != "" && p.status.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q", p.status.Reason, tc.wantReason)
			}
			if p.status.Phase == servingv1alpha1.RolloutProgressing && (p.requeue <= 0 || p.requeue > analysisInterval) {
				t.Errorf("requeue %v while progressing", p.requeue)
			}
			if p.serveCandidate != (tc.wantPhase == servingv1alpha1.RolloutPromoted) {
				t.Errorf("serving the candidate: %v", p.serveCandidate)
			}
		})
	}
}

func TestStepTrafficKeepsTheArmsSlices(t *testing.T) {
	spec := &servingv1alpha1.RolloutSpec{Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.05}, {Traffic: 0.2}, {Traffic: 0.5}}}
	cases := map[string]struct {
		step        int32
		experiments []config.Experiment
		traffic     float64
		from        [2]float64
	}{
		"the first step":         {step: 0, traffic: 0.05, from: [2]float64{0, 0.5}},
		"the last step":          {step: 2, traffic: 0.5, from: [2]float64{0, 0.5}},
		"beside an experiment":   {step: 0, experiments: []config.Experiment{{Traffic: 0.4}}, traffic: 0.05, from: [2]float64{0.4, 0.7}},
		"cut beside experiments": {step: 2, experiments: []config.Experiment{{Traffic: 0.4}}, traffic: 0.3, from: [2]float64{0.4, 0.7}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			traffic, from := stepTraffic(spec, tc.step, tc.experiments)
			if math.Abs(traffic-tc.traffic) > 1e-9 || math.Abs(from[0]-tc.from[0]) > 1e-9 || math.Abs(from[1]-tc.from[1]) > 1e-9 {
				t.Errorf("traffic %v from %v, want %v from %v", traffic, from, tc.traffic, tc.from)
			}
		})
	}
}

// A canary that trails at its last step without evidence that it is worse
// is held, not promoted.
func TestATrailingCanaryIsNotPromoted(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	spec := &servingv1alpha1.RolloutSpec{
		Steps:    []servingv1alpha1.RolloutStep{{Traffic: 0.1}},
		Analysis: servingv1alpha1.RolloutAnalysis{MinImpressions: ptr.To[int64](100)},
	}
	start := metav1.NewTime(now.Add(-time.Hour))
	p := rolloutPlan{status: &servingv1alpha1.RolloutStatus{
		Phase: servingv1alpha1.RolloutProgressing, CandidateRevision: "cand", StableRevision: "stable", StepStartTime: &start,
	}}
	canary, baseline := armsOf(p.status)
	// 20% fewer clicks on 300 impressions: far from evidence, well behind.
	stepRollout(spec, &p, map[string]config.ArmCounts{canary: engagement(300, 0.16, 0.04, 0.01), baseline: engagement(300, 0.2, 0.05, 0.01)},
		true, map[string]float64{"click": 1, "like": 2, "see_less": -8}, now)
	if p.status.Phase != servingv1alpha1.RolloutProgressing || !strings.Contains(p.status.Decision, "trails") {
		t.Errorf("phase %s (%s), want the last step held", p.status.Phase, p.status.Decision)
	}
}

// A canary without a decision past spec.rollout.progressDeadline is rolled
// back; within it, it waits.
func TestACanaryPastItsProgressDeadlineIsRolledBack(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	spec := &servingv1alpha1.RolloutSpec{
		Steps:            []servingv1alpha1.RolloutStep{{Traffic: 0.1}},
		Analysis:         servingv1alpha1.RolloutAnalysis{MinImpressions: ptr.To[int64](1000)},
		ProgressDeadline: &metav1.Duration{Duration: 30 * time.Minute},
	}
	for name, tc := range map[string]struct {
		started time.Duration
		want    servingv1alpha1.RolloutPhase
	}{
		"within the deadline": {started: 10 * time.Minute, want: servingv1alpha1.RolloutProgressing},
		"past the deadline":   {started: 31 * time.Minute, want: servingv1alpha1.RolloutAborted},
	} {
		t.Run(name, func(t *testing.T) {
			start := metav1.NewTime(now.Add(-tc.started))
			p := rolloutPlan{status: &servingv1alpha1.RolloutStatus{
				Phase: servingv1alpha1.RolloutProgressing, CandidateRevision: "cand", StableRevision: "stable",
				StartTime: &start, StepStartTime: &start,
			}}
			canary, baseline := armsOf(p.status)
			// Too few impressions for any verdict.
			stepRollout(spec, &p, map[string]config.ArmCounts{canary: engagement(50, 0.2, 0.05, 0.01), baseline: engagement(50, 0.2, 0.05, 0.01)},
				true, map[string]float64{"click": 1, "like": 2}, now)
			if p.status.Phase != tc.want || (tc.want == servingv1alpha1.RolloutAborted && p.status.Reason != reasonDeadline) {
				t.Errorf("phase %s reason %s (%s), want %s", p.status.Phase, p.status.Reason, p.status.Decision, tc.want)
			}
		})
	}
}
