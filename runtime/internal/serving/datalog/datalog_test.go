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

package datalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// openStarted opens a Logger writing as host into dir and starts it.
func openStarted(t *testing.T, cfg config.Logging, host string) *Logger {
	t.Helper()
	l, err := open(cfg, nil, host, QueueLen)
	if err != nil {
		t.Fatal(err)
	}
	go l.run()
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func readEventsFile(t *testing.T, path string) []dataset.Event {
	t.Helper()
	r, err := dataset.OpenEvents(path, dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	evs, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestEventsRoundTripThroughTheLogs(t *testing.T) {
	dir := t.TempDir()
	l := openStarted(t, config.Logging{Dir: "file://" + dir}, "fe-0")
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	l.Events([]store.Event{
		{User: "u1", Item: "i1", Type: store.Impression, Time: at(1)},
		{User: "u1", Item: "i1", Type: store.Click, Time: at(2)},
		{User: "u1", Author: "a1", Type: store.Follow, Time: at(3)},
		{User: "u1", Item: "i1", Author: "a1", Type: store.Unfollow, Time: at(4)},
		{Item: "i9", Author: "a9", Type: store.NewItem, Risk: 0.25, Time: at(5)},
		{User: "u2", Item: "i9", Type: store.SeeLess, Author: "a9", Time: at(6)},
		{User: "u2", Author: "a9", Type: store.SeeLess, Time: at(7)},                // no item: events.jsonl cannot hold it
		{User: "u2", Item: strings.Repeat("x", 257), Type: store.Like, Time: at(7)}, // ID too long
		{Item: "i9", Type: store.Integrity, Risk: 1, Time: at(8)},
		{User: "u\"3\n", Item: "i-é", Type: store.Share, Time: at(9)},
	})
	before := time.Now().Truncate(time.Millisecond)
	l.Events([]store.Event{{User: "u4", Item: "i1", Type: store.Like}}) // dated now
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := readEventsFile(t, filepath.Join(dir, "events.fe-0.jsonl"))
	want := []dataset.Event{
		{User: "u1", Item: "i1", Type: dataset.Impression, Time: at(1)},
		{User: "u1", Item: "i1", Type: dataset.Click, Time: at(2)},
		{User: "u1", Author: "a1", Type: dataset.Follow, Time: at(3)},
		{User: "u1", Item: "i1", Author: "a1", Type: dataset.Unfollow, Time: at(4)},
		{User: "u2", Item: "i9", Author: "a9", Type: dataset.SeeLess, Time: at(6)},
		{User: "u\"3\n", Item: "i-é", Type: dataset.Share, Time: at(9)},
	}
	if len(got) != len(want)+1 {
		t.Fatalf("read %d rows, want %d: %+v", len(got), len(want)+1, got)
	}
	if !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("rows:\n got %+v\nwant %+v", got[:len(want)], want)
	}
	if last := got[len(want)]; last.User != "u4" || last.Time.Before(before) || last.Time.After(time.Now()) || last.Time.Nanosecond()%1e6 != 0 {
		t.Errorf("an undated event was logged as %+v, want u4 dated now to the millisecond", last)
	}
	var items []ItemEvent
	rep, err := ReadItemEvents(filepath.Join(dir, "items.fe-0.jsonl"), func(ev ItemEvent) error { items = append(items, ev); return nil })
	if err != nil || rep.Skipped != 0 {
		t.Fatalf("items log: %v, %+v", err, rep)
	}
	wantItems := []ItemEvent{
		{Type: store.NewItem, Item: "i9", Author: "a9", Time: at(5), Risk: 0.25},
		{Type: store.Integrity, Item: "i9", Time: at(8), Risk: 1},
	}
	if !reflect.DeepEqual(items, wantItems) {
		t.Errorf("items log:\n got %+v\nwant %+v", items, wantItems)
	}
	if n := testutil.ToFloat64(l.m.skipped[eventsLog]); n != 2 {
		t.Errorf("skipped %v events, want 2 (see_less without item, long ID)", n)
	}
	if n := testutil.ToFloat64(l.m.written[eventsLog]); n != 7 {
		t.Errorf("recpipeline_datalog_rows_total{log=events} is %v, want 7", n)
	}
}

func TestReadEventsTakesRowsOutOfTimeOrder(t *testing.T) {
	dir := t.TempDir()
	l := openStarted(t, config.Logging{Dir: dir}, "fe-0")
	l.Events([]store.Event{{User: "u1", Item: "i1", Type: store.Impression, Time: t0.Add(time.Hour)}})
	l.Events([]store.Event{{User: "u2", Item: "i1", Type: store.Impression, Time: t0}}) // a client's late batch
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "events.fe-0.jsonl")
	// Append a row cut short, as a crash leaves one.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"user":"u3","item":"i1","ty`)
	_ = f.Close()
	var users []string
	rep, err := ReadEvents(path, func(ev dataset.Event) error { users = append(users, ev.User); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(users, []string{"u1", "u2"}) || rep.Rows != 2 || rep.Skipped != 1 || len(rep.Errors) != 1 || rep.Errors[0].Line != 4 {
		t.Errorf("read users %v, report %+v; want u1, u2 and the cut row 4 skipped", users, rep)
	}

	// A restart appends to the file, after a newline that ends the cut row.
	l = openStarted(t, config.Logging{Dir: dir}, "fe-0")
	l.Events([]store.Event{{User: "u5", Item: "i1", Type: store.Click, Time: t0}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	users = nil
	rep, err = ReadEvents(path, func(ev dataset.Event) error { users = append(users, ev.User); return nil })
	if err != nil || !reflect.DeepEqual(users, []string{"u1", "u2", "u5"}) || rep.Skipped != 1 {
		t.Errorf("after a restart: users %v, report %+v, err %v; want u1, u2, u5 and one bad row", users, rep, err)
	}
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte(`"format"`)); n != 1 {
		t.Errorf("the appended file has %d headers, want 1", n)
	}
}

func TestRotationKeepsMaxFilesEachWithAHeader(t *testing.T) {
	dir := t.TempDir()
	const maxBytes, maxFiles = 400, 3
	l := openStarted(t, config.Logging{Dir: dir, MaxFileBytes: maxBytes, MaxFiles: maxFiles}, "fe-0")
	other := openStarted(t, config.Logging{Dir: dir, MaxFileBytes: maxBytes, MaxFiles: maxFiles}, "fe-1")
	const n = 300
	for i := range n {
		ev := store.Event{User: fmt.Sprintf("u%d", i), Item: "i1", Type: store.Impression, Time: t0.Add(time.Duration(i) * time.Second)}
		if i%10 == 0 {
			l.Events([]store.Event{ev, ev}) // a batch of two rows may be split between files
			ev.User += "b"
		}
		l.Events([]store.Event{ev})
		other.Events([]store.Event{ev})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	rotated, current := map[string]int{}, map[string]int{}
	var rows []dataset.Event
	for _, f := range files {
		if f.Log != EventsLog {
			continue
		}
		if f.Rotated.IsZero() {
			current[f.Host]++
		} else {
			rotated[f.Host]++
		}
		b, err := os.ReadFile(f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(`{"format":"recpipeline.events","version":1}`+"\n")) {
			t.Errorf("%s does not start with the header: %.60q", f.Path, b)
		}
		if len(b) > maxBytes {
			t.Errorf("%s has %d bytes, over maxFileBytes %d", f.Path, len(b), maxBytes)
		}
		if f.Host == "fe-0" {
			rows = append(rows, readEventsFile(t, f.Path)...)
		}
	}
	// The two hosts sharing the directory keep maxFiles rotated files
	// between them.
	if rotated["fe-0"]+rotated["fe-1"] != maxFiles || current["fe-0"] != 1 || current["fe-1"] != 1 {
		t.Fatalf("rotated events files %v and current ones %v, want %d rotated in all and 1 current each: %+v", rotated, current, maxFiles, files)
	}
	// fe-0's files kept hold its newest rows, oldest file first, none
	// lost between them.
	if len(rows) == 0 || rows[len(rows)-1].User != fmt.Sprintf("u%d", n-1) {
		t.Fatalf("the kept files end with %+v, want the last event", rows[max(0, len(rows)-1):])
	}
	for i := 1; i < len(rows); i++ {
		if rows[i].Time.Before(rows[i-1].Time) {
			t.Errorf("row %d (%v) is older than the row before it: a file was lost in between", i, rows[i].Time)
		}
	}
}

// writeLogFile writes a log file named name into dir, last modified at
// mtime.
func writeLogFile(t *testing.T, dir, name string, mtime time.Time) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(`{"format":"recpipeline.events","version":1}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// logNames returns the names of dir's log files, sorted as List sorts them.
func logNames(t *testing.T, dir string) []string {
	t.Helper()
	files, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f.Path))
	}
	return names
}

func TestOpenPrunesTheOldFilesOfEveryHost(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	ago := func(h int) time.Time { return now.Add(-time.Duration(h) * time.Hour) }
	rotated := func(lg Log, host string, h int) string {
		return string(lg) + "." + host + "." + ago(h).Format(stampLayout) + ext
	}
	for _, f := range []struct {
		name  string
		mtime time.Time
	}{
		{rotated(EventsLog, "fe-old", 50), ago(50)},
		{"events.fe-old.jsonl", ago(48)}, // a pod gone two days ago
		{rotated(EventsLog, "fe-gone", 30), ago(30)},
		{"events.fe-gone.jsonl", ago(25)}, // gone a day ago, but among the newest
		{rotated(EventsLog, "fe-0", 26), ago(26)},
		{"events.fe-0.jsonl", ago(72)}, // this process's, restarted after three days
		{rotated(EventsLog, "fe-1", 2), ago(2)},
		{"events.fe-1.jsonl", ago(1)}, // a live replica's
		{rotated(ItemsLog, "fe-old", 100), ago(100)},
	} {
		writeLogFile(t, dir, f.name, f.mtime)
	}
	l, err := open(config.Logging{Dir: dir, MaxFiles: 3}, nil, "fe-0", QueueLen)
	if err != nil {
		t.Fatal(err)
	}
	go l.run()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		rotated(EventsLog, "fe-0", 26),
		"events.fe-0.jsonl",
		rotated(EventsLog, "fe-1", 2),
		"events.fe-1.jsonl",
		"events.fe-gone.jsonl",
		"items.fe-0.jsonl",
		rotated(ItemsLog, "fe-old", 100),
		"served.fe-0.jsonl",
	}
	if got := logNames(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("after opening the logs of fe-0 with maxFiles 3, the directory holds\n %q\nwant\n %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "events.fe-0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if now.Sub(fi.ModTime()) >= StaleAfter {
		t.Errorf("the reopened events.fe-0.jsonl was last modified at %v: other replicas take it for stale", fi.ModTime())
	}
}

func TestRotationPrunesTheFilesOfGoneHosts(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	for h := range 5 {
		writeLogFile(t, dir, "events.fe-gone."+now.Add(-time.Duration(h+1)*time.Hour).Format(stampLayout)+ext, now)
	}
	writeLogFile(t, dir, "events.fe-gone.jsonl", now.Add(-StaleAfter-time.Minute))
	l := openStarted(t, config.Logging{Dir: dir, MaxFileBytes: 200, MaxFiles: 2}, "fe-0")
	for i := range 20 {
		l.Events([]store.Event{{User: fmt.Sprintf("u%d", i), Item: "i1", Type: store.Impression, Time: t0}})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var own int
	for _, name := range logNames(t, dir) {
		switch {
		case strings.HasPrefix(name, "events.fe-gone."):
			t.Errorf("%s is left after fe-0 rotated its events log past maxFiles 2", name)
		case strings.HasPrefix(name, "events.fe-0.") && name != "events.fe-0.jsonl":
			own++
		}
	}
	if own != 2 {
		t.Errorf("fe-0 kept %d rotated events files, want 2", own)
	}
}

func TestReplicasPruneAtOnce(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	for h := range 10 {
		writeLogFile(t, dir, "events.fe-gone."+now.Add(-time.Duration(h+1)*time.Hour).Format(stampLayout)+ext, now)
	}
	writeLogFile(t, dir, "events.fe-old.jsonl", now.Add(-2*StaleAfter))
	a := &rotator{dir: dir, log: EventsLog, host: "fe-0", maxFiles: 2}
	b := &rotator{dir: dir, log: EventsLog, host: "fe-1", maxFiles: 2}
	old, err := a.oldFiles(now)
	if err != nil {
		t.Fatal(err)
	}
	if len(old) != 9 {
		t.Fatalf("fe-0 would remove %d files, want 9 (8 rotated and a stale current one): %q", len(old), old)
	}
	// fe-1 prunes between fe-0's listing and its removals.
	if err := b.prune(now); err != nil {
		t.Fatal(err)
	}
	if err := removeFiles(old); err != nil {
		t.Errorf("fe-0 failed to remove the files fe-1 removed first: %v", err)
	}
	if got := logNames(t, dir); len(got) != 2 {
		t.Errorf("the replicas left %q, want the 2 newest rotated files", got)
	}

	// And both at once, as the race detector sees it.
	for h := range 10 {
		writeLogFile(t, dir, "events.fe-gone."+now.Add(-time.Duration(h+20)*time.Hour).Format(stampLayout)+ext, now)
		writeLogFile(t, dir, fmt.Sprintf("events.fe-old-%d.jsonl", h), now.Add(-2*StaleAfter))
	}
	errs := make(chan error, 2)
	for _, r := range []*rotator{a, b} {
		go func() { errs <- r.prune(now) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("pruning at once: %v", err)
		}
	}
	if got := logNames(t, dir); len(got) != 2 {
		t.Errorf("the replicas pruning at once left %q, want the 2 newest rotated files", got)
	}
}

func TestKeepAliveTouchesAndRestartsTheCurrentFile(t *testing.T) {
	dir := t.TempDir()
	l, err := open(config.Logging{Dir: dir}, nil, "fe-0", QueueLen)
	if err != nil {
		t.Fatal(err)
	}
	r := l.files[eventsLog]
	path := filepath.Join(dir, "events.fe-0.jsonl")
	mtime := func() time.Time {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	long := time.Now().Add(-2 * StaleAfter)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chtimes(path, long, long))
	now := time.Now()
	must(r.keepAlive(now))
	// Within a second: file systems keep modification times more or less
	// finely.
	near := func(a, b time.Time) bool { return a.Sub(b).Abs() < time.Second }
	if !near(mtime(), long) {
		t.Errorf("keepAlive within the hour after open set the modification time")
	}
	now = now.Add(touchInterval)
	must(r.keepAlive(now))
	if got := mtime(); !near(got, now) {
		t.Errorf("after keepAlive an hour on, the file was last modified at %v, want %v", got, now)
	}

	// Another replica removed the file (it took it for stale).
	must(os.Remove(path))
	now = now.Add(touchInterval)
	if err := r.keepAlive(now); err == nil || !strings.Contains(err.Error(), "started it anew") {
		t.Errorf("keepAlive of a removed file: %v, want it to say so", err)
	}
	l.Events([]store.Event{{User: "u1", Item: "i1", Type: store.Click, Time: t0}})
	go l.run()
	must(l.Close())
	if got := readEventsFile(t, path); len(got) != 1 || got[0].User != "u1" {
		t.Errorf("after the file was removed, it holds %+v, want the event written since", got)
	}
}

func TestSampledIsStableAndNearTheRate(t *testing.T) {
	const n = 100000
	for _, rate := range []float64{0.01, 0.1, 0.5} {
		hits := 0
		for i := range n {
			id := fmt.Sprintf("req-%d", i)
			s := Sampled(rate, id)
			if s != Sampled(rate, id) {
				t.Fatalf("Sampled(%v, %q) changed between calls", rate, id)
			}
			if s && !Sampled(0.9, id) {
				t.Fatalf("%q is sampled at %v but not at 0.9: a higher rate must keep what a lower one does", id, rate)
			}
			if s {
				hits++
			}
		}
		// Within 5 standard deviations of the binomial.
		if sd := math.Sqrt(n * rate * (1 - rate)); math.Abs(float64(hits)-n*rate) > 5*sd {
			t.Errorf("rate %v sampled %d of %d ids, want about %.0f", rate, hits, n, n*rate)
		}
	}
	for _, tc := range []struct {
		rate float64
		want bool
	}{{0, false}, {-1, false}, {math.NaN(), false}, {1, true}, {2, true}} {
		for _, id := range []string{"", "a", "req-1"} {
			if got := Sampled(tc.rate, id); got != tc.want {
				t.Errorf("Sampled(%v, %q) = %v, want %v", tc.rate, id, got, tc.want)
			}
		}
	}
}

func TestServedListsAreLoggedWhenSampled(t *testing.T) {
	dir := t.TempDir()
	l := openStarted(t, config.Logging{Dir: dir}, "fe-0")
	heads := []string{"click", "like"}
	probs := []float32{0.25, 0.5}
	l.Served(1, Served{RequestID: "r1", User: "u1", Arm: "b", Revision: "rev1", Time: t0, Precomputed: true, Heads: heads,
		Items: []ServedItem{
			{Item: "i1", Author: "a1", Score: 1.5, Sources: []string{"for-you", "trending"}, Probs: probs},
			{Item: "i2", Author: "a2", Score: math.Inf(1), Probs: probs[:1]}, // probs that do not match the heads
		}})
	probs[0] = 0.75 // the caller reuses its buffers once Served returns
	l.Served(0, Served{RequestID: "r2", User: "u2"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "served.fe-0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != `{"format":"recpipeline.served","version":1}` {
		t.Fatalf("served log:\n%s\nwant the header and one list (rate 0 logs nothing)", b)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &got); err != nil {
		t.Fatalf("the served row is not JSON: %v\n%s", err, lines[1])
	}
	var want map[string]any
	_ = json.Unmarshal([]byte(`{"request_id":"r1","user":"u1","arm":"b","revision":"rev1","time":"2025-03-01T12:00:00Z","precomputed":true,"items":[
		{"item":"i1","author":"a1","score":1.5,"sources":["for-you","trending"],"heads":{"click":0.25,"like":0.5}},
		{"item":"i2","author":"a2","score":null,"sources":[],"heads":{}}]}`), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("served row:\n got %v\nwant %v", got, want)
	}
}

func TestAFullQueueDropsAndCountsInsteadOfBlocking(t *testing.T) {
	dir := t.TempDir()
	// The writer is not started: nothing drains the queue of 2 batches.
	l, err := open(config.Logging{Dir: dir}, nil, "fe-0", 2)
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := range 5 {
			l.Events([]store.Event{
				{User: fmt.Sprintf("u%d", i), Item: "i1", Type: store.Impression, Time: t0},
				{User: fmt.Sprintf("u%d", i), Item: "i1", Type: store.Click, Time: t0},
			})
		}
		l.Served(1, Served{RequestID: "r", User: "u"})
	}()
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("Events blocked on a full queue")
	}
	if got := l.Dropped(); got != 3*2+1 {
		t.Errorf("Dropped() = %d, want 7 (3 batches of 2 events and a served list)", got)
	}
	if got := testutil.ToFloat64(l.m.dropped[eventsLog]); got != 6 {
		t.Errorf("recpipeline_datalog_dropped_rows_total{log=events} = %v, want 6", got)
	}
	go l.run()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := readEventsFile(t, filepath.Join(dir, "events.fe-0.jsonl"))
	if len(got) != 4 || got[0].User != "u0" || got[3].User != "u1" {
		t.Errorf("wrote %+v, want the two queued batches (u0, u1)", got)
	}
	l.Events([]store.Event{{User: "u9", Item: "i1", Type: store.Click, Time: t0}})
	if got := l.Dropped(); got != 8 {
		t.Errorf("after Close, Dropped() = %d, want 8: an event after Close is dropped and counted", got)
	}
}

func TestCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(config.Logging{Dir: "file://" + dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	l.Events([]store.Event{{User: "u1", Item: "i1", Type: store.Like, Time: t0}})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	got := readEventsFile(t, filepath.Join(dir, "events."+fileSafe(host)+".jsonl"))
	if len(got) != 1 || got[0].User != "u1" {
		t.Errorf("after Close the file holds %+v, want the event", got)
	}
}

func TestNilLoggerLogsNothing(t *testing.T) {
	var l *Logger
	l.Events([]store.Event{{User: "u1", Item: "i1", Type: store.Like}})
	l.Served(1, Served{RequestID: "r"})
	if l.Dropped() != 0 || l.Collectors() != nil || l.Close() != nil {
		t.Error("a nil Logger did something")
	}
}

func TestOpenRefusesABadDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{
		"remote":         "https://example.com/logs",
		"empty":          "",
		"under a file":   "file://" + file + "/logs",
		"unknown scheme": "s3://bucket/logs",
	} {
		if _, err := Open(config.Logging{Dir: dir}, nil); err == nil {
			t.Errorf("%s: Open(%q) succeeded", name, dir)
		}
	}
}

func TestListReadsNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"events.fe-1.jsonl",
		"events.fe-0.20250301T120000.000000000Z.jsonl.gz",
		"events.fe-0.jsonl",
		"events.fe-0.20250301T110000.000000000Z.jsonl",
		"events.fe.0.jsonl", // host "fe.0"
		"items.fe-0.jsonl",
		"catalog.jsonl",
		"notes.txt",
		"events..jsonl",
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, fmt.Sprintf("%s %s %s gz=%v", f.Log, f.Host, f.Rotated.Format(stampLayout), f.Gzip))
	}
	want := []string{
		"events fe-0 20250301T110000.000000000Z gz=false",
		"events fe-0 20250301T120000.000000000Z gz=true",
		"events fe-0 00010101T000000.000000000Z gz=false",
		"events fe-1 00010101T000000.000000000Z gz=false",
		"events fe.0 00010101T000000.000000000Z gz=false",
		"items fe-0 00010101T000000.000000000Z gz=false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List:\n got %q\nwant %q", got, want)
	}
	if _, err := List(filepath.Join(dir, "missing")); err == nil {
		t.Error("List of a missing directory succeeded")
	}
}

// BenchmarkEvents measures the request path's share of logging a batch.
func BenchmarkEvents(b *testing.B) {
	l, err := open(config.Logging{Dir: b.TempDir()}, nil, "fe-0", QueueLen)
	if err != nil {
		b.Fatal(err)
	}
	go l.run()
	defer l.Close()
	batch := []store.Event{
		{User: "u123", Item: "i4567", Type: store.Impression, Time: t0},
		{User: "u123", Item: "i4567", Type: store.Click, Time: t0},
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Events(batch)
	}
}
