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
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The status of the batch runs: pure functions of what the controller
// observed of a CronJob, its newest finished Job and that Job's pods (and,
// for precompute, of what the frontend pods report), and of the previous
// status, which keeps what the last successful run reported.

// batchObservation is what the controller saw of one batch CronJob.
type batchObservation struct {
	// cronJob is nil while the CronJob is not in the cache.
	cronJob *batchv1.CronJob
	// finished is the CronJob's newest finished Job, nil if none.
	finished *batchv1.Job
	// pods are the finished Job's pods.
	pods []corev1.Pod
}

// batchEvent is an Event a batch run's end calls for.
type batchEvent struct {
	eventType, reason, note string
}

// Reasons of the training Events.
const (
	ReasonTrainingSucceeded = "TrainingSucceeded"
	ReasonTrainingFailed    = "TrainingFailed"
)

// Bounds of what the status repeats of a batch pod's report.
const (
	// maxBatchMessageBytes is the status messages' MaxLength.
	maxBatchMessageBytes = 1024
	// maxTrainingMetrics bounds status.training.metrics.
	maxTrainingMetrics = 64
	// maxMetricValueBytes bounds one metric's value.
	maxMetricValueBytes = 64
	// maxEventNoteBytes is the longest note the events API accepts.
	maxEventNoteBytes = 1024
)

// trainingResultGrace is how long after a training run succeeded the
// status waits for its pod's termination message to reach the cache
// before it reports the run without its metrics.
const trainingResultGrace = 30 * time.Second

// Roles of rectrain's artifacts, the keys of the artifacts of its result
// (rectrain -result-file): the retrieval model the ANN sources search, the
// first-stage and the second-stage rankers.
const (
	roleRetrieval   = "retrieval"
	roleFirstStage  = "firstStage"
	roleSecondStage = "secondStage"
)

var (
	// metricNameRE bounds the metric names the status repeats.
	metricNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9@._-]{0,62}$`)
	// artifactDirRE bounds the artifact directories a result may name:
	// one path element under the run's directory.
	artifactDirRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
)

// jobOutcome says whether job finished, whether it succeeded, and when.
func jobOutcome(job *batchv1.Job) (finished, succeeded bool, at time.Time) {
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			at = c.LastTransitionTime.Time
			if job.Status.CompletionTime != nil {
				at = job.Status.CompletionTime.Time
			}
			return true, true, at
		case batchv1.JobFailed:
			return true, false, c.LastTransitionTime.Time
		}
	}
	return false, false, time.Time{}
}

// newestFinishedJob is the finished Job of jobs, owned by the CronJob
// cronJob, that finished last (by name on a tie); nil if none did.
func newestFinishedJob(jobs []batchv1.Job, cronJob types.UID) *batchv1.Job {
	var newest *batchv1.Job
	var newestAt time.Time
	for i := range jobs {
		job := &jobs[i]
		if !slices.ContainsFunc(job.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == cronJob }) {
			continue
		}
		finished, _, at := jobOutcome(job)
		if !finished {
			continue
		}
		if newest == nil || at.After(newestAt) || (at.Equal(newestAt) && job.Name > newest.Name) {
			newest, newestAt = job, at
		}
	}
	return newest
}

// terminated is the terminated state of the container name in pod, nil if
// it has not terminated.
func terminated(pod *corev1.Pod, name string) *corev1.ContainerStateTerminated {
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			if cs.Name == name && cs.State.Terminated != nil {
				return cs.State.Terminated
			}
		}
	}
	return nil
}

// succeededMessage is the termination message of the container name that
// exited 0 in one of pods.
func succeededMessage(pods []corev1.Pod, name string) (string, bool) {
	for i := range pods {
		if t := terminated(&pods[i], name); t != nil && t.ExitCode == 0 {
			return t.Message, true
		}
	}
	return "", false
}

// failureOf says why a failed Job failed: the latest failing container of
// its pods with its termination message (or log tail), else the Job's
// Failed condition.
func failureOf(job *batchv1.Job, pods []corev1.Pod, containers ...string) string {
	byAge := slices.Clone(pods)
	sort.SliceStable(byAge, func(i, j int) bool {
		return byAge[j].CreationTimestamp.Before(&byAge[i].CreationTimestamp)
	})
	for i := range byAge {
		for _, name := range containers {
			if t := terminated(&byAge[i], name); t != nil && t.ExitCode != 0 {
				msg := tailOf(strings.TrimSpace(t.Message), maxFailureTailBytes)
				if msg == "" {
					msg = t.Reason
				}
				return fmt.Sprintf("container %s exited with code %d: %s", name, t.ExitCode, msg)
			}
		}
	}
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return fmt.Sprintf("%s: %s", c.Reason, c.Message)
		}
	}
	return "the Job failed"
}

// maxFailureTailBytes is how much of a failed container's termination
// message a status message repeats: its end, where a log tail that the
// kubelet reported in its place says why.
const maxFailureTailBytes = 768

// tailOf keeps the last max bytes of s, cut on a character boundary.
func tailOf(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return "..." + strings.ToValidUTF8(s[len(s)-max+3:], "")
}

// copyCronJobTimes copies the CronJob's schedule and success times, when
// it was observed.
func copyCronJobTimes(cj *batchv1.CronJob, lastSchedule, lastSuccess **metav1.Time) {
	if cj != nil {
		*lastSchedule, *lastSuccess = cj.Status.LastScheduleTime, cj.Status.LastSuccessfulTime
	}
}

// precomputeStatus derives status.precompute: the CronJob's times; the
// frontend pods' hits and misses (report, nil when no pod was read); of
// the runs the pods report and the one the newest finished Job reports,
// the lists stored, the duration and the revision of the last that
// succeeded, and why the last failed when it was the last to finish. What
// no run reports is kept from prev.
func precomputeStatus(prev *servingv1alpha1.PrecomputeStatus, o *batchObservation, report *precomputeReport) *servingv1alpha1.PrecomputeStatus {
	out := &servingv1alpha1.PrecomputeStatus{}
	if prev != nil {
		out = prev.DeepCopy()
	}
	copyCronJobTimes(o.cronJob, &out.LastScheduleTime, &out.LastSuccessTime)
	var runs []*config.PrecomputeRun
	if report != nil {
		out.Hits, out.Misses = report.Hits, report.Misses
		runs = append(runs, report.LastRun)
	}
	runs = append(runs, jobPrecomputeRun(o))
	var last, lastSuccess *config.PrecomputeRun
	for _, run := range runs {
		if run == nil {
			continue
		}
		if last == nil || run.Finished.After(last.Finished) {
			last = run
		}
		if run.Error == "" && (lastSuccess == nil || run.Finished.After(lastSuccess.Finished)) {
			lastSuccess = run
		}
	}
	if r := lastSuccess; r != nil {
		out.Users = int64(r.Stored)
		out.Duration = &metav1.Duration{Duration: r.Finished.Sub(r.Started)}
		out.Revision = r.Revision
	}
	switch {
	case last == nil:
	case last.Error == "":
		out.Message = ""
	default:
		out.Message = truncateTo(fmt.Sprintf("run %s failed: %s", last.ID, last.Error), maxBatchMessageBytes)
	}
	return out
}

// jobPrecomputeRun is the run the newest finished precompute Job reports
// in its termination message (`recserve precompute` writes the finished
// config.PrecomputeRun there); for a failed Job that reports none, a run
// that failed when the Job did, with why. nil when there is no finished
// Job or a successful one reports no run.
func jobPrecomputeRun(o *batchObservation) *config.PrecomputeRun {
	job := o.finished
	if job == nil {
		return nil
	}
	_, succeeded, at := jobOutcome(job)
	if succeeded {
		msg, _ := succeededMessage(o.pods, containerPrecompute)
		return parsePrecomputeRun(msg, at)
	}
	for i := range o.pods {
		if t := terminated(&o.pods[i], containerPrecompute); t != nil && t.ExitCode != 0 {
			if run := parsePrecomputeRun(t.Message, at); run != nil && run.Error != "" {
				return run
			}
		}
	}
	run := &config.PrecomputeRun{ID: job.Name, Finished: at, Error: "the Job failed: " + failureOf(job, o.pods, containerPrecompute)}
	if job.Status.StartTime != nil {
		run.Started = job.Status.StartTime.Time
	}
	return run
}

// parsePrecomputeRun reads a finished run from a termination message: the
// message itself, or the last of its lines that is one (the kubelet
// reports the end of the log of a container that failed, where
// `recserve precompute` prints the run); nil when it holds none or one the
// status cannot repeat. A run without its finish time finished at (when
// its Job did).
func parsePrecomputeRun(msg string, at time.Time) *config.PrecomputeRun {
	var run config.PrecomputeRun
	if err := json.Unmarshal([]byte(msg), &run); err != nil {
		lines := strings.Split(msg, "\n")
		found := false
		for i := len(lines) - 1; i >= 0 && !found; i-- {
			line := strings.TrimSpace(lines[i])
			found = strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &run) == nil
		}
		if !found {
			return nil
		}
	}
	if run.Finished.IsZero() {
		run.Finished = at
	}
	if !validRun(&run) {
		return nil
	}
	run.Error = truncateTo(run.Error, maxBatchMessageBytes)
	return &run
}

// validRun reports whether a finished run is one recserve reports: counts
// not negative, a finish after its start, a revision the status can hold.
func validRun(run *config.PrecomputeRun) bool {
	return !run.Finished.IsZero() && !run.Finished.Before(run.Started) && run.Stored >= 0 &&
		(run.Revision == "" || revisionRE.MatchString(run.Revision)) && len(run.ID) <= 253
}

// trainResult is what a training run reported (rectrain -result-file),
// within the status's bounds.
type trainResult struct {
	// artifacts are the directories the run wrote under its artifact
	// directory, by role.
	artifacts map[string]string
	metrics   map[string]string
}

// parseTrainResult reads rectrain's result from a termination message:
// {"version", "artifacts": {role: dir}, "metrics": {name: number}}. Metric
// names and directories the status cannot repeat are left out, and the
// metrics past maxTrainingMetrics in name order.
func parseTrainResult(msg string) (trainResult, error) {
	var raw struct {
		Artifacts map[string]string `json:"artifacts"`
		Metrics   map[string]any    `json:"metrics"`
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(msg)))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return trainResult{}, fmt.Errorf("failed to decode the run's result: %w", err)
	}
	out := trainResult{artifacts: map[string]string{}}
	for _, role := range []string{roleRetrieval, roleFirstStage, roleSecondStage} {
		if dir := raw.Artifacts[role]; artifactDirRE.MatchString(dir) {
			out.artifacts[role] = dir
		}
	}
	names := make([]string, 0, len(raw.Metrics))
	for name := range raw.Metrics {
		if metricNameRE.MatchString(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		var v string
		switch x := raw.Metrics[name].(type) {
		case json.Number:
			v = x.String()
		case string:
			v = x
		default:
			continue
		}
		if v == "" || len(v) > maxMetricValueBytes {
			continue
		}
		if out.metrics == nil {
			out.metrics = map[string]string{}
		}
		out.metrics[name] = v
		if len(out.metrics) == maxTrainingMetrics {
			break
		}
	}
	return out, nil
}

// trainingStatus derives status.training: the CronJob's times and, once
// per newly finished Job (prev.job names the last one reported), its
// outcome: on success the artifact directory (spec.training.output/<Job>)
// and the metrics from its pod's termination message, with the
// TrainingSucceeded Event carrying the spec.models snippet that serves
// it; on failure why, with TrainingFailed. The last success's artifact
// and metrics are kept through failures. wait is set while a successful
// run's result may still be on its way to the cache.
func trainingStatus(rp *servingv1alpha1.RecPipeline, prev *servingv1alpha1.TrainingStatus, o *batchObservation, now time.Time) (out *servingv1alpha1.TrainingStatus, event *batchEvent, wait bool) {
	out = &servingv1alpha1.TrainingStatus{}
	if prev != nil {
		out = prev.DeepCopy()
	}
	copyCronJobTimes(o.cronJob, &out.LastScheduleTime, &out.LastSuccessTime)
	job := o.finished
	if job == nil || job.Name == out.Job {
		return out, nil, false
	}
	_, succeeded, at := jobOutcome(job)
	if out.JobFinished != nil && !at.After(out.JobFinished.Time) {
		return out, nil, false // an older run than the one reported
	}
	if !succeeded {
		out.Job, out.JobFinished = job.Name, &metav1.Time{Time: at}
		out.Message = truncateTo(fmt.Sprintf("run %s failed: %s", job.Name, failureOf(job, o.pods, containerExport, containerTrain)), maxBatchMessageBytes)
		return out, &batchEvent{eventType: corev1.EventTypeWarning, reason: ReasonTrainingFailed, note: out.Message}, false
	}
	msg, found := succeededMessage(o.pods, containerTrain)
	if !found && now.Sub(at) < trainingResultGrace {
		return out, nil, true
	}
	out.Job, out.JobFinished = job.Name, &metav1.Time{Time: at}
	out.Artifact = strings.TrimSuffix(rp.Spec.Training.Output, "/") + "/" + job.Name
	out.Message = ""
	out.Metrics = nil
	note := fmt.Sprintf("Training run %s wrote %s", job.Name, out.Artifact)
	result, err := parseTrainResult(msg)
	switch {
	case !found:
		note += "; its pod is gone, so its metrics and models are unknown: look in the directory"
	case err != nil:
		note += fmt.Sprintf("; its result does not parse (%v): look in the directory", err)
	default:
		out.Metrics = result.metrics
		if snippet := modelsSnippet(rp, out.Artifact, result.artifacts); snippet != "" {
			note += "; to serve its models, set in spec.models:\n" + snippet
		} else {
			note += "; none of its models matches a role of the pipeline's models"
		}
	}
	return out, &batchEvent{eventType: corev1.EventTypeNormal, reason: ReasonTrainingSucceeded, note: truncateTo(note, maxEventNoteBytes)}, false
}

// modelRoles maps the names of spec.models to the role they play in the
// funnel: the models of the ANN sources are retrieval models, the rankers'
// models first- and second-stage ones. A model of two roles has none.
func modelRoles(rp *servingv1alpha1.RecPipeline) map[string]string {
	roles := map[string]string{}
	set := func(name, role string) {
		if had, ok := roles[name]; ok && had != role {
			role = ""
		}
		roles[name] = role
	}
	for _, s := range rp.Spec.Retrieval.Sources {
		if s.Model != "" {
			set(s.Model, roleRetrieval)
		}
	}
	set(rp.Spec.Ranking.FirstStage.Model, roleFirstStage)
	set(rp.Spec.Ranking.SecondStage.Model, roleSecondStage)
	return roles
}

// modelsSnippet is the spec.models YAML that points each model of the
// pipeline at the artifact of its role that a run wrote under artifact;
// "" when no model's role was written. Models of no role (shadows, the
// experiments' own) are left out: they stay as they are.
func modelsSnippet(rp *servingv1alpha1.RecPipeline, artifact string, artifacts map[string]string) string {
	type model struct {
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	roles := modelRoles(rp)
	var models []model
	for _, m := range rp.Spec.Models {
		if dir := artifacts[roles[m.Name]]; dir != "" {
			models = append(models, model{Name: m.Name, URI: artifact + "/" + dir})
		}
	}
	if len(models) == 0 {
		return ""
	}
	b, err := yaml.Marshal(map[string][]model{"models": models})
	if err != nil {
		return ""
	}
	return string(b)
}
