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
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

const (
	curRev = "rev-current"
	oldRev = "rev-old"
	stGen  = int64(7)
)

// Stage observations as the controller sees them, each with a hand-made
// Deployment status. Every stage wants two replicas.

func obsDeployment(mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Generation: 3},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](2)},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 3,
			Replicas:           2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2,
		},
	}
	if mutate != nil {
		mutate(d)
	}
	return d
}

func obsHealthy(name string) stageObservation {
	return stageObservation{Name: name, Deployment: obsDeployment(nil), podStatuses: podStatuses{Revisions: map[string]int32{curRev: 2}}}
}

func obsUnavailable(name string) stageObservation {
	o := obsHealthy(name)
	o.Deployment = obsDeployment(func(d *appsv1.Deployment) {
		d.Status.ReadyReplicas, d.Status.AvailableReplicas = 1, 1
	})
	o.Revisions = map[string]int32{curRev: 1}
	return o
}

// obsRolling surges a third pod of the new template.
func obsRolling(name string) stageObservation {
	o := obsHealthy(name)
	o.Deployment = obsDeployment(func(d *appsv1.Deployment) {
		d.Status.Replicas, d.Status.UpdatedReplicas = 3, 1
	})
	return o
}

func obsNotObserved(name string) stageObservation {
	o := obsHealthy(name)
	o.Deployment = obsDeployment(func(d *appsv1.Deployment) { d.Generation = 4 })
	return o
}

func obsStuck(name string) stageObservation {
	o := obsRolling(name)
	o.Deployment.Status.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "feed-retrieval-7d9" has timed out progressing.`,
	}}
	return o
}

func obsMixed(name string) stageObservation {
	o := obsHealthy(name)
	o.Revisions = map[string]int32{curRev: 1, oldRev: 1}
	return o
}

func obsUnknown(name string) stageObservation {
	o := obsHealthy(name)
	o.Revisions = map[string]int32{revisionUnknown: 2}
	return o
}

func obsMissing(name string) stageObservation {
	return stageObservation{Name: name}
}

func obsFailing(name string, problems ...string) stageObservation {
	o := obsUnavailable(name)
	o.Problems = problems
	return o
}

// allHealthyBut returns the four stages healthy but for the ones given.
func allHealthyBut(replace ...stageObservation) []stageObservation {
	var out []stageObservation
	for _, s := range Stages {
		o := obsHealthy(s)
		for _, r := range replace {
			if r.Name == s {
				o = r
			}
		}
		out = append(out, o)
	}
	return out
}

type wantCondition struct {
	status   metav1.ConditionStatus
	reason   string
	contains []string
	excludes []string
}

func checkCondition(t *testing.T, status *servingv1alpha1.RecPipelineStatus, typ string, want wantCondition) {
	t.Helper()
	c := meta.FindStatusCondition(status.Conditions, typ)
	if c == nil {
		t.Fatalf("no %s condition in %+v", typ, status.Conditions)
	}
	if c.Status != want.status || c.Reason != want.reason {
		t.Errorf("%s = %s/%s (%q), want %s/%s", typ, c.Status, c.Reason, c.Message, want.status, want.reason)
	}
	if c.ObservedGeneration != stGen {
		t.Errorf("%s observedGeneration = %d, want %d", typ, c.ObservedGeneration, stGen)
	}
	for _, s := range want.contains {
		if !strings.Contains(c.Message, s) {
			t.Errorf("%s message %q lacks %q", typ, c.Message, s)
		}
	}
	for _, s := range want.excludes {
		if strings.Contains(c.Message, s) {
			t.Errorf("%s message %q names %q", typ, c.Message, s)
		}
	}
}

func degradedStatus(message string) *servingv1alpha1.RecPipelineStatus {
	s := &servingv1alpha1.RecPipelineStatus{}
	setDegradedCondition(s, stGen, servingv1alpha1.ReasonRolloutStuck, []string{message})
	return s
}

func TestSetReadyCondition(t *testing.T) {
	tests := map[string]struct {
		status *servingv1alpha1.RecPipelineStatus
		stages []stageObservation
		want   wantCondition
	}{
		"every replica available": {
			stages: allHealthyBut(),
			want:   wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonServing, contains: []string{"All 4 stages"}},
		},
		"pods on an old config revision still serve": {
			stages: allHealthyBut(obsMixed(config.StageRetrieval), obsUnknown(config.StageRankerFirst)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonServing},
		},
		"a rollout with every replica available still serves": {
			stages: allHealthyBut(obsRolling(config.StageRankerSecond)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonServing},
		},
		"a stage short of a replica": {
			stages: allHealthyBut(obsUnavailable(config.StageRetrieval)),
			want: wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonStagesUnavailable,
				contains: []string{config.StageRetrieval}, excludes: []string{config.StageFrontend, config.StageRankerFirst}},
		},
		"a stage without its Deployment yet": {
			stages: allHealthyBut(obsMissing(config.StageFrontend), obsUnavailable(config.StageRankerSecond)),
			want: wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonStagesUnavailable,
				contains: []string{config.StageFrontend, config.StageRankerSecond}, excludes: []string{config.StageRetrieval}},
		},
		"degraded wins over available replicas": {
			status: degradedStatus("stage retrieval: deadline exceeded"),
			stages: allHealthyBut(),
			want: wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonDegraded,
				contains: []string{"stage retrieval: deadline exceeded"}},
		},
		"degraded wins over unavailable replicas": {
			status: degradedStatus("stage retrieval: deadline exceeded"),
			stages: allHealthyBut(obsUnavailable(config.StageRetrieval)),
			want:   wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonDegraded, contains: []string{"degraded"}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := tc.status
			if status == nil {
				status = &servingv1alpha1.RecPipelineStatus{}
			}
			setReadyCondition(status, stGen, tc.stages)
			checkCondition(t, status, servingv1alpha1.ConditionReady, tc.want)
		})
	}
}

func TestSetProgressingCondition(t *testing.T) {
	tests := map[string]struct {
		stages []stageObservation
		want   wantCondition
	}{
		"every stage rolled out and serving the revision": {
			stages: allHealthyBut(),
			want:   wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonComplete, contains: []string{curRev}},
		},
		"a rollout surging a new pod": {
			stages: allHealthyBut(obsRolling(config.StageRankerFirst)),
			want: wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonRollingOut,
				contains: []string{config.StageRankerFirst}, excludes: []string{config.StageRetrieval}},
		},
		"a template the Deployment controller has not seen yet": {
			stages: allHealthyBut(obsNotObserved(config.StageFrontend)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonRollingOut, contains: []string{config.StageFrontend}},
		},
		"a stage without its Deployment yet": {
			stages: allHealthyBut(obsMissing(config.StageRetrieval)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonRollingOut, contains: []string{config.StageRetrieval}},
		},
		"pods on mixed config revisions": {
			stages: allHealthyBut(obsMixed(config.StageRetrieval)),
			want: wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonPropagatingConfig,
				contains: []string{config.StageRetrieval, curRev}, excludes: []string{config.StageFrontend}},
		},
		"pods of unknown revision": {
			stages: allHealthyBut(obsUnknown(config.StageRankerSecond)),
			want: wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonPropagatingConfig,
				contains: []string{config.StageRankerSecond}},
		},
		"rolling out wins over propagating": {
			stages: allHealthyBut(obsMixed(config.StageRetrieval), obsRolling(config.StageRankerFirst)),
			want: wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonRollingOut,
				contains: []string{config.StageRankerFirst}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := &servingv1alpha1.RecPipelineStatus{}
			setProgressingCondition(status, stGen, curRev, tc.stages, nil)
			checkCondition(t, status, servingv1alpha1.ConditionProgressing, tc.want)
		})
	}
}

func TestSetDegradedCondition(t *testing.T) {
	long := strings.Repeat("x", 10000)
	tests := map[string]struct {
		reason   string
		problems []string
		want     wantCondition
		maxLen   int
	}{
		"no problem": {
			want: wantCondition{status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonAsExpected},
		},
		"problems joined under the reason": {
			reason:   servingv1alpha1.ReasonStageFailing,
			problems: []string{"stage retrieval: pod a: CrashLoopBackOff: boom", "stage frontend: pod b: ImagePullBackOff: nope"},
			want: wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonStageFailing,
				contains: []string{"stage retrieval: pod a: CrashLoopBackOff: boom; stage frontend: pod b: ImagePullBackOff: nope"}},
		},
		"a long message is truncated": {
			reason:   servingv1alpha1.ReasonStageFailing,
			problems: []string{long},
			want:     wantCondition{status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonStageFailing, contains: []string{"xxx..."}},
			maxLen:   4096,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := &servingv1alpha1.RecPipelineStatus{}
			setDegradedCondition(status, stGen, tc.reason, tc.problems)
			checkCondition(t, status, servingv1alpha1.ConditionDegraded, tc.want)
			if c := meta.FindStatusCondition(status.Conditions, servingv1alpha1.ConditionDegraded); tc.maxLen > 0 && len(c.Message) > tc.maxLen {
				t.Errorf("message of %d bytes, want at most %d", len(c.Message), tc.maxLen)
			}
		})
	}
}

func TestDegradedProblems(t *testing.T) {
	tests := map[string]struct {
		stages       []stageObservation
		wantReason   string
		wantProblems []string
	}{
		"healthy stages": {
			stages: allHealthyBut(),
		},
		"unavailable and rolling stages are not problems": {
			stages: allHealthyBut(obsUnavailable(config.StageRetrieval), obsRolling(config.StageFrontend), obsMixed(config.StageRankerFirst), obsMissing(config.StageRankerSecond)),
		},
		"a rollout past its deadline": {
			stages:       allHealthyBut(obsStuck(config.StageRetrieval)),
			wantReason:   servingv1alpha1.ReasonRolloutStuck,
			wantProblems: []string{`stage retrieval: ReplicaSet "feed-retrieval-7d9" has timed out progressing.`},
		},
		"failing pods in two stages": {
			stages: allHealthyBut(
				obsFailing(config.StageRetrieval, "pod r-1: CrashLoopBackOff: bad catalog"),
				obsFailing(config.StageRankerSecond, "pod s-1: ImagePullBackOff: not found", "pod s-2: ImagePullBackOff: not found"),
			),
			wantReason: servingv1alpha1.ReasonStageFailing,
			wantProblems: []string{
				"stage retrieval: pod r-1: CrashLoopBackOff: bad catalog",
				"stage ranker-second: pod s-1: ImagePullBackOff: not found",
				"stage ranker-second: pod s-2: ImagePullBackOff: not found",
			},
		},
		"a stuck rollout of failing pods is stuck": {
			stages: allHealthyBut(func() stageObservation {
				o := obsStuck(config.StageRankerFirst)
				o.Problems = []string{"pod f-1: exited with code 2: no model"}
				return o
			}()),
			wantReason: servingv1alpha1.ReasonRolloutStuck,
			wantProblems: []string{
				`stage ranker-first: ReplicaSet "feed-retrieval-7d9" has timed out progressing.`,
				"stage ranker-first: pod f-1: exited with code 2: no model",
			},
		},
		"a pod refusing the config": {
			stages: func() []stageObservation {
				stages := allHealthyBut()
				stages[0].Rejections = []string{"pod f-0 refused config revision r2: live.weights.share: not a head"}
				return stages
			}(),
			wantReason:   servingv1alpha1.ReasonConfigRejected,
			wantProblems: []string{"stage frontend: pod f-0 refused config revision r2: live.weights.share: not a head"},
		},
		"the first kind of problem names the reason": {
			stages: allHealthyBut(
				obsFailing(config.StageRetrieval, "pod r-1: CrashLoopBackOff: bad catalog"),
				obsStuck(config.StageRankerFirst),
			),
			wantReason: servingv1alpha1.ReasonStageFailing,
			wantProblems: []string{
				"stage retrieval: pod r-1: CrashLoopBackOff: bad catalog",
				`stage ranker-first: ReplicaSet "feed-retrieval-7d9" has timed out progressing.`,
			},
		},
		"a progressing rollout is not stuck": {
			stages: allHealthyBut(func() stageObservation {
				o := obsRolling(config.StageRetrieval)
				o.Deployment.Status.Conditions = []appsv1.DeploymentCondition{{
					Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "ReplicaSetUpdated",
				}}
				return o
			}()),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reason, problems := degradedProblems(tc.stages)
			if reason != tc.wantReason || !reflect.DeepEqual(problems, tc.wantProblems) {
				t.Errorf("degradedProblems = %q %q, want %q %q", reason, problems, tc.wantReason, tc.wantProblems)
			}
		})
	}
}

// TestSetStatus: the status is derived once per reconcile from what it
// found, and a reconcile that stopped early changes only what it knows.
func TestSetStatus(t *testing.T) {
	prior := []metav1.Condition{{Type: servingv1alpha1.ConditionProgressing, Status: metav1.ConditionFalse,
		Reason: servingv1alpha1.ReasonComplete, Message: "before", ObservedGeneration: stGen - 1}}
	rendered := &Rendered{Revision: curRev}
	tests := map[string]struct {
		scope func(s *scope)
		// want maps each condition type to its status and reason;
		// unchanged ones keep the prior condition.
		want                   map[string]wantCondition
		wantRevision           string
		wantStages             string
		wantObservedGeneration int64
	}{
		"a spec that does not render": {
			scope: func(s *scope) {
				s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonInvalidSpec, err: errors.New("live.weights: bad")}
			},
			want: map[string]wantCondition{
				servingv1alpha1.ConditionDegraded: {status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonInvalidSpec, contains: []string{"live.weights: bad"}},
				servingv1alpha1.ConditionReady:    {status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonDegraded, contains: []string{"The pipeline is degraded: live.weights: bad"}},
			},
		},
		"a child that could not be applied": {
			scope: func(s *scope) {
				s.rendered = rendered
				s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonApplyFailed, err: errors.New("failed to apply Service feed-frontend: conflict")}
			},
			want: map[string]wantCondition{
				servingv1alpha1.ConditionDegraded: {status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonApplyFailed, contains: []string{"conflict"}},
				servingv1alpha1.ConditionReady:    {status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonDegraded},
			},
			wantRevision: curRev,
		},
		"stopped on a read error before every stage was observed": {
			scope:        func(s *scope) { s.rendered = rendered },
			wantRevision: curRev,
		},
		"a full pass over healthy stages": {
			scope: func(s *scope) {
				s.rendered = rendered
				s.stages = allHealthyBut()
				s.complete = true
			},
			want: map[string]wantCondition{
				servingv1alpha1.ConditionDegraded:    {status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonAsExpected},
				servingv1alpha1.ConditionReady:       {status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonServing},
				servingv1alpha1.ConditionProgressing: {status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonComplete, contains: []string{curRev}},
			},
			wantRevision:           curRev,
			wantStages:             "4/4",
			wantObservedGeneration: stGen,
		},
		"a full pass over a failing stage": {
			scope: func(s *scope) {
				s.rendered = rendered
				s.stages = allHealthyBut(obsFailing(config.StageRetrieval, "pod r-1: CrashLoopBackOff: bad catalog"))
				s.complete = true
			},
			want: map[string]wantCondition{
				servingv1alpha1.ConditionDegraded:    {status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonStageFailing, contains: []string{"bad catalog"}},
				servingv1alpha1.ConditionReady:       {status: metav1.ConditionFalse, reason: servingv1alpha1.ReasonDegraded, contains: []string{"bad catalog"}},
				servingv1alpha1.ConditionProgressing: {status: metav1.ConditionTrue, reason: servingv1alpha1.ReasonRollingOut, contains: []string{config.StageRetrieval}},
			},
			wantRevision:           curRev,
			wantStages:             "3/4",
			wantObservedGeneration: stGen,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			rp.Generation = stGen
			rp.Status.Conditions = slices.Clone(prior)
			s := &scope{rp: rp}
			tc.scope(s)
			setStatus(s)

			checkConditionsAgainstPrior(t, &rp.Status, prior, tc.want)
			if got := rp.Status.ConfigRevision; got != tc.wantRevision {
				t.Errorf("configRevision = %q, want %q", got, tc.wantRevision)
			}
			if got := rp.Status.ReadyStages; got != tc.wantStages {
				t.Errorf("readyStages = %q, want %q", got, tc.wantStages)
			}
			if got := rp.Status.ObservedGeneration; got != tc.wantObservedGeneration {
				t.Errorf("observedGeneration = %d, want %d", got, tc.wantObservedGeneration)
			}
		})
	}
}

// checkConditionsAgainstPrior checks the conditions in want, and that the
// others are as they were in prior.
func checkConditionsAgainstPrior(t *testing.T, status *servingv1alpha1.RecPipelineStatus, prior []metav1.Condition, want map[string]wantCondition) {
	t.Helper()
	for _, typ := range []string{servingv1alpha1.ConditionReady, servingv1alpha1.ConditionProgressing, servingv1alpha1.ConditionDegraded} {
		if w, changed := want[typ]; changed {
			checkCondition(t, status, typ, w)
			continue
		}
		before, now := meta.FindStatusCondition(prior, typ), meta.FindStatusCondition(status.Conditions, typ)
		if !reflect.DeepEqual(before, now) {
			t.Errorf("%s = %+v, want it kept as %+v", typ, now, before)
		}
	}
}

func TestStageStatus(t *testing.T) {
	tests := map[string]struct {
		obs  stageObservation
		want servingv1alpha1.StageStatus
	}{
		"all pods serve one revision": {
			obs: obsHealthy(config.StageRetrieval),
			want: servingv1alpha1.StageStatus{Name: config.StageRetrieval, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				ConfigRevision: curRev, Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 2}}},
		},
		"mixed revisions leave the stage revision empty, counts sorted": {
			obs: obsMixed(config.StageRetrieval),
			want: servingv1alpha1.StageStatus{Name: config.StageRetrieval, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 1}, {Revision: oldRev, Pods: 1}}},
		},
		"unknown revision is not a stage revision": {
			obs: obsUnknown(config.StageFrontend),
			want: servingv1alpha1.StageStatus{Name: config.StageFrontend, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				Revisions: []servingv1alpha1.RevisionCount{{Revision: revisionUnknown, Pods: 2}}},
		},
		"rollout in progress reports the updated pods": {
			obs: obsRolling(config.StageRankerFirst),
			want: servingv1alpha1.StageStatus{Name: config.StageRankerFirst, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 1,
				ConfigRevision: curRev, Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 2}}},
		},
		"no Deployment yet": {
			obs:  obsMissing(config.StageRankerSecond),
			want: servingv1alpha1.StageStatus{Name: config.StageRankerSecond, Replicas: 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := stageStatus(&tc.obs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("stageStatus = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestReadyStages(t *testing.T) {
	tests := map[string]struct {
		stages []stageObservation
		want   string
	}{
		"all stages ready":                {stages: allHealthyBut(), want: "4/4"},
		"a stage short of a replica":      {stages: allHealthyBut(obsUnavailable(config.StageRetrieval)), want: "3/4"},
		"a stage rolling out":             {stages: allHealthyBut(obsRolling(config.StageFrontend)), want: "3/4"},
		"a stage on mixed revisions":      {stages: allHealthyBut(obsMixed(config.StageRankerFirst)), want: "3/4"},
		"a stage of unknown revision":     {stages: allHealthyBut(obsUnknown(config.StageRankerFirst)), want: "3/4"},
		"a stage without its Deployment":  {stages: allHealthyBut(obsMissing(config.StageRankerSecond)), want: "3/4"},
		"a stuck stage and a stale stage": {stages: allHealthyBut(obsStuck(config.StageRetrieval), obsNotObserved(config.StageFrontend)), want: "2/4"},
		"no stage observed":               {stages: nil, want: "0/0"},
		"every stage on the old revision": {stages: []stageObservation{obsMixed(config.StageFrontend), obsUnknown(config.StageRetrieval)}, want: "0/2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := readyStages(curRev, tc.stages); got != tc.want {
				t.Errorf("readyStages = %q, want %q", got, tc.want)
			}
		})
	}
}

// A condition keeps its transition time while its status holds, so that
// `kubectl get` shows how long the pipeline has been ready.
func TestConditionsKeepTransitionTime(t *testing.T) {
	then := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	old := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: "before", ObservedGeneration: stGen - 1, LastTransitionTime: then}
	}
	tests := map[string]struct {
		before   metav1.Condition
		set      func(*servingv1alpha1.RecPipelineStatus)
		wantKept bool
	}{
		"ready stays true": {
			before:   old(servingv1alpha1.ConditionReady, metav1.ConditionTrue, servingv1alpha1.ReasonServing),
			set:      func(s *servingv1alpha1.RecPipelineStatus) { setReadyCondition(s, stGen, allHealthyBut()) },
			wantKept: true,
		},
		"ready stays false for another reason": {
			before: old(servingv1alpha1.ConditionReady, metav1.ConditionFalse, servingv1alpha1.ReasonDegraded),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setReadyCondition(s, stGen, allHealthyBut(obsUnavailable(config.StageRetrieval)))
			},
			wantKept: true,
		},
		"ready turns false": {
			before: old(servingv1alpha1.ConditionReady, metav1.ConditionTrue, servingv1alpha1.ReasonServing),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setReadyCondition(s, stGen, allHealthyBut(obsUnavailable(config.StageRetrieval)))
			},
			wantKept: false,
		},
		"progressing stays false": {
			before: old(servingv1alpha1.ConditionProgressing, metav1.ConditionFalse, servingv1alpha1.ReasonComplete),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setProgressingCondition(s, stGen, curRev, allHealthyBut(), nil)
			},
			wantKept: true,
		},
		"degraded turns true": {
			before: old(servingv1alpha1.ConditionDegraded, metav1.ConditionFalse, servingv1alpha1.ReasonAsExpected),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setDegradedCondition(s, stGen, servingv1alpha1.ReasonStageFailing, []string{"stage frontend: boom"})
			},
			wantKept: false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := &servingv1alpha1.RecPipelineStatus{Conditions: []metav1.Condition{tc.before}}
			tc.set(status)
			c := meta.FindStatusCondition(status.Conditions, tc.before.Type)
			if kept := c.LastTransitionTime.Equal(&then); kept != tc.wantKept {
				t.Errorf("lastTransitionTime kept = %v (%s), want %v", kept, c.LastTransitionTime, tc.wantKept)
			}
			if c.ObservedGeneration != stGen || c.Message == "before" {
				t.Errorf("condition not refreshed: generation %d, message %q", c.ObservedGeneration, c.Message)
			}
			if len(status.Conditions) != 1 {
				t.Errorf("%d conditions, want the one updated in place", len(status.Conditions))
			}
		})
	}
}

// TestSetSourcesCondition: a source failing more than 5% of at least 100
// requests the frontends report makes SourcesHealthy False, naming it;
// fewer requests leave it Unknown; the other conditions are untouched.
func TestSetSourcesCondition(t *testing.T) {
	c := &config.Config{Live: config.Live{Retrieval: config.Retrieval{Sources: []config.Source{{Name: "for-you"}, {Name: "trending"}}}}}
	frontend := func(sources map[string]config.SourceCounts) []stageObservation {
		return []stageObservation{{Name: config.StageFrontend, podStatuses: podStatuses{Sources: sources}}, {Name: config.StageRetrieval}}
	}
	tests := map[string]struct {
		stages   []stageObservation
		status   metav1.ConditionStatus
		reason   string
		contains string
	}{
		"no requests yet": {frontend(nil), metav1.ConditionUnknown, servingv1alpha1.ReasonTooFewRequests, "0 requests"},
		"too few requests to tell": {frontend(map[string]config.SourceCounts{"for-you": {Requests: 50, Failed: 50}}),
			metav1.ConditionUnknown, servingv1alpha1.ReasonTooFewRequests, "50 requests"},
		"within 5%": {frontend(map[string]config.SourceCounts{"for-you": {Requests: 1000, Failed: 50}, "trending": {Requests: 1000}}),
			metav1.ConditionTrue, servingv1alpha1.ReasonSourcesAnswer, "latest 1000 requests"},
		"over 5%": {frontend(map[string]config.SourceCounts{"for-you": {Requests: 2000, Failed: 101}, "trending": {Requests: 2000, Failed: 300}}),
			metav1.ConditionFalse, servingv1alpha1.ReasonSourcesFailing, "for-you in 5.0% (101 of 2000), trending in 15.0% (300 of 2000)"},
		"a source the config does not name": {frontend(map[string]config.SourceCounts{"old": {Requests: 1000, Failed: 1000}, "for-you": {Requests: 1000}}),
			metav1.ConditionTrue, servingv1alpha1.ReasonSourcesAnswer, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := &servingv1alpha1.RecPipelineStatus{}
			setSourcesCondition(status, 3, c, tc.stages)
			got := meta.FindStatusCondition(status.Conditions, servingv1alpha1.ConditionSourcesHealthy)
			if got == nil || got.Status != tc.status || got.Reason != tc.reason || !strings.Contains(got.Message, tc.contains) || got.ObservedGeneration != 3 {
				t.Errorf("condition %+v, want %s %s containing %q", got, tc.status, tc.reason, tc.contains)
			}
			if len(status.Conditions) != 1 {
				t.Errorf("conditions %v, want SourcesHealthy only", status.Conditions)
			}
		})
	}
}
