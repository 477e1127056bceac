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

// Package stageclient is the frontend's side of a split deployment: the
// retrieval stage's ANN sources and the two ranker stages reached over
// gRPC, as a sources.Source and rank.Rankers like the ones that run in
// process, so that the engine runs one path whether a stage is local or
// remote.
//
// The frontend owns the real-time state (the store): it reads a user's
// recent engagements and follows once per request and sends them with every
// call, so the retrieval and ranker stages hold only the catalog and their
// models, and any replica can answer any call. Items travel by id: every
// stage resolves them in its own catalog and drops those it does not know;
// the items published live since the frontend's catalog was loaded travel
// with the candidates to rank, so that the ranker stages rank a new item
// from its first request.
package stageclient

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/sources"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stagepb"
)

// Stages holds the frontend's connections to the other stages.
type Stages struct {
	conns     []*grpc.ClientConn
	cat       *catalog.Catalog
	base      uint32
	retrieval stagepb.RetrievalClient
	first     stagepb.RankerClient
	second    stagepb.RankerClient
}

// serviceConfig balances calls over every address a stage's name resolves
// to (a headless Service lists each pod).
const serviceConfig = `{"loadBalancingConfig": [{"round_robin": {}}]}`

// Dial connects to the stages at endpoints (config.Deploy.Endpoints, by
// stage name). Candidates are resolved in cat; its items from ordinal base
// on were published live and are sent along to the rankers. creds, when
// not nil, go with every call (the stages' token, see stageauth).
func Dial(endpoints map[string]string, cat *catalog.Catalog, base uint32, creds credentials.PerRPCCredentials) (*Stages, error) {
	s := &Stages{cat: cat, base: base}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	dial := func(stage string) (*grpc.ClientConn, error) {
		target, ok := endpoints[stage]
		if !ok || target == "" {
			return nil, fmt.Errorf("deploy.endpoints.%s: the frontend needs the address of every stage", stage)
		}
		conn, err := grpc.NewClient("dns:///"+target, opts...)
		if err != nil {
			return nil, fmt.Errorf("deploy.endpoints.%s: %w", stage, err)
		}
		s.conns = append(s.conns, conn)
		return conn, nil
	}
	conn, err := dial(config.StageRetrieval)
	if err != nil {
		return nil, err
	}
	s.retrieval = stagepb.NewRetrievalClient(conn)
	if conn, err = dial(config.StageRankerFirst); err != nil {
		s.Close()
		return nil, err
	}
	s.first = stagepb.NewRankerClient(conn)
	if conn, err = dial(config.StageRankerSecond); err != nil {
		s.Close()
		return nil, err
	}
	s.second = stagepb.NewRankerClient(conn)
	return s, nil
}

// Close closes the connections.
func (s *Stages) Close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}

// Source is the retrieval stage's ANN source named name.
func (s *Stages) Source(name string) sources.Source {
	return &source{name: name, client: s.retrieval, cat: s.cat}
}

// First is the first ranker stage.
func (s *Stages) First() rank.Ranker {
	return &ranker{name: config.StageRankerFirst, stage: s, client: s.first}
}

// Second is the second ranker stage.
func (s *Stages) Second() rank.Ranker {
	return &ranker{name: config.StageRankerSecond, stage: s, client: s.second}
}

// source is an ANN source served by the retrieval stage.
type source struct {
	name   string
	client stagepb.RetrievalClient
	cat    sources.Items
}

// Fetch implements sources.Source. The request must carry the user's state.
func (s *source) Fetch(ctx context.Context, req *sources.Request, limit int, dst []sources.Candidate) ([]sources.Candidate, error) {
	if req.State == nil {
		return dst, fmt.Errorf("retrieval stage: the request carries no user state to send")
	}
	us := stagepb.FromState(req.State)
	// The retrieval stage holds no seen filter: ask it past what the user
	// has seen, as the local sources search.
	return sources.FetchUnseen(ctx, req, limit, dst, func(ask int, dst []sources.Candidate) ([]sources.Candidate, bool, error) {
		resp, err := s.client.Search(ctx, &stagepb.SearchRequest{User: us, Source: s.name, Limit: int32(min(ask, math.MaxInt32))})
		if err != nil {
			return dst, false, fmt.Errorf("retrieval stage: %w", err)
		}
		for _, c := range resp.Candidates {
			if o, ok := s.cat.Ordinal(c.Item); ok {
				dst = append(dst, sources.Candidate{Item: o, Score: c.Score})
			}
		}
		return dst, len(resp.Candidates) >= ask, nil
	})
}

// ranker is a ranker stage. The stage keeps as many as its own config says
// (the same config as the frontend's, revision for revision once rolled
// out), and the freshness policy's new items beside them; keep plus
// config.MaxFreshSlots bounds what comes back. The revision the stage ranked with is
// reported to the request.
type ranker struct {
	name   string
	stage  *Stages
	client stagepb.RankerClient
}

// Rank implements rank.Ranker. The ranked candidates are resolved in the
// frontend's catalog, over cands' storage once the answer has come.
func (r *ranker) Rank(ctx context.Context, req *rank.Request, cands []rank.Candidate, keep int) ([]rank.Candidate, []string, error) {
	cat := r.stage.cat
	pr := &stagepb.RankRequest{User: stagepb.FromState(req.State), Arm: req.Arm, Candidates: make([]*stagepb.Candidate, len(cands))}
	for i, c := range cands {
		pr.Candidates[i] = &stagepb.Candidate{Item: c.ID, Sources: uint32(c.Sources), Score: c.Value}
		if c.Item >= r.stage.base {
			pr.NewItems = append(pr.NewItems, &stagepb.NewItem{Item: c.ID, Author: cat.Author(c.Item), CreatedUnixMs: cat.CreatedMillis(c.Item)})
		}
	}
	resp, err := r.client.Rank(ctx, pr)
	if err != nil {
		return cands, nil, err
	}
	req.Answered(r.name, resp.ConfigRevision)
	out := cands[:0]
	for _, c := range resp.Candidates {
		if len(out) == keep+config.MaxFreshSlots {
			break
		}
		o, ok := cat.Ordinal(c.Item)
		if !ok {
			continue
		}
		out = append(out, rank.Candidate{
			Item: o, ID: c.Item, Author: cat.Author(o), Risk: cat.Risk(o),
			Sources: rank.SourceSet(c.Sources), Value: c.Score, Probs: c.Heads,
		})
	}
	return out, resp.Heads, nil
}
