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
	"math"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// TestStageCallsAreBounded: a caller cannot make the retrieval stage return
// the catalog, a ranker rank more than the retrieval budget, or grow a
// ranker's catalog with items it does not propose.
func TestStageCallsAreBounded(t *testing.T) {
	cfg := testConfig(world(t))
	open := func(stage string) *Engine {
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
	user := &store.UserState{User: "u1", Now: time.Now()}
	refused := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want a bad request about %q", what, err, want)
		}
	}

	retrieval := open(config.StageRetrieval)
	_, err := retrieval.Search(context.Background(), &SearchCall{User: user, Source: "for-you", Limit: math.MaxInt32})
	refused("Search of MaxInt32 items", err, "limit is 2147483647")
	if _, err := retrieval.Search(context.Background(), &SearchCall{User: user, Source: "for-you", Limit: 300}); err != nil {
		t.Errorf("Search within the bound: %v", err)
	}

	ranker := open(config.StageRankerSecond)
	many := make([]StageCandidate, cfg.Live.Retrieval.Candidates+1)
	for i := range many {
		many[i] = StageCandidate{Item: ranker.cat.ID(uint32(i))}
	}
	_, err = ranker.Rank(context.Background(), &RankCall{User: user, Candidates: many})
	refused("Rank of more than the retrieval budget", err, "candidates, at most live.retrieval.candidates")
	before := ranker.cat.Len()
	_, err = ranker.Rank(context.Background(), &RankCall{User: user, Candidates: many[:10], Published: []dataset.Item{{ID: "injected", Author: "a1", Created: time.Now()}}})
	refused("a published item that is no candidate", err, `new item "injected" is not a candidate`)
	if ranker.cat.Len() != before {
		t.Errorf("the refused call grew the catalog from %d to %d items", before, ranker.cat.Len())
	}
	if _, err := ranker.Rank(context.Background(), &RankCall{User: user, Candidates: many[:cfg.Live.Retrieval.Candidates]}); err != nil {
		t.Errorf("Rank of the retrieval budget: %v", err)
	}
}
