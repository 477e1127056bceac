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

// Package controllers reconciles RecPipelines into stage workloads.
package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// FieldOwner is the server-side apply field manager of every child.
const FieldOwner = "recpipeline-operator"

// propagationRequeue is how soon a pipeline is looked at again while its
// stages roll out or its pods pick up a new config revision.
const propagationRequeue = 2 * time.Second

// shadowRequeue is how often status.shadow is refreshed from the ranker
// pods while a stage has a shadow model.
const shadowRequeue = 30 * time.Second

// sourcesRequeue is how often the SourcesHealthy condition is refreshed
// from the frontend pods while they serve requests.
const sourcesRequeue = time.Minute

// RecPipelineReconciler reconciles a RecPipeline into its children.
type RecPipelineReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// DefaultImage is the recserve image of pipelines that name none.
	DefaultImage string
	// DefaultToolsImage is the image of the training job's rectrain for
	// pipelines whose spec.training names none.
	DefaultToolsImage string
	// StatusReader reads the config revision each ready pod serves.
	StatusReader PodStatusReader
	// MaxConcurrentReconciles is how many pipelines reconcile at once; 4
	// when zero.
	MaxConcurrentReconciles int
	// Clock tells the time of rollout steps; time.Now when nil.
	Clock func() time.Time
	// APIReader reads from the API server, past the manager's cache (which
	// holds only the children it labelled): it finds an object of a child's
	// name that the operator did not make. The Client when nil.
	APIReader client.Reader
	// OperatorNamespace is the namespace the manager runs in: a pipeline's
	// NetworkPolicies that limit the stages' HTTP ports let it through, to
	// read /v1/status. Empty when the manager runs outside the cluster.
	OperatorNamespace string

	// tokens holds the UIDs of the pipelines whose stage-token Secret this
	// process created or found, so that a steady pipeline costs no write.
	tokens sync.Map
	// trainingEvents holds, by pipeline UID, the training Job this process
	// last emitted an Event for: a pass that reads the pipeline from the
	// cache before its status write arrives emits none again.
	trainingEvents sync.Map
}

// scope carries one reconcile's state between its phases. The phases
// record what they found in it; the deferred status step derives the
// status from it (setStatus).
type scope struct {
	rp       *servingv1alpha1.RecPipeline
	original *servingv1alpha1.RecPipeline
	// rendered is the runtime config the pods serve, nil until it renders.
	rendered *Rendered
	// rollout is what the rollout of a live change decided, nil until it
	// has.
	rollout *rolloutPlan
	// tuning is status.tuning after the pass, once tuned is set.
	tuning *servingv1alpha1.TuningStatus
	tuned  bool
	// armCounts are the frontend pods' per-arm counts, once read this
	// pass (armCountsRead), and whether every ready pod answered.
	armCounts             map[string]config.ArmCounts
	armCountsRead, armsOK bool
	// stages is nil until every stage has been observed.
	stages []stageObservation
	// precompute and training are status.precompute and status.training
	// after the pass, once batchObserved is set; trainingEvent is the
	// Event a newly finished training run calls for.
	precompute    *servingv1alpha1.PrecomputeStatus
	training      *servingv1alpha1.TrainingStatus
	trainingEvent *batchEvent
	batchObserved bool
	// failure is why a phase stopped, when the user must hear of it.
	failure *reconcileFailure
	// complete is set once every phase has succeeded.
	complete bool
}

type phase func(context.Context, *scope) (ctrl.Result, error)

// +kubebuilder:rbac:groups=serving.recpipeline.dev,resources=recpipelines,verbs=get;list;watch
// +kubebuilder:rbac:groups=serving.recpipeline.dev,resources=recpipelines/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=serving.recpipeline.dev,resources=recpipelines/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=configmaps;services;serviceaccounts,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings the children of one RecPipeline in line with its spec
// and reports what it observed in its status.
func (r *RecPipelineReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	rp := &servingv1alpha1.RecPipeline{}
	if err := r.Get(ctx, req.NamespacedName, rp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !rp.DeletionTimestamp.IsZero() {
		// Owner references let the garbage collector remove the children.
		return ctrl.Result{}, nil
	}

	s := &scope{rp: rp, original: rp.DeepCopy()}
	defer func() {
		if err := r.writeStatus(ctx, s); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, err})
		}
	}()

	// The stages are observed before the batch CronJobs are applied: a
	// CronJob the API server refuses leaves the stages' status current.
	phases := []phase{r.reconcileConfig, r.reconcileAccess, r.reconcileStages, r.observeStages, r.reconcileBatch, r.observeBatch}
	for _, p := range phases {
		res, err := p(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		result = shortestRequeue(result, res)
	}
	s.complete = true
	return result, nil
}

// shortestRequeue keeps the earliest of two requeue requests.
func shortestRequeue(a, b ctrl.Result) ctrl.Result {
	if b.RequeueAfter > 0 && (a.RequeueAfter == 0 || b.RequeueAfter < a.RequeueAfter) {
		return b
	}
	return a
}

// reconcileConfig renders the runtime config, decides with the rollout
// what the pods serve (rollout.go), and applies the served and the stable
// ConfigMaps.
func (r *RecPipelineReconciler) reconcileConfig(ctx context.Context, s *scope) (ctrl.Result, error) {
	candidate, err := renderConfig(s.rp)
	if err != nil {
		s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonInvalidSpec, err: err}
		// Only a change of the spec can fix it.
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	if err := r.readFreshStatus(ctx, s); err != nil {
		return ctrl.Result{}, err
	}
	if candidate, err = tunedCandidate(s.rp, candidate); err != nil {
		s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonInvalidSpec, err: fmt.Errorf("the best point of spec.tuning does not render: %w", err)}
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	now := r.now()
	stable, requeue, err := r.reconcileRollout(ctx, s, candidate, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	tuningRequeue, err := r.reconcileTuning(ctx, s, candidate, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	requeue = shortestRequeue(ctrl.Result{RequeueAfter: requeue}, ctrl.Result{RequeueAfter: tuningRequeue}).RequeueAfter
	// The stable config first: a served config that names a canary never
	// exists without the stable config an abort returns to, and an abort
	// is recorded there before the served config drops the canary.
	if err := ensure(ctx, r, s, &corev1.ConfigMap{}, desiredStableConfigMap(s.rp, stable, s.rollout.abortedRevision()), corev1ac.ExtractConfigMap); err != nil {
		return ctrl.Result{}, err
	}
	if err := ensure(ctx, r, s, &corev1.ConfigMap{}, desiredConfigMap(s.rp, s.rendered.Bytes), corev1ac.ExtractConfigMap); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// now is the reconciler's clock.
func (r *RecPipelineReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// reconcileAccess creates the stages' token and applies the runtime's
// ServiceAccount, Role and RoleBinding.
func (r *RecPipelineReconciler) reconcileAccess(ctx context.Context, s *scope) (ctrl.Result, error) {
	if err := r.createStageToken(ctx, s.rp); err != nil {
		return ctrl.Result{}, err
	}
	if err := ensure(ctx, r, s, &corev1.ServiceAccount{}, desiredServiceAccount(s.rp), corev1ac.ExtractServiceAccount); err != nil {
		return ctrl.Result{}, err
	}
	if err := ensure(ctx, r, s, &rbacv1.Role{}, desiredRole(s.rp), rbacv1ac.ExtractRole); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, ensure(ctx, r, s, &rbacv1.RoleBinding{}, desiredRoleBinding(s.rp), rbacv1ac.ExtractRoleBinding)
}

// createStageToken creates the pipeline's stage-token Secret (see
// StageTokenName) with a new random token, unless this process did before
// or it exists. The operator may create Secrets but not read them, so an
// existing Secret of that name is taken as the pipeline's; its owner
// reference lets the garbage collector remove it with the pipeline.
func (r *RecPipelineReconciler) createStageToken(ctx context.Context, rp *servingv1alpha1.RecPipeline) error {
	if _, ok := r.tokens.Load(rp.UID); ok {
		return nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	err := r.Create(ctx, stageTokenSecret(rp, hex.EncodeToString(b)))
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create Secret %s: %w", StageTokenName(rp), err)
	}
	r.tokens.Store(rp.UID, true)
	return nil
}

// runtimeImage is the pipeline's recserve image.
func (r *RecPipelineReconciler) runtimeImage(rp *servingv1alpha1.RecPipeline) string {
	if rp.Spec.Runtime.Image != "" {
		return rp.Spec.Runtime.Image
	}
	return r.DefaultImage
}

// reconcileStages applies each stage's Service, Deployment, and HPA and PDB
// where the stage wants them, removing those it no longer wants.
func (r *RecPipelineReconciler) reconcileStages(ctx context.Context, s *scope) (ctrl.Result, error) {
	image := r.runtimeImage(s.rp)
	for _, stage := range Stages {
		if err := ensure(ctx, r, s, &corev1.Service{}, desiredService(s.rp, stage), corev1ac.ExtractService); err != nil {
			return ctrl.Result{}, err
		}
		if err := ensure(ctx, r, s, &appsv1.Deployment{}, desiredDeployment(s.rp, stage, image, s.rendered.StageRevisions[stage]), appsv1ac.ExtractDeployment); err != nil {
			return ctrl.Result{}, err
		}
		if hpa := desiredHPA(s.rp, stage); hpa != nil {
			if err := ensure(ctx, r, s, &autoscalingv2.HorizontalPodAutoscaler{}, hpa, autoscalingv2ac.ExtractHorizontalPodAutoscaler); err != nil {
				return ctrl.Result{}, err
			}
		} else if err := r.removeChild(ctx, s, &autoscalingv2.HorizontalPodAutoscaler{}, ChildName(s.rp, stage)); err != nil {
			return ctrl.Result{}, err
		}
		if np := desiredNetworkPolicy(s.rp, stage, r.OperatorNamespace); np != nil {
			if err := ensure(ctx, r, s, &networkingv1.NetworkPolicy{}, np, networkingv1ac.ExtractNetworkPolicy); err != nil {
				return ctrl.Result{}, err
			}
		} else if err := r.removeChild(ctx, s, &networkingv1.NetworkPolicy{}, ChildName(s.rp, stage)); err != nil {
			return ctrl.Result{}, err
		}
		if pdb := desiredPDB(s.rp, stage); pdb != nil {
			if err := ensure(ctx, r, s, &policyv1.PodDisruptionBudget{}, pdb, policyv1ac.ExtractPodDisruptionBudget); err != nil {
				return ctrl.Result{}, err
			}
		} else if err := r.removeChild(ctx, s, &policyv1.PodDisruptionBudget{}, ChildName(s.rp, stage)); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// reconcileBatch applies the precompute and training CronJobs the spec
// asks for and removes those it no longer does, with their Jobs.
func (r *RecPipelineReconciler) reconcileBatch(ctx context.Context, s *scope) (ctrl.Result, error) {
	image := r.runtimeImage(s.rp)
	cronJobs := map[string]*batchv1ac.CronJobApplyConfiguration{
		PrecomputeName(s.rp): desiredPrecomputeCronJob(s.rp, image),
		TrainingName(s.rp):   desiredTrainingCronJob(s.rp, image, r.DefaultToolsImage),
	}
	for _, name := range []string{PrecomputeName(s.rp), TrainingName(s.rp)} {
		if cj := cronJobs[name]; cj != nil {
			if err := ensure(ctx, r, s, &batchv1.CronJob{}, cj, batchv1ac.ExtractCronJob); err != nil {
				if apierrors.IsInvalid(err) {
					// A schedule or time zone the API server refuses:
					// only a change of the spec can fix it (Degraded says
					// why).
					return ctrl.Result{}, reconcile.TerminalError(err)
				}
				return ctrl.Result{}, err
			}
		} else if err := r.removeChild(ctx, s, &batchv1.CronJob{}, name, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			return ctrl.Result{}, err
		}
	}
	return ctrl.Result{}, nil
}

// trainingResultRequeue is how soon a pipeline is looked at again while
// a finished training run's result is on its way to the cache.
const trainingResultRequeue = 2 * time.Second

// observeBatch reads the batch CronJobs, their newest finished Jobs and
// those Jobs' pods into the scope's status.precompute and
// status.training, with the frontend pods' precompute reports (read by
// observeStages).
func (r *RecPipelineReconciler) observeBatch(ctx context.Context, s *scope) (ctrl.Result, error) {
	var result ctrl.Result
	if s.rp.Spec.Precompute != nil {
		o, err := r.observeCronJob(ctx, s.rp, PrecomputeName(s.rp), componentPrecompute)
		if err != nil {
			return ctrl.Result{}, err
		}
		var report *precomputeReport
		for i := range s.stages {
			if s.stages[i].Name == config.StageFrontend {
				report = s.stages[i].Precompute
			}
		}
		s.precompute = precomputeStatus(s.original.Status.Precompute, o, report)
	}
	if s.rp.Spec.Training != nil {
		o, err := r.observeCronJob(ctx, s.rp, TrainingName(s.rp), componentTraining)
		if err != nil {
			return ctrl.Result{}, err
		}
		var wait bool
		s.training, s.trainingEvent, wait = trainingStatus(s.rp, s.original.Status.Training, o, r.now())
		if wait {
			result.RequeueAfter = trainingResultRequeue
		}
	}
	s.batchObserved = true
	return result, nil
}

// observeCronJob reads the CronJob name of component, if the pipeline
// controls it, its newest finished Job and that Job's pods.
func (r *RecPipelineReconciler) observeCronJob(ctx context.Context, rp *servingv1alpha1.RecPipeline, name, component string) (*batchObservation, error) {
	o := &batchObservation{}
	cj := &batchv1.CronJob{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: rp.Namespace, Name: name}, cj); {
	case apierrors.IsNotFound(err):
		return o, nil
	case err != nil:
		return nil, fmt.Errorf("failed to get CronJob %s: %w", name, err)
	}
	if !metav1.IsControlledBy(cj, rp) {
		return o, nil
	}
	o.cronJob = cj
	jobs := &batchv1.JobList{}
	if err := r.List(ctx, jobs, client.InNamespace(rp.Namespace), client.MatchingLabels(jobSelectorLabels(rp, component))); err != nil {
		return nil, fmt.Errorf("failed to list the Jobs of CronJob %s: %w", name, err)
	}
	if o.finished = newestFinishedJob(jobs.Items, cj.UID); o.finished == nil {
		return o, nil
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(rp.Namespace),
		client.MatchingLabels{jobNameLabel: o.finished.Name, labelInstance: rp.Name}); err != nil {
		return nil, fmt.Errorf("failed to list the pods of Job %s: %w", o.finished.Name, err)
	}
	o.pods = pods.Items
	return o, nil
}

// observeStages reads each stage's Deployment and pods into the scope, and
// looks again soon while pods pick up a new config revision.
func (r *RecPipelineReconciler) observeStages(ctx context.Context, s *scope) (ctrl.Result, error) {
	stages := make([]stageObservation, 0, len(Stages))
	for _, stage := range Stages {
		o, err := r.observeStage(ctx, s, stage)
		if err != nil {
			return ctrl.Result{}, err
		}
		stages = append(stages, o)
	}
	s.stages = stages

	if rolling, propagating := stageProgress(s.rendered.Revision, stages); len(rolling) > 0 || len(propagating) > 0 {
		// The last event of a rollout (an old pod gone) may reach the
		// cache before the Deployment's status says it is done, and a
		// status write starts no pass: look again soon.
		return ctrl.Result{RequeueAfter: propagationRequeue}, nil
	}
	if l := &s.rendered.Config.Live; l.FirstStage.Shadow != nil || l.SecondStage.Shadow != nil {
		// Nothing signals that the shadows' comparisons grew.
		return ctrl.Result{RequeueAfter: shadowRequeue}, nil
	}
	for i := range stages {
		if stages[i].Name == config.StageFrontend && stages[i].readyPods() > 0 {
			// Nor that the frontends served requests and their sources
			// failed some.
			return ctrl.Result{RequeueAfter: sourcesRequeue}, nil
		}
	}
	return ctrl.Result{}, nil
}

// observeStage reads one stage's Deployment, if it exists, and what its
// pods report.
func (r *RecPipelineReconciler) observeStage(ctx context.Context, s *scope, stage string) (stageObservation, error) {
	o := stageObservation{Name: stage}
	d := &appsv1.Deployment{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: s.rp.Namespace, Name: ChildName(s.rp, stage)}, d); {
	case err == nil:
		o.Deployment = d
	case !apierrors.IsNotFound(err):
		return o, fmt.Errorf("failed to get Deployment of stage %s: %w", stage, err)
	}
	pods := &corev1.PodList{}
	if err := r.List(ctx, pods, client.InNamespace(s.rp.Namespace), client.MatchingLabels(selectorLabels(s.rp, stage))); err != nil {
		return o, fmt.Errorf("failed to list pods of stage %s: %w", stage, err)
	}
	o.podStatuses = readPodStatuses(ctx, r.StatusReader, pods.Items, s.rendered.Revision, s.rendered.StageRevisions[stage])
	return o, nil
}

// desiredChild is a child's desired state: an apply configuration that
// names its object.
type desiredChild interface {
	runtime.ApplyConfiguration
	GetName() *string
}

// ensure applies desired unless the fields this controller owns on the
// existing object (extract reads them from managedFields) already equal it,
// so that an unchanged pipeline costs no write. existing is an empty object
// of desired's kind.
func ensure[O client.Object, A desiredChild](ctx context.Context, r *RecPipelineReconciler, s *scope, existing O, desired A, extract func(O, string) (A, error)) error {
	name, kind := *desired.GetName(), reflect.TypeOf(existing).Elem().Name()
	key := types.NamespacedName{Namespace: s.rp.Namespace, Name: name}
	switch err := r.Get(ctx, key, existing); {
	case err == nil:
		if !metav1.IsControlledBy(existing, s.rp) {
			return childConflict(s, kind, name)
		}
		if owned, err := extract(existing, FieldOwner); err == nil && equality.Semantic.DeepEqual(owned, desired) {
			return nil
		}
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("failed to get %s %s: %w", kind, name, err)
	default:
		// Not in the cache: an object of that name the operator did not
		// label may still exist, and must not be taken over.
		switch err := r.apiReader().Get(ctx, key, existing); {
		case err == nil:
			return childConflict(s, kind, name)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("failed to get %s %s: %w", kind, name, err)
		}
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Applying child", kind, klog.KRef(s.rp.Namespace, name))
	if err := r.Apply(ctx, desired, client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		err = fmt.Errorf("failed to apply %s %s: %w", kind, name, err)
		s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonApplyFailed, err: err}
		return err
	}
	return nil
}

// removeChild deletes a child this pipeline controls and no longer wants.
func (r *RecPipelineReconciler) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// childConflict records that an object the pipeline needs under name
// exists and is not the pipeline's: the operator neither overwrites nor,
// with the pipeline, deletes what it did not make.
func childConflict(s *scope, kind, name string) error {
	err := fmt.Errorf("%s %s already exists and is not owned by this pipeline; rename the pipeline or remove the object", kind, name)
	s.failure = &reconcileFailure{reason: servingv1alpha1.ReasonChildConflict, err: err}
	return err
}

func (r *RecPipelineReconciler) removeChild(ctx context.Context, s *scope, obj client.Object, name string, opts ...client.DeleteOption) error {
	err := r.Get(ctx, types.NamespacedName{Namespace: s.rp.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to get %T %s: %w", obj, name, err)
	}
	if !metav1.IsControlledBy(obj, s.rp) {
		return nil
	}
	ctrl.LoggerFrom(ctx).Info("Deleting child the spec no longer asks for", "object", klog.KObj(obj))
	if err := r.Delete(ctx, obj, opts...); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("failed to delete %T %s: %w", obj, name, err)
	}
	return nil
}

// writeStatus derives the status from what this reconcile found, patches it
// if it changed, and emits events on condition transitions.
func (r *RecPipelineReconciler) writeStatus(ctx context.Context, s *scope) error {
	setStatus(s)
	r.emitTransitions(s)
	if equality.Semantic.DeepEqual(s.original.Status, s.rp.Status) {
		return nil
	}
	// The status is recomputed from observation on every pass and only this
	// controller writes it, so a plain merge patch without a resourceVersion
	// precondition is safe and does not fail on a stale cache.
	patch := client.MergeFrom(s.original)
	if err := r.Status().Patch(ctx, s.rp, patch); err != nil {
		return fmt.Errorf("failed to patch status: %w", err)
	}
	return nil
}

// emitTransitions records an event for each condition whose status
// changed, and for each move of a canary (rollout.go).
func (r *RecPipelineReconciler) emitTransitions(s *scope) {
	if r.Recorder == nil {
		return
	}
	if reason, eventType, note, ok := rolloutTransition(s.original.Status.Rollout, s.rp.Status.Rollout); ok {
		r.Recorder.Eventf(s.rp, nil, eventType, reason, "Rollout", "%s", note)
	}
	if reason, eventType, note, ok := tuningTransition(s.original.Status.Tuning, s.rp.Status.Tuning); ok {
		r.Recorder.Eventf(s.rp, nil, eventType, reason, "Tuning", "%s", note)
	}
	if ev, job := s.trainingEvent, s.rp.Status.Training; ev != nil && job != nil {
		if last, ok := r.trainingEvents.Load(s.rp.UID); !ok || last != job.Job {
			r.trainingEvents.Store(s.rp.UID, job.Job)
			r.Recorder.Eventf(s.rp, nil, ev.eventType, ev.reason, "Training", "%s", ev.note)
		}
	}
	for _, t := range []string{servingv1alpha1.ConditionReady, servingv1alpha1.ConditionDegraded} {
		now := meta.FindStatusCondition(s.rp.Status.Conditions, t)
		if now == nil {
			continue
		}
		before := meta.FindStatusCondition(s.original.Status.Conditions, t)
		if before != nil && before.Status == now.Status {
			continue
		}
		eventType := corev1.EventTypeNormal
		if (t == servingv1alpha1.ConditionDegraded) == (now.Status == metav1.ConditionTrue) {
			eventType = corev1.EventTypeWarning
		}
		if before == nil && eventType == corev1.EventTypeNormal && t == servingv1alpha1.ConditionDegraded {
			continue // a new pipeline that is not degraded is no news
		}
		r.Recorder.Eventf(s.rp, nil, eventType, now.Reason, t, "%s is %s: %s", t, now.Status, now.Message)
	}
}

// SetupWithManager registers the controller: it watches RecPipelines, their
// children and the stage pods.
func (r *RecPipelineReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return r.setupWithManager(mgr, r)
}

// setupWithManager registers rec, which is r or a wrapper of it, with the
// watches of r.
func (r *RecPipelineReconciler) setupWithManager(mgr ctrl.Manager, rec reconcile.Reconciler) error {
	workers := r.MaxConcurrentReconciles
	if workers == 0 {
		workers = 4
	}
	return ctrl.NewControllerManagedBy(mgr).
		// A status write is no news: the status is derived from what the
		// pass observed, and passes that poll (a canary's counts, a
		// shadow's) requeue on their own timers.
		For(&servingv1alpha1.RecPipeline{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&appsv1.Deployment{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&batchv1.CronJob{}).
		// The CronJobs' Jobs and the stage and batch pods carry the
		// pipeline's labels, not its owner reference.
		Watches(&batchv1.Job{}, handler.EnqueueRequestsFromMapFunc(podToPipeline)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(podToPipeline)).
		Named("recpipeline").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(rec)
}

// podToPipeline maps a stage pod, a batch Job or its pod to its
// RecPipeline.
func podToPipeline(_ context.Context, obj client.Object) []reconcile.Request {
	labels := obj.GetLabels()
	if labels[labelManagedBy] != ManagedByValue || labels[labelInstance] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: labels[labelInstance]}}}
}
