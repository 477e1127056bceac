// Package pipeline is the whole recommendation funnel in one process
// (recserve --stage=all): retrieval from mixed sources, the first-stage
// two-tower ranker, the MTML second stage with its weighted value, and the
// rerank rules.
//
// What the deploy part of the config names (catalog, store, models) is
// loaded once, at Open; item embeddings of every two-tower model are computed
// for the whole catalog and indexed with HNSW for the models an ANN source
// of the initial config searches. The live part is compiled by Apply into an
// immutable value swapped atomically: a request runs entirely on the live
// value it started with.
//
// A request is served at the time of the engine's clock (live.clock, see
// clock.go): by default the newest event's, so that a historical log
// replayed into the store is served as it was live; retrieval left short by
// what the user has seen is topped up (sources.Backfill) to what the first
// stage keeps.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"github.com/recpipeline/recpipeline/runtime/stagepb"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/ann"
	"github.com/recpipeline/recpipeline/runtime/catalog"
	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/dataset"
	"github.com/recpipeline/recpipeline/runtime/features"
	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/rank"
	"github.com/recpipeline/recpipeline/runtime/rerank"
	"github.com/recpipeline/recpipeline/runtime/server"
	"github.com/recpipeline/recpipeline/runtime/sources"
	"github.com/recpipeline/recpipeline/runtime/store"
)

// Options configure Open.
type Options struct {
	// StateDir holds the memory store's log. Required for the Memory store.
	StateDir string
	// ANN tunes the HNSW indexes; the package defaults when zero.
	ANN ann.Options
	// Registry receives the funnel's metrics; none when nil.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Stage is what the process serves: StageAll (the default) runs the
	// whole funnel; the other stages split it across processes.
	Stage string
}

// Engine serves the funnel; it implements server.Engine.
type Engine struct {
	log     *slog.Logger
	cat     *catalog.Catalog
	state   store.Store
	storeTy string
	models  map[string]*model.Artifact
	towers  map[string]*tower
	live    atomic.Pointer[live]
	metrics *metrics
	clock   *clock // the time requests are served at

	stage  string
	remote *remote // the other stages, in the frontend

	addMu sync.Mutex // serialises new items: catalog ordinals and embeddings advance together
	// base is the number of items loaded from the deploy catalog; items
	// with higher ordinals were published live.
	base uint32
}

var _ server.Engine = (*Engine)(nil)

// Open loads what cfg's deploy part names and prepares the item embeddings
// and indexes. cfg's live part is not applied: the caller applies it.
func Open(ctx context.Context, cfg *config.Config, opts Options) (e *Engine, err error) {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	e = &Engine{log: log, models: map[string]*model.Artifact{}, towers: map[string]*tower{}, metrics: newMetrics(opts.Registry), stage: opts.Stage}
	switch e.stage {
	case "":
		e.stage = StageAll
	case StageAll, StageFrontend, StageRetrieval, StageRankerFirst, StageRankerSecond:
	default:
		return nil, fmt.Errorf("unknown stage %q", e.stage)
	}
	stateful := e.stage == StageAll || e.stage == StageFrontend
	// What a failed Open opened is released through these: e, the named
	// result, is nil by the time the deferred call runs.
	var st store.Store
	var rem *remote
	defer func() {
		if e != nil {
			return
		}
		if rem != nil {
			rem.close()
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
	// catalog before the catalog is embedded and indexed. Only the stages
	// that own the real-time state open it.
	base := cat.Len()
	e.base = uint32(base)
	if stateful {
		if st, err = openStore(ctx, cfg, opts.StateDir, log); err != nil {
			return nil, err
		}
		e.state, e.storeTy = st, cfg.Deploy.Store.Type
		if err := e.restoreNewItems(ctx); err != nil {
			return nil, err
		}
	}
	e.clock = newClock(cat, e.state, e.storeTy, log)
	if e.stage == StageFrontend {
		if rem, err = dialStages(cfg.Deploy.Endpoints); err != nil {
			return nil, err
		}
		e.remote = rem
	}

	need := neededModels(cfg, e.stage)
	for _, m := range cfg.Deploy.Models {
		if !need[m.Name] {
			continue
		}
		t0 := time.Now()
		a, err := model.Load(ctx, m.URI)
		if err != nil {
			return nil, fmt.Errorf("failed to load model %s: %w", m.Name, err)
		}
		e.models[m.Name] = a
		log.Info("Loaded model", "model", m.Name, "kind", a.Manifest.Kind, "version", a.Manifest.Version, "seconds", time.Since(t0).Seconds())
		if a.TwoTower == nil {
			continue
		}
		t, err := newTower(m.Name, a, cat)
		if err != nil {
			return nil, err
		}
		t0 = time.Now()
		if err := t.embedItems(ctx, cat, 0, cat.Len()); err != nil {
			return nil, fmt.Errorf("failed to embed the catalog with %s: %w", m.Name, err)
		}
		e.towers[m.Name] = t
		log.Info("Embedded the catalog", "model", m.Name, "items", cat.Len(), "seconds", time.Since(t0).Seconds())
	}
	for _, s := range cfg.Live.Retrieval.Sources {
		t := e.towers[s.Model]
		if t == nil || t.index != nil || (e.stage != StageAll && e.stage != StageRetrieval) {
			continue
		}
		t0 := time.Now()
		if err := t.buildIndex(ctx, opts.ANN); err != nil {
			return nil, fmt.Errorf("failed to index the embeddings of %s: %w", s.Model, err)
		}
		log.Info("Built the ANN index", "model", s.Model, "items", t.index.Len(), "seconds", time.Since(t0).Seconds())
	}

	if seeder, ok := e.state.(store.Seeder); ok && stateful {
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
	return e, nil
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
	state := store.StateOptions{SeenItems: cfg.Deploy.Store.SeenItemsOrDefault()}
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

// live is one compiled live config.
type live struct {
	cfg      *config.Config
	revision string
	names    []string // source names by index, for responses
	mixer    *sources.Mixer
	first    *tower
	second   *model.MTML
	secondIn *features.Assembler
	// secondSplit is second with the first layer's user columns (the
	// secondIn columns every candidate shares) computed once per request.
	secondSplit *model.SplitMTML
	// scorer is the retrieval model whose user embedding the second
	// stage's two_tower_score reads; nil when it reads none.
	scorer *tower
	// scoreCol is two_tower_score's column in the second stage's
	// per-candidate input, -1 when it has none.
	scoreCol  int
	weights   *rank.Weights
	rules     rerank.Chain
	ann       map[string]sources.Source // the retrieval stage's ANN sources by name
	scratches sync.Pool                 // *scratch
}

func (l *live) scratch() *scratch {
	if sc, ok := l.scratches.Get().(*scratch); ok {
		return sc
	}
	return &scratch{}
}

// Apply compiles cfg's live part against what Open loaded and swaps it in.
func (e *Engine) Apply(cfg *config.Config, revision string) error {
	l, err := e.compile(cfg)
	if err != nil {
		return err
	}
	l.revision = revision
	e.live.Store(l)
	return nil
}

func (e *Engine) compile(cfg *config.Config) (*live, error) {
	lc := &cfg.Live
	l := &live{cfg: cfg}
	if e.stage == StageAll || e.stage == StageRankerFirst {
		first, ok := e.towers[lc.FirstStage.Model]
		if !ok {
			return nil, fmt.Errorf("live.firstStage.model: %q is not a loaded TwoTower model", lc.FirstStage.Model)
		}
		l.first = first
	}
	if e.stage == StageAll || e.stage == StageRankerSecond {
		mtml := e.models[lc.SecondStage.Model]
		if mtml == nil || mtml.MTML == nil {
			return nil, fmt.Errorf("live.secondStage.model: %q is not a loaded MTML model", lc.SecondStage.Model)
		}
		l.second = mtml.MTML
		var vecs features.ItemVectors
		scorer := e.towers[retrievalModel(lc)]
		if scorer != nil {
			vecs = scorer.vectors
		}
		in, err := features.CompileRanker(mtml.Manifest.Networks[model.NetBottom].Input, e.cat, mtml.Embeddings, vecs)
		if err != nil {
			return nil, fmt.Errorf("live.secondStage.model: model %q: %w", lc.SecondStage.Model, err)
		}
		l.secondIn = in
		if l.secondSplit, err = mtml.MTML.Split(in.SharedColumns()); err != nil {
			return nil, fmt.Errorf("live.secondStage.model: %w", err)
		}
		// two_tower_score is per candidate, so it has a split column
		// exactly when the ranker reads it.
		if l.scoreCol = in.SplitColumn(features.TwoTowerScore); l.scoreCol >= 0 {
			l.scorer = scorer
		}
		if l.weights, err = rank.CompileValue(lc.Weights, mtml.MTML.Heads(), l.scoreCol >= 0); err != nil {
			return nil, fmt.Errorf("live.weights: %w", err)
		}
	}
	var err error
	if l.rules, err = rerank.Compile(lc.Rerank.Rules); err != nil {
		return nil, fmt.Errorf("live.rerank.rules: %w", err)
	}

	weighted := make([]sources.Weighted, 0, len(lc.Retrieval.Sources))
	l.ann = map[string]sources.Source{}
	for i, s := range lc.Retrieval.Sources {
		l.names = append(l.names, s.Name)
		ann := s.Type == config.SourceTwoTowerANN || s.Type == config.SourceItemToItemANN
		if (e.stage == StageRetrieval && !ann) || (e.stage != StageAll && e.stage != StageFrontend && e.stage != StageRetrieval) {
			continue
		}
		src, err := e.source(s)
		if err != nil {
			return nil, fmt.Errorf("live.retrieval.sources[%d] (%s): %w", i, s.Name, err)
		}
		if ann {
			l.ann[s.Name] = src
		}
		weighted = append(weighted, sources.Weighted{
			Name: s.Name, Source: src, Weight: s.Weight, Limit: s.Limit,
			Timeout: time.Duration(s.Timeout), Index: i,
		})
	}
	if e.stage == StageAll || e.stage == StageFrontend {
		// A mix left short of what the first stage keeps (a user who has
		// seen most of what the sources find, failing sources) is topped
		// up from the store's popular items and then the catalog.
		l.mixer = sources.NewMixer(weighted, e.cat, sources.MixerOptions{
			Observer: e.metrics,
			Backfill: sources.NewBackfill(e.state, e.cat),
			Min:      lc.FirstStage.Keep,
		})
	}
	return l, nil
}

func (e *Engine) source(s config.Source) (sources.Source, error) {
	switch s.Type {
	case config.SourceFollowedAuthorsRecent:
		return sources.NewFollowedAuthorsRecent(s, e.state, e.cat)
	case config.SourcePopular:
		return sources.NewPopular(s, e.state, e.cat), nil
	case config.SourcePrecomputed:
		return sources.NewPrecomputed(s, e.cat, sources.PrecomputedOptions{})
	case config.SourceTwoTowerANN, config.SourceItemToItemANN:
		if e.remote != nil {
			return &remoteSource{name: s.Name, client: e.remote.retrieval, cat: e.cat}, nil
		}
		t := e.towers[s.Model]
		if t == nil {
			return nil, fmt.Errorf("model %q is not a loaded TwoTower model", s.Model)
		}
		if t.index == nil {
			return nil, fmt.Errorf("model %q has no ANN index: a source may search a new model only after a restart", s.Model)
		}
		if s.Type == config.SourceTwoTowerANN {
			return sources.NewTwoTowerANN(s, &embedder{t: t, cat: e.cat, state: users{e.state}}, t.index), nil
		}
		return sources.NewItemToItemANN(s, users{e.state}, e.cat, t.vectors, t.index)
	}
	return nil, fmt.Errorf("unknown source type %q", s.Type)
}

// scratch holds one request's buffers, reused across requests.
type scratch struct {
	mixed  []sources.Mixed
	cands  []rank.Candidate
	user   []float32
	tower  []float32 // the retrieval model's user embedding, for two_tower_score
	in     []float32
	shared []float32 // the second stage's input columns every candidate shares
	probs  []float32
	ws     model.Workspace
	shown  []rank.Candidate
	items  []uint32
}

// ErrNotFrontend answers client calls on the stages that serve gRPC only.
var ErrNotFrontend = fmt.Errorf("%w: this stage serves the other stages over gRPC; send client requests to the frontend", server.ErrBadRequest)

// Recommend runs the funnel for one user.
func (e *Engine) Recommend(ctx context.Context, req *server.Request) (*server.Response, error) {
	if e.stage != StageAll && e.stage != StageFrontend {
		return nil, ErrNotFrontend
	}
	l := e.live.Load()
	if l == nil {
		return nil, errors.New("no config applied")
	}
	sc := l.scratch()
	defer l.scratches.Put(sc)
	var timings map[string]float64 // only a debug request reports them
	if req.Debug {
		timings = map[string]float64{}
	}
	mark := time.Now()
	lap := func(stage string, n int) {
		d := time.Since(mark)
		mark = time.Now()
		e.metrics.stage.WithLabelValues(stage).Observe(d.Seconds())
		e.metrics.candidates.WithLabelValues(stage).Observe(float64(n))
		if timings != nil {
			timings[stage] = float64(d.Microseconds()) / 1000
		}
	}
	lc := &l.cfg.Live
	now := e.clock.now(ctx, lc.Clock, req.Now)

	engagements, err := e.state.RecentEngagements(ctx, req.User, features.PoolSize)
	if err != nil {
		return nil, fmt.Errorf("failed to read recent engagements: %w", err)
	}
	follows, err := e.state.Follows(ctx, req.User)
	if err != nil {
		return nil, fmt.Errorf("failed to read follows: %w", err)
	}
	seen, err := e.state.Seen(ctx, req.User)
	if err != nil {
		return nil, fmt.Errorf("failed to read seen items: %w", err)
	}
	uc := features.NewUserContext(req.User, now, e.cat, engagements, follows)
	var us *stagepb.UserState
	if e.remote != nil {
		us = userState(req.User, now, engagements, follows)
		ctx = withShipped(ctx, us)
	}

	// Retrieval.
	// A fresh Request each time, not one kept in the scratch: a source
	// the mixer gave up on at its deadline may still read it after Mix
	// returns and the scratch serves another request.
	sreq := &sources.Request{User: req.User, Now: now}
	sc.mixed, err = l.mixer.Mix(ctx, sreq, lc.Retrieval.Candidates, seen, sc.mixed[:0])
	if err != nil {
		return nil, err
	}
	lap("retrieval", len(sc.mixed))
	sc.cands = sc.cands[:0]
	for i, m := range sc.mixed {
		// The mixer's order is the first stage's input order; its score
		// breaks no tie that the first stage does not.
		sc.cands = append(sc.cands, rank.Candidate{
			Item: m.Item, ID: e.cat.ID(m.Item), Author: e.cat.Author(m.Item), Risk: e.cat.Risk(m.Item),
			Sources: m.Sources, Value: m.Score, First: float32(-i),
		})
	}

	var ranked []rank.Candidate
	var heads []string
	if e.remote == nil {
		top := l.rankFirst(sc, uc, sc.cands)
		lap("ranker-first", len(top))
		ranked = l.rankSecond(sc, uc, top)
		heads = l.second.Heads()
		lap("ranker-second", len(ranked))
	} else {
		// A ranker stage that fails is passed over, as a failing source
		// is: the list keeps the previous stage's order.
		top, _, err := e.remoteRank(ctx, e.remote.first, us, sc.cands, sc.shown)
		if err != nil {
			e.fallBack(ctx, StageRankerFirst, err)
			top = append(sc.shown[:0], rank.TopK(sc.cands, lc.FirstStage.Keep)...)
		}
		sc.shown = top
		lap("ranker-first", len(top))
		ranked, heads, err = e.remoteRank(ctx, e.remote.second, us, top, sc.cands)
		if err != nil {
			e.fallBack(ctx, StageRankerSecond, err)
			ranked = append(sc.cands[:0], rank.TopK(top, lc.SecondStage.Keep)...)
		}
		sc.cands = ranked
		lap("ranker-second", len(ranked))
	}

	// Final rerank.
	size := min(req.N, lc.Rerank.Size)
	final := l.rules.Apply(ranked, size)
	lap("rerank", len(final))

	resp := &server.Response{User: req.User, Revision: l.revision, Items: make([]server.Item, 0, len(final))}
	for _, c := range final {
		it := server.Item{ID: c.ID, Author: c.Author, Score: float64(c.Value), Risk: float64(c.Risk)}
		for i, name := range l.names {
			if c.Sources.Has(i) {
				it.Sources = append(it.Sources, name)
			}
		}
		if req.Debug && len(c.Probs) == len(heads) {
			it.Heads = map[string]float64{}
			for j, h := range heads {
				it.Heads[h] = float64(c.Probs[j])
			}
		}
		resp.Items = append(resp.Items, it)
	}
	if req.Debug {
		resp.Timings = timings
		resp.Now = now
	}
	return resp, nil
}

// fallBack records a ranker stage the request went on without. Only the
// request's own end is an error.
func (e *Engine) fallBack(ctx context.Context, stage string, err error) {
	if ctx.Err() != nil {
		return
	}
	e.metrics.fallbacks.WithLabelValues(stage).Inc()
	e.log.Warn("A stage failed, going on without it", "stage", stage, "err", err)
}

// rankFirst scores candidates with the first-stage two-tower model (the
// user embedding · the precomputed item embeddings) and keeps the best.
func (l *live) rankFirst(sc *scratch, uc *features.UserContext, cands []rank.Candidate) []rank.Candidate {
	sc.user = l.first.userEmbedding(uc, sc.user)
	for i := range cands {
		if v := l.first.vectors.Vector(cands[i].Item); v != nil {
			cands[i].First = dot(sc.user, v)
		} else {
			cands[i].First = float32(math.Inf(-1)) // a new item not embedded yet
		}
		cands[i].Value = cands[i].First
	}
	return rank.TopK(cands, l.cfg.Live.FirstStage.Keep)
}

// rankSecond runs the MTML over the candidates' assembled features, scores
// them by the weighted value and keeps the best.
func (l *live) rankSecond(sc *scratch, uc *features.UserContext, top []rank.Candidate) []rank.Candidate {
	width := l.secondSplit.In()
	heads := len(l.second.Heads())
	sc.in = grow(sc.in, len(top)*width)
	sc.shared = grow(sc.shared, l.secondIn.Width()-width)
	sc.probs = grow(sc.probs, len(top)*heads)
	sc.items = sc.items[:0]
	for i := range top {
		sc.items = append(sc.items, top[i].Item)
	}
	batch := blas32.General{Rows: len(top), Cols: width, Stride: width, Data: sc.in}
	if l.scorer != nil {
		sc.tower = l.scorer.userEmbedding(uc, sc.tower)
		uc.TowerUser = sc.tower
	}
	l.secondIn.FillSplit(uc, sc.items, sc.shared, batch)
	l.secondSplit.Predict(sc.shared, batch, sc.probs, &sc.ws)
	for i := range top {
		top[i].Probs = sc.probs[i*heads : (i+1)*heads : (i+1)*heads]
		if l.scoreCol >= 0 {
			top[i].Retrieval = sc.in[i*width+l.scoreCol]
		}
	}
	l.weights.Score(top)
	return rank.TopK(top, l.cfg.Live.SecondStage.Keep)
}

// Ingest records events; new items join the catalog, the embeddings and
// the indexes before the call returns. A batch is checked whole first: when
// Ingest returns an error wrapping store.ErrInvalidEvent nothing of it was
// recorded. New items join the catalog only once the store has recorded
// them, in the store's order, so that a restart restores the same catalog.
func (e *Engine) Ingest(ctx context.Context, events []store.Event) error {
	if e.state == nil {
		return ErrNotFrontend
	}
	var now time.Time
	var published []store.Event // events with new items dated
	for i := range events {
		if events[i].Type != store.NewItem {
			continue
		}
		if published == nil {
			published = slices.Clone(events)
			now = time.Now()
		}
		ev := &published[i]
		if ev.Time.IsZero() {
			ev.Time = now // the store and the catalog date the item alike
		}
		if err := checkNewItem(ev); err != nil {
			return fmt.Errorf("%w: events[%d]: %v", store.ErrInvalidEvent, i, err)
		}
	}
	if published == nil {
		if err := e.state.Apply(ctx, events); err != nil {
			return err
		}
		e.observeEvents(events)
		return nil
	}
	e.addMu.Lock()
	defer e.addMu.Unlock()
	if err := e.state.Apply(ctx, published); err != nil {
		return err
	}
	e.observeEvents(published)
	for i := range published {
		if published[i].Type != store.NewItem {
			continue
		}
		if err := e.addItem(ctx, &published[i]); err != nil {
			return fmt.Errorf("failed to add the recorded item of events[%d]: %w", i, err)
		}
	}
	return nil
}

// observeEvents moves the clock to the newest of recorded events; an
// undated one was dated by the store, at about now.
func (e *Engine) observeEvents(events []store.Event) {
	var newest time.Time
	for i := range events {
		t := events[i].Time
		if t.IsZero() {
			t = time.Now()
		}
		if t.After(newest) {
			newest = t
		}
	}
	if !newest.IsZero() {
		e.clock.observe(newest)
	}
}

// checkNewItem checks a new_item event as the catalog checks an added item,
// so that an item the store records is one the catalog takes.
func checkNewItem(ev *store.Event) error {
	for _, f := range []struct{ name, v string }{{"item", ev.Item}, {"author", ev.Author}} {
		switch {
		case f.v == "":
			return fmt.Errorf("new_item needs %s", f.name)
		case len(f.v) > dataset.MaxIDBytes:
			return fmt.Errorf("new_item %s is longer than %d bytes", f.name, dataset.MaxIDBytes)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("new_item %s is not valid UTF-8", f.name)
		}
	}
	if y := ev.Time.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("new_item time: year %d outside 1..9999", y)
	}
	return nil
}

// addItem adds a recorded new item to the catalog, embeds and indexes it.
// The caller holds addMu.
func (e *Engine) addItem(ctx context.Context, ev *store.Event) error {
	o, err := e.cat.Add(dataset.Item{ID: ev.Item, Author: ev.Author, Created: ev.Time})
	if errors.Is(err, catalog.ErrDuplicate) {
		return nil
	}
	if err != nil {
		return err
	}
	// The item is recorded: embed it even if the caller gives up, and catch
	// up on any item an earlier failure left without an embedding, since
	// embeddings are appended by ordinal.
	ctx = context.WithoutCancel(ctx)
	for _, t := range e.towers {
		from := t.vectors.n.Load()
		if err := t.embedItems(ctx, e.cat, int(from), int(o)+1); err != nil {
			return err
		}
		if t.index == nil {
			continue
		}
		for i := from; i <= o; i++ {
			if err := t.index.Add(i, t.vectors.Vector(i)); err != nil {
				return err
			}
		}
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

// Close releases the store and the connections to other stages.
func (e *Engine) Close() error {
	if e.remote != nil {
		e.remote.close()
	}
	if e.state == nil {
		return nil
	}
	return e.state.Close()
}

func dot(a, b []float32) float32 {
	var s float32
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// metrics of the funnel.
type metrics struct {
	stage      *prometheus.HistogramVec
	candidates *prometheus.HistogramVec
	source     *prometheus.HistogramVec
	fallbacks  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		stage: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_stage_duration_seconds", Help: "Time spent in each stage of the funnel.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"stage"}),
		candidates: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_stage_candidates", Help: "Candidates leaving each stage of the funnel.",
			Buckets: []float64{0, 10, 25, 50, 100, 200, 300, 500, 1000, 1500, 2000, 5000},
		}, []string{"stage"}),
		source: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_source_duration_seconds", Help: "Latency of each candidate source by outcome (ok, error, timeout).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"source", "outcome"}),
		fallbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_stage_fallbacks_total", Help: "Requests that went on without a failing ranker stage.",
		}, []string{"stage"}),
	}
}

// SourceDone implements sources.Observer.
func (m *metrics) SourceDone(name string, d time.Duration, _ int, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	case err != nil:
		outcome = "error"
	}
	m.source.WithLabelValues(name, outcome).Observe(d.Seconds())
}
