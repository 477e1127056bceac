// Command recserve is RecPipeline's serving runtime: the whole recommendation
// funnel in one process (--stage=all, the local default), or one stage of it
// (frontend, retrieval, ranker-first, ranker-second), the frontend serving
// the HTTP API of runtime/internal/serving/server and reaching the others over gRPC.
//
// The config comes from a file (--config, watched for changes) or, in a
// cluster, from the pipeline's ConfigMap (--config-map, watched through the
// API). A config that fails to parse, validate or compile is refused and the
// previous one keeps serving.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
)

func main() {
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

func run() error {
	var (
		stage     = flag.String(config.FlagStage, config.StageAll, "Stage to run: all (the whole funnel in one process), or one of the split stages frontend, retrieval, ranker-first, ranker-second.")
		file      = flag.String("config", "", "Path of the runtime config file, watched for changes.")
		configMap = flag.String(config.FlagConfigMap, "", "Name of the ConfigMap holding the runtime config, in $POD_NAMESPACE, watched through the API.")
		httpPort  = flag.Int(config.FlagHTTPPort, config.HTTPPort, "Port of the HTTP API.")
		grpcPort  = flag.Int(config.FlagGRPCPort, config.GRPCPort, "Port of the gRPC API the retrieval and ranker stages serve to the frontend.")
		stateDir  = flag.String(config.FlagStateDir, "", "Directory of the memory store's log; a temporary directory when empty.")
		drain     = flag.Duration("drain", 5*time.Second, "How long readiness is off before the server stops on SIGTERM.")
		logLevel  = flag.String("log-level", "info", "debug, info, warn or error.")
		maxConc   = flag.Int("max-concurrent", 0, "Most recommendations computed at once; the others queue in arrival order. 0: no bound.")
		pprofAddr = flag.String("pprof-address", "", "Address of Go's profiling endpoints (/debug/pprof/), e.g. 127.0.0.1:6060; off when empty. Keep it off the pod's network.")
	)
	flag.Parse()
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)

	if !config.ValidStage(*stage) {
		return fmt.Errorf("--stage=%s: want all, frontend, retrieval, ranker-first or ranker-second", *stage)
	}
	if (*file == "") == (*configMap == "") {
		return errors.New("exactly one of --config and --config-map is required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *pprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		go func() {
			ps := &http.Server{Addr: *pprofAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
			log.Info("Serving profiles", "address", *pprofAddr, "err", ps.ListenAndServe())
		}()
	}

	var src server.ConfigSource
	if *file != "" {
		src = &server.FileSource{Path: *file, Log: log}
	} else {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return fmt.Errorf("failed to read the in-cluster API config: %w", err)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("failed to create the API client: %w", err)
		}
		src = &server.ConfigMapSource{Client: cs, Namespace: os.Getenv(config.PodNamespaceEnv), Name: *configMap, Log: log}
	}

	// The first config decides what the process loads; later ones are
	// applied live by the server.
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
	var raw []byte
	select {
	case raw = <-first:
	case <-ctx.Done():
		return nil
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		return fmt.Errorf("the initial config is invalid: %w", err)
	}

	dir := *stateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "recserve-state-"); err != nil {
			return err
		}
	}
	log.Info("Loading", "pipeline", cfg.Pipeline, "catalog", cfg.Deploy.Catalog, "models", len(cfg.Deploy.Models))
	start := time.Now()
	srv := server.New(nil, server.Options{
		Stage:          *stage,
		DeployRevision: os.Getenv(config.DeployRevisionEnv),
		MaxConcurrent:  *maxConc,
		Log:            log,
	})
	eng, err := engine.Open(ctx, cfg, engine.Options{StateDir: dir, Log: log, Registry: srv.Registry(), Stage: *stage})
	if err != nil {
		return err
	}
	defer func() { _ = eng.Close() }()
	srv.SetEngine(eng)
	srv.OnConfig(raw)
	if srv.Revision() == "" {
		return fmt.Errorf("the initial config was refused: %s", srv.Rejected())
	}
	log.Info("Ready", "loadSeconds", time.Since(start).Seconds(), "revision", srv.Revision())

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

	hs := &http.Server{
		Addr:              net.JoinHostPort("", strconv.Itoa(*httpPort)),
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 2)
	// The gRPC port listens before the HTTP one serves /readyz: a stage
	// that reads ready must take the frontend's calls (the frontend would
	// otherwise pass over it, connection refused, in between).
	var gs *grpc.Server
	if config.ServesGRPC(*stage) {
		lis, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(*grpcPort)))
		if err != nil {
			return fmt.Errorf("failed to listen for gRPC: %w", err)
		}
		gs = grpc.NewServer()
		server.RegisterStage(gs, *stage, eng)
		go func() { errc <- gs.Serve(lis) }()
	}
	go func() { errc <- hs.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("server failed: %w", err)
	case <-ctx.Done():
	}
	log.Info("Draining", "for", drain.String())
	srv.Drain()
	time.Sleep(*drain)
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
