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
	"errors"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stagepb"
)

// StageEngine is what the split stages serve over gRPC.
type StageEngine interface {
	Search(ctx context.Context, call *engine.SearchCall) (*engine.StageResult, error)
	Rank(ctx context.Context, call *engine.RankCall) (*engine.StageResult, error)
}

// RegisterStage adds stage's gRPC services to srv: the ANN search on the
// retrieval stage, ranking on the ranker stages, nothing on the others.
func RegisterStage(srv *grpc.Server, stage string, e StageEngine) {
	// Each service's count of successful calls starts at 0, so that an
	// idle stage reports a request rate of 0 rather than none.
	switch stage {
	case config.StageRetrieval:
		stagepb.RegisterRetrievalServer(srv, retrievalServer{e: e})
		grpcRequests.WithLabelValues(stagepb.Retrieval_Search_FullMethodName, codes.OK.String())
	case config.StageRankerFirst, config.StageRankerSecond:
		stagepb.RegisterRankerServer(srv, rankerServer{e: e})
		grpcRequests.WithLabelValues(stagepb.Ranker_Rank_FullMethodName, codes.OK.String())
	}
}

// retrievalServer serves the ANN sources of the live config.
type retrievalServer struct {
	stagepb.UnimplementedRetrievalServer
	e StageEngine
}

// Search implements stagepb.RetrievalServer.
func (s retrievalServer) Search(ctx context.Context, req *stagepb.SearchRequest) (_ *stagepb.SearchResponse, err error) {
	defer countCall(stagepb.Retrieval_Search_FullMethodName, &err)
	call := &engine.SearchCall{Source: req.Source, Limit: int(req.Limit)}
	if req.User != nil {
		call.User = req.User.State()
	}
	res, err := s.e.Search(ctx, call)
	if err != nil {
		return nil, grpcError(err)
	}
	return &stagepb.SearchResponse{ConfigRevision: res.Revision, Candidates: toPB(res.Candidates)}, nil
}

// rankerServer serves the first or the second ranking stage.
type rankerServer struct {
	stagepb.UnimplementedRankerServer
	e StageEngine
}

// Rank implements stagepb.RankerServer.
func (s rankerServer) Rank(ctx context.Context, req *stagepb.RankRequest) (_ *stagepb.RankResponse, err error) {
	defer countCall(stagepb.Ranker_Rank_FullMethodName, &err)
	call := &engine.RankCall{Arm: req.Arm, Candidates: make([]engine.StageCandidate, len(req.Candidates))}
	if req.User != nil {
		call.User = req.User.State()
	}
	for i, c := range req.Candidates {
		call.Candidates[i] = engine.StageCandidate{Item: c.Item, Sources: rank.SourceSet(c.Sources), Score: c.Score}
	}
	for _, it := range req.NewItems {
		call.Published = append(call.Published, dataset.Item{ID: it.Item, Author: it.Author, Created: time.UnixMilli(it.CreatedUnixMs)})
	}
	res, err := s.e.Rank(ctx, call)
	if err != nil {
		return nil, grpcError(err)
	}
	return &stagepb.RankResponse{ConfigRevision: res.Revision, Heads: res.Heads, Candidates: toPB(res.Candidates)}, nil
}

func toPB(cands []engine.StageCandidate) []*stagepb.Candidate {
	out := make([]*stagepb.Candidate, len(cands))
	for i, c := range cands {
		out[i] = &stagepb.Candidate{Item: c.Item, Sources: uint32(c.Sources), Score: c.Score, Heads: c.Heads}
	}
	return out
}

// grpcError answers an engine error: the caller's fault is
// InvalidArgument, no config yet Unavailable, anything else Internal.
func grpcError(err error) error {
	switch {
	case errors.Is(err, engine.ErrBadRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, engine.ErrNoConfig):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
