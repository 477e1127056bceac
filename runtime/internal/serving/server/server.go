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

// Package server is recserve's transport: the client HTTP API, the
// operational endpoints, the live config that is swapped atomically when a
// new revision arrives, and the gRPC services the split stages serve each
// other. It sits above the engine (package engine), which knows none of
// it.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Engine serves one stage, or the whole funnel, behind the HTTP API.
type Engine interface {
	// Apply compiles the live part of cfg, whose revision is given, against
	// what the process has loaded and swaps it in atomically; requests in
	// flight finish on the previous one. An error leaves the previous one
	// serving. Responses carry the revision of the config they ran on.
	Apply(cfg *config.Config, revision string) error
	// Recommend answers one client request. The server releases the
	// answer (Response.Release) once it has written it.
	Recommend(ctx context.Context, req *Request) (*Response, error)
	// Ingest records a batch of events; nil means they are durable.
	Ingest(ctx context.Context, events []store.Event) error
	// NewItemRisk is the integrity risk of a new_item event that names
	// none.
	NewItemRisk() float64
	// Info describes what the process loaded, for /v1/status.
	Info() map[string]any
	// ArmCounts is, by experiment arm, what the process served and the
	// events on it, for /v1/status; nil without experiments.
	ArmCounts() map[string]config.ArmCounts
	// ShadowCounts is, by ranker stage with a shadow model, how the
	// shadow agreed with the served model; nil without one.
	ShadowCounts() map[string]config.ShadowCounts
	// SourceCounts is, by retrieval source, how it fared in the latest
	// requests, for /v1/status; nil off the frontend.
	SourceCounts() map[string]config.SourceCounts
	// StartPrecompute starts a precompute run of the live config, to stop
	// at deadline (0: the engine's default), and returns it as started
	// (engine.ErrPrecomputeRunning while another runs); LastPrecompute is
	// the last run, nil when none was made.
	StartPrecompute(deadline time.Duration) (*config.PrecomputeRun, error)
	LastPrecompute() *config.PrecomputeRun
	// PrecomputeCounts reports the last run and how often a list
	// answered, for /v1/status; nil when the process precomputes nothing.
	PrecomputeCounts() *config.PrecomputeCounts
	// RecommendPrecomputed answers from the user's precomputed list when
	// a fresh one fills the answer, nil otherwise: what a saturated
	// frontend serves instead of queueing the funnel. Released as
	// Recommend's answers are.
	RecommendPrecomputed(ctx context.Context, req *Request) (*Response, error)
}

// The client API's request and response, as the engine serves them: the
// JSON of GET /v1/recommendations is Response.
type (
	Request  = engine.Request
	Response = engine.Response
	Item     = engine.Item
)

// ErrBadRequest marks errors the client must fix; they answer 400.
var ErrBadRequest = engine.ErrBadRequest

// Options configure a Server.
type Options struct {
	// Stage the process runs, reported in /v1/status.
	Stage string
	// DeployRevision of the pod template, from config.DeployRevisionEnv:
	// the stage's config.StageRevision when the pod started. Empty outside
	// Kubernetes, where every config is applied whole.
	DeployRevision string
	// MaxN bounds the n parameter; 1000 when zero.
	MaxN int
	// MaxBodyBytes bounds a request body; 4 MiB when zero.
	MaxBodyBytes int64
	// MaxEvents bounds the events of one POST; 10000 when zero.
	MaxEvents int
	// RequestTimeout bounds a recommendation; 2s when zero.
	RequestTimeout time.Duration
	// MaxConcurrent bounds the recommendations computed at once; the
	// others wait their turn, first come first served, within their
	// RequestTimeout. 0: no bound.
	MaxConcurrent int
	// EventsToken, when set, is the bearer token POST /v1/events requires
	// (config.EventsTokenEnv); requests without it answer 401. POST
	// config.PrecomputePath requires it too.
	EventsToken string
	// SaturatedAt is how many recommendations in the server at once,
	// computed or waiting their turn, make the frontend saturated: a
	// request beyond it is answered from the user's precomputed list when
	// there is one (config.PrecomputeWhenSaturated). 0: twice GOMAXPROCS,
	// past which a CPU-bound funnel only makes every request wait longer.
	SaturatedAt int
	Log         *slog.Logger
}

// Server holds the serving state shared by the HTTP handlers.
type Server struct {
	opts     Options
	engine   Engine
	loaded   atomic.Bool // engine is set: the handlers may use it
	registry *prometheus.Registry
	metrics  *metrics
	slots    chan struct{} // recommendations being computed, when bounded
	inFlight atomic.Int64  // recommendations being computed or waiting for a slot

	revision atomic.Pointer[string] // config revision being served
	ready    atomic.Bool            // a config is applied and the process is not draining
	draining atomic.Bool

	mu               sync.Mutex // guards the refusal fields
	rejectedRevision string
	rejected         string
}

// New returns a Server in front of engine.
func New(engine Engine, opts Options) *Server {
	if opts.MaxN == 0 {
		opts.MaxN = 1000
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 4 << 20
	}
	if opts.MaxEvents == 0 {
		opts.MaxEvents = 10000
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SaturatedAt == 0 {
		opts.SaturatedAt = 2 * runtime.GOMAXPROCS(0)
	}
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process's own series (GC pauses, heap,
	// goroutines, CPU, memory) beside the server's.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), grpcRequests)
	s := &Server{opts: opts, engine: engine, registry: reg, metrics: newMetrics(reg)}
	s.loaded.Store(engine != nil)
	if opts.MaxConcurrent > 0 {
		s.slots = make(chan struct{}, opts.MaxConcurrent)
	}
	empty := ""
	s.revision.Store(&empty)
	return s
}

// SetEngine installs the engine once it has loaded. New may be given nil,
// so that the engine can register its metrics on Registry first and the
// process can serve /healthz (and /metrics) while it loads: until then the
// API answers 503 and /readyz stays 503.
func (s *Server) SetEngine(e Engine) {
	s.engine = e
	s.loaded.Store(e != nil)
}

// Registry is the server's private Prometheus registry, for the engine's
// own metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// OnConfig handles one delivery of the raw config: parse, validate, check
// it is meant for this pod's deploy revision, and apply. A refused config
// leaves the previous one serving and is logged, counted and reported.
func (s *Server) OnConfig(raw []byte) {
	revision := config.Revision(raw)
	if revision == *s.revision.Load() {
		return
	}
	cfg, err := config.Parse(raw)
	var stageRevision string
	if err == nil && s.opts.DeployRevision != "" {
		stageRevision, err = cfg.StageRevision(s.opts.Stage)
	}
	if err == nil && s.opts.DeployRevision != "" && stageRevision != s.opts.DeployRevision {
		// The config changes what this stage loads: the operator is
		// rolling the stage to a new pod template, whose pods will serve
		// it. The other stages apply it live.
		s.opts.Log.Info("Config is for another deploy revision of this stage, keeping the current one until this pod is replaced",
			"revision", revision, "deployRevision", stageRevision, "podDeployRevision", s.opts.DeployRevision)
		return
	}
	if err == nil && !s.loaded.Load() {
		err = errors.New("the engine is still loading")
	}
	if err == nil {
		err = s.engine.Apply(cfg, revision)
	}
	if err != nil {
		s.metrics.configRejected.Inc()
		s.mu.Lock()
		s.rejectedRevision, s.rejected = revision, err.Error()
		s.mu.Unlock()
		s.opts.Log.Error("Refused config, the previous one keeps serving", "revision", revision, "err", err)
		return
	}
	s.revision.Store(&revision)
	s.metrics.configApplied.Inc()
	s.metrics.setRevision(revision)
	if !s.draining.Load() {
		s.ready.Store(true)
	}
	s.opts.Log.Info("Serving config", "revision", revision)
}

// Revision is the config revision being served, empty before the first.
func (s *Server) Revision() string { return *s.revision.Load() }

// Rejected is why the last refused config was refused, empty if none was.
func (s *Server) Rejected() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Drain turns readiness off so that endpoints stop sending traffic.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.ready.Store(false)
}

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/recommendations", s.instrument("recommendations", http.HandlerFunc(s.recommendations)))
	mux.Handle("POST /v1/events", s.instrument("events", http.HandlerFunc(s.events)))
	mux.Handle("POST "+config.PrecomputePath, s.instrument("precompute", http.HandlerFunc(s.startPrecompute)))
	mux.Handle("GET "+config.PrecomputePath, s.instrument("precompute", http.HandlerFunc(s.lastPrecompute)))
	mux.Handle("GET "+config.StatusPath, s.instrument("status", http.HandlerFunc(s.status)))
	// An idle frontend reports a request rate of 0 rather than none, so
	// that an autoscaler on the rate can read it before the first request
	// (the gRPC stages count theirs in recpipeline_grpc_requests_total).
	if !config.ServesGRPC(s.opts.Stage) {
		s.metrics.requests.WithLabelValues("recommendations", strconv.Itoa(http.StatusOK))
	}
	// A broken engine (its store can record nothing more) fails both
	// probes: readiness takes the pod out of the Service, liveness
	// restarts it, which recovers the store.
	mux.HandleFunc("GET "+config.HealthzPath, func(w http.ResponseWriter, _ *http.Request) {
		if err := s.broken(); err != nil {
			http.Error(w, "broken: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET "+config.ReadyzPath, func(w http.ResponseWriter, _ *http.Request) {
		if err := s.broken(); err != nil {
			http.Error(w, "broken: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("GET "+config.MetricsPath, promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	return s.recover(mux)
}

// broken is why the engine cannot serve until a restart, nil if it can
// (or does not say).
func (s *Server) broken() error {
	if !s.loaded.Load() {
		return nil
	}
	if h, ok := s.engine.(interface{ Healthy() error }); ok {
		return h.Healthy()
	}
	return nil
}

func (s *Server) recommendations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := &Request{ID: requestID(r), User: q.Get("user"), N: 25, Now: time.Now()}
	if req.User == "" || len(req.User) > 256 {
		writeError(w, http.StatusBadRequest, "user is required, at most 256 bytes")
		return
	}
	if v := q.Get("n"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > s.opts.MaxN {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("n must be an integer between 1 and %d", s.opts.MaxN))
			return
		}
		req.N = n
	}
	switch q.Get("debug") {
	case "", "false", "0":
	case "true", "1":
		req.Debug = true
	default:
		writeError(w, http.StatusBadRequest, "debug must be true or false")
		return
	}
	if !s.loaded.Load() || (!s.ready.Load() && s.Revision() == "") {
		writeError(w, http.StatusServiceUnavailable, "no config loaded yet")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	if n > int64(s.opts.SaturatedAt) && s.answerPrecomputed(ctx, w, req) {
		// Saturated: a precomputed list answers at once.
		return
	}
	if s.slots != nil {
		// The funnel waits its turn; a channel's waiters are served in
		// the order they came.
		select {
		case s.slots <- struct{}{}:
			defer func() { <-s.slots }()
		case <-ctx.Done():
			s.fail(w, ctx.Err())
			return
		}
	}
	resp, err := s.engine.Recommend(ctx, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
	resp.Release()
}

// requestID is the client's X-Request-Id when it is a usable one (1 to
// 128 printable ASCII characters), or a new random one: the served-lists
// log records it, so that a client can join what it logged to what was
// served.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && !strings.ContainsFunc(id, func(c rune) bool { return c < '!' || c > '~' }) {
		return id
	}
	return strconv.FormatUint(rand.Uint64(), 36)
}

// answerPrecomputed answers req from its user's precomputed list, when
// there is one that fills it, and reports whether it did.
func (s *Server) answerPrecomputed(ctx context.Context, w http.ResponseWriter, req *Request) bool {
	resp, err := s.engine.RecommendPrecomputed(ctx, req)
	if err != nil {
		s.fail(w, err)
		return true
	}
	if resp == nil {
		req.ListTried = true // the funnel answers; no second look-up
		return false
	}
	s.metrics.shed.Inc()
	writeJSON(w, http.StatusOK, resp)
	resp.Release()
	return true
}

// startPrecompute starts a precompute run, to stop at the query's
// deadline (a Go duration; the engine's default when absent): 202 with the
// run, 409 with the run going on while another runs.
func (s *Server) startPrecompute(w http.ResponseWriter, r *http.Request) {
	if s.opts.EventsToken != "" && !bearer(r, s.opts.EventsToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="events"`)
		writeError(w, http.StatusUnauthorized, "POST "+config.PrecomputePath+" needs the pipeline's events token: Authorization: Bearer <token>")
		return
	}
	if !s.loaded.Load() || s.Revision() == "" {
		writeError(w, http.StatusServiceUnavailable, "no config loaded yet")
		return
	}
	var deadline time.Duration
	if v := r.URL.Query().Get("deadline"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "deadline must be a positive duration such as 1h30m")
			return
		}
		deadline = d
	}
	run, err := s.engine.StartPrecompute(deadline)
	if errors.Is(err, engine.ErrPrecomputeRunning) {
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "run": s.engine.LastPrecompute()})
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusAccepted, run)
}

// lastPrecompute answers the last precompute run; 404 when none was made.
func (s *Server) lastPrecompute(w http.ResponseWriter, _ *http.Request) {
	var run *config.PrecomputeRun
	if s.loaded.Load() {
		run = s.engine.LastPrecompute()
	}
	if run == nil {
		writeError(w, http.StatusNotFound, "no precompute run was made since the process started")
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// eventBody is the body of POST /v1/events.
type eventBody struct {
	Events []struct {
		User   string    `json:"user"`
		Item   string    `json:"item"`
		Author string    `json:"author"`
		Type   string    `json:"type"`
		Time   time.Time `json:"time"`
		// Risk is the item's integrity risk: required for integrity,
		// optional for new_item (the live config's rerank.newItemRisk
		// when absent), refused for the others.
		Risk *float64 `json:"risk"`
	} `json:"events"`
}

var eventBodies = sync.Pool{New: func() any { return new(eventBody) }}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if s.opts.EventsToken != "" && !bearer(r, s.opts.EventsToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="events"`)
		writeError(w, http.StatusUnauthorized, "POST /v1/events needs the pipeline's events token: Authorization: Bearer <token>")
		return
	}
	newItemRisk := 0.0
	if s.loaded.Load() {
		newItemRisk = s.engine.NewItemRisk()
	}
	events, err := decodeEvents(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes), s.opts.MaxEvents, newItemRisk)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", s.opts.MaxBodyBytes))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.loaded.Load() {
		writeError(w, http.StatusServiceUnavailable, "still loading")
		return
	}
	if err := s.engine.Ingest(r.Context(), events); err != nil {
		s.fail(w, err)
		return
	}
	s.metrics.events.Add(float64(len(events)))
	writeJSON(w, http.StatusAccepted, map[string]int{"accepted": len(events)})
}

// bearer reports whether r carries token as its bearer token, compared in
// constant time.
func bearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// decodeEvents parses and checks a batch of events; errors name the event
// at fault. A new_item without a risk gets newItemRisk.
func decodeEvents(r io.Reader, maxEvents int, newItemRisk float64) ([]store.Event, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	// The decoded batch grows into a pooled one's room: growing it event
	// by event was a tenth of the bytes a served request allocated, with
	// clients posting their impressions.
	body := eventBodies.Get().(*eventBody)
	defer func() {
		clear(body.Events) // drop the strings the pool would keep alive
		body.Events = body.Events[:0]
		eventBodies.Put(body)
	}()
	if err := dec.Decode(body); err != nil {
		return nil, fmt.Errorf("body is not an events document: %w", err)
	}
	if len(body.Events) == 0 {
		return nil, errors.New("events: at least one event is required")
	}
	if len(body.Events) > maxEvents {
		return nil, fmt.Errorf("events: %d events, at most %d per request", len(body.Events), maxEvents)
	}
	out := make([]store.Event, len(body.Events))
	for i, e := range body.Events {
		ev := store.Event{User: e.User, Item: e.Item, Author: e.Author, Type: store.EventType(e.Type), Time: e.Time}
		if err := checkEvent(&ev); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		if err := setRisk(&ev, e.Risk, newItemRisk); err != nil {
			return nil, fmt.Errorf("events[%d]: %w", i, err)
		}
		out[i] = ev
	}
	return out, nil
}

func checkEvent(e *store.Event) error {
	switch e.Type {
	case store.Impression, store.Click, store.Like, store.Comment, store.Share, store.SeeLess:
		if e.User == "" || e.Item == "" {
			return fmt.Errorf("type %s needs user and item", e.Type)
		}
	case store.Follow, store.Unfollow:
		if e.User == "" || e.Author == "" {
			return fmt.Errorf("type %s needs user and author", e.Type)
		}
	case store.NewItem:
		if e.Item == "" || e.Author == "" {
			return fmt.Errorf("type new_item needs item and author")
		}
	case store.Integrity:
		if e.Item == "" {
			return fmt.Errorf("type integrity needs item and risk")
		}
	default:
		return fmt.Errorf("type %q is not an event type", e.Type)
	}
	for _, s := range []string{e.User, e.Item, e.Author} {
		if len(s) > 256 {
			return errors.New("ids are at most 256 bytes")
		}
	}
	// An event from the future would count at full weight for ever (a
	// click dated 2035 topped the popular items until then) and move the
	// event clock past every real request.
	if latest := time.Now().Add(MaxClockSkew); e.Time.After(latest) {
		return fmt.Errorf("time %s is more than %s after this server's clock", e.Time.Format(time.RFC3339), MaxClockSkew)
	}
	return nil
}

// setRisk checks an event's risk and sets it: integrity events need one,
// a new_item without one gets newItemRisk, other events may not have one.
func setRisk(e *store.Event, risk *float64, newItemRisk float64) error {
	switch {
	case risk == nil && e.Type == store.Integrity:
		return errors.New("type integrity needs item and risk")
	case risk == nil && e.Type == store.NewItem:
		e.Risk = newItemRisk
	case risk == nil:
	case e.Type != store.Integrity && e.Type != store.NewItem:
		return fmt.Errorf("risk is for integrity and new_item events, not %s", e.Type)
	case !(*risk >= 0 && *risk <= 1):
		return fmt.Errorf("risk %v is outside [0, 1]", *risk)
	default:
		e.Risk = *risk
	}
	return nil
}

// MaxClockSkew is how far after the server's clock an event may be dated.
const MaxClockSkew = 5 * time.Minute

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	st := config.Status{
		ConfigRevision:   s.Revision(),
		DeployRevision:   s.opts.DeployRevision,
		Stage:            s.opts.Stage,
		RejectedRevision: s.rejectedRevision,
		Rejected:         s.rejected,
	}
	s.mu.Unlock()
	if s.loaded.Load() {
		st.Arms = s.engine.ArmCounts()
		st.Shadow = s.engine.ShadowCounts()
		st.Sources = s.engine.SourceCounts()
		st.Precompute = s.engine.PrecomputeCounts()
	}
	writeJSON(w, http.StatusOK, struct {
		config.Status
		Info map[string]any `json:"info,omitempty"`
	}{st, s.info()})
}

func (s *Server) info() map[string]any {
	if !s.loaded.Load() {
		return nil
	}
	return s.engine.Info()
}

// fail answers an engine error: the client's fault is a 400 with the
// reason, a deadline a 504, anything else a 500.
func (s *Server) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadRequest), errors.Is(err, store.ErrInvalidEvent):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		s.metrics.errors.WithLabelValues("deadline").Inc()
		writeError(w, http.StatusGatewayTimeout, "deadline exceeded")
	default:
		s.metrics.errors.WithLabelValues("internal").Inc()
		s.opts.Log.Error("Request failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// HTTPTimeouts bound how long a client may hold a connection of the HTTP
// server; zero fields take the defaults of NewHTTPServer.
type HTTPTimeouts struct {
	// ReadHeader bounds reading a request's headers (default 5s).
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included (default 30s): a
	// client trickling a body does not hold a connection for ever.
	Read time.Duration
	// Write bounds writing the response, from the end of the headers read
	// (default 60s).
	Write time.Duration
	// Idle bounds a kept-alive connection between requests (default 120s).
	Idle time.Duration
}

// MaxHeaderBytes bounds a request's headers.
const MaxHeaderBytes = 64 << 10

// NewHTTPServer returns the http.Server of addr serving h with t's bounds.
func NewHTTPServer(addr string, h http.Handler, t HTTPTimeouts) *http.Server {
	or := func(d, def time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return def
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: or(t.ReadHeader, 5*time.Second),
		ReadTimeout:       or(t.Read, 30*time.Second),
		WriteTimeout:      or(t.Write, 60*time.Second),
		IdleTimeout:       or(t.Idle, 120*time.Second),
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
