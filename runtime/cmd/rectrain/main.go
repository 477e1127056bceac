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

// Command rectrain trains the funnel's models from a dataset directory
// (catalog.jsonl, users.jsonl, follows.jsonl, events.jsonl in the
// runtime/internal/dataset formats) or a bare ratings log, and writes a directory
// that recserve serves: three artifacts, OUT/two-tower (retrieval),
// OUT/first-stage (distilled from the ranker) and OUT/mtml (the ranker),
// and OUT/config.json, a recserve config for them. It prints progress and
// an offline evaluation on the last part of the log.
//
//	rectrain -data DIR|ratings.csv -out DIR [-epochs N -seed S -dim D -hidden 256,128 ...]
//	recserve --config DIR/config.json
//
// A -data that is a file (or -movielens FILE) is a MovieLens ratings file
// (u.data, ratings.csv, ratings.dat; see rectrain.LoadMovieLens for how
// ratings become events and how the missing catalog is built: no item
// features, each item its own author, created at its first rating), and
// the catalog is written to OUT/catalog.jsonl too. Bad rows are skipped,
// counted and the first -max-errors printed with their line numbers;
// -strict makes the first one fatal.
//
// Quality gate: the evaluation sets the models beside recommending the most
// popular items and a random list. When the two-tower model or the whole
// funnel does not beat popularity on the held-out part of the log
// (rectrain.Report.Weak), rectrain says why, writes nothing and exits with
// status 3; -allow-weak writes the artifacts all the same.
//
// When the dataset directory holds synth's truth files (truth.json,
// truth_users.jsonl, truth_items.jsonl), the evaluation adds the planted
// truth's oracle beside the model and the popularity baseline.
//
// -result-file PATH writes, after a successful run, a JSON object of at
// most 4 KiB (the Kubernetes termination message limit) with the
// version, the artifact directories written under -out by the role they
// play in the funnel, and the offline metrics of the evaluation (see
// trainResult): the operator's training job passes /dev/termination-log
// and reads it back from the pod's status.
//
// -checkpoint DIR saves the training state after every epoch; -resume
// continues from it and gives the same artifacts as an uninterrupted run
// with the same flags. -stop-after N stops once N epochs of the schedule
// (two-tower and mtml, -epochs each, then first-stage, -first-stage-epochs)
// are done.
//
// The tune subcommand finds the event weights of the ranking value that
// maximise a declared objective on the held-out part of the log, by Bayesian
// optimisation over bounded weights, and prints them as a ranking.weights
// YAML snippet (see tune.go):
//
//	rectrain tune -data DIR -models DIR [-objective like:1,comment:1,see_less:-8 -iters 40 -seed 1]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/softlimit"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rectrain:", err)
		if errors.Is(err, errWeak) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "tune" {
		return runTune(args[1:], os.Stdout)
	}
	f, err := parseTrainFlags(args)
	if err != nil {
		return err
	}
	if err := setMemoryLimit(f.memoryLimit); err != nil {
		return err
	}
	if f.cpuProfile != "" {
		stop, err := startCPUProfile(f.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if f.memProfile != "" {
		defer writeHeapProfile(f.memProfile)
	}
	began := time.Now()
	d, err := f.load()
	if err != nil {
		return err
	}
	printLoaded(d, f.src(), time.Since(began))
	fmt.Println(rectrain.NewPhase("load", began))
	res, err := rectrain.Train(d, f.o)
	if errors.Is(err, rectrain.ErrStopped) {
		fmt.Printf("stopped after %d epochs; continue with -resume -checkpoint %s\n", f.o.StopAfter, f.o.Checkpoint)
		return nil
	}
	if err != nil {
		return err
	}
	res.Eval.Table(os.Stdout)
	weak := res.Eval.Weak()
	for _, why := range weak {
		fmt.Printf("WEAK MODEL: %s\n", why)
	}
	if len(weak) > 0 && !f.weakOK {
		return errWeak
	}
	if err := f.write(res, began); err != nil {
		return err
	}
	result := newTrainResult(f.version, res.Eval, weak)
	// The training data and models are not used past this point, so the
	// collector may free them for the index build, which opens the catalog
	// and the models as recserve does.
	if f.index {
		if err := writeIndex(f.out); err != nil {
			return err
		}
	}
	if f.resultFile != "" {
		return writeResult(f.resultFile, result)
	}
	return nil
}

// writeIndex builds the HNSW index of the two-tower model's item embeddings
// over the catalog, as recserve would at start, and saves it in the model's
// directory (engine.IndexFile), so that recserve loads the index instead of
// building it: minutes at a million items. It reads the config that write
// put beside the artifacts: the index fits recserve as long as it serves
// that catalog (items published live since are added at start).
func writeIndex(out string) error {
	start := time.Now()
	raw, err := os.ReadFile(filepath.Join(out, rectrain.ConfigFile))
	if err != nil {
		return fmt.Errorf("failed to read the serving config: %w", err)
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		return fmt.Errorf("the serving config is invalid: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelWarn}))
	written, err := engine.WriteIndexes(context.Background(), cfg, engine.Options{Log: log})
	if err != nil {
		return fmt.Errorf("failed to write the ANN index (-index=false skips it; recserve then builds it at start): %w", err)
	}
	for _, w := range written {
		fmt.Printf("ANN index of %s written to %s: %d items, %s\n", w.Model, w.Path, w.Items, rectrain.FormatBytes(w.Bytes))
	}
	fmt.Println(rectrain.NewPhase("index", start))
	return nil
}

// trainFlags are rectrain's flags, parsed.
type trainFlags struct {
	o  rectrain.Options
	lo rectrain.LoadOptions
	// data is the -data directory; ml the ratings file, from -movielens or
	// a -data that is a file.
	data, ml     string
	weakOK       bool
	out, version string
	// resultFile receives the trainResult of a successful run.
	resultFile string
	// cpuProfile and memProfile receive pprof profiles of the run.
	cpuProfile, memProfile string
	// memoryLimit is the -memory-limit flag: the Go runtime's soft limit.
	memoryLimit string
	// index is the -index flag: write the ANN index beside the retrieval
	// model.
	index bool
}

// setMemoryLimit sets the Go runtime's soft memory limit to flag (a
// quantity), or else to 90% of the cgroup's memory limit, and prints it. A
// run holds a catalog's tables for its whole length and makes as much
// garbage again in its evaluation: without a limit the collector lets the
// heap reach twice what is live, and a container's limit kills the run.
func setMemoryLimit(flag string) error {
	limit, err := softlimit.Set(flag)
	if err != nil {
		return fmt.Errorf("-memory-limit: %w", err)
	}
	if limit > 0 && limit < math.MaxInt64 {
		fmt.Printf("memory limit %s\n", rectrain.FormatBytes(limit))
	}
	return nil
}

// startCPUProfile starts a CPU profile into path; stop ends it.
func startCPUProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(out); err != nil {
		_ = out.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := out.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "rectrain: failed to write the CPU profile:", err)
		}
	}, nil
}

// writeHeapProfile writes the heap profile to path; a failure is printed,
// not returned, as the run's result stands.
func writeHeapProfile(path string) {
	out, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(out, 0)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rectrain: failed to write the heap profile:", err)
	}
}

func parseTrainFlags(args []string) (*trainFlags, error) {
	var f trainFlags
	o, lo := &f.o, &f.lo
	fl := flag.NewFlagSet("rectrain", flag.ContinueOnError)
	fl.StringVar(&f.data, "data", "", "dataset directory, or a MovieLens ratings file (this or -movielens is required)")
	fl.StringVar(&f.ml, "movielens", "", "MovieLens ratings file (u.data, ratings.csv, ratings.dat) to train on instead of -data")
	fl.BoolVar(&f.weakOK, "allow-weak", false, "write the artifacts even when the models do not beat the popularity baseline")
	fl.StringVar(&f.out, "out", "", "directory to write the artifacts to (required)")
	fl.StringVar(&f.version, "version", "1", "version recorded in the manifests")
	fl.BoolVar(&f.index, "index", true, "after the artifacts, build the ANN index of the two-tower model over the catalog and write it into the model's directory ("+engine.IndexFile+"), which recserve then loads instead of building it")
	fl.StringVar(&f.resultFile, "result-file", "", "file to write the run's result to as JSON (at most 4 KiB: artifacts and offline metrics) after a successful run, e.g. /dev/termination-log")
	hidden := fl.String("hidden", "256,128", "hidden widths of the MTML bottom, comma-separated")
	weights := fl.String("weights", "click:1,like:2,comment:4,share:4,see_less:-8", "event weights of the teacher's value")
	fl.IntVar(&o.Epochs, "epochs", 3, "passes over the training examples of the two-tower model and the ranker")
	fl.IntVar(&o.FirstStageEpochs, "first-stage-epochs", 0, "passes of the first stage over its distillation pairs, labelled by the ranker once (0: 10, or fewer so that it sees at most 15M pairs)")
	fl.IntVar(&o.IDDim, "id-dim", 16, "width of the two-tower model's item_id embedding (negative: none)")
	fl.Uint64Var(&o.Seed, "seed", 1, "seed of initialisation and shuffling")
	fl.IntVar(&o.Dim, "dim", 32, "retrieval embedding width")
	fl.IntVar(&o.TowerHidden, "tower-hidden", 128, "width of the retrieval towers' two hidden layers")
	fl.IntVar(&o.FirstStageDim, "first-stage-dim", 16, "first-stage embedding width")
	fl.IntVar(&o.FirstStageHidden, "first-stage-hidden", 64, "hidden width of the first-stage towers")
	fl.IntVar(&o.Batch, "batch", 512, "minibatch size")
	fl.Float64Var(&o.LR, "lr", 1e-3, "Adam learning rate (the two-tower models' weights use 3×, their item_id table 1×)")
	fl.Float64Var(&o.IDLR, "id-lr", 0, "Adam learning rate of the item_id tables (0: -lr, or 0.03 when the catalog has no features)")
	fl.IntVar(&o.Negatives, "negatives", 1, "items drawn uniformly per training impression that the ranker learns as not engaged with (negative: none)")
	fl.IntVar(&o.EvalUsers, "eval-users", 500, "users of the first-stage vs teacher evaluation")
	fl.Float64Var(&lo.TestFrac, "test-frac", 0.1, "fraction of the log's time span held out for evaluation")
	fl.BoolVar(&lo.Strict, "strict", false, "fail on the first bad row instead of skipping it")
	fl.IntVar(&lo.MaxErrors, "max-errors", 10, "bad rows printed per file (they are all counted)")
	fl.StringVar(&o.Checkpoint, "checkpoint", "", "directory to save the training state to after every epoch")
	fl.BoolVar(&o.Resume, "resume", false, "continue from the state in -checkpoint")
	fl.IntVar(&o.StopAfter, "stop-after", 0, "stop once this many epochs of the schedule are done (0: run to the end)")
	fl.StringVar(&f.memoryLimit, "memory-limit", "", "soft memory limit of the run, a Kubernetes quantity (4Gi); default 90% of the container's memory limit, none outside a container with one (GOMEMLIMIT, when set, wins)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	fl.StringVar(&f.memProfile, "memprofile", "", "write a heap profile (allocations sampled over the whole run) to this file at its end")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if (f.data == "") == (f.ml == "") || f.out == "" || fl.NArg() > 0 {
		fl.Usage()
		return nil, fmt.Errorf("one of -data and -movielens, and -out, are required; no arguments are accepted")
	}
	if o.Resume && o.Checkpoint == "" {
		return nil, fmt.Errorf("-resume needs -checkpoint")
	}
	var err error
	if o.Hidden, err = parseInts(*hidden); err != nil {
		return nil, fmt.Errorf("failed to parse -hidden: %w", err)
	}
	if o.Weights, err = parseWeights(*weights); err != nil {
		return nil, fmt.Errorf("failed to parse -weights: %w", err)
	}
	o.Progress = os.Stdout
	if f.ml == "" {
		if st, err := os.Stat(f.data); err == nil && !st.IsDir() {
			f.ml = f.data
		}
	}
	return &f, nil
}

// src is the input trained on.
func (f *trainFlags) src() string {
	if f.ml != "" {
		return f.ml
	}
	return f.data
}

// catalogDir is the dataset directory recserve reads the catalog from, or
// "" when the input is a ratings file and rectrain writes the catalog.
func (f *trainFlags) catalogDir() string {
	if f.ml != "" {
		return ""
	}
	return f.data
}

func (f *trainFlags) load() (*rectrain.Data, error) {
	if f.ml != "" {
		return rectrain.LoadMovieLens(f.ml, f.lo)
	}
	return rectrain.LoadDir(f.data, f.lo)
}

// printLoaded prints what was loaded and what was skipped.
func printLoaded(d *rectrain.Data, src string, took time.Duration) {
	fmt.Printf("loaded %s: %d users, %d items, %d impressions (%d train, %d test) in %s\n",
		src, len(d.UserIDs), len(d.ItemIDs), len(d.Imps), d.TrainN, len(d.Imps)-d.TrainN, took.Round(time.Millisecond))
	for _, what := range slices.Sorted(maps.Keys(d.Skipped)) {
		fmt.Printf("  skipped %d: %s\n", d.Skipped[what], what)
	}
	for _, e := range d.Errors {
		fmt.Printf("  bad row %v\n", e)
	}
	if d.Truth != nil {
		fmt.Printf("  planted truth found: the evaluation includes the oracle\n")
	}
}

// write saves the artifacts and the recserve config and says how to serve
// them.
func (f *trainFlags) write(res *rectrain.Result, began time.Time) error {
	if err := res.Save(f.out, f.version); err != nil {
		return err
	}
	if err := res.WriteServing(f.out, f.catalogDir()); err != nil {
		return err
	}
	fmt.Printf("artifacts written to %s/{two-tower,first-stage,mtml}, recserve config to %s; total %s, peak RSS %s\n",
		f.out, filepath.Join(f.out, rectrain.ConfigFile), time.Since(began).Round(time.Millisecond), rectrain.FormatBytes(rectrain.PeakRSS()))
	if f.catalogDir() == "" {
		fmt.Printf("catalog written to %s\n", filepath.Join(f.out, rectrain.CatalogFile))
	}
	fmt.Printf("serve it: recserve --config %s\n", filepath.Join(f.out, rectrain.ConfigFile))
	return nil
}

// Roles of the artifacts in the funnel, the keys of trainResult.Artifacts:
// the retrieval model the ANN sources search, the first-stage ranker and
// the second-stage (MTML) ranker.
const (
	roleRetrieval   = "retrieval"
	roleFirstStage  = "firstStage"
	roleSecondStage = "secondStage"
)

// artifactDirs are the directories rectrain.Result.Save writes under -out,
// by role.
var artifactDirs = map[string]string{
	roleRetrieval:   "two-tower",
	roleFirstStage:  "first-stage",
	roleSecondStage: "mtml",
}

// maxResultBytes bounds the -result-file document: the kubelet keeps at
// most 4096 bytes of a container's termination message.
const maxResultBytes = 4096

// trainResult is the -result-file document.
type trainResult struct {
	// Version is -version, recorded in the artifacts' manifests.
	Version string `json:"version"`
	// Artifacts are the directories written under -out, by role.
	Artifacts map[string]string `json:"artifacts"`
	// Metrics are the offline evaluation's figures on the held-out part
	// of the log, by name (see newTrainResult), rounded to 4 decimals.
	Metrics map[string]json.Number `json:"metrics"`
	// Weak says why the models did not beat the popularity baseline, when
	// -allow-weak wrote them all the same.
	Weak []string `json:"weak,omitempty"`
}

// newTrainResult names the figures of the evaluation e: test.* count what
// was evaluated; two-tower.* and popular.* are the two-tower model's and
// the popularity baseline's retrieval of the whole catalog for every test
// user; funnel.* the whole funnel's final list for funnel.users of them
// (funnel.popular.* the baseline's on the same users); first-stage.* its
// rank agreement with the ranker; mtml.auc.<head> the ranker's ROC AUC per
// head.
func newTrainResult(version string, e rectrain.Report, weak []string) trainResult {
	num := func(v float64) json.Number { return json.Number(strconv.FormatFloat(v, 'f', 4, 64)) }
	count := func(n int) json.Number { return json.Number(strconv.Itoa(n)) }
	k, k10 := strconv.Itoa(rectrain.RecallK), strconv.Itoa(rectrain.NDCGK)
	m := map[string]json.Number{
		"test.impressions": count(e.TestImpressions),
		"test.users":       count(e.TestUsers),
		"funnel.users":     count(e.FunnelUsers),
	}
	ranked := func(prefix string, r rectrain.Ranked) {
		m[prefix+".recall@"+k] = num(r.Recall100)
		m[prefix+".recall@"+k10] = num(r.Recall10)
		m[prefix+".ndcg@"+k] = num(r.NDCG100)
		m[prefix+".ndcg@"+k10] = num(r.NDCG10)
	}
	ranked("two-tower", e.Retrieval)
	ranked("popular", e.RetrievalPopular)
	ranked("funnel", e.Funnel)
	ranked("funnel.popular", e.FunnelPopular)
	top := strconv.Itoa(rectrain.TeacherTop)
	m["first-stage.spearman@"+top] = num(e.Spearman)
	m["first-stage.kendall@"+top] = num(e.Kendall)
	for h, name := range rectrain.Heads {
		if h < len(e.AUC) {
			m["mtml.auc."+name] = num(e.AUC[h])
		}
	}
	return trainResult{Version: version, Artifacts: maps.Clone(artifactDirs), Metrics: m, Weak: weak}
}

// writeResult writes r to path as one line of JSON.
func writeResult(path string, r trainResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("failed to encode the result: %w", err)
	}
	for len(b) > maxResultBytes && len(r.Weak) > 0 {
		r.Weak = r.Weak[:len(r.Weak)-1]
		if b, err = json.Marshal(r); err != nil {
			return fmt.Errorf("failed to encode the result: %w", err)
		}
	}
	if len(b) > maxResultBytes {
		return fmt.Errorf("failed to write the result: %d bytes, more than the %d a termination message holds", len(b), maxResultBytes)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write the result: %w", err)
	}
	return nil
}

// errWeak ends a run whose models fail the quality gate.
var errWeak = errors.New("the models do not beat the popularity baseline on the held-out part of the log (WEAK MODEL above); nothing was written; -allow-weak writes them all the same")

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func parseWeights(s string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, f := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not event:weight", f)
		}
		w, err := strconv.ParseFloat(val, 64)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out[name] = w
	}
	return out, nil
}
