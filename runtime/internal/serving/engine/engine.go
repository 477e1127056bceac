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

// Package engine is recserve's engine: the recommendation funnel, or the
// part of it one stage runs. Retrieval mixes the candidate sources, the
// first-stage ranker (two-tower) and the second (MTML, with its weighted
// value) each keep the best, and the rerank rules build the final list.
//
// The engine knows no transport: package server serves it over HTTP
// (Recommend, Ingest) and, on the split stages, over gRPC (Search, Rank).
// In the frontend of a split deployment the retrieval stage's ANN sources
// and the ranker stages are package stageclient's, behind the same
// sources.Source and rank.Ranker interfaces as the ones run in process, so
// a request runs one path whether a stage is local or remote. The user's
// state (store.UserState) is read once per request and travels with it.
//
// What the deploy part of the config names (catalog, store, models) is
// loaded once, at Open; item embeddings of every two-tower model are computed
// for the whole catalog and indexed with HNSW for the models an ANN source
// of the initial config searches, or the index is loaded from the file that
// WriteIndexes (`recserve index`) saved beside the model. The live part is
// compiled by Apply into an immutable value swapped atomically: a request
// runs entirely on the live value it started with.
//
// A request is served at the time of the engine's clock (live.clock, see
// clock.go): by default the newest event's, so that a historical log
// replayed into the store is served as it was live; retrieval left short by
// what the user has seen is topped up (sources.Backfill) to what the first
// stage keeps.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/datalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stageclient"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Options configure Open.
type Options struct {
	// StateDir holds the memory store's log. Required for the Memory store.
	StateDir string
	// ANN tunes the HNSW indexes; the package defaults when zero. A saved
	// index (IndexFile) built with other options is not loaded.
	ANN ann.Options
	// Registry receives the funnel's metrics; none when nil.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Stage is what the process serves (config.StageAll, the default, or
	// one of config.SplitStages).
	Stage string
	// StageCredentials go with the frontend's every call to the other
	// stages (the pipeline's stage token, see stageauth); none when nil.
	StageCredentials credentials.PerRPCCredentials
	// PrecomputedRefresh is how often the Precomputed sources' lists are
	// checked for a new version; DefaultPrecomputedRefresh when zero.
	PrecomputedRefresh time.Duration
	// Precision is the arithmetic of the second stage's products over
	// its candidates (model.Float32, the zero value, or model.BFloat16
	// where model.BFloat16Supported). The towers, the first stage and the
	// one-row products stay in float32: the item tower's vectors must match
	// the saved ANN index, and the rest costs little.
	Precision model.Precision

	// buildOnly builds every ANN index, ignoring the saved ones: for
	// WriteIndexes.
	buildOnly bool
}

// DefaultPrecomputedRefresh is how often Precomputed lists are checked for
// a new version by default.
const DefaultPrecomputedRefresh = time.Minute

// roles are what a process does, by its stage; the one place where a stage
// name decides anything in the engine.
type roles struct {
	// frontend owns the real-time state (the store), mixes the sources and
	// answers Recommend and Ingest.
	frontend bool
	// index builds the ANN indexes of the sources that search them and runs
	// those sources.
	index bool
	// first and second run the ranking stages in process.
	first, second bool
	// remote reaches the stages the process does not run over gRPC.
	remote bool
}

func rolesOf(stage string) (roles, error) {
	switch stage {
	case config.StageAll:
		return roles{frontend: true, index: true, first: true, second: true}, nil
	case config.StageFrontend:
		return roles{frontend: true, remote: true}, nil
	case config.StageRetrieval:
		return roles{index: true}, nil
	case config.StageRankerFirst:
		return roles{first: true}, nil
	case config.StageRankerSecond:
		return roles{second: true}, nil
	}
	return roles{}, fmt.Errorf("unknown stage %q", stage)
}

// Engine serves the funnel, or the part of it its stage runs. It knows no
// transport: package server serves it over HTTP and gRPC.
type Engine struct {
	log     *slog.Logger
	stage   string
	roles   roles
	cat     *catalog.Catalog
	state   store.Store
	storeTy string
	models  map[string]*model.Artifact
	towers  map[string]*rank.Tower
	indexes map[string]*ann.Index // by model, for the models an ANN source searches
	live    atomic.Pointer[live]
	metrics *metrics
	clock   *clock // the time requests are served at

	// precision is Options.Precision.
	precision model.Precision

	// base is how many items the loaded catalog held; items from base on
	// were published live, at most maxPublished of them.
	base, maxPublished int

	stages *stageclient.Stages // the other stages, in the frontend

	precomputed *precomputedCache // the Precomputed sources' lists, by URI
	batch       *batch            // precompute runs and their lists, in the frontend
	datalog     *datalog.Logger   // the frontend's logs of events and served lists; nil without deploy.logging
	arms        *armStats         // what each experiment arm served and the events it earned
	shadow      *shadowStats      // how the rankers' shadow models agreed with the served ones
	sources     sourceHealth      // which sources failed the latest requests

	addMu sync.Mutex // serialises new items: catalog ordinals and embeddings advance together

	stopRisks, risksDone chan struct{} // refreshRisks, on a shared store

	closeOnce sync.Once
	closeErr  error
}

// Open loads what cfg's deploy part names and prepares the item embeddings
// and indexes. cfg's live part is not applied: the caller applies it.
func Open(ctx context.Context, cfg *config.Config, opts Options) (e *Engine, err error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	stage := opts.Stage
	if stage == "" {
		stage = config.StageAll
	}
	r, err := rolesOf(stage)
	if err != nil {
		return nil, err
	}
	e = &Engine{
		log: log, stage: stage, roles: r, models: map[string]*model.Artifact{}, towers: map[string]*rank.Tower{},
		indexes: map[string]*ann.Index{}, metrics: newMetrics(opts.Registry), precision: opts.Precision,
	}
	e.arms = newArmStats(opts.Registry, defaultServedPairs)
	e.shadow = newShadowStats(opts.Registry)
	// What a failed Open opened is released through these: e, the named
	// result, is nil by the time the deferred call runs.
	var st store.Store
	var stages *stageclient.Stages
	var pc *precomputedCache
	var dl *datalog.Logger
	defer func() {
		if e != nil {
			return
		}
		if pc != nil {
			pc.close()
		}
		_ = dl.Close() // a nil Logger closes as none
		if stages != nil {
			stages.Close()
		}
		if st != nil {
			_ = st.Close()
		}
	}()
	start := time.Now()
	cat, err := catalog.Load(ctx, cfg.Deploy.Catalog, catalog.Options{})
	if err != nil {
		return nil, fmt.Errorf("failed to load the catalog %s: %w", cfg.Deploy.Catalog, err)
	}
	e.cat = cat
	log.Info("Loaded the catalog", "items", cat.Len(), "users", cat.NumUsers(), "seconds", time.Since(start).Seconds())

	// The store first: the items it knows were published live join the
	// catalog before the catalog is embedded and indexed. Only the
	// frontend owns the real-time state.
	base := cat.Len()
	e.base, e.maxPublished = base, cfg.Deploy.PublishedItemsOrDefault()
	if r.frontend {
		if st, err = openStore(ctx, cfg, opts.StateDir, log); err != nil {
			return nil, err
		}
		e.state, e.storeTy = st, cfg.Deploy.Store.Type
		if rec, ok := st.(store.ArmRecorder); ok {
			e.arms.share(rec, log)
		}
		if err := e.restoreNewItems(ctx); err != nil {
			return nil, err
		}
		if err := e.restoreRisks(ctx); err != nil {
			return nil, err
		}
	}
	e.clock = newClock(cat, e.state, e.storeTy, log)
	if r.frontend {
		pc = newPrecomputedCache(cat, opts.PrecomputedRefresh, log)
		e.precomputed = pc
		e.batch = newBatch(e.state, opts.Registry)
		if dl, err = openLogs(cfg, opts, log); err != nil {
			return nil, err
		}
		e.datalog = dl
	}
	if r.remote {
		if stages, err = stageclient.Dial(cfg.Deploy.Endpoints, cat, uint32(base), opts.StageCredentials); err != nil {
			return nil, err
		}
		e.stages = stages
	}
	if err := e.loadModels(ctx, cfg); err != nil {
		return nil, err
	}
	if err := e.buildIndexes(ctx, cfg, opts); err != nil {
		return nil, err
	}
	if seeder, ok := e.state.(store.Seeder); ok {
		// Items published live are the store's already; seed the rest.
		items := make([]store.ItemTime, base)
		for i := range items {
			o := uint32(i)
			items[i] = store.ItemTime{Item: cat.ID(o), Author: cat.Author(o), Time: cat.Created(o)}
		}
		if err := seeder.Seed(ctx, items); err != nil {
			return nil, fmt.Errorf("failed to seed the store with the catalog: %w", err)
		}
	}
	if e.storeTy == "Redis" {
		// Other frontends share the store: their integrity events reach
		// this catalog within riskRefresh.
		e.stopRisks, e.risksDone = make(chan struct{}), make(chan struct{})
		go e.refreshRisks(riskRefresh)
	}
	return e, nil
}

// riskRefresh is how often a frontend on a shared store reads the
// integrity risks other frontends recorded.
const riskRefresh = 10 * time.Second

// restoreRisks gives the catalog the integrity risks the store recorded
// (integrity events, and new items published with a risk).
func (e *Engine) restoreRisks(ctx context.Context) error {
	r, ok := e.state.(store.RiskReader)
	if !ok {
		return nil
	}
	risks, err := r.Risks(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the integrity risks from the store: %w", err)
	}
	for item, risk := range risks {
		if o, ok := e.cat.Ordinal(item); ok {
			e.cat.SetRisk(o, float32(risk))
		}
	}
	return nil
}

func (e *Engine) refreshRisks(every time.Duration) {
	defer close(e.risksDone)
	stopped, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		<-e.stopRisks
		stop() // Close does not wait for a read in flight
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.stopRisks:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(stopped, every)
			if err := e.restoreRisks(ctx); err != nil && stopped.Err() == nil {
				e.log.Warn("Kept the integrity risks read before", "err", err)
			}
			cancel()
		}
	}
}

// loadModels loads the models the stage needs and embeds the catalog with
// each two-tower model.
func (e *Engine) loadModels(ctx context.Context, cfg *config.Config) error {
	need := cfg.StageModels(e.stage)
	for _, m := range cfg.Deploy.Models {
		if !slices.Contains(need, m.Name) {
			continue
		}
		t0 := time.Now()
		a, err := model.Load(ctx, m.URI)
		if err != nil {
			return fmt.Errorf("failed to load model %s: %w", m.Name, err)
		}
		e.models[m.Name] = a
		e.log.Info("Loaded model", "model", m.Name, "kind", a.Manifest.Kind, "version", a.Manifest.Version, "seconds", time.Since(t0).Seconds())
		if a.TwoTower == nil {
			continue
		}
		t, err := rank.NewTower(m.Name, a, e.cat)
		if err != nil {
			return err
		}
		t0 = time.Now()
		if err := t.EmbedItems(ctx, e.cat, 0, e.cat.Len()); err != nil {
			return fmt.Errorf("failed to embed the catalog with %s: %w", m.Name, err)
		}
		e.towers[m.Name] = t
		e.log.Info("Embedded the catalog", "model", m.Name, "items", e.cat.Len(), "seconds", time.Since(t0).Seconds())
	}
	return nil
}

// buildIndexes indexes, with HNSW, the item embeddings of every model an
// ANN source of cfg (or of its whole-config arms) searches, on the stages
// that run those sources. The index that `recserve index` saved beside the
// model is loaded instead when it matches the embeddings (see loadIndex).
func (e *Engine) buildIndexes(ctx context.Context, cfg *config.Config, opts Options) error {
	if !e.roles.index {
		return nil
	}
	for _, name := range annModels(cfg) {
		t := e.towers[name]
		if t == nil || e.indexes[name] != nil {
			continue
		}
		flat := t.Flat()
		var idx *ann.Index
		if !opts.buildOnly {
			idx = e.loadIndex(ctx, cfg, name, t.Dim(), flat, opts.ANN)
		}
		if idx == nil {
			t0 := time.Now()
			idx = ann.New(t.Dim(), ann.InnerProduct, opts.ANN)
			idx.Reserve(len(flat) / t.Dim())
			if err := idx.Build(ctx, nil, flat, runtime.GOMAXPROCS(0)); err != nil {
				return fmt.Errorf("failed to index the embeddings of %s: %w", name, err)
			}
			e.log.Info("Built the ANN index", "model", name, "items", idx.Len(), "seconds", time.Since(t0).Seconds())
		}
		e.indexes[name] = idx
		// The index stores the tower's vectors as they are: one copy
		// serves both.
		shared := t.Vectors().Share(idx.StoredRows, idx)
		e.log.Debug("Shared the item embeddings with the ANN index", "model", name, "items", shared)
	}
	return nil
}

// restoreNewItems adds to the catalog, in the order they were published,
// the items the store knows were published by new_item events: the catalog
// holds them only in memory. Items the catalog already has are skipped; one
// it refuses is logged and skipped, as it was never served.
func (e *Engine) restoreNewItems(ctx context.Context) error {
	r, ok := e.state.(store.NewItemsReader)
	if !ok {
		return nil
	}
	t0 := time.Now()
	items, err := r.NewItems(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the items published live from the store: %w", err)
	}
	added := 0
	for _, it := range items {
		_, err := e.cat.Add(dataset.Item{ID: it.Item, Author: it.Author, Created: it.Time})
		switch {
		case err == nil:
			added++
		case errors.Is(err, catalog.ErrDuplicate):
		default:
			e.log.Warn("Skipped an item published live that the catalog refuses", "item", it.Item, "error", err)
		}
	}
	if len(items) > 0 {
		e.log.Info("Restored the items published live", "published", len(items), "added", added, "seconds", time.Since(t0).Seconds())
	}
	return nil
}

// openStore opens the configured state store. The Popular source's window
// is the store's popularity half-life, fixed at open.
func openStore(ctx context.Context, cfg *config.Config, dir string, log *slog.Logger) (store.Store, error) {
	state := store.StateOptions{SeenItems: cfg.Deploy.Store.SeenItemsOrDefault(), Follows: cfg.Deploy.Store.Follows, Users: cfg.Deploy.Store.Users}
	for _, s := range cfg.Live.Retrieval.Sources {
		if s.Type == config.SourcePopular && s.Window > 0 {
			state.HalfLife = time.Duration(s.Window)
		}
	}
	switch cfg.Deploy.Store.Type {
	case "Redis":
		r := cfg.Deploy.Store.Redis
		opts := store.RedisOptions{State: state, Address: r.Address, DB: r.DB, Prefix: r.KeyPrefix}
		if r.PasswordEnv != "" {
			opts.Password = os.Getenv(r.PasswordEnv)
		}
		st, err := store.OpenRedis(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("failed to open the Redis store at %s: %w", r.Address, err)
		}
		return st, nil
	default:
		if dir == "" {
			return nil, errors.New("the Memory store needs a state directory")
		}
		st, err := store.OpenMemory(dir, store.MemoryOptions{State: state, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("failed to open the memory store in %s: %w", dir, err)
		}
		return st, nil
	}
}

// openLogs opens the frontend's logs of cfg.Deploy.Logging and registers
// their metrics; nil without logging.
func openLogs(cfg *config.Config, opts Options, log *slog.Logger) (*datalog.Logger, error) {
	if cfg.Deploy.Logging == nil {
		return nil, nil
	}
	dl, err := datalog.Open(*cfg.Deploy.Logging, log)
	if err != nil {
		return nil, err
	}
	if opts.Registry != nil {
		opts.Registry.MustRegister(dl.Collectors()...)
	}
	return dl, nil
}

// Healthy is nil while the engine can serve; otherwise why it cannot
// until the process restarts (the memory store's log failed a write).
func (e *Engine) Healthy() error {
	if s, ok := e.state.(interface{ Err() error }); ok {
		return s.Err()
	}
	return nil
}

// Info describes what was loaded.
func (e *Engine) Info() map[string]any {
	models := map[string]string{}
	for name, a := range e.models {
		models[name] = string(a.Manifest.Kind) + " " + a.Manifest.Name + "@" + a.Manifest.Version
	}
	return map[string]any{"catalogItems": e.cat.Len(), "users": e.cat.NumUsers(), "models": models, "store": e.storeTy}
}

// ArmCounts is, by experiment arm, what this process served and the events
// on it; nil when no arm has served.
func (e *Engine) ArmCounts() map[string]config.ArmCounts {
	return e.arms.snapshot()
}

// Close releases the store and the connections to other stages. Later
// calls return the first's result.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.close() })
	return e.closeErr
}

func (e *Engine) close() error {
	if e.stopRisks != nil {
		close(e.stopRisks)
		<-e.risksDone
	}
	if e.precomputed != nil {
		e.precomputed.close()
	}
	if e.batch != nil {
		e.batch.close()
	}
	if err := e.datalog.Close(); err != nil {
		e.log.Error("Failed to close the logs", "err", err)
	}
	if e.stages != nil {
		e.stages.Close()
	}
	e.arms.close()
	if e.state == nil {
		return nil
	}
	return e.state.Close()
}
