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
	"bufio"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// ErrPrecomputeRunning answers a precompute run asked for while another
// runs.
var ErrPrecomputeRunning = errors.New("a precompute run is already going on")

// Bounds of a precompute run.
const (
	// precomputeBatch is how many lists a run stores at once.
	precomputeBatch = 500
	// maxUsersFile bounds the users file of config.Precompute.UsersURI.
	maxUsersFile = 1 << 30
	// usersFileTimeout bounds reading it.
	usersFileTimeout = 5 * time.Minute
)

// batch runs precompute runs and serves their lists: the off-peak half
// of the funnel. A run selects users (the most active within a window on
// the event clock, and a file of ids), runs the whole funnel for each,
// as a request would, and stores the final lists in the store with an
// expiry; a request of a user with a fresh list of its arm and config
// revision is then answered from it through the filters that may have
// changed since (seen, see-less, integrity) and the rerank rules,
// without the funnel.
type batch struct {
	lists    store.ListStore      // nil when the store keeps no lists
	activity store.ActivityReader // nil when it cannot select users

	mu      sync.Mutex
	last    *config.PrecomputeRun // the last run, finished or not
	running bool
	cancel  context.CancelFunc // stops the run going on
	done    chan struct{}      // closed when the last run ended

	hits, misses, stale atomic.Int64
	requests            *prometheus.CounterVec
	age                 prometheus.Histogram
	stored              prometheus.Counter
	perUser             prometheus.Histogram
}

func newBatch(st store.Store, reg prometheus.Registerer) *batch {
	b := &batch{}
	b.lists, _ = st.(store.ListStore)
	b.activity, _ = st.(store.ActivityReader)
	f := promauto.With(reg)
	b.requests = f.NewCounterVec(prometheus.CounterOpts{
		Name: "recpipeline_precomputed_requests_total",
		Help: "Recommendation requests a precomputed list was looked up for, by result: hit (answered from it), miss (none fresh for the user), stale (of another arm or config revision, or too short once filtered).",
	}, []string{"result"})
	b.age = f.NewHistogram(prometheus.HistogramOpts{
		Name: "recpipeline_precomputed_age_seconds", Help: "Age of the precomputed lists served, on the engine's clock.",
		Buckets: prometheus.ExponentialBuckets(60, 2, 12),
	})
	b.stored = f.NewCounter(prometheus.CounterOpts{
		Name: "recpipeline_precomputed_lists_stored_total", Help: "Lists stored by this pod's precompute runs.",
	})
	b.perUser = f.NewHistogram(prometheus.HistogramOpts{
		Name: "recpipeline_precompute_user_duration_seconds", Help: "Time to compute one user's list in a precompute run.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	return b
}

func (b *batch) count(result string) {
	switch result {
	case "hit":
		b.hits.Add(1)
	case "miss":
		b.misses.Add(1)
	default:
		b.stale.Add(1)
	}
	b.requests.WithLabelValues(result).Inc()
}

// PrecomputeCounts reports the last run and the lookups, for /v1/status;
// nil when the live config precomputes nothing and no run was made.
func (e *Engine) PrecomputeCounts() *config.PrecomputeCounts {
	if e.batch == nil {
		return nil
	}
	b := e.batch
	b.mu.Lock()
	var last *config.PrecomputeRun
	if b.last != nil {
		r := *b.last
		last = &r
	}
	b.mu.Unlock()
	l := e.live.Load()
	if last == nil && (l == nil || l.cfg.Live.Precompute == nil) {
		return nil
	}
	return &config.PrecomputeCounts{LastRun: last, Hits: b.hits.Load(), Misses: b.misses.Load(), Stale: b.stale.Load()}
}

// LastPrecompute returns the last precompute run, nil when none was made.
func (e *Engine) LastPrecompute() *config.PrecomputeRun {
	if c := e.PrecomputeCounts(); c != nil {
		return c.LastRun
	}
	return nil
}

// StartPrecompute starts a precompute run of the live config's
// Precompute in the background and returns it as started; the run stops
// at deadline (0: DefaultPrecomputeDeadline). It fails with
// ErrPrecomputeRunning while another runs, and with ErrBadRequest when
// the live config precomputes nothing or the store cannot keep lists.
func (e *Engine) StartPrecompute(deadline time.Duration) (*config.PrecomputeRun, error) {
	if !e.roles.frontend {
		return nil, ErrNotFrontend
	}
	l := e.live.Load()
	if l == nil {
		return nil, ErrNoConfig
	}
	p := l.cfg.Live.Precompute
	if p == nil {
		return nil, fmt.Errorf("%w: the live config has no precompute section", ErrBadRequest)
	}
	b := e.batch
	if b.lists == nil || (p.ActiveWithin > 0 && b.activity == nil) {
		return nil, fmt.Errorf("%w: the %s store cannot keep precomputed lists", ErrBadRequest, e.storeTy)
	}
	if deadline <= 0 {
		deadline = DefaultPrecomputeDeadline
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running {
		return nil, ErrPrecomputeRunning
	}
	started := time.Now()
	run := &config.PrecomputeRun{ID: strconv.FormatInt(started.UnixMilli(), 36), Started: started.UTC(), Revision: l.revision}
	b.last, b.running = run, true
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		defer cancel()
		err := e.precompute(ctx, l, p, run)
		b.mu.Lock()
		defer b.mu.Unlock()
		run.Finished = time.Now().UTC()
		if err != nil {
			run.Error = err.Error()
			e.log.Error("A precompute run failed", "run", run.ID, "users", run.Users, "done", run.Done, "failed", run.Failed, "err", err)
		} else {
			e.log.Info("A precompute run finished", "run", run.ID, "users", run.Users, "stored", run.Stored, "failed", run.Failed,
				"seconds", run.Finished.Sub(run.Started).Seconds())
		}
		b.running = false
	}()
	r := *run
	return &r, nil
}

// DefaultPrecomputeDeadline bounds a precompute run whose caller set no
// deadline.
const DefaultPrecomputeDeadline = time.Hour

// precomputeUserTimeout bounds the funnel of one user of a run: a stage
// that hangs costs the run that user, not the run.
const precomputeUserTimeout = 10 * time.Second

// precompute runs one precompute run for l, recording its progress in run
// under b.mu. A user whose funnel fails is passed over and counted in
// run.Failed; the run fails when the lists cannot be stored, when it is
// stopped (its deadline, the engine's close) or when every user failed.
func (e *Engine) precompute(ctx context.Context, l *live, p *config.Precompute, run *config.PrecomputeRun) error {
	b := e.batch
	users, err := e.precomputeUsers(ctx, l, p)
	if err != nil {
		return err
	}
	b.mu.Lock()
	run.Users = len(users)
	b.mu.Unlock()
	if len(users) == 0 {
		return nil
	}
	// The storing loop below cancels the workers when a store fails.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, failedUsers atomic.Int64
	var firstErr atomic.Pointer[error]
	out := make(chan store.List, 2*precomputeBatch)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if int(i) >= len(users) || ctx.Err() != nil {
					return
				}
				start := time.Now()
				list, err := e.computeList(ctx, l, p, users[i])
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					failedUsers.Add(1)
					err = fmt.Errorf("user %q: %w", users[i], err)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				b.perUser.Observe(time.Since(start).Seconds())
				if list != nil {
					select {
					case out <- *list:
					case <-ctx.Done():
						return
					}
				}
			}
		})
	}
	go func() { wg.Wait(); close(out) }()

	buf := make([]store.List, 0, precomputeBatch)
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := b.lists.PutLists(ctx, buf, buf[0].Created); err != nil {
			return fmt.Errorf("failed to store lists: %w", err)
		}
		b.stored.Add(float64(len(buf)))
		b.mu.Lock()
		run.Stored += len(buf)
		b.mu.Unlock()
		buf = buf[:0]
		return nil
	}
	var storeErr error
	for list := range out {
		if storeErr != nil {
			continue // drain: the workers stop at the cancelled context
		}
		buf = append(buf, list)
		if len(buf) == precomputeBatch {
			if storeErr = flush(); storeErr != nil {
				cancel(storeErr)
			}
		}
		b.mu.Lock()
		run.Done, run.Failed = int(next.Load()), int(failedUsers.Load())
		b.mu.Unlock()
	}
	if storeErr == nil && ctx.Err() == nil {
		storeErr = flush()
	}
	b.mu.Lock()
	run.Done, run.Failed = min(int(next.Load()), len(users)), int(failedUsers.Load())
	b.mu.Unlock()
	switch {
	case storeErr != nil:
		return storeErr
	case ctx.Err() != nil:
		return fmt.Errorf("stopped after %d of %d users: %w", run.Done, len(users), context.Cause(ctx))
	case int(failedUsers.Load()) == len(users):
		return fmt.Errorf("the funnel failed for every user, the first: %w", *firstErr.Load())
	}
	if err := firstErr.Load(); err != nil {
		e.log.Warn("A precompute run passed over users whose funnel failed", "run", run.ID, "failed", run.Failed, "first", *err)
	}
	return nil
}

// precomputeUsers selects the users of a run: the most active within
// p.ActiveWithin before the engine's now, then those of p.UsersURI not
// among them.
func (e *Engine) precomputeUsers(ctx context.Context, l *live, p *config.Precompute) ([]string, error) {
	var users []string
	seen := map[string]bool{}
	if p.ActiveWithin > 0 {
		now := e.clock.now(ctx, l.cfg.Live.Clock, time.Now())
		limit := p.Top
		if limit == 0 {
			limit = config.DefaultPrecomputeUsers
		}
		active, err := e.batch.activity.ActiveUsers(ctx, now.Add(-time.Duration(p.ActiveWithin)), limit)
		if err != nil {
			return nil, fmt.Errorf("failed to select the active users: %w", err)
		}
		for _, a := range active {
			seen[a.User] = true
			users = append(users, a.User)
		}
	}
	if p.UsersURI != "" {
		listed, err := readUsers(ctx, p.UsersURI)
		if err != nil {
			return nil, err
		}
		for _, u := range listed {
			if !seen[u] {
				seen[u] = true
				users = append(users, u)
			}
		}
	}
	return users, nil
}

// readUsers reads a file of user ids, one per line; blank lines and lines
// starting with # are skipped.
func readUsers(ctx context.Context, uri string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, usersFileTimeout)
	defer cancel()
	r, err := fetch.Open(ctx, uri, fetch.Options{MaxBytes: maxUsersFile, LimitLocal: true})
	if err != nil {
		return nil, fmt.Errorf("failed to open the users file %s: %w", fetch.Redact(uri), err)
	}
	defer func() { _ = r.Close() }()
	var users []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) > 256 {
			return nil, fmt.Errorf("failed to read the users file %s: line %d: a user id is at most 256 bytes", uri, n)
		}
		if len(users) == config.MaxPrecomputeUsers {
			return nil, fmt.Errorf("failed to read the users file %s: it lists more than %d users", uri, config.MaxPrecomputeUsers)
		}
		users = append(users, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the users file %s: %w", uri, err)
	}
	return users, nil
}

// computeList runs the funnel for user as a request of p.Size items
// would, and returns the list to store; nil when the funnel found
// nothing.
func (e *Engine) computeList(ctx context.Context, l *live, p *config.Precompute, user string) (*store.List, error) {
	ctx, cancel := context.WithTimeout(ctx, precomputeUserTimeout)
	defer cancel()
	req := &Request{User: user, N: p.Size, Now: time.Now(), batch: true}
	resp, err := e.recommend(ctx, l, req)
	if err != nil {
		return nil, err
	}
	if len(resp.Items) == 0 {
		return nil, nil
	}
	list := &store.List{User: user, Arm: resp.Arm, Revision: resp.Revision, Created: resp.Now, Expires: resp.Now.Add(time.Duration(p.TTL))}
	list.Items = make([]store.ListItem, len(resp.Items))
	for i, it := range resp.Items {
		// The value before the rerank rules, which apply again when the
		// list is served.
		list.Items[i] = store.ListItem{Item: it.ID, Score: float64(resp.ranked[i]), Sources: it.Sources}
	}
	return list, nil
}

// fromList answers req from the user's precomputed list when one is
// fresh for l's arm and revision and keeps at least the items asked for
// once filtered; nil otherwise.
func (e *Engine) fromList(ctx context.Context, l *live, req *Request) (*Response, error) {
	b := e.batch
	t := newTimer(e.metrics, req.Debug)
	rctx, cancel := context.WithTimeout(ctx, userStateTimeout)
	defer cancel()
	now := e.clock.now(rctx, l.cfg.Live.Clock, req.Now)
	list, err := b.lists.UserList(rctx, req.User, now)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.fallBack(ctx, "store", err)
		return nil, nil
	}
	if list == nil {
		b.count("miss")
		return nil, nil
	}
	if list.Arm != l.arm || list.Revision != l.revision {
		b.count("stale")
		return nil, nil
	}
	seen, err := e.state.Seen(rctx, req.User)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		e.fallBack(ctx, "store", err)
		return nil, nil
	}
	want := min(req.N, l.cfg.Live.Rerank.Size)
	cands := make([]rank.Candidate, 0, len(list.Items))
	for _, it := range list.Items {
		o, ok := e.cat.Ordinal(it.Item)
		if !ok {
			continue
		}
		author := e.cat.Author(o)
		risk := e.cat.Risk(o)
		if risk >= TakenDown || seen.Excludes(it.Item, author) {
			continue
		}
		c := rank.Candidate{Item: o, ID: it.Item, Author: author, Risk: risk, Value: float32(it.Score)}
		for _, s := range it.Sources {
			if i := slices.Index(l.names, s); i >= 0 {
				c.Sources.Add(i)
			}
		}
		cands = append(cands, c)
	}
	final := l.rules.Apply(cands, want)
	if len(final) < want {
		b.count("stale")
		return nil, nil
	}
	b.count("hit")
	b.age.Observe(now.Sub(list.Created).Seconds())
	t.lap("precomputed", len(final))
	resp := l.response(req, final, nil)
	resp.Precomputed = true
	resp.Now = now
	e.arms.served(l.arm, req.User, resp.Items)
	e.logServed(l, req, resp, final, nil)
	if req.Debug {
		resp.Timings = t.timings
	} else {
		resp.Now = time.Time{}
	}
	return resp, nil
}

// RecommendPrecomputed answers req from the user's precomputed list when
// there is a fresh one that fills the answer and the live config's
// Precompute.Serve is not PrecomputeNever; nil otherwise. The server calls it when it
// is saturated.
func (e *Engine) RecommendPrecomputed(ctx context.Context, req *Request) (*Response, error) {
	if !e.roles.frontend || e.batch == nil || e.batch.lists == nil {
		return nil, nil
	}
	l := e.live.Load()
	if l == nil || l.cfg.Live.Precompute == nil || l.cfg.Live.Precompute.Serve == config.PrecomputeNever {
		return nil, nil
	}
	return e.fromList(ctx, l.armFor(req.User), req)
}

// close stops a precompute run going on and waits for it.
func (b *batch) close() {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}
