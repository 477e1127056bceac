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
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/datalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

var exportT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(s int) time.Time { return exportT0.Add(time.Duration(s) * time.Second) }

// exportFixture is a catalog directory (items i1..i4 of 2 features, a user
// table of u1 with 3) and a log directory written by a real Logger, plus
// a gzipped rotated events file of a second host.
func exportFixture(t *testing.T) (catDir, logDir string) {
	t.Helper()
	dir := t.TempDir()
	catDir, logDir = filepath.Join(dir, "world"), filepath.Join(dir, "logs")
	if err := os.MkdirAll(catDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cw, err := dataset.CreateCatalog(filepath.Join(catDir, "catalog.jsonl"), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"i1", "i2", "i3", "i4"} {
		must(t, cw.Write(dataset.Item{ID: id, Author: "a" + id[1:], Created: exportT0.Add(-time.Hour), Features: []float32{float32(i), 1}, IntegrityRisk: 0.5}))
	}
	must(t, cw.Close())
	uw, err := dataset.CreateUsers(filepath.Join(catDir, "users.jsonl"), 3)
	if err != nil {
		t.Fatal(err)
	}
	must(t, uw.Write(dataset.User{ID: "u1", Features: []float32{1, 2, 3}}))
	must(t, uw.Close())

	l, err := datalog.Open(config.Logging{Dir: "file://" + logDir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Events([]store.Event{
		{User: "u2", Item: "i2", Type: store.Impression, Time: at(20)},
		{User: "u2", Item: "i2", Type: store.Click, Time: at(21)},
		{Item: "n1", Author: "a9", Type: store.NewItem, Risk: 0.25, Time: at(5)},
		{Item: "i3", Type: store.Integrity, Risk: 0.75, Time: at(6)},
		{Item: "i1", Author: "a1", Type: store.NewItem, Risk: 0.125, Time: at(7)}, // published again: the catalog's row stands
	})
	l.Events([]store.Event{ // a client's batch that arrived late
		{User: "u1", Item: "i1", Type: store.Impression, Time: at(10)},
		{User: "u1", Item: "n1", Type: store.Impression, Time: at(10)},
		{User: "u1", Item: "n1", Type: store.Like, Time: at(11)},
		{User: "u1", Item: "ghost", Type: store.Impression, Time: at(12)},
		{User: "u1", Item: "ghost", Author: "a1", Type: store.Follow, Time: at(13)},
	})
	must(t, l.Close())

	// Another replica's rotated file, gzipped.
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write([]byte(`{"format":"recpipeline.events","version":1}` + "\n" +
		`{"user":"u3","item":"i4","type":"impression","time":"2025-03-01T12:00:09Z"}` + "\n" +
		`{"user":"u3","item":"i4","type":"bogus","time":"2025-03-01T12:00:11Z"}` + "\n" +
		`{"user":"u3","item":"i4","type":"share","time":"2025-03-01T12:00:30Z"}` + "\n"))
	must(t, zw.Close())
	if err := os.WriteFile(filepath.Join(logDir, "events.fe-other.20250301T130000.000000000Z.jsonl.gz"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return catDir, logDir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readDataset(t *testing.T, dir string) ([]dataset.Item, int, []dataset.User, int, []dataset.Event) {
	t.Helper()
	opts := dataset.ReadOptions{Strict: true}
	cr, err := dataset.OpenCatalog(filepath.Join(dir, "catalog.jsonl"), opts)
	must(t, err)
	defer cr.Close()
	items, err := cr.ReadAll()
	must(t, err)
	ur, err := dataset.OpenUsers(filepath.Join(dir, "users.jsonl"), opts)
	must(t, err)
	defer ur.Close()
	users, err := ur.ReadAll()
	must(t, err)
	fr, err := dataset.OpenFollows(filepath.Join(dir, "follows.jsonl"), opts)
	must(t, err)
	defer fr.Close()
	if f, err := fr.ReadAll(); err != nil || len(f) != 0 {
		t.Errorf("follows.jsonl: %v, %v; want the header alone", f, err)
	}
	er, err := dataset.OpenEvents(filepath.Join(dir, "events.jsonl"), opts)
	must(t, err)
	defer er.Close()
	events, err := er.ReadAll()
	must(t, err)
	return items, cr.Header().FeatureDim, users, ur.Header().FeatureDim, events
}

func TestExportWritesADatasetRectrainReads(t *testing.T) {
	catDir, logDir := exportFixture(t)
	out := filepath.Join(t.TempDir(), "data", "export")
	var stdout bytes.Buffer
	if err := runExport([]string{"--logs", "file://" + logDir, "--catalog", "file://" + catDir, "--out", out}, &stdout); err != nil {
		t.Fatal(err)
	}
	want := "exported 8 events, 3 users, 5 items (1 published in the logs) from 3 log files to " + out + "; dropped 1 events of unknown items and 1 bad rows\n"
	if stdout.String() != want {
		t.Errorf("summary:\n got %q\nwant %q", stdout.String(), want)
	}
	items, itemDim, users, userDim, events := readDataset(t, out)

	risks := map[string]float64{}
	for _, it := range items {
		risks[it.ID] = it.IntegrityRisk
	}
	if itemDim != 2 || len(items) != 5 || items[4].ID != "n1" || items[4].Author != "a9" || !items[4].Created.Equal(at(5)) ||
		!reflect.DeepEqual(items[4].Features, []float32{0, 0}) {
		t.Errorf("catalog (dim %d): %+v; want i1..i4 then n1 by a9, created at its publication, zero features", itemDim, items)
	}
	if want := map[string]float64{"i1": 0.5, "i2": 0.5, "i3": 0.75, "i4": 0.5, "n1": 0.25}; !reflect.DeepEqual(risks, want) {
		t.Errorf("risks %v, want %v (integrity sets i3's, a repeated publication leaves i1's)", risks, want)
	}

	wantUsers := []dataset.User{{ID: "u3", Features: []float32{0, 0, 0}}, {ID: "u1", Features: []float32{1, 2, 3}}, {ID: "u2", Features: []float32{0, 0, 0}}}
	if userDim != 3 || !reflect.DeepEqual(users, wantUsers) {
		t.Errorf("users (dim %d): %+v\nwant %+v", userDim, users, wantUsers)
	}
	wantEvents := []dataset.Event{
		{User: "u3", Item: "i4", Type: dataset.Impression, Time: at(9)},
		{User: "u1", Item: "i1", Type: dataset.Impression, Time: at(10)},
		{User: "u1", Item: "n1", Type: dataset.Impression, Time: at(10)},
		{User: "u1", Item: "n1", Type: dataset.Like, Time: at(11)},
		{User: "u1", Author: "a1", Type: dataset.Follow, Time: at(13)},
		{User: "u2", Item: "i2", Type: dataset.Impression, Time: at(20)},
		{User: "u2", Item: "i2", Type: dataset.Click, Time: at(21)},
		{User: "u3", Item: "i4", Type: dataset.Share, Time: at(30)},
	}
	if !reflect.DeepEqual(events, wantEvents) {
		t.Errorf("events:\n got %+v\nwant %+v", events, wantEvents)
	}

	d, err := rectrain.LoadDir(out, rectrain.LoadOptions{Strict: true})
	if err != nil {
		t.Fatalf("rectrain cannot load the export: %v", err)
	}
	if len(d.ItemIDs) != 5 || len(d.Imps) != 4 {
		t.Errorf("rectrain loaded %d items and %d impressions, want 5 and 4", len(d.ItemIDs), len(d.Imps))
	}

	// A window, into the same --out: the previous export is replaced.
	stdout.Reset()
	if err := runExport([]string{"--logs", logDir, "--catalog", catDir, "--out", out,
		"--since", at(11).Format(time.RFC3339), "--until", at(21).Format(time.RFC3339)}, &stdout); err != nil {
		t.Fatal(err)
	}
	_, _, users, _, events = readDataset(t, out)
	if len(events) != 3 || events[0].Type != dataset.Like || events[2].Type != dataset.Impression || len(users) != 2 {
		t.Errorf("--since 11s --until 21s exported %+v of users %+v; want the like, the follow and u2's impression", events, users)
	}
	left, err := os.ReadDir(filepath.Dir(out))
	must(t, err)
	if len(left) != 1 {
		t.Errorf("the export left %d entries beside --out, want none: %v", len(left)-1, left)
	}
}

func TestExportRefuses(t *testing.T) {
	catDir, logDir := exportFixture(t)
	dir := t.TempDir()
	emptyLogs := filepath.Join(dir, "empty")
	must(t, os.MkdirAll(emptyLogs, 0o755))
	notDataset := filepath.Join(dir, "home")
	must(t, os.MkdirAll(notDataset, 0o755))
	must(t, os.WriteFile(filepath.Join(notDataset, "notes.txt"), nil, 0o644))
	out := filepath.Join(dir, "out")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"a missing log directory":    {[]string{"--logs", filepath.Join(dir, "missing"), "--catalog", catDir, "--out", out}, "--logs: stat "},
		"a log file for a directory": {[]string{"--logs", filepath.Join(catDir, "catalog.jsonl"), "--catalog", catDir, "--out", out}, "is not a directory"},
		"no logs":                    {[]string{"--logs", emptyLogs, "--catalog", catDir, "--out", out}, "no events to export: 0 log files"},
		"a window without events":    {[]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--since", "2030-01-01T00:00:00Z"}, "no events to export"},
		"a bad window":               {[]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--since", at(5).Format(time.RFC3339), "--until", at(5).Format(time.RFC3339)}, "is not before --until"},
		"a bad time":                 {[]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--until", "yesterday"}, `--until "yesterday" is not an RFC 3339 time`},
		"a missing catalog":          {[]string{"--logs", logDir, "--catalog", filepath.Join(dir, "nowhere"), "--out", out}, "--catalog: failed to load catalog"},
		"an --out of other files":    {[]string{"--logs", logDir, "--catalog", catDir, "--out", notDataset}, "holds notes.txt, which is not a dataset file"},
		"no --out":                   {[]string{"--logs", logDir, "--catalog", catDir}, "usage: recserve export"},
		"a negative window":          {[]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--window", "-1h"}, "--window -1h0m0s is negative"},
		"no events allowed":          {[]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--max-events", "0"}, "--max-events 0 must be at least 1"},
		"a window without events before --until": {[]string{"--logs", logDir, "--catalog", catDir, "--out", out,
			"--until", at(9).Format(time.RFC3339), "--window", "1h"}, "no events to export"},
	} {
		err := runExport(tc.args, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed export wrote --out")
	}
	if _, err := os.Stat(filepath.Join(notDataset, "notes.txt")); err != nil {
		t.Errorf("a refused export touched --out: %v", err)
	}
}

func TestExportWindowAndMaxEvents(t *testing.T) {
	catDir, logDir := exportFixture(t)
	out := filepath.Join(t.TempDir(), "export")
	// The fixture's events, sorted: u3 at 9s, u1 at 10s (i1, then n1), 11s
	// and 13s, u2 at 20s and 21s, u3 at 30s.
	for name, tc := range map[string]struct {
		args     []string
		want     []string // user@second of the events exported
		ofWindow string   // the summary's words of --window, "" for none
		capped   string   // the summary's words of --max-events, "" for none
	}{
		"the newest 10s": {
			args:     []string{"--window", "10s"},
			want:     []string{"u2@20", "u2@21", "u3@30"},
			ofWindow: "; the window (--window 10s) starts at 2025-03-01T12:00:20Z",
		},
		"a window ending at --until": {
			args:     []string{"--until", at(21).Format(time.RFC3339), "--window", "10s"},
			want:     []string{"u1@10", "u1@10", "u1@11", "u1@13", "u2@20"},
			ofWindow: "; the window (--window 10s) starts at 2025-03-01T12:00:10Z",
		},
		"a window starting before --since": {
			args:     []string{"--since", at(13).Format(time.RFC3339), "--window", "1h"},
			want:     []string{"u1@13", "u2@20", "u2@21", "u3@30"},
			ofWindow: "; the window (--window 1h0m0s) starts at 2025-03-01T12:00:13Z",
		},
		"the newest 3": {
			args:   []string{"--max-events", "3"},
			want:   []string{"u2@20", "u2@21", "u3@30"},
			capped: "; kept only the newest 3 events (--max-events), from 2025-03-01T12:00:20Z",
		},
		"the newest 6, of a tie the one read last": {
			args:   []string{"--max-events", "6"},
			want:   []string{"u1@10", "u1@11", "u1@13", "u2@20", "u2@21", "u3@30"},
			capped: "; kept only the newest 6 events (--max-events), from 2025-03-01T12:00:10Z",
		},
		"as many as there are": {
			args: []string{"--max-events", "8"},
			want: []string{"u3@9", "u1@10", "u1@10", "u1@11", "u1@13", "u2@20", "u2@21", "u3@30"},
		},
		"a window that holds --max-events": {
			args:     []string{"--window", "15s", "--max-events", "3"},
			want:     []string{"u2@20", "u2@21", "u3@30"},
			ofWindow: "; the window (--window 15s) starts at 2025-03-01T12:00:15Z",
		},
	} {
		var stdout bytes.Buffer
		if err := runExport(append([]string{"--logs", logDir, "--catalog", catDir, "--out", out}, tc.args...), &stdout); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		_, _, _, _, events := readDataset(t, out)
		var got []string
		for _, ev := range events {
			got = append(got, ev.User+"@"+strconv.Itoa(int(ev.Time.Sub(exportT0)/time.Second)))
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: exported %v, want %v", name, got, tc.want)
		}
		if name == "the newest 6, of a tie the one read last" && events[0].Item != "n1" {
			t.Errorf("%s: kept %+v of the two events at 10s, want the one read last (n1)", name, events[0])
		}
		wantSum := fmt.Sprintf("exported %d events, ", len(tc.want))
		if !strings.HasPrefix(stdout.String(), wantSum) || !strings.HasSuffix(stdout.String(), " bad rows"+tc.ofWindow+tc.capped+"\n") {
			t.Errorf("%s: summary %q, want it to start with %q and end with %q", name, stdout.String(), wantSum, " bad rows"+tc.ofWindow+tc.capped)
		}
	}
}

// The events exported under --window and --max-events are those that
// sorting every event, applying the window and keeping the last N gives,
// over logs of many files in and out of time order.
func TestExportBoundsMatchSortingEverything(t *testing.T) {
	catDir, _ := exportFixture(t)
	logDir := filepath.Join(t.TempDir(), "logs")
	must(t, os.MkdirAll(logDir, 0o755))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range []string{
		"events.fe-a.20250301T120000.000000000Z.jsonl",
		"events.fe-a.20250301T130000.000000000Z.jsonl",
		"events.fe-a.jsonl",
		"events.fe-b.20250301T123000.000000000Z.jsonl",
		"events.fe-b.jsonl",
		"events.fe-c.jsonl",
	} {
		b := []byte(`{"format":"recpipeline.events","version":1}` + "\n")
		base := rng.IntN(600)
		for range 100 + rng.IntN(100) {
			ev := dataset.Event{User: fmt.Sprintf("u%d", rng.IntN(20)), Item: fmt.Sprintf("i%d", 1+rng.IntN(4)), Type: dataset.Impression,
				Time: at(base + rng.IntN(400))} // seconds: many ties
			b = dataset.AppendEvent(b, &ev)
		}
		must(t, os.WriteFile(filepath.Join(logDir, name), b, 0o644))
	}
	// Every event in the order export reads them: the files in List's
	// order, the rows in file order.
	files, err := datalog.List(logDir)
	must(t, err)
	var all []dataset.Event
	for _, f := range files {
		_, err := datalog.ReadEvents(f.Path, func(ev dataset.Event) error { all = append(all, ev); return nil })
		must(t, err)
	}
	dataset.SortEvents(all)
	newest := all[len(all)-1].Time
	out := filepath.Join(t.TempDir(), "export")
	for _, tc := range []struct {
		window time.Duration
		max    int
		// ofWindow adds the number of events in the window to max: the
		// events --max-events drops before the window's start is known
		// are no reason to say it capped them.
		ofWindow bool
	}{
		{0, 1, false}, {0, 37, false}, {0, 100000, false}, {time.Second, 3, false}, {100 * time.Second, 7, false},
		{100 * time.Second, 100000, false}, {300 * time.Second, 64, false}, {300 * time.Second, 500, false},
		{100 * time.Second, -1, true}, {100 * time.Second, 0, true}, {100 * time.Second, 5, true}, {300 * time.Second, 0, true},
	} {
		want := all
		if tc.window > 0 {
			want = slices.DeleteFunc(slices.Clone(all), func(ev dataset.Event) bool { return ev.Time.Before(newest.Add(-tc.window)) })
		}
		if tc.ofWindow {
			tc.max += len(want)
		}
		capped := len(want) > tc.max
		want = want[max(0, len(want)-tc.max):]
		var stdout bytes.Buffer
		err := runExport([]string{"--logs", logDir, "--catalog", catDir, "--out", out, "--window", tc.window.String(), "--max-events", strconv.Itoa(tc.max)}, &stdout)
		if err != nil {
			t.Errorf("--window %s --max-events %d: %v", tc.window, tc.max, err)
			continue
		}
		_, _, _, _, got := readDataset(t, out)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("--window %s --max-events %d: exported %d events, want %d: the newest of those in the window, sorted stably", tc.window, tc.max, len(got), len(want))
		}
		if c := strings.Contains(stdout.String(), "kept only the newest"); c != capped {
			t.Errorf("--window %s --max-events %d: summary %q says the events were capped: %v, want %v", tc.window, tc.max, stdout.String(), c, capped)
		}
	}
}

// The command, as a process: exit status and output.
func TestExportCommandExitStatus(t *testing.T) {
	catDir, logDir := exportFixture(t)
	run := func(args ...string) (string, string, error) {
		cmd := exec.Command(os.Args[0], append([]string{"export"}, args...)...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	out := filepath.Join(t.TempDir(), "export")
	stdout, stderr, err := run("--logs", logDir, "--catalog", catDir, "--out", out)
	if err != nil || !strings.HasPrefix(stdout, "exported 8 events, 3 users, 5 items") {
		t.Errorf("export: %v\nstdout: %s\nstderr: %s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "Dropped the events of items neither in the catalog nor published") || !strings.Contains(stderr, "ghost") {
		t.Errorf("export did not warn of the unknown item; stderr:\n%s", stderr)
	}
	_, stderr, err = run("--logs", filepath.Join(logDir, "missing"), "--catalog", catDir, "--out", out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr, "recserve: --logs: stat ") {
		t.Errorf("export of a missing log directory: %v, stderr %q; want exit status 1 naming --logs", err, stderr)
	}
}
