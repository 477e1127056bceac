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
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// configIn decodes the runtime config a ConfigMap of the pipeline holds.
func configIn(t *testing.T, ns, name string) *config.Config {
	t.Helper()
	cm := &corev1.ConfigMap{}
	getObject(t, ns, name, cm)
	var c config.Config
	if err := json.Unmarshal([]byte(cm.Data[config.ConfigKey]), &c); err != nil {
		t.Fatalf("ConfigMap %s: %v", name, err)
	}
	return &c
}

// engagement is an arm's counts on n impressions with the given rates per
// impression.
func engagement(n int64, click, like, seeLess float64) config.ArmCounts {
	return config.ArmCounts{Requests: n / 25, Events: map[string]int64{
		"impression": n, "click": int64(click * float64(n)), "like": int64(like * float64(n)), "see_less": int64(seeLess * float64(n)),
	}}
}

// TestRolloutPromotesAGoodCanaryAndAbortsABadOne drives spec.rollout
// through a good change (stepped, then promoted) and a bad one (aborted,
// the stable config back for everyone, the spec untouched), with the
// frontend pod's per-arm counts fed through the pod status reader.
func TestRolloutPromotesAGoodCanaryAndAbortsABadOne(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "canary")
	rp.Spec.Rollout = &servingv1alpha1.RolloutSpec{
		Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.1}, {Traffic: 0.25}},
		Analysis: servingv1alpha1.RolloutAnalysis{
			MinImpressions: ptr.To[int64](1000),
			Guardrails:     []servingv1alpha1.Guardrail{{Event: "see_less", MaxIncrease: 0.5}},
		},
	}
	createPipeline(t, rp)
	rp = waitReconciled(t, ns, "canary")
	if rp.Status.Rollout != nil {
		t.Errorf("a new pipeline has a rollout: %+v", rp.Status.Rollout)
	}
	frontend := simulateStage(t, rp, config.StageFrontend, rp.Status.ConfigRevision)[0]
	if w := configIn(t, ns, "canary-config-stable").Live.Weights["like"]; w != 2 {
		t.Fatalf("the stable config has like %v, want the spec's 2", w)
	}
	poke := 0
	report := func(arms map[string]config.ArmCounts) {
		t.Helper()
		pods.set(frontend, config.Status{ConfigRevision: getPipeline(t, ns, "canary").Status.ConfigRevision, Arms: arms})
		poke++
		updateLabels(t, ns, "canary", map[string]string{"poke": fmt.Sprint(poke)})
	}

	// A good change is served to 10%, then 25% of the users, then to all.
	updatePipeline(t, ns, "canary", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 3 })
	rp = waitRollout(t, ns, "a canary of like: 3", servingv1alpha1.RolloutProgressing, 0)
	canary, baseline := armsOf(rp.Status.Rollout)
	checkArms(t, configIn(t, ns, "canary-config"), canary, baseline, 0.1, 2, 3)
	report(map[string]config.ArmCounts{canary: engagement(2000, 0.2, 0.05, 0.01), baseline: engagement(2000, 0.2, 0.05, 0.01)})
	waitRollout(t, ns, "the second step", servingv1alpha1.RolloutProgressing, 1)
	checkArms(t, configIn(t, ns, "canary-config"), canary, baseline, 0.25, 2, 3)
	report(map[string]config.ArmCounts{canary: engagement(4000, 0.21, 0.05, 0.01), baseline: engagement(4000, 0.2, 0.05, 0.01)})
	rp = waitRollout(t, ns, "the good change promoted", servingv1alpha1.RolloutPromoted, 1)
	served, stable := configIn(t, ns, "canary-config"), configIn(t, ns, "canary-config-stable")
	if served.Live.Weights["like"] != 3 || len(served.Live.Experiments) != 0 || stable.Live.Weights["like"] != 3 {
		t.Errorf("after the promotion the served config has like %v and arms %v, the stable like %v; want 3, none, 3",
			served.Live.Weights["like"], served.Live.Experiments, stable.Live.Weights["like"])
	}
	if a := rp.Status.Rollout.Arms; len(a) != 2 || a[0].Impressions != 4000 || a[0].Objective <= 0 {
		t.Errorf("status arms %+v, want both arms with their 4000 impressions and objective", a)
	}

	// A bad change: the canary's likes collapse and see_less triples.
	updatePipeline(t, ns, "canary", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = -50 })
	rp = waitRollout(t, ns, "a canary of like: -50", servingv1alpha1.RolloutProgressing, 0)
	canary, baseline = armsOf(rp.Status.Rollout)
	report(map[string]config.ArmCounts{canary: engagement(3000, 0.15, 0.005, 0.03), baseline: engagement(3000, 0.2, 0.05, 0.01)})
	rp = waitStatus(t, ns, "canary", "the bad change aborted and the pipeline degraded", func(rp *servingv1alpha1.RecPipeline) error {
		c := condition(rp, servingv1alpha1.ConditionDegraded)
		if rp.Status.Rollout == nil || rp.Status.Rollout.Phase != servingv1alpha1.RolloutAborted || c.Reason != servingv1alpha1.ReasonRolloutAborted {
			return fmt.Errorf("rollout %+v, Degraded %s %s", rp.Status.Rollout, c.Status, c.Reason)
		}
		return nil
	})
	if rp.Status.Rollout.Reason != reasonGuardrailExceeded && rp.Status.Rollout.Reason != reasonObjectiveDropped {
		t.Errorf("aborted for %q", rp.Status.Rollout.Reason)
	}
	if served := configIn(t, ns, "canary-config"); served.Live.Weights["like"] != 3 || len(served.Live.Experiments) != 0 {
		t.Errorf("after the abort the served config has like %v and arms %v; want the stable 3 for everyone", served.Live.Weights["like"], served.Live.Experiments)
	}
	if w := rp.Spec.Ranking.Weights["like"]; w != -50 {
		t.Errorf("the controller wrote the spec: like %v", w)
	}

	// Reverting the spec clears the degradation; the record stays.
	updatePipeline(t, ns, "canary", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 3 })
	waitStatus(t, ns, "canary", "not degraded once the spec is the stable config again", func(rp *servingv1alpha1.RecPipeline) error {
		if c := condition(rp, servingv1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Degraded %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}

// waitRollout waits for status.rollout to reach phase at step.
func waitRollout(t *testing.T, ns, what string, phase servingv1alpha1.RolloutPhase, step int32) *servingv1alpha1.RecPipeline {
	t.Helper()
	return waitStatus(t, ns, "canary", what, func(rp *servingv1alpha1.RecPipeline) error {
		r := rp.Status.Rollout
		if r == nil || r.Phase != phase || r.Step != step || rp.Status.ObservedGeneration != rp.Generation {
			return fmt.Errorf("rollout %+v", r)
		}
		return nil
	})
}

// checkArms checks that c serves the stable like weight to the control
// arm, and the canary (with the candidate's like weight) and the baseline
// each to traffic of the users, from fixed starts: the canary's at 0 (no
// experiments), the baseline's at the largest step's share (0.25).
func checkArms(t *testing.T, c *config.Config, canary, baseline string, traffic, stableLike, candidateLike float64) {
	t.Helper()
	x := c.Live.Experiments
	if c.Live.Weights["like"] != stableLike || len(x) != 2 {
		t.Fatalf("served like %v with arms %+v; want the stable %v and two arms", c.Live.Weights["like"], x, stableLike)
	}
	if x[0].Name != canary || x[0].Traffic != traffic || x[0].Live == nil || x[0].Live.Weights["like"] != candidateLike || x[0].From == nil || *x[0].From != 0 {
		t.Errorf("canary arm %+v, want %s from 0 at %v serving like %v", x[0], canary, traffic, candidateLike)
	}
	if x[1].Name != baseline || x[1].Traffic != traffic || x[1].Live != nil || len(x[1].Weights) != 0 || x[1].From == nil || *x[1].From != 0.25 {
		t.Errorf("baseline arm %+v, want %s from 0.25 at %v without overrides", x[1], baseline, traffic)
	}
}

// TestACanaryOfAModelSwitchRollsOnlyThatStage: with spec.rollout, pointing
// the second stage at another listed model is a canary: the canary arm
// ranks with the new model, the second-stage pods load both (that stage's
// template changes), and no other stage rolls; on promotion the stage
// drops the old model.
func TestACanaryOfAModelSwitchRollsOnlyThatStage(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "canary")
	rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-v2", URI: "https://models.example/mtml/v13.tar.gz"})
	rp.Spec.Rollout = &servingv1alpha1.RolloutSpec{
		Steps:    []servingv1alpha1.RolloutStep{{Traffic: 0.2}},
		Analysis: servingv1alpha1.RolloutAnalysis{MinImpressions: ptr.To[int64](1000)},
	}
	createPipeline(t, rp)
	rp = waitReconciled(t, ns, "canary")
	frontend := simulateStage(t, rp, config.StageFrontend, rp.Status.ConfigRevision)[0]
	before := templates(t, ns, "canary")

	updatePipeline(t, ns, "canary", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.SecondStage.Model = "mtml-v2" })
	rp = waitRollout(t, ns, "a canary of the model switch", servingv1alpha1.RolloutProgressing, 0)
	served := configIn(t, ns, "canary-config")
	if x := served.Live.Experiments; served.Live.SecondStage.Model != "mtml" || len(x) != 2 || x[0].Live == nil || x[0].Live.SecondStage.Model != "mtml-v2" {
		t.Fatalf("served second stage %q with arms %+v; want mtml with a canary arm on mtml-v2", served.Live.SecondStage.Model, x)
	}
	rolled := func(want ...string) error {
		for stage, d := range templates(t, ns, "canary") {
			changed := d.Spec.Template.Annotations[AnnotationDeployRevision] != before[stage].Spec.Template.Annotations[AnnotationDeployRevision]
			if changed != slices.Contains(want, stage) {
				return fmt.Errorf("stage %s: template changed = %v", stage, changed)
			}
		}
		return nil
	}
	eventually(t, waitTimeout, "only the second stage rolls, to load both models", func() error { return rolled(config.StageRankerSecond) })
	during := templates(t, ns, "canary")[config.StageRankerSecond].Spec.Template.Annotations[AnnotationDeployRevision]

	canary, baseline := armsOf(rp.Status.Rollout)
	pods.set(frontend, config.Status{ConfigRevision: rp.Status.ConfigRevision, Arms: map[string]config.ArmCounts{
		canary: engagement(2000, 0.2, 0.05, 0.01), baseline: engagement(2000, 0.2, 0.05, 0.01),
	}})
	updateLabels(t, ns, "canary", map[string]string{"poke": "1"})
	waitRollout(t, ns, "the model switch promoted", servingv1alpha1.RolloutPromoted, 0)
	if served := configIn(t, ns, "canary-config"); served.Live.SecondStage.Model != "mtml-v2" || len(served.Live.Experiments) != 0 {
		t.Errorf("after the promotion the second stage serves %q with arms %v", served.Live.SecondStage.Model, served.Live.Experiments)
	}
	eventually(t, waitTimeout, "the second stage rolls again to drop the old model, no other stage", func() error {
		if now := templates(t, ns, "canary")[config.StageRankerSecond].Spec.Template.Annotations[AnnotationDeployRevision]; now == during {
			return fmt.Errorf("the second stage still loads both models")
		}
		return rolled(config.StageRankerSecond)
	})
}

// TestShadowStatusAveragesTheRankerPods: a second-stage shadow model is
// loaded by that stage alone, and status.shadow averages what its pods
// report of it.
func TestShadowStatusAveragesTheRankerPods(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "shadow")
	rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-v2", URI: "https://models.example/mtml/v13.tar.gz"})
	rp.Spec.Ranking.SecondStage.Scaling = &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](2)}
	createPipeline(t, rp)
	waitReconciled(t, ns, "shadow")
	before := templates(t, ns, "shadow")

	updatePipeline(t, ns, "shadow", func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Ranking.SecondStage.Shadow = &servingv1alpha1.ShadowSpec{Model: "mtml-v2", Fraction: ptr.To(0.25)}
	})
	rp = waitStatus(t, ns, "shadow", "the shadow in the served config", func(rp *servingv1alpha1.RecPipeline) error {
		if len(rp.Status.Shadow) != 1 || rp.Status.ObservedGeneration != rp.Generation {
			return fmt.Errorf("status.shadow %+v", rp.Status.Shadow)
		}
		return nil
	})
	if sh := configIn(t, ns, "shadow-config").Live.SecondStage.Shadow; sh == nil || sh.Model != "mtml-v2" || sh.Fraction != 0.25 {
		t.Errorf("served shadow %+v", sh)
	}
	for stage, d := range templates(t, ns, "shadow") {
		changed := d.Spec.Template.Annotations[AnnotationDeployRevision] != before[stage].Spec.Template.Annotations[AnnotationDeployRevision]
		if changed != (stage == config.StageRankerSecond) {
			t.Errorf("stage %s: template changed = %v; only ranker-second loads the shadow", stage, changed)
		}
	}
	rankers := simulateStage(t, rp, config.StageRankerSecond, rp.Status.ConfigRevision)
	pods.set(rankers[0], config.Status{ConfigRevision: rp.Status.ConfigRevision, Shadow: map[string]config.ShadowCounts{
		config.StageRankerSecond: {Model: "mtml-v2", Compared: 10, Overlap: 9, Spearman: 8},
	}})
	pods.set(rankers[1], config.Status{ConfigRevision: rp.Status.ConfigRevision, Shadow: map[string]config.ShadowCounts{
		config.StageRankerSecond: {Model: "mtml-v2", Compared: 30, Overlap: 21, Spearman: 12},
	}})
	updateLabels(t, ns, "shadow", map[string]string{"poke": "1"})
	waitStatus(t, ns, "shadow", "status.shadow averaged over both pods", func(rp *servingv1alpha1.RecPipeline) error {
		want := servingv1alpha1.ShadowStatus{Stage: config.StageRankerSecond, Model: "mtml-v2", Compared: 40, Overlap: 0.75, Spearman: 0.5}
		if len(rp.Status.Shadow) != 1 || rp.Status.Shadow[0] != want {
			return fmt.Errorf("status.shadow %+v, want %+v", rp.Status.Shadow, want)
		}
		return nil
	})
}
