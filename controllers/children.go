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
	"maps"
	"slices"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// The children are built by pure functions of the RecPipeline as
// server-side apply configurations: the desired state in full, applied
// under one field owner. Apply configurations carry their owner reference
// directly (controllerutil.SetControllerReference takes objects, not apply
// configurations); ownerReference builds the same controller reference.

// Stages lists every stage a pipeline runs, one Deployment each: the
// runtime's split stages, in funnel order from the client's side.
var Stages = config.SplitStages()

// Labels and annotations on the children.
const (
	labelName      = "app.kubernetes.io/name"
	labelInstance  = "app.kubernetes.io/instance"
	labelComponent = "app.kubernetes.io/component"
	labelPartOf    = "app.kubernetes.io/part-of"
	labelManagedBy = "app.kubernetes.io/managed-by"

	// ManagedByValue marks every child; the manager caches only objects
	// carrying it.
	ManagedByValue = "recpipeline-operator"

	// AnnotationDeployRevision on the pod template carries the stage's
	// deploy revision (config.StageRevision): it changes, and so rolls the
	// stage's pods, exactly when something that stage loads at start
	// changes.
	AnnotationDeployRevision = "serving.recpipeline.dev/deploy-revision"

	// AnnotationLoggingRevision on the frontend's pod template hashes its
	// logs' claim and config.Logging (loggingRevision).
	AnnotationLoggingRevision = "serving.recpipeline.dev/logging-revision"
)

// Defaults of the stage containers. A container the user sets no memory
// limit for is limited to memoryLimitFactor times its memory request, and
// at least minMemoryLimit: a runaway pod (a flood of new user ids or items
// past the runtime's caps) is restarted by the kubelet instead of starving
// the node. 4 GiB covers the 1,000,000-item world's 2.6 GiB under load
// (BENCHMARKS.md); larger catalogs set requests, and the limit follows.
var (
	defaultCPURequest    = resource.MustParse("100m")
	defaultMemoryRequest = resource.MustParse("256Mi")
	minMemoryLimit       = resource.MustParse("4Gi")
	// tmpSizeLimit bounds the scratch emptyDir (model downloads unpack
	// into the model cache on the state volume, not here).
	tmpSizeLimit = resource.MustParse("1Gi")
)

const memoryLimitFactor = 4

// stateSizeFactor sizes the state emptyDir from the container's memory
// limit: it holds the model cache (models the process also holds in
// memory) and the Memory store's log, which is compacted once it is twice
// the snapshot of the state (itself about the state's size in memory)
// while the compacted file is written beside it. Past the limit the
// kubelet evicts the pod rather than fill the node's disk.
const stateSizeFactor = 3

const (
	runtimeUID                    int64 = 65532
	defaultTargetCPU              int32 = 70
	progressDeadlineSeconds       int32 = 120
	terminationGracePeriodSeconds int64 = 30
)

// ChildName is the name of a stage's Deployment, Service, HPA and PDB.
func ChildName(rp *servingv1alpha1.RecPipeline, stage string) string {
	return rp.Name + "-" + stage
}

// ConfigMapName is the name of the pipeline's rendered config.
func ConfigMapName(rp *servingv1alpha1.RecPipeline) string { return rp.Name + "-config" }

// RuntimeAccountName is the name of the runtime's ServiceAccount, Role and
// RoleBinding.
func RuntimeAccountName(rp *servingv1alpha1.RecPipeline) string { return rp.Name + "-runtime" }

// selectorLabels select one stage's pods.
func selectorLabels(rp *servingv1alpha1.RecPipeline, stage string) map[string]string {
	return map[string]string{
		labelName:      "recserve",
		labelInstance:  rp.Name,
		labelComponent: stage,
	}
}

// commonLabels mark every child of rp; stage is empty for pipeline-wide
// children.
func commonLabels(rp *servingv1alpha1.RecPipeline, stage string) map[string]string {
	l := map[string]string{
		labelName:      "recserve",
		labelInstance:  rp.Name,
		labelPartOf:    "recpipeline",
		labelManagedBy: ManagedByValue,
	}
	if stage != "" {
		l[labelComponent] = stage
	}
	return l
}

func ownerReference(rp *servingv1alpha1.RecPipeline) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(servingv1alpha1.GroupVersion.String()).
		WithKind("RecPipeline").
		WithName(rp.Name).
		WithUID(rp.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// stageSpec returns the sizing of a stage.
func stageSpec(rp *servingv1alpha1.RecPipeline, stage string) servingv1alpha1.StageSpec {
	switch stage {
	case config.StageRetrieval:
		return rp.Spec.Retrieval.StageSpec
	case config.StageRankerFirst:
		return rp.Spec.Ranking.FirstStage.StageSpec
	case config.StageRankerSecond:
		return rp.Spec.Ranking.SecondStage.StageSpec
	default:
		if rp.Spec.Frontend != nil {
			return *rp.Spec.Frontend
		}
		return servingv1alpha1.StageSpec{}
	}
}

// fixedReplicas is the stage's replica count, or nil when an autoscaler
// owns it.
func fixedReplicas(s servingv1alpha1.StageSpec) *int32 {
	switch {
	case s.Scaling == nil:
		return ptr.To[int32](1)
	case s.Scaling.Autoscaling != nil:
		return nil
	case s.Scaling.Replicas != nil:
		return s.Scaling.Replicas
	default:
		return ptr.To[int32](1)
	}
}

// desiredConfigMap holds the rendered config.
func desiredConfigMap(rp *servingv1alpha1.RecPipeline, rendered []byte) *corev1ac.ConfigMapApplyConfiguration {
	return corev1ac.ConfigMap(ConfigMapName(rp), rp.Namespace).
		WithLabels(commonLabels(rp, "")).
		WithOwnerReferences(ownerReference(rp)).
		WithData(map[string]string{config.ConfigKey: string(rendered)})
}

// StageTokenName is the name of the Secret holding the pipeline's stage
// token (config.StageTokenKey), which the gRPC stages require of every
// call and the frontend sends. It carries the start of the pipeline's UID:
// a pipeline deleted and made again at once does not take over the old
// one's Secret, which the garbage collector is about to remove.
func StageTokenName(rp *servingv1alpha1.RecPipeline) string {
	return rp.Name + "-stage-token-" + string(rp.UID)[:min(8, len(rp.UID))]
}

// stageTokenSecret is the pipeline's stage-token Secret holding token. It
// is created once and never applied again: the operator may create
// Secrets but not read them, so the token never passes through its cache.
// It is not immutable, so that a replaced token reaches the running pods'
// mounts (and stageauth reads it again).
func stageTokenSecret(rp *servingv1alpha1.RecPipeline, token string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      StageTokenName(rp),
			Namespace: rp.Namespace,
			Labels:    commonLabels(rp, ""),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rp,
				servingv1alpha1.GroupVersion.WithKind("RecPipeline"))},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{config.StageTokenKey: []byte(token)},
	}
}

// desiredServiceAccount is the identity of the stage pods.
func desiredServiceAccount(rp *servingv1alpha1.RecPipeline) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(RuntimeAccountName(rp), rp.Namespace).
		WithLabels(commonLabels(rp, "")).
		WithOwnerReferences(ownerReference(rp))
}

// desiredRole lets the stage pods get and watch their own ConfigMap and
// nothing else.
func desiredRole(rp *servingv1alpha1.RecPipeline) *rbacv1ac.RoleApplyConfiguration {
	return rbacv1ac.Role(RuntimeAccountName(rp), rp.Namespace).
		WithLabels(commonLabels(rp, "")).
		WithOwnerReferences(ownerReference(rp)).
		WithRules(rbacv1ac.PolicyRule().
			WithAPIGroups("").
			WithResources("configmaps").
			WithResourceNames(ConfigMapName(rp)).
			WithVerbs("get", "watch"))
}

// desiredRoleBinding binds the Role to the ServiceAccount.
func desiredRoleBinding(rp *servingv1alpha1.RecPipeline) *rbacv1ac.RoleBindingApplyConfiguration {
	return rbacv1ac.RoleBinding(RuntimeAccountName(rp), rp.Namespace).
		WithLabels(commonLabels(rp, "")).
		WithOwnerReferences(ownerReference(rp)).
		WithRoleRef(rbacv1ac.RoleRef().
			WithAPIGroup("rbac.authorization.k8s.io").
			WithKind("Role").
			WithName(RuntimeAccountName(rp))).
		WithSubjects(rbacv1ac.Subject().
			WithKind("ServiceAccount").
			WithName(RuntimeAccountName(rp)).
			WithNamespace(rp.Namespace))
}

// desiredService exposes a stage: HTTP for clients and probes, gRPC between
// stages. The stages the frontend calls over gRPC get a headless Service:
// its name resolves to every ready pod, and the frontend balances its calls
// over them (a virtual IP would pin each long-lived gRPC connection to one
// pod).
func desiredService(rp *servingv1alpha1.RecPipeline, stage string) *corev1ac.ServiceApplyConfiguration {
	spec := corev1ac.ServiceSpec()
	if config.ServesGRPC(stage) {
		spec.WithClusterIP(corev1.ClusterIPNone)
	}
	return corev1ac.Service(ChildName(rp, stage), rp.Namespace).
		WithLabels(commonLabels(rp, stage)).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(spec.
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(rp, stage)).
			WithPorts(
				corev1ac.ServicePort().WithName("http").WithProtocol(corev1.ProtocolTCP).
					WithPort(config.HTTPPort).WithTargetPort(intstr.FromString("http")),
				corev1ac.ServicePort().WithName("grpc").WithProtocol(corev1.ProtocolTCP).
					WithPort(config.GRPCPort).WithTargetPort(intstr.FromString("grpc")),
			))
}

// stateClaim returns the claim that holds the stage's state directory, or
// "" for an emptyDir: only the frontend keeps state, and only the Memory
// store keeps it on disk.
func stateClaim(rp *servingv1alpha1.RecPipeline, stage string) string {
	store := rp.Spec.Data.Store
	if stage != config.StageFrontend || store.Type == servingv1alpha1.StoreRedis || store.Memory == nil {
		return ""
	}
	return store.Memory.ClaimName
}

// desiredDeployment runs a stage. deployRevision is the stage's revision
// of the rendered config (Rendered.StageRevisions); image is the resolved
// runtime image.
func desiredDeployment(rp *servingv1alpha1.RecPipeline, stage, image, deployRevision string) *appsv1ac.DeploymentApplyConfiguration {
	labels := commonLabels(rp, stage)
	claim := stateClaim(rp, stage)
	podSpec := corev1ac.PodSpec().
		WithServiceAccountName(RuntimeAccountName(rp)).
		WithTerminationGracePeriodSeconds(terminationGracePeriodSeconds).
		WithSecurityContext(restrictedPodSecurityContext()).
		WithContainers(stageContainer(rp, stage, image, deployRevision)).
		WithVolumes(stageVolumes(rp, stage, claim)...)
	annotations := map[string]string{AnnotationDeployRevision: deployRevision}
	if rev := loggingRevision(rp, stage); rev != "" {
		annotations[AnnotationLoggingRevision] = rev
	}

	deploymentSpec := appsv1ac.DeploymentSpec().
		WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(rp, stage))).
		WithRevisionHistoryLimit(3).
		WithProgressDeadlineSeconds(progressDeadlineSeconds).
		WithStrategy(deploymentStrategy(claim)).
		WithTemplate(corev1ac.PodTemplateSpec().
			WithLabels(labels).
			WithAnnotations(annotations).
			WithSpec(podSpec))
	if r := fixedReplicas(stageSpec(rp, stage)); r != nil {
		deploymentSpec.WithReplicas(*r)
	}

	return appsv1ac.Deployment(ChildName(rp, stage), rp.Namespace).
		WithLabels(labels).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(deploymentSpec)
}

// stageContainer is the recserve container of a stage: its flags,
// environment and ports as the runtime's contract (runtime/config) names
// them, and a mount for each volume of stageVolumes.
func stageContainer(rp *servingv1alpha1.RecPipeline, stage, image, deployRevision string) *corev1ac.ContainerApplyConfiguration {
	container := corev1ac.Container().
		WithName("recserve").
		WithImage(image).
		WithArgs(
			config.Arg(config.FlagStage, stage),
			config.Arg(config.FlagConfigMap, ConfigMapName(rp)),
			config.Arg(config.FlagHTTPPort, strconv.Itoa(config.HTTPPort)),
			config.Arg(config.FlagGRPCPort, strconv.Itoa(config.GRPCPort)),
			config.Arg(config.FlagStateDir, config.StateDir),
			config.Arg(config.FlagStageTokenFile, config.StageTokenPath),
		).
		WithEnv(
			corev1ac.EnvVar().WithName(config.PodNamespaceEnv).WithValueFrom(corev1ac.EnvVarSource().
				WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.namespace"))),
			corev1ac.EnvVar().WithName(config.PodNameEnv).WithValueFrom(corev1ac.EnvVarSource().
				WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion("v1").WithFieldPath("metadata.name"))),
			corev1ac.EnvVar().WithName(config.DeployRevisionEnv).WithValue(deployRevision),
		).
		WithPorts(
			corev1ac.ContainerPort().WithName("http").WithContainerPort(config.HTTPPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName("grpc").WithContainerPort(config.GRPCPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithResources(resources(stageSpec(rp, stage).Resources)).
		WithLivenessProbe(probe(config.HealthzPath, 3)).
		WithReadinessProbe(probe(config.ReadyzPath, 1)).
		WithTerminationMessagePolicy(corev1.TerminationMessageFallbackToLogsOnError).
		WithSecurityContext(restrictedSecurityContext()).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName("tmp").WithMountPath(config.TempDir),
			corev1ac.VolumeMount().WithName("state").WithMountPath(config.StateDir),
			corev1ac.VolumeMount().WithName("stage-token").WithMountPath(config.StageTokenDir).WithReadOnly(true),
		)
	if rp.Spec.Runtime.ImagePullPolicy != "" {
		container.WithImagePullPolicy(rp.Spec.Runtime.ImagePullPolicy)
	}
	if store := rp.Spec.Data.Store; store.Redis != nil && store.Redis.PasswordSecretRef != nil {
		container.WithEnv(corev1ac.EnvVar().WithName(config.RedisPasswordEnv).WithValueFrom(
			corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().
				WithName(store.Redis.PasswordSecretRef.Name).
				WithKey(store.Redis.PasswordSecretRef.Key))))
	}
	if ev := rp.Spec.Events; stage == config.StageFrontend && ev != nil && ev.WriteTokenSecretRef != nil {
		container.WithEnv(corev1ac.EnvVar().WithName(config.EventsTokenEnv).WithValueFrom(
			corev1ac.EnvVarSource().WithSecretKeyRef(corev1ac.SecretKeySelector().
				WithName(ev.WriteTokenSecretRef.Name).
				WithKey(ev.WriteTokenSecretRef.Key))))
	}
	for _, claim := range claims(rp) {
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(claimVolumeName(claim)).
			WithMountPath(config.ClaimMountPath(claim)).WithReadOnly(true))
	}
	if logs := logsClaim(rp, stage); logs != "" {
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(claimVolumeName(logs)).WithMountPath(config.LogsDir))
	}
	return container
}

// restrictedPodSecurityContext runs a pod as the images' non-root user,
// under the runtime's default seccomp profile: what the restricted Pod
// Security Standard asks of every pod the operator makes.
func restrictedPodSecurityContext() *corev1ac.PodSecurityContextApplyConfiguration {
	return corev1ac.PodSecurityContext().
		WithRunAsNonRoot(true).
		WithRunAsUser(runtimeUID).
		WithRunAsGroup(runtimeUID).
		WithFSGroup(runtimeUID).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// restrictedSecurityContext is the security context of every container the
// operator makes: non-root, no privilege escalation, no capabilities, a
// read-only root filesystem.
func restrictedSecurityContext() *corev1ac.SecurityContextApplyConfiguration {
	return corev1ac.SecurityContext().
		WithRunAsNonRoot(true).
		WithReadOnlyRootFilesystem(true).
		WithAllowPrivilegeEscalation(false).
		WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
		WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))
}

// logsClaim is the claim a stage writes its logs to (spec.logging): the
// frontend's, mounted writable at config.LogsDir; "" for the other stages
// and without spec.logging.
func logsClaim(rp *servingv1alpha1.RecPipeline, stage string) string {
	if stage != config.StageFrontend || rp.Spec.Logging == nil {
		return ""
	}
	return rp.Spec.Logging.ClaimName
}

// loggingRevision hashes the rendered logging of a stage that writes logs,
// "" for the others. The frontend's pod template carries it
// (AnnotationLoggingRevision), so that a change of the logs' claim,
// directory or sizes, which the frontend reads at start, rolls its pods.
func loggingRevision(rp *servingv1alpha1.RecPipeline, stage string) string {
	if logsClaim(rp, stage) == "" {
		return ""
	}
	b, err := json.Marshal(struct {
		Claim   string          `json:"claim"`
		Logging *config.Logging `json:"logging"`
	}{rp.Spec.Logging.ClaimName, renderLogging(rp)})
	if err != nil {
		return ""
	}
	return config.Revision(b)
}

// claimVolume is the pod volume of a claim, read-only unless a container
// of the pod writes to it.
func claimVolume(claim string, readOnly bool) *corev1ac.VolumeApplyConfiguration {
	source := corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(claim)
	if readOnly {
		source.WithReadOnly(true)
	}
	return corev1ac.Volume().WithName(claimVolumeName(claim)).WithPersistentVolumeClaim(source)
}

// stageVolumes are the pod's volumes: scratch space, the state directory
// (on stateClaim when it is not empty), every claim the pipeline's URIs
// name, read-only, and on the frontend the logs claim (logsClaim),
// writable: one volume, writable, when a claim is both.
func stageVolumes(rp *servingv1alpha1.RecPipeline, stage, stateClaim string) []*corev1ac.VolumeApplyConfiguration {
	state := corev1ac.Volume().WithName("state").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(stateSizeLimit(rp, stage)))
	if stateClaim != "" {
		state = corev1ac.Volume().WithName("state").WithPersistentVolumeClaim(
			corev1ac.PersistentVolumeClaimVolumeSource().WithClaimName(stateClaim))
	}
	volumes := []*corev1ac.VolumeApplyConfiguration{
		corev1ac.Volume().WithName("tmp").WithEmptyDir(corev1ac.EmptyDirVolumeSource().WithSizeLimit(tmpSizeLimit)),
		state,
		corev1ac.Volume().WithName("stage-token").WithSecret(corev1ac.SecretVolumeSource().
			WithSecretName(StageTokenName(rp)).
			WithItems(corev1ac.KeyToPath().WithKey(config.StageTokenKey).WithPath(config.StageTokenKey)).
			WithDefaultMode(0o440)),
	}
	logs := logsClaim(rp, stage)
	uriClaims := claims(rp)
	for _, claim := range uriClaims {
		volumes = append(volumes, claimVolume(claim, claim != logs))
	}
	if logs != "" && !slices.Contains(uriClaims, logs) {
		volumes = append(volumes, claimVolume(logs, false))
	}
	return volumes
}

// claimVolumeName is the name of the pod volume of a claim the pipeline's
// URIs name.
func claimVolumeName(claim string) string { return "pvc-" + claim }

// deploymentStrategy rolls out a new pod before it removes an old one,
// except for a stage whose state is on a claim (stateClaim not empty): two
// pods must not append to one log, so the old pod goes first.
func deploymentStrategy(stateClaim string) *appsv1ac.DeploymentStrategyApplyConfiguration {
	if stateClaim != "" {
		return appsv1ac.DeploymentStrategy().WithType(appsv1.RecreateDeploymentStrategyType)
	}
	return appsv1ac.DeploymentStrategy().
		WithType(appsv1.RollingUpdateDeploymentStrategyType).
		WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
			WithMaxUnavailable(intstr.FromInt32(0)).
			WithMaxSurge(intstr.FromInt32(1)))
}

func probe(path string, failureThreshold int32) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().
		WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("http"))).
		WithPeriodSeconds(5).
		WithTimeoutSeconds(2).
		WithFailureThreshold(failureThreshold)
}

// resources are the user's, with default requests for what they leave out
// and a memory limit when they set none.
func resources(r *servingv1alpha1.Resources) *corev1ac.ResourceRequirementsApplyConfiguration {
	requests := corev1.ResourceList{
		corev1.ResourceCPU:    defaultCPURequest,
		corev1.ResourceMemory: defaultMemoryRequest,
	}
	limits := corev1.ResourceList{}
	if r != nil {
		maps.Copy(requests, quantities(r.Requests))
		limits = quantities(r.Limits)
	}
	if _, ok := limits[corev1.ResourceMemory]; !ok {
		limit := requests[corev1.ResourceMemory]
		limit.Mul(memoryLimitFactor)
		if limit.Cmp(minMemoryLimit) < 0 {
			limit = minMemoryLimit.DeepCopy()
		}
		limits[corev1.ResourceMemory] = limit
	}
	return corev1ac.ResourceRequirements().WithRequests(requests).WithLimits(limits)
}

// stateSizeLimit is the size limit of a stage's state emptyDir:
// stateSizeFactor times its container's memory limit.
func stateSizeLimit(rp *servingv1alpha1.RecPipeline, stage string) resource.Quantity {
	limit := (*resources(stageSpec(rp, stage).Resources).Limits)[corev1.ResourceMemory]
	limit.Mul(stateSizeFactor)
	return limit
}

// quantities parses the quantities of a spec's resources; the API server
// refuses those that do not parse, so none is left out in practice.
func quantities(m map[corev1.ResourceName]intstr.IntOrString) corev1.ResourceList {
	out := corev1.ResourceList{}
	for name, v := range m {
		if q, err := resource.ParseQuantity(v.String()); err == nil {
			out[name] = q
		}
	}
	return out
}

// claims lists the PVCs the pipeline's URIs name, sorted and without
// repeats, so that the pod template is stable.
func claims(rp *servingv1alpha1.RecPipeline) []string {
	set := map[string]bool{}
	add := func(uri string) {
		if claim, _, ok := parsePVC(uri); ok {
			set[claim] = true
		}
	}
	add(rp.Spec.Data.Catalog.URI)
	for _, m := range rp.Spec.Models {
		add(m.URI)
	}
	for _, s := range rp.Spec.Retrieval.Sources {
		add(s.URI)
	}
	if p := rp.Spec.Precompute; p != nil {
		add(p.Users.ListURI)
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// desiredHPA scales a stage that asks for autoscaling; nil otherwise.
func desiredHPA(rp *servingv1alpha1.RecPipeline, stage string) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	spec := stageSpec(rp, stage)
	if spec.Scaling == nil || spec.Scaling.Autoscaling == nil {
		return nil
	}
	as := spec.Scaling.Autoscaling
	return autoscalingv2ac.HorizontalPodAutoscaler(ChildName(rp, stage), rp.Namespace).
		WithLabels(commonLabels(rp, stage)).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").
				WithKind("Deployment").
				WithName(ChildName(rp, stage))).
			WithMinReplicas(as.MinReplicas).
			WithMaxReplicas(as.MaxReplicas).
			WithMetrics(hpaMetrics(as)...))
}

// hpaMetrics are what a stage's autoscaler scales on, in this order: CPU
// when its target is set or when nothing else is (then at
// defaultTargetCPU), the request rate per pod, then the other per-pod
// metrics as listed. The autoscaler takes the largest replica count any of
// them asks for.
func hpaMetrics(as *servingv1alpha1.AutoscalingSpec) []*autoscalingv2ac.MetricSpecApplyConfiguration {
	var out []*autoscalingv2ac.MetricSpecApplyConfiguration
	if as.TargetCPUUtilization != nil || (as.RequestsPerSecond == nil && len(as.Metrics) == 0) {
		out = append(out, autoscalingv2ac.MetricSpec().
			WithType("Resource").
			WithResource(autoscalingv2ac.ResourceMetricSource().
				WithName(corev1.ResourceCPU).
				WithTarget(autoscalingv2ac.MetricTarget().
					WithType("Utilization").
					WithAverageUtilization(ptr.Deref(as.TargetCPUUtilization, defaultTargetCPU)))))
	}
	if as.RequestsPerSecond != nil {
		target := *resource.NewQuantity(int64(as.RequestsPerSecond.Target), resource.DecimalSI)
		out = append(out, podsMetric(servingv1alpha1.RequestsPerSecondMetric, nil, target))
	}
	for _, m := range as.Metrics {
		// The API server refuses a target that is no quantity, so none
		// is left out in practice.
		if target, err := resource.ParseQuantity(m.Target); err == nil {
			out = append(out, podsMetric(m.Name, m.Selector, target))
		}
	}
	return out
}

// podsMetric is an autoscaler metric of type Pods: the metric's average
// over the stage's pods, read through the custom metrics API, aiming for
// target.
func podsMetric(name string, selector *servingv1alpha1.MetricSelector, target resource.Quantity) *autoscalingv2ac.MetricSpecApplyConfiguration {
	id := autoscalingv2ac.MetricIdentifier().WithName(name)
	if selector != nil {
		labels := make(map[string]string, len(selector.MatchLabels))
		for k, v := range selector.MatchLabels {
			labels[k] = string(v)
		}
		id.WithSelector(metav1ac.LabelSelector().WithMatchLabels(labels))
	}
	return autoscalingv2ac.MetricSpec().
		WithType("Pods").
		WithPods(autoscalingv2ac.PodsMetricSource().
			WithMetric(id).
			WithTarget(autoscalingv2ac.MetricTarget().
				WithType("AverageValue").
				WithAverageValue(target)))
}

// desiredPDB keeps all but one pod of a stage with more than one replica
// up through voluntary disruptions; nil for single-replica stages, where a
// budget would block node drains.
func desiredPDB(rp *servingv1alpha1.RecPipeline, stage string) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	spec := stageSpec(rp, stage)
	if r := fixedReplicas(spec); r != nil {
		if *r <= 1 {
			return nil
		}
	} else if spec.Scaling.Autoscaling.MaxReplicas <= 1 {
		return nil
	}
	return policyv1ac.PodDisruptionBudget(ChildName(rp, stage), rp.Namespace).
		WithLabels(commonLabels(rp, stage)).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(rp, stage))))
}

// desiredNetworkPolicy lets only the pipeline's own pods call a stage's
// gRPC port, the port of the calls between stages (which carry users'
// state and may add items to a ranker's catalog), and the peers of
// spec.network its HTTP port (httpPeers; anyone when it names none). The
// frontend, which serves the client API and no gRPC, gets one only when
// spec.network names its clients; nil otherwise. The kubelet's probes come
// from the node, which network plugins let through.
func desiredNetworkPolicy(rp *servingv1alpha1.RecPipeline, stage, operatorNamespace string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	http := networkingv1ac.NetworkPolicyIngressRule().
		WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString("http"))).
		WithFrom(httpPeers(rp, stage, operatorNamespace)...)
	var rules []*networkingv1ac.NetworkPolicyIngressRuleApplyConfiguration
	switch {
	case config.ServesGRPC(stage):
		pipelinePods := map[string]string{labelName: "recserve", labelInstance: rp.Name}
		rules = append(rules, networkingv1ac.NetworkPolicyIngressRule().
			WithFrom(networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(pipelinePods))).
			WithPorts(networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(intstr.FromString("grpc"))),
			http)
	case rp.Spec.Network != nil && len(rp.Spec.Network.Clients) > 0:
		rules = append(rules, http)
	default:
		return nil // the frontend, open to anyone
	}
	return networkingv1ac.NetworkPolicy(ChildName(rp, stage), rp.Namespace).
		WithLabels(commonLabels(rp, stage)).
		WithOwnerReferences(ownerReference(rp)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(rp, stage))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress).
			WithIngress(rules...))
}

// httpPeers are who may reach a stage's HTTP port (spec.network): the
// clients on the frontend, the monitoring peers on every stage, then on
// the frontend the pods of the pipeline's precompute job, and the
// operator's namespace, whose manager reads /v1/status; none (anyone)
// when the spec limits nothing for the stage.
func httpPeers(rp *servingv1alpha1.RecPipeline, stage, operatorNamespace string) []*networkingv1ac.NetworkPolicyPeerApplyConfiguration {
	n := rp.Spec.Network
	if n == nil {
		return nil
	}
	peers := n.Monitoring
	if stage == config.StageFrontend {
		if len(n.Clients) == 0 {
			return nil
		}
		peers = append(slices.Clone(n.Clients), peers...)
	}
	if len(peers) == 0 {
		return nil
	}
	out := make([]*networkingv1ac.NetworkPolicyPeerApplyConfiguration, 0, len(peers)+1)
	for _, p := range peers {
		peer := networkingv1ac.NetworkPolicyPeer()
		if p.NamespaceSelector != nil {
			peer.WithNamespaceSelector(labelSelector(p.NamespaceSelector))
		}
		if p.PodSelector != nil {
			peer.WithPodSelector(labelSelector(p.PodSelector))
		}
		out = append(out, peer)
	}
	if stage == config.StageFrontend && rp.Spec.Precompute != nil {
		// The precompute job asks the frontend for a run.
		out = append(out, networkingv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector().
			WithMatchLabels(jobSelectorLabels(rp, componentPrecompute))))
	}
	if operatorNamespace != "" {
		out = append(out, networkingv1ac.NetworkPolicyPeer().WithNamespaceSelector(metav1ac.LabelSelector().
			WithMatchLabels(map[string]string{corev1.LabelMetadataName: operatorNamespace})))
	}
	return out
}

// labelSelector is sel as an apply configuration.
func labelSelector(sel *metav1.LabelSelector) *metav1ac.LabelSelectorApplyConfiguration {
	out := metav1ac.LabelSelector()
	if len(sel.MatchLabels) > 0 {
		out.WithMatchLabels(sel.MatchLabels)
	}
	for _, e := range sel.MatchExpressions {
		out.WithMatchExpressions(metav1ac.LabelSelectorRequirement().
			WithKey(e.Key).WithOperator(e.Operator).WithValues(e.Values...))
	}
	return out
}

// endpoint is the URL of the client API.
func endpoint(rp *servingv1alpha1.RecPipeline) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", ChildName(rp, config.StageFrontend), rp.Namespace, config.HTTPPort)
}
