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

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
)

// runIndex is `recserve index`: it writes the ANN index of every model an
// ANN source of the config searches into the model's directory (see
// engine.WriteIndexes).
func runIndex(args []string) error {
	fs := flag.NewFlagSet("recserve index", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recserve index --config FILE\n\n"+
			"Builds the HNSW index of every model an ANN source of the config searches, over the config's catalog,\n"+
			"and writes it to %s in the model's directory, which must be local. recserve loads it at start\n"+
			"instead of building the index, as long as the catalog and the model are unchanged.\n\n", engine.IndexFile)
		fs.PrintDefaults()
	}
	file := fs.String("config", "", "Path of the runtime config, as recserve serves it.")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error.")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	if *file == "" || fs.NArg() > 0 {
		return errors.New("usage: recserve index --config FILE")
	}
	raw, err := os.ReadFile(*file)
	if err != nil {
		return fmt.Errorf("failed to read the config: %w", err)
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		return fmt.Errorf("the config is invalid: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	written, err := engine.WriteIndexes(ctx, cfg, engine.Options{Log: log})
	for _, w := range written {
		fmt.Printf("Wrote %s: the index of %s, %d items, %d bytes\n", w.Path, w.Model, w.Items, w.Bytes)
	}
	if err != nil {
		return err
	}
	fmt.Printf("Done in %.1f s\n", time.Since(start).Seconds())
	return nil
}
