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
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
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
	return stageObservation{Name: name, Deployment: obsDeployment(nil), Revisions: map[string]int32{curRev: 2}}
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
	setDegradedCondition(s, stGen, ReasonRolloutStuck, []string{message})
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
			want:   wantCondition{status: metav1.ConditionTrue, reason: ReasonServing, contains: []string{"All 4 stages"}},
		},
		"pods on an old config revision still serve": {
			stages: allHealthyBut(obsMixed(StageRetrieval), obsUnknown(StageRankerFirst)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: ReasonServing},
		},
		"a rollout with every replica available still serves": {
			stages: allHealthyBut(obsRolling(StageRankerSecond)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: ReasonServing},
		},
		"a stage short of a replica": {
			stages: allHealthyBut(obsUnavailable(StageRetrieval)),
			want: wantCondition{status: metav1.ConditionFalse, reason: ReasonStagesUnavailable,
				contains: []string{StageRetrieval}, excludes: []string{StageFrontend, StageRankerFirst}},
		},
		"a stage without its Deployment yet": {
			stages: allHealthyBut(obsMissing(StageFrontend), obsUnavailable(StageRankerSecond)),
			want: wantCondition{status: metav1.ConditionFalse, reason: ReasonStagesUnavailable,
				contains: []string{StageFrontend, StageRankerSecond}, excludes: []string{StageRetrieval}},
		},
		"degraded wins over available replicas": {
			status: degradedStatus("stage retrieval: deadline exceeded"),
			stages: allHealthyBut(),
			want: wantCondition{status: metav1.ConditionFalse, reason: ReasonDegraded,
				contains: []string{"stage retrieval: deadline exceeded"}},
		},
		"degraded wins over unavailable replicas": {
			status: degradedStatus("stage retrieval: deadline exceeded"),
			stages: allHealthyBut(obsUnavailable(StageRetrieval)),
			want:   wantCondition{status: metav1.ConditionFalse, reason: ReasonDegraded, contains: []string{"degraded"}},
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
			want:   wantCondition{status: metav1.ConditionFalse, reason: ReasonComplete, contains: []string{curRev}},
		},
		"a rollout surging a new pod": {
			stages: allHealthyBut(obsRolling(StageRankerFirst)),
			want: wantCondition{status: metav1.ConditionTrue, reason: ReasonRollingOut,
				contains: []string{StageRankerFirst}, excludes: []string{StageRetrieval}},
		},
		"a template the Deployment controller has not seen yet": {
			stages: allHealthyBut(obsNotObserved(StageFrontend)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: ReasonRollingOut, contains: []string{StageFrontend}},
		},
		"a stage without its Deployment yet": {
			stages: allHealthyBut(obsMissing(StageRetrieval)),
			want:   wantCondition{status: metav1.ConditionTrue, reason: ReasonRollingOut, contains: []string{StageRetrieval}},
		},
		"pods on mixed config revisions": {
			stages: allHealthyBut(obsMixed(StageRetrieval)),
			want: wantCondition{status: metav1.ConditionTrue, reason: ReasonPropagatingConfig,
				contains: []string{StageRetrieval, curRev}, excludes: []string{StageFrontend}},
		},
		"pods of unknown revision": {
			stages: allHealthyBut(obsUnknown(StageRankerSecond)),
			want: wantCondition{status: metav1.ConditionTrue, reason: ReasonPropagatingConfig,
				contains: []string{StageRankerSecond}},
		},
		"rolling out wins over propagating": {
			stages: allHealthyBut(obsMixed(StageRetrieval), obsRolling(StageRankerFirst)),
			want: wantCondition{status: metav1.ConditionTrue, reason: ReasonRollingOut,
				contains: []string{StageRankerFirst}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status := &servingv1alpha1.RecPipelineStatus{}
			setProgressingCondition(status, stGen, curRev, tc.stages)
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
			want: wantCondition{status: metav1.ConditionFalse, reason: ReasonAsExpected},
		},
		"problems joined under the reason": {
			reason:   ReasonStageFailing,
			problems: []string{"stage retrieval: pod a: CrashLoopBackOff: boom", "stage frontend: pod b: ImagePullBackOff: nope"},
			want: wantCondition{status: metav1.ConditionTrue, reason: ReasonStageFailing,
				contains: []string{"stage retrieval: pod a: CrashLoopBackOff: boom; stage frontend: pod b: ImagePullBackOff: nope"}},
		},
		"a long message is truncated": {
			reason:   ReasonStageFailing,
			problems: []string{long},
			want:     wantCondition{status: metav1.ConditionTrue, reason: ReasonStageFailing, contains: []string{"xxx..."}},
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
			stages: allHealthyBut(obsUnavailable(StageRetrieval), obsRolling(StageFrontend), obsMixed(StageRankerFirst), obsMissing(StageRankerSecond)),
		},
		"a rollout past its deadline": {
			stages:       allHealthyBut(obsStuck(StageRetrieval)),
			wantReason:   ReasonRolloutStuck,
			wantProblems: []string{`stage retrieval: ReplicaSet "feed-retrieval-7d9" has timed out progressing.`},
		},
		"failing pods in two stages": {
			stages: allHealthyBut(
				obsFailing(StageRetrieval, "pod r-1: CrashLoopBackOff: bad catalog"),
				obsFailing(StageRankerSecond, "pod s-1: ImagePullBackOff: not found", "pod s-2: ImagePullBackOff: not found"),
			),
			wantReason: ReasonStageFailing,
			wantProblems: []string{
				"stage retrieval: pod r-1: CrashLoopBackOff: bad catalog",
				"stage ranker-second: pod s-1: ImagePullBackOff: not found",
				"stage ranker-second: pod s-2: ImagePullBackOff: not found",
			},
		},
		"a stuck rollout of failing pods is stuck": {
			stages: allHealthyBut(func() stageObservation {
				o := obsStuck(StageRankerFirst)
				o.Problems = []string{"pod f-1: exited with code 2: no model"}
				return o
			}()),
			wantReason: ReasonRolloutStuck,
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
			wantReason:   ReasonConfigRejected,
			wantProblems: []string{"stage frontend: pod f-0 refused config revision r2: live.weights.share: not a head"},
		},
		"the first kind of problem names the reason": {
			stages: allHealthyBut(
				obsFailing(StageRetrieval, "pod r-1: CrashLoopBackOff: bad catalog"),
				obsStuck(StageRankerFirst),
			),
			wantReason: ReasonStageFailing,
			wantProblems: []string{
				"stage retrieval: pod r-1: CrashLoopBackOff: bad catalog",
				`stage ranker-first: ReplicaSet "feed-retrieval-7d9" has timed out progressing.`,
			},
		},
		"a progressing rollout is not stuck": {
			stages: allHealthyBut(func() stageObservation {
				o := obsRolling(StageRetrieval)
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

func TestStageStatus(t *testing.T) {
	tests := map[string]struct {
		obs  stageObservation
		want servingv1alpha1.StageStatus
	}{
		"all pods serve one revision": {
			obs: obsHealthy(StageRetrieval),
			want: servingv1alpha1.StageStatus{Name: StageRetrieval, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				ConfigRevision: curRev, Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 2}}},
		},
		"mixed revisions leave the stage revision empty, counts sorted": {
			obs: obsMixed(StageRetrieval),
			want: servingv1alpha1.StageStatus{Name: StageRetrieval, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 1}, {Revision: oldRev, Pods: 1}}},
		},
		"unknown revision is not a stage revision": {
			obs: obsUnknown(StageFrontend),
			want: servingv1alpha1.StageStatus{Name: StageFrontend, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 2,
				Revisions: []servingv1alpha1.RevisionCount{{Revision: revisionUnknown, Pods: 2}}},
		},
		"rollout in progress reports the updated pods": {
			obs: obsRolling(StageRankerFirst),
			want: servingv1alpha1.StageStatus{Name: StageRankerFirst, Replicas: 2, ReadyReplicas: 2, UpdatedReplicas: 1,
				ConfigRevision: curRev, Revisions: []servingv1alpha1.RevisionCount{{Revision: curRev, Pods: 2}}},
		},
		"no Deployment yet": {
			obs:  obsMissing(StageRankerSecond),
			want: servingv1alpha1.StageStatus{Name: StageRankerSecond, Replicas: 1},
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
		"a stage short of a replica":      {stages: allHealthyBut(obsUnavailable(StageRetrieval)), want: "3/4"},
		"a stage rolling out":             {stages: allHealthyBut(obsRolling(StageFrontend)), want: "3/4"},
		"a stage on mixed revisions":      {stages: allHealthyBut(obsMixed(StageRankerFirst)), want: "3/4"},
		"a stage of unknown revision":     {stages: allHealthyBut(obsUnknown(StageRankerFirst)), want: "3/4"},
		"a stage without its Deployment":  {stages: allHealthyBut(obsMissing(StageRankerSecond)), want: "3/4"},
		"a stuck stage and a stale stage": {stages: allHealthyBut(obsStuck(StageRetrieval), obsNotObserved(StageFrontend)), want: "2/4"},
		"no stage observed":               {stages: nil, want: "0/0"},
		"every stage on the old revision": {stages: []stageObservation{obsMixed(StageFrontend), obsUnknown(StageRetrieval)}, want: "0/2"},
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
			before:   old(servingv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonServing),
			set:      func(s *servingv1alpha1.RecPipelineStatus) { setReadyCondition(s, stGen, allHealthyBut()) },
			wantKept: true,
		},
		"ready stays false for another reason": {
			before: old(servingv1alpha1.ConditionReady, metav1.ConditionFalse, ReasonDegraded),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setReadyCondition(s, stGen, allHealthyBut(obsUnavailable(StageRetrieval)))
			},
			wantKept: true,
		},
		"ready turns false": {
			before: old(servingv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonServing),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setReadyCondition(s, stGen, allHealthyBut(obsUnavailable(StageRetrieval)))
			},
			wantKept: false,
		},
		"progressing stays false": {
			before:   old(servingv1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonComplete),
			set:      func(s *servingv1alpha1.RecPipelineStatus) { setProgressingCondition(s, stGen, curRev, allHealthyBut()) },
			wantKept: true,
		},
		"degraded turns true": {
			before: old(servingv1alpha1.ConditionDegraded, metav1.ConditionFalse, ReasonAsExpected),
			set: func(s *servingv1alpha1.RecPipelineStatus) {
				setDegradedCondition(s, stGen, ReasonStageFailing, []string{"stage frontend: boom"})
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
