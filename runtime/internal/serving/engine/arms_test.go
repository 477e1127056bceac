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
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/testredis"
)

func TestBucketsAreStableAndUniform(t *testing.T) {
	const users = 20000
	l := &live{arm: config.ControlArm, salt: "s", arms: []armLive{{from: 0, upTo: 0.2, l: &live{arm: "a"}}, {from: 0.2, upTo: 0.5, l: &live{arm: "b"}}}}
	n := map[string]int{}
	for i := range users {
		u := fmt.Sprintf("user-%d", i)
		arm := l.armFor(u).arm
		if again := l.armFor(u).arm; again != arm {
			t.Fatalf("%s is in %s, then in %s", u, arm, again)
		}
		n[arm]++
	}
	for arm, want := range map[string]float64{"a": 0.2, "b": 0.3, config.ControlArm: 0.5} {
		// Binomial standard error at 20,000 users is at most 0.0035.
		if got := float64(n[arm]) / users; math.Abs(got-want) > 0.015 {
			t.Errorf("arm %s has %.3f of the users, want %.2f", arm, got, want)
		}
	}
	other := &live{arm: config.ControlArm, salt: "t", arms: l.arms}
	moved := 0
	for i := range 1000 {
		u := fmt.Sprintf("user-%d", i)
		if l.armFor(u).arm != other.armFor(u).arm {
			moved++
		}
	}
	if moved < 200 {
		t.Errorf("another salt moved %d of 1000 users, want a reshuffle", moved)
	}
}

func TestArmsServeTheirOverridesAndEarnTheirEvents(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	short := 5
	withArm := *cfg
	withArm.Live.Experiments = []config.Experiment{{
		Name: "short", Traffic: 0.5,
		Weights: map[string]float64{"like": -50},
		Sources: []config.SourceOverride{{Name: "trending", Limit: &short}},
		Rerank:  &config.Rerank{Size: 5, Rules: cfg.Live.Rerank.Rules},
	}}
	if err := e.Apply(&withArm, "r-arms"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	now := time.Now()
	inArm, inControl := "", ""
	for i := 0; i < 200 && (inArm == "" || inControl == ""); i++ {
		u := fmt.Sprintf("u%d", i)
		r := recommend(t, e, u, 10, now)
		switch r.Arm {
		case "short":
			if len(r.Items) != 5 {
				t.Errorf("%s in arm short got %d items, want the arm's rerank size 5", u, len(r.Items))
			}
			inArm = u
		case config.ControlArm:
			if len(r.Items) != 10 {
				t.Errorf("%s in the control arm got %d items, want 10", u, len(r.Items))
			}
			inControl = u
		default:
			t.Fatalf("%s: arm %q", u, r.Arm)
		}
		if r.Revision != "r-arms" {
			t.Errorf("revision %q", r.Revision)
		}
	}
	if inArm == "" || inControl == "" {
		t.Fatalf("200 users did not fill both arms (arm %q, control %q)", inArm, inControl)
	}
	// The arm's weights are its own: like weighs -50 in it.
	l := e.live.Load().armFor(inArm)
	if w := l.cfg.Live.Weights["like"]; w != -50 {
		t.Errorf("the arm's like weight is %v", w)
	}

	served := recommend(t, e, inArm, 10, now).Items[0].ID
	ingest(t, e,
		store.Event{User: inArm, Item: served, Type: store.Click, Time: now},
		store.Event{User: inArm, Item: "never-served", Type: store.Click, Time: now},
	)
	stats := e.arms.snapshot()
	if got := stats["short"].Events["click"]; got != 1 {
		t.Errorf("clicks attributed to arm short: %d, want 1 (%+v)", got, stats)
	}
	if got := stats[unattributed].Events["click"]; got != 1 {
		t.Errorf("unattributed clicks: %d, want 1", got)
	}
	if stats["short"].Requests < 2 || stats[config.ControlArm].Requests < 1 {
		t.Errorf("requests per arm %+v", stats)
	}
	if got := e.ArmCounts()["short"].Events["click"]; got != 1 {
		t.Errorf("the status reports %d clicks for arm short, want 1", got)
	}

}

// openStage opens an engine that runs stage alone, with cfg applied.
func openStage(t *testing.T, cfg *config.Config, stage string) *Engine {
	t.Helper()
	e, err := Open(context.Background(), cfg, Options{Stage: stage, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	if err := e.Apply(cfg, "r1"); err != nil {
		t.Fatal(err)
	}
	return e
}

// catalogCandidates are the first n items of the catalog, as a ranker
// stage receives candidates.
func catalogCandidates(e *Engine, n int) []StageCandidate {
	cands := make([]StageCandidate, n)
	for i := range cands {
		cands[i] = StageCandidate{Item: e.cat.ID(uint32(i))}
	}
	return cands
}

// TestARankerStageRanksWithTheFrontendsArm: the second stage scores with
// the named arm's weights, and with its control arm's for a name it does
// not know (a stage that has not received the config naming the arm yet).
func TestARankerStageRanksWithTheFrontendsArm(t *testing.T) {
	cfg := testConfig(world(t))
	cfg.Live.Experiments = []config.Experiment{{Name: "hate-likes", Traffic: 0.5, Weights: map[string]float64{"like": -50}}}
	e := openStage(t, cfg, config.StageRankerSecond)
	cands := catalogCandidates(e, 50)
	scores := func(arm string) map[string]float32 {
		res, err := e.Rank(context.Background(), &RankCall{User: &store.UserState{User: "u1", Now: time.Now()}, Arm: arm, Candidates: cands})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float32{}
		for _, c := range res.Candidates {
			out[c.Item] = c.Score
		}
		return out
	}
	control, arm, unknown := scores(config.ControlArm), scores("hate-likes"), scores("gone")
	if maps.Equal(control, arm) {
		t.Error("the arm's weights did not change the second stage's scores")
	}
	if !maps.Equal(control, unknown) {
		t.Error("an unknown arm was not ranked as the control arm")
	}
}

// TestAWholeArmServesItsLiveConfigAndFinishedArmsAreForgotten: a rollout's
// candidate arm serves its whole live config; once a config no longer has
// the arm, its counts are dropped, so finished rollouts do not accumulate.
func TestAWholeArmServesItsLiveConfigAndFinishedArmsAreForgotten(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	candidate := cfg.Live
	candidate.Rerank = config.Rerank{Size: 4, Rules: cfg.Live.Rerank.Rules}
	withArm := *cfg
	withArm.Live.Experiments = []config.Experiment{{Name: "rollout-abc", Traffic: 0.5, Live: &candidate}}
	if err := e.Apply(&withArm, "r-rollout"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	now := time.Now()
	seen := map[string]int{}
	for i := 0; i < 100; i++ {
		r := recommend(t, e, fmt.Sprintf("u%d", i), 10, now)
		want := map[string]int{"rollout-abc": 4, config.ControlArm: 10}[r.Arm]
		if len(r.Items) != want {
			t.Fatalf("arm %q served %d items, want %d", r.Arm, len(r.Items), want)
		}
		seen[r.Arm]++
	}
	if seen["rollout-abc"] == 0 || seen[config.ControlArm] == 0 {
		t.Fatalf("100 users did not fill both arms: %v", seen)
	}
	if got := e.ArmCounts()["rollout-abc"].Requests; got != int64(seen["rollout-abc"]) {
		t.Errorf("the arm counts %d requests, served %d", got, seen["rollout-abc"])
	}
	if err := e.Apply(cfg, "r-promoted"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := e.ArmCounts(); got != nil {
		t.Errorf("after the arms ended the counts are %v, want none", got)
	}
}

// TestAnArmRanksWithTheModelItSwitchesTo: an arm that points the second
// stage at another listed model (a rollout's canary, whole, or an
// experiment's override) makes the ranker stage load both, and the arm is
// compiled against the new one; without the arm the stage loads the old
// one only.
func TestAnArmRanksWithTheModelItSwitchesTo(t *testing.T) {
	f := world(t)
	base := testConfig(f)
	// The fixture has one MTML artifact: mtml-v2 is a second entry of it,
	// so the test checks what the stage loads and which model the arm's
	// compiled config names.
	base.Deploy.Models = append(base.Deploy.Models, config.Model{Name: "mtml-v2", URI: "file://" + filepath.Join(f.models, "mtml")})
	canary := base.Live
	canary.SecondStage.Model = "mtml-v2"
	canary.Weights = map[string]float64{"click": 1, "like": -50, "comment": 4, "see_less": -8}
	cases := map[string]config.Experiment{
		"a rollout's canary":       {Name: "rollout-canary-x", Traffic: 0.5, Live: &canary},
		"an experiment's override": {Name: "v2", Traffic: 0.5, SecondStageModel: "mtml-v2"},
	}
	for name, x := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := *base
			cfg.Live.Experiments = []config.Experiment{x}
			e := openStage(t, &cfg, config.StageRankerSecond)
			if e.models["mtml-v2"] == nil || e.models["mtml"] == nil {
				t.Fatalf("the ranker stage loaded %v, want both MTML models", slices.Collect(maps.Keys(e.models)))
			}
			if got := e.live.Load().armNamed(x.Name).cfg.Live.SecondStage.Model; got != "mtml-v2" {
				t.Errorf("the arm ranks with %q", got)
			}
		})
	}
	if got := base.StageModels(config.StageRankerSecond); slices.Contains(got, "mtml-v2") {
		t.Errorf("without the arm the stage loads %v", got)
	}
}

// TestReplicasSharingRedisAttributeEachOthersEvents: with the Redis store,
// an engagement posted to one frontend replica counts for the arm another
// replica served the item in.
func TestReplicasSharingRedisAttributeEachOthersEvents(t *testing.T) {
	srv, err := testredis.Start()
	addr := testredis.Need(t, srv, err)
	t.Cleanup(srv.Stop)
	cfg := testConfig(world(t))
	cfg.Deploy.Store = config.Store{Type: "Redis", Redis: &config.RedisStore{Address: addr, KeyPrefix: "arms-test/"}}
	cfg.Live.Experiments = []config.Experiment{{Name: "hate-likes", Traffic: 0.5, Weights: map[string]float64{"like": -50}}}
	a, b := open(t, cfg, ""), open(t, cfg, "")
	now := time.Now()
	user := ""
	for i := 0; i < 100 && user == ""; i++ {
		if u := fmt.Sprintf("u%d", i); recommend(t, a, u, 10, now).Arm == "hate-likes" {
			user = u
		}
	}
	if user == "" {
		t.Fatal("no user of 100 in the arm")
	}
	served := recommend(t, a, user, 10, now).Items[0].ID
	// The record is written off the request path: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		arms, err := a.state.(store.ArmRecorder).ServedBy(context.Background(), []store.Event{{User: user, Item: served}})
		if err == nil && arms[0] == "hate-likes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the served arm never reached the store: %v %v", arms, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ingest(t, b, store.Event{User: user, Item: served, Type: store.Click, Time: now},
		store.Event{User: user, Item: "never-served", Type: store.Click, Time: now})
	got := b.ArmCounts()
	if got["hate-likes"].Events["click"] != 1 || got[unattributed].Events["click"] != 1 {
		t.Errorf("replica b counts %+v, want the click on a's item for hate-likes and the other unattributed", got)
	}
}

// TestArmsWithFixedStartsKeepTheirUsersAsTheyGrow: a rollout's arms start
// at fixed buckets, so that growing the canary's share moves no user from
// the baseline to the canary.
func TestArmsWithFixedStartsKeepTheirUsersAsTheyGrow(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	step := func(traffic float64) map[string]string {
		c := *cfg
		c.Live.Experiments = []config.Experiment{
			{Name: "canary", Traffic: traffic, From: ptr(0.1)},
			{Name: "baseline", Traffic: traffic, From: ptr(0.4)},
		}
		if err := e.Apply(&c, fmt.Sprint(traffic)); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for i := range 2000 {
			u := fmt.Sprintf("user-%d", i)
			out[u] = e.live.Load().armFor(u).arm
		}
		return out
	}
	small, large := step(0.05), step(0.3)
	n := map[string]int{}
	for u, arm := range small {
		n[arm]++
		if arm != config.ControlArm && large[u] != arm {
			t.Errorf("%s moved from %s to %s as the shares grew", u, arm, large[u])
		}
	}
	// 5% of 2,000 users is 100 per arm (binomial sd about 10).
	if n["canary"] < 60 || n["canary"] > 140 || n["baseline"] < 60 || n["baseline"] > 140 {
		t.Errorf("arms of 5%% hold %v of 2000 users", n)
	}
}

func ptr[T any](v T) *T { return &v }

// The moments sum, over users, products of each user's counts: the
// variance of a per-impression rate over users comes from them.
func TestArmMomentsSumOverUsers(t *testing.T) {
	s := newArmStats(prometheus.NewRegistry(), 100)
	l := &live{arm: config.ControlArm, arms: []armLive{{from: 0, upTo: 1, l: &live{arm: "a"}}}}
	s.served("a", "u1", []Item{{ID: "i1"}, {ID: "i2"}})
	s.served("a", "u2", []Item{{ID: "i3"}})
	s.attribute(context.Background(), []store.Event{
		{User: "u1", Item: "i1", Type: store.Impression}, {User: "u1", Item: "i2", Type: store.Impression},
		{User: "u1", Item: "i1", Type: store.Click}, {User: "u2", Item: "i3", Type: store.Impression},
		{User: "u2", Item: "never", Type: store.Click},
	}, l)
	c := s.snapshot()["a"]
	want := map[string]float64{
		config.MomentKey("impression", "impression"): 2*2 + 1*1,
		config.MomentKey("click", "click"):           1,
		config.MomentKey("click", "impression"):      2*1 + 1*0,
	}
	if c.Users != 2 || !maps.Equal(c.Moments, want) {
		t.Errorf("users %d moments %v, want 2 and %v", c.Users, c.Moments, want)
	}
	if u := s.snapshot()[unattributed]; u.Users != 0 || len(u.Moments) != 0 {
		t.Errorf("unattributed events were summed into moments: %+v", u)
	}
}

// answeringRanker stands for a remote ranker stage that ranks with config
// revision: the frontend's ranker, reporting that revision.
type answeringRanker struct {
	rank.Ranker
	revision string
}

func (a *answeringRanker) Rank(ctx context.Context, req *rank.Request, cands []rank.Candidate, keep int) ([]rank.Candidate, []string, error) {
	req.Answered(config.StageRankerSecond, a.revision)
	return a.Ranker.Rank(ctx, req, cands, keep)
}

// TestAnArmCountsOnlyWhatItsOwnConfigRanked: while the config with an arm
// propagates, a ranker stage still on the previous revision ranks the
// arm's users with its control arm's config; those answers' events count
// for no arm, so that a canary is not measured on the stable ranking.
func TestAnArmCountsOnlyWhatItsOwnConfigRanked(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	withArm := *cfg
	withArm.Live.Experiments = []config.Experiment{{Name: "canary", Traffic: 1, Weights: map[string]float64{"like": -50}}}
	if err := e.Apply(&withArm, "r-arms"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	l := e.live.Load()
	arm := l.arms[0].l
	own := arm.second
	now := time.Now()

	click := func(user string) {
		t.Helper()
		r := recommend(t, e, user, 10, now)
		if r.Arm != "canary" {
			t.Fatalf("%s served by arm %q, want canary (all the traffic)", user, r.Arm)
		}
		ingest(t, e, store.Event{User: user, Item: r.Items[0].ID, Type: store.Click, Time: now})
	}

	arm.second = &answeringRanker{Ranker: own, revision: "r-before"}
	click("u1")
	stats := e.arms.snapshot()
	if got := stats["canary"].Events["click"]; got != 0 {
		t.Errorf("a click on a list a stage ranked with revision r-before counted for the canary (%d)", got)
	}
	if got := stats[unattributed].Events["click"]; got != 1 {
		t.Errorf("unattributed clicks: %d, want 1", got)
	}
	if n := testutil.ToFloat64(e.metrics.stale.WithLabelValues(config.StageRankerSecond)); n != 1 {
		t.Errorf("stale answers of %s = %v, want 1", config.StageRankerSecond, n)
	}

	arm.second = &answeringRanker{Ranker: own, revision: "r-arms"}
	click("u2")
	if got := e.arms.snapshot()["canary"].Events["click"]; got != 1 {
		t.Errorf("clicks of the canary once the stage ranks with r-arms: %d, want 1", got)
	}

	// A ranker stage passed over (failed, or late under load): the arm's
	// config did not rank the answer; it is counted as passed over.
	arm.second = &failingRanker{}
	click("u3")
	stats = e.arms.snapshot()
	if got := stats["canary"].Events["click"]; got != 1 {
		t.Errorf("a click on a list ranked without the second stage counted for the canary (%d clicks)", got)
	}
	if got := stats["canary"].PassedOver; got != 1 {
		t.Errorf("the canary's answers passed over: %d, want 1", got)
	}
}
