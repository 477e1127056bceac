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
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/bayesopt"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// Online tuning (spec.tuning). Each trial serves a point of the weights'
// box as an arm beside a baseline arm of the config that serves everyone
// else, on fixed slices of the users past the experiments' and the
// rollout's; when both arms have run trialDuration and earned
// minImpressions, the difference of their objectives per impression, with
// its variance over users (rateVariance), is told to a Gaussian process
// (runtime/bayesopt) whose expected improvement picks the next point.
//
// The controller keeps no state between passes: status.tuning holds every
// trial, and each pass that needs the optimiser rebuilds it from them
// (observing what ended, skipping the suggestions made). Trials run one
// after another or concurrentTrials at once; a trial's own baseline makes
// its difference fair to time (users tire of a small catalog, traffic
// changes by the hour), so that trials run hours apart compare.

// Defaults of spec.tuning.
const (
	defaultTuningTraffic   = 0.05
	defaultTrialDuration   = 10 * time.Minute
	defaultTuningMaxTrials = 20
	// tuningArmPrefix begins the names of the trials' arms; the API server
	// refuses spec.experiments named so.
	tuningArmPrefix = "tuning-"
	maxSnippetBytes = 4096
	maxMessageBytes = 1024
)

// secondStageOnly says where tuned value weights act.
const secondStageOnly = "; value weights act at the second stage only: the first stage ranks with its distilled model, whatever the weights"

// tuningParams are spec.tuning resolved.
type tuningParams struct {
	paths          []string
	bounds         []bayesopt.Bounds
	objective      map[string]float64
	guardrails     map[string]float64
	traffic        float64
	duration       time.Duration
	minImpressions int64
	maxTrials      int
	concurrent     int
	seed           uint64
}

// tuningOf resolves spec; the objective defaults to the weights served.
func tuningOf(spec *servingv1alpha1.TuningSpec, servedWeights map[string]float64) tuningParams {
	p := tuningParams{
		objective: maps.Clone(spec.Objective), guardrails: map[string]float64{},
		traffic: defaultTuningTraffic, duration: defaultTrialDuration, minImpressions: defaultMinImpressions,
		maxTrials: defaultTuningMaxTrials, concurrent: 1, seed: uint64(max(spec.Seed, 0)),
	}
	if len(p.objective) == 0 {
		p.objective = maps.Clone(servedWeights)
	}
	for _, x := range spec.Parameters {
		p.paths = append(p.paths, x.Path)
		p.bounds = append(p.bounds, bayesopt.Bounds{Name: x.Path, Lo: x.Min, Hi: x.Max})
	}
	for _, g := range spec.Guardrails {
		p.guardrails[g.Event] = g.MaxIncrease
	}
	if spec.Traffic != nil {
		p.traffic = *spec.Traffic
	}
	if spec.TrialDuration != nil {
		p.duration = spec.TrialDuration.Duration
	}
	if spec.MinImpressions != nil {
		p.minImpressions = *spec.MinImpressions
	}
	if spec.MaxTrials != nil {
		p.maxTrials = int(*spec.MaxTrials)
	}
	if spec.ConcurrentTrials != nil {
		p.concurrent = int(*spec.ConcurrentTrials)
	}
	return p
}

// tuningHash identifies a spec.tuning.
func tuningHash(spec *servingv1alpha1.TuningSpec) string {
	b, _ := json.Marshal(spec) // a struct of plain fields: cannot fail
	return config.Revision(b)[:16]
}

// trialArms names a trial's arm and its baseline's after the search, the
// trial's index and its start, so that no two trials share counts.
func trialArms(hash string, index int, start time.Time) (trial, baseline string) {
	id := config.Revision(fmt.Appendf(nil, "%s/%d@%s", hash, index, start.UTC().Format(time.RFC3339Nano)))[:10]
	return tuningArmPrefix + id + "-trial", tuningArmPrefix + id + "-base"
}

// baselineOf is the name of a trial's baseline arm.
func baselineOf(trial string) string { return strings.TrimSuffix(trial, "-trial") + "-base" }

// tuningRegion is where the trials' slices of the users begin: past the
// experiments' and, with spec.rollout, past the slices its canary and
// baseline take at their largest (stepTraffic).
func tuningRegion(rp *servingv1alpha1.RecPipeline, experiments []config.Experiment) float64 {
	if spec := rp.Spec.Rollout; spec != nil {
		// The baseline's slice starts where the canary's ends and is as
		// wide.
		_, from := stepTraffic(spec, 0, experiments)
		return 2*from[1] - from[0]
	}
	return experimentsEnd(experiments)
}

// pointOf reads the parameters' values from l, clamped into the box: the
// point served today, which the search measures first.
func (p *tuningParams) pointOf(l *config.Live) ([]float64, error) {
	x := make([]float64, len(p.paths))
	for i, path := range p.paths {
		v, err := valueAt(l, path)
		if err != nil {
			return nil, err
		}
		x[i] = min(max(v, p.bounds[i].Lo), p.bounds[i].Hi)
	}
	return x, nil
}

// valueAt is the value of a parameter path in l; a weight the config does
// not set is 0.
func valueAt(l *config.Live, path string) (float64, error) {
	if event, ok := strings.CutPrefix(path, "ranking.weights."); ok {
		return l.Weights[event], nil
	}
	name := strings.TrimSuffix(strings.TrimPrefix(path, "retrieval.sources."), ".weight")
	for _, s := range l.Retrieval.Sources {
		if s.Name == name {
			return s.Weight, nil
		}
	}
	return 0, fmt.Errorf("spec.tuning.parameters: %s names no source of spec.retrieval.sources", path)
}

// experimentOf is the arm that serves a point: overrides of the weights
// and the sources' weights.
func experimentOf(name string, traffic, from float64, params map[string]float64) config.Experiment {
	x := config.Experiment{Name: name, Traffic: traffic, From: &from}
	for _, path := range slices.Sorted(maps.Keys(params)) {
		v := params[path]
		if event, ok := strings.CutPrefix(path, "ranking.weights."); ok {
			if x.Weights == nil {
				x.Weights = map[string]float64{}
			}
			x.Weights[event] = v
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(path, "retrieval.sources."), ".weight")
		x.Sources = append(x.Sources, config.SourceOverride{Name: name, Weight: &v})
	}
	return x
}

// applyPoint returns l with the point's values set.
func applyPoint(l config.Live, params map[string]float64) config.Live {
	x := experimentOf("", 0, 0, params)
	out := l.Arm(&x)
	out.Experiments, out.ExperimentSalt = l.Experiments, l.ExperimentSalt
	return out
}

// planTuning is status.tuning to start this pass from: nil without
// spec.tuning, a new search when spec.tuning changed.
func planTuning(rp *servingv1alpha1.RecPipeline) *servingv1alpha1.TuningStatus {
	spec := rp.Spec.Tuning
	if spec == nil {
		return nil
	}
	hash := tuningHash(spec)
	if prev := rp.Status.Tuning; prev != nil && prev.SpecHash == hash {
		return prev.DeepCopy()
	}
	return &servingv1alpha1.TuningStatus{Phase: servingv1alpha1.TuningRunning, SpecHash: hash, Message: "starting"}
}

// stepTuning ends the running trials that ran long enough, records the
// best point and starts trials while slots and trials are left. current is
// the point served to everyone else now; counts are the arms' counts,
// complete false when a frontend pod did not report (no trial ends then).
// It returns when to look again.
func stepTuning(p *tuningParams, st *servingv1alpha1.TuningStatus, current []float64, counts map[string]config.ArmCounts, complete bool, now time.Time) (time.Duration, error) {
	if st.Phase == servingv1alpha1.TuningBlocked {
		st.Phase = servingv1alpha1.TuningRunning
	}
	requeue := analysisInterval
	ended := false
	var waiting []string
	for i := range st.Trials {
		t := &st.Trials[i]
		if t.State != servingv1alpha1.TrialRunning {
			continue
		}
		trial, base := counts[t.Name], counts[baselineOf(t.Name)]
		t.Impressions, t.BaselineImpressions = impressions(trial), impressions(base)
		t.Objective, t.BaselineObjective = objectiveOf(trial, p.objective), objectiveOf(base, p.objective)
		elapsed := now.Sub(t.StartTime.Time)
		least := min(t.Impressions, t.BaselineImpressions)
		if !complete || elapsed < p.duration || least < p.minImpressions {
			waiting = append(waiting, fmt.Sprintf("%s: %s of %s, %d of %d impressions", t.Name,
				elapsed.Round(time.Second), p.duration, least, p.minImpressions))
			if left := p.duration - elapsed; left > 0 && left < requeue {
				requeue = left
			}
			continue
		}
		endTrial(p, t, trial, base, now)
		ended = true
	}
	if ended || (st.Best == nil && slices.ContainsFunc(st.Trials, func(t servingv1alpha1.TuningTrial) bool { return t.State == servingv1alpha1.TrialDone })) {
		best, err := bestTrial(p, st, current)
		if err != nil {
			return requeue, err
		}
		st.Best = best
	}

	running := 0
	used := map[int32]bool{}
	for _, t := range st.Trials {
		if t.State == servingv1alpha1.TrialRunning {
			running++
			used[t.Slot] = true
		}
	}
	for running < p.concurrent && len(st.Trials) < p.maxTrials {
		x, err := suggest(p, st, current)
		if err != nil {
			return requeue, err
		}
		slot := int32(0)
		for used[slot] {
			slot++
		}
		used[slot] = true
		start := metav1.NewTime(now)
		name, _ := trialArms(st.SpecHash, len(st.Trials), now)
		params := map[string]float64{}
		for i, path := range p.paths {
			params[path] = x[i]
		}
		st.Trials = append(st.Trials, servingv1alpha1.TuningTrial{
			Name: name, State: servingv1alpha1.TrialRunning, Slot: slot, Parameters: params, StartTime: &start,
		})
		waiting = append(waiting, name+": started")
		running++
	}
	switch {
	case running == 0 && len(st.Trials) >= p.maxTrials:
		st.Phase = servingv1alpha1.TuningFinished
		st.Message = fmt.Sprintf("%d trials ended", len(st.Trials))
		if st.Best == nil {
			st.Message += "; none was feasible"
		}
		st.Message += secondStageOnly
		return 0, nil
	default:
		st.Phase = servingv1alpha1.TuningRunning
		st.Message = truncateTo(fmt.Sprintf("trial %d of %d: %s", len(st.Trials), p.maxTrials, strings.Join(waiting, "; ")), maxMessageBytes)
	}
	return requeue, nil
}

// endTrial records what a trial's arms earned: the difference of their
// objectives with its standard error, and whether a guardrail was broken.
func endTrial(p *tuningParams, t *servingv1alpha1.TuningTrial, trial, base config.ArmCounts, now time.Time) {
	end := metav1.NewTime(now)
	t.EndTime = &end
	t.Difference = t.Objective - t.BaselineObjective
	t.StdErr = math.Sqrt(rateVariance(trial, p.objective) + rateVariance(base, p.objective))
	t.State = servingv1alpha1.TrialDone
	for _, event := range slices.Sorted(maps.Keys(p.guardrails)) {
		rt, rb := rate(trial, event), rate(base, event)
		if rt > rb*(1+p.guardrails[event]) {
			t.State = servingv1alpha1.TrialInfeasible
			t.Violation = fmt.Sprintf("%s per impression %.4f against the baseline's %.4f (at most +%.0f%%)", event, rt, rb, 100*p.guardrails[event])
			return
		}
	}
}

// pointOfTrial is a trial's parameters in the order of p.paths.
func (p *tuningParams) pointOfTrial(t *servingv1alpha1.TuningTrial) []float64 {
	x := make([]float64, len(p.paths))
	for i, path := range p.paths {
		x[i] = t.Parameters[path]
	}
	return x
}

// optimizer rebuilds the search from st: the point served today first,
// then the design and the acquisition, with every ended trial observed.
// An infeasible trial is observed below every measured difference, so that
// the process steers away from it.
func optimizer(p *tuningParams, st *servingv1alpha1.TuningStatus, current []float64) (*bayesopt.Optimizer, error) {
	o, err := bayesopt.NewOptimizer(p.bounds, bayesopt.Options{Seed: p.seed, Start: [][]float64{current}})
	if err != nil {
		return nil, err
	}
	lowest, highest := math.Inf(1), math.Inf(-1)
	for _, t := range st.Trials {
		if t.State != servingv1alpha1.TrialRunning {
			lowest, highest = min(lowest, t.Difference), max(highest, t.Difference)
		}
	}
	penalty := lowest - max(highest-lowest, 1e-6)
	for i := range st.Trials {
		t := &st.Trials[i]
		switch t.State {
		case servingv1alpha1.TrialDone:
			err = o.Observe(p.pointOfTrial(t), t.Difference, t.StdErr*t.StdErr)
		case servingv1alpha1.TrialInfeasible:
			err = o.Observe(p.pointOfTrial(t), penalty, t.StdErr*t.StdErr)
		}
		if err != nil {
			return nil, fmt.Errorf("trial %s: %w", t.Name, err)
		}
	}
	o.Skip(len(st.Trials))
	return o, nil
}

// suggest is the next point to serve. Running trials are observed at the
// mean of the measured differences (a "constant liar"), so that trials run
// side by side do not all go to the same point.
func suggest(p *tuningParams, st *servingv1alpha1.TuningStatus, current []float64) ([]float64, error) {
	o, err := optimizer(p, st, current)
	if err != nil {
		return nil, err
	}
	var sum, noise float64
	n := 0
	for _, t := range st.Trials {
		if t.State == servingv1alpha1.TrialDone {
			sum, noise, n = sum+t.Difference, noise+t.StdErr*t.StdErr, n+1
		}
	}
	if n > 0 {
		for i := range st.Trials {
			if t := &st.Trials[i]; t.State == servingv1alpha1.TrialRunning {
				if err := o.Observe(p.pointOfTrial(t), sum/float64(n), noise/float64(n)); err != nil {
					return nil, err
				}
			}
		}
	}
	return o.Suggest()
}

// bestTrial is the feasible ended trial the process rates highest (the
// highest posterior mean: with noisy measurements the highest measured is
// mostly the luckiest), nil when none is feasible.
func bestTrial(p *tuningParams, st *servingv1alpha1.TuningStatus, current []float64) (*servingv1alpha1.TuningBest, error) {
	o, err := optimizer(p, st, current)
	if err != nil {
		return nil, err
	}
	pt, ok, err := o.Best()
	if err != nil || !ok {
		return nil, err
	}
	// The optimiser's point is the trial's up to rounding through the unit
	// box: the nearest ended trial is it.
	var best *servingv1alpha1.TuningTrial
	bestDist := math.Inf(1)
	for i := range st.Trials {
		t := &st.Trials[i]
		if t.State == servingv1alpha1.TrialRunning {
			continue
		}
		d := 0.0
		for j, v := range p.pointOfTrial(t) {
			d += (v - pt.X[j]) * (v - pt.X[j])
		}
		if d < bestDist {
			best, bestDist = t, d
		}
	}
	if best == nil || best.State != servingv1alpha1.TrialDone {
		// An infeasible point is never the best: the feasible trial
		// measured highest is.
		best = nil
		for i := range st.Trials {
			if t := &st.Trials[i]; t.State == servingv1alpha1.TrialDone && (best == nil || t.Difference > best.Difference) {
				best = t
			}
		}
	}
	if best == nil {
		return nil, nil
	}
	return &servingv1alpha1.TuningBest{
		Trial: best.Name, Parameters: maps.Clone(best.Parameters), Difference: best.Difference,
		Snippet: truncateTo(snippet(best.Parameters), maxSnippetBytes),
	}, nil
}

// snippet writes a point as the spec fields to commit.
func snippet(params map[string]float64) string {
	var weights, sources []string
	for _, path := range slices.Sorted(maps.Keys(params)) {
		v := params[path]
		if event, ok := strings.CutPrefix(path, "ranking.weights."); ok {
			weights = append(weights, fmt.Sprintf("    %s: %.4g\n", event, v))
			continue
		}
		name := strings.TrimSuffix(strings.TrimPrefix(path, "retrieval.sources."), ".weight")
		sources = append(sources, fmt.Sprintf("  - name: %s\n    weight: %.4g\n", name, v))
	}
	var b strings.Builder
	if len(weights) > 0 {
		b.WriteString("ranking:\n  weights:\n")
		for _, w := range weights {
			b.WriteString(w)
		}
	}
	if len(sources) > 0 {
		b.WriteString("retrieval:\n  sources:  # merge by name into spec.retrieval.sources\n")
		for _, s := range sources {
			b.WriteString(s)
		}
	}
	return b.String()
}

// tuningArms are the arms that serve the running trials of st: each
// trial's point and its baseline, on the slot's pair of slices from from.
func tuningArms(p *tuningParams, st *servingv1alpha1.TuningStatus, from float64) []config.Experiment {
	var out []config.Experiment
	for _, t := range st.Trials {
		if t.State != servingv1alpha1.TrialRunning {
			continue
		}
		at := from + 2*float64(t.Slot)*p.traffic
		out = append(out,
			experimentOf(t.Name, p.traffic, at, t.Parameters),
			config.Experiment{Name: baselineOf(t.Name), Traffic: p.traffic, From: ptr.To(at + p.traffic)})
	}
	return out
}

// tunedCandidate is the candidate with the best point of a finished search
// when spec.tuning promotes it on its own, the candidate itself otherwise.
func tunedCandidate(rp *servingv1alpha1.RecPipeline, candidate *Rendered) (*Rendered, error) {
	spec, st := rp.Spec.Tuning, rp.Status.Tuning
	if spec == nil || spec.Promote != servingv1alpha1.TuningPromoteAuto || st == nil ||
		st.Phase != servingv1alpha1.TuningFinished || st.SpecHash != tuningHash(spec) || st.Best == nil {
		return candidate, nil
	}
	c := *candidate.Config
	c.Live = applyPoint(c.Live, st.Best.Parameters)
	return encodeConfig(&c)
}

// reconcileTuning steps the search of spec.tuning and adds the running
// trials' arms to the served config in s.rendered. candidate is the spec's
// config, whose experiments the trials' slices follow.
func (r *RecPipelineReconciler) reconcileTuning(ctx context.Context, s *scope, candidate *Rendered, now time.Time) (time.Duration, error) {
	st := planTuning(s.rp)
	requeue, err := r.stepTuningPass(ctx, s, st, candidate, now)
	if err != nil {
		return 0, err
	}
	s.tuning, s.tuned = st, true
	return requeue, nil
}

// stepTuningPass is reconcileTuning's work on st.
func (r *RecPipelineReconciler) stepTuningPass(ctx context.Context, s *scope, st *servingv1alpha1.TuningStatus, candidate *Rendered, now time.Time) (time.Duration, error) {
	if st == nil || st.Phase == servingv1alpha1.TuningFinished {
		return 0, nil
	}
	served := s.rendered.Config
	p := tuningOf(s.rp.Spec.Tuning, served.Live.Weights)
	from := tuningRegion(s.rp, candidate.Config.Live.Experiments)
	if need := from + 2*float64(p.concurrent)*p.traffic; need > 1+1e-9 {
		st.Phase = servingv1alpha1.TuningBlocked
		st.Message = fmt.Sprintf("%d concurrent trials of traffic %g and their baselines need %.3g of the users, and %.3g are left past spec.experiments and spec.rollout",
			p.concurrent, p.traffic, 2*float64(p.concurrent)*p.traffic, 1-from)
		return 0, nil
	}
	current, err := p.pointOf(&served.Live)
	if err != nil {
		st.Phase, st.Message = servingv1alpha1.TuningBlocked, err.Error()
		return 0, nil
	}
	counts, complete, err := r.readArmCounts(ctx, s)
	if err != nil {
		return 0, err
	}
	requeue, err := stepTuning(&p, st, current, counts, complete, now)
	if err != nil {
		return 0, fmt.Errorf("failed to step the tuning of spec.tuning: %w", err)
	}
	arms := tuningArms(&p, st, from)
	if len(arms) == 0 {
		return requeue, nil
	}
	c := *served
	c.Live.Experiments = append(slices.Clone(c.Live.Experiments), arms...)
	rendered, err := encodeConfig(&c)
	if err != nil {
		st.Phase = servingv1alpha1.TuningBlocked
		st.Message = truncateTo("the trials' arms do not render: "+err.Error(), maxMessageBytes)
		return 0, nil
	}
	s.rendered = rendered
	return requeue, nil
}

// tuningTransition is the event of a search's move from before to now:
// finished, blocked, or a new best point; ok is false when none.
func tuningTransition(before, now *servingv1alpha1.TuningStatus) (reason, eventType, note string, ok bool) {
	if now == nil {
		return "", "", "", false
	}
	same := before != nil && before.SpecHash == now.SpecHash
	switch {
	case now.Phase == servingv1alpha1.TuningFinished && (!same || before.Phase != now.Phase):
		if now.Best == nil {
			return "TuningFinished", corev1.EventTypeWarning, "Tuning ended without a feasible point: " + now.Message, true
		}
		return "TuningFinished", corev1.EventTypeNormal, fmt.Sprintf("Tuning ended: best point %s (objective %+.4g per impression against its baseline); commit:\n%s",
			formatPoint(now.Best.Parameters), now.Best.Difference, now.Best.Snippet), true
	case now.Phase == servingv1alpha1.TuningBlocked && (!same || before.Phase != now.Phase):
		return "TuningBlocked", corev1.EventTypeWarning, "Tuning cannot serve its trials: " + now.Message, true
	case now.Best != nil && (!same || before.Best == nil || before.Best.Trial != now.Best.Trial):
		return "TuningBestChanged", corev1.EventTypeNormal, fmt.Sprintf("Tuning's best point is now %s (objective %+.4g per impression against its baseline)",
			formatPoint(now.Best.Parameters), now.Best.Difference), true
	}
	return "", "", "", false
}

// formatPoint writes a point as path=value pairs in path order.
func formatPoint(params map[string]float64) string {
	parts := make([]string, 0, len(params))
	for path, v := range params {
		parts = append(parts, fmt.Sprintf("%s=%.4g", path, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
