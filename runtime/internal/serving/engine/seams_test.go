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
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// failingRanker stands for a ranker stage that does not answer.
type failingRanker struct{ calls int }

func (f *failingRanker) Rank(_ context.Context, _ *rank.Request, cands []rank.Candidate, _ int) ([]rank.Candidate, []string, error) {
	f.calls++
	return cands, nil, errors.New("stage unavailable")
}

// withRankers swaps the live config's rankers, as a frontend whose ranker
// stages fail sees them.
func withRankers(e *Engine, first, second rank.Ranker) {
	l := *e.live.Load()
	l.first, l.second = first, second
	e.live.Store(&l)
}

func TestAFailingRankerIsPassedOver(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	now := time.Now()
	want := recommend(t, e, "u3", 10, now)

	// The second stage fails: the list keeps the first stage's order.
	l := e.live.Load()
	failing := &failingRanker{}
	withRankers(e, l.first, failing)
	got := recommend(t, e, "u3", 10, now)
	if failing.calls != 1 || len(got.Items) != 10 {
		t.Fatalf("with a failing second stage: %d calls, %d items; want 1 call and a full list", failing.calls, len(got.Items))
	}
	if slices.Equal(ids(got), ids(want)) {
		t.Errorf("the list without the second stage is the one with it (%v): the failing stage was not passed over", ids(got))
	}
	if len(got.Degraded) != 1 || got.Degraded[0] != "stage ranker-second: stage unavailable" {
		t.Errorf("the answer says it went without %q, want the second stage", got.Degraded)
	}
	if len(want.Degraded) != 0 {
		t.Errorf("a whole funnel's answer says it went without %q", want.Degraded)
	}
	if n := testutil.ToFloat64(e.metrics.fallbacks.WithLabelValues(config.StageRankerSecond)); n != 1 {
		t.Errorf("fallbacks of %s = %v, want 1", config.StageRankerSecond, n)
	}

	// Both fail: the mixer's order, still a full list under the rules.
	withRankers(e, failing, failing)
	got = recommend(t, e, "u3", 10, now)
	if failing.calls != 3 || len(got.Items) != 10 {
		t.Errorf("with both stages failing: %d calls, %d items; want 3 calls in all and a full list", failing.calls, len(got.Items))
	}

	// A request whose own deadline passed is not a stage failure.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	before := testutil.ToFloat64(e.metrics.fallbacks.WithLabelValues(config.StageRankerFirst))
	_, _ = e.Recommend(ctx, &Request{User: "u3", N: 10, Now: now})
	if after := testutil.ToFloat64(e.metrics.fallbacks.WithLabelValues(config.StageRankerFirst)); after != before {
		t.Errorf("a cancelled request counted %v fallbacks", after-before)
	}
}

func TestStagesServeOnlyTheirPart(t *testing.T) {
	cfg := testConfig(world(t))
	for _, tc := range []struct {
		stage                  string
		recommend, search, rnk bool
	}{
		{config.StageRetrieval, false, true, false},
		{config.StageRankerFirst, false, false, true},
		{config.StageRankerSecond, false, false, true},
	} {
		t.Run(tc.stage, func(t *testing.T) {
			e, err := Open(context.Background(), cfg, Options{Stage: tc.stage, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close() })
			if err := e.Apply(cfg, "r1"); err != nil {
				t.Fatal(err)
			}
			_, err = e.Recommend(context.Background(), &Request{User: "u1", N: 5})
			if !errors.Is(err, ErrNotFrontend) {
				t.Errorf("Recommend: %v, want ErrNotFrontend", err)
			}
			_, err = e.Search(context.Background(), &SearchCall{User: testState(), Source: "for-you", Limit: 5})
			if (err == nil) != tc.search {
				t.Errorf("Search: err %v, want success %v", err, tc.search)
			}
			res, err := e.Rank(context.Background(), &RankCall{User: testState(), Candidates: []StageCandidate{{Item: e.cat.ID(0)}, {Item: e.cat.ID(1)}, {Item: "not-in-the-catalog"}}})
			if (err == nil) != tc.rnk {
				t.Fatalf("Rank: err %v, want success %v", err, tc.rnk)
			}
			if err == nil && len(res.Candidates) != 2 {
				t.Errorf("Rank kept %d candidates, want the 2 the catalog holds", len(res.Candidates))
			}
			if err == nil && (len(res.Heads) > 0) != (tc.stage == config.StageRankerSecond) {
				t.Errorf("Rank heads %v on %s", res.Heads, tc.stage)
			}
		})
	}
}

func testState() *store.UserState {
	return &store.UserState{User: "u1", Now: time.Now()}
}

// hangingStore is a store whose user reads never answer (a hung Redis).
type hangingStore struct{ store.Store }

func (hangingStore) RecentEngagements(ctx context.Context, _ string, _ int) ([]store.Engagement, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestAHangingStoreLeavesAnswersNonPersonalised: when the store does not
// answer the user's reads, the request is served without the user's
// history within its deadline, says so, and is counted; before, every
// recommendation failed.
func TestAHangingStoreLeavesAnswersNonPersonalised(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	e.state = hangingStore{e.state}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Succeeding at all is the point: waiting for the store would end at
	// the request's deadline with an error.
	resp, err := e.Recommend(ctx, &Request{User: "u3", N: 10, Now: time.Now()})
	if err != nil {
		t.Fatalf("Recommend with a hanging store: %v", err)
	}
	if len(resp.Items) != 10 {
		t.Errorf("%d items, want a full list", len(resp.Items))
	}
	if len(resp.Degraded) == 0 || !strings.HasPrefix(resp.Degraded[0], "store: ") {
		t.Errorf("degraded %q, want the store named", resp.Degraded)
	}
	if n := testutil.ToFloat64(e.metrics.fallbacks.WithLabelValues("store")); n != 1 {
		t.Errorf("store fallbacks %v, want 1", n)
	}
}

// failingPopular is a store whose popular items cannot be read.
type failingPopular struct{ store.Store }

func (failingPopular) Popular(context.Context, time.Time, int) ([]store.ItemScore, error) {
	return nil, errors.New("popularity unavailable")
}

// TestSourceCountsNameTheFailingSource: the frontend counts, per source,
// the latest requests and those the source failed, which /v1/status
// reports and the operator turns into a condition.
func TestSourceCountsNameTheFailingSource(t *testing.T) {
	cfg := testConfig(world(t))
	e := open(t, cfg, t.TempDir())
	if got := e.SourceCounts(); got != nil {
		t.Errorf("counts before any request: %v", got)
	}
	e.state = failingPopular{e.state}
	if err := e.Apply(cfg, "rev-2"); err != nil { // sources read the store they were compiled with
		t.Fatal(err)
	}
	for range 5 {
		if _, err := e.Recommend(context.Background(), &Request{User: "u3", N: 10, Now: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	got := e.SourceCounts()
	if len(got) != len(cfg.Live.Retrieval.Sources) {
		t.Fatalf("counts %v, want one per source", got)
	}
	for _, s := range cfg.Live.Retrieval.Sources {
		want := config.SourceCounts{Requests: 5}
		if s.Type == config.SourcePopular {
			want.Failed = 5
		}
		if got[s.Name] != want {
			t.Errorf("source %s (%s): %+v, want %+v", s.Name, s.Type, got[s.Name], want)
		}
	}
}

// TestSourceHealthWindow: the counts cover each source's latest
// sourceWindow requests, whichever lists of sources the requests ran (a
// rollout alternates two).
func TestSourceHealthWindow(t *testing.T) {
	var h sourceHealth
	for i := range sourceWindow + 500 {
		var failed []string
		if i < 600 {
			failed = []string{"b"}
		}
		h.record([]string{"a", "b"}, failed)
		if i%2 == 0 {
			h.record([]string{"a", "c"}, []string{"c"})
		}
	}
	got := h.counts()
	want := map[string]config.SourceCounts{
		"a": {Requests: sourceWindow},
		"b": {Requests: sourceWindow, Failed: 100},
		"c": {Requests: (sourceWindow + 500) / 2, Failed: (sourceWindow + 500) / 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts %v, want %v", got, want)
	}
}
