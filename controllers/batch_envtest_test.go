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
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The batch runs in envtest, which runs neither the CronJob and Job
// controllers nor a kubelet: the tests create a CronJob's Job and its pod
// as those would, and write their status by hand.

// TestBatchCronJobsFollowTheSpec: spec.precompute and spec.training give
// the pipeline its two CronJobs, which the API server accepts, restricted;
// a steady pipeline rewrites neither; removing a field deletes its
// CronJob and clears its status.
func TestBatchCronJobsFollowTheSpec(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "batch")
	withBatch(rp)
	createPipeline(t, rp)
	rp = waitReconciled(t, ns, "batch")
	for name, image := range map[string]string{"batch-precompute": testImage, "batch-training": testToolsImage} {
		cj := &batchv1.CronJob{}
		getObject(t, ns, name, cj)
		assertControlledBy(t, cj, rp)
		pod := cj.Spec.JobTemplate.Spec.Template.Spec
		assertRestricted(t, name, pod)
		if got := pod.Containers[0].Image; got != image {
			t.Errorf("%s runs %s, want %s", name, got, image)
		}
	}
	if c := condition(rp, servingv1alpha1.ConditionDegraded); c.Status == metav1.ConditionTrue {
		t.Errorf("Degraded: %s", c.Message)
	}

	waitQuiet(t)
	before, snapshot := writes.total.Load(), writes.snapshot()
	start := reconcileCount(ns, "batch")
	updateLabels(t, ns, "batch", map[string]string{"touch": "batch"})
	waitReconcileAfter(t, ns, "batch", start)
	if after := writes.total.Load(); after != before {
		t.Errorf("the manager made %d writes reconciling an unchanged pipeline: %v", after-before, diffCounts(snapshot, writes.snapshot()))
	}

	updatePipeline(t, ns, "batch", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Precompute = nil })
	waitGone(t, ns, "batch-precompute", &batchv1.CronJob{})
	getObject(t, ns, "batch-training", &batchv1.CronJob{})
	updatePipeline(t, ns, "batch", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Training = nil })
	waitGone(t, ns, "batch-training", &batchv1.CronJob{})
	waitStatus(t, ns, "batch", "status.precompute and status.training cleared", func(rp *servingv1alpha1.RecPipeline) error {
		if rp.Status.ObservedGeneration != rp.Generation || rp.Status.Precompute != nil || rp.Status.Training != nil {
			return fmt.Errorf("generation %d observed %d, precompute %+v, training %+v", rp.Generation, rp.Status.ObservedGeneration, rp.Status.Precompute, rp.Status.Training)
		}
		return nil
	})
}

// waitGone waits until the object name does not exist.
func waitGone(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	eventually(t, waitTimeout, fmt.Sprintf("%T %s is deleted", obj, name), func() error {
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// runJob plays the CronJob controller, the Job controller and the kubelet
// for one run of cj: it creates the Job and its pod from the CronJob's
// template, ends the pod's container containerName with code and message
// (the others with 0), and finishes the Job at at.
func runJob(t *testing.T, cj *batchv1.CronJob, name, containerName string, code int32, message string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: cj.Namespace, Name: name, Labels: cj.Spec.JobTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}
	if err := k8s.Create(ctx, job); err != nil {
		t.Fatalf("failed to create Job %s: %v", name, err)
	}
	labels := map[string]string{jobNameLabel: name}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: cj.Namespace, Name: name + "-pod", Labels: labels},
		Spec:       *job.Spec.Template.Spec.DeepCopy(),
	}
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatalf("failed to create the pod of Job %s: %v", name, err)
	}
	ended := func(c corev1.Container) corev1.ContainerStatus {
		state := &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: metav1.Time{Time: at.Add(-time.Minute)}, FinishedAt: metav1.Time{Time: at}}
		if c.Name == containerName {
			state.ExitCode, state.Message = code, message
			if code != 0 {
				state.Reason = "Error"
			}
		}
		return corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: c.Image, State: corev1.ContainerState{Terminated: state}}
	}
	pod.Status.Phase = corev1.PodSucceeded
	if code != 0 {
		pod.Status.Phase = corev1.PodFailed
	}
	for _, c := range pod.Spec.InitContainers {
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, ended(c))
	}
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, ended(c))
	}
	if err := k8s.Status().Update(ctx, pod); err != nil {
		t.Fatalf("failed to write the pod's status: %v", err)
	}

	start := metav1.Time{Time: at.Add(-2 * time.Minute)}
	job.Status = batchv1.JobStatus{StartTime: &start}
	if code == 0 {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &metav1.Time{Time: at}
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}, Reason: "PodFailurePolicy", Message: "the pod failed"},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}, Reason: "PodFailurePolicy", Message: "the pod failed"},
		}
	}
	if err := k8s.Status().Update(ctx, job); err != nil {
		t.Fatalf("failed to write the status of Job %s: %v", name, err)
	}
}

// setCronJobTimes writes the CronJob's status as its controller would.
func setCronJobTimes(t *testing.T, ns, name string, scheduled, succeeded time.Time) {
	t.Helper()
	eventually(t, waitTimeout, "write the CronJob's status", func() error {
		cj := &batchv1.CronJob{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, cj); err != nil {
			return err
		}
		cj.Status.LastScheduleTime = &metav1.Time{Time: scheduled}
		if !succeeded.IsZero() {
			cj.Status.LastSuccessfulTime = &metav1.Time{Time: succeeded}
		}
		return k8s.Status().Update(context.Background(), cj)
	})
}

// pipelineEvents lists the Events of reason about the pipeline name.
func pipelineEvents(t *testing.T, ns, name, reason string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Reason == reason && e.Regarding.Kind == "RecPipeline" && e.Regarding.Name == name {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for the one Event of reason about the pipeline name and
// returns it.
func waitEvent(t *testing.T, ns, name, reason string) eventsv1.Event {
	t.Helper()
	var ev eventsv1.Event
	eventually(t, waitTimeout, "the "+reason+" Event", func() error {
		events := pipelineEvents(t, ns, name, reason)
		if len(events) != 1 {
			return fmt.Errorf("%d %s Events", len(events), reason)
		}
		ev = events[0]
		return nil
	})
	return ev
}

// TestTrainingStatusFromFinishedJobs: a training run's Job that succeeded
// fills status.training with its directory and metrics, and one
// TrainingSucceeded Event carries the snippet that serves it, however
// often the pipeline is reconciled afterwards; a run that fails says why
// and keeps the last success's figures.
func TestTrainingStatusFromFinishedJobs(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "train")
	withBatch(rp)
	createPipeline(t, rp)
	waitReconciled(t, ns, "train")
	cj := &batchv1.CronJob{}
	getObject(t, ns, "train-training", cj)

	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	runJob(t, cj, "train-training-1", containerTrain, 0, rectrainResult(t), t0)
	setCronJobTimes(t, ns, "train-training", t0.Add(-2*time.Minute), t0)
	waitStatus(t, ns, "train", "status.training reports the run", func(rp *servingv1alpha1.RecPipeline) error {
		tr := rp.Status.Training
		if tr == nil || tr.Job != "train-training-1" || tr.Artifact != "pvc://explore-models/trained/train-training-1" ||
			tr.Metrics["two-tower.recall@100"] != "0.4858" || tr.Message != "" ||
			tr.LastScheduleTime == nil || tr.LastSuccessTime == nil || !tr.LastSuccessTime.Time.Equal(t0) {
			return fmt.Errorf("status.training %+v", tr)
		}
		return nil
	})
	ev := waitEvent(t, ns, "train", ReasonTrainingSucceeded)
	for _, want := range []string{"- name: two-tower\n  uri: pvc://explore-models/trained/train-training-1/two-tower\n",
		"- name: first-stage\n  uri: pvc://explore-models/trained/train-training-1/first-stage\n",
		"- name: mtml\n  uri: pvc://explore-models/trained/train-training-1/mtml\n"} {
		if !strings.Contains(ev.Note, want) {
			t.Errorf("Event note %q lacks %q", ev.Note, want)
		}
	}
	if ev.Type != corev1.EventTypeNormal {
		t.Errorf("Event type %s", ev.Type)
	}

	// More passes over the same finished run.
	for i := range 3 {
		start := reconcileCount(ns, "train")
		updateLabels(t, ns, "train", map[string]string{"touch": fmt.Sprint(i)})
		waitReconcileAfter(t, ns, "train", start)
	}

	runJob(t, cj, "train-training-2", containerTrain, rectrainWeakExit, "WEAK MODEL: two-tower recall@100 0.1000 does not beat popularity's 0.2000", t0.Add(30*time.Minute))
	waitStatus(t, ns, "train", "status.training reports the failure", func(rp *servingv1alpha1.RecPipeline) error {
		tr := rp.Status.Training
		if tr == nil || tr.Job != "train-training-2" || !strings.Contains(tr.Message, "container train exited with code 3: WEAK MODEL") ||
			tr.Artifact != "pvc://explore-models/trained/train-training-1" || tr.Metrics["two-tower.recall@100"] != "0.4858" {
			return fmt.Errorf("status.training %+v", tr)
		}
		return nil
	})
	failed := waitEvent(t, ns, "train", ReasonTrainingFailed)
	if failed.Type != corev1.EventTypeWarning {
		t.Errorf("TrainingFailed Event type %s", failed.Type)
	}
	waitQuiet(t)
	events := pipelineEvents(t, ns, "train", ReasonTrainingSucceeded)
	if len(events) != 1 || events[0].Series != nil {
		t.Errorf("TrainingSucceeded Events %d (series %+v), want one emitted once", len(events), events[0].Series)
	}
}

// TestPrecomputeStatusFromPodsAndJobs: status.precompute reports the
// frontend pods' last run and counts and the CronJob's times, and a
// precompute Job that failed later says why.
func TestPrecomputeStatusFromPodsAndJobs(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "pre")
	withBatch(rp)
	createPipeline(t, rp)
	rp = waitReconciled(t, ns, "pre")
	frontends := simulateStage(t, rp, config.StageFrontend, rp.Status.ConfigRevision)

	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i, pod := range frontends {
		st := config.Status{ConfigRevision: rp.Status.ConfigRevision, Precompute: &config.PrecomputeCounts{Hits: 30, Misses: 4, Stale: 1}}
		if i == 0 {
			st.Precompute.LastRun = &config.PrecomputeRun{ID: "run-1", Started: t0.Add(-3 * time.Minute), Finished: t0,
				Users: 900, Done: 900, Stored: 850, Revision: rp.Status.ConfigRevision}
		}
		pods.set(pod, st)
	}
	setCronJobTimes(t, ns, "pre-precompute", t0.Add(-3*time.Minute), t0)
	waitStatus(t, ns, "pre", "status.precompute reports the run", func(rp *servingv1alpha1.RecPipeline) error {
		p := rp.Status.Precompute
		if p == nil || p.Users != 850 || p.Duration == nil || p.Duration.Duration != 3*time.Minute || p.Revision != rp.Status.ConfigRevision ||
			p.Hits != 30*int64(len(frontends)) || p.Misses != 4*int64(len(frontends)) || p.Message != "" ||
			p.LastScheduleTime == nil || p.LastSuccessTime == nil || !p.LastSuccessTime.Time.Equal(t0) {
			return fmt.Errorf("status.precompute %+v", p)
		}
		return nil
	})

	cj := &batchv1.CronJob{}
	getObject(t, ns, "pre-precompute", cj)
	failedRun, err := json.Marshal(config.PrecomputeRun{ID: "run-2", Started: t0.Add(20 * time.Minute), Finished: t0.Add(21 * time.Minute),
		Users: 900, Revision: rp.Status.ConfigRevision, Error: "the store is unreachable"})
	if err != nil {
		t.Fatal(err)
	}
	runJob(t, cj, "pre-precompute-2", containerPrecompute, 1, string(failedRun), t0.Add(21*time.Minute))
	p := waitStatus(t, ns, "pre", "status.precompute reports the failure", func(rp *servingv1alpha1.RecPipeline) error {
		if p := rp.Status.Precompute; p == nil || p.Message != "run run-2 failed: the store is unreachable" {
			return fmt.Errorf("status.precompute %+v", p)
		}
		return nil
	}).Status.Precompute
	if p.Users != 850 || p.Revision == "" {
		t.Errorf("the failure lost the last success's figures: %+v", p)
	}
}
