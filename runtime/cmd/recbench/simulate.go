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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/simulate"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// simulateFlags names the fields of simulate.Options after the flags of
// recbench simulate, for the errors of Options.Default.
var simulateFlags = recclient.Names{
	"Users":       "-users",
	"Duration":    "-duration",
	"Requests":    "-requests",
	"N":           "-n",
	"Viewed":      "-viewed",
	"Concurrency": "-concurrency",
	"MaxFailed":   "-max-failed",
	"Weights":     "-weights",
}

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recbench simulate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o simulate.Options
	var (
		world   = fl.String("world", "", "world directory written by recgen, with its truth files (truth.json, truth_users.jsonl, truth_items.jsonl, catalog.jsonl)")
		rawURL  = fl.String("url", "http://127.0.0.1:8080", "recserve base URL")
		weights = fl.String("weights", "", "objective weights as type=w,...: click=1,like=2,... (default: the world's, click=1,like=2,comment=4,see_less=-8)")
		token   = fl.String("token", "", "bearer token of POST /v1/events (default: $"+config.EventsTokenEnv+")")
		timeout = fl.Duration("timeout", 5*time.Second, "timeout of one request")
		clock   = fl.String("time", "wall", "what the events are dated by: wall (the wall clock), or log (the world's log end, "+
			"advancing with the wall clock from the start of the run), which keeps recserve's event clock in the replayed log's time")
		asJSON = fl.Bool("json", false, "print the summary as one JSON line on stdout (the table and the progress go to stderr)")
	)
	fl.IntVar(&o.Users, "users", 2000, "population: the first N users of the world, drawn uniformly; left unset, all the world's when it has fewer")
	fl.Float64Var(&o.Rate, "rate", 50, "requests per second in all (0: back to back)")
	fl.DurationVar(&o.Duration, "duration", time.Minute, "length of the run (ignored unless set when -requests is given)")
	fl.IntVar(&o.Requests, "requests", 0, "requests to make (0: bounded by -duration)")
	fl.IntVar(&o.N, "n", 25, "items asked for per request")
	fl.IntVar(&o.Viewed, "viewed", 0, "items of each list, from the top, the user sees and may engage with (0: all)")
	fl.IntVar(&o.Concurrency, "concurrency", 4, "requests in flight at most")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of the users drawn and of their engagements")
	fl.IntVar(&o.MaxFailed, "max-failed", 0, "exit non-zero when more requests than this failed (lists and event posts)")
	fl.DurationVar(&o.Report, "report", 10*time.Second, "interval of the one-line progress reports on stderr (0: none)")
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["requests"] && !set["duration"] {
		o.Duration = 0
	}
	switch {
	case *world == "":
		return errors.New("-world is required: a world directory written by recgen")
	case o.Rate < 0:
		return fmt.Errorf("-rate %g must not be negative", o.Rate)
	case o.Rate == 0:
		o.Rate = -1 // back to back
	}
	base, err := baseURL(*rawURL)
	if err != nil {
		return err
	}
	if *weights != "" {
		if o.Weights, err = parseWeights(*weights); err != nil {
			return err
		}
	}
	if *token == "" {
		*token = os.Getenv(config.EventsTokenEnv)
	}
	w, err := synth.ReadTruth(*world)
	if err != nil {
		return fmt.Errorf("failed to read the world's truth: %w", err)
	}
	if !set["users"] {
		o.Users = min(o.Users, w.NumUsers())
	}
	switch *clock {
	case "wall":
	case "log":
		o.Now = logClock(w.Config(), time.Now)
	default:
		return fmt.Errorf("-time %q must be wall or log", *clock)
	}
	if err := o.Default(simulateFlags, w.NumUsers()); err != nil {
		return err
	}
	if o.Report > 0 {
		o.Progress = func(s simulate.Summary) { fmt.Fprintln(stderr, s.Line()) }
	}
	h := simulate.HTTP{Client: recclient.WithBearer(newClient(o.Concurrency, *timeout), *token), Base: base}
	sum, runErr := simulate.Run(ctx, h, h, w, o)
	text := stdout
	if *asJSON {
		text = stderr
	}
	sum.WriteText(text)
	if *asJSON {
		line, err := json.Marshal(&sum)
		if err != nil {
			return fmt.Errorf("failed to encode the summary: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", line)
	}
	switch {
	case sum.Interrupted:
		return errors.New("simulate interrupted")
	case errors.Is(runErr, simulate.ErrTooManyFailed):
		return fmt.Errorf("%w (-max-failed)", runErr)
	}
	return runErr
}

// parseWeights parses -weights: type=weight pairs separated by commas.
func parseWeights(s string) (synth.Weights, error) {
	w := synth.Weights{}
	for part := range strings.SplitSeq(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("-weights %q: %q is not type=weight", s, part)
		}
		t, err := dataset.ParseEventType(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("-weights %q: %w", s, err)
		}
		if _, dup := w[t]; dup {
			return nil, fmt.Errorf("-weights %q: %s is given twice", s, t)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("-weights %q: the weight of %s must be a finite number", s, t)
		}
		w[t] = x
	}
	return w, nil
}

// logClock dates events from the end of the world's log, cfg.Days after
// cfg.Start, advancing by the wall clock (now) from its first call.
func logClock(cfg synth.Config, now func() time.Time) func() time.Time {
	end := cfg.Start.AddDate(0, 0, cfg.Days)
	var (
		once  sync.Once
		start time.Time
	)
	return func() time.Time {
		// The start is read before any caller's time, so that no event
		// is dated before the log's end.
		once.Do(func() { start = now() })
		return end.Add(now().Sub(start))
	}
}
