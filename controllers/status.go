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
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// reconcileFailure is why a reconcile stopped, when the user must hear of
// it: a spec that does not render, or a child that could not be applied.
type reconcileFailure struct {
	// reason is the Degraded condition's reason.
	reason string
	err    error
}

// setStatus derives the status from what one reconcile found. It runs once
// per reconcile, in the deferred status step, and is the only place that
// sets conditions: a reconcile that failed sets Degraded and Ready from its
// failure; one that observed every stage sets the stages, Degraded, Ready
// and Progressing from the observation; one that stopped on any other error
// leaves them as they were. status.observedGeneration follows only a full
// successful pass.
func setStatus(s *scope) {
	status, generation := &s.rp.Status, s.rp.Generation
	if s.rendered != nil {
		status.ConfigRevision = s.rendered.Revision
		status.Endpoint = endpoint(s.rp)
	}
	if s.tuned {
		status.Tuning = s.tuning
	}
	if s.rollout != nil {
		status.Rollout = s.rollout.status
		if r := status.Rollout; r != nil {
			r.Decision = truncateTo(r.Decision, maxDecisionBytes)
		}
	}
	switch {
	case s.failure != nil:
		setFailureConditions(status, generation, s.failure.reason, s.failure.err)
	case s.stages != nil:
		setObservedStatus(status, generation, s.rendered.Revision, s.stages, s.rollout)
		status.Shadow = shadowStatus(s.rendered.Config, s.stages)
		setSourcesCondition(status, generation, s.rendered.Config, s.stages)
	}
	if s.batchObserved {
		status.Precompute, status.Training = s.precompute, s.training
	}
	if s.complete {
		status.ObservedGeneration = generation
	}
}

// setObservedStatus sets the stages' status and the conditions from every
// stage observed; revision is the current config revision.
func setObservedStatus(status *servingv1alpha1.RecPipelineStatus, generation int64, revision string, stages []stageObservation, rollout *rolloutPlan) {
	status.Stages = status.Stages[:0]
	for i := range stages {
		status.Stages = append(status.Stages, stageStatus(&stages[i]))
	}
	status.ReadyStages = readyStages(revision, stages)
	reason, problems := degradedProblems(stages)
	if rollout != nil && rollout.aborted() {
		if reason == "" {
			reason = servingv1alpha1.ReasonRolloutAborted
		}
		problems = append(problems, fmt.Sprintf("the canary of live config %s was rolled back (%s): %s; the stable config %s serves every user until the spec changes",
			rollout.status.CandidateRevision, rollout.status.Reason, rollout.status.Decision, rollout.status.StableRevision))
	}
	// Ready reads Degraded: set it first.
	setDegradedCondition(status, generation, reason, problems)
	setReadyCondition(status, generation, stages)
	setProgressingCondition(status, generation, revision, stages, rollout)
}

// stageObservation is what the controller saw of one stage.
type stageObservation struct {
	Name string
	// Deployment is nil until it exists in the cache.
	Deployment *appsv1.Deployment
	// podStatuses is what the stage's pods report.
	podStatuses
}

// desiredReplicas is what the Deployment asks for (an autoscaler may have
// set it).
func (o *stageObservation) desiredReplicas() int32 {
	if o.Deployment == nil || o.Deployment.Spec.Replicas == nil {
		return 1
	}
	return *o.Deployment.Spec.Replicas
}

// readyPods counts the stage's ready pods whose status was read or not.
func (o *stageObservation) readyPods() int32 {
	var n int32
	for _, c := range o.Revisions {
		n += c
	}
	return n
}

// available is true when the stage has every desired replica available.
func (o *stageObservation) available() bool {
	return o.Deployment != nil && o.Deployment.Status.AvailableReplicas >= o.desiredReplicas()
}

// rolledOut is true when the Deployment controller has acted on the
// current template and every pod runs it.
func (o *stageObservation) rolledOut() bool {
	d := o.Deployment
	if d == nil {
		return false
	}
	want := o.desiredReplicas()
	return d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas == want &&
		d.Status.Replicas == want &&
		d.Status.AvailableReplicas >= want
}

// serves is true when every ready pod serves revision, and the pods seen
// account for every replica the Deployment reports ready (the pod cache may
// lag behind the Deployment's status).
func (o *stageObservation) serves(revision string) bool {
	var seen int32
	for r, n := range o.Revisions {
		if r != revision && n > 0 {
			return false
		}
		seen += n
	}
	return o.Deployment == nil || seen >= o.Deployment.Status.ReadyReplicas
}

// stuck is the Deployment's own verdict that its rollout cannot finish.
func (o *stageObservation) stuck() (string, bool) {
	if o.Deployment == nil {
		return "", false
	}
	for _, c := range o.Deployment.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return c.Message, true
		}
	}
	return "", false
}

// stageStatus is the status entry of one stage.
func stageStatus(o *stageObservation) servingv1alpha1.StageStatus {
	s := servingv1alpha1.StageStatus{Name: o.Name, Replicas: o.desiredReplicas()}
	if o.Deployment != nil {
		s.ReadyReplicas = o.Deployment.Status.ReadyReplicas
		s.UpdatedReplicas = o.Deployment.Status.UpdatedReplicas
	}
	for r, n := range o.Revisions {
		s.Revisions = append(s.Revisions, servingv1alpha1.RevisionCount{Revision: r, Pods: n})
	}
	sort.Slice(s.Revisions, func(i, j int) bool { return s.Revisions[i].Revision < s.Revisions[j].Revision })
	if len(s.Revisions) == 1 && s.Revisions[0].Revision != revisionUnknown {
		s.ConfigRevision = s.Revisions[0].Revision
	}
	return s
}

// degradedProblems lists why the pipeline cannot reach its desired state.
func degradedProblems(stages []stageObservation) (reason string, problems []string) {
	for i := range stages {
		o := &stages[i]
		add := func(r, msg string) {
			if reason == "" {
				reason = r
			}
			problems = append(problems, fmt.Sprintf("stage %s: %s", o.Name, msg))
		}
		if msg, ok := o.stuck(); ok {
			add(servingv1alpha1.ReasonRolloutStuck, msg)
		}
		for _, p := range o.Problems {
			add(servingv1alpha1.ReasonStageFailing, p)
		}
		for _, p := range o.Rejections {
			add(servingv1alpha1.ReasonConfigRejected, p)
		}
	}
	return reason, problems
}

// setDegradedCondition sets Degraded from the problems found; reason names
// the first kind of problem.
func setDegradedCondition(status *servingv1alpha1.RecPipelineStatus, generation int64, reason string, problems []string) {
	c := metav1.Condition{
		Type:               servingv1alpha1.ConditionDegraded,
		Status:             metav1.ConditionFalse,
		Reason:             servingv1alpha1.ReasonAsExpected,
		Message:            "No stage reports a problem",
		ObservedGeneration: generation,
	}
	if len(problems) > 0 {
		c.Status = metav1.ConditionTrue
		c.Reason = reason
		c.Message = truncate(strings.Join(problems, "; "))
	}
	meta.SetStatusCondition(&status.Conditions, c)
}

// setReadyCondition sets Ready: True when every stage has its desired
// replicas available and nothing is degraded.
func setReadyCondition(status *servingv1alpha1.RecPipelineStatus, generation int64, stages []stageObservation) {
	c := metav1.Condition{
		Type:               servingv1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             servingv1alpha1.ReasonServing,
		Message:            fmt.Sprintf("All %d stages have their replicas available", len(stages)),
		ObservedGeneration: generation,
	}
	var unavailable []string
	for i := range stages {
		if !stages[i].available() {
			unavailable = append(unavailable, stages[i].Name)
		}
	}
	switch {
	case meta.IsStatusConditionTrue(status.Conditions, servingv1alpha1.ConditionDegraded):
		c.Status = metav1.ConditionFalse
		c.Reason = servingv1alpha1.ReasonDegraded
		c.Message = "The pipeline is degraded: " + meta.FindStatusCondition(status.Conditions, servingv1alpha1.ConditionDegraded).Message
	case len(unavailable) > 0:
		c.Status = metav1.ConditionFalse
		c.Reason = servingv1alpha1.ReasonStagesUnavailable
		c.Message = "Stages without all replicas available: " + strings.Join(unavailable, ", ")
	}
	c.Message = truncate(c.Message)
	meta.SetStatusCondition(&status.Conditions, c)
}

// setProgressingCondition sets Progressing: True while a stage rolls out a
// new pod template or its ready pods do not all serve revision yet.
func setProgressingCondition(status *servingv1alpha1.RecPipelineStatus, generation int64, revision string, stages []stageObservation, rollout *rolloutPlan) {
	c := metav1.Condition{
		Type:               servingv1alpha1.ConditionProgressing,
		Status:             metav1.ConditionFalse,
		Reason:             servingv1alpha1.ReasonComplete,
		Message:            fmt.Sprintf("All %d stages run the current template and serve config revision %s", len(stages), revision),
		ObservedGeneration: generation,
	}
	rolling, propagating := stageProgress(revision, stages)
	switch {
	case len(rolling) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = servingv1alpha1.ReasonRollingOut
		c.Message = "Stages rolling out: " + strings.Join(rolling, ", ")
	case len(propagating) > 0:
		c.Status = metav1.ConditionTrue
		c.Reason = servingv1alpha1.ReasonPropagatingConfig
		c.Message = fmt.Sprintf("Stages whose pods do not all serve config revision %s yet: %s", revision, strings.Join(propagating, ", "))
	case rollout != nil && rollout.progressing():
		c.Status = metav1.ConditionTrue
		c.Reason = servingv1alpha1.ReasonAnalysingRollout
		c.Message = truncate(fmt.Sprintf("Live config %s is served as a canary to %.1f%% of the users: %s",
			rollout.status.CandidateRevision, 100*rollout.traffic, rollout.status.Decision))
	}
	meta.SetStatusCondition(&status.Conditions, c)
}

// stageProgress lists the stages whose Deployment rolls out a new pod
// template, and of the others those whose ready pods do not all serve
// revision yet.
func stageProgress(revision string, stages []stageObservation) (rolling, propagating []string) {
	for i := range stages {
		switch {
		case !stages[i].rolledOut():
			rolling = append(rolling, stages[i].Name)
		case !stages[i].serves(revision):
			propagating = append(propagating, stages[i].Name)
		}
	}
	return rolling, propagating
}

// setFailureConditions records a reconcile that could not finish: Degraded
// with the reason, and Ready false unless it already is.
func setFailureConditions(status *servingv1alpha1.RecPipelineStatus, generation int64, reason string, err error) {
	setDegradedCondition(status, generation, reason, []string{err.Error()})
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{
		Type:               servingv1alpha1.ConditionReady,
		Status:             metav1.ConditionFalse,
		Reason:             servingv1alpha1.ReasonDegraded,
		Message:            truncate("The pipeline is degraded: " + err.Error()),
		ObservedGeneration: generation,
	})
}

// readyStages counts the stages that are available, rolled out and serve
// revision, as "ready/total".
func readyStages(revision string, stages []stageObservation) string {
	n := 0
	for i := range stages {
		if stages[i].available() && stages[i].rolledOut() && stages[i].serves(revision) {
			n++
		}
	}
	return fmt.Sprintf("%d/%d", n, len(stages))
}

// truncate keeps condition messages within the API's 32768-byte limit
// with room to spare.
func truncate(s string) string { return truncateTo(s, 4096) }

// truncateTo keeps s within max bytes, cut on a character boundary: the
// text may quote a pod's output.
func truncateTo(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max-3], "") + "..."
}

// shadowStatus averages, per ranker stage whose served config has a shadow
// model, the comparisons its pods report of that model.
func shadowStatus(c *config.Config, stages []stageObservation) []servingv1alpha1.ShadowStatus {
	if c == nil {
		return nil
	}
	var out []servingv1alpha1.ShadowStatus
	for i := range stages {
		o := &stages[i]
		var r config.Ranker
		switch o.Name {
		case config.StageRankerFirst:
			r = c.Live.FirstStage
		case config.StageRankerSecond:
			r = c.Live.SecondStage
		default:
			continue
		}
		if r.Shadow == nil {
			continue
		}
		st := servingv1alpha1.ShadowStatus{Stage: o.Name, Model: r.Shadow.Model}
		if sum, ok := o.Shadow[o.Name]; ok && sum.Model == r.Shadow.Model && sum.Compared > 0 {
			n := float64(sum.Compared)
			st.Compared, st.Overlap, st.Spearman = sum.Compared, sum.Overlap/n, sum.Spearman/n
		}
		out = append(out, st)
	}
	return out
}

// Thresholds of the SourcesHealthy condition.
const (
	// maxSourceFailureShare is the share of requests a source may fail.
	maxSourceFailureShare = 0.05
	// minSourceRequests is how many requests the frontends must report
	// before the condition says more than Unknown.
	minSourceRequests = 100
)

// setSourcesCondition sets SourcesHealthy from what the frontend pods
// report of the live config's sources in their latest requests.
func setSourcesCondition(status *servingv1alpha1.RecPipelineStatus, generation int64, c *config.Config, stages []stageObservation) {
	if c == nil {
		return
	}
	var reported map[string]config.SourceCounts
	for i := range stages {
		if stages[i].Name == config.StageFrontend {
			reported = stages[i].Sources
		}
	}
	cond := metav1.Condition{
		Type:               servingv1alpha1.ConditionSourcesHealthy,
		Status:             metav1.ConditionUnknown,
		Reason:             servingv1alpha1.ReasonTooFewRequests,
		ObservedGeneration: generation,
	}
	var requests int64
	var failing []string
	for _, src := range c.Live.Retrieval.Sources {
		n := reported[src.Name]
		requests = max(requests, n.Requests)
		if n.Requests >= minSourceRequests && float64(n.Failed) > maxSourceFailureShare*float64(n.Requests) {
			failing = append(failing, fmt.Sprintf("%s in %.1f%% (%d of %d)", src.Name, 100*float64(n.Failed)/float64(n.Requests), n.Failed, n.Requests))
		}
	}
	switch {
	case len(failing) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, servingv1alpha1.ReasonSourcesFailing
		cond.Message = fmt.Sprintf("Sources failed or missed their deadline in more than %.0f%% of the frontends' latest requests: %s; the lists were made from the other sources' candidates",
			100*maxSourceFailureShare, strings.Join(failing, ", "))
	case requests >= minSourceRequests:
		cond.Status, cond.Reason = metav1.ConditionTrue, servingv1alpha1.ReasonSourcesAnswer
		cond.Message = fmt.Sprintf("Every source answered in time in at least %.0f%% of the frontends' latest %d requests", 100*(1-maxSourceFailureShare), requests)
	default:
		cond.Message = fmt.Sprintf("The frontends report %d requests, fewer than the %d needed to judge the sources", requests, minSourceRequests)
	}
	cond.Message = truncate(cond.Message)
	meta.SetStatusCondition(&status.Conditions, cond)
}
