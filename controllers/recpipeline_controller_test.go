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
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

const waitTimeout = 20 * time.Second

var nsCounter atomic.Int64

// newNamespace creates a namespace of its own for one test.
func newNamespace(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", nsCounter.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	return name
}

// createPipeline creates rp with fresh metadata (the fixture's UID is for
// unit tests only) and returns the stored object.
func createPipeline(t *testing.T, rp *servingv1alpha1.RecPipeline) *servingv1alpha1.RecPipeline {
	t.Helper()
	rp.UID = ""
	if err := k8s.Create(context.Background(), rp); err != nil {
		t.Fatalf("failed to create RecPipeline: %v", err)
	}
	return rp
}

func getPipeline(t *testing.T, ns, name string) *servingv1alpha1.RecPipeline {
	t.Helper()
	rp := &servingv1alpha1.RecPipeline{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, rp); err != nil {
		t.Fatalf("failed to get RecPipeline: %v", err)
	}
	return rp
}

// waitReconciled waits until the status reflects the current generation.
func waitReconciled(t *testing.T, ns, name string) *servingv1alpha1.RecPipeline {
	t.Helper()
	var rp *servingv1alpha1.RecPipeline
	eventually(t, waitTimeout, "status.observedGeneration catches up", func() error {
		rp = getPipeline(t, ns, name)
		if rp.Status.ObservedGeneration != rp.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", rp.Status.ObservedGeneration, rp.Generation)
		}
		return nil
	})
	return rp
}

func getObject(t *testing.T, ns, name string, obj client.Object) {
	t.Helper()
	eventually(t, waitTimeout, fmt.Sprintf("%T %s exists", obj, name), func() error {
		return k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
	})
}

func assertControlledBy(t *testing.T, obj client.Object, rp *servingv1alpha1.RecPipeline) {
	t.Helper()
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.UID != rp.UID || ref.Kind != "RecPipeline" || ref.BlockOwnerDeletion == nil || !*ref.BlockOwnerDeletion {
		t.Errorf("%T %s: controller reference %+v, want RecPipeline %s with blockOwnerDeletion", obj, obj.GetName(), ref, rp.UID)
	}
}

// TestPipelineGetsEveryChild covers what `kubectl apply` of the sample
// yields: the config, a Deployment and Service per stage, an HPA where
// autoscaling is asked for, PDBs for multi-replica stages, and the runtime's
// narrow RBAC, all owned by the pipeline.
func TestPipelineGetsEveryChild(t *testing.T) {
	ns := newNamespace(t)
	createPipeline(t, samplePipeline(ns, "explore"))
	rp := waitReconciled(t, ns, "explore")

	checkRenderedConfigMap(t, rp)
	wantReplicas := map[string]*int32{
		config.StageFrontend: ptr.To[int32](1), config.StageRetrieval: ptr.To[int32](2),
		config.StageRankerFirst: ptr.To[int32](2), config.StageRankerSecond: nil, // the HPA owns it
	}
	for _, stage := range Stages {
		checkStageDeployment(t, rp, stage, wantReplicas[stage])
		checkStageService(t, rp, stage)
		checkStageScaling(t, rp, stage)
		checkStageNetworkPolicy(t, rp, stage)
	}
	checkRuntimeAccess(t, rp)
	checkStageToken(t, rp)
	checkConditionsBeforeAnyPod(t, rp)
}

// checkStageToken: the pipeline owns a Secret with a random token its
// stages share, and a second pass of the reconcile keeps it.
func checkStageToken(t *testing.T, rp *servingv1alpha1.RecPipeline) {
	t.Helper()
	s := &corev1.Secret{}
	getObject(t, rp.Namespace, StageTokenName(rp), s)
	assertControlledBy(t, s, rp)
	token := string(s.Data[config.StageTokenKey])
	if _, err := hex.DecodeString(token); err != nil || len(token) != 64 {
		t.Errorf("stage token %q, want 32 random bytes in hex", token)
	}
	start := reconcileCount(rp.Namespace, rp.Name)
	updateLabels(t, rp.Namespace, rp.Name, map[string]string{"touch": "token"})
	waitReconcileAfter(t, rp.Namespace, rp.Name, start)
	again := &corev1.Secret{}
	getObject(t, rp.Namespace, StageTokenName(rp), again)
	if string(again.Data[config.StageTokenKey]) != token || again.UID != s.UID {
		t.Error("a second reconcile replaced the stage token")
	}
}

// checkStageNetworkPolicy: a stage serving gRPC takes calls on its gRPC
// port from the pipeline's own pods only, and its HTTP port from anyone;
// the frontend has no policy.
func checkStageNetworkPolicy(t *testing.T, rp *servingv1alpha1.RecPipeline, stage string) {
	t.Helper()
	name := ChildName(rp, stage)
	if !config.ServesGRPC(stage) {
		np := &networkingv1.NetworkPolicy{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: rp.Namespace, Name: name}, np); !apierrors.IsNotFound(err) {
			t.Errorf("stage %s: NetworkPolicy %v, want none", stage, err)
		}
		return
	}
	np := &networkingv1.NetworkPolicy{}
	getObject(t, rp.Namespace, name, np)
	if !metav1.IsControlledBy(np, rp) {
		t.Errorf("NetworkPolicy %s is not owned by the pipeline", name)
	}
	if got := np.Spec.PodSelector.MatchLabels; !reflect.DeepEqual(got, selectorLabels(rp, stage)) {
		t.Errorf("NetworkPolicy %s selects %v", name, got)
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy %s has %d ingress rules, want 2", name, len(np.Spec.Ingress))
	}
	grpc, http := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if len(grpc.Ports) != 1 || grpc.Ports[0].Port.String() != "grpc" || len(grpc.From) != 1 ||
		!reflect.DeepEqual(grpc.From[0].PodSelector.MatchLabels, map[string]string{labelName: "recserve", labelInstance: rp.Name}) || grpc.From[0].NamespaceSelector != nil {
		t.Errorf("NetworkPolicy %s gRPC rule %+v, want the port from the pipeline's pods only", name, grpc)
	}
	if len(http.Ports) != 1 || http.Ports[0].Port.String() != "http" || len(http.From) != 0 {
		t.Errorf("NetworkPolicy %s HTTP rule %+v, want the port from anyone", name, http)
	}
}

// checkRenderedConfigMap: the ConfigMap holds the spec, rendered into a
// config the runtime accepts, whose revision the status reports.
func checkRenderedConfigMap(t *testing.T, rp *servingv1alpha1.RecPipeline) {
	ns := rp.Namespace
	cm := &corev1.ConfigMap{}
	getObject(t, ns, "explore-config", cm)
	assertControlledBy(t, cm, rp)
	parsed, err := config.Parse([]byte(cm.Data[config.ConfigKey]))
	if err != nil {
		t.Fatalf("the runtime refuses the rendered config: %v", err)
	}
	if got := config.Revision([]byte(cm.Data[config.ConfigKey])); got != rp.Status.ConfigRevision {
		t.Errorf("status.configRevision %q, the ConfigMap hashes to %q", rp.Status.ConfigRevision, got)
	}
	if parsed.Live.Weights["see_less"] != -8 || parsed.Live.Rerank.Size != 25 || len(parsed.Live.Retrieval.Sources) != 4 {
		t.Errorf("rendered config lost the spec: %+v", parsed.Live)
	}
	if rp.Status.Endpoint != "http://explore-frontend."+ns+".svc:8080" {
		t.Errorf("status.endpoint = %q", rp.Status.Endpoint)
	}
}

// checkStageDeployment: the stage's Deployment runs recserve restricted,
// with its flags, probes and claims, and wantReplicas unless an HPA owns
// them (nil).
func checkStageDeployment(t *testing.T, rp *servingv1alpha1.RecPipeline, stage string, wantReplicas *int32) {
	name := "explore-" + stage
	d := &appsv1.Deployment{}
	getObject(t, rp.Namespace, name, d)
	assertControlledBy(t, d, rp)
	if want := wantReplicas; want != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != *want) {
		t.Errorf("%s: replicas %v, want %d", name, d.Spec.Replicas, *want)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("%s: rolling update must keep maxUnavailable 0: %+v", name, d.Spec.Strategy)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != "explore-runtime" {
		t.Errorf("%s: serviceAccountName %q", name, pod.ServiceAccountName)
	}
	if pod.SecurityContext == nil || !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) ||
		pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod security context %+v", name, pod.SecurityContext)
	}
	c := pod.Containers[0]
	if c.Image != testImage {
		t.Errorf("%s: image %q, want the operator default %q", name, c.Image, testImage)
	}
	sc := c.SecurityContext
	if sc == nil || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) || ptr.Deref(sc.AllowPrivilegeEscalation, true) ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("%s: container security context %+v", name, sc)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s: resource requests unset: %v", name, c.Resources.Requests)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: probes %+v %+v", name, c.LivenessProbe, c.ReadinessProbe)
	}
	if !containsString(c.Args, "--stage="+stage) || !containsString(c.Args, "--config-map=explore-config") {
		t.Errorf("%s: args %v", name, c.Args)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	if mounts["pvc-explore-data"] != config.VolumeRoot+"/explore-data" || mounts["pvc-explore-models"] != config.VolumeRoot+"/explore-models" {
		t.Errorf("%s: the catalog and model claims are not mounted: %v", name, mounts)
	}
}

// checkStageService: the stage's Service selects its pods.
func checkStageService(t *testing.T, rp *servingv1alpha1.RecPipeline, stage string) {
	name := "explore-" + stage
	svc := &corev1.Service{}
	getObject(t, rp.Namespace, name, svc)
	assertControlledBy(t, svc, rp)
	if len(svc.Spec.Ports) != 2 || svc.Spec.Selector[labelComponent] != stage {
		t.Errorf("%s: service ports %v selector %v", name, svc.Spec.Ports, svc.Spec.Selector)
	}
}

// checkStageScaling: a multi-replica stage has a PDB and an autoscaled one
// its HPA; the others have neither.
func checkStageScaling(t *testing.T, rp *servingv1alpha1.RecPipeline, stage string) {
	ns, name := rp.Namespace, "explore-"+stage
	pdb := &policyv1.PodDisruptionBudget{}
	err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, pdb)
	switch {
	case stage == config.StageFrontend && !apierrors.IsNotFound(err):
		t.Errorf("%s: a single-replica stage must have no PDB (err %v)", name, err)
	case stage != config.StageFrontend && err != nil:
		t.Errorf("%s: multi-replica stage has no PDB: %v", name, err)
	case stage != config.StageFrontend:
		assertControlledBy(t, pdb, rp)
	}

	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	err = k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, hpa)
	switch {
	case stage == config.StageRankerSecond && err != nil:
		t.Errorf("%s: autoscaled stage has no HPA: %v", name, err)
	case stage == config.StageRankerSecond:
		assertControlledBy(t, hpa, rp)
		if ptr.Deref(hpa.Spec.MinReplicas, 0) != 2 || hpa.Spec.MaxReplicas != 20 || hpa.Spec.ScaleTargetRef.Name != name ||
			ptr.Deref(hpa.Spec.Metrics[0].Resource.Target.AverageUtilization, 0) != 70 {
			t.Errorf("%s: HPA spec %+v", name, hpa.Spec)
		}
	case !apierrors.IsNotFound(err):
		t.Errorf("%s: stage without autoscaling has an HPA (err %v)", name, err)
	}
}

// checkRuntimeAccess: the runtime's ServiceAccount may get and watch its
// own ConfigMap and nothing else.
func checkRuntimeAccess(t *testing.T, rp *servingv1alpha1.RecPipeline) {
	ns := rp.Namespace
	sa := &corev1.ServiceAccount{}
	getObject(t, ns, "explore-runtime", sa)
	assertControlledBy(t, sa, rp)
	role := &rbacv1.Role{}
	getObject(t, ns, "explore-runtime", role)
	assertControlledBy(t, role, rp)
	wantRules := []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"explore-config"}, Verbs: []string{"get", "watch"}}}
	if !equality.Semantic.DeepEqual(role.Rules, wantRules) {
		t.Errorf("runtime Role rules %+v, want exactly %+v", role.Rules, wantRules)
	}
	rb := &rbacv1.RoleBinding{}
	getObject(t, ns, "explore-runtime", rb)
	assertControlledBy(t, rb, rp)
	if rb.RoleRef.Name != "explore-runtime" || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "explore-runtime" {
		t.Errorf("RoleBinding %+v", rb)
	}
}

// checkConditionsBeforeAnyPod: every condition is set for the current
// generation, and with no pod ready the pipeline is not Ready yet but
// Progressing.
func checkConditionsBeforeAnyPod(t *testing.T, rp *servingv1alpha1.RecPipeline) {
	for _, c := range []string{servingv1alpha1.ConditionReady, servingv1alpha1.ConditionProgressing, servingv1alpha1.ConditionDegraded} {
		cond := meta.FindStatusCondition(rp.Status.Conditions, c)
		if cond == nil || cond.ObservedGeneration != rp.Generation {
			t.Errorf("condition %s missing or stale: %+v", c, cond)
		}
	}
	if !meta.IsStatusConditionFalse(rp.Status.Conditions, servingv1alpha1.ConditionReady) ||
		!meta.IsStatusConditionTrue(rp.Status.Conditions, servingv1alpha1.ConditionProgressing) {
		t.Errorf("no pod is ready yet: want Ready=False, Progressing=True; got %+v", rp.Status.Conditions)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// templates returns each stage Deployment's generation and pod template.
func templates(t *testing.T, ns, name string) map[string]appsv1.Deployment {
	t.Helper()
	out := map[string]appsv1.Deployment{}
	for _, stage := range Stages {
		d := &appsv1.Deployment{}
		getObject(t, ns, name+"-"+stage, d)
		out[stage] = *d
	}
	return out
}

func updatePipeline(t *testing.T, ns, name string, mutate func(*servingv1alpha1.RecPipeline)) {
	t.Helper()
	eventually(t, waitTimeout, "update the RecPipeline", func() error {
		rp := getPipeline(t, ns, name)
		mutate(rp)
		return k8s.Update(context.Background(), rp)
	})
}

// TestLiveChangesOnlyTouchTheConfigMap: weights, rules and source mixing
// change the ConfigMap and nothing in any pod template, so no pod restarts.
func TestLiveChangesOnlyTouchTheConfigMap(t *testing.T) {
	cases := map[string]func(*servingv1alpha1.RecPipeline){
		"event weight":  func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 3.5 },
		"new event":     func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["share"] = 1.5 },
		"rerank rule":   func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Rules[0].MinGap = ptr.To[int32](5) },
		"source weight": func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[1].Weight = 0.6 },
		"source limit":  func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[3].Limit = 300 },
		"funnel sizes":  func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.FirstStage.Keep = 250 },
		"drop a rule":   func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Rules = rp.Spec.Rerank.Rules[:1] },
		"source deadline": func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Retrieval.Sources[0].Timeout = &metav1.Duration{Duration: 80 * time.Millisecond}
		},
		"precompute": func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Precompute = &servingv1alpha1.PrecomputeSpec{Schedule: "0 3 * * *", Users: servingv1alpha1.PrecomputeUsers{
				ActiveWithin: &metav1.Duration{Duration: 24 * time.Hour},
			}}
		},
	}
	ns := newNamespace(t)
	i := 0
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			rpName := fmt.Sprintf("live%d", i)
			createPipeline(t, samplePipeline(ns, rpName))
			before := waitReconciled(t, ns, rpName)
			oldTemplates := templates(t, ns, rpName)

			updatePipeline(t, ns, rpName, mutate)
			after := waitReconciled(t, ns, rpName)
			if after.Status.ConfigRevision == before.Status.ConfigRevision {
				t.Fatalf("config revision did not change: %s", after.Status.ConfigRevision)
			}
			cm := &corev1.ConfigMap{}
			getObject(t, ns, rpName+"-config", cm)
			if got := config.Revision([]byte(cm.Data[config.ConfigKey])); got != after.Status.ConfigRevision {
				t.Errorf("ConfigMap revision %s, status %s", got, after.Status.ConfigRevision)
			}
			for stage, d := range templates(t, ns, rpName) {
				old := oldTemplates[stage]
				if d.Generation != old.Generation || !equality.Semantic.DeepEqual(d.Spec.Template, old.Spec.Template) {
					t.Errorf("stage %s: the Deployment changed (generation %d → %d); pods would restart", stage, old.Generation, d.Generation)
				}
			}
		})
	}
}

// TestDeployChangesRollThePods: image, models, resources and replicas change
// the Deployments, always with maxUnavailable 0.
func TestDeployChangesRollThePods(t *testing.T) {
	cases := map[string]struct {
		mutate func(*servingv1alpha1.RecPipeline)
		// check reports what is wrong with the stage's new Deployment.
		stage string
		check func(old, new appsv1.Deployment) error
	}{
		"image rolls every stage": {
			mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Runtime.Image = "registry.test/recserve:v2" },
			stage:  config.StageFrontend,
			check: func(_, d appsv1.Deployment) error {
				if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.test/recserve:v2" {
					return fmt.Errorf("image %s", img)
				}
				return nil
			},
		},
		"model URI changes the deploy revision": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Models[2].URI = "https://models.example/mtml/v13.tar.gz"
			},
			stage: config.StageRankerSecond,
			check: func(old, d appsv1.Deployment) error {
				o, n := old.Spec.Template.Annotations[AnnotationDeployRevision], d.Spec.Template.Annotations[AnnotationDeployRevision]
				if o == n {
					return fmt.Errorf("deploy revision stayed %s", n)
				}
				if env := envValue(d.Spec.Template.Spec.Containers[0], config.DeployRevisionEnv); env != n {
					return fmt.Errorf("container env %s=%q, annotation %q", config.DeployRevisionEnv, env, n)
				}
				return nil
			},
		},
		"resources": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.FirstStage.Resources = &servingv1alpha1.Resources{
					Requests: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceCPU: intstr.FromString("2")},
					Limits:   map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceMemory: intstr.FromString("2Gi")},
				}
			},
			stage: config.StageRankerFirst,
			check: func(_, d appsv1.Deployment) error {
				r := d.Spec.Template.Spec.Containers[0].Resources
				if r.Requests.Cpu().String() != "2" || r.Limits.Memory().String() != "2Gi" || r.Requests.Memory().IsZero() {
					return fmt.Errorf("resources %+v", r)
				}
				return nil
			},
		},
		"replicas": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Retrieval.Scaling = &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](5)}
			},
			stage: config.StageRetrieval,
			check: func(_, d appsv1.Deployment) error {
				if ptr.Deref(d.Spec.Replicas, 0) != 5 {
					return fmt.Errorf("replicas %v", d.Spec.Replicas)
				}
				return nil
			},
		},
	}
	ns := newNamespace(t)
	i := 0
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			i++
			rpName := fmt.Sprintf("roll%d", i)
			createPipeline(t, samplePipeline(ns, rpName))
			waitReconciled(t, ns, rpName)
			old := templates(t, ns, rpName)[tc.stage]
			updatePipeline(t, ns, rpName, tc.mutate)
			waitReconciled(t, ns, rpName)
			var d appsv1.Deployment
			eventually(t, waitTimeout, "the Deployment changes", func() error {
				d = templates(t, ns, rpName)[tc.stage]
				if d.Generation == old.Generation {
					return fmt.Errorf("generation still %d", d.Generation)
				}
				return tc.check(old, d)
			})
			if mu := d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue(); mu != 0 {
				t.Errorf("maxUnavailable %d", mu)
			}
		})
	}
}

func envValue(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// TestScalingChangesSwapHPAAndPDB: moving a stage between fixed replicas
// and autoscaling creates and removes its HPA and PDB.
func TestScalingChangesSwapHPAAndPDB(t *testing.T) {
	ns := newNamespace(t)
	createPipeline(t, samplePipeline(ns, "scale"))
	waitReconciled(t, ns, "scale")
	updatePipeline(t, ns, "scale", func(rp *servingv1alpha1.RecPipeline) {
		// A scaled frontend shares its state through Redis.
		rp.Spec.Data.Store = servingv1alpha1.StoreSpec{Type: servingv1alpha1.StoreRedis, Redis: &servingv1alpha1.RedisStoreSpec{Address: "redis.recs.svc:6379"}}
		rp.Spec.Ranking.SecondStage.Scaling = &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](1)}
		rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{
			Autoscaling: &servingv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4},
		}}
	})
	waitReconciled(t, ns, "scale")
	gone := func(obj client.Object, name string) func() error {
		return func() error {
			err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (err %v)", err)
		}
	}
	eventually(t, waitTimeout, "ranker-second HPA removed", gone(&autoscalingv2.HorizontalPodAutoscaler{}, "scale-ranker-second"))
	eventually(t, waitTimeout, "ranker-second PDB removed", gone(&policyv1.PodDisruptionBudget{}, "scale-ranker-second"))
	getObject(t, ns, "scale-frontend", &autoscalingv2.HorizontalPodAutoscaler{})
	getObject(t, ns, "scale-frontend", &policyv1.PodDisruptionBudget{})
	d := &appsv1.Deployment{}
	getObject(t, ns, "scale-ranker-second", d)
	if ptr.Deref(d.Spec.Replicas, 0) != 1 {
		t.Errorf("ranker-second replicas %v, want 1", d.Spec.Replicas)
	}
}

// TestDeleteLeavesNothingUnowned: envtest runs no garbage collector, so the
// test checks that every object the operator made carries the pipeline's
// controller reference, which is what the collector follows.
func TestDeleteLeavesNothingUnowned(t *testing.T) {
	ns := newNamespace(t)
	rp := createPipeline(t, samplePipeline(ns, "gc"))
	waitReconciled(t, ns, "gc")
	lists := []client.ObjectList{
		&corev1.ConfigMapList{}, &corev1.ServiceList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{},
		&rbacv1.RoleBindingList{}, &appsv1.DeploymentList{}, &autoscalingv2.HorizontalPodAutoscalerList{},
		&policyv1.PodDisruptionBudgetList{}, &networkingv1.NetworkPolicyList{},
	}
	total := 0
	for _, list := range lists {
		if err := k8s.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{labelManagedBy: ManagedByValue}); err != nil {
			t.Fatal(err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range items {
			obj := item.(client.Object)
			assertControlledBy(t, obj, rp)
			total++
		}
	}
	// 2 ConfigMaps (served and stable), 4 Services, 1 ServiceAccount, 1 Role, 1 RoleBinding,
	// 4 Deployments, 1 HPA, 3 PDBs, 3 NetworkPolicies.
	if total != 20 {
		t.Errorf("found %d children, want 20", total)
	}
	if err := k8s.Delete(context.Background(), rp); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitTimeout, "the RecPipeline is gone", func() error {
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "gc"}, &servingv1alpha1.RecPipeline{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

// TestSteadyStateMakesNoWrites: once a pipeline is reconciled, reconciling
// it again, as a resync or an unrelated metadata change does, makes no
// write to the API server.
func TestSteadyStateMakesNoWrites(t *testing.T) {
	ns := newNamespace(t)
	createPipeline(t, samplePipeline(ns, "steady"))
	waitReconciled(t, ns, "steady")
	waitQuiet(t)

	before := writes.total.Load()
	snapshot := writes.snapshot()
	// A label change makes the controller reconcile without any spec change.
	for i := 0; i < 3; i++ {
		start := reconcileCount(ns, "steady")
		updateLabels(t, ns, "steady", map[string]string{"touch": fmt.Sprint(i)})
		waitReconcileAfter(t, ns, "steady", start)
	}
	if after := writes.total.Load(); after != before {
		t.Errorf("the manager made %d writes reconciling an unchanged pipeline: %v", after-before, diffCounts(snapshot, writes.snapshot()))
	}
}

// waitQuiet waits until the manager has made no write for a while.
func waitQuiet(t testing.TB) {
	t.Helper()
	last := writes.total.Load()
	stable := 0
	for i := 0; i < 600 && stable < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if n := writes.total.Load(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
}

func updateLabels(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	rp := getPipeline(t, ns, name)
	patch := client.MergeFrom(rp.DeepCopy())
	if rp.Labels == nil {
		rp.Labels = map[string]string{}
	}
	for k, v := range labels {
		rp.Labels[k] = v
	}
	if err := k8s.Patch(context.Background(), rp, patch); err != nil {
		t.Fatal(err)
	}
}

// waitReconcileAfter waits until the controller has reconciled the
// pipeline more than start times (a count read before the change that
// triggers the reconcile, which may finish before this is called), then
// until it is quiet.
func waitReconcileAfter(t *testing.T, ns, name string, start int) {
	t.Helper()
	eventually(t, waitTimeout, "a reconcile of "+name, func() error {
		if reconcileCount(ns, name) > start {
			return nil
		}
		return fmt.Errorf("no reconcile yet")
	})
	waitQuiet(t)
}

func diffCounts(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// TestModelChangesRollOnlyTheirStages: a change to what some stages load
// changes those stages' pod templates and no other; the frontend, which
// holds the memory store's state, is left alone by any model change.
func TestModelChangesRollOnlyTheirStages(t *testing.T) {
	ns := newNamespace(t)
	i := 0
	for _, name := range []string{"second-stage model URI", "switch the second stage to another listed model", "an experiment on another listed second-stage model", "retrieval model URI", "list a model nothing uses yet"} {
		tc := stageRollCases[name]
		t.Run(name, func(t *testing.T) {
			i++
			rpName := fmt.Sprintf("model%d", i)
			createPipeline(t, samplePipeline(ns, rpName))
			before := waitReconciled(t, ns, rpName)
			old := templates(t, ns, rpName)
			updatePipeline(t, ns, rpName, tc.mutate)
			eventually(t, waitTimeout, "the new config is rendered", func() error {
				if rp := getPipeline(t, ns, rpName); rp.Status.ConfigRevision == before.Status.ConfigRevision {
					return fmt.Errorf("config revision still %s", rp.Status.ConfigRevision)
				}
				return nil
			})
			eventually(t, waitTimeout, "exactly the stages that load the change roll", func() error {
				for stage, d := range templates(t, ns, rpName) {
					o := old[stage]
					changed := d.Spec.Template.Annotations[AnnotationDeployRevision] != o.Spec.Template.Annotations[AnnotationDeployRevision]
					want := slices.Contains(tc.want, stage)
					if changed != want {
						return fmt.Errorf("stage %s: deploy revision changed = %v, want %v", stage, changed, want)
					}
					if !want && (d.Generation != o.Generation || !equality.Semantic.DeepEqual(d.Spec.Template, o.Spec.Template)) {
						return fmt.Errorf("stage %s: the Deployment changed (generation %d → %d)", stage, o.Generation, d.Generation)
					}
				}
				return nil
			})
		})
	}
}

// TestAnObjectItDidNotMakeIsLeftAlone: a Role the user made under the name
// of the pipeline's runtime Role is neither rewritten nor deleted with the
// pipeline; the pipeline reports the conflict. Before, the operator took it
// over with a forced apply and deleted it with the pipeline.
func TestAnObjectItDidNotMakeIsLeftAlone(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "taken")
	users := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: RuntimeAccountName(rp)},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"list"}}},
	}
	if err := k8s.Create(context.Background(), users); err != nil {
		t.Fatal(err)
	}
	createPipeline(t, rp)
	waitStatus(t, ns, "taken", "Degraded names the conflict", func(rp *servingv1alpha1.RecPipeline) error {
		c := condition(rp, servingv1alpha1.ConditionDegraded)
		if c.Status != metav1.ConditionTrue || c.Reason != servingv1alpha1.ReasonChildConflict || !strings.Contains(c.Message, "Role taken-runtime") {
			return fmt.Errorf("Degraded %s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
	got := &rbacv1.Role{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: users.Name}, got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Rules, users.Rules) || len(got.OwnerReferences) != 0 {
		t.Errorf("the user's Role was changed: rules %v, owners %v", got.Rules, got.OwnerReferences)
	}
}

// TestClientsGetTheFrontendAPolicy: naming the frontend's clients in
// spec.network gives the frontend a NetworkPolicy that lets only them (and
// the operator's namespace) reach its HTTP port; removing them removes it.
func TestClientsGetTheFrontendAPolicy(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "net")
	rp.Spec.Network = &servingv1alpha1.NetworkSpec{Clients: []servingv1alpha1.NetworkPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "web"}}},
	}}
	createPipeline(t, rp)
	waitReconciled(t, ns, "net")
	np := &networkingv1.NetworkPolicy{}
	getObject(t, ns, "net-frontend", np)
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) == 0 ||
		np.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["team"] != "web" {
		t.Errorf("the frontend's policy lets in %+v, want the clients named", np.Spec.Ingress)
	}
	updatePipeline(t, ns, "net", func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Network = nil })
	waitReconciled(t, ns, "net")
	eventually(t, waitTimeout, "the frontend's policy removed", func() error {
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "net-frontend"}, &networkingv1.NetworkPolicy{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}
