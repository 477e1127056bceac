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

package stageclient_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stageclient"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// fakeStage answers Search and Rank from fixed lists and records the calls.
type fakeStage struct {
	searched []*engine.SearchCall
	ranked   []*engine.RankCall
	answer   []engine.StageCandidate
	heads    []string
	err      error
}

func (f *fakeStage) Search(_ context.Context, call *engine.SearchCall) (*engine.StageResult, error) {
	f.searched = append(f.searched, call)
	if f.err != nil {
		return nil, f.err
	}
	return &engine.StageResult{Revision: "r1", Candidates: f.answer[:min(call.Limit, len(f.answer))]}, nil
}

func (f *fakeStage) Rank(_ context.Context, call *engine.RankCall) (*engine.StageResult, error) {
	f.ranked = append(f.ranked, call)
	if f.err != nil {
		return nil, f.err
	}
	return &engine.StageResult{Revision: "r1", Candidates: f.answer, Heads: f.heads}, nil
}

// serve runs stage's gRPC services over f on a loopback port.
func serve(t *testing.T, stage string, f *fakeStage) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	server.RegisterStage(gs, stage, f)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// testCatalog holds i0..i9 by author a<i%3>; i9 was published live.
func testCatalog(t *testing.T) *catalog.Catalog {
	t.Helper()
	cat, err := catalog.New(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		id := "i" + string(rune('0'+i))
		if _, err := cat.Add(dataset.Item{ID: id, Author: "a" + string(rune('0'+i%3)), Created: time.UnixMilli(int64(1000 + i))}); err != nil {
			t.Fatal(err)
		}
	}
	return cat
}

func dial(t *testing.T, retrieval, first, second *fakeStage) *stageclient.Stages {
	t.Helper()
	cat := testCatalog(t)
	s, err := stageclient.Dial(map[string]string{
		config.StageRetrieval:    serve(t, config.StageRetrieval, retrieval),
		config.StageRankerFirst:  serve(t, config.StageRankerFirst, first),
		config.StageRankerSecond: serve(t, config.StageRankerSecond, second),
	}, cat, 9, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var state = &store.UserState{
	User: "u1", Now: time.UnixMilli(5000), Follows: []string{"a1"},
	Engagements: []store.Engagement{{Item: "i3", Type: store.Like, Time: time.UnixMilli(4000)}},
}

func candidates(cat []string) []rank.Candidate {
	out := make([]rank.Candidate, len(cat))
	for i, id := range cat {
		out[i] = rank.Candidate{Item: uint32(id[1] - '0'), ID: id, Value: float32(-i), Sources: 1}
	}
	return out
}

func TestRemoteRankerResolvesWhatTheStageKept(t *testing.T) {
	second := &fakeStage{
		heads: []string{"click", "like"},
		answer: []engine.StageCandidate{
			{Item: "i9", Sources: 1, Score: 3, Heads: []float32{0.5, 0.25}},
			{Item: "unknown", Score: 2}, // not in the frontend's catalog: dropped
			{Item: "i2", Sources: 1, Score: 1, Heads: []float32{0.1, 0.2}},
			{Item: "i0", Sources: 1, Score: 0},
		},
	}
	s := dial(t, &fakeStage{}, &fakeStage{}, second)
	cands := candidates([]string{"i0", "i2", "i9"})
	cands[2].Author = "a0"
	req := rank.NewRequest(state, nil)
	req.Arm, req.Revision = "short", "r1"
	kept, heads, err := s.Second().Rank(context.Background(), req, cands, 2)
	if err != nil {
		t.Fatal(err)
	}
	if stale := req.Stale(); len(stale) != 0 {
		t.Errorf("stages %v reported stale, want none: the stage ranked with r1 as the request", stale)
	}
	if got := []string{kept[0].ID, kept[1].ID}; len(kept) != 3 || !slices.Equal(got, []string{"i9", "i2"}) {
		t.Fatalf("kept %v, want i9, i2, i0 (the stage's order, unknown items dropped: what the stage kept, its fresh items beyond keep included)", kept)
	}
	if kept[0].Author != "a0" || kept[0].Value != 3 || !slices.Equal(kept[0].Probs, []float32{0.5, 0.25}) {
		t.Errorf("kept[0] = %+v, want author from the catalog, the stage's score and heads", kept[0])
	}
	if !slices.Equal(heads, second.heads) {
		t.Errorf("heads %v, want %v", heads, second.heads)
	}
	call := second.ranked[0]
	if call.User.User != "u1" || !call.User.Now.Equal(state.Now) || !slices.Equal(call.User.Follows, state.Follows) ||
		len(call.User.Engagements) != 1 || call.User.Engagements[0] != state.Engagements[0] {
		t.Errorf("the stage got user state %+v, want %+v", call.User, state)
	}
	if call.Arm != "short" {
		t.Errorf("the stage got arm %q, want the request's", call.Arm)
	}
	if len(call.Published) != 1 || call.Published[0].ID != "i9" || call.Published[0].Author != "a0" || call.Published[0].Created.UnixMilli() != 1009 {
		t.Errorf("published items sent %+v, want i9 only (ordinals from base 9 on)", call.Published)
	}
}

func TestRemoteRankerReportsAnotherRevision(t *testing.T) {
	s := dial(t, &fakeStage{}, &fakeStage{answer: []engine.StageCandidate{{Item: "i0"}}}, &fakeStage{})
	req := rank.NewRequest(state, nil)
	req.Revision = "r2" // the frontend serves r2, the stage still r1
	if _, _, err := s.First().Rank(context.Background(), req, candidates([]string{"i0"}), 1); err != nil {
		t.Fatal(err)
	}
	if stale := req.Stale(); !slices.Equal(stale, []string{config.StageRankerFirst}) {
		t.Errorf("stale stages %v, want %s: it ranked with r1", stale, config.StageRankerFirst)
	}
}

func TestRemoteRankerFailureLeavesTheCandidates(t *testing.T) {
	first := &fakeStage{err: errors.New("boom")}
	s := dial(t, &fakeStage{}, first, &fakeStage{})
	cands := candidates([]string{"i0", "i1", "i2"})
	before := slices.Clone(cands)
	_, _, err := s.First().Rank(context.Background(), rank.NewRequest(state, nil), cands, 2)
	if err == nil {
		t.Fatal("Rank succeeded against a failing stage")
	}
	if !slices.EqualFunc(cands, before, func(a, b rank.Candidate) bool { return a.ID == b.ID && a.Value == b.Value }) {
		t.Errorf("a failed Rank changed the candidates: %v, want %v", cands, before)
	}
}

func TestRemoteSourceSendsTheStateAndSkipsSeenItems(t *testing.T) {
	retrieval := &fakeStage{answer: []engine.StageCandidate{{Item: "i4", Score: 0.9}, {Item: "i5", Score: 0.8}, {Item: "i6", Score: 0.7}}}
	s := dial(t, retrieval, &fakeStage{}, &fakeStage{})
	src := s.Source("for-you")
	if _, err := src.Fetch(context.Background(), &sources.Request{User: "u1"}, 2, nil); err == nil {
		t.Error("Fetch without the user's state succeeded; the retrieval stage would search for nobody")
	}
	got, err := src.Fetch(context.Background(), &sources.Request{User: "u1", Now: state.Now, State: state}, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Item != 4 || got[1].Item != 5 || got[0].Score != 0.9 {
		t.Errorf("candidates %v, want i4, i5 by ordinal with the stage's scores", got)
	}
	call := retrieval.searched[len(retrieval.searched)-1]
	if call.Source != "for-you" || call.User.User != "u1" {
		t.Errorf("searched %+v, want source for-you for u1", call)
	}
}
