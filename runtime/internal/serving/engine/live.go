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

package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/features"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rerank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
)

// live is one compiled live config. The rankers and sources are the ones
// of the process or, in the frontend, the other stages' through
// stageclient: a request runs the same path either way.
type live struct {
	cfg      *config.Config
	revision string
	names    []string // source names by index, for responses
	// sets lists the names of each set of sources (indexed by the
	// rank.SourceSet), shared by every response, when there are at most
	// maxSharedSets sources.
	sets   [][]string
	mixer  *sources.Mixer
	first  rank.Ranker
	second rank.Ranker
	rules  rerank.Chain
	ann    map[string]sources.Source // the ANN sources this process runs, by name
	// engagements is how many of the user's latest engagements a request
	// reads: what the features pool and what the ItemToItemANN sources
	// seed from.
	engagements int
	pending     sync.Pool // *pending, one request's buffers
	// arm names the arm this live config serves: config.ControlArm, or an
	// experiment's name; empty when the config has no experiments.
	arm string
	// arms are the experiments' live configs, in the control arm's; see
	// armFor.
	arms []armLive
	salt string
}

// Apply compiles cfg's live part against what Open loaded and swaps it in.
func (e *Engine) Apply(cfg *config.Config, revision string) error {
	l, err := e.compile(cfg)
	if err != nil {
		return err
	}
	l.setRevision(revision)
	e.live.Store(l)
	e.arms.keepOnly(l)
	e.shadow.keepOnly(&cfg.Live)
	if e.precomputed != nil {
		e.precomputed.keepOnly(cfg)
	}
	return nil
}

func (e *Engine) compile(cfg *config.Config) (*live, error) {
	l, err := e.compileArm(cfg)
	if err != nil {
		return nil, err
	}
	return l, e.compileExperiments(cfg, l)
}

// compileArm compiles the live config of one arm (the control arm's is
// cfg's own).
func (e *Engine) compileArm(cfg *config.Config) (*live, error) {
	lc := &cfg.Live
	l := &live{cfg: cfg, engagements: features.PoolSize}
	var err error
	if l.first, err = e.firstStage(lc); err != nil {
		return nil, err
	}
	if l.second, err = e.secondStage(lc); err != nil {
		return nil, err
	}
	if l.rules, err = rerank.Compile(lc.Rerank.Rules); err != nil {
		return nil, fmt.Errorf("live.rerank.rules: %w", err)
	}

	weighted := make([]sources.Weighted, 0, len(lc.Retrieval.Sources))
	l.ann = map[string]sources.Source{}
	for i, s := range lc.Retrieval.Sources {
		l.names = append(l.names, s.Name)
		l.engagements = max(l.engagements, s.SeedItems)
		src, err := e.source(s)
		if err != nil {
			return nil, fmt.Errorf("live.retrieval.sources[%d] (%s): %w", i, s.Name, err)
		}
		if src == nil {
			continue
		}
		if isANN(s) && e.roles.index {
			l.ann[s.Name] = src
		}
		weighted = append(weighted, sources.Weighted{
			Name: s.Name, Source: src, Weight: s.Weight, Limit: s.Limit,
			Timeout: time.Duration(s.Timeout), Index: i,
		})
	}
	if e.roles.frontend {
		// A mix left short of what the first stage keeps (a user who has
		// seen most of what the sources find, failing sources) is topped
		// up from the store's popular items and then the catalog.
		l.mixer = sources.NewMixer(weighted, e.cat, sources.MixerOptions{
			Observer: e.metrics,
			Backfill: sources.NewBackfill(e.state, e.cat),
			Min:      lc.FirstStage.Keep,
		})
	}
	if len(l.names) <= maxSharedSets {
		l.sets = make([][]string, 1<<len(l.names))
		for set := range l.sets {
			l.sets[set] = l.namesOf(rank.SourceSet(set))
		}
	}
	return l, nil
}

// maxSharedSets is how many sources a live config may have for its
// responses to share one list of names per set of sources (2^8 lists).
const maxSharedSets = 8

// sourceNames returns the names of the sources of set, a list that
// responses share and no one may modify.
func (l *live) sourceNames(set rank.SourceSet) []string {
	if int(set) < len(l.sets) {
		return l.sets[set]
	}
	return l.namesOf(set)
}

// namesOf lists the names of the sources of set, with no room to append
// in place: an append by a reader of a shared list copies it.
func (l *live) namesOf(set rank.SourceSet) []string {
	var names []string
	for i, name := range l.names {
		if set.Has(i) {
			names = append(names, name)
		}
	}
	return slices.Clip(names)
}

// firstStage is the first ranker: the process's own, the remote stage's in
// the frontend, or none.
func (e *Engine) firstStage(lc *config.Live) (rank.Ranker, error) {
	switch {
	case e.roles.first:
		build := func(path, model string) (rank.Ranker, error) {
			t, ok := e.towers[model]
			if !ok {
				return nil, fmt.Errorf("%s: %q is not a loaded TwoTower model", path, model)
			}
			return rank.NewFirst(t), nil
		}
		main, err := build("live.firstStage.model", lc.FirstStage.Model)
		if err != nil {
			return nil, err
		}
		r, err := e.withShadow(config.StageRankerFirst, "live.firstStage.shadow.model", lc.FirstStage, main, build)
		return withFreshness(r, lc.Freshness, false), err
	case e.roles.remote:
		return e.stages.First(), nil
	}
	return nil, nil
}

// withFreshness applies the live freshness policy to a ranker the process
// runs (a remote stage applies its own); lead puts the fresh items first.
func withFreshness(r rank.Ranker, f *config.Freshness, lead bool) rank.Ranker {
	if r == nil || f == nil {
		return r
	}
	return &rank.Fresh{Ranker: r, MaxAge: time.Duration(f.MaxAge), Slots: f.Slots, Lead: lead}
}

// secondStage is the second ranker with the live value: the process's own,
// the remote stage's in the frontend, or none.
func (e *Engine) secondStage(lc *config.Live) (rank.Ranker, error) {
	switch {
	case e.roles.second:
		build := func(path, model string) (rank.Ranker, error) {
			a := e.models[model]
			if a == nil || a.MTML == nil {
				return nil, fmt.Errorf("%s: %q is not a loaded MTML model", path, model)
			}
			s, err := rank.NewSecond(a, e.cat, e.towers[lc.RetrievalModel()], e.precision)
			if err != nil {
				return nil, fmt.Errorf("%s: model %q: %w", path, model, err)
			}
			value, err := rank.CompileValue(lc.Weights, s.Heads(), s.ReadsRetrieval())
			if err != nil {
				return nil, fmt.Errorf("live.weights: %w", err)
			}
			return s.WithValue(value), nil
		}
		main, err := build("live.secondStage.model", lc.SecondStage.Model)
		if err != nil {
			return nil, err
		}
		r, err := e.withShadow(config.StageRankerSecond, "live.secondStage.shadow.model", lc.SecondStage, main, build)
		return withFreshness(r, lc.Freshness, true), err
	case e.roles.remote:
		return e.stages.Second(), nil
	}
	return nil, nil
}

func isANN(s config.Source) bool {
	return s.Type == config.SourceTwoTowerANN || s.Type == config.SourceItemToItemANN
}

// source returns the source s names as this process runs it: nil for one
// it does not run.
func (e *Engine) source(s config.Source) (sources.Source, error) {
	switch {
	case isANN(s) && e.roles.index:
		return e.annSource(s)
	case isANN(s) && e.roles.remote:
		return e.stages.Source(s.Name), nil
	case !e.roles.frontend:
		return nil, nil
	}
	switch s.Type {
	case config.SourceFollowedAuthorsRecent:
		return sources.NewFollowedAuthorsRecent(s, e.state, e.cat)
	case config.SourcePopular:
		return sources.NewPopular(s, e.state, e.cat), nil
	case config.SourcePrecomputed:
		if s.URI == "" {
			// The lists of the precompute runs, merged as a source.
			if e.batch.lists == nil {
				return nil, fmt.Errorf("source %s reads the precompute runs' lists, which the %s store cannot keep", s.Name, e.storeTy)
			}
			return sources.NewStoredLists(e.batch.lists, e.cat), nil
		}
		return e.precomputed.source(s)
	}
	return nil, fmt.Errorf("unknown source type %q", s.Type)
}

func (e *Engine) annSource(s config.Source) (sources.Source, error) {
	t := e.towers[s.Model]
	if t == nil {
		return nil, fmt.Errorf("model %q is not a loaded TwoTower model", s.Model)
	}
	idx := e.indexes[s.Model]
	if idx == nil {
		return nil, fmt.Errorf("model %q has no ANN index: a source may search a new model only after a restart", s.Model)
	}
	if s.Type == config.SourceTwoTowerANN {
		return sources.NewTwoTowerANN(s, embedder{t: t, cat: e.cat}, idx), nil
	}
	// Requests carry the user's engagements: the store is not read.
	return sources.NewItemToItemANN(s, nil, e.cat, t.Vectors(), idx)
}

// embedder is a tower's user side as the sources' UserEmbedder: it embeds
// the user state the request carries.
type embedder struct {
	t   *rank.Tower
	cat *catalog.Catalog
}

// EmbedUser implements sources.UserEmbedder.
func (e embedder) EmbedUser(_ context.Context, req *sources.Request, dst []float32) ([]float32, error) {
	s := req.State
	if s == nil {
		return dst, errors.New("the request carries no user state")
	}
	uc := features.PooledUserContext(s.User, req.Time(), e.cat, s.Engagements, s.Follows)
	defer uc.Release()
	return e.t.UserEmbedding(uc, dst), nil
}
