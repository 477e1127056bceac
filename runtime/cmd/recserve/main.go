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

// Command recserve is RecPipeline's serving runtime: the whole recommendation
// funnel in one process (--stage=all, the local default), or one stage of it
// (frontend, retrieval, ranker-first, ranker-second), the frontend serving
// the HTTP API of runtime/internal/serving/server and reaching the others over gRPC.
//
// The config comes from a file (--config, watched for changes) or, in a
// cluster, from the pipeline's ConfigMap (--config-map, watched through the
// API). A config that fails to parse, validate or compile is refused and the
// previous one keeps serving.
//
// `recserve index --config FILE` is the build step of the ANN indexes: it
// loads the catalog and the models of the config as serving does, builds
// the HNSW index of every model an ANN source searches and saves it beside
// the model, where recserve loads it at start instead of building it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/stageauth"
	"github.com/recpipeline/recpipeline/runtime/internal/softlimit"
)

func main() {
	run := run
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "index":
			run = func() error { return runIndex(os.Args[2:]) }
		case config.CommandPrecompute:
			run = func() error { return runPrecompute(os.Args[2:]) }
		case config.CommandExport:
			run = func() error { return runExport(os.Args[2:], os.Stdout) }
		}
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recserve:", err)
		// The kubelet shows this file's content in the pod's status, and the
		// operator copies it into the pipeline's Degraded condition.
		// Only where the kubelet provides the file.
		if f, ferr := os.OpenFile(config.TerminationMessagePath, os.O_WRONLY|os.O_TRUNC, 0); ferr == nil {
			_, _ = f.WriteString(err.Error())
			_ = f.Close()
		}
		os.Exit(1)
	}
}

// flags are recserve's command line.
type flags struct {
	stage, file, configMap, stateDir, logLevel, pprofAddr string
	stageToken, memoryLimit, matmul                       string
	gcPercent                                             int
	precision                                             model.Precision // from matmul
	httpPort, grpcPort, maxConc, saturatedAt              int
	drain                                                 time.Duration
}

func parseFlags() *flags {
	f := &flags{}
	flag.StringVar(&f.stage, config.FlagStage, config.StageAll, "Stage to run: all (the whole funnel in one process), or one of the split stages frontend, retrieval, ranker-first, ranker-second.")
	flag.StringVar(&f.file, "config", "", "Path of the runtime config file, watched for changes.")
	flag.StringVar(&f.configMap, config.FlagConfigMap, "", "Name of the ConfigMap holding the runtime config, in $POD_NAMESPACE, watched through the API.")
	flag.IntVar(&f.httpPort, config.FlagHTTPPort, config.HTTPPort, "Port of the HTTP API.")
	flag.IntVar(&f.grpcPort, config.FlagGRPCPort, config.GRPCPort, "Port of the gRPC API the retrieval and ranker stages serve to the frontend.")
	flag.StringVar(&f.stageToken, config.FlagStageTokenFile, "", "File holding the pipeline's stage token: the gRPC stages answer only calls that carry it, the frontend sends it. None when empty.")
	flag.StringVar(&f.stateDir, config.FlagStateDir, "", "Directory of the memory store's log; a temporary directory when empty.")
	flag.DurationVar(&f.drain, "drain", 5*time.Second, "How long readiness is off before the server stops on SIGTERM.")
	flag.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error.")
	flag.IntVar(&f.maxConc, "max-concurrent", 0, "Most recommendations computed at once; the others queue in arrival order. 0: as many as the CPUs the process may use (GOMAXPROCS), Go's scheduler then getting one processor more (unless GOMAXPROCS is set) so that requests are read as they arrive; -1: no bound.")
	flag.IntVar(&f.saturatedAt, "saturated-at", 0, "Recommendations in the server at once, computed or waiting their turn, past which the frontend is saturated and answers users with a precomputed list from it. 0: twice the CPUs the process may use.")
	flag.StringVar(&f.memoryLimit, "memory-limit", "", "Soft memory limit of the Go heap, a Kubernetes quantity (1400Mi); default 90% of the container's memory limit, none outside a container with one (GOMEMLIMIT, when set, wins).")
	flag.IntVar(&f.gcPercent, "gc-percent", 25, "Target percent of the Go collector: the heap grows this percent past what is live before a collection (GOGC, when set, wins). recserve's live heap is mostly the catalog, the embeddings and the ANN index, which a collection marks without scanning: collecting at 25 rather than Go's 100 keeps memory near what is live for one to two percent of CPU.")
	flag.StringVar(&f.matmul, "matmul-precision", "auto", "Arithmetic of the second stage's matrix products over its candidates: float32; bfloat16, inputs and weights rounded to bfloat16 and their products summed in float32, about twice as fast, on a CPU with AVX-512 BF16 only; or auto, bfloat16 where the CPU has it, else float32. Towers and the first stage stay in float32.")
	flag.StringVar(&f.pprofAddr, "pprof-address", "", "Address of Go's profiling endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; off when empty. Keep it off the pod's network.")
	flag.Parse()
	return f
}

// admission returns the bound on the recommendations computed at once and
// the saturation point, from the flags, and gives Go's scheduler its
// spare processor. By default the HTTP frontend computes as many
// recommendations at once as it may use CPUs, and the scheduler gets one
// processor more. With a processor for each CPU and all of them busy,
// Go reads the network only when a processor runs out of work or its
// monitor polls (every 10 ms), then queues what arrived behind the running
// work: at saturation recbench saw a p99 of 40–44 ms where recserve's own
// histogram put 99% of requests under 16 ms. With the bound, the spare
// processor waits in the network poller, reads each request as it
// arrives, and the request waits for a slot in arrival order
// (BENCHMARKS.md, issue 16: 1,004 and 1,107 req/s at p99 15.3 and 13.7 ms
// against 952 and 1,015 req/s at 44.0 and 39.9 ms).
func admission(f *flags, log *slog.Logger) (maxConc, saturatedAt int) {
	procs := runtime.GOMAXPROCS(0)
	saturatedAt = f.saturatedAt
	if saturatedAt == 0 {
		saturatedAt = 2 * procs
	}
	switch {
	case f.maxConc < 0:
		return 0, saturatedAt
	case f.maxConc > 0 || config.ServesGRPC(f.stage):
		return f.maxConc, saturatedAt
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procs + 1)
	}
	log.Info("Admission", "maxConcurrent", procs, "gomaxprocs", runtime.GOMAXPROCS(0))
	return procs, saturatedAt
}

// matmulPrecision reads --matmul-precision: the precision of the second
// stage's products over its candidates. bfloat16 halves their time
// (BENCHMARKS.md, issue 16) and moved no quality figure of the served
// funnel by more than 0.0004 (hack/bench-quality.sh, ID-only and with
// item features).
func matmulPrecision(name string) (model.Precision, error) {
	switch name {
	case "auto":
		if model.BFloat16Supported() {
			return model.BFloat16, nil
		}
		return model.Float32, nil
	case "float32":
		return model.Float32, nil
	case "bfloat16":
		if !model.BFloat16Supported() {
			return 0, fmt.Errorf("--matmul-precision=bfloat16: this CPU has no AVX-512 BF16")
		}
		return model.BFloat16, nil
	}
	return 0, fmt.Errorf("--matmul-precision=%s: want auto, float32 or bfloat16", name)
}

// setPrecision sets f.precision from --matmul-precision.
func setPrecision(f *flags, log *slog.Logger) error {
	p, err := matmulPrecision(f.matmul)
	if err != nil {
		return err
	}
	f.precision = p
	log.Info("Second stage products", "precision", p.String())
	return nil
}

// tuneMemory sets the Go runtime's soft memory limit and collector target
// from f.
func tuneMemory(f *flags, log *slog.Logger) error {
	limit, err := softlimit.Set(f.memoryLimit)
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	if limit < math.MaxInt64 {
		log.Info("Memory limit", "bytes", limit)
	}
	if _, err := softlimit.GCPercent(f.gcPercent); err != nil {
		return fmt.Errorf("--gc-percent: %w", err)
	}
	return nil
}

func run() error {
	f := parseFlags()
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if err := tuneMemory(f, log); err != nil {
		return err
	}
	maxConc, saturatedAt := admission(f, log)
	if err := setPrecision(f, log); err != nil {
		return err
	}

	if !config.ValidStage(f.stage) {
		return fmt.Errorf("--stage=%s: want all, frontend, retrieval, ranker-first or ranker-second", f.stage)
	}
	if (f.file == "") == (f.configMap == "") {
		return errors.New("exactly one of --config and --config-map is required")
	}

	var token *stageauth.Token
	if f.stageToken != "" {
		var err error
		if token, err = stageauth.Open(f.stageToken); err != nil {
			return fmt.Errorf("--%s: %w", config.FlagStageTokenFile, err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.pprofAddr != "" {
		go serveProfiles(f.pprofAddr, log)
	}
	src, err := configSource(f, log)
	if err != nil {
		return err
	}

	// HTTP serves from the start: /healthz answers while the catalog and
	// models load (minutes at a million items), so that the liveness probe
	// does not kill a loading pod; /readyz and the API answer 503 until the
	// first config is applied.
	srv := server.New(nil, server.Options{
		Stage:          f.stage,
		DeployRevision: os.Getenv(config.DeployRevisionEnv),
		MaxConcurrent:  maxConc,
		SaturatedAt:    saturatedAt,
		EventsToken:    os.Getenv(config.EventsTokenEnv),
		Log:            log,
	})
	hs := server.NewHTTPServer(net.JoinHostPort("", strconv.Itoa(f.httpPort)), srv.Handler(), server.HTTPTimeouts{})
	errc := make(chan error, 2)
	go func() { errc <- hs.ListenAndServe() }()
	defer func() { _ = hs.Close() }()
	// The gRPC port listens before /readyz answers 200: a stage that reads
	// ready must take the frontend's calls (the frontend would otherwise
	// pass over it, connection refused, in between).
	var lis net.Listener
	if config.ServesGRPC(f.stage) {
		if lis, err = net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(f.grpcPort))); err != nil {
			return fmt.Errorf("failed to listen for gRPC: %w", err)
		}
	}

	// The first config decides what the process loads; later ones are
	// applied live by the server.
	raw, configs, ok := watch(ctx, src)
	if !ok {
		return nil
	}
	eng, err := load(ctx, f, srv, raw, token, log)
	if err != nil {
		return err
	}
	defer func() { _ = eng.Close() }()
	var gs *grpc.Server
	if lis != nil {
		var opts []grpc.ServerOption
		if token != nil {
			opts = token.ServerOptions()
		}
		gs = grpc.NewServer(opts...)
		server.RegisterStage(gs, f.stage, eng)
		go func() { errc <- gs.Serve(lis) }()
	}
	srv.OnConfig(raw)
	if srv.Revision() == "" {
		return fmt.Errorf("the initial config was refused: %s", srv.Rejected())
	}
	log.Info("Ready", "revision", srv.Revision())
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case raw := <-configs:
				srv.OnConfig(raw)
			}
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("server failed: %w", err)
	case <-ctx.Done():
	}
	return drain(f, srv, hs, gs, log)
}

func serveProfiles(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ps := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("Serving profiles", "address", addr, "err", ps.ListenAndServe())
}

// configSource is the config file, or the ConfigMap read through the API.
func configSource(f *flags, log *slog.Logger) (server.ConfigSource, error) {
	if f.file != "" {
		return &server.FileSource{Path: f.file, Log: log}, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to read the in-cluster API config: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("failed to create the API client: %w", err)
	}
	return &server.ConfigMapSource{Client: cs, Namespace: os.Getenv(config.PodNamespaceEnv), Name: f.configMap, Log: log}, nil
}

// watch returns the first delivery of the config and a channel of the
// later ones; false when ctx ends first.
func watch(ctx context.Context, src server.ConfigSource) ([]byte, <-chan []byte, bool) {
	first := make(chan []byte, 1)
	configs := make(chan []byte, 16)
	go func() {
		sent := false
		_ = src.Watch(ctx, func(raw []byte) {
			if !sent {
				sent = true
				first <- raw
				return
			}
			configs <- raw
		})
	}()
	select {
	case raw := <-first:
		return raw, configs, true
	case <-ctx.Done():
		return nil, nil, false
	}
}

// load opens the engine on the initial config raw and installs it in srv.
func load(ctx context.Context, f *flags, srv *server.Server, raw []byte, token *stageauth.Token, log *slog.Logger) (*engine.Engine, error) {
	cfg, err := config.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("the initial config is invalid: %w", err)
	}
	dir := f.stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "recserve-state-"); err != nil {
			return nil, err
		}
	}
	log.Info("Loading", "pipeline", cfg.Pipeline, "catalog", cfg.Deploy.Catalog, "models", len(cfg.Deploy.Models))
	start := time.Now()
	opts := engine.Options{StateDir: dir, Log: log, Registry: srv.Registry(), Stage: f.stage, Precision: f.precision}
	if token != nil {
		opts.StageCredentials = token
	}
	eng, err := engine.Open(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	// Loading leaves garbage of the order of what it keeps (the catalog's
	// parse buffers, the embeddings copied for the index); the heap would
	// hold on to it until the load on the server grew the heap past it.
	// Returned now, the memory resident at ready is what serving uses.
	debug.FreeOSMemory()
	srv.SetEngine(eng)
	log.Info("Loaded", "loadSeconds", time.Since(start).Seconds())
	return eng, nil
}

// drain turns readiness off, waits f.drain for endpoints to stop sending,
// then stops the servers.
func drain(f *flags, srv *server.Server, hs *http.Server, gs *grpc.Server, log *slog.Logger) error {
	log.Info("Draining", "for", f.drain.String())
	srv.Drain()
	time.Sleep(f.drain)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if gs != nil {
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-shutdownCtx.Done():
			gs.Stop()
		}
	}
	return hs.Shutdown(shutdownCtx)
}
