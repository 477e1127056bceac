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
	"math/rand/v2"
	"sort"
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

// feedArm draws n impressions of an arm whose users click with pClick; a
// click is followed by a like (64%) and a comment (13%), no click by a
// see_less (1.7%): the rates the simulated users of the e2e world show.
func feedArm(rng *rand.Rand, c *config.ArmCounts, n int, pClick float64) {
	for range n {
		c.Events[impressionEvent]++
		if rng.Float64() < pClick {
			c.Events["click"]++
			if rng.Float64() < 0.64 {
				c.Events["like"]++
			}
			if rng.Float64() < 0.13 {
				c.Events["comment"]++
			}
		} else if rng.Float64() < 0.017 {
			c.Events["see_less"]++
		}
	}
}

// BenchmarkRolloutDetection reports how many impressions per arm the
// canary analysis needs to call a canary worse whose objective is 5% (and
// 10%, 20%) below the baseline's, read every 1,000 impressions per arm as
// the controller reads the counts, at the default confidence (0.95); and
// how often an equal canary is called worse within 1,000,000 impressions
// per arm. Objective: click 1, like 2, comment 4, see_less -8 (0.51 per
// impression at the baseline's rates).
//
//	KUBEBUILDER_ASSETS=$PWD/bin/k8s go test -run '^$' -bench RolloutDetection -benchtime 1x ./controllers/
func BenchmarkRolloutDetection(b *testing.B) {
	objective := map[string]float64{"click": 1, "like": 2, "comment": 4, "see_less": -8}
	value := func(pClick float64) float64 {
		return pClick*(1+2*0.64+4*0.13) - 8*0.017*(1-pClick)
	}
	const base, trials, step, limit = 0.22, 20, 1000, 1000000
	for iter := 0; iter < b.N; iter++ {
		rng := rand.New(rand.NewPCG(uint64(iter), 7))
		for _, drop := range []float64{0, 0.05, 0.10, 0.20} {
			// The click rate that lowers the objective by drop.
			target := (1 - drop) * value(base)
			pClick := (target + 8*0.017) / (1 + 2*0.64 + 4*0.13 + 8*0.017)
			var needed []int
			for range trials {
				c, bl := counts(0, nil), counts(0, nil)
				n := 0
				for n < limit {
					feedArm(rng, &c, step, pClick)
					feedArm(rng, &bl, step, base)
					n += step
					if analyse(c, bl, analysisParams{objective: objective, alpha: 0.05}).worse {
						needed = append(needed, n)
						break
					}
				}
			}
			name := fmt.Sprintf("drop%.0f%%", 100*drop)
			b.ReportMetric(float64(len(needed))/trials, name+"_called_worse")
			if drop > 0 && len(needed) > 0 {
				sort.Ints(needed)
				b.ReportMetric(float64(needed[len(needed)/2]), name+"_median_impressions_per_arm")
			}
		}
	}
}

// An objective naming events the pods never count gives no signal: no
// verdict, and nothing the rollout may promote on.
func TestAnalyseOfAnObjectiveNoEventMatches(t *testing.T) {
	arm := counts(20000, map[string]int64{"click": 4000, "like": 1000})
	v := analyse(arm, arm, analysisParams{objective: map[string]float64{"clik": 1}, alpha: 0.05})
	if v.worse || !v.noSignal || !strings.Contains(v.message, "spec.rollout.analysis.objective") {
		t.Errorf("verdict %+v, want no signal that names the objective", v)
	}
}

// userArm is an arm of users who differ in how often they click: each
// user's click probability is drawn once around 0.2 (standard deviation
// 0.2, clipped to [0.01, 0.95]); counts and moments are over those users.
type userArm struct {
	pClick []float64
	counts []map[string]int64
}

func newUserArm(rng *rand.Rand, users int) *userArm {
	a := &userArm{}
	for range users {
		a.pClick = append(a.pClick, min(0.95, max(0.01, 0.2+0.2*rng.NormFloat64())))
		a.counts = append(a.counts, map[string]int64{})
	}
	return a
}

// serve shows every user perUser impressions.
func (a *userArm) serve(rng *rand.Rand, perUser int) {
	for u, p := range a.pClick {
		for range perUser {
			a.counts[u][impressionEvent]++
			if rng.Float64() < p {
				a.counts[u]["click"]++
				if rng.Float64() < 0.25 {
					a.counts[u]["like"]++
				}
			}
		}
	}
}

// armCounts are the arm's counts, with the moments over users when asked.
func (a *userArm) armCounts(moments bool) config.ArmCounts {
	c := counts(0, nil)
	types := []string{impressionEvent, "click", "like"}
	if moments {
		c.Moments = map[string]float64{}
		c.Users = int64(len(a.counts))
	}
	for _, k := range a.counts {
		for i, s := range types {
			c.Events[s] += k[s]
			if !moments {
				continue
			}
			for _, t := range types[i:] {
				c.Moments[config.MomentKey(s, t)] += float64(k[s] * k[t])
			}
		}
	}
	return c
}

// With users who differ, equal canaries read every round must be called
// worse no more than about 5% of the time when the pods report moments over
// users; treating impressions as independent calls them worse far more.
func TestAnalyseOverUsersKeepsItsFalseAlarmRate(t *testing.T) {
	if testing.Short() {
		t.Skip("draws 12 million impressions")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	const canaries, reads, users = 100, 30, 500
	alarms := map[bool]int{}
	for range canaries {
		c, b := newUserArm(rng, users), newUserArm(rng, users)
		called := map[bool]bool{}
		for range reads {
			c.serve(rng, 2)
			b.serve(rng, 2)
			for _, moments := range []bool{true, false} {
				if !called[moments] && analyse(c.armCounts(moments), b.armCounts(moments), analysisParams{objective: map[string]float64{"click": 1, "like": 2}, alpha: 0.05}).worse {
					called[moments] = true
				}
			}
		}
		for m, v := range called {
			if v {
				alarms[m]++
			}
		}
	}
	t.Logf("equal canaries called worse: %d of %d over users, %d of %d over impressions", alarms[true], canaries, alarms[false], canaries)
	// 5% of 100 is 5; the binomial 99.9% bound is about 13.
	if alarms[true] > 13 {
		t.Errorf("%d of %d equal canaries were called worse with moments over users, want at most about 5%%", alarms[true], canaries)
	}
}

// A collapse (a third of the clicks) among 50 users per arm is caught
// within 1,000 impressions per arm, with the variance over users.
func TestAnalyseOverUsersCatchesACollapse(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	c, b := newUserArm(rng, 50), newUserArm(rng, 50)
	for i := range c.pClick {
		c.pClick[i] /= 3
	}
	p := analysisParams{objective: map[string]float64{"click": 1, "like": 2}, alpha: 0.05}
	for read := 1; read <= 4; read++ {
		c.serve(rng, 5)
		b.serve(rng, 5)
		if v := analyse(c.armCounts(true), b.armCounts(true), p); v.worse {
			return
		}
	}
	t.Error("a canary with a third of the clicks was not caught within 1,000 impressions per arm")
}
