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
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// simulateStage plays the Deployment controller and the kubelet for one
// stage, which envtest does not run: it writes the Deployment's status and
// creates ready pods of its current template, each serving revision.
func simulateStage(t *testing.T, rp *servingv1alpha1.RecPipeline, stage, revision string) []*corev1.Pod {
	t.Helper()
	ctx := context.Background()
	d := &appsv1.Deployment{}
	getObject(t, rp.Namespace, ChildName(rp, stage), d)
	n := ptr.Deref(d.Spec.Replicas, 2)
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
	}
	if err := k8s.Status().Update(ctx, d); err != nil {
		t.Fatalf("failed to write Deployment status: %v", err)
	}
	var out []*corev1.Pod
	for i := int32(0); i < n; i++ {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Namespace:   rp.Namespace,
				Name:        fmt.Sprintf("%s-%d", ChildName(rp, stage), i),
				Labels:      d.Spec.Template.Labels,
				Annotations: d.Spec.Template.Annotations,
			},
			Spec: *d.Spec.Template.Spec.DeepCopy(),
		}
		if err := k8s.Create(ctx, pod); err != nil {
			t.Fatalf("failed to create pod: %v", err)
		}
		pod.Status = corev1.PodStatus{
			Phase: corev1.PodRunning,
			PodIP: fmt.Sprintf("10.0.0.%d", i+1),
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodReady, Status: corev1.ConditionTrue},
			},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "recserve", Ready: true, Image: "x", ImageID: "x"}},
		}
		pods.set(pod, config.Status{ConfigRevision: revision})
		if err := k8s.Status().Update(ctx, pod); err != nil {
			t.Fatalf("failed to write pod status: %v", err)
		}
		out = append(out, pod)
	}
	return out
}

func condition(rp *servingv1alpha1.RecPipeline, t string) metav1.Condition {
	if c := meta.FindStatusCondition(rp.Status.Conditions, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// waitStatus waits until check accepts the pipeline's status.
func waitStatus(t *testing.T, ns, name, what string, check func(*servingv1alpha1.RecPipeline) error) *servingv1alpha1.RecPipeline {
	t.Helper()
	var rp *servingv1alpha1.RecPipeline
	eventually(t, waitTimeout, what, func() error {
		rp = getPipeline(t, ns, name)
		return check(rp)
	})
	return rp
}

// TestStatusFollowsStagesAndPods drives a pipeline through readiness,
// config propagation and failure, with the stages' Deployments and pods
// simulated.
func TestStatusFollowsStagesAndPods(t *testing.T) {
	ns := newNamespace(t)
	createPipeline(t, samplePipeline(ns, "status"))
	rp := waitReconciled(t, ns, "status")
	rev := rp.Status.ConfigRevision

	stagePods := map[string][]*corev1.Pod{}
	for _, stage := range Stages {
		stagePods[stage] = simulateStage(t, rp, stage, rev)
	}
	checkReadyOnEveryStage(t, ns, rev, stagePods)
	newRev := checkConfigPropagates(t, ns, rev, stagePods)
	checkRefusedConfigDegrades(t, ns, rev, newRev, stagePods)
	checkFailingModelDegrades(t, ns)
}

// checkReadyOnEveryStage waits for the pipeline, every stage of which
// serves rev, to be Ready and not Progressing, and checks its stages'
// status.
func checkReadyOnEveryStage(t *testing.T, ns, rev string, stagePods map[string][]*corev1.Pod) {
	rp := waitStatus(t, ns, "status", "Ready with every stage serving the revision", func(rp *servingv1alpha1.RecPipeline) error {
		if c := condition(rp, servingv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %s %s: %s", c.Status, c.Reason, c.Message)
		}
		if c := condition(rp, servingv1alpha1.ConditionProgressing); c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Progressing %s %s: %s", c.Status, c.Reason, c.Message)
		}
		if rp.Status.ReadyStages != "4/4" {
			return fmt.Errorf("readyStages %s", rp.Status.ReadyStages)
		}
		return nil
	})
	for _, s := range rp.Status.Stages {
		want := int32(len(stagePods[s.Name]))
		if s.ReadyReplicas != want || s.ConfigRevision != rev || len(s.Revisions) != 1 || s.Revisions[0].Pods != want {
			t.Errorf("stage %s status %+v, want %d ready pods on %s", s.Name, s, want, rev)
		}
	}
	if c := condition(rp, servingv1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded %+v", c)
	}
}

// checkConfigPropagates changes the weights, which the pods serving rev
// pick up live, and follows the new revision to every pod; it returns the
// new revision.
func checkConfigPropagates(t *testing.T, ns, rev string, stagePods map[string][]*corev1.Pod) string {
	// The pods still serve the old revision until they pick up the
	// ConfigMap, and status counts them per revision.
	updatePipeline(t, ns, "status", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 5 })
	rp := waitStatus(t, ns, "status", "Progressing while the pods serve the old revision", func(rp *servingv1alpha1.RecPipeline) error {
		c := condition(rp, servingv1alpha1.ConditionProgressing)
		if rp.Status.ConfigRevision == rev || c.Reason != servingv1alpha1.ReasonPropagatingConfig || c.ObservedGeneration != rp.Generation {
			return fmt.Errorf("revision %s, Progressing %s %s", rp.Status.ConfigRevision, c.Status, c.Reason)
		}
		return nil
	})
	newRev := rp.Status.ConfigRevision
	if c := condition(rp, servingv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Errorf("a config change must not make a serving pipeline unready: %+v", c)
	}
	// One retrieval pod picks the new revision up: it is counted apart.
	pods.set(stagePods[config.StageRetrieval][0], config.Status{ConfigRevision: newRev})
	waitStatus(t, ns, "status", "retrieval pods counted per revision", func(rp *servingv1alpha1.RecPipeline) error {
		for _, s := range rp.Status.Stages {
			if s.Name != config.StageRetrieval {
				continue
			}
			if len(s.Revisions) != 2 || s.ConfigRevision != "" {
				return fmt.Errorf("retrieval revisions %+v (configRevision %q)", s.Revisions, s.ConfigRevision)
			}
		}
		return nil
	})
	// Every pod serves the new revision: propagation is complete, with no
	// other event than the pods' answers (the controller polls while
	// propagating).
	for _, list := range stagePods {
		for _, pod := range list {
			pods.set(pod, config.Status{ConfigRevision: newRev})
		}
	}
	waitStatus(t, ns, "status", "Progressing complete once every pod serves the new revision", func(rp *servingv1alpha1.RecPipeline) error {
		if c := condition(rp, servingv1alpha1.ConditionProgressing); c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Progressing %s %s", c.Status, c.Reason)
		}
		return nil
	})
	return newRev
}

// checkRefusedConfigDegrades: a pod that refuses the new config, newRev,
// and keeps serving rev makes the pipeline degraded.
func checkRefusedConfigDegrades(t *testing.T, ns, rev, newRev string, stagePods map[string][]*corev1.Pod) {
	pods.set(stagePods[config.StageFrontend][0], config.Status{ConfigRevision: rev, RejectedRevision: newRev, Rejected: "live.weights.like: unknown head"})
	updateLabels(t, ns, "status", map[string]string{"poke": "1"})
	waitStatus(t, ns, "status", "Degraded when a pod refuses the config", func(rp *servingv1alpha1.RecPipeline) error {
		c := condition(rp, servingv1alpha1.ConditionDegraded)
		if c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "unknown head") {
			return fmt.Errorf("Degraded %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	pods.set(stagePods[config.StageFrontend][0], config.Status{ConfigRevision: newRev})
}

// checkFailingModelDegrades: a new model that cannot load makes the new
// pods crash with the runtime's termination message and stalls the
// Deployment's rollout while the old pods keep serving; the pipeline is
// degraded until the fix.
func checkFailingModelDegrades(t *testing.T, ns string) {
	updatePipeline(t, ns, "status", func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Models[2].URI = "https://models.example/mtml/broken.tar.gz"
	})
	waitReconciled(t, ns, "status")
	d := &appsv1.Deployment{}
	getObject(t, ns, "status-ranker-second", d)
	broken := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: "status-ranker-second-new",
			Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations,
		},
		Spec: *d.Spec.Template.Spec.DeepCopy(),
	}
	if err := k8s.Create(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	broken.Status = corev1.PodStatus{
		Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "recserve", Image: "x", ImageID: "x", RestartCount: 3,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 1, Message: "failed to load model mtml: HTTP 404",
			}},
		}},
	}
	if err := k8s.Status().Update(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	rp := waitStatus(t, ns, "status", "Degraded with the runtime's reason", func(rp *servingv1alpha1.RecPipeline) error {
		c := condition(rp, servingv1alpha1.ConditionDegraded)
		if c.Status != metav1.ConditionTrue || c.Reason != servingv1alpha1.ReasonStageFailing || !strings.Contains(c.Message, "failed to load model mtml: HTTP 404") {
			return fmt.Errorf("Degraded %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	if c := condition(rp, servingv1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || c.Reason != servingv1alpha1.ReasonDegraded {
		t.Errorf("Ready %+v, want False/Degraded", c)
	}

	// The fix: back to a loadable model, the broken pod is gone, and the
	// stages run the fixed template.
	updatePipeline(t, ns, "status", func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Models[2].URI = "https://models.example/mtml/v12.tar.gz"
	})
	if err := k8s.Delete(context.Background(), broken); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, ns, "status", "Ready again after the fix", func(rp *servingv1alpha1.RecPipeline) error {
		if c := condition(rp, servingv1alpha1.ConditionDegraded); c.Status != metav1.ConditionFalse {
			return fmt.Errorf("Degraded %s %s: %s", c.Status, c.Reason, c.Message)
		}
		if c := condition(rp, servingv1alpha1.ConditionReady); c.Status != metav1.ConditionTrue {
			return fmt.Errorf("Ready %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}
