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
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The children are apply configurations; the tests read them as the typed
// objects the API server would store, through their JSON form.

const (
	childTestImage    = "registry.example/recserve:v1.2.3"
	childTestRevision = "0123456789abcdef"
)

// asTyped converts an apply configuration into the typed object out.
func asTyped(t *testing.T, ac any, out any) {
	t.Helper()
	b, err := json.Marshal(ac)
	if err != nil {
		t.Fatalf("failed to encode apply configuration: %v", err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("failed to decode apply configuration into %T: %v", out, err)
	}
}

func childDeployment(t *testing.T, rp *servingv1alpha1.RecPipeline, stage string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	asTyped(t, desiredDeployment(rp, stage, childTestImage, childTestRevision), d)
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("deployment has %d containers, want 1", n)
	}
	return d
}

func childEnv(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func volumeNames(vs []corev1.Volume) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Name)
	}
	return out
}

func withRedis(rp *servingv1alpha1.RecPipeline, ref *servingv1alpha1.SecretKeyRef) {
	rp.Spec.Data.Store = servingv1alpha1.StoreSpec{
		Type:  servingv1alpha1.StoreRedis,
		Redis: &servingv1alpha1.RedisStoreSpec{Address: "redis.data:6379", PasswordSecretRef: ref},
	}
}

func TestDesiredDeploymentReplicas(t *testing.T) {
	tests := map[string]struct {
		mutate func(*servingv1alpha1.RecPipeline)
		stage  string
		want   *int32
	}{
		"fixed replicas are set": {
			stage: config.StageRetrieval,
			want:  ptr.To[int32](2),
		},
		"autoscaled stage leaves replicas to the HPA": {
			stage: config.StageRankerSecond,
			want:  nil,
		},
		"stage without scaling runs one replica": {
			stage: config.StageFrontend,
			want:  ptr.To[int32](1),
		},
		"scaling with neither replicas nor autoscaling runs one replica": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{}}
			},
			stage: config.StageFrontend,
			want:  ptr.To[int32](1),
		},
		"zero replicas scale the stage down": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.FirstStage.Scaling.Replicas = ptr.To[int32](0)
			},
			stage: config.StageRankerFirst,
			want:  ptr.To[int32](0),
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			if tc.mutate != nil {
				tc.mutate(rp)
			}
			got := childDeployment(t, rp, tc.stage).Spec.Replicas
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("replicas = %v, want %v", ptr.Deref(got, -1), ptr.Deref(tc.want, -1))
			}
		})
	}
}

// podTemplateCase checks the Deployment of one stage of the sample
// pipeline, changed by mutate.
type podTemplateCase struct {
	mutate func(*servingv1alpha1.RecPipeline)
	stage  string
	check  func(t *testing.T, d *appsv1.Deployment)
}

func runPodTemplateCases(t *testing.T, tests map[string]podTemplateCase) {
	t.Helper()
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			if tc.mutate != nil {
				tc.mutate(rp)
			}
			tc.check(t, childDeployment(t, rp, tc.stage))
		})
	}
}

// TestDesiredDeploymentRunsItsStage: the container runs the resolved image
// with the flags and environment of its stage, under a selector that picks
// its own pods.
func TestDesiredDeploymentRunsItsStage(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"container runs the resolved image for its stage": {
			stage: config.StageRankerFirst,
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if c.Image != childTestImage {
					t.Errorf("image = %q, want %q", c.Image, childTestImage)
				}
				for _, arg := range []string{"--stage=ranker-first", "--config-map=feed-config"} {
					if !slices.Contains(c.Args, arg) {
						t.Errorf("args %v lack %q", c.Args, arg)
					}
				}
				if got := d.Spec.Template.Spec.ServiceAccountName; got != "feed-runtime" {
					t.Errorf("serviceAccountName = %q, want feed-runtime", got)
				}
			},
		},
		"imagePullPolicy unset is left to Kubernetes": {
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Spec.Containers[0].ImagePullPolicy; got != "" {
					t.Errorf("imagePullPolicy = %q, want unset", got)
				}
			},
		},
		"imagePullPolicy is passed through": {
			mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Runtime.ImagePullPolicy = corev1.PullAlways },
			stage:  config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Spec.Containers[0].ImagePullPolicy; got != corev1.PullAlways {
					t.Errorf("imagePullPolicy = %q, want Always", got)
				}
			},
		},
		"deploy revision annotation and env agree": {
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if got := d.Spec.Template.Annotations[AnnotationDeployRevision]; got != childTestRevision {
					t.Errorf("annotation %s = %q, want %q", AnnotationDeployRevision, got, childTestRevision)
				}
				e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.DeployRevisionEnv)
				if !ok || e.Value != childTestRevision {
					t.Errorf("env %s = %+v, want %q", config.DeployRevisionEnv, e, childTestRevision)
				}
			},
		},
		"selector selects the template and the pipeline owns the deployment": {
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
				if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("selector %v does not select template labels %v", sel, d.Spec.Template.Labels)
				}
				if d.Name != "feed-retrieval" || d.Namespace != "ns" {
					t.Errorf("deployment is %s/%s, want ns/feed-retrieval", d.Namespace, d.Name)
				}
				assertControllerRef(t, d.OwnerReferences)
			},
		},
	})
}

// TestDesiredDeploymentRedisPassword: the Redis password reaches the pod
// from the Secret the pipeline names, and only then.
func TestDesiredDeploymentRedisPassword(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"redis password comes from the named secret key": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				withRedis(rp, &servingv1alpha1.SecretKeyRef{Name: "redis-auth", Key: "password"})
			},
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.RedisPasswordEnv)
				if !ok {
					t.Fatalf("no %s env", config.RedisPasswordEnv)
				}
				if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Fatalf("%s must come from a secret key only: %+v", config.RedisPasswordEnv, e)
				}
				if ref := e.ValueFrom.SecretKeyRef; ref.Name != "redis-auth" || ref.Key != "password" {
					t.Errorf("secret key ref = %s/%s, want redis-auth/password", ref.Name, ref.Key)
				}
			},
		},
		"redis without passwordSecretRef gets no password env": {
			mutate: func(rp *servingv1alpha1.RecPipeline) { withRedis(rp, nil) },
			stage:  config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.RedisPasswordEnv); ok {
					t.Errorf("unexpected %s env: %+v", config.RedisPasswordEnv, e)
				}
			},
		},
		"memory store gets no password env": {
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.RedisPasswordEnv); ok {
					t.Errorf("unexpected %s env: %+v", config.RedisPasswordEnv, e)
				}
			},
		},
	})
}

// TestDesiredDeploymentClaimVolumes: every claim a pvc:// URI names is
// mounted once, read-only, in a stable order.
func TestDesiredDeploymentClaimVolumes(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"claims named twice are mounted once, read-only, under the volume root": {
			// The sample names explore-models in two models and
			// explore-data for the catalog.
			stage: config.StageRankerSecond,
			check: func(t *testing.T, d *appsv1.Deployment) {
				want := []string{"tmp", "state", "stage-token", "pvc-explore-data", "pvc-explore-models"}
				if got := volumeNames(d.Spec.Template.Spec.Volumes); !reflect.DeepEqual(got, want) {
					t.Fatalf("volumes = %v, want %v", got, want)
				}
				for _, v := range d.Spec.Template.Spec.Volumes[3:] {
					pvc := v.PersistentVolumeClaim
					if pvc == nil || !pvc.ReadOnly || "pvc-"+pvc.ClaimName != v.Name {
						t.Errorf("volume %s must be the read-only claim of its name: %+v", v.Name, pvc)
					}
				}
				mounts := map[string]corev1.VolumeMount{}
				for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
					mounts[m.Name] = m
				}
				for _, claim := range []string{"explore-data", "explore-models"} {
					m, ok := mounts["pvc-"+claim]
					if !ok {
						t.Errorf("claim %s is not mounted", claim)
						continue
					}
					if want := "/var/lib/recpipeline/volumes/" + claim; m.MountPath != want || !m.ReadOnly {
						t.Errorf("claim %s mounted at %q (readOnly %v), want %q read-only", claim, m.MountPath, m.ReadOnly, want)
					}
				}
			},
		},
		"claims are sorted whatever field names them": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Catalog.URI = "pvc://zeta/catalog"
				rp.Spec.Models[0].URI = "pvc://alpha/two-tower"
				rp.Spec.Models[1].URI = "pvc://zeta/first-stage/"
				rp.Spec.Retrieval.Sources = append(rp.Spec.Retrieval.Sources, servingv1alpha1.SourceSpec{
					Name: "editors", Type: servingv1alpha1.SourcePrecomputed, Weight: 0.1, Limit: 50, URI: "pvc://mid",
				})
			},
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				want := []string{"tmp", "state", "stage-token", "pvc-alpha", "pvc-mid", "pvc-zeta"}
				if got := volumeNames(d.Spec.Template.Spec.Volumes); !reflect.DeepEqual(got, want) {
					t.Errorf("volumes = %v, want %v", got, want)
				}
			},
		},
		"file and https URIs get no claim volume": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Catalog.URI = "file:///srv/catalog"
				rp.Spec.Models[0].URI = "https://models.example/two-tower.tar.gz"
				rp.Spec.Models[1].URI = "file:///srv/first-stage"
			},
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				want := []string{"tmp", "state", "stage-token"}
				if got := volumeNames(d.Spec.Template.Spec.Volumes); !reflect.DeepEqual(got, want) {
					t.Errorf("volumes = %v, want %v", got, want)
				}
				if n := len(d.Spec.Template.Spec.Containers[0].VolumeMounts); n != 3 {
					t.Errorf("%d volume mounts, want tmp, state and stage-token only", n)
				}
			},
		},
	})
}

// TestDesiredDeploymentStateAndStrategy: where the state directory lives
// decides how a stage rolls out.
func TestDesiredDeploymentStateAndStrategy(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"without a state claim every stage rolls a new pod in first over an emptyDir": {
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if s := d.Spec.Strategy; s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
					s.RollingUpdate.MaxUnavailable.IntValue() != 0 || s.RollingUpdate.MaxSurge.IntValue() != 1 {
					t.Errorf("strategy = %+v, want RollingUpdate with maxUnavailable 0, maxSurge 1", s)
				}
				if v := d.Spec.Template.Spec.Volumes[1]; v.Name != "state" || v.EmptyDir == nil {
					t.Errorf("state volume = %+v, want an emptyDir", v)
				}
			},
		},
		"the frontend keeps its event log on the state claim and is recreated": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Store.Memory = &servingv1alpha1.MemoryStoreSpec{ClaimName: "feed-events"}
			},
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if s := d.Spec.Strategy; s.Type != appsv1.RecreateDeploymentStrategyType || s.RollingUpdate != nil {
					t.Errorf("strategy = %+v, want Recreate: two pods must not append to one log", s)
				}
				v := d.Spec.Template.Spec.Volumes[1]
				if v.Name != "state" || v.EmptyDir != nil || v.PersistentVolumeClaim == nil ||
					v.PersistentVolumeClaim.ClaimName != "feed-events" || v.PersistentVolumeClaim.ReadOnly {
					t.Errorf("state volume = %+v, want the writable claim feed-events", v)
				}
				for _, m := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
					if m.Name == "state" && (m.MountPath != "/var/lib/recpipeline/state" || m.ReadOnly) {
						t.Errorf("state mounted at %q (readOnly %v), want the --state-dir writable", m.MountPath, m.ReadOnly)
					}
				}
			},
		},
		"stateless stages ignore the state claim": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Store.Memory = &servingv1alpha1.MemoryStoreSpec{ClaimName: "feed-events"}
			},
			stage: config.StageRankerSecond,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType {
					t.Errorf("strategy = %s, want RollingUpdate", d.Spec.Strategy.Type)
				}
				if v := d.Spec.Template.Spec.Volumes[1]; v.EmptyDir == nil {
					t.Errorf("state volume = %+v, want an emptyDir", v)
				}
			},
		},
	})
}

// TestDesiredDeploymentResourcesAndSecurity: default requests fill what the
// user leaves out, and the pod runs restricted.
func TestDesiredDeploymentResourcesAndSecurity(t *testing.T) {
	runPodTemplateCases(t, map[string]podTemplateCase{
		"default requests without user resources": {
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				r := d.Spec.Template.Spec.Containers[0].Resources
				assertQuantity(t, "cpu request", r.Requests[corev1.ResourceCPU], "100m")
				assertQuantity(t, "memory request", r.Requests[corev1.ResourceMemory], "256Mi")
				assertQuantity(t, "memory limit", r.Limits[corev1.ResourceMemory], "4Gi")
				if len(r.Limits) != 1 {
					t.Errorf("limits = %v, want memory only", r.Limits)
				}
				for _, v := range d.Spec.Template.Spec.Volumes {
					if v.Name == "tmp" && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.String() != "1Gi") {
						t.Errorf("scratch volume %+v, want an emptyDir of at most 1Gi", v)
					}
					if v.Name == "state" && (v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.String() != "12Gi") {
						t.Errorf("state volume %+v, want an emptyDir of at most 3 × the 4Gi memory limit", v)
					}
				}
			},
		},
		"a large memory request gets a limit of four times it": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Retrieval.Resources = &servingv1alpha1.Resources{
					Requests: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceMemory: intstr.FromString("3Gi")},
				}
			},
			stage: config.StageRetrieval,
			check: func(t *testing.T, d *appsv1.Deployment) {
				r := d.Spec.Template.Spec.Containers[0].Resources
				assertQuantity(t, "memory limit", r.Limits[corev1.ResourceMemory], "12Gi")
				if v := d.Spec.Template.Spec.Volumes[1]; v.Name != "state" || v.EmptyDir == nil || v.EmptyDir.SizeLimit == nil {
					t.Fatalf("state volume %+v, want a limited emptyDir", v)
				} else {
					assertQuantity(t, "state size limit", *v.EmptyDir.SizeLimit, "36Gi")
				}
			},
		},
		"user requests override the defaults they name and limits pass through": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.SecondStage.Resources = &servingv1alpha1.Resources{
					Requests: map[corev1.ResourceName]intstr.IntOrString{
						corev1.ResourceCPU:              intstr.FromInt32(2),
						corev1.ResourceEphemeralStorage: intstr.FromString("1Gi"),
					},
					Limits: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceMemory: intstr.FromString("4Gi")},
				}
			},
			stage: config.StageRankerSecond,
			check: func(t *testing.T, d *appsv1.Deployment) {
				r := d.Spec.Template.Spec.Containers[0].Resources
				assertQuantity(t, "cpu request", r.Requests[corev1.ResourceCPU], "2")
				assertQuantity(t, "memory request", r.Requests[corev1.ResourceMemory], "256Mi")
				assertQuantity(t, "ephemeral-storage request", r.Requests[corev1.ResourceEphemeralStorage], "1Gi")
				assertQuantity(t, "memory limit", r.Limits[corev1.ResourceMemory], "4Gi")
				if len(r.Limits) != 1 {
					t.Errorf("limits = %v, want memory only", r.Limits)
				}
			},
		},
		"pod and container run restricted": {
			stage: config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				psc := d.Spec.Template.Spec.SecurityContext
				if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != 65532 ||
					ptr.Deref(psc.FSGroup, 0) != 65532 || psc.SeccompProfile == nil ||
					psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("pod security context is not restricted: %+v", psc)
				}
				sc := d.Spec.Template.Spec.Containers[0].SecurityContext
				if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
					ptr.Deref(sc.AllowPrivilegeEscalation, true) || sc.Capabilities == nil ||
					!reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
					t.Errorf("container security context is not restricted: %+v", sc)
				}
			},
		},
	})
}

func assertQuantity(t *testing.T, what string, got resource.Quantity, want string) {
	t.Helper()
	if w := resource.MustParse(want); got.Cmp(w) != 0 {
		t.Errorf("%s = %s, want %s", what, got.String(), want)
	}
}

func assertControllerRef(t *testing.T, refs []metav1.OwnerReference) {
	t.Helper()
	if len(refs) != 1 {
		t.Fatalf("owner references = %+v, want one", refs)
	}
	r := refs[0]
	if r.Kind != "RecPipeline" || r.Name != "feed" || r.UID != "6b1f0c2e-0000-4000-8000-000000000001" ||
		!ptr.Deref(r.Controller, false) || r.APIVersion != servingv1alpha1.GroupVersion.String() {
		t.Errorf("owner reference %+v is not the pipeline as controller", r)
	}
}

func TestDesiredHPA(t *testing.T) {
	tests := map[string]struct {
		mutate     func(*servingv1alpha1.RecPipeline)
		stage      string
		wantNil    bool
		wantMin    int32
		wantMax    int32
		wantTarget int32
	}{
		"no HPA for fixed replicas": {
			stage:   config.StageRetrieval,
			wantNil: true,
		},
		"no HPA for a stage without scaling": {
			stage:   config.StageFrontend,
			wantNil: true,
		},
		"explicit CPU target": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.SecondStage.Scaling.Autoscaling.TargetCPUUtilization = ptr.To[int32](85)
			},
			stage:      config.StageRankerSecond,
			wantMin:    2,
			wantMax:    20,
			wantTarget: 85,
		},
		"CPU target defaults to 70": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{
					Autoscaling: &servingv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 4},
				}}
			},
			stage:      config.StageFrontend,
			wantMin:    1,
			wantMax:    4,
			wantTarget: 70,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			if tc.mutate != nil {
				tc.mutate(rp)
			}
			ac := desiredHPA(rp, tc.stage)
			if tc.wantNil {
				if ac != nil {
					t.Fatalf("got an HPA, want none")
				}
				return
			}
			if ac == nil {
				t.Fatalf("got no HPA")
			}
			hpa := &autoscalingv2.HorizontalPodAutoscaler{}
			asTyped(t, ac, hpa)
			ref := hpa.Spec.ScaleTargetRef
			if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != ChildName(rp, tc.stage) || hpa.Name != ChildName(rp, tc.stage) {
				t.Errorf("HPA %s scales %+v, want the stage's Deployment", hpa.Name, ref)
			}
			if ptr.Deref(hpa.Spec.MinReplicas, 0) != tc.wantMin || hpa.Spec.MaxReplicas != tc.wantMax {
				t.Errorf("replicas %d..%d, want %d..%d", ptr.Deref(hpa.Spec.MinReplicas, 0), hpa.Spec.MaxReplicas, tc.wantMin, tc.wantMax)
			}
			if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource == nil ||
				hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU ||
				hpa.Spec.Metrics[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType ||
				ptr.Deref(hpa.Spec.Metrics[0].Resource.Target.AverageUtilization, 0) != tc.wantTarget {
				t.Errorf("metrics = %+v, want CPU utilization %d", hpa.Spec.Metrics, tc.wantTarget)
			}
		})
	}
}

func TestDesiredPDB(t *testing.T) {
	autoscale := func(minR, maxR int32) func(*servingv1alpha1.RecPipeline) {
		return func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{
				Autoscaling: &servingv1alpha1.AutoscalingSpec{MinReplicas: minR, MaxReplicas: maxR},
			}}
		}
	}
	fixed := func(n int32) func(*servingv1alpha1.RecPipeline) {
		return func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{Replicas: ptr.To(n)}}
		}
	}
	tests := map[string]struct {
		mutate func(*servingv1alpha1.RecPipeline)
		want   bool
	}{
		"no budget for the default single replica": {want: false},
		"no budget for one fixed replica":          {mutate: fixed(1), want: false},
		"no budget for zero replicas":              {mutate: fixed(0), want: false},
		"budget for two fixed replicas":            {mutate: fixed(2), want: true},
		"budget for autoscaling up to more than one": {
			mutate: autoscale(1, 3), want: true,
		},
		"no budget for autoscaling capped at one": {
			mutate: autoscale(1, 1), want: false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			if tc.mutate != nil {
				tc.mutate(rp)
			}
			ac := desiredPDB(rp, config.StageFrontend)
			if (ac != nil) != tc.want {
				t.Fatalf("budget present = %v, want %v", ac != nil, tc.want)
			}
			if ac == nil {
				return
			}
			pdb := &policyv1.PodDisruptionBudget{}
			asTyped(t, ac, pdb)
			if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromInt32(1) || pdb.Spec.MinAvailable != nil {
				t.Errorf("budget = %+v, want maxUnavailable 1 only", pdb.Spec)
			}
			d := childDeployment(t, rp, config.StageFrontend)
			if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
				t.Errorf("budget selects %v, the Deployment %v", pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
			}
		})
	}
}

func TestDesiredRoleGrantsOnlyItsConfigMap(t *testing.T) {
	role := &rbacv1.Role{}
	asTyped(t, desiredRole(samplePipeline("ns", "feed")), role)
	want := []rbacv1.PolicyRule{{
		APIGroups:     []string{""},
		Resources:     []string{"configmaps"},
		ResourceNames: []string{"feed-config"},
		Verbs:         []string{"get", "watch"},
	}}
	if !reflect.DeepEqual(role.Rules, want) {
		t.Errorf("rules = %+v, want %+v", role.Rules, want)
	}
	if role.Name != "feed-runtime" || role.Namespace != "ns" {
		t.Errorf("role is %s/%s, want ns/feed-runtime", role.Namespace, role.Name)
	}
}

func TestDesiredService(t *testing.T) {
	rp := samplePipeline("ns", "feed")
	tests := map[string]struct {
		stage string
	}{
		"frontend":      {stage: config.StageFrontend},
		"retrieval":     {stage: config.StageRetrieval},
		"ranker-first":  {stage: config.StageRankerFirst},
		"ranker-second": {stage: config.StageRankerSecond},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			svc := &corev1.Service{}
			asTyped(t, desiredService(rp, tc.stage), svc)
			wantPorts := []corev1.ServicePort{
				{Name: "http", Protocol: corev1.ProtocolTCP, Port: 8080, TargetPort: intstr.FromString("http")},
				{Name: "grpc", Protocol: corev1.ProtocolTCP, Port: 9090, TargetPort: intstr.FromString("grpc")},
			}
			if !reflect.DeepEqual(svc.Spec.Ports, wantPorts) {
				t.Errorf("ports = %+v, want %+v", svc.Spec.Ports, wantPorts)
			}
			if svc.Name != ChildName(rp, tc.stage) || svc.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("service %s of type %s, want ClusterIP %s", svc.Name, svc.Spec.Type, ChildName(rp, tc.stage))
			}
			// The Service reaches its own stage's pods and no other's.
			sel := labels.SelectorFromSet(svc.Spec.Selector)
			for _, stage := range Stages {
				d := childDeployment(t, rp, stage)
				if got, want := sel.Matches(labels.Set(d.Spec.Template.Labels)), stage == tc.stage; got != want {
					t.Errorf("selector %v matches %s pods = %v, want %v", sel, stage, got, want)
				}
				// The named target ports exist on the container.
				if stage == tc.stage {
					names := map[string]bool{}
					for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
						names[p.Name] = true
					}
					for _, p := range svc.Spec.Ports {
						if !names[p.TargetPort.StrVal] {
							t.Errorf("target port %q is not a container port", p.TargetPort.StrVal)
						}
					}
				}
			}
		})
	}
}

func TestParsePVCAndLocalURI(t *testing.T) {
	tests := map[string]struct {
		uri       string
		wantClaim string
		wantPath  string
		wantOK    bool
		wantLocal string
	}{
		"claim alone mounts at the claim's root": {
			uri: "pvc://claim", wantClaim: "claim", wantOK: true,
			wantLocal: "file:///var/lib/recpipeline/volumes/claim",
		},
		"claim with a path and a trailing slash": {
			uri: "pvc://claim/a/b/", wantClaim: "claim", wantPath: "a/b/", wantOK: true,
			wantLocal: "file:///var/lib/recpipeline/volumes/claim/a/b",
		},
		"claim with a trailing slash only": {
			uri: "pvc://claim/", wantClaim: "claim", wantOK: true,
			wantLocal: "file:///var/lib/recpipeline/volumes/claim",
		},
		"file URI passes through": {
			uri: "file:///x", wantLocal: "file:///x",
		},
		"https URI passes through": {
			uri: "https://models.example/mtml/v12.tar.gz", wantLocal: "https://models.example/mtml/v12.tar.gz",
		},
		"pvc URI without a claim is not a claim": {
			uri: "pvc:///x", wantPath: "x", wantLocal: "pvc:///x",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			claim, path, ok := parsePVC(tc.uri)
			if ok != tc.wantOK || (ok && (claim != tc.wantClaim || path != tc.wantPath)) {
				t.Errorf("parsePVC(%q) = (%q, %q, %v), want (%q, %q, %v)", tc.uri, claim, path, ok, tc.wantClaim, tc.wantPath, tc.wantOK)
			}
			if got := localURI(tc.uri); got != tc.wantLocal {
				t.Errorf("localURI(%q) = %q, want %q", tc.uri, got, tc.wantLocal)
			}
		})
	}
}

// TestDesiredDeploymentEventsToken: the events token reaches the frontend,
// the only stage that takes events, from the Secret the pipeline names, and
// never the other stages or the ConfigMap.
func TestDesiredDeploymentEventsToken(t *testing.T) {
	withToken := func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Events = &servingv1alpha1.EventsSpec{WriteTokenSecretRef: &servingv1alpha1.SecretKeyRef{Name: "events-auth", Key: "token"}}
	}
	runPodTemplateCases(t, map[string]podTemplateCase{
		"the frontend gets the token from the secret key": {
			mutate: withToken,
			stage:  config.StageFrontend,
			check: func(t *testing.T, d *appsv1.Deployment) {
				e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.EventsTokenEnv)
				if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Fatalf("%s must come from a secret key only: %+v", config.EventsTokenEnv, e)
				}
				if ref := e.ValueFrom.SecretKeyRef; ref.Name != "events-auth" || ref.Key != "token" {
					t.Errorf("secret key ref = %s/%s, want events-auth/token", ref.Name, ref.Key)
				}
			},
		},
		"the other stages do not": {
			mutate: withToken,
			stage:  config.StageRankerSecond,
			check: func(t *testing.T, d *appsv1.Deployment) {
				if e, ok := childEnv(d.Spec.Template.Spec.Containers[0], config.EventsTokenEnv); ok {
					t.Errorf("a stage that takes no events got %+v", e)
				}
			},
		},
	})
	rp := samplePipeline("explore", "feed")
	withToken(rp)
	r, err := renderConfig(rp)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(r.Bytes), "events-auth") {
		t.Error("the rendered config names the token's secret")
	}
}

// TestDesiredDeploymentStageToken: every stage reads the pipeline's stage
// token from its Secret, mounted read-only, and is told where it is; the
// rendered config never holds it.
func TestDesiredDeploymentStageToken(t *testing.T) {
	cases := map[string]podTemplateCase{}
	for _, stage := range Stages {
		cases[stage] = podTemplateCase{
			stage: stage,
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if arg := config.Arg(config.FlagStageTokenFile, config.StageTokenPath); !slices.Contains(c.Args, arg) {
					t.Errorf("args %v lack %q", c.Args, arg)
				}
				mounted := false
				for _, m := range c.VolumeMounts {
					if m.MountPath == config.StageTokenDir {
						mounted = m.ReadOnly
						for _, v := range d.Spec.Template.Spec.Volumes {
							if v.Name == m.Name && (v.Secret == nil || v.Secret.SecretName != "feed-stage-token-6b1f0c2e") {
								t.Errorf("volume %s at %s is %+v, want Secret feed-stage-token-6b1f0c2e", v.Name, m.MountPath, v.VolumeSource)
							}
						}
					}
				}
				if !mounted {
					t.Errorf("%s is not mounted read-only: %+v", config.StageTokenDir, c.VolumeMounts)
				}
			},
		}
	}
	runPodTemplateCases(t, cases)
	rp := samplePipeline("explore", "feed")
	s := stageTokenSecret(rp, "0123abcd")
	if string(s.Data[config.StageTokenKey]) != "0123abcd" || s.Name != "feed-stage-token-6b1f0c2e" {
		t.Errorf("stage-token Secret %+v", s)
	}
	assertControllerRef(t, s.OwnerReferences)
}

// TestDesiredNetworkPolicyHTTPPeers: spec.network limits the frontend's
// HTTP port to its clients and the monitoring peers, and the other stages'
// HTTP port to the monitoring peers, always with the operator's namespace;
// what it leaves unset stays open, and the gRPC port is the pipeline's.
func TestDesiredNetworkPolicyHTTPPeers(t *testing.T) {
	clients := []servingv1alpha1.NetworkPeer{{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "feed"}},
		PodSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}},
		}},
	}}
	monitoring := []servingv1alpha1.NetworkPeer{{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}}}
	operator := networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "recpipeline-system"}}}
	peer := func(p servingv1alpha1.NetworkPeer) networkingv1.NetworkPolicyPeer {
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: p.NamespaceSelector, PodSelector: p.PodSelector}
	}
	tests := map[string]struct {
		network *servingv1alpha1.NetworkSpec
		stage   string
		want    []networkingv1.NetworkPolicyPeer // the HTTP rule's; nil: open
		none    bool                             // no policy at all
	}{
		"frontend without spec.network":        {stage: config.StageFrontend, none: true},
		"frontend with monitoring only":        {network: &servingv1alpha1.NetworkSpec{Monitoring: monitoring}, stage: config.StageFrontend, none: true},
		"retrieval without spec.network":       {stage: config.StageRetrieval},
		"retrieval with clients only":          {network: &servingv1alpha1.NetworkSpec{Clients: clients}, stage: config.StageRetrieval},
		"frontend with clients":                {network: &servingv1alpha1.NetworkSpec{Clients: clients}, stage: config.StageFrontend, want: []networkingv1.NetworkPolicyPeer{peer(clients[0]), operator}},
		"frontend with clients and monitoring": {network: &servingv1alpha1.NetworkSpec{Clients: clients, Monitoring: monitoring}, stage: config.StageFrontend, want: []networkingv1.NetworkPolicyPeer{peer(clients[0]), peer(monitoring[0]), operator}},
		"ranker with monitoring":               {network: &servingv1alpha1.NetworkSpec{Clients: clients, Monitoring: monitoring}, stage: config.StageRankerSecond, want: []networkingv1.NetworkPolicyPeer{peer(monitoring[0]), operator}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			rp.Spec.Network = tc.network
			ac := desiredNetworkPolicy(rp, tc.stage, "recpipeline-system")
			if (ac == nil) != tc.none {
				t.Fatalf("policy %v, want one: %v", ac != nil, !tc.none)
			}
			if ac == nil {
				return
			}
			np := &networkingv1.NetworkPolicy{}
			asTyped(t, ac, np)
			var http *networkingv1.NetworkPolicyIngressRule
			for i, r := range np.Spec.Ingress {
				switch r.Ports[0].Port.String() {
				case "http":
					http = &np.Spec.Ingress[i]
				case "grpc":
					if len(r.From) != 1 || r.From[0].PodSelector == nil || r.From[0].PodSelector.MatchLabels[labelInstance] != "feed" {
						t.Errorf("gRPC rule %+v, want the pipeline's pods only", r)
					}
				}
			}
			if http == nil {
				t.Fatalf("no HTTP rule in %+v", np.Spec.Ingress)
			}
			if len(http.From) != len(tc.want) || (len(tc.want) > 0 && !reflect.DeepEqual(http.From, tc.want)) {
				t.Errorf("HTTP rule from %+v, want %+v", http.From, tc.want)
			}
			if tc.stage == config.StageFrontend && len(np.Spec.Ingress) != 1 {
				t.Errorf("the frontend's policy has %d rules, want the HTTP port's only", len(np.Spec.Ingress))
			}
		})
	}
}
