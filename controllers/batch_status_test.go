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
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

var batchT0 = time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC)

const testCronUID = types.UID("cron-uid")

// finishedJob is a Job of the CronJob testCronUID that finished at, with
// success or not.
func finishedJob(name string, at time.Time, succeeded bool) *batchv1.Job {
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{Kind: "CronJob", Name: "feed-training", UID: testCronUID}}},
		Status:     batchv1.JobStatus{StartTime: &metav1.Time{Time: at.Add(-10 * time.Minute)}},
	}
	c := batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at},
		Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"}
	if succeeded {
		c = batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Time{Time: at}}
		job.Status.CompletionTime = &metav1.Time{Time: at}
	}
	job.Status.Conditions = []batchv1.JobCondition{c}
	return job
}

// jobPod is a pod of job whose container ended with code and message.
func jobPod(job, container string, code int32, message string) corev1.Pod {
	pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: job + "-x", Labels: map[string]string{jobNameLabel: job}}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: container, State: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message},
	}}}
	return pod
}

func TestNewestFinishedJob(t *testing.T) {
	running := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "feed-training-4", OwnerReferences: []metav1.OwnerReference{{UID: testCronUID}}}}
	other := finishedJob("feed-training-9", batchT0.Add(3*time.Hour), true)
	other.OwnerReferences[0].UID = "another-cron"
	jobs := []batchv1.Job{
		*finishedJob("feed-training-1", batchT0, true),
		*finishedJob("feed-training-3", batchT0.Add(2*time.Hour), false),
		*finishedJob("feed-training-2", batchT0.Add(time.Hour), true),
		*running, *other,
	}
	if got := newestFinishedJob(jobs, testCronUID); got == nil || got.Name != "feed-training-3" {
		t.Errorf("newest finished %v, want feed-training-3 (a failure is an end too; running Jobs and another CronJob's are not)", got)
	}
	if got := newestFinishedJob(jobs[3:4], testCronUID); got != nil {
		t.Errorf("newest finished of a running Job: %s", got.Name)
	}
}

// run is a precompute run that finished at.
func run(id string, at time.Time, stored int, errMsg string) *config.PrecomputeRun {
	return &config.PrecomputeRun{ID: id, Started: at.Add(-5 * time.Minute), Finished: at, Users: stored, Done: stored, Stored: stored, Revision: "0123456789abcdef", Error: errMsg}
}

func TestPrecomputeStatus(t *testing.T) {
	cron := &batchv1.CronJob{Status: batchv1.CronJobStatus{
		LastScheduleTime: &metav1.Time{Time: batchT0}, LastSuccessfulTime: &metav1.Time{Time: batchT0.Add(5 * time.Minute)},
	}}
	prev := &servingv1alpha1.PrecomputeStatus{Users: 7, Revision: "fedcba9876543210", Duration: &metav1.Duration{Duration: time.Minute}, Hits: 3}
	failedJSON, err := json.Marshal(run("r9", batchT0.Add(time.Hour), 0, "the store refused the lists"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		prev   *servingv1alpha1.PrecomputeStatus
		o      batchObservation
		report *precomputeReport
		want   servingv1alpha1.PrecomputeStatus
	}{
		"the pods' last run and counts, the CronJob's times": {
			o:      batchObservation{cronJob: cron},
			report: &precomputeReport{LastRun: run("r1", batchT0.Add(5*time.Minute), 1200, ""), Hits: 40, Misses: 2},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Users: 1200, Duration: &metav1.Duration{Duration: 5 * time.Minute}, Revision: "0123456789abcdef", Hits: 40, Misses: 2,
			},
		},
		"a failed run keeps the last success's figures and says why": {
			prev:   prev,
			o:      batchObservation{cronJob: cron},
			report: &precomputeReport{LastRun: run("r2", batchT0, 0, "context deadline exceeded"), Hits: 5},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Users: 7, Duration: prev.Duration, Revision: prev.Revision, Hits: 5,
				Message: "run r2 failed: context deadline exceeded",
			},
		},
		"a Job that failed after the pods' last run, with its run in its termination message": {
			o: batchObservation{cronJob: cron, finished: finishedJob("feed-precompute-2", batchT0.Add(time.Hour), false),
				pods: []corev1.Pod{jobPod("feed-precompute-2", containerPrecompute, 1, string(failedJSON))}},
			report: &precomputeReport{LastRun: run("r1", batchT0, 10, "")},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Users: 10, Duration: &metav1.Duration{Duration: 5 * time.Minute}, Revision: "0123456789abcdef",
				Message: "run r9 failed: the store refused the lists",
			},
		},
		"a Job that failed with its run in its log's last lines": {
			o: batchObservation{cronJob: cron, finished: finishedJob("feed-precompute-4", batchT0.Add(time.Hour), false),
				pods: []corev1.Pod{jobPod("feed-precompute-4", containerPrecompute, 1,
					"precompute run r9 started on http://feed-frontend:8080\n"+string(failedJSON)+"\nrecserve: precompute run r9 failed after 0 of 0 users\n")}},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Message: "run r9 failed: the store refused the lists",
			},
		},
		"a Job that failed without a run: the container's message": {
			prev: prev,
			o: batchObservation{cronJob: cron, finished: finishedJob("feed-precompute-3", batchT0.Add(time.Hour), false),
				pods: []corev1.Pod{jobPod("feed-precompute-3", containerPrecompute, 1, "dial tcp: connection refused")}},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Users: 7, Duration: prev.Duration, Revision: prev.Revision, Hits: 3,
				Message: "run feed-precompute-3 failed: the Job failed: container precompute exited with code 1: dial tcp: connection refused",
			},
		},
		"an older failed Job gives way to the pods' newer success": {
			o:      batchObservation{cronJob: cron, finished: finishedJob("feed-precompute-2", batchT0, false)},
			report: &precomputeReport{LastRun: run("r3", batchT0.Add(24*time.Hour), 5, "")},
			want: servingv1alpha1.PrecomputeStatus{
				LastScheduleTime: cron.Status.LastScheduleTime, LastSuccessTime: cron.Status.LastSuccessfulTime,
				Users: 5, Duration: &metav1.Duration{Duration: 5 * time.Minute}, Revision: "0123456789abcdef",
			},
		},
		"no CronJob, pod or Job seen: what was reported stays": {
			prev: prev,
			o:    batchObservation{},
			want: servingv1alpha1.PrecomputeStatus{Users: 7, Duration: prev.Duration, Revision: prev.Revision, Hits: 3},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := precomputeStatus(tc.prev, &tc.o, tc.report)
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestAddPrecomputeSumsPodsWithinBounds(t *testing.T) {
	var p podStatuses
	p.addPrecompute(&config.PrecomputeCounts{Hits: 10, Misses: 1, LastRun: run("a", batchT0, 3, "")})
	p.addPrecompute(&config.PrecomputeCounts{Hits: 5, Misses: 2, Stale: 9, LastRun: run("b", batchT0.Add(time.Hour), 4, "")})
	p.addPrecompute(&config.PrecomputeCounts{Hits: 1, LastRun: &config.PrecomputeRun{ID: "going", Started: batchT0.Add(2 * time.Hour)}})
	p.addPrecompute(&config.PrecomputeCounts{Hits: -1, Misses: 100})
	bad := run("c", batchT0.Add(3*time.Hour), 1, "")
	bad.Revision = strings.Repeat("x", 65)
	p.addPrecompute(&config.PrecomputeCounts{LastRun: bad})
	p.addPrecompute(nil)
	if p.Precompute == nil || p.Precompute.Hits != 16 || p.Precompute.Misses != 3 {
		t.Fatalf("sums %+v, want 16 hits and 3 misses (negative counts left out)", p.Precompute)
	}
	if r := p.Precompute.LastRun; r == nil || r.ID != "b" {
		t.Errorf("last run %+v, want b: the latest finished one with a revision the status can hold", r)
	}
}

// rectrainResult is a termination message that rectrain -result-file
// wrote (testdata/rectrain-result.json, from a real run).
func rectrainResult(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "rectrain-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseTrainResult(t *testing.T) {
	res, err := parseTrainResult(rectrainResult(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{roleRetrieval: "two-tower", roleFirstStage: "first-stage", roleSecondStage: "mtml"}
	if !reflect.DeepEqual(res.artifacts, want) {
		t.Errorf("artifacts %v, want %v", res.artifacts, want)
	}
	if res.metrics["two-tower.recall@100"] != "0.4858" || res.metrics["test.users"] != "51" {
		t.Errorf("metrics %v, want the numbers as rectrain wrote them", res.metrics)
	}

	metrics := map[string]any{"ok": 1.5, "bad name with spaces": 1, "../x": 2, "text": "high", "long": strings.Repeat("9", 65), "list": []int{1}}
	for i := range 70 {
		metrics[fmt.Sprintf("m%02d", i)] = i
	}
	b, err := json.Marshal(map[string]any{
		"artifacts": map[string]string{roleRetrieval: "../../etc", roleFirstStage: "fs", "other": "x"},
		"metrics":   metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err = parseTrainResult(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.artifacts, map[string]string{roleFirstStage: "fs"}) {
		t.Errorf("artifacts %v, want the first stage's only: a path out of the run's directory or an unknown role is left out", res.artifacts)
	}
	if len(res.metrics) != maxTrainingMetrics {
		t.Errorf("%d metrics, want at most %d", len(res.metrics), maxTrainingMetrics)
	}
	for _, name := range []string{"bad name with spaces", "../x", "long", "list"} {
		if _, ok := res.metrics[name]; ok {
			t.Errorf("metric %q kept", name)
		}
	}
	if _, err := parseTrainResult("Traceback: the run crashed"); err == nil {
		t.Error("a message that is no result parsed")
	}
}

// TestModelsSnippet: the snippet points each model of the pipeline at the
// artifact of its role, and is spec YAML.
func TestModelsSnippet(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	artifacts := map[string]string{roleRetrieval: "two-tower", roleFirstStage: "first-stage", roleSecondStage: "mtml"}
	snippet := modelsSnippet(rp, "pvc://explore-models/trained/feed-training-1", artifacts)
	var got struct {
		Models []servingv1alpha1.ModelSpec `json:"models"`
	}
	if err := yaml.UnmarshalStrict([]byte(snippet), &got); err != nil {
		t.Fatalf("snippet does not parse: %v\n%s", err, snippet)
	}
	want := []servingv1alpha1.ModelSpec{
		{Name: "two-tower", URI: "pvc://explore-models/trained/feed-training-1/two-tower"},
		{Name: "first-stage", URI: "pvc://explore-models/trained/feed-training-1/first-stage"},
		{Name: "mtml", URI: "pvc://explore-models/trained/feed-training-1/mtml"},
	}
	if !reflect.DeepEqual(got.Models, want) {
		t.Errorf("snippet models %+v, want %+v", got.Models, want)
	}

	// Names of the pipeline's own; a model of two roles and a shadow are
	// left as they are.
	rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-shadow", URI: "pvc://x/y"})
	rp.Spec.Ranking.SecondStage.Shadow = &servingv1alpha1.ShadowSpec{Model: "mtml-shadow"}
	rp.Spec.Ranking.FirstStage.Model = "two-tower"
	snippet = modelsSnippet(rp, "pvc://m/r", artifacts)
	if strings.Contains(snippet, "two-tower") || strings.Contains(snippet, "shadow") || !strings.Contains(snippet, "uri: pvc://m/r/mtml") {
		t.Errorf("snippet:\n%s\nwant mtml only", snippet)
	}
	if s := modelsSnippet(rp, "pvc://m/r", map[string]string{}); s != "" {
		t.Errorf("snippet without artifacts: %q", s)
	}
}

func TestTrainingStatus(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	withBatch(rp)
	cron := &batchv1.CronJob{Status: batchv1.CronJobStatus{LastScheduleTime: &metav1.Time{Time: batchT0}}}
	prev := &servingv1alpha1.TrainingStatus{Job: "feed-training-1", Artifact: "pvc://explore-models/trained/feed-training-1",
		LastSuccessTime: &metav1.Time{Time: batchT0.Add(-24 * time.Hour)}, Metrics: map[string]string{"two-tower.recall@100": "0.3"}}
	now := batchT0.Add(2 * time.Hour)
	tests := map[string]struct {
		prev *servingv1alpha1.TrainingStatus
		o    batchObservation
		now  time.Time
		// want is the status; reason and note the Event's ("" for none).
		want   servingv1alpha1.TrainingStatus
		reason string
		note   []string
		wait   bool
	}{
		"a success: its directory, its metrics, the snippet": {
			prev: prev,
			o: batchObservation{cronJob: cron, finished: finishedJob("feed-training-2", batchT0.Add(time.Hour), true),
				pods: []corev1.Pod{jobPod("feed-training-2", containerTrain, 0, rectrainResult(t))}},
			now: now,
			want: servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime, Job: "feed-training-2",
				Artifact: "pvc://explore-models/trained/feed-training-2"},
			reason: ReasonTrainingSucceeded,
			note: []string{"Training run feed-training-2 wrote pvc://explore-models/trained/feed-training-2", "set in spec.models:\nmodels:\n",
				"- name: two-tower\n  uri: pvc://explore-models/trained/feed-training-2/two-tower\n",
				"- name: mtml\n  uri: pvc://explore-models/trained/feed-training-2/mtml\n"},
		},
		"the Job reported already: no Event, the CronJob's times": {
			prev: prev,
			o:    batchObservation{cronJob: cron, finished: finishedJob("feed-training-1", batchT0, true)},
			now:  now,
			want: servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime, Job: "feed-training-1",
				Artifact: prev.Artifact, Metrics: prev.Metrics},
		},
		"a failure says why and keeps the last success": {
			prev: prev,
			o: batchObservation{cronJob: cron, finished: finishedJob("feed-training-2", batchT0.Add(time.Hour), false),
				pods: []corev1.Pod{jobPod("feed-training-2", containerTrain, 3, "WEAK MODEL: two-tower recall@100 0.1 does not beat popularity's 0.2")}},
			now: now,
			want: servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime, Job: "feed-training-2",
				Artifact: prev.Artifact, Metrics: prev.Metrics,
				Message: "run feed-training-2 failed: container train exited with code 3: WEAK MODEL: two-tower recall@100 0.1 does not beat popularity's 0.2"},
			reason: ReasonTrainingFailed,
			note:   []string{"run feed-training-2 failed: container train exited with code 3"},
		},
		"a success whose pod is not seen yet: wait": {
			prev: prev,
			o:    batchObservation{cronJob: cron, finished: finishedJob("feed-training-2", now.Add(-time.Second), true)},
			now:  now,
			want: servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime, Job: "feed-training-1",
				Artifact: prev.Artifact, Metrics: prev.Metrics},
			wait: true,
		},
		"an older run once the newest Job reported is deleted: nothing": {
			prev: func() *servingv1alpha1.TrainingStatus {
				p := prev.DeepCopy()
				p.JobFinished = &metav1.Time{Time: batchT0}
				return p
			}(),
			o:   batchObservation{cronJob: cron, finished: finishedJob("feed-training-0", batchT0.Add(-time.Hour), true)},
			now: now,
			want: servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime,
				Job: "feed-training-1", JobFinished: &metav1.Time{Time: batchT0}, Artifact: prev.Artifact, Metrics: prev.Metrics},
		},
		"a success whose pod is gone: the directory without metrics": {
			o:      batchObservation{cronJob: cron, finished: finishedJob("feed-training-2", batchT0, true)},
			now:    now,
			want:   servingv1alpha1.TrainingStatus{LastScheduleTime: cron.Status.LastScheduleTime, Job: "feed-training-2", Artifact: "pvc://explore-models/trained/feed-training-2"},
			reason: ReasonTrainingSucceeded,
			note:   []string{"its pod is gone"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ev, wait := trainingStatus(rp, tc.prev, &tc.o, tc.now)
			if ev != nil {
				if _, _, at := jobOutcome(tc.o.finished); got.JobFinished == nil || !got.JobFinished.Time.Equal(at) {
					t.Errorf("jobFinished %v, want the reported Job's end %v", got.JobFinished, at)
				}
			}
			if tc.want.JobFinished == nil {
				got.JobFinished = nil // checked above
			}
			if tc.reason == ReasonTrainingSucceeded && len(got.Metrics) > 0 {
				if got.Metrics["funnel.ndcg@100"] != "0.1375" {
					t.Errorf("metrics %v, want rectrain's", got.Metrics)
				}
				got.Metrics = nil
			}
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
			if wait != tc.wait {
				t.Errorf("wait %v, want %v", wait, tc.wait)
			}
			switch {
			case tc.reason == "" && ev != nil:
				t.Errorf("Event %+v, want none", *ev)
			case tc.reason != "" && (ev == nil || ev.reason != tc.reason):
				t.Errorf("Event %+v, want %s", ev, tc.reason)
			case ev != nil:
				for _, s := range tc.note {
					if !strings.Contains(ev.note, s) {
						t.Errorf("Event note %q lacks %q", ev.note, s)
					}
				}
				if len(ev.note) > maxEventNoteBytes {
					t.Errorf("Event note of %d bytes", len(ev.note))
				}
			}
		})
	}
}

// TestTrainingFailureKeepsTheLogsEnd: the message of a failed run whose
// termination message is its log's tail keeps the end, where rectrain says
// why, within the status's bounds.
func TestTrainingFailureKeepsTheLogsEnd(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	withBatch(rp)
	why := "rectrain: the models do not beat the popularity baseline"
	o := &batchObservation{finished: finishedJob("feed-training-3", batchT0, false),
		pods: []corev1.Pod{jobPod("feed-training-3", containerTrain, 3, strings.Repeat("an evaluation table row\n", 100)+why)}}
	got, ev, _ := trainingStatus(rp, nil, o, batchT0.Add(time.Hour))
	if !strings.HasPrefix(got.Message, "run feed-training-3 failed: container train exited with code 3: ...") ||
		!strings.HasSuffix(got.Message, why) || len(got.Message) > maxBatchMessageBytes {
		t.Errorf("message of %d bytes %q, want the start of the failure and the end of the log", len(got.Message), got.Message)
	}
	if ev == nil || ev.note != got.Message {
		t.Errorf("Event %+v, want the message", ev)
	}
}
