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
	"fmt"
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// TestTuningServesTrialsAsArmsAndPromotesTheBest drives spec.tuning on the
// API server: each trial is served as an arm with its baseline, the
// frontend pod's counts end it, status.tuning records every trial and the
// best point, and with promote: Auto the best point serves everyone once
// the search ends; the spec is never written.
func TestTuningServesTrialsAsArmsAndPromotesTheBest(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "tuned")
	rp.Spec.Tuning = tuningSpec(4)
	rp.Spec.Tuning.TrialDuration = &metav1.Duration{Duration: 100 * time.Millisecond}
	rp.Spec.Tuning.Promote = servingv1alpha1.TuningPromoteAuto
	createPipeline(t, rp)
	rp = waitStatus(t, ns, "tuned", "the first trial", func(rp *servingv1alpha1.RecPipeline) error {
		if st := rp.Status.Tuning; st == nil || len(st.Trials) != 1 || rp.Status.ObservedGeneration != rp.Generation {
			return fmt.Errorf("status.tuning %+v", st)
		}
		return nil
	})
	frontend := simulateStage(t, rp, config.StageFrontend, rp.Status.ConfigRevision)[0]

	ended := map[string]bool{}
	for round := 1; ; round++ {
		st := rp.Status.Tuning
		if st.Phase == servingv1alpha1.TuningFinished {
			break
		}
		if round > 6 {
			t.Fatalf("the search did not finish: %+v", st)
		}
		running := st.Trials[len(st.Trials)-1]
		if running.State != servingv1alpha1.TrialRunning {
			t.Fatalf("the last trial is %s, want Running: %+v", running.State, st)
		}
		like := running.Parameters["ranking.weights.like"]
		checkTrialArms(t, configIn(t, ns, "tuned-config"), running.Name, like)
		if round == 1 && like != 2 {
			t.Errorf("the first trial serves like %v, want the point served today, 2", like)
		}
		pods.set(frontend, config.Status{ConfigRevision: rp.Status.ConfigRevision, Arms: map[string]config.ArmCounts{
			running.Name:             engagement(20000, clickRate(like), 0.05, seeLessRate(like)),
			baselineOf(running.Name): engagement(20000, clickRate(2), 0.05, seeLessRate(2)),
		}})
		updateLabels(t, ns, "tuned", map[string]string{"poke": fmt.Sprint(round)})
		rp = waitStatus(t, ns, "tuned", fmt.Sprintf("trial %d ended", round), func(rp *servingv1alpha1.RecPipeline) error {
			st := rp.Status.Tuning
			if st == nil || len(st.Trials) < round || st.Trials[round-1].State == servingv1alpha1.TrialRunning ||
				(st.Phase == servingv1alpha1.TuningRunning && len(st.Trials) != round+1) {
				return fmt.Errorf("status.tuning %+v", st)
			}
			return nil
		})
		ended[running.Name] = true
	}
	st := rp.Status.Tuning
	if len(st.Trials) != 4 || len(ended) != 4 || st.Best == nil {
		t.Fatalf("finished with %d trials (%d ended here) and best %+v", len(st.Trials), len(ended), st.Best)
	}
	for _, tr := range st.Trials {
		if tr.Impressions != 20000 || tr.BaselineImpressions != 20000 || tr.StdErr <= 0 {
			t.Errorf("trial %+v, want both arms' 20000 impressions and a standard error", tr)
		}
	}
	best := st.Best.Parameters["ranking.weights.like"]
	eventually(t, waitTimeout, "the best point serves everyone", func() error {
		served := configIn(t, ns, "tuned-config")
		if served.Live.Weights["like"] != best || len(served.Live.Experiments) != 0 {
			return fmt.Errorf("served like %v with %d arms, want the best %v and none", served.Live.Weights["like"], len(served.Live.Experiments), best)
		}
		return nil
	})
	if w := getPipeline(t, ns, "tuned").Spec.Ranking.Weights["like"]; w != 2 {
		t.Errorf("the controller wrote the spec: like %v", w)
	}
}

// checkTrialArms checks that c serves like 2 to the users in no arm, the
// trial's like to the trial arm from 0 and no override to its baseline
// from 0.1, each to 0.1 of the users.
func checkTrialArms(t *testing.T, c *config.Config, trial string, like float64) {
	t.Helper()
	x := c.Live.Experiments
	if c.Live.Weights["like"] != 2 || len(x) != 2 {
		t.Fatalf("served like %v with arms %+v; want like 2 for the others and two arms", c.Live.Weights["like"], x)
	}
	if x[0].Name != trial || x[0].Weights["like"] != like || *x[0].From != 0 || x[0].Traffic != 0.1 {
		t.Errorf("trial arm %+v, want %s at like %v from 0", x[0], trial, like)
	}
	if x[1].Name != baselineOf(trial) || len(x[1].Weights) != 0 || math.Abs(*x[1].From-0.1) > 1e-12 || x[1].Traffic != 0.1 {
		t.Errorf("baseline arm %+v, want %s without overrides from 0.1", x[1], baselineOf(trial))
	}
}
