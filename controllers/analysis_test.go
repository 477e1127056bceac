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
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// counts is an arm's counts with n impressions and the given events.
func counts(n int64, events map[string]int64) config.ArmCounts {
	c := config.ArmCounts{Requests: n / 25, Events: map[string]int64{impressionEvent: n}}
	for t, k := range events {
		c.Events[t] = k
	}
	return c
}

var defaultObjective = map[string]float64{"click": 1, "like": 2, "see_less": -8}

func TestAnalyseFindsAWorseCanaryOnly(t *testing.T) {
	base := analysisParams{objective: defaultObjective, alpha: 0.05}
	guarded := base
	guarded.guardrails = map[string]float64{"see_less": 0.2}
	tolerant := base
	tolerant.tolerance = 0.1
	baseline := counts(20000, map[string]int64{"click": 4000, "like": 1000, "see_less": 100})
	cases := map[string]struct {
		canary config.ArmCounts
		params analysisParams
		want   string // the reason, "" for not worse
	}{
		"the same engagement": {
			canary: counts(20000, map[string]int64{"click": 4000, "like": 1000, "see_less": 100}), params: base,
		},
		"better engagement": {
			canary: counts(20000, map[string]int64{"click": 4600, "like": 1300, "see_less": 80}), params: base,
		},
		"likes fall by half": {
			canary: counts(20000, map[string]int64{"click": 3800, "like": 500, "see_less": 100}), params: base, want: reasonObjectiveDropped,
		},
		"a 20% drop on few impressions is not yet evidence": {
			canary: counts(300, map[string]int64{"click": 48, "like": 12, "see_less": 2}), params: base,
		},
		"a 4% drop within a 10% tolerance": {
			canary: counts(20000, map[string]int64{"click": 3880, "like": 960, "see_less": 100}), params: tolerant,
		},
		"see_less doubles under a guardrail": {
			canary: counts(20000, map[string]int64{"click": 4000, "like": 1000, "see_less": 200}), params: guarded, want: reasonGuardrailExceeded,
		},
		"see_less up 10% within a 20% guardrail": {
			canary: counts(20000, map[string]int64{"click": 4000, "like": 1000, "see_less": 110}), params: guarded,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			v := analyse(tc.canary, baseline, tc.params)
			if got := map[bool]string{true: v.reason}[v.worse]; got != tc.want {
				t.Errorf("verdict %q (%s), want %q", got, v.message, tc.want)
			}
			if v.message == "" || (v.worse && !strings.Contains(v.message, "canary")) {
				t.Errorf("message %q does not state the comparison", v.message)
			}
		})
	}
}

// simulateArm draws n impressions with a click probability pClick and a
// like, given a click, with probability pLike.
func simulateArm(rng *rand.Rand, c *config.ArmCounts, n int, pClick, pLike, pSeeLess float64) {
	for range n {
		c.Events[impressionEvent]++
		if rng.Float64() < pClick {
			c.Events["click"]++
			if rng.Float64() < pLike {
				c.Events["like"]++
			}
		} else if rng.Float64() < pSeeLess {
			c.Events["see_less"]++
		}
	}
}

// The test is read on every reconcile: over many A/A canaries, each read
// every 500 impressions up to 40,000, it must call no more than about its
// 5% worse. A fixed-sample test read this often calls several times that.
func TestAnalyseKeepsItsFalseAlarmRateUnderRepeatedReading(t *testing.T) {
	if testing.Short() {
		t.Skip("draws 16 million impressions")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const canaries, reads, per = 200, 80, 500
	alarms := 0
	for range canaries {
		c, b := counts(0, nil), counts(0, nil)
		for range reads {
			simulateArm(rng, &c, per, 0.2, 0.25, 0.01)
			simulateArm(rng, &b, per, 0.2, 0.25, 0.01)
			if analyse(c, b, analysisParams{objective: defaultObjective, alpha: 0.05, guardrails: map[string]float64{"see_less": 0}}).worse {
				alarms++
				break
			}
		}
	}
	t.Logf("%d of %d equal canaries called worse", alarms, canaries)
	// 5% of 200 is 10; the binomial 99.9% bound is about 21.
	if alarms > 21 {
		t.Errorf("%d of %d equal canaries were called worse, want at most about 5%%", alarms, canaries)
	}
}

// A canary whose likes fall by a third (the objective by 13%) is caught
// within 40,000 impressions per arm in nearly every run.
func TestAnalyseCatchesARealDrop(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const canaries, reads, per = 50, 80, 500
	caught := 0
	for range canaries {
		c, b := counts(0, nil), counts(0, nil)
		for range reads {
			simulateArm(rng, &c, per, 0.2, 0.16, 0.01)
			simulateArm(rng, &b, per, 0.2, 0.25, 0.01)
			if analyse(c, b, analysisParams{objective: defaultObjective, alpha: 0.05}).worse {
				caught++
				break
			}
		}
	}
	t.Logf("caught %d of %d canaries with a third fewer likes", caught, canaries)
	if caught < 45 {
		t.Errorf("caught %d of %d canaries with a third fewer likes, want at least 45", caught, canaries)
	}
}
