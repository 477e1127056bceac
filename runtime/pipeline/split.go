package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/rank"
	"github.com/recpipeline/recpipeline/runtime/sources"
	"github.com/recpipeline/recpipeline/runtime/stagepb"
	"github.com/recpipeline/recpipeline/runtime/store"
)

// Stages a process can run.
const (
	StageAll          = "all"
	StageFrontend     = "frontend"
	StageRetrieval    = "retrieval"
	StageRankerFirst  = "ranker-first"
	StageRankerSecond = "ranker-second"
)

// In a split deployment the frontend owns the real-time state (the store):
// it reads a user's recent engagements and follows once per request and
// sends them with every call, so the retrieval and ranker stages hold only
// the catalog and their models, and any replica can answer any call. The
// frontend runs the mixer with the store-backed sources itself and reaches
// the ANN sources of the retrieval stage as remote sources, each under its
// own deadline like any source. Items travel by id: every stage resolves
// them in its own catalog and drops those it does not know (an item
// published live reaches the other stages at their next start).

// remote holds the frontend's connections to the other stages.
type remote struct {
	conns     []*grpc.ClientConn
	retrieval stagepb.RetrievalClient
	first     stagepb.RankerClient
	second    stagepb.RankerClient
}

// serviceConfig balances calls over every address a stage's name resolves
// to (a headless Service lists each pod).
const serviceConfig = `{"loadBalancingConfig": [{"round_robin": {}}]}`

func dialStages(endpoints map[string]string) (*remote, error) {
	r := &remote{}
	dial := func(stage string) (*grpc.ClientConn, error) {
		target, ok := endpoints[stage]
		if !ok || target == "" {
			return nil, fmt.Errorf("deploy.endpoints.%s: the frontend needs the address of every stage", stage)
		}
		conn, err := grpc.NewClient("dns:///"+target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(serviceConfig))
		if err != nil {
			return nil, fmt.Errorf("deploy.endpoints.%s: %w", stage, err)
		}
		r.conns = append(r.conns, conn)
		return conn, nil
	}
	conn, err := dial(StageRetrieval)
	if err != nil {
		return nil, err
	}
	r.retrieval = stagepb.NewRetrievalClient(conn)
	if conn, err = dial(StageRankerFirst); err != nil {
		r.close()
		return nil, err
	}
	r.first = stagepb.NewRankerClient(conn)
	if conn, err = dial(StageRankerSecond); err != nil {
		r.close()
		return nil, err
	}
	r.second = stagepb.NewRankerClient(conn)
	return r, nil
}

func (r *remote) close() {
	for _, c := range r.conns {
		_ = c.Close()
	}
}

// remoteSource is an ANN source served by the retrieval stage.
type remoteSource struct {
	name   string
	client stagepb.RetrievalClient
	cat    sources.Items
}

// Fetch implements sources.Source.
func (s *remoteSource) Fetch(ctx context.Context, req *sources.Request, limit int, dst []sources.Candidate) ([]sources.Candidate, error) {
	us := shippedFrom(ctx)
	if us == nil {
		return dst, errors.New("no user state to send to the retrieval stage")
	}
	// The retrieval stage holds no seen filter: ask it past what the
	// user has seen, as the local sources search.
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

// shippedKey carries, in a request's context, the user state the frontend
// sent or is about to send.
type shippedKey struct{}

// shipped is the user state of a stage call, converted once.
type shipped struct {
	pb          *stagepb.UserState
	engagements []store.Engagement
}

func withShipped(ctx context.Context, us *stagepb.UserState) context.Context {
	s := &shipped{pb: us, engagements: make([]store.Engagement, len(us.Engagements))}
	for i, e := range us.Engagements {
		s.engagements[i] = store.Engagement{Item: e.Item, Type: store.EventType(e.Type), Time: time.UnixMilli(e.TimeUnixMs)}
	}
	return context.WithValue(ctx, shippedKey{}, s)
}

func shippedFrom(ctx context.Context) *stagepb.UserState {
	if s, ok := ctx.Value(shippedKey{}).(*shipped); ok {
		return s.pb
	}
	return nil
}

// userState is what the frontend sends of a user.
func userState(user string, now time.Time, engagements []store.Engagement, follows []string) *stagepb.UserState {
	us := &stagepb.UserState{User: user, NowUnixMs: now.UnixMilli(), Follows: follows}
	for _, e := range engagements {
		us.Engagements = append(us.Engagements, &stagepb.Engagement{Item: e.Item, Type: string(e.Type), TimeUnixMs: e.Time.UnixMilli()})
	}
	return us
}

// users reads what features and sources need of a user: the state a stage
// call carries when there is one, else the store.
type users struct{ st store.Store }

// RecentEngagements implements store.UserReader.
func (u users) RecentEngagements(ctx context.Context, user string, limit int) ([]store.Engagement, error) {
	if s, ok := ctx.Value(shippedKey{}).(*shipped); ok {
		return s.engagements[:min(limit, len(s.engagements))], nil
	}
	if u.st == nil {
		return nil, nil
	}
	return u.st.RecentEngagements(ctx, user, limit)
}

// Follows implements store.SocialReader's half that reads a user.
func (u users) Follows(ctx context.Context, user string) ([]string, error) {
	if s, ok := ctx.Value(shippedKey{}).(*shipped); ok {
		return s.pb.Follows, nil
	}
	if u.st == nil {
		return nil, nil
	}
	return u.st.Follows(ctx, user)
}

// Seen implements store.UserReader. The stages without a store filter
// nothing: the frontend's mixer filters what the user has seen.
func (u users) Seen(ctx context.Context, user string) (*store.Filter, error) {
	if u.st == nil {
		return nil, nil
	}
	return u.st.Seen(ctx, user)
}

var _ store.UserReader = users{}

// retrievalServer serves the ANN sources of the live config.
type retrievalServer struct {
	stagepb.UnimplementedRetrievalServer
	e *Engine
}

// Search implements stagepb.RetrievalServer.
func (s retrievalServer) Search(ctx context.Context, req *stagepb.SearchRequest) (*stagepb.SearchResponse, error) {
	l := s.e.live.Load()
	if l == nil {
		return nil, status.Error(codes.Unavailable, "no config applied")
	}
	src, ok := l.ann[req.Source]
	if !ok || req.User == nil {
		return nil, status.Errorf(codes.InvalidArgument, "source %q is not an ANN source of config revision %s", req.Source, l.revision)
	}
	ctx = withShipped(ctx, req.User)
	sreq := &sources.Request{User: req.User.User, Now: time.UnixMilli(req.User.NowUnixMs)}
	cands, err := src.Fetch(ctx, sreq, int(req.Limit), nil)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "source %s: %v", req.Source, err)
	}
	resp := &stagepb.SearchResponse{ConfigRevision: l.revision, Candidates: make([]*stagepb.Candidate, len(cands))}
	for i, c := range cands {
		resp.Candidates[i] = &stagepb.Candidate{Item: s.e.cat.ID(c.Item), Score: c.Score}
	}
	return resp, nil
}

// rankerServer serves the first or the second ranking stage.
type rankerServer struct {
	stagepb.UnimplementedRankerServer
	e *Engine
}

// Rank implements stagepb.RankerServer.
func (s rankerServer) Rank(ctx context.Context, req *stagepb.RankRequest) (*stagepb.RankResponse, error) {
	e := s.e
	l := e.live.Load()
	if l == nil {
		return nil, status.Error(codes.Unavailable, "no config applied")
	}
	if req.User == nil {
		return nil, status.Error(codes.InvalidArgument, "user state is required")
	}
	ctx = withShipped(ctx, req.User)
	uc, err := userContext(ctx, users{}, e.cat, req.User.User, time.UnixMilli(req.User.NowUnixMs))
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := e.addShipped(ctx, req.NewItems); err != nil {
		return nil, err
	}
	sc := l.scratch()
	defer l.scratches.Put(sc)
	sc.cands = sc.cands[:0]
	for _, c := range req.Candidates {
		if o, ok := e.cat.Ordinal(c.Item); ok {
			sc.cands = append(sc.cands, rank.Candidate{Item: o, ID: c.Item, Sources: rank.SourceSet(c.Sources), Value: c.Score})
		}
	}
	resp := &stagepb.RankResponse{ConfigRevision: l.revision}
	var kept []rank.Candidate
	if e.stage == StageRankerFirst {
		kept = l.rankFirst(sc, uc, sc.cands)
	} else {
		kept = l.rankSecond(sc, uc, sc.cands)
		resp.Heads = l.second.Heads()
	}
	resp.Candidates = make([]*stagepb.Candidate, len(kept))
	for i, c := range kept {
		pc := &stagepb.Candidate{Item: c.ID, Sources: uint32(c.Sources), Score: c.Value}
		if c.Probs != nil {
			pc.Heads = append([]float32(nil), c.Probs...)
		}
		resp.Candidates[i] = pc
	}
	return resp, nil
}

// addShipped adds to a ranker stage's catalog the items published live
// that the frontend sent with candidates and the catalog lacks, embedding
// them with the stage's towers, so that a new item is ranked from its
// first request rather than from the stage's next start.
func (e *Engine) addShipped(ctx context.Context, items []*stagepb.NewItem) error {
	for _, it := range items {
		if _, ok := e.cat.Ordinal(it.Item); ok {
			continue
		}
		ev := store.Event{Type: store.NewItem, Item: it.Item, Author: it.Author, Time: time.UnixMilli(it.CreatedUnixMs)}
		if err := checkNewItem(&ev); err != nil {
			return status.Error(codes.InvalidArgument, "new_items: "+err.Error())
		}
		e.addMu.Lock()
		err := e.addItem(ctx, &ev)
		e.addMu.Unlock()
		if err != nil {
			return status.Error(codes.Internal, fmt.Sprintf("failed to add the new item %q: %v", it.Item, err))
		}
	}
	return nil
}

// Register adds the stage's gRPC services to srv: the ANN search on the
// retrieval stage, ranking on the ranker stages.
func (e *Engine) Register(srv *grpc.Server) {
	switch e.stage {
	case StageRetrieval:
		stagepb.RegisterRetrievalServer(srv, retrievalServer{e: e})
	case StageRankerFirst, StageRankerSecond:
		stagepb.RegisterRankerServer(srv, rankerServer{e: e})
	}
}

// remoteRank sends the candidates to a ranker stage and returns what it
// kept, resolved in the frontend's catalog, and the head names.
func (e *Engine) remoteRank(ctx context.Context, client stagepb.RankerClient, us *stagepb.UserState, cands []rank.Candidate, dst []rank.Candidate) ([]rank.Candidate, []string, error) {
	req := &stagepb.RankRequest{User: us, Candidates: make([]*stagepb.Candidate, len(cands))}
	for i, c := range cands {
		req.Candidates[i] = &stagepb.Candidate{Item: c.ID, Sources: uint32(c.Sources), Score: c.Value}
		if c.Item >= e.base {
			req.NewItems = append(req.NewItems, &stagepb.NewItem{Item: c.ID, Author: c.Author, CreatedUnixMs: e.cat.CreatedMillis(c.Item)})
		}
	}
	resp, err := client.Rank(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	dst = dst[:0]
	for _, c := range resp.Candidates {
		o, ok := e.cat.Ordinal(c.Item)
		if !ok {
			continue
		}
		dst = append(dst, rank.Candidate{
			Item: o, ID: c.Item, Author: e.cat.Author(o), Risk: e.cat.Risk(o),
			Sources: rank.SourceSet(c.Sources), Value: c.Score, Probs: c.Heads,
		})
	}
	return dst, resp.Heads, nil
}

// neededModels names the models a stage loads.
func neededModels(cfg *config.Config, stage string) map[string]bool {
	need := map[string]bool{}
	switch stage {
	case StageAll:
		for _, m := range cfg.Deploy.Models {
			need[m.Name] = true
		}
	case StageRetrieval:
		for _, s := range cfg.Live.Retrieval.Sources {
			if s.Model != "" {
				need[s.Model] = true
			}
		}
	case StageRankerFirst:
		need[cfg.Live.FirstStage.Model] = true
	case StageRankerSecond:
		need[cfg.Live.SecondStage.Model] = true
		// The ranker's two_tower_score reads the retrieval model.
		if m := retrievalModel(&cfg.Live); m != "" {
			need[m] = true
		}
	}
	return need
}

// retrievalModel is the model a ranker's two_tower_score reads:
// secondStage.retrievalModel, or that of the first TwoTowerANN source; ""
// when there is none.
func retrievalModel(l *config.Live) string {
	if m := l.SecondStage.RetrievalModel; m != "" {
		return m
	}
	for _, s := range l.Retrieval.Sources {
		if s.Type == config.SourceTwoTowerANN {
			return s.Model
		}
	}
	return ""
}
