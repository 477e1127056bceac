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
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The progressive rollout of a live change (spec.rollout).
//
// The stable live config is kept in the ConfigMap <name>-config-stable.
// When the spec's live config (the candidate: everything the pods swap in
// without a restart, experiments aside) differs from it, the config every
// pod reads serves the stable live config to all users but two equal
// shares: a canary arm serving the candidate whole and a baseline arm
// serving the stable config, each named after the candidate's revision so
// that their counts start at zero. On every pass the controller sums the
// arms' counts from the frontend pods, runs the analysis (analysis.go) and
// steps, promotes (the candidate becomes stable) or aborts (the stable
// config serves everyone until the spec changes). The state lives in
// status.rollout and the stable ConfigMap, never in the spec.

// Defaults of spec.rollout.analysis.
const (
	defaultMinImpressions = 1000
	defaultConfidence     = 0.95
)

// analysisInterval is how often a canary's counts are read: nothing
// signals that they grew.
const analysisInterval = 10 * time.Second

// AnnotationAbortedRevision, on the stable ConfigMap, names the live
// revision whose canary was rolled back: the abort is kept there, written
// before the served config drops the canary, as well as in the status.
const AnnotationAbortedRevision = "serving.recpipeline.dev/aborted-live-revision"

// StableConfigMapName is the name of the ConfigMap that keeps a pipeline's
// stable live config.
func StableConfigMapName(rp *servingv1alpha1.RecPipeline) string { return rp.Name + "-config-stable" }

// desiredStableConfigMap keeps the stable config. No pod reads it: the
// runtime's Role names only the served ConfigMap.
func desiredStableConfigMap(rp *servingv1alpha1.RecPipeline, stable []byte, aborted string) *corev1ac.ConfigMapApplyConfiguration {
	cm := corev1ac.ConfigMap(StableConfigMapName(rp), rp.Namespace).
		WithLabels(commonLabels(rp, "")).
		WithOwnerReferences(ownerReference(rp)).
		WithData(map[string]string{config.ConfigKey: string(stable)})
	if aborted != "" {
		cm.WithAnnotations(map[string]string{AnnotationAbortedRevision: aborted})
	}
	return cm
}

// liveRevision is the revision of a live config without its experiments,
// which apply at once and are not canaried.
func liveRevision(l config.Live) (string, error) {
	l.Experiments, l.ExperimentSalt = nil, ""
	b, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("failed to encode live config: %w", err)
	}
	return config.Revision(b), nil
}

// armNames names a rollout's canary and baseline arms after its candidate
// and the time it started, so that a candidate canaried again (X, Y, X)
// gets arms whose counts start at zero.
func armNames(candidate string, start time.Time) (canary, baseline string) {
	id := config.Revision([]byte(candidate + "@" + start.UTC().Format(time.RFC3339Nano)))[:8]
	return "rollout-canary-" + id, "rollout-baseline-" + id
}

// armsOf are the names of a progressing rollout's canary and baseline arms.
func armsOf(st *servingv1alpha1.RolloutStatus) (canary, baseline string) {
	if len(st.Arms) == 2 {
		return st.Arms[0].Name, st.Arms[1].Name
	}
	start := time.Time{}
	if st.StepStartTime != nil {
		start = st.StepStartTime.Time
	}
	return armNames(st.CandidateRevision, start)
}

// rolloutPlan is what one pass of the rollout decided.
type rolloutPlan struct {
	// status is status.rollout after the pass; nil when no canary ever ran.
	status *servingv1alpha1.RolloutStatus
	// serveCandidate: every user gets the candidate, which is (or becomes)
	// the stable config.
	serveCandidate bool
	// traffic is each rollout arm's share while a canary progresses, and
	// from where each arm's slice of the users starts (the canary's, then
	// the baseline's): fixed for the whole canary, so that growing shares
	// move no user from one arm to the other.
	traffic float64
	from    [2]float64
	// requeue is when the canary's counts should be read again.
	requeue time.Duration
}

// planRollout decides, before any count is read, which state the rollout
// of candidate against stable is in. stable is "" when no stable config is
// kept yet; aborted is the live revision the stable ConfigMap records as
// rolled back.
func planRollout(rp *servingv1alpha1.RecPipeline, candidate, stable, aborted string, now time.Time) rolloutPlan {
	prev := rp.Status.Rollout
	supersede := func() rolloutPlan {
		p := rolloutPlan{status: prev.DeepCopy(), serveCandidate: true}
		switch {
		case p.status == nil || p.status.Phase != servingv1alpha1.RolloutProgressing:
		case p.status.CandidateRevision == candidate && candidate == stable:
			// A pass promoted it and kept it as stable, but the status
			// this pass read predates that pass's.
			p.status.Phase, p.status.Reason = servingv1alpha1.RolloutPromoted, reasonPromoted
		default:
			p.status.Phase, p.status.Reason = servingv1alpha1.RolloutSuperseded, reasonSpecChanged
			p.status.Decision = "the spec changed before a decision; the canary was dropped"
		}
		return p
	}
	switch {
	case stable == "" || candidate == stable || rp.Spec.Rollout == nil:
		return supersede()
	}
	if aborted == candidate && (prev == nil || prev.CandidateRevision != candidate || prev.Phase != servingv1alpha1.RolloutAborted) {
		// The abort outlived a status write that failed.
		st := &servingv1alpha1.RolloutStatus{CandidateRevision: candidate, StableRevision: stable, Reason: reasonObjectiveDropped}
		if prev != nil && prev.CandidateRevision == candidate {
			st = prev.DeepCopy()
		}
		st.Phase = servingv1alpha1.RolloutAborted
		return rolloutPlan{status: st}
	}
	if prev != nil && prev.CandidateRevision == candidate && prev.StableRevision == stable {
		switch prev.Phase {
		case servingv1alpha1.RolloutProgressing:
			return rolloutPlan{status: prev.DeepCopy()}
		case servingv1alpha1.RolloutAborted:
			return rolloutPlan{status: prev.DeepCopy()}
		case servingv1alpha1.RolloutPromoted:
			return rolloutPlan{status: prev.DeepCopy(), serveCandidate: true}
		}
	}
	start := metav1.NewTime(now)
	canary, baseline := armNames(candidate, now)
	return rolloutPlan{status: &servingv1alpha1.RolloutStatus{
		Phase: servingv1alpha1.RolloutProgressing, Reason: reasonAnalysing,
		CandidateRevision: candidate, StableRevision: stable,
		StartTime: &start, StepStartTime: &start,
		Arms: []servingv1alpha1.RolloutArmStatus{
			{Name: canary, Revision: candidate},
			{Name: baseline, Revision: stable},
		},
		Decision: "started: waiting for impressions",
	}}
}

// progressing is set while the plan serves a canary.
func (p *rolloutPlan) progressing() bool {
	return p.status != nil && p.status.Phase == servingv1alpha1.RolloutProgressing && !p.serveCandidate
}

// aborted is set when the plan serves the stable config because the
// candidate was found worse.
func (p *rolloutPlan) aborted() bool {
	return p.status != nil && p.status.Phase == servingv1alpha1.RolloutAborted && !p.serveCandidate
}

// analysisOf resolves spec.rollout.analysis; the objective defaults to the
// stable config's weights.
func analysisOf(spec *servingv1alpha1.RolloutSpec, stableWeights map[string]float64) (analysisParams, int64) {
	a := &spec.Analysis
	p := analysisParams{objective: maps.Clone(a.Objective), guardrails: map[string]float64{}, alpha: 1 - defaultConfidence}
	if len(p.objective) == 0 {
		p.objective = maps.Clone(stableWeights)
	}
	if a.MaxObjectiveDrop != nil {
		p.tolerance = *a.MaxObjectiveDrop
	}
	if a.Confidence != nil {
		p.alpha = 1 - *a.Confidence
	}
	for _, g := range a.Guardrails {
		p.guardrails[g.Event] = g.MaxIncrease
	}
	minImpressions := int64(defaultMinImpressions)
	if a.MinImpressions != nil {
		minImpressions = *a.MinImpressions
	}
	return p, minImpressions
}

// stepRollout reads the arms' counts into a progressing plan and steps it:
// abort when the analysis finds the canary worse, next step when the step
// has lasted its pause and earned its impressions, promote after the last.
//
// complete is false when a ready frontend pod did not answer: its counts
// are missing from the sums, which may then only abort, never step.
func stepRollout(spec *servingv1alpha1.RolloutSpec, p *rolloutPlan, counts map[string]config.ArmCounts, complete bool, stableWeights map[string]float64, now time.Time) {
	st := p.status
	params, minImpressions := analysisOf(spec, stableWeights)
	canaryName, baselineName := armsOf(st)
	canary, baseline := counts[canaryName], counts[baselineName]
	st.Arms = []servingv1alpha1.RolloutArmStatus{
		armStatus(canaryName, st.CandidateRevision, canary, params.objective),
		armStatus(baselineName, st.StableRevision, baseline, params.objective),
	}
	if reason, ok := passedOverMore(canary, baseline); ok {
		st.Phase, st.Reason, st.Decision = servingv1alpha1.RolloutAborted, reasonPassedOver, fmt.Sprintf("step %d: %s", st.Step, reason)
		p.requeue = 0
		return
	}
	least := min(impressions(canary), impressions(baseline))
	if complete && least < st.StepStartImpressions {
		// A frontend pod restarted and its counts with it.
		st.StepStartImpressions = least
	}
	pause := durationOf(spec.Steps[min(int(st.Step), len(spec.Steps)-1)].Pause)
	signal := true
	if least < minImpressions {
		st.Decision = fmt.Sprintf("step %d: waiting for %d impressions in each arm (canary %d, baseline %d)",
			st.Step, minImpressions, impressions(canary), impressions(baseline))
	} else {
		v := analyse(canary, baseline, params)
		st.Decision = fmt.Sprintf("step %d: %s", st.Step, v.message)
		if v.worse {
			st.Phase, st.Reason = servingv1alpha1.RolloutAborted, v.reason
			p.requeue = 0
			return
		}
		signal = !v.noSignal
		if v.behind && int(st.Step) >= len(spec.Steps)-1 {
			// Not worse by the evidence, but trailing: the last step
			// holds until the test decides or the canary catches up.
			signal = false
			st.Decision += fmt.Sprintf("; the canary trails by more than the %.0f%% a promotion allows, so the last step holds", 100*max(params.tolerance, promoteMargin))
		}
	}
	if !complete {
		st.Decision += "; a frontend pod did not report its counts, so the step waits"
	}
	if d := spec.ProgressDeadline; d != nil && st.StartTime != nil && now.Sub(st.StartTime.Time) > d.Duration {
		st.Phase, st.Reason = servingv1alpha1.RolloutAborted, reasonDeadline
		st.Decision = fmt.Sprintf("no decision within the progress deadline of %s; %s", d.Duration, st.Decision)
		p.requeue = 0
		return
	}
	elapsed := now.Sub(st.StepStartTime.Time)
	if complete && signal && elapsed >= pause && least >= minImpressions && least-st.StepStartImpressions >= minImpressions {
		if int(st.Step) >= len(spec.Steps)-1 {
			st.Phase, st.Reason = servingv1alpha1.RolloutPromoted, reasonPromoted
			st.Decision = fmt.Sprintf("promoted after %d steps; %s", len(spec.Steps), st.Decision)
			p.serveCandidate = true
			return
		}
		st.Step++
		start := metav1.NewTime(now)
		st.StepStartTime, st.StepStartImpressions = &start, least
		elapsed, pause = 0, durationOf(spec.Steps[st.Step].Pause)
	}
	p.requeue = analysisInterval
	if left := pause - elapsed; left > 0 && left < p.requeue {
		p.requeue = left
	}
}

// Bounds of passedOverMore.
const (
	minPassedOverAnswers = 100
	maxPassedOverExcess  = 0.05
)

// passedOverMore reports a canary whose answers went without a ranker
// stage more often than the baseline's, by more than maxPassedOverExcess
// of its answers over at least minPassedOverAnswers: its config breaks a
// stage (a model switch that fails), and those answers count for no arm,
// so the objective alone would never see it.
func passedOverMore(canary, baseline config.ArmCounts) (string, bool) {
	share := func(c config.ArmCounts) (float64, int64) {
		n := c.Requests + c.PassedOver
		if n == 0 {
			return 0, 0
		}
		return float64(c.PassedOver) / float64(n), n
	}
	cs, cn := share(canary)
	bs, _ := share(baseline)
	if cn < minPassedOverAnswers || cs-bs <= maxPassedOverExcess {
		return "", false
	}
	return fmt.Sprintf("%.1f%% of the canary's %d answers went without a ranker stage, against %.1f%% of the baseline's", 100*cs, cn, 100*bs), true
}

func durationOf(d *metav1.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.Duration
}

func armStatus(name, revision string, c config.ArmCounts, objective map[string]float64) servingv1alpha1.RolloutArmStatus {
	return servingv1alpha1.RolloutArmStatus{
		Name: name, Revision: revision, Requests: c.Requests,
		Impressions: impressions(c), Objective: objectiveOf(c, objective),
	}
}

// stepTraffic is each rollout arm's share at the plan's step, and where
// the canary's and the baseline's slices of the users start. The arms
// follow the experiments' slices: the canary's starts where they end, the
// baseline's as far on as the largest step's share, so that neither moves
// while the shares grow; shares are cut so that everything fits in all
// users.
func stepTraffic(spec *servingv1alpha1.RolloutSpec, step int32, experiments []config.Experiment) (traffic float64, from [2]float64) {
	end := experimentsEnd(experiments)
	largest := 0.0
	for _, st := range spec.Steps {
		largest = max(largest, st.Traffic)
	}
	largest = min(largest, (1-end)/2)
	traffic = min(spec.Steps[min(int(step), len(spec.Steps)-1)].Traffic, largest)
	return traffic, [2]float64{end, end + largest}
}

// experimentsEnd is where the experiments' slices of the users end.
func experimentsEnd(experiments []config.Experiment) float64 {
	end := 0.0
	for _, x := range experiments {
		start := end
		if x.From != nil {
			start = *x.From
		}
		end = max(end, start+x.Traffic)
	}
	return end
}

// composeServing is the config every pod reads under plan: the candidate
// itself, or the stable live config with the spec's experiments and, while
// a canary progresses, the canary and baseline arms.
func composeServing(candidate *config.Config, stable *config.Live, p *rolloutPlan) *config.Config {
	if p.serveCandidate || stable == nil {
		return candidate
	}
	c := *candidate
	live := *stable
	live.Experiments = slices.Clone(candidate.Live.Experiments)
	live.ExperimentSalt = candidate.Live.ExperimentSalt
	if p.progressing() && p.traffic > 0 {
		cand := candidate.Live
		cand.Experiments, cand.ExperimentSalt = nil, ""
		canary, baseline := armsOf(p.status)
		live.Experiments = append(live.Experiments,
			config.Experiment{Name: canary, Traffic: p.traffic, From: &p.from[0], Live: &cand},
			config.Experiment{Name: baseline, Traffic: p.traffic, From: &p.from[1]},
		)
	}
	c.Live = live
	return &c
}

// readFreshStatus replaces the cached status.rollout and status.tuning of
// a pipeline with a rollout or tuning by the API server's: the last pass's
// decision must be the one this pass starts from. A pass that read a status older than its
// predecessor's would serve a canary its predecessor had aborted, until the
// cache caught up, and patch its stale decision over the new one. Only
// this controller writes the status and passes of one pipeline do not
// overlap, so the API server's copy is the last pass's.
func (r *RecPipelineReconciler) readFreshStatus(ctx context.Context, s *scope) error {
	if s.rp.Spec.Rollout == nil && s.rp.Status.Rollout == nil && s.rp.Spec.Tuning == nil && s.rp.Status.Tuning == nil {
		return nil
	}
	fresh := &servingv1alpha1.RecPipeline{}
	if err := r.apiReader().Get(ctx, client.ObjectKeyFromObject(s.rp), fresh); err != nil {
		return fmt.Errorf("failed to read the status of the rollout: %w", err)
	}
	if fresh.UID != s.rp.UID {
		return fmt.Errorf("the pipeline was replaced while it was reconciled")
	}
	s.rp.Status.Rollout, s.rp.Status.Tuning = fresh.Status.Rollout, fresh.Status.Tuning
	// The status patch is computed against this state, so that it carries
	// every field of the rollout and the tuning that this pass changes.
	s.original.Status.Rollout = fresh.Status.Rollout.DeepCopy()
	s.original.Status.Tuning = fresh.Status.Tuning.DeepCopy()
	return nil
}

// readStable reads the stable live config, nil when none is kept (a new
// pipeline, or one made before rollouts) or it cannot be read.
//
// It reads from the API server, not the cache: a pass must see the stable
// config its predecessor promoted. aborted is the live revision the
// ConfigMap records as rolled back.
func (r *RecPipelineReconciler) readStable(ctx context.Context, s *scope) (live *config.Live, aborted string, err error) {
	cm := &corev1.ConfigMap{}
	switch err := r.apiReader().Get(ctx, types.NamespacedName{Namespace: s.rp.Namespace, Name: StableConfigMapName(s.rp)}, cm); {
	case apierrors.IsNotFound(err):
		return nil, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("failed to get ConfigMap %s: %w", StableConfigMapName(s.rp), err)
	}
	if !metav1.IsControlledBy(cm, s.rp) {
		return nil, "", nil
	}
	var c config.Config
	if err := json.Unmarshal([]byte(cm.Data[config.ConfigKey]), &c); err != nil {
		ctrl.LoggerFrom(ctx).Info("Ignoring a stable config that does not decode", "error", err.Error())
		return nil, "", nil
	}
	return &c.Live, cm.Annotations[AnnotationAbortedRevision], nil
}

// readArmCounts sums, over the ready frontend pods, the per-arm counts
// they report, read once a pass; a pod that does not answer counts
// nothing this pass.
func (r *RecPipelineReconciler) readArmCounts(ctx context.Context, s *scope) (map[string]config.ArmCounts, bool, error) {
	if !s.armCountsRead {
		out, complete, err := r.readPodArmCounts(ctx, s)
		if err != nil {
			return nil, false, err
		}
		s.armCounts, s.armsOK, s.armCountsRead = out, complete, true
	}
	return s.armCounts, s.armsOK, nil
}

// readPodArmCounts is readArmCounts' read.
func (r *RecPipelineReconciler) readPodArmCounts(ctx context.Context, s *scope) (out map[string]config.ArmCounts, complete bool, err error) {
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(s.rp.Namespace), client.MatchingLabels(selectorLabels(s.rp, config.StageFrontend))); err != nil {
		return nil, false, fmt.Errorf("failed to list pods of stage %s: %w", config.StageFrontend, err)
	}
	out, complete = map[string]config.ArmCounts{}, r.StatusReader != nil
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp != nil || !podReady(pod) || r.StatusReader == nil {
			continue
		}
		st, err := r.StatusReader.ReadStatus(ctx, pod)
		if err != nil {
			complete = false
			continue
		}
		for arm, c := range st.Arms {
			sum := out[arm]
			if sum.Events == nil {
				sum.Events = map[string]int64{}
			}
			sum.Requests += c.Requests
			sum.PassedOver += c.PassedOver
			for t, n := range c.Events {
				sum.Events[t] += n
			}
			// A user's events on two replicas count as two users: the
			// moments stay sums over (user, replica).
			sum.Users += c.Users
			for k, v := range c.Moments {
				if sum.Moments == nil {
					sum.Moments = map[string]float64{}
				}
				sum.Moments[k] += v
			}
			out[arm] = sum
		}
	}
	return out, complete, nil
}

// reconcileRollout renders the spec's config, the candidate, and decides
// what to serve: the candidate, or the stable config with a canary of the
// candidate, or the stable config after an abort. It records the decision
// in s (the served config in s.rendered, status.rollout in s.rollout) and
// returns the stable config to keep.
func (r *RecPipelineReconciler) reconcileRollout(ctx context.Context, s *scope, candidate *Rendered, now time.Time) (stable []byte, requeue time.Duration, err error) {
	stableLive, aborted, err := r.readStable(ctx, s)
	if err != nil {
		return nil, 0, err
	}
	candRev, err := liveRevision(candidate.Config.Live)
	if err != nil {
		return nil, 0, err
	}
	stableRev := ""
	if stableLive != nil {
		if stableRev, err = liveRevision(*stableLive); err != nil {
			return nil, 0, err
		}
	}
	plan := planRollout(s.rp, candRev, stableRev, aborted, now)
	if plan.progressing() {
		counts, complete, err := r.readArmCounts(ctx, s)
		if err != nil {
			return nil, 0, err
		}
		stepRollout(s.rp.Spec.Rollout, &plan, counts, complete, stableLive.Weights, now)
		plan.traffic, plan.from = stepTraffic(s.rp.Spec.Rollout, plan.status.Step, candidate.Config.Live.Experiments)
		for i := range plan.status.Arms {
			plan.status.Arms[i].Traffic = plan.traffic
		}
		if plan.progressing() && plan.traffic <= 0 {
			plan.status.Decision = "no share of the users is left for the canary: spec.experiments take all of them"
		}
	}

	served := candidate
	if !plan.serveCandidate {
		if served, err = encodeConfig(composeServing(candidate.Config, stableLive, &plan)); err != nil {
			if plan.aborted() {
				// A candidate found worse never serves everyone: what
				// serves now stays until the spec changes.
				err = fmt.Errorf("the canary of live config %s was rolled back, and the stable config no longer renders with the spec's deploy part and experiments: %w; change the spec", candRev, err)
				s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonRolloutAborted, err: err}
				return nil, 0, reconcile.TerminalError(err)
			}
			// The stable config no longer fits the spec (a model it
			// names was removed, an experiment overrides a source only
			// the candidate has): the candidate goes out at once.
			ctrl.LoggerFrom(ctx).Info("Serving the candidate at once: the stable config no longer renders", "error", err.Error())
			plan = rolloutPlan{status: plan.status, serveCandidate: true}
			if plan.status != nil && plan.status.Phase != servingv1alpha1.RolloutPromoted {
				plan.status.Phase, plan.status.Reason = servingv1alpha1.RolloutSuperseded, reasonSpecChanged
				plan.status.Decision = "the stable config no longer renders with the spec, so the candidate serves everyone at once: " + err.Error()
			}
			served = candidate
		}
	}
	s.rendered, s.rollout = served, &plan

	keep := stableLive
	if plan.serveCandidate || keep == nil {
		keep = &candidate.Config.Live
	}
	stableCfg := *candidate.Config
	stableCfg.Live = *keep
	stableCfg.Live.Experiments, stableCfg.Live.ExperimentSalt = nil, ""
	b, err := config.Marshal(&stableCfg)
	if err != nil {
		return nil, 0, err
	}
	return b, plan.requeue, nil
}

// abortedRevision is the live revision the stable ConfigMap records as
// rolled back under plan.
func (p *rolloutPlan) abortedRevision() string {
	if p.aborted() {
		return p.status.CandidateRevision
	}
	return ""
}

// maxDecisionBytes is status.rollout.decision's MaxLength.
const maxDecisionBytes = 1024

// rolloutTransition is the event of a canary's move from before to now:
// started, stepped, promoted, aborted or superseded; ok is false when it
// did not move.
func rolloutTransition(before, now *servingv1alpha1.RolloutStatus) (reason, eventType, note string, ok bool) {
	if now == nil {
		return "", "", "", false
	}
	same := before != nil && before.CandidateRevision == now.CandidateRevision && before.StableRevision == now.StableRevision
	if same && before.Phase == now.Phase && before.Step == now.Step {
		return "", "", "", false
	}
	eventType = corev1.EventTypeNormal
	switch now.Phase {
	case servingv1alpha1.RolloutProgressing:
		if !same || before.Phase != now.Phase {
			return "RolloutStarted", eventType, fmt.Sprintf("Live config %s is served as a canary against the stable %s", now.CandidateRevision, now.StableRevision), true
		}
		return "RolloutStepped", eventType, fmt.Sprintf("Canary of live config %s moved to step %d: %s", now.CandidateRevision, now.Step, now.Decision), true
	case servingv1alpha1.RolloutPromoted:
		return "RolloutPromoted", eventType, fmt.Sprintf("Live config %s is the stable config: %s", now.CandidateRevision, now.Decision), true
	case servingv1alpha1.RolloutAborted:
		return "RolloutAborted", corev1.EventTypeWarning, fmt.Sprintf("Canary of live config %s rolled back (%s): %s", now.CandidateRevision, now.Reason, now.Decision), true
	default:
		return "RolloutSuperseded", eventType, fmt.Sprintf("Canary of live config %s dropped: %s", now.CandidateRevision, now.Decision), true
	}
}
