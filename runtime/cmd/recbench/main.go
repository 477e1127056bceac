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

// Command recbench drives a running recserve: replay posts a world written
// by recgen, or a MovieLens ratings log, to POST /v1/events, load measures
// GET /v1/recommendations under a closed loop of concurrent clients,
// optionally with events arriving in the background, eval judges the
// quality of what recserve serves, and simulate has a synthetic world's
// users engage with what recserve serves as the world's planted model says
// they would.
//
// replay posts a world's follow graph, dated by the log's first event, then
// its events.jsonl in file order; or, with -movielens, the events of the
// ratings in time order, as eval and rectrain read them: an impression and
// a click for every rating, and a like at 4 stars and up, at the rating's
// time. Each user's events reach the server in order whatever the
// -concurrency.
//
// eval splits a log in time as rectrain does (the last -test-frac of its
// time span is the test window), replays the follows and the train part
// to POST /v1/events at their log times, asks GET /v1/recommendations for
// every test user's list and scores it against the items the user engaged
// with in the test window: NDCG@10, recall@10 and @100, precision@10 and
// coverage of the catalog, beside a popularity and a random baseline scored
// the same way. -min-ndcg-ratio makes it fail when recserve's NDCG@10 is
// below that multiple of popularity's.
//
// simulate reads the planted truth of a world written by recgen and, at
// -rate requests per second, draws one of its first -users users, asks
// GET /v1/recommendations for the user's list and posts to POST
// /v1/events, in one request, an impression of each of the top -viewed
// items with the engagements the world's true probabilities draw for the
// user and item: a click, and after it a like, comment or share, or
// without it a see less, each with its true unconditional probability.
// Items the world does not have are counted and skipped. It reports per
// experiment arm, by the arm each answer names, the requests,
// impressions, events and their rate per impression by type, and the
// objective Σ w·rate, beside its expectation; failed requests are counted
// and more than -max-failed of them make it fail. Events are dated by the
// wall clock, or with -time log from the end of the world's log on, which
// keeps an event clock in the replayed log's time.
//
//	recbench replay -url http://127.0.0.1:8080 (-data DIR | -movielens FILE) [-batch 1000] [-concurrency 2] [-max-events N] [-token T]
//	recbench load -url http://127.0.0.1:8080 (-users u1,u2 | -user-prefix u -user-count N | -data DIR)
//	    [-concurrency 8] [-duration 30s | -requests N] [-n 25] [-events-rate R] [-warmup 2s] [-json]
//	recbench eval -url http://127.0.0.1:8080 (-data DIR | -movielens FILE) [-test-frac 0.1] [-k 100]
//	    [-users N] [-concurrency 4] [-seed 1] [-skip-replay] [-json FILE] [-min-ndcg-ratio X]
//	recbench simulate -url http://127.0.0.1:8080 -world DIR [-users 2000] [-rate 50] [-duration 1m | -requests K]
//	    [-n 25] [-viewed N] [-concurrency 4] [-seed 1] [-weights click=1,...] [-token T] [-time wall|log]
//	    [-max-failed 0] [-report 10s] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "recbench:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  recbench replay -url URL -data DIR [flags]        post a world's follows and events to /v1/events
  recbench replay -url URL -movielens FILE [flags]   post a MovieLens ratings log's events to /v1/events
  recbench load -url URL USERS [flags]               closed-loop load on /v1/recommendations
  recbench eval -url URL -data DIR [flags]           quality of recserve's lists on a log's test window,
  recbench eval -url URL -movielens FILE [flags]     against popularity and random baselines
  recbench simulate -url URL -world DIR [flags]      a world's users engage with recserve's lists as its
                                                     planted model says; events and objective per arm

Run "recbench replay -h", "recbench load -h", "recbench eval -h" or "recbench simulate -h" for the flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a subcommand is required: replay, load, eval or simulate")
	}
	switch args[0] {
	case "replay":
		return runReplay(ctx, args[1:], stdout, stderr)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr)
	case "eval":
		return runEval(ctx, args[1:], stdout, stderr)
	case "simulate":
		return runSimulate(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q: replay, load, eval or simulate", args[0])
	}
}

// parseFlags parses args, treating -h as success with nothing to do.
func parseFlags(fl *flag.FlagSet, args []string) (help bool, err error) {
	err = fl.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if fl.NArg() > 0 {
		return false, fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	return false, nil
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recbench replay", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o replayOptions
	fl.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "recserve base URL")
	fl.StringVar(&o.Data, "data", "", "world directory written by recgen: events.jsonl, follows.jsonl if any")
	fl.StringVar(&o.MovieLens, "movielens", "", "MovieLens ratings file instead of -data: u.data, ratings.csv or ratings.dat, optionally .gz; "+
		"each rating is posted as an impression and a click, and a like at 4 stars and up, in time order")
	fl.IntVar(&o.Batch, "batch", 1000, "events per POST, at most 10000")
	fl.IntVar(&o.MaxBody, "max-body", recclient.MaxBodyBytes, "bytes per POST at most")
	fl.IntVar(&o.Concurrency, "concurrency", 2, "concurrent senders; each user's events stay in order")
	fl.IntVar(&o.MaxEvents, "max-events", 0, "events to send (0: all): the first rows of events.jsonl, or the first events of the ratings in time order; follows are always sent")
	fl.BoolVar(&o.Lenient, "lenient", false, "skip bad rows instead of failing on the first")
	timeout := fl.Duration("timeout", time.Minute, "timeout of one POST")
	token := fl.String("token", "", "bearer token of POST /v1/events (default: $"+config.EventsTokenEnv+")")
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if err := o.defaults(); err != nil {
		return err
	}
	if *token == "" {
		*token = os.Getenv(config.EventsTokenEnv)
	}
	res, err := replay(ctx, recclient.WithBearer(newClient(o.Concurrency, *timeout), *token), o)
	total := res.Follows + res.Events
	rate := float64(total) / max(res.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(stdout, "replay: follows %d, events %d, total %d in %d batches, %.2fs, %s events/s\n",
		res.Follows, res.Events, total, res.Batches, res.Elapsed.Seconds(), formatRate(rate))
	if res.Skipped > 0 {
		fmt.Fprintf(stdout, "replay: skipped %d bad rows\n", res.Skipped)
	}
	if err != nil {
		return fmt.Errorf("replay failed: %w", err)
	}
	return nil
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recbench load", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o loadOptions
	var (
		users       = fl.String("users", "", "comma-separated user IDs")
		prefix      = fl.String("user-prefix", "", "user IDs are PREFIX0 .. PREFIX(N-1), with -user-count")
		count       = fl.Int("user-count", 0, "number of users with -user-prefix")
		data        = fl.String("data", "", "world directory: users.jsonl for the users when no other flag names them, catalog.jsonl for the items of events")
		timeout     = fl.Duration("timeout", 5*time.Second, "timeout of one request")
		asJSON      = fl.Bool("json", false, "print the report as one JSON line on stdout (the text report goes to stderr)")
		failOnError = fl.Bool("fail-on-error", true, "exit non-zero when any request or event post failed")
	)
	fl.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "recserve base URL")
	fl.IntVar(&o.Concurrency, "concurrency", 8, "closed-loop workers")
	fl.Float64Var(&o.Rate, "rate", 0, "requests per second in all, paced over the workers, latency counted from when each was due (0: back to back)")
	fl.DurationVar(&o.Duration, "duration", 30*time.Second, "length of the measured phase (ignored unless set when -requests is given)")
	fl.IntVar(&o.Requests, "requests", 0, "measured requests (0: bounded by -duration)")
	fl.IntVar(&o.N, "n", 25, "items asked for per request")
	fl.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured load before the measured phase")
	fl.Float64Var(&o.EventsRate, "events-rate", 0, "background events per second during the measured phase (0: none)")
	fl.IntVar(&o.EventsBatch, "events-batch", 500, "events per POST of the background ingestion")
	fl.IntVar(&o.EventsSenders, "events-senders", 4, "parallel senders of the background ingestion, each at its share of -events-rate")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of the choice of users, items and event types")
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["requests"] && !set["duration"] {
		o.Duration = 0
	}
	var err error
	if o.Users, err = loadUsers(*users, *prefix, *count, *data); err != nil {
		return err
	}
	if o.EventsRate > 0 && *data != "" {
		if o.Items, err = loadCatalog(*data); err != nil {
			return err
		}
	}
	if err := o.defaults(); err != nil {
		return err
	}
	res, err := load(ctx, newClient(o.Concurrency+1, *timeout), o)
	if err != nil {
		return err
	}
	rep := newLoadReport(o, res)
	text := stdout
	if *asJSON {
		text = stderr
	}
	rep.writeText(text, res)
	if *asJSON {
		line, err := json.Marshal(rep)
		if err != nil {
			return fmt.Errorf("failed to encode the report: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", line)
	}
	switch {
	case res.Interrupted:
		return errors.New("load interrupted")
	case *failOnError && (rep.Failed > 0 || res.Events.Failed > 0):
		return fmt.Errorf("%d requests and %d events failed", rep.Failed, res.Events.Failed)
	}
	return nil
}

func runEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recbench eval", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o quality.Options
	fl.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "recserve base URL")
	fl.StringVar(&o.Data, "data", "", "world directory: catalog.jsonl, events.jsonl, follows.jsonl if any")
	fl.StringVar(&o.MovieLens, "movielens", "", "MovieLens ratings file instead of -data: u.data, ratings.csv or ratings.dat, optionally .gz")
	fl.Float64Var(&o.TestFrac, "test-frac", 0.1, "fraction of the log's time span, at its end, that is the test window (rectrain's -test-frac)")
	fl.IntVar(&o.K, "k", 100, "items asked of recserve per test user, and the length of the baselines' lists")
	fl.IntVar(&o.Users, "users", 0, "evaluate a sample of this many test users, drawn with -seed (0: all)")
	fl.IntVar(&o.Concurrency, "concurrency", 4, "requests in flight, and senders of the replay")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of the random baseline and of the -users sample")
	fl.BoolVar(&o.SkipReplay, "skip-replay", false, "do not post the follows and the train part of the log: recserve has them already")
	fl.IntVar(&o.Batch, "batch", 1000, "events per POST of the replay, at most 10000")
	fl.BoolVar(&o.Lenient, "lenient", false, "skip bad rows instead of failing on the first")
	var (
		timeout  = fl.Duration("timeout", time.Minute, "timeout of one request")
		jsonFile = fl.String("json", "", "also write the figures to this file as JSON")
		minRatio = fl.Float64("min-ndcg-ratio", 0, "fail when recserve's NDCG@10 is below this multiple of popularity's (0: off)")
	)
	if help, err := parseFlags(fl, args); help || err != nil {
		return err
	}
	if *minRatio < 0 {
		return fmt.Errorf("-min-ndcg-ratio %g must not be negative", *minRatio)
	}
	if err := o.Default(evalFlags); err != nil {
		return err
	}
	rep, err := quality.Evaluate(ctx, newClient(o.Concurrency, *timeout), o, stderr)
	if err != nil {
		return err
	}
	rep.WriteText(stdout)
	if *jsonFile != "" {
		doc, err := json.MarshalIndent(&rep, "", "  ")
		if err != nil {
			return fmt.Errorf("failed to encode the report: %w", err)
		}
		if err := os.WriteFile(*jsonFile, append(doc, '\n'), 0o644); err != nil {
			return fmt.Errorf("failed to write the report: %w", err)
		}
	}
	if *minRatio > 0 && rep.Recserve.NDCG10 < *minRatio*rep.Popularity.NDCG10 {
		return fmt.Errorf("recserve's NDCG@10 %.4f is below -min-ndcg-ratio %g × popularity's %.4f",
			rep.Recserve.NDCG10, *minRatio, rep.Popularity.NDCG10)
	}
	return nil
}

// loadUsers resolves the users from exactly one of the user flags, or from
// the world's users.jsonl.
func loadUsers(list, prefix string, count int, data string) ([]string, error) {
	switch {
	case list != "" && prefix != "":
		return nil, errors.New("give -users or -user-prefix, not both")
	case list != "":
		var users []string
		for u := range strings.SplitSeq(list, ",") {
			if u = strings.TrimSpace(u); u != "" {
				users = append(users, u)
			}
		}
		return users, nil
	case prefix != "":
		if count < 1 {
			return nil, errors.New("-user-prefix needs a positive -user-count")
		}
		users := make([]string, count)
		for i := range users {
			users[i] = prefix + strconv.Itoa(i)
		}
		return users, nil
	case data != "":
		p, err := recclient.WorldFile(data, "users.jsonl")
		if err != nil {
			return nil, err
		}
		r, err := dataset.OpenUsers(p, dataset.ReadOptions{})
		if err != nil {
			return nil, fmt.Errorf("failed to open the users: %w", err)
		}
		defer r.Close()
		var users []string
		for u, err := range r.All() {
			if err != nil {
				return nil, fmt.Errorf("failed to read the users: %w", err)
			}
			users = append(users, u.ID)
		}
		return users, nil
	}
	return nil, errors.New("no users: give -users, -user-prefix with -user-count, or -data")
}

// loadCatalog reads the IDs and authors of the world's items.
func loadCatalog(data string) ([]catalogItem, error) {
	p, err := recclient.WorldFile(data, "catalog.jsonl")
	if err != nil {
		return nil, err
	}
	r, err := dataset.OpenCatalog(p, dataset.ReadOptions{})
	if err != nil {
		return nil, fmt.Errorf("failed to open the catalog: %w", err)
	}
	defer r.Close()
	var items []catalogItem
	for it, err := range r.All() {
		if err != nil {
			return nil, fmt.Errorf("failed to read the catalog: %w", err)
		}
		items = append(items, catalogItem{ID: it.ID, Author: it.Author})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%s has no items", p)
	}
	return items, nil
}

// loadReport is the machine-readable report of a load run (-json).
type loadReport struct {
	Concurrency    int            `json:"concurrency"`
	Rate           float64        `json:"rate,omitempty"`
	N              int            `json:"n"`
	Users          int            `json:"users"`
	Requests       int            `json:"requests"`
	OK             int            `json:"ok"`
	Failed         int            `json:"failed"`
	Failures       map[string]int `json:"failures"`
	ElapsedS       float64        `json:"elapsedS"`
	ThroughputRPS  float64        `json:"throughputRps"`
	LatencyMs      latencySummary `json:"latencyMs"`
	ItemsPerAnswer float64        `json:"itemsPerAnswer"`
	// ShortAnswers counts the OK answers with fewer items than n.
	ShortAnswers int           `json:"shortAnswers"`
	Events       *eventsReport `json:"events,omitempty"`
	Interrupted  bool          `json:"interrupted,omitempty"`
}

type eventsReport struct {
	Sent      int     `json:"sent"`
	Failed    int     `json:"failed"`
	PerSecond float64 `json:"perSecond"`
	Target    float64 `json:"target"`
}

func newLoadReport(o loadOptions, res loadResult) loadReport {
	secs := max(res.Elapsed.Seconds(), 1e-9)
	rep := loadReport{
		Concurrency:   o.Concurrency,
		Rate:          o.Rate,
		N:             o.N,
		Users:         len(o.Users),
		Requests:      res.Requests,
		OK:            res.OK,
		Failed:        res.Requests - res.OK,
		Failures:      res.Failures,
		ElapsedS:      round3(res.Elapsed.Seconds()),
		ThroughputRPS: round3(float64(res.Requests) / secs),
		LatencyMs:     res.Latency,
		Interrupted:   res.Interrupted,
	}
	if res.OK > 0 {
		rep.ItemsPerAnswer = round3(float64(res.Items) / float64(res.OK))
	}
	rep.ShortAnswers = res.Short
	if o.EventsRate > 0 {
		rep.Events = &eventsReport{
			Sent:      res.Events.Sent,
			Failed:    res.Events.Failed,
			PerSecond: round3(float64(res.Events.Sent) / max(res.Events.Elapsed.Seconds(), 1e-9)),
			Target:    o.EventsRate,
		}
	}
	return rep
}

func (r loadReport) writeText(w io.Writer, res loadResult) {
	fmt.Fprintf(w, "load: %d workers, n=%d, %d users", r.Concurrency, r.N, r.Users)
	if r.Rate > 0 {
		fmt.Fprintf(w, ", paced at %s req/s", formatRate(r.Rate))
	}
	fmt.Fprintln(w)
	labels := slices.Sorted(maps.Keys(r.Failures))
	fmt.Fprintf(w, "requests   %d in %.2fs: %d ok, %d failed", r.Requests, r.ElapsedS, r.OK, r.Failed)
	if r.Failed > 0 {
		parts := make([]string, len(labels))
		for i, k := range labels {
			parts[i] = fmt.Sprintf("%s: %d", k, r.Failures[k])
		}
		fmt.Fprintf(w, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "throughput %s req/s\n", formatRate(r.ThroughputRPS))
	fmt.Fprintf(w, "latency    p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms\n",
		r.LatencyMs.P50, r.LatencyMs.P90, r.LatencyMs.P99, r.LatencyMs.Max)
	fmt.Fprintf(w, "items      %.1f per answer; %d answers shorter than n=%d\n", r.ItemsPerAnswer, r.ShortAnswers, r.N)
	if e := r.Events; e != nil {
		fmt.Fprintf(w, "events     %d ingested, %d failed: %s events/s (target %s)\n",
			e.Sent, e.Failed, formatRate(e.PerSecond), formatRate(e.Target))
		if res.Events.Example != "" {
			fmt.Fprintf(w, "  first events failure: %s\n", res.Events.Example)
		}
	}
	for _, k := range labels {
		fmt.Fprintf(w, "  first %s: %s\n", k, res.Examples[k])
	}
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: the figures cover the part that ran")
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
