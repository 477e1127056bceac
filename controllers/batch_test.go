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
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

const childTestToolsImage = "registry.example/recpipeline-tools:v1.2.3"

// withBatch gives rp the precompute, logging and training of
// docs/batch.md: lists for the week's active users and a file of users on
// the claim explore-lists, logs on explore-logs, and models trained into
// the claim the sample's models are read from.
func withBatch(rp *servingv1alpha1.RecPipeline) {
	rp.Spec.Precompute = &servingv1alpha1.PrecomputeSpec{
		Schedule: "0 3 * * *",
		TimeZone: ptr.To("Europe/Paris"),
		Users: servingv1alpha1.PrecomputeUsers{
			ActiveWithin: &metav1.Duration{Duration: 7 * 24 * time.Hour},
			Top:          ptr.To[int32](100000),
			ListURI:      "pvc://explore-lists/users/vip.txt",
		},
		Size:  ptr.To[int32](50),
		TTL:   &metav1.Duration{Duration: 30 * time.Hour},
		Serve: servingv1alpha1.PrecomputeWhenSaturated,
	}
	rp.Spec.Logging = &servingv1alpha1.LoggingSpec{
		ClaimName:        "explore-logs",
		ServedSampleRate: ptr.To(0.05),
		MaxFileMB:        ptr.To[int32](32),
		MaxFiles:         ptr.To[int32](200),
	}
	rp.Spec.Training = &servingv1alpha1.TrainingSpec{
		Schedule: "30 4 * * 0",
		Output:   "pvc://explore-models/trained/",
		Epochs:   ptr.To[int32](2),
	}
}

// TestRenderBatch: spec.precompute and spec.logging reach the runtime
// config, with their defaults.
func TestRenderBatch(t *testing.T) {
	tests := map[string]struct {
		mutate func(*servingv1alpha1.RecPipeline)
		want   func(*config.Config) (any, any)
	}{
		"precompute as declared, the list read from its claim's mount": {
			mutate: withBatch,
			want: func(c *config.Config) (any, any) {
				return c.Live.Precompute, &config.Precompute{
					Serve: config.PrecomputeWhenSaturated, TTL: config.Duration(30 * time.Hour), Size: 50,
					ActiveWithin: config.Duration(7 * 24 * time.Hour), Top: 100000,
					UsersURI: "file:///var/lib/recpipeline/volumes/explore-lists/users/vip.txt",
				}
			},
		},
		"precompute defaults: always served, for 24h, lists of the rerank size": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Precompute = &servingv1alpha1.PrecomputeSpec{Schedule: "0 3 * * *", Users: servingv1alpha1.PrecomputeUsers{
					ListURI: "https://lists.example/users.txt",
				}}
			},
			want: func(c *config.Config) (any, any) {
				return c.Live.Precompute, &config.Precompute{
					Serve: config.PrecomputeAlways, TTL: config.Duration(24 * time.Hour), Size: 25, UsersURI: "https://lists.example/users.txt",
				}
			},
		},
		"the list's claim is one the pods mount": {
			mutate: withBatch,
			want: func(c *config.Config) (any, any) {
				return slices.Contains(c.Deploy.Volumes, "/var/lib/recpipeline/volumes/explore-lists"), true
			},
		},
		"logs in the pipeline's directory of the logs mount, sized": {
			mutate: withBatch,
			want: func(c *config.Config) (any, any) {
				return c.Deploy.Logging, &config.Logging{Dir: "file:///var/lib/recpipeline/logs/feed", MaxFileBytes: 32 << 20, MaxFiles: 200}
			},
		},
		"logging defaults: the runtime's sizes, 1% of the served lists": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Logging = &servingv1alpha1.LoggingSpec{ClaimName: "explore-logs"}
			},
			want: func(c *config.Config) (any, any) {
				return []any{c.Deploy.Logging, c.Live.ServedSampleRate}, []any{&config.Logging{Dir: "file:///var/lib/recpipeline/logs/feed"}, config.DefaultServedSampleRate}
			},
		},
		"a sample rate of 0 logs no served list": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Logging = &servingv1alpha1.LoggingSpec{ClaimName: "explore-logs", ServedSampleRate: ptr.To(0.0)}
			},
			want: func(c *config.Config) (any, any) { return c.Live.ServedSampleRate, 0.0 },
		},
		"neither without the spec": {
			want: func(c *config.Config) (any, any) {
				return []any{c.Live.Precompute == nil, c.Deploy.Logging == nil, c.Live.ServedSampleRate}, []any{true, true, 0.0}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("explore", "feed")
			if tc.mutate != nil {
				tc.mutate(rp)
			}
			r, err := renderConfig(rp)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tc.want(r.Config); !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// TestPrecomputeChangesNoStageRevision: precompute is live config, so a
// change of it rolls no stage; logging is loaded at start.
func TestPrecomputeChangesNoStageRevision(t *testing.T) {
	base := samplePipeline("explore", "feed")
	base.Spec.Precompute = &servingv1alpha1.PrecomputeSpec{Schedule: "0 3 * * *", Users: servingv1alpha1.PrecomputeUsers{
		ActiveWithin: &metav1.Duration{Duration: time.Hour},
	}}
	changed := base.DeepCopy()
	changed.Spec.Precompute.Serve = servingv1alpha1.PrecomputeWhenSaturated
	changed.Spec.Precompute.Size = ptr.To[int32](10)
	a, err := renderConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := renderConfig(changed)
	if err != nil {
		t.Fatal(err)
	}
	if a.Revision == b.Revision {
		t.Error("the config revision did not change")
	}
	if !reflect.DeepEqual(a.StageRevisions, b.StageRevisions) {
		t.Errorf("stage revisions changed: %v → %v", a.StageRevisions, b.StageRevisions)
	}
}

// findVolume returns the pod volume name, nil if none.
func findVolume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// findMount returns the container's mount at path, nil if none.
func findMount(c corev1.Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// TestFrontendMountsItsLogs: only the frontend mounts the logs claim, and
// writable, also when the claim holds what the pipeline's URIs read.
func TestFrontendMountsItsLogs(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"the frontend writes to the logs claim at the logs directory": {
			mutate: withBatch,
			stage:  config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				spec := d.Spec.Template.Spec
				v := findVolume(spec, "pvc-explore-logs")
				if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "explore-logs" || v.PersistentVolumeClaim.ReadOnly {
					t.Errorf("logs volume %+v, want the writable claim explore-logs", v)
				}
				m := findMount(spec.Containers[0], config.LogsDir)
				if m == nil || m.Name != "pvc-explore-logs" || m.ReadOnly {
					t.Errorf("mount at %s: %+v, want pvc-explore-logs writable", config.LogsDir, m)
				}
				if m := findMount(spec.Containers[0], config.ClaimMountPath("explore-lists")); m == nil || !m.ReadOnly {
					t.Errorf("the precompute list's claim is mounted %+v, want read-only", m)
				}
				if d.Spec.Template.Annotations[AnnotationLoggingRevision] == "" {
					t.Errorf("no %s annotation: a change of the logs would not roll the frontend", AnnotationLoggingRevision)
				}
			},
		},
		"a claim of both the catalog and the logs is one writable volume, the catalog's mount read-only": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				withBatch(rp)
				rp.Spec.Logging.ClaimName = "explore-data"
			},
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				spec := d.Spec.Template.Spec
				n := 0
				for _, v := range spec.Volumes {
					if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "explore-data" {
						n++
						if v.PersistentVolumeClaim.ReadOnly {
							t.Errorf("volume %s is read-only; the frontend writes its logs there", v.Name)
						}
					}
				}
				if n != 1 {
					t.Errorf("%d volumes of explore-data, want 1", n)
				}
				if m := findMount(spec.Containers[0], config.ClaimMountPath("explore-data")); m == nil || !m.ReadOnly {
					t.Errorf("catalog mount %+v, want read-only", m)
				}
				if m := findMount(spec.Containers[0], config.LogsDir); m == nil || m.ReadOnly {
					t.Errorf("logs mount %+v, want writable", m)
				}
			},
		},
		"the other stages do not mount the logs": {
			mutate: withBatch,
			stage:  config.StageRankerSecond,
			check: func(t *testing.T, d *appsv1.Deployment) {
				spec := d.Spec.Template.Spec
				if v := findVolume(spec, "pvc-explore-logs"); v != nil {
					t.Errorf("ranker-second has the logs volume %+v", v)
				}
				if m := findMount(spec.Containers[0], config.LogsDir); m != nil {
					t.Errorf("ranker-second mounts %+v", m)
				}
				if _, ok := d.Spec.Template.Annotations[AnnotationLoggingRevision]; ok {
					t.Errorf("ranker-second carries %s", AnnotationLoggingRevision)
				}
			},
		},
	})
}

// TestLoggingRevisionFollowsTheLogs: what the frontend reads of its logs
// at start changes its pod template; the served sample rate, live, does
// not.
func TestLoggingRevisionFollowsTheLogs(t *testing.T) {
	revision := func(mutate func(*servingv1alpha1.LoggingSpec)) string {
		rp := samplePipeline("explore", "feed")
		withBatch(rp)
		mutate(rp.Spec.Logging)
		return childDeployment(t, rp, config.StageFrontend).Spec.Template.Annotations[AnnotationLoggingRevision]
	}
	base := revision(func(*servingv1alpha1.LoggingSpec) {})
	if got := revision(func(l *servingv1alpha1.LoggingSpec) { l.MaxFileMB = ptr.To[int32](64) }); got == base {
		t.Error("maxFileMB did not change the logging revision")
	}
	if got := revision(func(l *servingv1alpha1.LoggingSpec) { l.ClaimName = "other-logs" }); got == base {
		t.Error("the claim did not change the logging revision")
	}
	if got := revision(func(l *servingv1alpha1.LoggingSpec) { l.ServedSampleRate = ptr.To(0.5) }); got != base {
		t.Error("servedSampleRate, a live setting, changed the logging revision")
	}
}

// cronJob reads a desired CronJob as the typed object.
func cronJob(t *testing.T, ac any) *batchv1.CronJob {
	t.Helper()
	cj := &batchv1.CronJob{}
	asTyped(t, ac, cj)
	return cj
}

// allContainers are the init and regular containers of a pod.
func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// assertRestricted checks that a pod meets the restricted Pod Security
// Standard as the operator sets it.
func assertRestricted(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v is not restricted", what, psc)
	}
	for _, c := range allContainers(spec) {
		sc := c.SecurityContext
		if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
			ptr.Deref(sc.AllowPrivilegeEscalation, true) || sc.Capabilities == nil ||
			!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
			t.Errorf("%s: container %s security context %+v is not restricted", what, c.Name, sc)
		}
	}
}

// TestBatchPodsRunRestricted: the batch pods run as the stage pods do,
// without the API token.
func TestBatchPodsRunRestricted(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	withBatch(rp)
	for name, ac := range map[string]any{
		"precompute": desiredPrecomputeCronJob(rp, childTestImage),
		"training":   desiredTrainingCronJob(rp, childTestImage, childTestToolsImage),
	} {
		pod := cronJob(t, ac).Spec.JobTemplate.Spec.Template.Spec
		assertRestricted(t, name, pod)
		if !reflect.DeepEqual(pod.AutomountServiceAccountToken, ptr.To(false)) {
			t.Errorf("%s: automountServiceAccountToken %v, want false", name, pod.AutomountServiceAccountToken)
		}
		if pod.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: restartPolicy %s, want Never", name, pod.RestartPolicy)
		}
		for _, c := range allContainers(pod) {
			if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
				t.Errorf("%s: container %s terminationMessagePolicy %q", name, c.Name, c.TerminationMessagePolicy)
			}
		}
	}
	for _, stage := range Stages {
		assertRestricted(t, stage, childDeployment(t, rp, stage).Spec.Template.Spec)
	}
}

// TestDesiredPrecomputeCronJob: the schedule as declared, one run at a
// time, bounded, asking the frontend's Service with the events token.
func TestDesiredPrecomputeCronJob(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	if ac := desiredPrecomputeCronJob(rp, childTestImage); ac != nil {
		t.Fatal("a CronJob without spec.precompute")
	}
	withBatch(rp)
	rp.Spec.Precompute.Suspend = true
	rp.Spec.Events = &servingv1alpha1.EventsSpec{WriteTokenSecretRef: &servingv1alpha1.SecretKeyRef{Name: "feed-events", Key: "token"}}
	rp.Spec.Runtime.ImagePullPolicy = corev1.PullAlways
	cj := cronJob(t, desiredPrecomputeCronJob(rp, childTestImage))
	checkPrecomputeSchedule(t, cj)
	checkPrecomputeContainer(t, cj)

	rp.Spec.Events = nil
	rp.Spec.Precompute.TimeZone = nil
	rp.Spec.Precompute.ActiveDeadline = &metav1.Duration{Duration: 90 * time.Second}
	cj = cronJob(t, desiredPrecomputeCronJob(rp, childTestImage))
	if _, ok := childEnv(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0], config.EventsTokenEnv); ok {
		t.Error("events token without spec.events")
	}
	if cj.Spec.TimeZone != nil || ptr.Deref(cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, 0) != 90 {
		t.Errorf("timeZone %v activeDeadlineSeconds %v, want none and 90", cj.Spec.TimeZone, cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds)
	}
}

// checkPrecomputeSchedule checks withBatch's precompute CronJob, suspended:
// its name, owner, schedule, bounds and labels.
func checkPrecomputeSchedule(t *testing.T, cj *batchv1.CronJob) {
	t.Helper()
	if cj.Name != "feed-precompute" || cj.Namespace != "explore" {
		t.Errorf("CronJob %s/%s", cj.Namespace, cj.Name)
	}
	assertControllerRef(t, cj.OwnerReferences)
	s := cj.Spec
	if s.Schedule != "0 3 * * *" || ptr.Deref(s.TimeZone, "") != "Europe/Paris" || !ptr.Deref(s.Suspend, false) ||
		s.ConcurrencyPolicy != batchv1.ForbidConcurrent || ptr.Deref(s.StartingDeadlineSeconds, 0) != precomputeStartingDeadline ||
		ptr.Deref(s.SuccessfulJobsHistoryLimit, 0) != 3 || ptr.Deref(s.FailedJobsHistoryLimit, 0) != 3 {
		t.Errorf("CronJob spec %+v", s)
	}
	job := s.JobTemplate.Spec
	if ptr.Deref(job.BackoffLimit, -1) != 1 || ptr.Deref(job.ActiveDeadlineSeconds, 0) != 3600 {
		t.Errorf("Job backoffLimit %v activeDeadlineSeconds %v, want 1 and 3600 (the 1h default)", job.BackoffLimit, job.ActiveDeadlineSeconds)
	}
	for what, l := range map[string]map[string]string{"CronJob": cj.Labels, "Job": s.JobTemplate.Labels, "pod": job.Template.Labels} {
		if l[labelManagedBy] != ManagedByValue || l[labelInstance] != "feed" || l[labelComponent] != componentPrecompute {
			t.Errorf("%s labels %v, want the pipeline's managed precompute labels (the manager caches only those)", what, l)
		}
	}
}

// checkPrecomputeContainer checks that the precompute pod runs the
// pipeline's image's entrypoint with the precompute command, the events
// token and small resources.
func checkPrecomputeContainer(t *testing.T, cj *batchv1.CronJob) {
	t.Helper()
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("pod containers %+v", pod.Containers)
	}
	c := pod.Containers[0]
	wantArgs := []string{config.CommandPrecompute, "--" + config.FlagFrontend + "=http://feed-frontend.explore.svc:8080", "--" + config.FlagPrecomputeWait + "=1h0m0s"}
	if c.Image != childTestImage || len(c.Command) != 0 || !reflect.DeepEqual(c.Args, wantArgs) || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("container image %s command %v args %v pull %s, want %s running its entrypoint with %v", c.Image, c.Command, c.Args, c.ImagePullPolicy, childTestImage, wantArgs)
	}
	env, ok := childEnv(c, config.EventsTokenEnv)
	if !ok || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil || env.ValueFrom.SecretKeyRef.Name != "feed-events" || env.ValueFrom.SecretKeyRef.Key != "token" {
		t.Errorf("%s = %+v, want the events token Secret", config.EventsTokenEnv, env)
	}
	assertQuantity(t, "memory limit", c.Resources.Limits[corev1.ResourceMemory], "128Mi")
	assertQuantity(t, "cpu request", c.Resources.Requests[corev1.ResourceCPU], "10m")
}

// TestDesiredTrainingCronJob: the export reads the logs and the catalog
// read-only into the pod's scratch space; rectrain writes a directory of
// the output named after the Job and its result to the termination
// message.
func TestDesiredTrainingCronJob(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	if ac := desiredTrainingCronJob(rp, childTestImage, childTestToolsImage); ac != nil {
		t.Fatal("a CronJob without spec.training")
	}
	withBatch(rp)
	rp.Spec.Training.Resources = &servingv1alpha1.Resources{
		Requests: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceCPU: intstr.FromString("2"), corev1.ResourceMemory: intstr.FromString("8Gi")},
	}
	cj := cronJob(t, desiredTrainingCronJob(rp, childTestImage, childTestToolsImage))
	checkTrainingSchedule(t, cj)
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("init containers %d, containers %d, want 1 and 1", len(pod.InitContainers), len(pod.Containers))
	}
	checkExportContainer(t, pod.InitContainers[0])
	checkTrainContainer(t, pod.Containers[0])
	for claim, readOnly := range map[string]bool{"explore-logs": true, "explore-data": true, "explore-models": false} {
		v := findVolume(pod, claimVolumeName(claim))
		if v == nil || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claim || v.PersistentVolumeClaim.ReadOnly != readOnly {
			t.Errorf("volume of %s: %+v, want read-only %v", claim, v, readOnly)
		}
	}

	if slices.Contains(pod.Containers[0].Args, "--allow-weak") {
		t.Errorf("train runs %v: --allow-weak without qualityGate Allow", pod.Containers[0].Args)
	}

	rp.Spec.Training.Image = "registry.example/my-trainer:v2"
	rp.Spec.Training.Epochs = nil
	rp.Spec.Training.QualityGate = servingv1alpha1.QualityGateAllow
	rp.Spec.Logging.ClaimName = "explore-models"
	pod = cronJob(t, desiredTrainingCronJob(rp, childTestImage, childTestToolsImage)).Spec.JobTemplate.Spec.Template.Spec
	if train := pod.Containers[0]; train.Image != "registry.example/my-trainer:v2" || slices.Contains(train.Args, "--epochs") || !slices.Contains(train.Args, "--allow-weak") {
		t.Errorf("train runs %s %v, want spec.training.image with --allow-weak and without --epochs", train.Image, train.Args)
	}
	n := 0
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "explore-models" {
			n++
			if v.PersistentVolumeClaim.ReadOnly {
				t.Error("the output claim, also the logs', is read-only")
			}
		}
	}
	if n != 1 {
		t.Errorf("%d volumes of the claim of both the logs and the output, want 1", n)
	}
}

// checkTrainingSchedule checks withBatch's training CronJob: its schedule,
// owner, bounds, labels and the pod failure policy of rectrain's quality
// gate.
func checkTrainingSchedule(t *testing.T, cj *batchv1.CronJob) {
	t.Helper()
	if cj.Name != "feed-training" || cj.Spec.Schedule != "30 4 * * 0" || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf("CronJob %s schedule %q concurrency %s", cj.Name, cj.Spec.Schedule, cj.Spec.ConcurrencyPolicy)
	}
	assertControllerRef(t, cj.OwnerReferences)
	job := cj.Spec.JobTemplate.Spec
	if ptr.Deref(job.ActiveDeadlineSeconds, 0) != int64(6*time.Hour/time.Second) || ptr.Deref(job.BackoffLimit, -1) != 1 {
		t.Errorf("activeDeadlineSeconds %v backoffLimit %v, want 6h and 1", job.ActiveDeadlineSeconds, job.BackoffLimit)
	}
	if p := job.PodFailurePolicy; p == nil || len(p.Rules) != 1 || p.Rules[0].Action != batchv1.PodFailurePolicyActionFailJob ||
		p.Rules[0].OnExitCodes == nil || ptr.Deref(p.Rules[0].OnExitCodes.ContainerName, "") != containerTrain ||
		!reflect.DeepEqual(p.Rules[0].OnExitCodes.Values, []int32{3}) {
		t.Errorf("podFailurePolicy %+v, want the Job failed at once when rectrain's quality gate refuses the models", p)
	}
	if l := job.Template.Labels; l[labelManagedBy] != ManagedByValue || l[labelComponent] != componentTraining || l[labelInstance] != "feed" {
		t.Errorf("pod labels %v", l)
	}
}

// checkExportContainer checks that the export reads the logs and the
// catalog read-only and writes the dataset to the scratch space.
func checkExportContainer(t *testing.T, export corev1.Container) {
	t.Helper()
	wantExport := []string{config.CommandExport, "--logs=/var/lib/recpipeline/logs/feed",
		"--catalog=file:///var/lib/recpipeline/volumes/explore-data/catalog", "--out=/work/data", "--window=720h0m0s"}
	if export.Image != childTestImage || !reflect.DeepEqual(export.Args, wantExport) {
		t.Errorf("export runs %s %v, want %s %v", export.Image, export.Args, childTestImage, wantExport)
	}
	for path, want := range map[string]string{config.LogsDir: "pvc-explore-logs", config.ClaimMountPath("explore-data"): "pvc-explore-data", "/work": "work"} {
		m := findMount(export, path)
		if m == nil || m.Name != want || m.ReadOnly != (want != "work") {
			t.Errorf("export mount at %s: %+v, want %s (read-only but for the scratch space)", path, m, want)
		}
	}
}

// checkTrainContainer checks that rectrain trains on the dataset into a
// writable directory of the output named after the Job, with its result
// as the termination message.
func checkTrainContainer(t *testing.T, train corev1.Container) {
	t.Helper()
	wantTrain := []string{"--data", "/work/data", "--out", "/var/lib/recpipeline/volumes/explore-models/trained/$(JOB_NAME)",
		"--version", "$(JOB_NAME)", "--epochs", "2", "--result-file", "/dev/termination-log"}
	if train.Image != childTestToolsImage || !reflect.DeepEqual(train.Command, []string{"rectrain"}) || !reflect.DeepEqual(train.Args, wantTrain) {
		t.Errorf("train runs %s %v %v, want %s rectrain %v", train.Image, train.Command, train.Args, childTestToolsImage, wantTrain)
	}
	env, ok := childEnv(train, "JOB_NAME")
	if !ok || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil || env.ValueFrom.FieldRef.FieldPath != "metadata.labels['batch.kubernetes.io/job-name']" {
		t.Errorf("JOB_NAME = %+v, want the Job's name from the pod's label", env)
	}
	if m := findMount(train, config.ClaimMountPath("explore-models")); m == nil || m.ReadOnly || m.Name != "pvc-explore-models" {
		t.Errorf("output mount %+v, want pvc-explore-models writable", m)
	}
	if m := findMount(train, config.LogsDir); m != nil {
		t.Errorf("rectrain mounts the logs: %+v", m)
	}
	assertQuantity(t, "cpu request", train.Resources.Requests[corev1.ResourceCPU], "2")
	assertQuantity(t, "memory limit", train.Resources.Limits[corev1.ResourceMemory], "32Gi")
}

// TestNetworkPolicyLetsThePrecomputeJobIn: with the frontend's clients
// limited, the precompute job's pods may still reach it.
func TestNetworkPolicyLetsThePrecomputeJobIn(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	withBatch(rp)
	rp.Spec.Network = &servingv1alpha1.NetworkSpec{Clients: []servingv1alpha1.NetworkPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "feed"}},
	}}}
	podLabels := labels.Set(cronJob(t, desiredPrecomputeCronJob(rp, childTestImage)).Spec.JobTemplate.Spec.Template.Labels)
	admits := func(rp *servingv1alpha1.RecPipeline) bool {
		np := &networkingv1.NetworkPolicy{}
		asTyped(t, desiredNetworkPolicy(rp, config.StageFrontend, ""), np)
		for _, rule := range np.Spec.Ingress {
			for _, peer := range rule.From {
				if peer.NamespaceSelector != nil || peer.PodSelector == nil {
					continue
				}
				sel, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
				if err != nil {
					t.Fatal(err)
				}
				if sel.Matches(podLabels) {
					return true
				}
			}
		}
		return false
	}
	if !admits(rp) {
		t.Error("the frontend's NetworkPolicy does not admit the precompute pods")
	}
	rp.Spec.Precompute = nil
	if admits(rp) {
		t.Error("the frontend's NetworkPolicy admits the precompute pods without spec.precompute")
	}
}
