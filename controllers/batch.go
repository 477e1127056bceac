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
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The batch children: a CronJob that asks the frontend for an off-peak
// precompute run (spec.precompute) and one that exports the frontend's logs
// as a dataset and trains new models on it (spec.training). Like the other
// children they are pure functions of the RecPipeline, applied server-side.

// Components of the batch children and their pods.
const (
	componentPrecompute = "precompute"
	componentTraining   = "training"
)

// Defaults and bounds of the batch jobs.
const (
	// defaultPrecomputeDeadline bounds a precompute run when
	// spec.precompute.activeDeadline is unset.
	defaultPrecomputeDeadline = time.Hour
	// defaultTrainingDeadline bounds a training run when
	// spec.training.activeDeadline is unset.
	defaultTrainingDeadline = 6 * time.Hour
	// precomputeStartingDeadline is how late a precompute run may start
	// (the CronJob controller down, a run still going): past it the run
	// is skipped rather than started into the day's traffic.
	precomputeStartingDeadline int64 = 600
	// trainingStartingDeadline is how late a training run may start.
	trainingStartingDeadline int64 = 3600
	// jobsHistoryLimit is how many finished Jobs of each outcome a
	// CronJob keeps: the status reads the newest.
	jobsHistoryLimit int32 = 3
	// jobBackoffLimit lets a failed pod be retried once.
	jobBackoffLimit int32 = 1
)

// Paths and names inside the training pod.
const (
	// trainingWorkDir is the training pod's scratch emptyDir, shared by
	// its containers.
	trainingWorkDir = "/work"
	// trainingDataDir is where the export writes the dataset rectrain
	// reads.
	trainingDataDir = trainingWorkDir + "/data"
	// jobNameEnv holds the name of the training run's Job, which names its
	// artifact directory and version.
	jobNameEnv = "JOB_NAME"
	// jobNameLabel is the label the Job controller puts on a Job's pods.
	jobNameLabel = "batch.kubernetes.io/job-name"
	// rectrainCommand is rectrain in the tools image (on its PATH).
	rectrainCommand = "rectrain"
	// rectrainWeakExit is rectrain's exit status when the models fail its
	// quality gate: another attempt on the same logs cannot pass it.
	rectrainWeakExit = 3
)

// Container names of the batch pods; the status reads their termination
// messages.
const (
	containerPrecompute = "precompute"
	containerExport     = "export"
	containerTrain      = "train"
)

// Resources of the precompute container, which only waits for the
// frontend's run.
var (
	precomputeCPURequest    = resource.MustParse("10m")
	precomputeMemoryRequest = resource.MustParse("32Mi")
	precomputeMemoryLimit   = resource.MustParse("128Mi")
	// precomputeTmpSizeLimit bounds the precompute pod's scratch space.
	precomputeTmpSizeLimit = resource.MustParse("64Mi")
)

// defaultTrainingWindow is how far back a training run learns when
// spec.training.window is unset.
const defaultTrainingWindow = 30 * 24 * time.Hour

// trainingWindow is the event-time window of a training run's export.
func trainingWindow(t *servingv1alpha1.TrainingSpec) time.Duration {
	if t.Window != nil {
		return t.Window.Duration
	}
	return defaultTrainingWindow
}

// PrecomputeName is the name of the pipeline's precompute CronJob.
func PrecomputeName(rp *servingv1alpha1.RecPipeline) string {
	return rp.Name + "-" + componentPrecompute
}

// TrainingName is the name of the pipeline's training CronJob.
func TrainingName(rp *servingv1alpha1.RecPipeline) string {
	return rp.Name + "-" + componentTraining
}

// jobLabels mark a batch CronJob, its Jobs and their pods: the children's
// labels (so that the manager caches them), with the component and the
// program the pods run.
func jobLabels(rp *servingv1alpha1.RecPipeline, component string) map[string]string {
	l := commonLabels(rp, component)
	if component == componentTraining {
		l[labelName] = rectrainCommand
	}
	return l
}

// jobSelectorLabels select the Jobs and pods of one batch component.
func jobSelectorLabels(rp *servingv1alpha1.RecPipeline, component string) map[string]string {
	l := jobLabels(rp, component)
	return map[string]string{labelName: l[labelName], labelInstance: rp.Name, labelComponent: component}
}

// activeDeadlineSeconds is the deadline of one run in whole seconds, at
// least one: d, or def when d is unset.
func activeDeadlineSeconds(d *metav1.Duration, def time.Duration) int64 {
	if d == nil {
		return int64(def / time.Second)
	}
	return max(1, int64(d.Duration/time.Second))
}

// desiredCronJob is a batch CronJob of the pipeline: one run at a time,
// each a Job retried once within its deadline, a few finished Jobs kept.
func desiredCronJob(rp *servingv1alpha1.RecPipeline, component, schedule string, timeZone *string, suspend bool,
	startingDeadline, activeDeadline int64, job *batchv1ac.JobSpecApplyConfiguration, pod *corev1ac.PodSpecApplyConfiguration) *batchv1ac.CronJobApplyConfiguration {
	labels := jobLabels(rp, component)
	spec := batchv1ac.CronJobSpec().
		WithSchedule(schedule).
		WithSuspend(suspend).
		WithConcurrencyPolicy(batchv1.ForbidConcurrent).
		WithStartingDeadlineSeconds(startingDeadline).
		WithSuccessfulJobsHistoryLimit(jobsHistoryLimit).
		WithFailedJobsHistoryLimit(jobsHistoryLimit).
		WithJobTemplate(batchv1ac.JobTemplateSpec().
			WithLabels(labels).
			WithSpec(job.
				WithBackoffLimit(jobBackoffLimit).
				WithActiveDeadlineSeconds(activeDeadline).
				WithTemplate(corev1ac.PodTemplateSpec().
					WithLabels(labels).
					WithSpec(pod))))
	if timeZone != nil {
		spec.WithTimeZone(*timeZone)
	}
	return batchv1ac.CronJob(rp.Name+"-"+component, rp.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(spec)
}

// jobPodSpec is the pod of a batch Job: never restarted in place (the Job
// retries), without an API token, under the restricted security context.
func jobPodSpec() *corev1ac.PodSpecApplyConfiguration {
	return corev1ac.PodSpec().
		WithRestartPolicy(corev1.RestartPolicyNever).
		WithAutomountServiceAccountToken(false).
		WithTerminationGracePeriodSeconds(terminationGracePeriodSeconds).
		WithSecurityContext(restrictedPodSecurityContext())
}

// desiredPrecomputeCronJob runs `recserve precompute` on schedule: it asks
// the frontend (through its Service, with the events token when the
// pipeline has one) for a precompute run, waits for it and reports it in
// its termination message. image is the pipeline's runtime image. nil
// without spec.precompute.
func desiredPrecomputeCronJob(rp *servingv1alpha1.RecPipeline, image string) *batchv1ac.CronJobApplyConfiguration {
	p := rp.Spec.Precompute
	if p == nil {
		return nil
	}
	container := corev1ac.Container().
		WithName(containerPrecompute).
		WithImage(image).
		WithArgs(config.CommandPrecompute, config.Arg(config.FlagFrontend, endpoint(rp)),
			// The frontend stops the run when the Job's deadline passes.
			config.Arg(config.FlagPrecomputeWait, (time.Duration(activeDeadlineSeconds(p.ActiveDeadline, defaultPrecomputeDeadline))*time.Second).String())).
		WithResources(corev1ac.ResourceRequirements().
			WithRequests(corev1.ResourceList{corev1.ResourceCPU: precomputeCPURequest, corev1.ResourceMemory: precomputeMemoryRequest}).
			WithLimits(corev1.ResourceList{corev1.ResourceMemory: precomputeMemoryLimit})).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(restrictedSecurityContext()).
		WithVolumeMounts(corev1ac.VolumeMount().WithName("tmp").WithMountPath(config.TempDir))
	if rp.Spec.Runtime.ImagePullPolicy != "" {
		container.WithImagePullPolicy(rp.Spec.Runtime.ImagePullPolicy)
	}
	if ev := rp.Spec.Events; ev != nil && ev.WriteTokenSecretRef != nil {
		container.WithEnv(corev1ac.EnvVar().WithName(config.EventsTokenEnv).WithValueFrom(
			corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().
				WithName(ev.WriteTokenSecretRef.Name).
				WithKey(ev.WriteTokenSecretRef.Key))))
	}
	pod := jobPodSpec().
		WithContainers(container).
		WithVolumes(corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(precomputeTmpSizeLimit)))
	return desiredCronJob(rp, componentPrecompute, p.Schedule, p.TimeZone, p.Suspend,
		precomputeStartingDeadline, activeDeadlineSeconds(p.ActiveDeadline, defaultPrecomputeDeadline),
		batchv1ac.JobSpec(), pod)
}

// desiredTrainingCronJob runs a training run on schedule: an init
// container of the runtime image (runtimeImage) exports the frontend's
// logs, with the catalog, as a dataset into the pod's scratch space, then
// rectrain from the tools image (spec.training.image, else toolsImage)
// trains on it and writes the artifacts to a directory of
// spec.training.output named after the run's Job, and its result (the
// offline metrics and the directories it wrote) to its termination
// message. A run whose models fail rectrain's quality gate is not
// retried. nil without spec.training or spec.logging.
func desiredTrainingCronJob(rp *servingv1alpha1.RecPipeline, runtimeImage, toolsImage string) *batchv1ac.CronJobApplyConfiguration {
	t, lg := rp.Spec.Training, rp.Spec.Logging
	if t == nil || lg == nil {
		return nil
	}
	if t.Image != "" {
		toolsImage = t.Image
	}
	outClaim, _, _ := parsePVC(t.Output)
	catalogClaim, _, catalogOnClaim := parsePVC(rp.Spec.Data.Catalog.URI)
	scratch := []*corev1ac.VolumeMountApplyConfiguration{
		corev1ac.VolumeMount().WithName("tmp").WithMountPath(config.TempDir),
		corev1ac.VolumeMount().WithName("work").WithMountPath(trainingWorkDir),
	}

	export := corev1ac.Container().
		WithName(containerExport).
		WithImage(runtimeImage).
		WithArgs(config.CommandExport,
			config.Arg(config.FlagExportLogs, logsDir(rp)),
			config.Arg(config.FlagExportCatalog, localURI(rp.Spec.Data.Catalog.URI)),
			config.Arg(config.FlagExportOut, trainingDataDir),
			config.Arg(config.FlagExportWindow, trainingWindow(t).String())).
		WithResources(resources(t.Resources)).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(restrictedSecurityContext()).
		WithVolumeMounts(scratch...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(claimVolumeName(lg.ClaimName)).WithMountPath(config.LogsDir).WithReadOnly(true))
	if catalogOnClaim {
		export.WithVolumeMounts(corev1ac.VolumeMount().WithName(claimVolumeName(catalogClaim)).
			WithMountPath(config.ClaimMountPath(catalogClaim)).WithReadOnly(true))
	}
	if rp.Spec.Runtime.ImagePullPolicy != "" {
		export.WithImagePullPolicy(rp.Spec.Runtime.ImagePullPolicy)
	}

	run := "$(" + jobNameEnv + ")"
	args := []string{"--data", trainingDataDir, "--out", strings.TrimPrefix(localURI(t.Output), "file://") + "/" + run, "--version", run}
	if t.Epochs != nil {
		args = append(args, "--epochs", strconv.Itoa(int(*t.Epochs)))
	}
	if t.QualityGate == servingv1alpha1.QualityGateAllow {
		args = append(args, "--allow-weak")
	}
	args = append(args, "--result-file", config.TerminationMessagePath)
	train := corev1ac.Container().
		WithName(containerTrain).
		WithImage(toolsImage).
		WithCommand(rectrainCommand).
		WithArgs(args...).
		WithEnv(corev1ac.EnvVar().WithName(jobNameEnv).WithValueFrom(corev1ac.EnvVarSource().
			WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.labels['" + jobNameLabel + "']")))).
		WithResources(resources(t.Resources)).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(restrictedSecurityContext()).
		WithVolumeMounts(scratch...).
		WithVolumeMounts(corev1ac.VolumeMount().WithName(claimVolumeName(outClaim)).WithMountPath(config.ClaimMountPath(outClaim)))

	// One volume per claim, writable only when it holds the output.
	claimSet := []string{lg.ClaimName, outClaim}
	if catalogOnClaim {
		claimSet = append(claimSet, catalogClaim)
	}
	slices.Sort(claimSet)
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(tmpSizeLimit)),
		corev1ac.Volume().WithName("work").WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
	}
	for _, claim := range slices.Compact(claimSet) {
		volumes = append(volumes, claimVolume(claim, claim != outClaim))
	}

	pod := jobPodSpec().
		WithInitContainers(export).
		WithContainers(train).
		WithVolumes(volumes...)
	job := batchv1ac.JobSpec().WithPodFailurePolicy(batchv1ac.PodFailurePolicy().WithRules(
		batchv1ac.PodFailurePolicyRule().
			WithAction(batchv1.PodFailurePolicyActionFailJob).
			WithOnExitCodes(batchv1ac.PodFailurePolicyOnExitCodesRequirement().
				WithContainerName(containerTrain).
				WithOperator(batchv1.PodFailurePolicyOnExitCodesOpIn).
				WithValues(rectrainWeakExit))))
	return desiredCronJob(rp, componentTraining, t.Schedule, t.TimeZone, t.Suspend,
		trainingStartingDeadline, activeDeadlineSeconds(t.ActiveDeadline, defaultTrainingDeadline),
		job, pod)
}
