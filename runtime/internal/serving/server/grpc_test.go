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

package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stagepb"
)

// countingStage answers Search and Rank, or err when set.
type countingStage struct{ err error }

func (c *countingStage) Search(context.Context, *engine.SearchCall) (*engine.StageResult, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &engine.StageResult{Revision: "r1"}, nil
}

func (c *countingStage) Rank(context.Context, *engine.RankCall) (*engine.StageResult, error) {
	return c.Search(context.Background(), nil)
}

// serveStage runs stage's gRPC services over e on a loopback port and
// returns a connection to it.
func serveStage(t *testing.T, stage string, e StageEngine) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	RegisterStage(gs, stage, e)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// scrape returns the value of series in a new frontend Server's /metrics,
// and whether it is there.
func scrape(t *testing.T, series string) (float64, bool) {
	t.Helper()
	return scrapeStage(t, config.StageFrontend, series)
}

// scrapeStage returns the value of series in the /metrics of a new Server
// of stage, and whether it is there.
func scrapeStage(t *testing.T, stage, series string) (float64, bool) {
	t.Helper()
	s := New(nil, Options{Stage: stage, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	resp, err := http.Get(ts.URL + config.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

// TestGRPCStagesCountServedCalls: /metrics counts each served Search and
// Rank call by method and status code, from 0 as soon as the stage is
// registered, so that a metrics adapter can derive each stage pod's
// request rate.
func TestGRPCStagesCountServedCalls(t *testing.T) {
	const (
		searchOK  = `recpipeline_grpc_requests_total{code="OK",method="/recpipeline.stages.v1.Retrieval/Search"}`
		rankOK    = `recpipeline_grpc_requests_total{code="OK",method="/recpipeline.stages.v1.Ranker/Rank"}`
		rankBad   = `recpipeline_grpc_requests_total{code="InvalidArgument",method="/recpipeline.stages.v1.Ranker/Rank"}`
		rankNoCfg = `recpipeline_grpc_requests_total{code="Unavailable",method="/recpipeline.stages.v1.Ranker/Rank"}`
	)
	// The counter is the process's: other tests may have counted before.
	before := map[string]float64{}
	for _, series := range []string{searchOK, rankOK, rankBad, rankNoCfg} {
		before[series], _ = scrape(t, series)
	}

	retrieval := serveStage(t, config.StageRetrieval, &countingStage{})
	if _, ok := scrape(t, searchOK); !ok {
		t.Errorf("%s is not shown before the first call", searchOK)
	}
	ranker := &countingStage{}
	rankConn := serveStage(t, config.StageRankerSecond, ranker)

	ctx := context.Background()
	for range 3 {
		if _, err := stagepb.NewRetrievalClient(retrieval).Search(ctx, &stagepb.SearchRequest{Source: "for-you", Limit: 10}); err != nil {
			t.Fatal(err)
		}
	}
	rank := stagepb.NewRankerClient(rankConn)
	for range 2 {
		if _, err := rank.Rank(ctx, &stagepb.RankRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	ranker.err = engine.ErrBadRequest
	if _, err := rank.Rank(ctx, &stagepb.RankRequest{}); err == nil {
		t.Fatal("Rank did not fail")
	}
	ranker.err = engine.ErrNoConfig
	if _, err := rank.Rank(ctx, &stagepb.RankRequest{}); err == nil {
		t.Fatal("Rank did not fail")
	}

	for series, want := range map[string]float64{searchOK: 3, rankOK: 2, rankBad: 1, rankNoCfg: 1} {
		got, ok := scrape(t, series)
		if !ok || got-before[series] != want {
			t.Errorf("%s counted %v calls (shown: %v), want %v", series, got-before[series], ok, want)
		}
	}
}

// TestIdleFrontendShowsItsRequestCount: a frontend shows its count of
// recommendations on /metrics before the first request, at 0; a gRPC stage,
// which answers none, does not.
func TestIdleFrontendShowsItsRequestCount(t *testing.T) {
	const series = `recpipeline_http_request_duration_seconds_count{code="200",handler="recommendations"}`
	for stage, want := range map[string]bool{config.StageFrontend: true, config.StageAll: true, config.StageRankerFirst: false} {
		got, ok := scrapeStage(t, stage, series)
		if ok != want || got != 0 {
			t.Errorf("%s: recommendations count %v (shown: %v), want shown %v at 0", stage, got, ok, want)
		}
	}
}
