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

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// What the retrieval and ranker stages answer the frontend (package server
// carries it over gRPC; package stageclient is the frontend's side). Items
// travel by id: a stage resolves them in its own catalog and drops those it
// does not know.

// StageCandidate is a candidate as the stages exchange it.
type StageCandidate struct {
	Item    string
	Sources rank.SourceSet
	Score   float32
	// Heads are the second stage's per-head probabilities, in the order of
	// RankResult.Heads.
	Heads []float32
}

// SearchCall asks the retrieval stage for one ANN source's candidates.
type SearchCall struct {
	User   *store.UserState
	Source string
	Limit  int
}

// RankCall asks a ranker stage to rank candidates.
type RankCall struct {
	User *store.UserState
	// Arm is the experiment arm the frontend serves the user: the stage
	// ranks with that arm's config (its control arm's when it has no arm
	// of that name).
	Arm        string
	Candidates []StageCandidate
	// Published are the items among the candidates that were published
	// live since the frontend's catalog was loaded.
	Published []dataset.Item
}

// StageResult is a stage's answer: the candidates it returns, best first,
// and the revision of the config it ran on.
type StageResult struct {
	Revision   string
	Candidates []StageCandidate
	// Heads names the second stage's heads; empty for the other stages.
	Heads []string
}

// Search runs an ANN source of the live config for the retrieval stage.
func (e *Engine) Search(ctx context.Context, call *SearchCall) (*StageResult, error) {
	l := e.live.Load()
	if l == nil {
		return nil, ErrNoConfig
	}
	src, ok := l.ann[call.Source]
	if !ok || call.User == nil {
		return nil, fmt.Errorf("%w: source %q is not an ANN source of config revision %s", ErrBadRequest, call.Source, l.revision)
	}
	// The frontend asks a source's limit past what the user has seen
	// (sources.FetchUnseen), never more than sources.MaxAsk.
	if call.Limit < 1 || call.Limit > sources.MaxAsk {
		return nil, fmt.Errorf("%w: limit is %d, must be between 1 and %d", ErrBadRequest, call.Limit, sources.MaxAsk)
	}
	sreq := &sources.Request{User: call.User.User, Now: call.User.Now, State: call.User}
	cands, err := src.Fetch(ctx, sreq, call.Limit, nil)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", call.Source, err)
	}
	res := &StageResult{Revision: l.revision, Candidates: make([]StageCandidate, len(cands))}
	for i, c := range cands {
		res.Candidates[i] = StageCandidate{Item: e.cat.ID(c.Item), Score: c.Score}
	}
	return res, nil
}

// Rank runs the ranker stage of the process: the first or the second.
func (e *Engine) Rank(ctx context.Context, call *RankCall) (*StageResult, error) {
	l := e.live.Load()
	if l == nil {
		return nil, ErrNoConfig
	}
	l = l.armNamed(call.Arm)
	ranker, keep := l.first, l.cfg.Live.FirstStage.Keep
	if e.roles.second {
		ranker, keep = l.second, l.cfg.Live.SecondStage.Keep
	}
	if ranker == nil || e.roles.frontend {
		return nil, fmt.Errorf("%w: this stage runs no ranker", ErrBadRequest)
	}
	if call.User == nil {
		return nil, fmt.Errorf("%w: user state is required", ErrBadRequest)
	}
	if err := checkRankCall(call, l.cfg.Live.Retrieval.Candidates); err != nil {
		return nil, err
	}
	if err := e.addPublished(ctx, call.Published); err != nil {
		return nil, err
	}
	cands := make([]rank.Candidate, 0, len(call.Candidates))
	for _, c := range call.Candidates {
		if o, ok := e.cat.Ordinal(c.Item); ok {
			cands = append(cands, rank.Candidate{Item: o, ID: c.Item, Sources: c.Sources, Value: c.Score})
		}
	}
	req := rank.NewRequest(call.User, e.cat)
	req.Arm = l.arm
	defer req.Release()
	kept, heads, err := ranker.Rank(ctx, req, cands, keep)
	if err != nil {
		return nil, err
	}
	res := &StageResult{Revision: l.revision, Heads: heads, Candidates: make([]StageCandidate, len(kept))}
	for i, c := range kept {
		sc := StageCandidate{Item: c.ID, Sources: c.Sources, Score: c.Value}
		if c.Probs != nil {
			sc.Heads = append([]float32(nil), c.Probs...)
		}
		res.Candidates[i] = sc
	}
	return res, nil
}

// maxShippedFollows bounds the follows a stage call may carry.
const maxShippedFollows = 100000

// checkRankCall bounds what a caller may ask of a ranker stage: no more
// candidates than the retrieval budget, no more engagements and follows
// than a user's state holds, and published items only among the
// candidates, so that a call cannot make a stage rank the catalog or grow
// it with items nobody proposed.
func checkRankCall(call *RankCall, budget int) error {
	if n := len(call.Candidates); n > budget {
		return fmt.Errorf("%w: %d candidates, at most live.retrieval.candidates (%d)", ErrBadRequest, n, budget)
	}
	if n := len(call.User.Engagements); n > config.MaxBudget {
		return fmt.Errorf("%w: %d engagements in the user state, at most %d", ErrBadRequest, n, config.MaxBudget)
	}
	if n := len(call.User.Follows); n > maxShippedFollows {
		return fmt.Errorf("%w: %d follows in the user state, at most %d", ErrBadRequest, n, maxShippedFollows)
	}
	if len(call.Published) == 0 {
		return nil
	}
	proposed := make(map[string]bool, len(call.Candidates))
	for _, c := range call.Candidates {
		proposed[c.Item] = true
	}
	for _, it := range call.Published {
		if !proposed[it.ID] {
			return fmt.Errorf("%w: new item %q is not a candidate", ErrBadRequest, it.ID)
		}
	}
	return nil
}

// addPublished adds to a ranker stage's catalog the items published live
// that the frontend sent with candidates and the catalog lacks, embedding
// them with the stage's towers, so that a new item is ranked from its first
// request rather than from the stage's next start.
func (e *Engine) addPublished(ctx context.Context, items []dataset.Item) error {
	for _, it := range items {
		if _, ok := e.cat.Ordinal(it.ID); ok {
			continue
		}
		ev := store.Event{Type: store.NewItem, Item: it.ID, Author: it.Author, Time: it.Created}
		if err := checkNewItem(&ev); err != nil {
			return fmt.Errorf("%w: new_items: %v", ErrBadRequest, err)
		}
		e.addMu.Lock()
		err := e.roomFor([]store.Event{ev})
		if err == nil {
			err = e.addItem(ctx, &ev)
		} else {
			err = fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
		e.addMu.Unlock()
		if err != nil {
			return fmt.Errorf("failed to add the new item %q: %w", it.ID, err)
		}
	}
	return nil
}
