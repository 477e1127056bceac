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

package config

import (
	"encoding/json"
	"fmt"
	"slices"
)

// This file is the contract between the operator and the runtime: every
// name, flag, path and port on which the Deployment the operator builds and
// the recserve process it runs must agree. Both sides import it; neither
// spells these values itself. The config document itself (Config, Status)
// is the other half of the contract.

// Stages a recserve process can run. A pipeline deployed by the operator
// runs the split stages, one Deployment each; StageAll runs the whole
// funnel in one process.
const (
	// StageAll runs every stage in one process (recserve's default).
	StageAll = "all"
	// StageFrontend serves the client API, owns the real-time state and
	// calls the other stages over gRPC.
	StageFrontend = "frontend"
	// StageRetrieval serves the ANN candidate sources to the frontend.
	StageRetrieval = "retrieval"
	// StageRankerFirst scores the mixed candidates with the first-stage
	// model.
	StageRankerFirst = "ranker-first"
	// StageRankerSecond scores the first stage's survivors with the
	// second-stage model.
	StageRankerSecond = "ranker-second"
)

// SplitStages returns the stages of a split deployment in funnel order from
// the client's side: frontend, retrieval, ranker-first, ranker-second. The
// slice is the caller's own.
func SplitStages() []string {
	return []string{StageFrontend, StageRetrieval, StageRankerFirst, StageRankerSecond}
}

// ValidStage reports whether recserve runs stage: StageAll or a split
// stage.
func ValidStage(stage string) bool {
	switch stage {
	case StageAll, StageFrontend, StageRetrieval, StageRankerFirst, StageRankerSecond:
		return true
	}
	return false
}

// ServesGRPC reports whether stage serves the gRPC API the frontend calls on
// GRPCPort: the retrieval and ranker stages. Each of them has an address in
// Deploy.Endpoints, keyed by its name.
func ServesGRPC(stage string) bool {
	switch stage {
	case StageRetrieval, StageRankerFirst, StageRankerSecond:
		return true
	}
	return false
}

// Command-line flags of recserve that the operator passes to every stage
// container, each as Arg(flag, value).
const (
	// FlagStage selects the stage the process runs (see ValidStage).
	FlagStage = "stage"
	// FlagConfigMap names the ConfigMap, in the namespace of PodNamespaceEnv,
	// whose ConfigKey holds the config; the process watches it.
	FlagConfigMap = "config-map"
	// FlagHTTPPort is the port of the HTTP server (HTTPPort by default).
	FlagHTTPPort = "http-port"
	// FlagGRPCPort is the port of the gRPC server (GRPCPort by default).
	FlagGRPCPort = "grpc-port"
	// FlagStateDir is the directory of the memory store's log (StateDir in
	// a pod).
	FlagStateDir = "state-dir"
	// FlagStageTokenFile is the file holding the pipeline's stage token
	// (StageTokenPath in a pod): the gRPC stages answer only calls that
	// carry it, and the frontend sends it.
	FlagStageTokenFile = "stage-token-file"
)

// Arg formats one command-line argument, "--flag=value".
func Arg(flag, value string) string {
	return "--" + flag + "=" + value
}

// Environment variables the operator sets in every stage container.
const (
	// PodNamespaceEnv holds the pod's namespace (from the downward API),
	// where the process finds the ConfigMap of FlagConfigMap.
	PodNamespaceEnv = "POD_NAMESPACE"
	// PodNameEnv holds the pod's name (from the downward API).
	PodNameEnv = "POD_NAME"
	// DeployRevisionEnv names the environment variable through which the
	// operator tells a pod the deploy revision of its pod template.
	DeployRevisionEnv = "RECPIPELINE_DEPLOY_REVISION"
	// RedisPasswordEnv names the environment variable holding the Redis
	// password, filled from the Secret the pipeline names.
	RedisPasswordEnv = "RECPIPELINE_REDIS_PASSWORD"
	// EventsTokenEnv holds the token POST /v1/events requires as a bearer
	// token, filled on the frontend from the Secret the pipeline names;
	// unset or empty, events need none.
	EventsTokenEnv = "RECPIPELINE_EVENTS_TOKEN"
)

// Ports every stage listens on.
const (
	// HTTPPort serves the client API, HealthzPath, ReadyzPath, MetricsPath
	// and StatusPath on every stage.
	HTTPPort = 8080
	// GRPCPort serves calls between stages (see ServesGRPC).
	GRPCPort = 9090
)

// HTTP paths every stage serves on HTTPPort.
const (
	// HealthzPath answers 200 while the process runs: the liveness probe.
	HealthzPath = "/healthz"
	// ReadyzPath answers 200 while the process serves a config and does not
	// drain, 503 otherwise: the readiness probe.
	ReadyzPath = "/readyz"
	// MetricsPath serves the process's Prometheus metrics.
	MetricsPath = "/metrics"
	// StatusPath answers the pod's serving state as JSON (Status); the
	// operator reads ConfigRevision from it to count pods per revision.
	StatusPath = "/v1/status"
	// PrecomputePath, on the frontend, starts a precompute run (POST, with
	// the events token when the pipeline has one; 202 with the run, 409
	// while another runs) and reports the last run (GET): a
	// PrecomputeRun.
	PrecomputePath = "/v1/precompute"
)

// Commands of recserve beside serving, which the operator's CronJobs run.
const (
	// CommandPrecompute ("recserve precompute --frontend URL") starts a
	// precompute run on the frontend at URL, with the token of
	// EventsTokenEnv, waits for it and exits 0 when it succeeded. It writes
	// the finished PrecomputeRun as JSON to TerminationMessagePath.
	CommandPrecompute = "precompute"
	// FlagFrontend is the frontend's base URL for CommandPrecompute.
	FlagFrontend = "frontend"
	// FlagPrecomputeWait is the longest a run of CommandPrecompute may
	// take: the frontend stops it then.
	FlagPrecomputeWait = "wait"
	// CommandExport ("recserve export --logs DIR --catalog URI --out DIR")
	// writes the frontend's logs (Deploy.Logging) as a dataset rectrain
	// reads.
	CommandExport = "export"
	// Flags of CommandExport: the logs directory, the catalog's URI, the
	// dataset directory written, and the window of event time exported
	// (back from the newest event logged).
	FlagExportLogs    = "logs"
	FlagExportCatalog = "catalog"
	FlagExportOut     = "out"
	FlagExportWindow  = "window"
)

// ConfigKey is the key, in the pipeline's ConfigMap, of the rendered config.
const ConfigKey = "config.json"

// StageTokenKey is the key, in the pipeline's stage-token Secret, of the
// token.
const StageTokenKey = "token"

// Paths inside a stage container. The root filesystem is read-only; the
// operator mounts a writable volume at each path below.
const (
	// StateDir holds the memory store's log: the operator mounts the
	// pipeline's claim (or an emptyDir) there and passes it as FlagStateDir.
	StateDir = "/var/lib/recpipeline/state"
	// VolumeRoot is where the operator mounts, read-only, each claim that a
	// pvc:// URI of the pipeline names, at ClaimMountPath; the rendered
	// config's file:// URIs and Deploy.Volumes point under it.
	VolumeRoot = "/var/lib/recpipeline/volumes"
	// StageTokenDir is where the operator mounts the pipeline's stage-token
	// Secret, read-only; the token is the file StageTokenKey in it
	// (StageTokenPath).
	StageTokenDir = "/var/run/recpipeline/stage-token"
	// StageTokenPath is the stage token's file, passed as
	// FlagStageTokenFile.
	StageTokenPath = StageTokenDir + "/" + StageTokenKey
	// TempDir is the process's scratch directory (os.TempDir).
	TempDir = "/tmp"
	// TerminationMessagePath is the file where the process writes why it
	// exits; the kubelet reports it in the pod's status, from where the
	// operator copies it into the pipeline's Degraded condition. It is the
	// Kubernetes default, which the operator's pod template keeps.
	TerminationMessagePath = "/dev/termination-log"
	// LogsDir is where the operator mounts the claim of the pipeline's
	// logs (spec.logging), writable on the frontend and read-only in the
	// training job; the frontend writes under LogsDir/<pipeline name>.
	LogsDir = "/var/lib/recpipeline/logs"
)

// ClaimMountPath is the directory where the claim named claim is mounted.
func ClaimMountPath(claim string) string {
	return VolumeRoot + "/" + claim
}

// What each stage loads at start, and so what rolls it. Every stage loads
// the catalog; the frontend owns the store and calls the other stages at
// their endpoints; the retrieval stage embeds and indexes the models its
// ANN sources search; each ranker loads its model (the second also the
// retrieval model its two_tower_score input reads). A change to what a
// stage loads gives it a new StageRevision, which the operator puts on the
// stage's pod template, so that exactly the stages that load it roll; any
// other change reaches the pods live through the ConfigMap. StageAll loads
// everything.

// StageModels names, sorted, the models stage loads: on StageAll every
// model Deploy lists, so that a live config may switch to any of them; on
// a split stage those the live config and its arms (a rollout's canary or
// an experiment may switch a model) name for that stage.
func (c *Config) StageModels(stage string) []string {
	need := map[string]bool{}
	if stage == StageAll || stage == "" {
		for _, m := range c.Deploy.Models {
			need[m.Name] = true
		}
	}
	for _, l := range c.Live.Lives() {
		switch stage {
		case StageRetrieval:
			for _, s := range l.Retrieval.Sources {
				if s.Model != "" {
					need[s.Model] = true
				}
			}
		case StageRankerFirst:
			need[l.FirstStage.Model] = true
			if sh := l.FirstStage.Shadow; sh != nil {
				need[sh.Model] = true
			}
		case StageRankerSecond:
			need[l.SecondStage.Model] = true
			if sh := l.SecondStage.Shadow; sh != nil {
				need[sh.Model] = true
			}
			if m := l.RetrievalModel(); m != "" {
				need[m] = true
			}
		}
	}
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lives are l and the live configs of its arms: every live config the
// pods of l's config may serve.
func (l *Live) Lives() []*Live {
	out := []*Live{l}
	for i := range l.Experiments {
		a := l.Arm(&l.Experiments[i])
		out = append(out, &a)
	}
	return out
}

// RetrievalModel is the model the second stage's two_tower_score reads:
// SecondStage.RetrievalModel, or that of the first TwoTowerANN source; ""
// when there is none.
func (l *Live) RetrievalModel() string {
	if m := l.SecondStage.RetrievalModel; m != "" {
		return m
	}
	for _, s := range l.Retrieval.Sources {
		if s.Type == SourceTwoTowerANN {
			return s.Model
		}
	}
	return ""
}

// stageLoad is what a split stage loads at start, hashed by StageRevision.
type stageLoad struct {
	Stage     string            `json:"stage"`
	Catalog   string            `json:"catalog"`
	Store     *Store            `json:"store,omitempty"`
	Endpoints map[string]string `json:"endpoints,omitempty"`
	Models    []Model           `json:"models,omitempty"`
}

// StageRevision hashes what stage loads at start (see StageModels): the
// operator's pod template of the stage carries it in DeployRevisionEnv, and
// a pod applies only configs of its own StageRevision. StageAll's is the
// DeployRevision of the whole deploy part.
func (c *Config) StageRevision(stage string) (string, error) {
	if stage == StageAll || stage == "" {
		return DeployRevisionOf(&c.Deploy)
	}
	load := stageLoad{Stage: stage, Catalog: c.Deploy.Catalog}
	if stage == StageFrontend {
		load.Store, load.Endpoints = &c.Deploy.Store, c.Deploy.Endpoints
	}
	for _, name := range c.StageModels(stage) {
		uri := ""
		for _, m := range c.Deploy.Models {
			if m.Name == name {
				uri = m.URI
			}
		}
		load.Models = append(load.Models, Model{Name: name, URI: uri})
	}
	b, err := json.Marshal(load)
	if err != nil {
		return "", fmt.Errorf("failed to encode what stage %s loads: %w", stage, err)
	}
	return Revision(b), nil
}
