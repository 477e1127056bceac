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
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// defaultSourceTimeout is a source's deadline when the spec sets none.
const defaultSourceTimeout = 50 * time.Millisecond

// Rendered is a pipeline's runtime config, encoded, with its revisions.
type Rendered struct {
	Config         *config.Config
	Bytes          []byte
	Revision       string
	DeployRevision string
	// StageRevisions are, by stage, the config.StageRevision of what each
	// stage loads: a stage's pod template carries its own, so that a change
	// rolls only the stages that load what changed.
	StageRevisions map[string]string
}

// renderConfig turns the spec into the runtime config every stage pod reads.
// It validates the result with the runtime's own validation, so that a spec
// the API server let through but the runtime would refuse never reaches a
// pod.
func renderConfig(rp *servingv1alpha1.RecPipeline) (*Rendered, error) {
	spec := &rp.Spec
	c := &config.Config{
		Version:  config.SchemaVersion,
		Pipeline: rp.Namespace + "/" + rp.Name,
		Deploy: config.Deploy{
			Catalog:   localURI(spec.Data.Catalog.URI),
			Store:     renderStore(rp),
			Endpoints: renderEndpoints(rp),
		},
		Live: config.Live{
			Retrieval: config.Retrieval{Candidates: int(spec.Retrieval.Candidates)},
			FirstStage: config.Ranker{
				Model:  spec.Ranking.FirstStage.Model,
				Keep:   int(spec.Ranking.FirstStage.Keep),
				Shadow: renderShadow(spec.Ranking.FirstStage.Shadow),
			},
			SecondStage: config.Ranker{
				Model:  spec.Ranking.SecondStage.Model,
				Keep:   int(spec.Ranking.SecondStage.Keep),
				Shadow: renderShadow(spec.Ranking.SecondStage.Shadow),
			},
			Weights: maps.Clone(spec.Ranking.Weights),
		},
	}
	for _, claim := range claims(rp) {
		c.Deploy.Volumes = append(c.Deploy.Volumes, config.ClaimMountPath(claim))
	}
	for _, m := range spec.Models {
		c.Deploy.Models = append(c.Deploy.Models, config.Model{Name: m.Name, URI: localURI(m.URI)})
	}
	for i := range spec.Retrieval.Sources {
		c.Live.Retrieval.Sources = append(c.Live.Retrieval.Sources, renderSource(&spec.Retrieval.Sources[i]))
	}
	c.Live.Rerank = renderRerank(&spec.Rerank)
	if f := spec.Ranking.Freshness; f != nil {
		c.Live.Freshness = &config.Freshness{MaxAge: config.Duration(f.MaxAge.Duration), Slots: int(ptr.Deref(f.Slots, 1))}
	}
	c.Live.ExperimentSalt = spec.ExperimentSalt
	for i := range spec.Experiments {
		c.Live.Experiments = append(c.Live.Experiments, renderExperiment(&spec.Experiments[i]))
	}
	if lg := spec.Logging; lg != nil {
		c.Deploy.Logging = renderLogging(rp)
		c.Live.ServedSampleRate = ptr.Deref(lg.ServedSampleRate, config.DefaultServedSampleRate)
	}
	if p := spec.Precompute; p != nil {
		c.Live.Precompute = renderPrecompute(p, spec.Rerank.Size)
	}
	return encodeConfig(c)
}

// defaultPrecomputeTTL is how long a precomputed list is served when
// spec.precompute.ttl is unset.
const defaultPrecomputeTTL = 24 * time.Hour

// renderPrecompute is how the frontend serves lists computed off-peak and
// for whom a run computes them; rerankSize is the default list size.
func renderPrecompute(p *servingv1alpha1.PrecomputeSpec, rerankSize int32) *config.Precompute {
	out := &config.Precompute{
		Serve:    string(p.Serve),
		TTL:      config.Duration(defaultPrecomputeTTL),
		Size:     int(ptr.Deref(p.Size, rerankSize)),
		UsersURI: localURI(p.Users.ListURI),
	}
	if out.Serve == "" {
		out.Serve = config.PrecomputeAlways
	}
	if p.TTL != nil {
		out.TTL = config.Duration(p.TTL.Duration)
	}
	if p.Users.ActiveWithin != nil {
		out.ActiveWithin = config.Duration(p.Users.ActiveWithin.Duration)
	}
	if p.Users.Top != nil {
		out.Top = int(*p.Users.Top)
	}
	return out
}

// renderLogging locates the frontend's logs: the pipeline's own directory
// of the logs claim, mounted at config.LogsDir (logsDir).
func renderLogging(rp *servingv1alpha1.RecPipeline) *config.Logging {
	lg := rp.Spec.Logging
	out := &config.Logging{Dir: "file://" + logsDir(rp)}
	if lg.MaxFileMB != nil {
		out.MaxFileBytes = int64(*lg.MaxFileMB) << 20
	}
	if lg.MaxFiles != nil {
		out.MaxFiles = int(*lg.MaxFiles)
	}
	return out
}

// logsDir is the directory, in a pod that mounts the logs claim at
// config.LogsDir, of the pipeline's logs.
func logsDir(rp *servingv1alpha1.RecPipeline) string {
	return config.LogsDir + "/" + rp.Name
}

func renderRerank(r *servingv1alpha1.RerankSpec) config.Rerank {
	out := config.Rerank{Size: int(r.Size), NewItemRisk: ptr.Deref(r.NewItemRisk, 0)}
	for i := range r.Rules {
		out.Rules = append(out.Rules, renderRule(&r.Rules[i]))
	}
	return out
}

// renderExperiment is an arm of the runtime config.
func renderExperiment(x *servingv1alpha1.ExperimentSpec) config.Experiment {
	out := config.Experiment{
		Name: x.Name, Traffic: x.Traffic, Weights: maps.Clone(x.Weights),
		FirstStageModel: x.FirstStageModel, SecondStageModel: x.SecondStageModel,
	}
	for _, o := range x.Sources {
		so := config.SourceOverride{Name: o.Name, Weight: o.Weight}
		if o.Limit != nil {
			so.Limit = ptr.To(int(*o.Limit))
		}
		out.Sources = append(out.Sources, so)
	}
	if x.Rerank != nil {
		r := renderRerank(x.Rerank)
		out.Rerank = &r
	}
	return out
}

// defaultShadowFraction is the share of requests a shadow model ranks when
// the spec sets none.
const defaultShadowFraction = 0.1

// renderShadow is a ranker's shadow in the runtime config.
func renderShadow(s *servingv1alpha1.ShadowSpec) *config.Shadow {
	if s == nil {
		return nil
	}
	return &config.Shadow{Model: s.Model, Fraction: ptr.Deref(s.Fraction, defaultShadowFraction)}
}

// renderEndpoints gives each stage that serves gRPC the address of its
// headless Service.
func renderEndpoints(rp *servingv1alpha1.RecPipeline) map[string]string {
	endpoints := map[string]string{}
	for _, stage := range Stages {
		if !config.ServesGRPC(stage) {
			continue
		}
		host := fmt.Sprintf("%s.%s.svc", ChildName(rp, stage), rp.Namespace)
		endpoints[stage] = net.JoinHostPort(host, strconv.Itoa(config.GRPCPort))
	}
	return endpoints
}

// renderSource is the runtime config of one candidate source.
func renderSource(s *servingv1alpha1.SourceSpec) config.Source {
	src := config.Source{
		Name:    s.Name,
		Type:    string(s.Type),
		Weight:  s.Weight,
		Limit:   int(s.Limit),
		Timeout: config.Duration(defaultSourceTimeout),
		Model:   s.Model,
	}
	if s.Timeout != nil {
		src.Timeout = config.Duration(s.Timeout.Duration)
	}
	if s.MaxAge != nil {
		src.MaxAge = config.Duration(s.MaxAge.Duration)
	}
	if s.Window != nil {
		src.Window = config.Duration(s.Window.Duration)
	}
	if s.SeedItems != nil {
		src.SeedItems = int(*s.SeedItems)
	}
	if s.Ef != nil {
		src.Ef = int(*s.Ef)
	}
	if s.URI != "" {
		src.URI = localURI(s.URI)
	}
	return src
}

// renderRule is the runtime config of one rerank rule.
func renderRule(r *servingv1alpha1.RuleSpec) config.Rule {
	rule := config.Rule{Type: string(r.Type)}
	if r.MinGap != nil {
		rule.MinGap = int(*r.MinGap)
	}
	if r.MaxRisk != nil {
		rule.MaxRisk = *r.MaxRisk
	}
	if r.Above != nil {
		rule.Above = *r.Above
	}
	if r.Factor != nil {
		rule.Factor = *r.Factor
	}
	return rule
}

// encodeConfig stamps c with its deploy revision, validates it with the
// runtime's own validation and encodes it.
func encodeConfig(c *config.Config) (*Rendered, error) {
	deployRevision, err := config.DeployRevisionOf(&c.Deploy)
	if err != nil {
		return nil, err
	}
	c.DeployRevision = deployRevision
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("failed to validate rendered config: %w", err)
	}
	b, err := config.Marshal(c)
	if err != nil {
		return nil, err
	}
	stages := map[string]string{}
	for _, stage := range config.SplitStages() {
		if stages[stage], err = c.StageRevision(stage); err != nil {
			return nil, err
		}
	}
	return &Rendered{Config: c, Bytes: b, Revision: config.Revision(b), DeployRevision: deployRevision, StageRevisions: stages}, nil
}

func renderStore(rp *servingv1alpha1.RecPipeline) config.Store {
	store := rp.Spec.Data.Store
	if store.Type != servingv1alpha1.StoreRedis || store.Redis == nil {
		return config.Store{Type: string(servingv1alpha1.StoreMemory)}
	}
	r := &config.RedisStore{
		Address:   store.Redis.Address,
		DB:        int(store.Redis.DB),
		KeyPrefix: store.Redis.KeyPrefix,
	}
	if r.KeyPrefix == "" {
		r.KeyPrefix = rp.Namespace + "/" + rp.Name + "/"
	}
	if store.Redis.PasswordSecretRef != nil {
		r.PasswordEnv = config.RedisPasswordEnv
	}
	return config.Store{Type: string(servingv1alpha1.StoreRedis), Redis: r}
}

// parsePVC splits pvc://<claim>/<path> into its claim and path.
func parsePVC(uri string) (claim, path string, ok bool) {
	rest, ok := strings.CutPrefix(uri, "pvc://")
	if !ok {
		return "", "", false
	}
	claim, path, _ = strings.Cut(rest, "/")
	return claim, path, claim != ""
}

// localURI maps a pvc:// URI to the file:// path where the stage pods mount
// the claim; other URIs pass through.
func localURI(uri string) string {
	claim, path, ok := parsePVC(uri)
	if !ok {
		return uri
	}
	local := "file://" + config.ClaimMountPath(claim)
	if path = strings.Trim(path, "/"); path != "" {
		local += "/" + path
	}
	return local
}
