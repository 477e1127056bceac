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

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RecPipeline declares a multi-stage recommendation funnel: candidate
// sources, first- and second-stage rankers, the event weights of the
// second-stage value and the final rerank rules.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rp,categories=recpipeline
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.configRevision`
// +kubebuilder:printcolumn:name="Stages",type=string,JSONPath=`.status.readyStages`
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.status.rollout.phase`
// +kubebuilder:printcolumn:name="Tuning",type=string,JSONPath=`.status.tuning.phase`,priority=1
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`,priority=1
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 40",message="metadata.name must be at most 40 characters so that child names (<name>-ranker-second) stay valid DNS labels"
type RecPipeline struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the funnel.
	// +required
	Spec RecPipelineSpec `json:"spec"`

	// status reports what the controller observed.
	// +optional
	Status RecPipelineStatus `json:"status,omitempty"`
}

// RecPipelineSpec declares the funnel.
//
// +kubebuilder:validation:XValidation:rule="self.retrieval.candidates >= self.ranking.firstStage.keep",message="spec.ranking.firstStage.keep must not exceed spec.retrieval.candidates: each stage of the funnel keeps at most what the previous one produced"
// +kubebuilder:validation:XValidation:rule="self.ranking.firstStage.keep >= self.ranking.secondStage.keep",message="spec.ranking.secondStage.keep must not exceed spec.ranking.firstStage.keep: each stage of the funnel keeps at most what the previous one produced"
// +kubebuilder:validation:XValidation:rule="self.ranking.secondStage.keep >= self.rerank.size",message="spec.rerank.size must not exceed spec.ranking.secondStage.keep: each stage of the funnel keeps at most what the previous one produced"
// +kubebuilder:validation:XValidation:rule="self.retrieval.sources.all(s, !has(s.model) || self.models.exists(m, m.name == s.model))",message="spec.retrieval.sources[].model must name an entry of spec.models"
// +kubebuilder:validation:XValidation:rule="self.models.exists(m, m.name == self.ranking.firstStage.model)",message="spec.ranking.firstStage.model must name an entry of spec.models"
// +kubebuilder:validation:XValidation:rule="self.models.exists(m, m.name == self.ranking.secondStage.model)",message="spec.ranking.secondStage.model must name an entry of spec.models"
// +kubebuilder:validation:XValidation:rule="!has(self.experiments) || self.experiments.all(x, (!has(x.firstStageModel) || self.models.exists(m, m.name == x.firstStageModel)) && (!has(x.secondStageModel) || self.models.exists(m, m.name == x.secondStageModel)))",message="spec.experiments[].firstStageModel and secondStageModel must name entries of spec.models"
// +kubebuilder:validation:XValidation:rule="!has(self.ranking.firstStage.shadow) || (self.ranking.firstStage.shadow.model != self.ranking.firstStage.model && self.models.exists(m, m.name == self.ranking.firstStage.shadow.model))",message="spec.ranking.firstStage.shadow.model must name another entry of spec.models than spec.ranking.firstStage.model"
// +kubebuilder:validation:XValidation:rule="!has(self.ranking.secondStage.shadow) || (self.ranking.secondStage.shadow.model != self.ranking.secondStage.model && self.models.exists(m, m.name == self.ranking.secondStage.shadow.model))",message="spec.ranking.secondStage.shadow.model must name another entry of spec.models than spec.ranking.secondStage.model"
// +kubebuilder:validation:XValidation:rule="!has(self.data.store) || !has(self.data.store.type) || self.data.store.type != 'Memory' || !has(self.frontend) || !has(self.frontend.scaling) || (has(self.frontend.scaling.replicas) && self.frontend.scaling.replicas <= 1)",message="spec.frontend.scaling: the Memory store lives in the frontend pod, so the frontend runs one replica; use the Redis store (spec.data.store.type: Redis) to scale it"
// +kubebuilder:validation:XValidation:rule="self.retrieval.sources.all(s, s.type != 'Precomputed' || has(s.uri)) || has(self.precompute)",message="spec.retrieval.sources[].uri is required for a Precomputed source unless spec.precompute is set: without one, the source reads the precompute runs' lists"
// +kubebuilder:validation:XValidation:rule="!has(self.training) || has(self.logging)",message="spec.training learns from the frontend's logs: set spec.logging"
type RecPipelineSpec struct {
	// runtime selects the recserve image the stage pods run.
	// +optional
	Runtime RuntimeSpec `json:"runtime,omitempty"`

	// data locates the item catalog and the real-time state store.
	// +required
	Data DataSpec `json:"data"`

	// models are the model artifacts the funnel loads, referenced by name
	// from sources and ranking stages. Each stage's pods roll only when what
	// that stage loads changes: the retrieval stage the models its
	// TwoTowerANN and ItemToItemANN sources search; ranker-first its model;
	// ranker-second its model and the retrieval model its two_tower_score
	// input reads (secondStage.retrievalModel, or the first TwoTowerANN
	// source's). A uri change, or pointing a stage at another listed model,
	// rolls that stage alone; listing a model nothing uses rolls none. The
	// frontend, which holds the Memory store's state, rolls only for the
	// catalog, the store and the runtime's image or resources.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Models []ModelSpec `json:"models"`

	// retrieval declares the candidate sources and how they are mixed.
	// +required
	Retrieval RetrievalSpec `json:"retrieval"`

	// ranking declares the first- and second-stage rankers and the event
	// weights of the second-stage value.
	// +required
	Ranking RankingSpec `json:"ranking"`

	// rerank declares the final rules applied to the ranked list.
	// +required
	Rerank RerankSpec `json:"rerank"`

	// frontend sizes the stage that serves the client API, owns the
	// real-time state and runs the final rerank. One replica when unset;
	// more need the Redis store.
	// +optional
	Frontend *StageSpec `json:"frontend,omitempty"`

	// experiments are arms, each served to a share of the users with
	// overrides of the weights, the sources' weights and limits, the
	// rerank or the rankers' models; the users in no arm are the "control" arm. Users are bucketed
	// by a stable hash of (experimentSalt, user id), the same on every
	// replica. Responses name the arm; each pod's /metrics and /v1/status
	// count, per arm, the requests served and the events on what the arm
	// served. Changing experiments restarts no pod.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.map(x, x.traffic).sum() <= 1.0",message="spec.experiments traffic must sum to at most 1"
	Experiments []ExperimentSpec `json:"experiments,omitempty"`

	// events protects the frontend's POST /v1/events, which changes users'
	// state (what they saw, follow, engaged with).
	// +optional
	Events *EventsSpec `json:"events,omitempty"`

	// network limits who may reach the stages' HTTP ports (the frontend's
	// client API; every stage's /metrics and /v1/status), where the
	// cluster's network plugin enforces NetworkPolicy. The gRPC port of the
	// retrieval and ranker stages is always limited to the pipeline's own
	// pods. Unset: the HTTP ports are open.
	// +optional
	Network *NetworkSpec `json:"network,omitempty"`

	// experimentSalt is hashed with each user id to bucket users into
	// arms; changing it reshuffles them. Default: the pipeline's
	// namespace/name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ExperimentSalt string `json:"experimentSalt,omitempty"`

	// rollout makes a change of the live config (weights, rerank, the
	// sources' mix and limits, funnel sizes, which listed model a ranker or
	// ANN source uses) a canary: the controller serves the new config as an
	// arm beside an equal baseline arm of the stable config, steps its share
	// of the users up, compares the arms' engagement and promotes or rolls
	// back on its own. The stable config is kept in the ConfigMap
	// <name>-config-stable; the spec is never written. While a canary
	// switches a model, the stage that loads it loads both. A change that
	// replaces pods (image, catalog, store, resources, a model's uri) rolls
	// the Deployments as without a rollout. Unset: a live change reaches
	// every user at once. Experiments (spec.experiments) apply at once
	// either way.
	// +optional
	Rollout *RolloutSpec `json:"rollout,omitempty"`

	// tuning searches live weights online by Bayesian optimisation: each
	// trial serves a point of the parameters' box as an arm beside an
	// equal baseline arm of the config that serves everyone else, for a
	// least time and number of impressions; the difference of the arms'
	// objective, with its noise from the arms' counts over users, updates
	// a Gaussian process whose expected improvement picks the next point.
	// status.tuning records the trials and the best point with a YAML
	// snippet to commit; promote: Auto hands the best to spec.rollout (or
	// serves it, without one). The spec is never written. The value
	// weights act at the second stage only: the first stage ranks with its
	// own distilled model, whatever the weights. Changing spec.tuning
	// starts the search again.
	// +optional
	Tuning *TuningSpec `json:"tuning,omitempty"`

	// precompute computes lists off-peak for chosen users: a CronJob the
	// operator owns asks the frontend, on schedule, to run the funnel in
	// batch for them and keep each list in the state store for a while;
	// the frontend then answers those users from their list, through the
	// seen, see-less and integrity filters, without running the funnel:
	// always, or only when it is saturated (serve). A list is served only
	// to the arm and config revision that computed it. Changing it
	// restarts no stage pod.
	// +optional
	Precompute *PrecomputeSpec `json:"precompute,omitempty"`

	// logging makes the frontend log, as rotating files on a claim, the
	// events it accepts (in the events.jsonl format rectrain reads) and a
	// sample of the lists it serves (request id, user, arm, revision, items
	// with their sources and heads' probabilities): what a training run
	// learns from.
	// +optional
	Logging *LoggingSpec `json:"logging,omitempty"`

	// training retrains the models on schedule from the frontend's logs
	// (spec.logging): a CronJob the operator owns exports the logs as a
	// dataset and runs rectrain on it, writing a new versioned artifact
	// directory under output. status.training reports the run's offline
	// metrics and an Event carries the snippet that points spec.models at
	// it; the spec is never written, so serving the new models is a
	// change of models[].uri (rolled out per stage) the user makes.
	// +optional
	Training *TrainingSpec `json:"training,omitempty"`
}

// PrecomputeServe is when a precomputed list is served whole.
// +kubebuilder:validation:Enum=Always;WhenSaturated;Never
type PrecomputeServe string

// Precompute serving policies.
const (
	// PrecomputeAlways serves a user's fresh list whenever there is one.
	PrecomputeAlways PrecomputeServe = "Always"
	// PrecomputeWhenSaturated runs the funnel as usual and serves a
	// user's fresh list only when the frontend computes as many
	// recommendations at once as it may (load shedding).
	PrecomputeWhenSaturated PrecomputeServe = "WhenSaturated"
	// PrecomputeNever never serves a list whole: a Precomputed source
	// without a uri merges the user's list into the funnel as candidates.
	PrecomputeNever PrecomputeServe = "Never"
)

// PrecomputeSpec declares off-peak precomputation.
// +kubebuilder:validation:XValidation:rule="has(self.users.activeWithin) || has(self.users.listURI)",message="spec.precompute.users needs activeWithin, listURI or both"
type PrecomputeSpec struct {
	// schedule of the runs, in cron format ("0 3 * * *").
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule"`

	// timeZone of the schedule, an IANA name ("Europe/Paris"). The
	// controller manager's time zone when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone *string `json:"timeZone,omitempty"`

	// suspend stops the runs; the lists already stored are served until
	// they expire.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// users selects whom lists are computed for.
	// +required
	Users PrecomputeUsers `json:"users"`

	// size of each list. Default: spec.rerank.size.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Size *int32 `json:"size,omitempty"`

	// ttl is how long a list is served after it is computed. Default 24h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be positive"
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// serve is when a fresh list is served instead of running the
	// funnel. Default Always.
	// +optional
	// +kubebuilder:default=Always
	Serve PrecomputeServe `json:"serve,omitempty"`

	// activeDeadline bounds one run. Default 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be positive"
	ActiveDeadline *metav1.Duration `json:"activeDeadline,omitempty"`
}

// PrecomputeUsers selects users for precomputation: those active within
// a window (the most active first, at most top of them), those listed in
// a file, or both.
type PrecomputeUsers struct {
	// activeWithin selects the users with an event in this window before
	// the run, by the store's event time.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be positive"
	ActiveWithin *metav1.Duration `json:"activeWithin,omitempty"`

	// top keeps the most active of them (by their events in the store),
	// at most this many. Default: all of them, up to 1,000,000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	Top *int32 `json:"top,omitempty"`

	// listURI locates a file of user ids, one per line: pvc://<claim>/<path>,
	// file:///<path> on the image, or http(s)://.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))*/?|file://(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))+/?|https?://[^/\s@]+(/[^\s]*)?)$`
	ListURI string `json:"listURI,omitempty"`
}

// LoggingSpec declares the frontend's logs.
type LoggingSpec struct {
	// claimName names a PersistentVolumeClaim in the pipeline's namespace,
	// made by the user, that the frontend writes its logs to (under
	// <pipeline name>/) and the training job reads them from. A DNS label
	// of at most 59 characters: the pods' volume of it is "pvc-<claim>".
	// +required
	// +kubebuilder:validation:MaxLength=59
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	ClaimName string `json:"claimName"`

	// servedSampleRate is the share of served lists logged, in [0, 1],
	// chosen by a hash of the request id. Events are always logged.
	// Default 0.01.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	ServedSampleRate *float64 `json:"servedSampleRate,omitempty"`

	// maxFileMB is the size at which a log file is rotated. Default 64.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4096
	MaxFileMB *int32 `json:"maxFileMB,omitempty"`

	// maxFiles is how many rotated files of each log are kept, the newest.
	// Default 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxFiles *int32 `json:"maxFiles,omitempty"`
}

// TrainingSpec declares scheduled retraining.
type TrainingSpec struct {
	// schedule of the runs, in cron format.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Schedule string `json:"schedule"`

	// timeZone of the schedule, an IANA name.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	TimeZone *string `json:"timeZone,omitempty"`

	// suspend stops the runs.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// output is the directory, pvc://<claim>/<path>, under which each run
	// writes its artifacts, in a directory named after the run's Job.
	// +required
	// +kubebuilder:validation:MaxLength=1980
	// +kubebuilder:validation:Pattern=`^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))*/?$`
	Output string `json:"output"`

	// image of the training tools (rectrain). The operator's default tools
	// image when unset.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._/:@+-]*$`
	Image string `json:"image,omitempty"`

	// epochs of the two-tower model and the ranker. rectrain's default when
	// unset.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Epochs *int32 `json:"epochs,omitempty"`

	// qualityGate decides what a run does with models that do not beat
	// recommending the most popular items on the held-out end of the logs:
	// Enforce fails the run (status.training says why) and writes nothing a
	// rollout could serve; Allow writes them all the same. Default
	// Enforce.
	// +optional
	// +kubebuilder:default=Enforce
	QualityGate QualityGate `json:"qualityGate,omitempty"`

	// window is how far back from the newest logged event a run learns:
	// older events are left out, which bounds the run's memory and time.
	// Default 720h (30 days).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be positive"
	Window *metav1.Duration `json:"window,omitempty"`

	// resources of the training container.
	// +optional
	Resources *Resources `json:"resources,omitempty"`

	// activeDeadline bounds one run. Default 6h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="must be positive"
	ActiveDeadline *metav1.Duration `json:"activeDeadline,omitempty"`
}

// QualityGate is what a training run does with models that do not beat
// the popularity baseline.
// +kubebuilder:validation:Enum=Enforce;Allow
type QualityGate string

// Quality gates.
const (
	// QualityGateEnforce fails the run.
	QualityGateEnforce QualityGate = "Enforce"
	// QualityGateAllow writes the models all the same.
	QualityGateAllow QualityGate = "Allow"
)

// TuningSpec declares an online search of live weights.
type TuningSpec struct {
	// parameters are the weights searched, each between min and max.
	// +required
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Parameters []TuningParameter `json:"parameters"`

	// objective weighs the event rates per impression that trials are
	// compared by. Default: the value weights served when a trial starts
	// (spec.ranking.weights).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][a-z0-9_]{0,62}$'))",message="spec.tuning.objective keys must be event names"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k] >= -1000.0 && self[k] <= 1000.0)",message="spec.tuning.objective values must be finite numbers between -1000 and 1000"
	Objective map[string]float64 `json:"objective,omitempty"`

	// guardrails make a trial infeasible when an event's rate per
	// impression exceeds its baseline's by more than a fraction: it is
	// never the best point, and the optimiser is told it did worse than
	// any trial measured.
	// +optional
	// +listType=map
	// +listMapKey=event
	// +kubebuilder:validation:MaxItems=8
	Guardrails []Guardrail `json:"guardrails,omitempty"`

	// traffic is each trial arm's share of the users; its baseline arm
	// takes as much. Default 0.05.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Maximum=0.25
	Traffic *float64 `json:"traffic,omitempty"`

	// trialDuration is the least time a trial runs. Default 10m.
	// +optional
	TrialDuration *metav1.Duration `json:"trialDuration,omitempty"`

	// minImpressions is how many impressions each arm of a trial must earn
	// before it ends. Default 1000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	MinImpressions *int64 `json:"minImpressions,omitempty"`

	// maxTrials ends the search. Default 20.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxTrials *int32 `json:"maxTrials,omitempty"`

	// concurrentTrials run side by side, each with its own baseline arm.
	// Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4
	ConcurrentTrials *int32 `json:"concurrentTrials,omitempty"`

	// promote: Manual (default) reports the best point in status.tuning;
	// Auto also serves it once the search ends, through spec.rollout's
	// canary when one is declared.
	// +optional
	Promote TuningPromote `json:"promote,omitempty"`

	// seed of the optimiser's initial design. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Seed int64 `json:"seed,omitempty"`
}

// TuningPromote says what becomes of the best point.
// +kubebuilder:validation:Enum=Manual;Auto
type TuningPromote string

// Promotion policies of spec.tuning.
const (
	TuningPromoteManual TuningPromote = "Manual"
	TuningPromoteAuto   TuningPromote = "Auto"
)

// TuningParameter is one dimension of the search box.
// +kubebuilder:validation:XValidation:rule="self.min < self.max",message="spec.tuning.parameters[]: min must be below max"
type TuningParameter struct {
	// path of the weight: ranking.weights.<event> or
	// retrieval.sources.<source name>.weight.
	// +required
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:Pattern=`^(ranking\.weights\.[a-z][a-z0-9_]{0,62}|retrieval\.sources\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.weight)$`
	Path string `json:"path"`

	// min is the least value tried.
	// +required
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Min float64 `json:"min"`

	// max is the largest value tried.
	// +required
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	Max float64 `json:"max"`
}

// RolloutSpec declares how a live change is canaried.
// +kubebuilder:validation:XValidation:rule="self.steps.map(s, s.traffic).isSorted()",message="spec.rollout.steps: each step's traffic must be at least the previous step's"
type RolloutSpec struct {
	// steps are the canary arm's shares of the users, in order; each lasts
	// at least its pause and until both arms earned analysis.minImpressions
	// in it. After the last the change is promoted unless the analysis
	// found it worse. A baseline arm of the same share serves the stable
	// config, so both arms are measured over the same time and users drawn
	// alike; the shares of spec.experiments and twice the step's share must
	// fit in all users, or the step's share is cut to fit.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	Steps []RolloutStep `json:"steps"`

	// analysis sets what is compared and how sure it must be.
	// +optional
	Analysis RolloutAnalysis `json:"analysis,omitempty"`

	// progressDeadline, when set, is how long a canary may run without a
	// decision (too little traffic, a last step held while it trails):
	// past it the canary is rolled back with reason
	// ProgressDeadlineExceeded. Unset: it waits.
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
}

// RolloutStep is one share of users the canary is served to.
type RolloutStep struct {
	// traffic is the canary arm's share of the users, more than 0 and at
	// most 0.5 (the baseline arm takes as much).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Maximum=0.5
	Traffic float64 `json:"traffic"`

	// pause is the least time the step lasts. Default: no least time.
	// +optional
	Pause *metav1.Duration `json:"pause,omitempty"`
}

// RolloutAnalysis compares the canary arm with the baseline arm. The
// objective is Σ weight × (events of that type per impression), from the
// per-arm counts the frontend pods report; an engagement is counted for the
// arm that served the item. The comparison is a sequential test (a
// mixture sequential probability ratio test) that may be read at any time
// without raising its false-alarm rate: the canary is aborted as soon as it
// is worse with the given confidence, at any step.
type RolloutAnalysis struct {
	// minImpressions is how many impressions each arm must earn in each
	// step, and in all before any verdict. Default 1000.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	MinImpressions *int64 `json:"minImpressions,omitempty"`

	// objective weighs the event rates per impression. Default: the
	// stable config's own value weights (spec.ranking.weights before the
	// change), so that a change of weights does not move the yardstick.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][a-z0-9_]{0,62}$'))",message="spec.rollout.analysis.objective keys must be event names"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k] >= -1000.0 && self[k] <= 1000.0)",message="spec.rollout.analysis.objective values must be finite numbers between -1000 and 1000"
	Objective map[string]float64 `json:"objective,omitempty"`

	// maxObjectiveDrop is the drop of the objective, as a fraction of the
	// baseline's, that is tolerated: the canary is aborted when its
	// objective is below the baseline's by more than this. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	MaxObjectiveDrop *float64 `json:"maxObjectiveDrop,omitempty"`

	// guardrails abort the canary when an event's rate per impression
	// rises above the baseline's by more than a fraction (for example
	// see_less by 0.1), whatever the objective.
	// +optional
	// +listType=map
	// +listMapKey=event
	// +kubebuilder:validation:MaxItems=8
	Guardrails []Guardrail `json:"guardrails,omitempty"`

	// confidence of a verdict that the canary is worse: 1 minus the
	// chance of aborting a canary that is not. Default 0.95.
	// +optional
	// +kubebuilder:validation:Minimum=0.5
	// +kubebuilder:validation:Maximum=0.9999
	Confidence *float64 `json:"confidence,omitempty"`
}

// Guardrail bounds one event's rate per impression.
type Guardrail struct {
	// event type, such as see_less.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_]{0,62}$`
	// +kubebuilder:validation:MaxLength=63
	Event string `json:"event"`

	// maxIncrease is how much the canary's rate may exceed the baseline's,
	// as a fraction of it.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	MaxIncrease float64 `json:"maxIncrease"`
}

// EventsSpec protects the events API.
type EventsSpec struct {
	// writeTokenSecretRef names a Secret key in the pipeline's namespace
	// holding a token: POST /v1/events then requires "Authorization: Bearer
	// <token>" and answers 401 otherwise. The token reaches the frontend's
	// pods as an environment variable, never the ConfigMap. Reads
	// (recommendations) stay open. Unset: anyone who reaches the frontend
	// may post events.
	// +optional
	WriteTokenSecretRef *SecretKeyRef `json:"writeTokenSecretRef,omitempty"`
}

// NetworkSpec names the peers that may reach the stages' HTTP port. The
// operator's own namespace may always reach it: it reads each pod's
// /v1/status.
type NetworkSpec struct {
	// clients may call the frontend's client API (recommendations and
	// events) on its HTTP port. Unset: anyone.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Clients []NetworkPeer `json:"clients,omitempty"`

	// monitoring may scrape every stage's HTTP port (/metrics); on the
	// frontend, beside the clients. Unset: anyone may reach the HTTP port of
	// the retrieval and ranker stages, and of the frontend unless clients
	// is set.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Monitoring []NetworkPeer `json:"monitoring,omitempty"`
}

// NetworkPeer selects pods as a NetworkPolicy peer does: the pods matching
// podSelector in the namespaces matching namespaceSelector; podSelector
// alone selects pods of the pipeline's namespace, namespaceSelector alone
// every pod of the namespaces.
// +kubebuilder:validation:XValidation:rule="has(self.namespaceSelector) || has(self.podSelector)",message="a peer needs a namespaceSelector, a podSelector or both"
type NetworkPeer struct {
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`
}

// ExperimentSpec is one arm of an experiment.
// +kubebuilder:validation:XValidation:rule="!has(self.rerank) || !has(self.rerank.newItemRisk)",message="spec.experiments[].rerank.newItemRisk: a new item's risk is the pipeline's (spec.rerank.newItemRisk), not an arm's"
type ExperimentSpec struct {
	// name of the arm, a DNS label other than "control" that does not
	// begin with "rollout-" or "tuning-".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self != 'control'",message="control names the users in no arm"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('rollout-')",message="spec.experiments[].name: names beginning with rollout- are the arms of spec.rollout's canaries"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('tuning-')",message="spec.experiments[].name: names beginning with tuning- are the arms of spec.tuning's trials"
	Name string `json:"name"`

	// traffic is the arm's share of the users, more than 0 and at most 1.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Maximum=1
	Traffic float64 `json:"traffic"`

	// weights override spec.ranking.weights, event by event.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][a-z0-9_]{0,62}$'))",message="experiment weights keys must be event names"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k] >= -1000.0 && self[k] <= 1000.0)",message="experiment weights values must be finite numbers between -1000 and 1000"
	Weights map[string]float64 `json:"weights,omitempty"`

	// sources override retrieval sources' weight and limit, by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Sources []SourceOverrideSpec `json:"sources,omitempty"`

	// rerank, when set, replaces spec.rerank for the arm.
	// +optional
	Rerank *RerankSpec `json:"rerank,omitempty"`

	// firstStageModel, when set, names the entry of spec.models the first
	// stage ranks the arm's users with: the ranker-first pods load it
	// beside their own model (setting or clearing it rolls that stage).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	FirstStageModel string `json:"firstStageModel,omitempty"`

	// secondStageModel, when set, names the entry of spec.models the
	// second stage ranks the arm's users with: the ranker-second pods load
	// it beside their own model (setting or clearing it rolls that stage).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	SecondStageModel string `json:"secondStageModel,omitempty"`
}

// SourceOverrideSpec changes one retrieval source in an arm.
type SourceOverrideSpec struct {
	// name of a source of spec.retrieval.sources.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// weight replaces the source's weight.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Weight *float64 `json:"weight,omitempty"`

	// limit replaces the source's limit.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Limit *int32 `json:"limit,omitempty"`
}

// RuntimeSpec selects the serving runtime.
type RuntimeSpec struct {
	// image is the recserve image. The operator's default runtime image when
	// unset.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9][a-zA-Z0-9._/:@+-]*$`
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the stage containers. Kubernetes' default when unset.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
}

// DataSpec locates the catalog and the state store.
type DataSpec struct {
	// catalog is the item catalog: ids, authors, creation times, features
	// and integrity risk.
	// +required
	Catalog CatalogSpec `json:"catalog"`

	// store holds real-time state: follows, recent engagements, counters.
	// +optional
	Store StoreSpec `json:"store,omitempty"`
}

// CatalogSpec locates the item catalog.
type CatalogSpec struct {
	// uri of the catalog: pvc://<claim>/<path> (mounted read-only into the
	// pods), file:///<path> on the image, or http(s)://.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))*/?|file://(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))+/?|https?://[^/\s@]+(/[^\s]*)?)$`
	URI string `json:"uri"`
}

// StoreType names a state store backend.
// +kubebuilder:validation:Enum=Memory;Redis
type StoreType string

// Store backends.
const (
	// StoreMemory keeps state in the frontend pod's memory with an
	// append-only log on disk: an emptyDir, which survives container
	// restarts but not the pod's replacement, or the claim of
	// spec.data.store.memory.claimName, which survives both; one frontend
	// replica.
	StoreMemory StoreType = "Memory"
	// StoreRedis keeps state in Redis, shared by every replica.
	StoreRedis StoreType = "Redis"
)

// StoreSpec selects the real-time state store.
// +kubebuilder:validation:XValidation:rule="self.type == 'Redis' ? has(self.redis) : !has(self.redis)",message="spec.data.store.redis is required when spec.data.store.type is Redis and must be unset otherwise"
// +kubebuilder:validation:XValidation:rule="self.type == 'Redis' ? !has(self.memory) : true",message="spec.data.store.memory must be unset when spec.data.store.type is Redis"
type StoreSpec struct {
	// type of the store.
	// +optional
	// +kubebuilder:default=Memory
	Type StoreType `json:"type,omitempty"`

	// memory configures the Memory store.
	// +optional
	Memory *MemoryStoreSpec `json:"memory,omitempty"`

	// redis configures the Redis store.
	// +optional
	Redis *RedisStoreSpec `json:"redis,omitempty"`
}

// MemoryStoreSpec configures the Memory state store.
type MemoryStoreSpec struct {
	// claimName names a PersistentVolumeClaim in the pipeline's namespace,
	// made by the user, that holds the frontend's event log, so that
	// acknowledged events survive the frontend pod's replacement (a node
	// drain, a rollout). The frontend then rolls out by recreating its one
	// pod: the log has one writer at a time. Unset: an emptyDir.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ClaimName string `json:"claimName,omitempty"`
}

// RedisStoreSpec configures the Redis state store.
type RedisStoreSpec struct {
	// address is host:port of the Redis server.
	// +required
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9.-]+:[0-9]{1,5}$`
	Address string `json:"address"`

	// passwordSecretRef names a key of a Secret in the pipeline's namespace
	// that holds the Redis password.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`

	// db is the Redis logical database.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	DB int32 `json:"db,omitempty"`

	// keyPrefix is prepended to every key, so that pipelines can share one
	// Redis. <namespace>/<name>/ when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	KeyPrefix string `json:"keyPrefix,omitempty"`
}

// SecretKeyRef names one key of a Secret in the pipeline's namespace.
type SecretKeyRef struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key within the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// ModelSpec names a model artifact: a safetensors file and its JSON manifest.
type ModelSpec struct {
	// name by which sources and stages reference the model; a DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// uri of the artifact: pvc://<claim>/<path>, file:///<path>, or
	// https:// of a .tar.gz (not plain http: a model is code the pods run).
	// No path segment may be "." or "..", no URI may hold white space or,
	// in a URL, credentials (user:password@): the rendered config is a
	// ConfigMap anyone who reads the namespace can read. Changing it rolls
	// the stages that load it.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))*/?|file://(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))+/?|https://[^/\s@]+(/[^\s]*)?)$`
	URI string `json:"uri"`
}

// RetrievalSpec declares the candidate sources.
type RetrievalSpec struct {
	// candidates is the budget after mixing the sources and removing
	// duplicates and already-seen items.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Candidates int32 `json:"candidates"`

	// sources produce candidates in parallel, each under its own deadline;
	// a failing source shrinks the candidate set and never fails a request.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Sources []SourceSpec `json:"sources"`

	StageSpec `json:",inline"`
}

// SourceType names a kind of candidate source.
// +kubebuilder:validation:Enum=FollowedAuthorsRecent;TwoTowerANN;ItemToItemANN;Popular;Precomputed
type SourceType string

// Candidate source types.
const (
	// SourceFollowedAuthorsRecent yields recent items of the authors the user
	// follows, in real time.
	SourceFollowedAuthorsRecent SourceType = "FollowedAuthorsRecent"
	// SourceTwoTowerANN embeds the user with the two-tower model's user
	// tower and searches the item embeddings with HNSW.
	SourceTwoTowerANN SourceType = "TwoTowerANN"
	// SourceItemToItemANN searches items near the user's recent engagements.
	SourceItemToItemANN SourceType = "ItemToItemANN"
	// SourcePopular yields popular items with time decay.
	SourcePopular SourceType = "Popular"
	// SourcePrecomputed yields lists computed off-peak for chosen users.
	SourcePrecomputed SourceType = "Precomputed"
)

// SourceSpec declares one candidate source.
// +kubebuilder:validation:XValidation:rule="self.type in ['TwoTowerANN', 'ItemToItemANN'] ? has(self.model) : !has(self.model)",message="model is required for the TwoTowerANN and ItemToItemANN source types and must be unset for the others"
// +kubebuilder:validation:XValidation:rule="!has(self.maxAge) || self.type == 'FollowedAuthorsRecent'",message="maxAge applies only to the FollowedAuthorsRecent source type"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || self.type == 'Popular'",message="window applies only to the Popular source type"
// +kubebuilder:validation:XValidation:rule="!has(self.seedItems) || self.type == 'ItemToItemANN'",message="seedItems applies only to the ItemToItemANN source type"
// +kubebuilder:validation:XValidation:rule="!has(self.uri) || self.type == 'Precomputed'",message="uri applies only to the Precomputed source type"
// +kubebuilder:validation:XValidation:rule="!has(self.ef) || self.type in ['TwoTowerANN', 'ItemToItemANN']",message="ef applies only to the TwoTowerANN and ItemToItemANN source types"
type SourceSpec struct {
	// name of the source, unique in the pipeline; a DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// type of the source.
	// +required
	Type SourceType `json:"type"`

	// weight of the source's share of the candidate budget when mixing.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Weight float64 `json:"weight"`

	// limit is the most candidates the source returns.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Limit int32 `json:"limit"`

	// model names the two-tower model of an ANN source.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Model string `json:"model,omitempty"`

	// maxAge of the followed authors' items (FollowedAuthorsRecent).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('8760h')",message="maxAge must be positive and at most 8760h"
	MaxAge *metav1.Duration `json:"maxAge,omitempty"`

	// window of the popularity decay (Popular): the half-life of an
	// engagement's contribution.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('8760h')",message="window must be positive and at most 8760h"
	Window *metav1.Duration `json:"window,omitempty"`

	// seedItems is how many of the user's recent engagements seed the
	// search (ItemToItemANN).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=200
	SeedItems *int32 `json:"seedItems,omitempty"`

	// ef is the candidate list of the HNSW search (efSearch) of an ANN
	// source: the recall/latency knob. Unset, the search keeps as many
	// candidates as it returns. Below limit, it keeps ef and returns the
	// best limit of all the items it scores on its way: less CPU, fewer of
	// the true nearest items past the first ef.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Ef *int32 `json:"ef,omitempty"`

	// uri of the precomputed lists (Precomputed): a JSON Lines file of
	// {user, items}. Unset, with spec.precompute, the source proposes the
	// user's list of the last precompute run, kept in the state store.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))*/?|file://(/([^/\s.][^/\s]*|\.[^/\s.][^/\s]*|\.\.[^/\s]+))+/?|https?://[^/\s@]+(/[^\s]*)?)$`
	URI string `json:"uri,omitempty"`

	// timeout is the source's deadline; on expiry the request goes on
	// without it. 50ms when unset.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('10s')",message="timeout must be positive and at most 10s"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// RankingSpec declares the rankers.
type RankingSpec struct {
	// firstStage is the light ranker, a two-tower model distilled from the
	// second stage.
	// +required
	FirstStage RankerSpec `json:"firstStage"`

	// secondStage is the multi-task multi-label ranker.
	// +required
	SecondStage RankerSpec `json:"secondStage"`

	// weights of the second-stage value, by event: value = Σ weight ×
	// P(event). Negative weights penalise events such as see_less. Keys are
	// head names of the second-stage model. Changing them does not restart
	// any pod.
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z][a-z0-9_]{0,62}$'))",message="spec.ranking.weights keys must be event names: lower case letters, digits and underscores, starting with a letter"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k] >= -1000.0 && self[k] <= 1000.0)",message="spec.ranking.weights values must be finite numbers between -1000 and 1000"
	Weights map[string]float64 `json:"weights"`

	// freshness keeps items just published by authors a user follows
	// through both rankers' cuts and puts up to slots of them, the newest,
	// at the head of the user's list (the rerank rules apply after: the
	// author gap may move them down, integrity rules demote or drop
	// them). The models know nothing of a new item and score it low, so
	// without it a followed author's new post rarely reaches the feed.
	// +optional
	Freshness *FreshnessSpec `json:"freshness,omitempty"`
}

// FreshnessSpec is the policy for followed authors' new items.
type FreshnessSpec struct {
	// maxAge is how new an item must be.
	// +required
	MaxAge metav1.Duration `json:"maxAge"`

	// slots is how many such items may lead a list. Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Slots *int32 `json:"slots,omitempty"`
}

// RankerSpec declares one ranking stage.
type RankerSpec struct {
	// model names the stage's model in spec.models.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Model string `json:"model"`

	// keep is how many candidates the stage passes on.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20000
	Keep int32 `json:"keep"`

	// shadow is a candidate model of the same kind that ranks a share of
	// the requests beside model and is never served: status.shadow reports
	// how its order agrees with the served one. The stage's pods load it
	// (adding or removing it rolls that stage alone).
	// +optional
	Shadow *ShadowSpec `json:"shadow,omitempty"`

	StageSpec `json:",inline"`
}

// ShadowSpec is a model ranked beside a stage's own, never served.
type ShadowSpec struct {
	// model names an entry of spec.models other than the stage's model.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Model string `json:"model"`

	// fraction of the stage's requests the shadow also ranks. Default 0.1.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Maximum=1
	Fraction *float64 `json:"fraction,omitempty"`
}

// StageSpec sizes a stage's pods.
type StageSpec struct {
	// scaling of the stage. One replica when unset.
	// +optional
	Scaling *ScalingSpec `json:"scaling,omitempty"`

	// resources of the stage container. Requests of 100m CPU and 256Mi
	// memory when unset; without a memory limit the container is limited
	// to four times its memory request, and at least 4Gi.
	// +optional
	Resources *Resources `json:"resources,omitempty"`
}

// Resources are a stage container's compute resources, as a container's
// requests and limits. The type is the pipeline's own rather than
// corev1.ResourceRequirements so that the API server can check the
// quantities: CEL over an unbounded ResourceList exceeds the CRD's cost
// budget, over at most 6 named resources it does not. The API server
// estimates each string operation on a quantity as one on the longest
// string a request may hold, so the rules convert none they need not:
// an integer is compared as one, a string parsed as a quantity.
// +kubebuilder:validation:XValidation:rule="!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || !quantity(string(self.limits[k])).isLessThan(quantity(string(self.requests[k]))))",message="requests must not exceed limits"
type Resources struct {
	// requests of the container; 100m CPU and 256Mi memory when unset.
	// +optional
	// +kubebuilder:validation:MaxProperties=6
	// +kubebuilder:validation:XValidation:rule="self.all(k, type(self[k]) == int ? self[k] >= 0 : isQuantity(self[k]) && !quantity(self[k]).isLessThan(quantity('0')))",message="requests must be quantities (500m, 2Gi) and not negative"
	Requests map[corev1.ResourceName]intstr.IntOrString `json:"requests,omitempty"`

	// limits of the container; without a memory limit, four times the
	// memory request and at least 4Gi.
	// +optional
	// +kubebuilder:validation:MaxProperties=6
	// +kubebuilder:validation:XValidation:rule="self.all(k, type(self[k]) == int ? self[k] > 0 : isQuantity(self[k]) && quantity(self[k]).isGreaterThan(quantity('0')))",message="limits must be quantities (500m, 2Gi) and positive"
	Limits map[corev1.ResourceName]intstr.IntOrString `json:"limits,omitempty"`
}

// ScalingSpec sets a fixed replica count or autoscaling.
// +kubebuilder:validation:XValidation:rule="!(has(self.replicas) && has(self.autoscaling))",message="set either replicas or autoscaling, not both"
type ScalingSpec struct {
	// replicas is a fixed replica count.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	Replicas *int32 `json:"replicas,omitempty"`

	// autoscaling scales the stage with a HorizontalPodAutoscaler, on CPU,
	// on requests per second per pod or on other per-pod metrics.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`
}

// RequestsPerSecondMetric is the per-pod metric that
// autoscaling.requestsPerSecond reads through the custom metrics API
// (custom.metrics.k8s.io): the requests a stage pod serves per second, as a
// metrics adapter derives it from the pod's request counters
// (docs/autoscaling.md).
const RequestsPerSecondMetric = "recpipeline_requests_per_second"

// AutoscalingSpec configures a HorizontalPodAutoscaler. It scales on CPU,
// on requests per second per pod, on other per-pod metrics, or on several
// of them; with several, the autoscaler takes the largest replica count any
// of them asks for. CPU counts when targetCPUUtilization is set, or when
// neither requestsPerSecond nor metrics is (at 70%).
// +kubebuilder:validation:XValidation:rule="self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.requestsPerSecond) || !has(self.metrics) || !self.metrics.exists(m, m.name == 'recpipeline_requests_per_second')",message="metrics must not list recpipeline_requests_per_second when requestsPerSecond is set: keep one of them"
type AutoscalingSpec struct {
	// minReplicas is the lower bound.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MinReplicas int32 `json:"minReplicas"`

	// maxReplicas is the upper bound.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReplicas int32 `json:"maxReplicas"`

	// targetCPUUtilization is the average CPU utilisation, in percent of the
	// request, the autoscaler aims for. When unset, CPU counts only if
	// neither requestsPerSecond nor metrics is set, and then at 70.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`

	// requestsPerSecond scales on the requests each pod of the stage serves
	// per second: the Pods metric recpipeline_requests_per_second of the
	// custom metrics API, which a metrics adapter such as
	// prometheus-adapter must serve (docs/autoscaling.md). Without one the
	// autoscaler reports FailedGetPodsMetric and does not scale on it.
	// +optional
	RequestsPerSecond *RequestsPerSecondTarget `json:"requestsPerSecond,omitempty"`

	// metrics scales on other per-pod metrics of the custom metrics API,
	// each averaged over the stage's pods (HPA metrics of type Pods).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	Metrics []PodsMetricTarget `json:"metrics,omitempty"`
}

// RequestsPerSecondTarget is the request rate a stage's pods aim for.
type RequestsPerSecondTarget struct {
	// target is the average requests per second per pod.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	Target int32 `json:"target"`
}

// PodsMetricTarget is a per-pod metric of the custom metrics API
// (custom.metrics.k8s.io) and the average value per pod to aim for.
type PodsMetricTarget struct {
	// name of the metric, as the metrics adapter serves it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z_:][A-Za-z0-9_:.-]*$`
	Name string `json:"name"`

	// target is the average value per pod, a positive quantity as a
	// string ("200", "500m", "1.5").
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",message="target must be a positive quantity as a string (\"200\", \"500m\")"
	Target string `json:"target"`

	// selector narrows the metric by its labels, as the metrics adapter
	// sees them; the adapter always restricts it to the stage's pods.
	// +optional
	Selector *MetricSelector `json:"selector,omitempty"`
}

// MetricSelector selects a metric's series by label, as the matchLabels of
// a label selector; the HPA passes it to the metrics adapter.
type MetricSelector struct {
	// matchLabels are the label values the series must carry. Keys must be
	// label names (queue, handler): the API server does not check them (a
	// rule over map keys would exceed the CRD's validation cost budget), and
	// the autoscaler reports FailedGetPodsMetric for a key it cannot parse.
	// +required
	// +kubebuilder:validation:MinProperties=1
	// +kubebuilder:validation:MaxProperties=8
	MatchLabels map[string]MetricLabelValue `json:"matchLabels"`
}

// MetricLabelValue is a label value of a metric selector.
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:Pattern=`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`
type MetricLabelValue string

// RerankSpec declares the final rules.
type RerankSpec struct {
	// size of the final list.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Size int32 `json:"size"`

	// rules applied to the ranked list by kind: IntegrityFilter rules first,
	// then IntegrityDownrank, then AuthorDiversity, so that the final list
	// keeps every rule's promise; rules of one kind apply in the order
	// listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Rules []RuleSpec `json:"rules,omitempty"`

	// newItemRisk is the integrity risk of an item published live (a
	// new_item event) that names none, so that the integrity rules apply
	// to items nobody has reviewed yet. An integrity event sets an item's
	// risk later; risk 1 takes it down. Default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	NewItemRisk *float64 `json:"newItemRisk,omitempty"`
}

// RuleType names a rerank rule.
// +kubebuilder:validation:Enum=AuthorDiversity;IntegrityFilter;IntegrityDownrank
type RuleType string

// Rerank rules.
const (
	// RuleAuthorDiversity keeps at least minGap other items between two
	// items of the same author.
	RuleAuthorDiversity RuleType = "AuthorDiversity"
	// RuleIntegrityFilter drops items whose integrity risk exceeds maxRisk.
	RuleIntegrityFilter RuleType = "IntegrityFilter"
	// RuleIntegrityDownrank multiplies the value of items whose integrity
	// risk exceeds above by factor.
	RuleIntegrityDownrank RuleType = "IntegrityDownrank"
)

// RuleSpec declares one rerank rule; each type takes its own parameters.
// +kubebuilder:validation:XValidation:rule="self.type == 'AuthorDiversity' ? has(self.minGap) : !has(self.minGap)",message="minGap is required for the AuthorDiversity rule and must be unset for the others"
// +kubebuilder:validation:XValidation:rule="self.type == 'IntegrityFilter' ? has(self.maxRisk) : !has(self.maxRisk)",message="maxRisk is required for the IntegrityFilter rule and must be unset for the others"
// +kubebuilder:validation:XValidation:rule="self.type == 'IntegrityDownrank' ? has(self.above) && has(self.factor) : !has(self.above) && !has(self.factor)",message="above and factor are required for the IntegrityDownrank rule and must be unset for the others"
type RuleSpec struct {
	// type of the rule.
	// +required
	Type RuleType `json:"type"`

	// minGap is the least number of other items between two items of one
	// author (AuthorDiversity).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MinGap *int32 `json:"minGap,omitempty"`

	// maxRisk is the highest integrity risk kept (IntegrityFilter).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	MaxRisk *float64 `json:"maxRisk,omitempty"`

	// above is the integrity risk from which items are downranked
	// (IntegrityDownrank).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	Above *float64 `json:"above,omitempty"`

	// factor multiplies the value of downranked items (IntegrityDownrank).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1
	Factor *float64 `json:"factor,omitempty"`
}

// RecPipelineStatus reports what the controller observed.
type RecPipelineStatus struct {
	// observedGeneration is the generation of the spec that the last full
	// successful reconcile acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Progressing, Degraded, SourcesHealthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// stages reports each stage's replicas and the config revisions its
	// ready pods serve.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Stages []StageStatus `json:"stages,omitempty"`

	// configRevision is the hash of the rendered runtime config of the
	// current spec: the revision every pod should serve.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ConfigRevision string `json:"configRevision,omitempty"`

	// readyStages counts the stages whose replicas are all available and
	// serve configRevision, as "ready/total".
	// +optional
	// +kubebuilder:validation:MaxLength=16
	ReadyStages string `json:"readyStages,omitempty"`

	// endpoint is the URL of the client API.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Endpoint string `json:"endpoint,omitempty"`

	// rollout reports the last canary of a live change (spec.rollout).
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`

	// shadow reports, per ranker stage with a shadow model, how the
	// shadow's order agreed with the served one, over the compared
	// requests the stage's ready pods counted since they started or the
	// shadow last changed.
	// +optional
	// +listType=map
	// +listMapKey=stage
	// +kubebuilder:validation:MaxItems=2
	Shadow []ShadowStatus `json:"shadow,omitempty"`

	// tuning reports the online search of spec.tuning.
	// +optional
	Tuning *TuningStatus `json:"tuning,omitempty"`

	// precompute reports the off-peak runs of spec.precompute.
	// +optional
	Precompute *PrecomputeStatus `json:"precompute,omitempty"`

	// training reports the scheduled runs of spec.training.
	// +optional
	Training *TrainingStatus `json:"training,omitempty"`
}

// PrecomputeStatus reports the precompute runs.
type PrecomputeStatus struct {
	// lastScheduleTime is when the last run was started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// lastSuccessTime is when the last successful run finished.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// users is how many lists the last successful run stored.
	// +optional
	Users int64 `json:"users,omitempty"`

	// duration of the last successful run.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// revision is the config revision the last successful run computed
	// its lists with; they are served only while it is served.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// hits and misses count, over the frontend pods' lives, the requests
	// answered from a precomputed list and those of users with none
	// fresh for them.
	// +optional
	Hits int64 `json:"hits,omitempty"`
	// +optional
	Misses int64 `json:"misses,omitempty"`

	// message says why the last run failed, when it did.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// TrainingStatus reports the training runs.
type TrainingStatus struct {
	// lastScheduleTime is when the last run was started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// lastSuccessTime is when the last successful run finished.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`

	// job names the newest finished run's Job, whose outcome the rest of
	// the status reports; the TrainingSucceeded or TrainingFailed Event
	// is emitted once per Job.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Job string `json:"job,omitempty"`

	// jobFinished is when that Job finished: only a Job that finished
	// later is reported next, so that deleting the newest Job never brings
	// an older run back.
	// +optional
	JobFinished *metav1.Time `json:"jobFinished,omitempty"`

	// artifact is the directory the last successful run wrote,
	// pvc://<claim>/<path>.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Artifact string `json:"artifact,omitempty"`

	// metrics are the last successful run's offline metrics (recall@K,
	// NDCG@K of the two-tower model and the funnel, and the popularity
	// baseline's), as rectrain reported them.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Metrics map[string]string `json:"metrics,omitempty"`

	// message says why the last run failed, when it did.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// TuningPhase is where a search stands.
// +kubebuilder:validation:Enum=Running;Finished;Blocked
type TuningPhase string

// Tuning phases.
const (
	// TuningRunning: trials are served or about to be.
	TuningRunning TuningPhase = "Running"
	// TuningFinished: maxTrials trials ended; best is the result.
	TuningFinished TuningPhase = "Finished"
	// TuningBlocked: the trials cannot be served (message says why).
	TuningBlocked TuningPhase = "Blocked"
)

// TuningStatus reports the search of spec.tuning.
type TuningStatus struct {
	// phase of the search.
	// +required
	Phase TuningPhase `json:"phase"`

	// specHash identifies the spec.tuning the trials ran under; another
	// starts the search again.
	// +required
	// +kubebuilder:validation:MaxLength=64
	SpecHash string `json:"specHash"`

	// trials in the order they started.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=100
	Trials []TuningTrial `json:"trials,omitempty"`

	// best is the trial the optimiser rates highest among the feasible
	// ones that ended.
	// +optional
	Best *TuningBest `json:"best,omitempty"`

	// message says what the search waits for or why it is blocked.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// TuningTrialState is where a trial stands.
// +kubebuilder:validation:Enum=Running;Done;Infeasible
type TuningTrialState string

// Trial states.
const (
	TrialRunning    TuningTrialState = "Running"
	TrialDone       TuningTrialState = "Done"
	TrialInfeasible TuningTrialState = "Infeasible"
)

// TuningTrial is one point served as an arm.
type TuningTrial struct {
	// name of the trial's arm; its baseline arm is named the same with
	// "trial" replaced by "base".
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// state of the trial.
	// +required
	State TuningTrialState `json:"state"`

	// slot is which pair of user slices the trial and its baseline take.
	// +optional
	Slot int32 `json:"slot"`

	// parameters are the values served, by path.
	// +required
	Parameters map[string]float64 `json:"parameters"`

	// startTime is when the trial began.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// endTime is when it ended.
	// +optional
	EndTime *metav1.Time `json:"endTime,omitempty"`

	// impressions earned by the trial arm and its baseline arm.
	// +optional
	Impressions int64 `json:"impressions"`
	// +optional
	BaselineImpressions int64 `json:"baselineImpressions"`

	// objective per impression of the trial arm and of its baseline.
	// +optional
	Objective float64 `json:"objective"`
	// +optional
	BaselineObjective float64 `json:"baselineObjective"`

	// difference is objective minus baselineObjective, and stdErr its
	// standard error, from the arms' counts over users.
	// +optional
	Difference float64 `json:"difference"`
	// +optional
	StdErr float64 `json:"stdErr"`

	// violation names the guardrail an infeasible trial broke.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Violation string `json:"violation,omitempty"`
}

// TuningBest is the search's best point.
type TuningBest struct {
	// trial that measured it.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Trial string `json:"trial"`

	// parameters by path.
	// +required
	Parameters map[string]float64 `json:"parameters"`

	// difference of the objective from its baseline, as the Gaussian
	// process estimates it at the point.
	// +optional
	Difference float64 `json:"difference"`

	// snippet is the point as spec YAML to commit.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Snippet string `json:"snippet,omitempty"`
}

// ShadowStatus is how a stage's shadow model agreed with its served model.
type ShadowStatus struct {
	// stage: ranker-first or ranker-second.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Stage string `json:"stage"`

	// model is the shadow model.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Model string `json:"model"`

	// compared counts the requests both models ranked.
	// +optional
	Compared int64 `json:"compared"`

	// overlap is the mean share of the served list the shadow also kept.
	// +optional
	Overlap float64 `json:"overlap"`

	// spearman is the mean rank correlation of the items both kept.
	// +optional
	Spearman float64 `json:"spearman"`
}

// RolloutPhase is where a canary stands.
// +kubebuilder:validation:Enum=Progressing;Promoted;Aborted;Superseded
type RolloutPhase string

// Rollout phases.
const (
	// RolloutProgressing: the candidate is served as an arm and analysed.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutPromoted: the candidate passed and is the stable config.
	RolloutPromoted RolloutPhase = "Promoted"
	// RolloutAborted: the candidate was worse; every user is served the
	// stable config until the spec changes again.
	RolloutAborted RolloutPhase = "Aborted"
	// RolloutSuperseded: the spec changed before a decision.
	RolloutSuperseded RolloutPhase = "Superseded"
)

// RolloutStatus reports a canary.
type RolloutStatus struct {
	// phase of the canary.
	// +required
	Phase RolloutPhase `json:"phase"`

	// candidateRevision is the hash of the live config analysed.
	// +required
	// +kubebuilder:validation:MaxLength=64
	CandidateRevision string `json:"candidateRevision"`

	// stableRevision is the hash of the live config it is compared with.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	StableRevision string `json:"stableRevision,omitempty"`

	// step is the index of the current (or last) step of spec.rollout.steps.
	// +optional
	Step int32 `json:"step"`

	// startTime is when the canary began.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// stepStartTime is when the step began.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`

	// stepStartImpressions is the fewer of the arms' impressions when the
	// step began.
	// +optional
	StepStartImpressions int64 `json:"stepStartImpressions,omitempty"`

	// arms are the canary and baseline arms, with what they earned since
	// the canary began.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=2
	Arms []RolloutArmStatus `json:"arms,omitempty"`

	// decision is the last verdict of the analysis, in words: what was
	// compared, with the numbers.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Decision string `json:"decision,omitempty"`

	// reason is a CamelCase word for the phase: Analysing, Promoted,
	// ObjectiveDropped, GuardrailExceeded, StagesPassedOver (the canary's
	// answers went without a ranker stage more often than the
	// baseline's), ProgressDeadlineExceeded, SpecChanged.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason,omitempty"`
}

// RolloutArmStatus is what one arm of a canary earned.
type RolloutArmStatus struct {
	// name of the arm as responses and metrics name it.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// revision is the hash of the live config the arm serves.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// traffic is the arm's share of the users.
	// +optional
	Traffic float64 `json:"traffic"`

	// requests served by the arm.
	// +optional
	Requests int64 `json:"requests"`

	// impressions on what the arm served.
	// +optional
	Impressions int64 `json:"impressions"`

	// objective per impression.
	// +optional
	Objective float64 `json:"objective"`
}

// StageStatus reports one stage.
type StageStatus struct {
	// name of the stage: frontend, retrieval, ranker-first, ranker-second.
	// +required
	// +kubebuilder:validation:MaxLength=32
	Name string `json:"name"`

	// replicas is the stage's desired replica count.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas counts ready pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// updatedReplicas counts pods of the current pod template.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`

	// configRevision is the revision all ready pods serve, empty while they
	// disagree.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ConfigRevision string `json:"configRevision,omitempty"`

	// revisions counts ready pods by the config revision they serve.
	// +optional
	// +listType=map
	// +listMapKey=revision
	// +kubebuilder:validation:MaxItems=16
	Revisions []RevisionCount `json:"revisions,omitempty"`
}

// RevisionCount is the number of ready pods serving one config revision.
type RevisionCount struct {
	// revision served; "unknown" for pods that have not reported one.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision"`

	// pods serving it.
	// +required
	Pods int32 `json:"pods"`
}

// RecPipelineList is a list of RecPipelines.
//
// +kubebuilder:object:root=true
type RecPipelineList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RecPipeline `json:"items"`
}
