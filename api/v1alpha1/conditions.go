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

// Condition types of a RecPipeline.
const (
	// ConditionReady is True when every stage has its desired replicas
	// available and nothing is degraded.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a rollout of the pod template or the
	// propagation of a new config revision to the pods is under way.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when a stage cannot reach the desired state,
	// for example because a new model does not load; the previous revision
	// keeps serving.
	ConditionDegraded = "Degraded"
	// ConditionSourcesHealthy is False when a retrieval source failed or
	// missed its deadline in more than 5% of the frontends' latest requests
	// (each frontend reports its last 1,000; at least 100 in all): the
	// pipeline serves, from fewer candidates. It does not change Ready.
	ConditionSourcesHealthy = "SourcesHealthy"
)

// Reasons of the SourcesHealthy condition.
const (
	// ReasonSourcesAnswer (True): every source answered in time often
	// enough.
	ReasonSourcesAnswer = "SourcesAnswer"
	// ReasonSourcesFailing (False): the message names the sources that
	// failed too often and their share of the requests.
	ReasonSourcesFailing = "SourcesFailing"
	// ReasonTooFewRequests (Unknown): the frontends have served too few
	// requests to tell.
	ReasonTooFewRequests = "TooFewRequests"
)

// Reasons of the Ready condition.
const (
	// ReasonServing (True): every stage has its desired replicas available.
	ReasonServing = "Serving"
	// ReasonStagesUnavailable (False): a stage lacks available replicas; the
	// message names the stages.
	ReasonStagesUnavailable = "StagesUnavailable"
	// ReasonDegraded (False): the Degraded condition is True; the message
	// repeats its message.
	ReasonDegraded = "Degraded"
)

// Reasons of the Progressing condition.
const (
	// ReasonRollingOut (True): a stage's Deployment rolls out a new pod
	// template; the message names the stages.
	ReasonRollingOut = "RollingOut"
	// ReasonPropagatingConfig (True): the pod templates are rolled out, but
	// the ready pods of a stage do not all serve the current config revision
	// yet; the message names the stages.
	ReasonPropagatingConfig = "PropagatingConfig"
	// ReasonAnalysingRollout (True): a live change is served as a canary
	// arm to a share of the users and analysed (status.rollout).
	ReasonAnalysingRollout = "AnalysingRollout"
	// ReasonComplete (False): every stage runs the current template and
	// serves the current config revision.
	ReasonComplete = "Complete"
)

// Reasons of the Degraded condition. When several problems are found, the
// reason names the first.
const (
	// ReasonAsExpected (False): no stage reports a problem.
	ReasonAsExpected = "AsExpected"
	// ReasonInvalidSpec (True): the spec does not render into a config the
	// runtime accepts; only a change of the spec fixes it.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonApplyFailed (True): a child object could not be applied; the
	// message carries the error.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonChildConflict (True): an object of a child's name exists and is
	// not owned by the pipeline; the operator leaves it alone.
	ReasonChildConflict = "ChildConflict"
	// ReasonRolloutStuck (True): a stage's Deployment exceeded its progress
	// deadline.
	ReasonRolloutStuck = "RolloutStuck"
	// ReasonStageFailing (True): a pod of a stage's current template keeps
	// failing (crash loop, image pull, non-zero exit); the message carries
	// the pod's termination message.
	ReasonStageFailing = "StageFailing"
	// ReasonRolloutAborted (True): the canary of the spec's live config
	// was worse than the stable config and was rolled back; the stable
	// config serves every user until the spec changes.
	ReasonRolloutAborted = "RolloutAborted"
	// ReasonConfigRejected (True): a pod refused the current config revision
	// and serves its previous one.
	ReasonConfigRejected = "ConfigRejected"
)
