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
	"sort"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// The canary analysis: is the canary arm worse than the baseline arm?
//
// Each arm's counts are impressions and events by type. The objective of an
// arm is J = Σ_t w_t·k_t/n (k_t events of type t on n impressions). The
// controller reads the counts on every pass, so the test must stay valid
// however often it is read: it is a mixture sequential probability ratio
// test (mSPRT; Johari, Pekelis and Walsh, "Always valid inference", 2017)
// on the normal approximation of the difference of the arms. No library
// here implements it; it is a closed form of a few lines.
//
// The variance of one impression's value Σ_t w_t·X_t needs the events'
// covariances, which the pods do not count (they count events by type).
// It is bounded instead: each X_t is taken as a Bernoulli draw of rate p_t
// (Poisson, variance p_t, when p_t ≥ 1), and each covariance by its
// largest magnitude (maxCovariance; a like mostly follows a click, so
// events of one impression are correlated, and assuming them independent
// would understate the variance and abort good changes). The bound costs a
// little power, not false alarms.
//
// That bound is the fallback. Impressions of one user are correlated too
// (some users engage more than others), and the users, not the
// impressions, are what the arms draw at random: the pods therefore also
// report, per arm, sums over users of products of each user's counts
// (config.ArmCounts.Moments), from which rateVariance takes the variance
// over users. Without them (a pod that does not report them) the test
// treats impressions as independent, and where users differ much its
// false-alarm rate rises above the one asked for (500 users per arm whose
// click rates spread with a standard deviation of 0.2 aborted 27 of 200
// equal canaries at 0.95).

// analysisParams are the resolved settings of one analysis.
type analysisParams struct {
	objective map[string]float64
	// tolerance is the objective drop tolerated, as a fraction of the
	// baseline's scale.
	tolerance  float64
	guardrails map[string]float64
	// alpha is 1 - confidence: the chance of calling a canary worse that
	// is not.
	alpha float64
}

// verdict is what one analysis found.
type verdict struct {
	// worse is set when the canary is worse with the confidence asked.
	worse bool
	// reason is ObjectiveDropped or GuardrailExceeded when worse.
	reason string
	// message states the comparison with its numbers.
	message string
	// canary and baseline objectives per impression.
	canary, baseline float64
	// noSignal is set when none of the objective's events was counted in
	// the baseline: nothing to compare (an objective naming events the
	// pods never count), so no verdict may promote.
	noSignal bool
	// behind is set when the canary's objective, as measured, trails the
	// baseline's by more than a promotion allows (promoteMargin, or the
	// tolerance if larger), significant or not.
	behind bool
}

// promoteMargin is the most, as a fraction of the baseline's weighted
// event rate, by which a canary's measured objective may trail the
// baseline's when its last step ends: the sequential test aborts only on
// evidence, and a canary with too little traffic for evidence must not be
// promoted on a trailing estimate.
const promoteMargin = 0.05

// Rollout reasons.
const (
	reasonAnalysing         = "Analysing"
	reasonPromoted          = "Promoted"
	reasonObjectiveDropped  = "ObjectiveDropped"
	reasonGuardrailExceeded = "GuardrailExceeded"
	reasonSpecChanged       = "SpecChanged"
	reasonDeadline          = "ProgressDeadlineExceeded"
	reasonPassedOver        = "StagesPassedOver"
)

// impressionEvent is the event type of an impression.
const impressionEvent = "impression"

// impressions is how many impressions an arm earned.
func impressions(c config.ArmCounts) int64 { return c.Events[impressionEvent] }

// objectiveOf is an arm's objective per impression.
func objectiveOf(c config.ArmCounts, weights map[string]float64) float64 {
	n := impressions(c)
	if n == 0 {
		return 0
	}
	j := 0.0
	for t, w := range weights {
		j += w * float64(c.Events[t]) / float64(n)
	}
	return j
}

// rate is an event's rate per impression, with half an event added so
// that an arm without events still has a variance.
func rate(c config.ArmCounts, event string) float64 {
	return (float64(c.Events[event]) + 0.5) / (float64(impressions(c)) + 1)
}

// valueVariance bounds the variance of one impression's weighted value
// (see the comment at the top of this file).
func valueVariance(c config.ArmCounts, weights map[string]float64) float64 {
	types := make([]string, 0, len(weights))
	for t := range weights {
		if t != impressionEvent {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	v := 0.0
	for i, s := range types {
		ps := rate(c, s)
		vs := ps * (1 - ps)
		if ps >= 1 {
			vs = ps // events repeated on an impression: Poisson
		}
		v += weights[s] * weights[s] * vs
		for _, t := range types[i+1:] {
			v += 2 * math.Abs(weights[s]*weights[t]) * maxCovariance(ps, rate(c, t))
		}
	}
	return v
}

// rateVariance is the variance of an arm's weighted events per
// impression, Σ_t w_t·K_t / N. Where the arm reports its moments over
// users (the unit the arms draw at random), it is the delta method's for a
// ratio of sums over users, Σ_u (Y_u − J·N_u)² / N², with Y_u the user's
// weighted events and N_u the user's impressions; otherwise the bound of
// valueVariance over impressions taken as independent.
func rateVariance(c config.ArmCounts, weights map[string]float64) float64 {
	n := float64(impressions(c))
	if n == 0 {
		return 0
	}
	nn := c.Moments[config.MomentKey(impressionEvent, impressionEvent)]
	if c.Users < 2 || nn == 0 {
		return valueVariance(c, weights) / n
	}
	j := objectiveOf(c, weights)
	var yy, yn float64
	for s, ws := range weights {
		if s == impressionEvent {
			continue
		}
		yn += ws * c.Moments[config.MomentKey(s, impressionEvent)]
		for t, wt := range weights {
			if t != impressionEvent {
				yy += ws * wt * c.Moments[config.MomentKey(s, t)]
			}
		}
	}
	v := (yy - 2*j*yn + j*j*nn) / (n * n)
	if v <= 0 {
		// No event of the weights' types yet: the bound, which counts half
		// an event (rate), keeps the test from reading certainty into it.
		return valueVariance(c, weights) / n
	}
	return v
}

// maxCovariance bounds |Cov(X, Y)| of events of rates p and q per
// impression: for two Bernoulli draws the covariance lies in
// [max(0, p+q−1) − pq, min(p, q) − pq]; for a rate of 1 or more (events
// repeated on an impression) Cauchy–Schwarz with Poisson variances.
func maxCovariance(p, q float64) float64 {
	if p >= 1 || q >= 1 {
		return math.Sqrt(p * q)
	}
	return max(min(p, q)-p*q, p*q-max(0, p+q-1))
}

// msprt is the mixture likelihood ratio of the hypothesis that the true
// difference is 0, for an estimated difference delta of variance v, with a
// normal mixture of variance tau2 over the alternatives. Rejecting when it
// reaches 1/alpha keeps the false-alarm rate at most alpha however many
// times it is read.
func msprt(delta, v, tau2 float64) float64 {
	if v <= 0 || tau2 <= 0 {
		return 1
	}
	return math.Sqrt(v/(v+tau2)) * math.Exp(tau2*delta*delta/(2*v*(v+tau2)))
}

// effectScales are the relative effects the test is mixed over. One
// mixing variance makes the test most sensitive to effects of about its
// size and slow to see much larger ones while the variance is still large;
// the average of mSPRTs over several is a test martingale too (each has
// mean 1 under the null), so it keeps the false-alarm bound and sees a 2%
// drift and a 50% collapse alike.
var effectScales = []float64{0.02, 0.05, 0.1, 0.2, 0.5}

// msprtMix is msprt averaged over mixing standard deviations of
// effectScales times scale.
func msprtMix(delta, v, scale float64) float64 {
	var sum float64
	for _, f := range effectScales {
		tau := f * scale
		sum += msprt(delta, v, tau*tau)
	}
	return sum / float64(len(effectScales))
}

// analyse compares the canary with the baseline: the objective may not
// drop by more than the tolerance, nor a guardrailed event's rate rise by
// more than its bound, with the confidence asked.
func analyse(canary, baseline config.ArmCounts, p analysisParams) verdict {
	v := verdict{canary: objectiveOf(canary, p.objective), baseline: objectiveOf(baseline, p.objective)}
	nc, nb := float64(impressions(canary)), float64(impressions(baseline))
	if nc == 0 || nb == 0 {
		v.message = "no impressions yet"
		return v
	}
	// The objective and every guardrail are tested: each at alpha divided
	// among them (Bonferroni), so that the chance of any false alarm stays
	// within alpha.
	threshold := float64(1+len(p.guardrails)) / p.alpha

	// Guardrails first: they bound harm whatever the objective says.
	events := make([]string, 0, len(p.guardrails))
	for e := range p.guardrails {
		events = append(events, e)
	}
	sort.Strings(events)
	for _, e := range events {
		m := p.guardrails[e]
		rc, rb := rate(canary, e), rate(baseline, e)
		delta := rc - (1+m)*rb
		variance := rateVariance(canary, map[string]float64{e: 1}) + (1+m)*(1+m)*rateVariance(baseline, map[string]float64{e: 1})
		if delta > 0 && msprtMix(delta, variance, math.Max(rb, rc)) >= threshold {
			v.worse, v.reason = true, reasonGuardrailExceeded
			v.message = fmt.Sprintf("%s per impression rose from %.4f (baseline, %d impressions) to %.4f (canary, %d impressions), more than the %.0f%% allowed",
				e, float64(baseline.Events[e])/nb, int64(nb), float64(canary.Events[e])/nc, int64(nc), 100*m)
			return v
		}
	}

	// The objective, on the scale of the baseline's weighted event rates.
	scale := 0.0
	for t, w := range p.objective {
		if t != impressionEvent {
			scale += math.Abs(w) * float64(baseline.Events[t]) / nb
		}
	}
	if scale == 0 {
		v.noSignal = true
		v.message = "none of the objective's events was counted in the baseline arm: check spec.rollout.analysis.objective against the events clients post"
		return v
	}
	v.behind = v.baseline-v.canary > math.Max(p.tolerance, promoteMargin)*scale
	delta := v.canary - v.baseline + p.tolerance*scale
	variance := rateVariance(canary, p.objective) + rateVariance(baseline, p.objective)
	lr := msprtMix(delta, variance, scale)
	if delta < 0 && lr >= threshold {
		v.worse, v.reason = true, reasonObjectiveDropped
		v.message = fmt.Sprintf("objective per impression %.4f (canary, %d impressions) against %.4f (baseline, %d impressions): lower by %.4f, more than the tolerated %.0f%% of the baseline's %.4f weighted events per impression",
			v.canary, int64(nc), v.baseline, int64(nb), v.baseline-v.canary, 100*p.tolerance, scale)
		return v
	}
	v.message = fmt.Sprintf("objective per impression %.4f (canary, %d impressions) against %.4f (baseline, %d impressions): not worse so far (evidence %.2g of the %.0f needed)",
		v.canary, int64(nc), v.baseline, int64(nb), lr, threshold)
	return v
}
