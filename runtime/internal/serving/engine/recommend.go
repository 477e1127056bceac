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
	"github.com/recpipeline/recpipeline/runtime/internal/serving/datalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Request is a client's ask for recommendations.
type Request struct {
	// ID identifies the request in the served-lists log (and in the
	// response); the server fills it.
	ID    string
	User  string
	N     int
	Debug bool
	// Now is when the request arrived, by the wall clock. The engine's
	// clock decides the time it is served at (config.Live.Clock), never
	// later than this.
	Now time.Time
	// ListTried marks a request whose user's precomputed list was looked
	// up already (RecommendPrecomputed): Recommend runs the funnel.
	ListTried bool
	// batch marks a precompute run's request: it is not answered from a
	// precomputed list (a Precomputed source without a URI may still
	// propose the previous run's), and it counts as served to no arm.
	batch bool
}

// Response is the ranked list.
type Response struct {
	// RequestID is the request's ID, which the served-lists log records.
	RequestID string `json:"requestId,omitempty"`
	User      string `json:"user"`
	Revision  string `json:"configRevision"`
	// Arm is the experiment arm the user is in (config.ControlArm for
	// none), when the config runs experiments.
	Arm     string             `json:"arm,omitempty"`
	Items   []Item             `json:"items"`
	Timings map[string]float64 `json:"timingsMs,omitempty"`
	// Degraded names what of the funnel this answer went without: a
	// source that failed or missed its deadline ("source for-you: past its
	// deadline"), a ranker stage that failed ("stage ranker-second: …").
	// Empty when the whole funnel ran.
	Degraded []string `json:"degraded,omitempty"`
	// Now is the time the request was served at, with debug: what item
	// ages and popularity were measured against.
	Now time.Time `json:"now,omitzero"`
	// Precomputed is set when the answer is the user's list of a
	// precompute run, filtered and reranked, rather than the funnel's.
	Precomputed bool `json:"precomputed,omitempty"`

	// ranked holds, for a precompute run's request, each item's value
	// before the rerank rules.
	ranked []float32
}

// responses keeps released answers for their Items' storage: 25 items are
// 2 KB, a sixth of what a served request allocates.
var responses = sync.Pool{New: func() any { return new(Response) }}

// Release hands the response's storage back for another answer. Neither
// resp nor its Items may be read after it; a caller that does not call it
// leaves the storage to the collector.
func (r *Response) Release() {
	items := r.Items
	clear(items) // the ids, names and debug maps another answer must not see
	*r = Response{Items: items[:0]}
	responses.Put(r)
}

// Item is one recommended item.
type Item struct {
	ID      string             `json:"id"`
	Author  string             `json:"author"`
	Score   float64            `json:"score"`
	Sources []string           `json:"sources"`
	Heads   map[string]float64 `json:"heads,omitempty"`
	Risk    float64            `json:"integrityRisk,omitempty"`
}

// TakenDown is the integrity risk of an item taken down (an integrity
// event with risk 1): it is never served, whatever the rerank rules.
const TakenDown = 1

// ErrBadRequest marks errors the client must fix.
var ErrBadRequest = errors.New("bad request")

// ErrNoConfig answers calls before a config is applied.
var ErrNoConfig = errors.New("no config applied")

// ErrNotFrontend answers client calls on the stages that serve gRPC only.
var ErrNotFrontend = fmt.Errorf("%w: this stage serves the other stages over gRPC; send client requests to the frontend", ErrBadRequest)

// pending holds one request's buffers, reused across requests.
type pending struct {
	mixed []sources.Mixed
	cands []rank.Candidate
}

// Recommend runs the funnel for one user.
func (e *Engine) Recommend(ctx context.Context, req *Request) (*Response, error) {
	if !e.roles.frontend {
		return nil, ErrNotFrontend
	}
	l := e.live.Load()
	if l == nil {
		return nil, ErrNoConfig
	}
	if pc := l.cfg.Live.Precompute; pc != nil && pc.Serve == config.PrecomputeAlways && e.batch.lists != nil && !req.ListTried {
		resp, err := e.fromList(ctx, l.armFor(req.User), req)
		if resp != nil || err != nil {
			return resp, err
		}
	}
	resp, err := e.recommend(ctx, l, req)
	if err != nil {
		return nil, err
	}
	if !req.Debug {
		resp.Now = time.Time{}
	}
	return resp, nil
}

// recommend runs the funnel of l's arm for req's user.
func (e *Engine) recommend(ctx context.Context, l *live, req *Request) (*Response, error) {
	l = l.armFor(req.User)
	p, _ := l.pending.Get().(*pending)
	if p == nil {
		p = new(pending)
	}
	defer l.pending.Put(p)
	t := newTimer(e.metrics, req.Debug)
	lc := &l.cfg.Live
	state, seen, storeDown, err := e.userState(ctx, l, req)
	if err != nil {
		return nil, err
	}

	// Retrieval.
	// A fresh Request each time, not one kept in the buffers: a source the
	// mixer gave up on at its deadline may still read it after Mix returns
	// and the buffers serve another request.
	sreq := &sources.Request{User: req.User, Now: state.Now, State: state}
	p.mixed, err = l.mixer.Mix(ctx, sreq, lc.Retrieval.Candidates, seen, p.mixed[:0])
	if err != nil {
		return nil, err
	}
	t.lap("retrieval", len(p.mixed))
	var degraded []string
	if storeDown != "" {
		degraded = append(degraded, storeDown)
	}
	for _, f := range sreq.Failed() {
		degraded = append(degraded, "source "+f)
	}
	e.sources.record(l.names, sreq.FailedSources())
	p.cands = p.cands[:0]
	const ahead = 16 // candidates whose catalog entries are asked for early
	for _, m := range p.mixed[:min(ahead, len(p.mixed))] {
		e.cat.Prefetch(m.Item)
	}
	for i, m := range p.mixed {
		if i+ahead < len(p.mixed) {
			e.cat.Prefetch(p.mixed[i+ahead].Item)
		}
		risk := e.cat.Risk(m.Item)
		if risk >= TakenDown {
			continue // whatever the rules say
		}
		// The mixer's order is the first stage's input order; its score
		// breaks no tie that the first stage does not.
		p.cands = append(p.cands, rank.Candidate{
			Item: m.Item, ID: e.cat.ID(m.Item), Risk: risk,
			Sources: m.Sources, Value: m.Score, First: float32(-i),
		})
	}

	// Ranking. A ranker that fails (a remote stage) is passed over, as a
	// failing source is: the list keeps the previous stage's order.
	rreq := rank.NewRequest(state, e.cat)
	rreq.Arm, rreq.Revision = l.arm, l.revision
	defer rreq.Release()
	passedOver := false
	top, _, err := l.first.Rank(ctx, rreq, p.cands, lc.FirstStage.Keep)
	if err != nil {
		e.fallBack(ctx, config.StageRankerFirst, err)
		passedOver = true
		degraded = append(degraded, "stage "+config.StageRankerFirst+": "+err.Error())
		top = rank.TopK(p.cands, lc.FirstStage.Keep)
	}
	t.lap("ranker-first", len(top))
	ranked, heads, err := l.second.Rank(ctx, rreq, top, lc.SecondStage.Keep)
	if err != nil {
		e.fallBack(ctx, config.StageRankerSecond, err)
		passedOver = true
		degraded = append(degraded, "stage "+config.StageRankerSecond+": "+err.Error())
		ranked = rank.TopK(top, lc.SecondStage.Keep)
	}
	t.lap("ranker-second", len(ranked))

	// Final rerank. Only the rules and the answer read authors, so only
	// the second stage's survivors look theirs up: a lookup is a cache
	// miss or two, 3% of a request's CPU for all the mixed candidates.
	for i := range ranked {
		ranked[i].Author = e.cat.Author(ranked[i].Item)
	}
	var before map[uint32]float32
	if req.batch {
		before = make(map[uint32]float32, len(ranked))
		for _, c := range ranked {
			before[c.Item] = c.Value
		}
	}
	final := l.rules.Apply(ranked, min(req.N, lc.Rerank.Size))
	t.lap("rerank", len(final))
	resp := l.response(req, final, heads)
	if req.batch {
		resp.ranked = make([]float32, len(final))
		for i, c := range final {
			resp.ranked[i] = before[c.Item]
		}
	}
	resp.Degraded = degraded
	resp.Now = state.Now
	if !req.batch {
		e.arms.served(e.attributedArm(l, rreq, passedOver), req.User, resp.Items)
		e.logServed(l, req, resp, final, heads)
	}
	if req.Debug {
		resp.Timings = t.timings
	}
	return resp, nil
}

// userStateTimeout bounds the reads of a request's user state: a store
// that does not answer in time (a hanging Redis) leaves the answer
// non-personalised, and saying so, rather than failing every request.
const userStateTimeout = 250 * time.Millisecond

// userState reads, once, what the request needs of its user. When the
// store fails or is slow, the user is served as one with no history (and
// nothing filtered as seen); why is returned as degraded. Only the
// request's own end is an error.
func (e *Engine) userState(ctx context.Context, l *live, req *Request) (*store.UserState, *store.Filter, string, error) {
	rctx := ctx
	if _, inProcess := e.state.(*store.Memory); !inProcess {
		// Only a remote store can hang; the Memory store answers from
		// memory, and a deadline is a timer and three objects a request.
		var cancel context.CancelFunc
		rctx, cancel = context.WithTimeout(ctx, userStateTimeout)
		defer cancel()
	}
	state := &store.UserState{User: req.User, Now: e.clock.now(rctx, l.cfg.Live.Clock, req.Now)}
	seen, err := e.readUser(rctx, l, state)
	if err == nil {
		return state, seen, "", nil
	}
	if ctx.Err() != nil {
		return nil, nil, "", ctx.Err()
	}
	e.fallBack(ctx, "store", err)
	return &store.UserState{User: req.User, Now: state.Now}, nil, "store: " + err.Error(), nil
}

func (e *Engine) readUser(ctx context.Context, l *live, state *store.UserState) (*store.Filter, error) {
	var err error
	if state.Engagements, err = e.state.RecentEngagements(ctx, state.User, l.engagements); err != nil {
		return nil, fmt.Errorf("failed to read recent engagements: %w", err)
	}
	if state.Follows, err = e.state.Follows(ctx, state.User); err != nil {
		return nil, fmt.Errorf("failed to read follows: %w", err)
	}
	seen, err := e.state.Seen(ctx, state.User)
	if err != nil {
		return nil, fmt.Errorf("failed to read seen items: %w", err)
	}
	return seen, nil
}

// logServed logs the list of resp when the served-lists log samples req:
// final holds the served candidates, with the second stage's probability
// of each of heads when it ranked them (nil heads otherwise).
func (e *Engine) logServed(l *live, req *Request, resp *Response, final []rank.Candidate, heads []string) {
	rate := l.cfg.Live.ServedSampleRate
	if e.datalog == nil || !datalog.Sampled(rate, req.ID) {
		return
	}
	s := datalog.Served{
		RequestID: req.ID, User: req.User, Arm: resp.Arm, Revision: resp.Revision, Time: resp.Now,
		Precomputed: resp.Precomputed, Heads: heads, Items: make([]datalog.ServedItem, len(resp.Items)),
	}
	for i, it := range resp.Items {
		s.Items[i] = datalog.ServedItem{Item: it.ID, Author: it.Author, Score: it.Score, Sources: it.Sources}
		if i < len(final) && len(final[i].Probs) == len(heads) {
			s.Items[i].Probs = slices.Clone(final[i].Probs)
		}
	}
	e.datalog.Served(rate, s)
}

// response is the client's answer of the final list.
func (l *live) response(req *Request, final []rank.Candidate, heads []string) *Response {
	resp := responses.Get().(*Response)
	*resp = Response{RequestID: req.ID, User: req.User, Revision: l.revision, Arm: l.arm, Items: slices.Grow(resp.Items[:0], len(final))}
	for _, c := range final {
		it := Item{ID: c.ID, Author: c.Author, Score: float64(c.Value), Risk: float64(c.Risk), Sources: l.sourceNames(c.Sources)}
		if req.Debug && len(c.Probs) == len(heads) {
			it.Heads = map[string]float64{}
			for j, h := range heads {
				it.Heads[h] = float64(c.Probs[j])
			}
		}
		resp.Items = append(resp.Items, it)
	}
	return resp
}

// timer records the time and the candidates of each stage of a request.
type timer struct {
	metrics *metrics
	mark    time.Time
	timings map[string]float64 // only a debug request reports them
}

func newTimer(m *metrics, debug bool) *timer {
	t := &timer{metrics: m, mark: time.Now()}
	if debug {
		t.timings = map[string]float64{}
	}
	return t
}

func (t *timer) lap(stage string, n int) {
	d := time.Since(t.mark)
	t.mark = time.Now()
	t.metrics.stage.WithLabelValues(stage).Observe(d.Seconds())
	t.metrics.candidates.WithLabelValues(stage).Observe(float64(n))
	if t.timings != nil {
		t.timings[stage] = float64(d.Microseconds()) / 1000
	}
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
