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
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// armLive is an experiment's compiled live config and its slice of the
// buckets: users whose bucket falls in [from, upTo) are in it.
type armLive struct {
	from, upTo float64
	l          *live
}

// compileExperiments compiles each experiment of cfg as an arm of l, the
// control arm.
func (e *Engine) compileExperiments(cfg *config.Config, l *live) error {
	lc := &cfg.Live
	if len(lc.Experiments) == 0 {
		return nil
	}
	l.arm, l.salt = config.ControlArm, lc.ExperimentSalt
	if l.salt == "" {
		l.salt = cfg.Pipeline
	}
	upTo := 0.0
	for i := range lc.Experiments {
		x := &lc.Experiments[i]
		armCfg := *cfg
		armCfg.Live = lc.Arm(x)
		// A shadow compares with what the control arm serves.
		armCfg.Live.FirstStage.Shadow, armCfg.Live.SecondStage.Shadow = nil, nil
		al, err := e.compileArm(&armCfg)
		if err != nil {
			return fmt.Errorf("live.experiments[%d] (%s): %w", i, x.Name, err)
		}
		al.arm = x.Name
		from := upTo
		if x.From != nil {
			from = *x.From
		}
		upTo = from + x.Traffic
		l.arms = append(l.arms, armLive{from: from, upTo: upTo, l: al})
	}
	return nil
}

// setRevision stamps l and its arms with the config revision.
func (l *live) setRevision(revision string) {
	l.revision = revision
	for _, a := range l.arms {
		a.l.revision = revision
	}
}

// bucket maps a user to [0, 1), uniformly and stably for a salt: the same
// on every replica and every stage. SHA-256, not FNV: FNV's high bits are
// far from uniform over ids that differ in their last characters.
func bucket(salt, user string) float64 {
	h := sha256.New()
	_, _ = h.Write([]byte(salt))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(user))
	var sum [sha256.Size]byte
	return float64(binary.BigEndian.Uint64(h.Sum(sum[:0]))>>11) / (1 << 53)
}

// armFor is the live config that serves user: the arm its bucket falls in,
// or l, the control arm.
func (l *live) armFor(user string) *live {
	if len(l.arms) == 0 {
		return l
	}
	b := bucket(l.salt, user)
	for _, a := range l.arms {
		if a.from <= b && b < a.upTo {
			return a.l
		}
	}
	return l
}

// armNamed is the arm called name, or l when it has none of that name.
func (l *live) armNamed(name string) *live {
	for _, a := range l.arms {
		if a.l.arm == name {
			return a.l
		}
	}
	return l
}

// defaultServedPairs is how many served (user, item) pairs the frontend
// remembers to attribute events to the arm that served the item.
const defaultServedPairs = 200000

// unattributed labels the events of items no remembered arm served.
const unattributed = "unattributed"

// armStats counts, per arm, the requests served and the events earned by
// what each arm served. Events are attributed by the (user, item) pairs
// this process served last (a bounded memory, evicted oldest first): an
// event for an item served before the process started, by another replica
// or too long ago counts as unattributed.
type armStats struct {
	requests *prometheus.CounterVec
	events   *prometheus.CounterVec

	mu     sync.Mutex
	byPair map[uint64]string
	ring   []uint64 // pairs in the order served, for eviction
	pairs  int      // the most pairs remembered
	next   int
	counts map[string]*config.ArmCounts
	// perUser holds, by arm, each user's counts by event type, for the
	// moments.
	perUser map[string]map[string]map[string]int64

	// rec, when the store is shared by frontend replicas, remembers the
	// served pairs for all of them; a worker writes what pending holds.
	rec     store.ArmRecorder
	log     *slog.Logger
	pending chan servedList // never closed: served may still send to it
	stop    context.CancelFunc
	done    chan struct{}
	dropped prometheus.Counter
}

// servedList is one answer's items, to record in the shared store.
type servedList struct {
	arm, user string
	items     []string
}

// pendingLists bounds the answers waiting to be recorded in the shared
// store; more are dropped (and counted) rather than slow the answers.
const pendingLists = 4096

// storeTimeout bounds one write or lookup of served arms in the store.
const storeTimeout = 250 * time.Millisecond

// share makes the stats record served pairs in rec, a store the frontend
// replicas share, and look there for the pairs this process did not serve.
func (s *armStats) share(rec store.ArmRecorder, log *slog.Logger) {
	s.rec, s.log = rec, log
	s.pending, s.done = make(chan servedList, pendingLists), make(chan struct{})
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.record(ctx)
}

// record writes the pending answers to the store until ctx ends; what is
// still pending then is dropped (a stopping process).
func (s *armStats) record(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-s.pending:
			wctx, cancel := context.WithTimeout(ctx, storeTimeout)
			if err := s.rec.RecordServed(wctx, l.arm, l.user, l.items); err != nil {
				s.dropped.Inc()
				s.log.Debug("Failed to record the arm served", "error", err)
			}
			cancel()
		}
	}
}

// close stops the worker, at once: a write in flight is cancelled.
func (s *armStats) close() {
	if s.stop != nil {
		s.stop()
		<-s.done
	}
}

func newArmStats(reg prometheus.Registerer, pairs int) *armStats {
	f := promauto.With(reg)
	return &armStats{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_arm_requests_total", Help: "Recommendations served, by experiment arm.",
		}, []string{"arm"}),
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_arm_events_total", Help: "Events on served items, by the experiment arm that served the item and event type.",
		}, []string{"arm", "type"}),
		dropped: f.NewCounter(prometheus.CounterOpts{
			Name: "recpipeline_arm_served_unrecorded_total", Help: "Answers of an experiment arm not recorded in the shared store (queue full or store error); their events count as unattributed on other replicas.",
		}),
		// The ring grows as arms serve: a process without experiments
		// holds none of it.
		byPair: map[uint64]string{}, pairs: pairs, counts: map[string]*config.ArmCounts{}, perUser: map[string]map[string]map[string]int64{},
	}
}

func pairKey(user, item string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(user))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(item))
	return h.Sum64()
}

func (s *armStats) count(arm string) *config.ArmCounts {
	c := s.counts[arm]
	if c == nil {
		c = &config.ArmCounts{Events: map[string]int64{}}
		s.counts[arm] = c
	}
	return c
}

// attributedArm is the arm whose counts an answer of l to req joins: l's
// arm, or unattributed when the arm's config did not rank it: a ranker
// stage ranked it with another config revision (a config still
// propagating to the stage, which knew other arms or none and ranked with
// its control arm's config), or a ranker stage was passed over (failed or
// late: under load a whole arm can be served unranked). An arm is then
// measured only on what its own config ranked; the answers passed over
// are counted for the arm (PassedOver), so that a canary whose ranker
// fails is seen to.
func (e *Engine) attributedArm(l *live, req *rank.Request, passedOver bool) string {
	stale := req.Stale()
	for _, stage := range stale {
		e.metrics.stale.WithLabelValues(stage).Inc()
	}
	if l.arm == "" {
		return ""
	}
	if passedOver {
		e.arms.passedOver(l.arm)
	}
	if passedOver || len(stale) > 0 {
		return unattributed
	}
	return l.arm
}

// passedOver counts an answer of arm that went without a ranker stage.
func (s *armStats) passedOver(arm string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(arm).PassedOver++
}

// served records that arm served items to user; nothing without an arm.
func (s *armStats) served(arm, user string, items []Item) {
	if arm == "" {
		return
	}
	s.requests.WithLabelValues(arm).Inc()
	if s.rec != nil && len(items) > 0 {
		ids := make([]string, len(items))
		for i := range items {
			ids[i] = items[i].ID
		}
		select {
		case s.pending <- servedList{arm: arm, user: user, items: ids}:
		default:
			s.dropped.Inc()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count(arm).Requests++
	for _, it := range items {
		k := pairKey(user, it.ID)
		if len(s.ring) < s.pairs {
			s.ring = append(s.ring, k)
		} else {
			if old := s.ring[s.next]; old != k {
				delete(s.byPair, old)
			}
			s.ring[s.next] = k
			s.next = (s.next + 1) % len(s.ring)
		}
		s.byPair[k] = arm
	}
}

// attribute counts the events on items to the arms that served them: the
// pairs this process served, then, with a shared store, those another
// replica served. l is the live config serving now.
func (s *armStats) attribute(ctx context.Context, events []store.Event, l *live) {
	s.mu.Lock()
	if len(s.counts) == 0 && (l == nil || len(l.arms) == 0) {
		s.mu.Unlock()
		return // no arm serves or has served anything
	}
	// Built only when arms are at work: every event batch passes here.
	serving := map[string]bool{}
	if l != nil {
		for _, a := range l.arms {
			serving[a.l.arm] = true
		}
		serving[l.arm] = true
	}
	var elsewhere []store.Event
	for i := range events {
		ev := &events[i]
		if ev.User == "" || ev.Item == "" || ev.Type == store.NewItem {
			continue
		}
		arm, ok := s.byPair[pairKey(ev.User, ev.Item)]
		switch {
		case ok && serving[arm]:
			s.countEvent(arm, ev.User, ev.Type)
		case ok:
			s.countEvent(unattributed, ev.User, ev.Type) // an arm that has ended
		case s.rec != nil:
			elsewhere = append(elsewhere, *ev)
		default:
			s.countEvent(unattributed, ev.User, ev.Type)
		}
	}
	s.mu.Unlock()
	if len(elsewhere) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	arms, err := s.rec.ServedBy(ctx, elsewhere)
	if err != nil {
		s.log.Debug("Failed to read the arms that served", "error", err)
		arms = make([]string, len(elsewhere))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range elsewhere {
		arm := arms[i]
		if !serving[arm] {
			arm = unattributed // none, or an arm that has ended
		}
		s.countEvent(arm, elsewhere[i].User, elsewhere[i].Type)
	}
}

// countEvent counts one event for arm; s.mu is held.
func (s *armStats) countEvent(arm, user string, typ store.EventType) {
	c := s.count(arm)
	c.Events[string(typ)]++
	s.events.WithLabelValues(arm, string(typ)).Inc()
	if arm == unattributed {
		return
	}
	s.addMoment(arm, user, string(typ), c)
}

// maxMomentUsers bounds the users whose counts the moments keep per arm;
// the events of users past it are counted, not summed into the moments.
const maxMomentUsers = 500000

// addMoment adds one event of typ by user to the arm's moments: the
// user's count of typ grows by one, so Σ k_typ² grows by 2k+1 and each
// Σ k_other·k_typ by k_other. s.mu is held.
func (s *armStats) addMoment(arm, user, typ string, c *config.ArmCounts) {
	users := s.perUser[arm]
	if users == nil {
		users = map[string]map[string]int64{}
		s.perUser[arm] = users
	}
	k := users[user]
	if k == nil {
		if len(users) >= maxMomentUsers {
			return
		}
		k = map[string]int64{}
		users[user] = k
		c.Users++
	}
	if c.Moments == nil {
		c.Moments = map[string]float64{}
	}
	n := k[typ]
	c.Moments[config.MomentKey(typ, typ)] += float64(2*n + 1)
	for other, m := range k {
		if other != typ {
			c.Moments[config.MomentKey(other, typ)] += float64(m)
		}
	}
	k[typ] = n + 1
}

// snapshot copies the counts, for /v1/status; nil when no arm has served.
func (s *armStats) snapshot() map[string]config.ArmCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.counts) == 0 {
		return nil
	}
	out := make(map[string]config.ArmCounts, len(s.counts))
	for arm, c := range s.counts {
		out[arm] = config.ArmCounts{Requests: c.Requests, PassedOver: c.PassedOver, Events: maps.Clone(c.Events), Users: c.Users, Moments: maps.Clone(c.Moments)}
	}
	return out
}

// keepOnly forgets the counts and metric series of the arms that l does
// not serve (a finished rollout's arms, named after its revision, would
// otherwise accumulate for the life of the process). The control arm and
// the unattributed events are kept while l has arms.
func (s *armStats) keepOnly(l *live) {
	keep := map[string]bool{}
	if len(l.arms) > 0 {
		keep[config.ControlArm], keep[unattributed] = true, true
	}
	for _, a := range l.arms {
		keep[a.l.arm] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for arm, c := range s.counts {
		if keep[arm] {
			continue
		}
		delete(s.counts, arm)
		delete(s.perUser, arm)
		s.requests.DeleteLabelValues(arm)
		for typ := range c.Events {
			s.events.DeleteLabelValues(arm, typ)
		}
	}
}
