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
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/datalog"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// The training loop closed, with the real binaries: a world's log replayed
// into recserve, which logs what it accepts and serves; recserve export
// makes a dataset of the logs; rectrain learns new models from it; recserve
// serves them.
func TestRoundTripFromTheFrontendLogsToNewModels(t *testing.T) {
	dir := t.TempDir()
	rectrainBin := buildRectrain(t, dir)
	worldDir := filepath.Join(dir, "world")
	w := synth.Generate(synth.Config{Users: 120, Items: 500, Events: 6000, Seed: 11})
	must(t, w.WriteDirWith(worldDir, synth.WriteOptions{SkipTruth: true}))
	models0 := filepath.Join(dir, "models0")
	runRectrain(t, rectrainBin, worldDir, models0)

	// recserve on those models, logging into logDir.
	logDir := filepath.Join(dir, "logs")
	raw, err := os.ReadFile(filepath.Join(models0, "config.json"))
	must(t, err)
	c, err := config.Parse(raw)
	must(t, err)
	c.Deploy.Logging = &config.Logging{Dir: "file://" + logDir}
	c.Live.ServedSampleRate = 1
	c.DeployRevision, err = config.DeployRevisionOf(&c.Deploy)
	must(t, err)
	b, err := config.Marshal(c)
	must(t, err)
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, b)
	p := start(t, cfgPath, filepath.Join(dir, "state0"), "--stage", config.StageAll)

	// The world's log as clients post it: its initial follows first, then
	// its events, then an item published live and engaged with.
	events := worldEvents(t, worldDir)
	last, _ := time.Parse(time.RFC3339Nano, events[len(events)-1]["time"].(string))
	fresh := []map[string]any{{"item": "fresh-1", "author": "a1", "type": "new_item", "time": last.Add(time.Minute)}}
	for u := range 5 {
		user := fmt.Sprintf("u%d", u)
		fresh = append(fresh,
			map[string]any{"user": user, "item": "fresh-1", "type": "impression", "time": last.Add(2 * time.Minute)},
			map[string]any{"user": user, "item": "fresh-1", "type": "like", "time": last.Add(3 * time.Minute)})
	}
	events = append(events, fresh...)
	for len(events) > 0 {
		n := min(len(events), 2000)
		if code, err := postEvents(p.url, events[:n]); err != nil || code != http.StatusAccepted {
			t.Fatalf("POST /v1/events: %d %v", code, err)
		}
		events = events[n:]
	}
	posted := len(worldEvents(t, worldDir)) + len(fresh) - 1 // the new_item goes to the items log
	users := []string{"u0", "u1", "u2", "u7", "u30", "u64", "u99"}
	for _, u := range users {
		if code, r := recommend(t, p.url, u, 20, false); code != http.StatusOK || len(r.Items) != 20 {
			t.Fatalf("%s: status %d, %d items from the initial models", u, code, len(r.Items))
		}
	}
	stopGracefully(t, p)

	if logged := countLogged(t, logDir); logged != posted {
		t.Fatalf("the frontend logged %d events, want the %d posted", logged, posted)
	}
	if served := countServed(t, logDir); served != len(users) {
		t.Errorf("the frontend logged %d served lists at servedSampleRate 1, want %d", served, len(users))
	}

	// Export, train, serve.
	export := filepath.Join(dir, "export")
	cmd := exec.Command(os.Args[0], "export", "--logs", "file://"+logDir, "--catalog", "file://"+worldDir, "--out", export)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("recserve export: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("exported %d events, ", posted); !strings.HasPrefix(string(out), want) {
		t.Errorf("recserve export printed %q, want it to start with %q", out, want)
	}
	if !strings.Contains(string(out), "(1 published in the logs)") {
		t.Errorf("recserve export did not add the item published live: %s", out)
	}
	models1 := filepath.Join(dir, "models1")
	runRectrain(t, rectrainBin, export, models1)
	p = start(t, filepath.Join(models1, "config.json"), filepath.Join(dir, "state1"), "--stage", config.StageAll)
	for _, u := range users {
		if code, r := recommend(t, p.url, u, 20, false); code != http.StatusOK || len(r.Items) != 20 {
			t.Errorf("%s: status %d, %d items from the models trained on the logs; want 20", u, code, len(r.Items))
		}
	}
}

// buildRectrain builds the rectrain command into dir.
func buildRectrain(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command, to build rectrain: %v", err)
	}
	bin := filepath.Join(dir, "rectrain")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../rectrain").CombinedOutput(); err != nil {
		t.Fatalf("go build rectrain: %v\n%s", err, out)
	}
	return bin
}

// runRectrain trains small models for one epoch. The tiny world and
// networks need -allow-weak: the quality gate is not what this checks.
func runRectrain(t *testing.T, bin, data, out string) {
	t.Helper()
	cmd := exec.Command(bin, "-allow-weak", "-data", data, "-out", out, "-epochs", "1", "-first-stage-epochs", "1",
		"-hidden", "16", "-dim", "8", "-tower-hidden", "16", "-first-stage-hidden", "8", "-first-stage-dim", "4",
		"-batch", "128", "-eval-users", "20")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rectrain -data %s: %v\n%s", data, err, b)
	}
}

// worldEvents returns a world's follows (as follow events at the log's
// start) and its events, as POST /v1/events takes them.
func worldEvents(t *testing.T, dir string) []map[string]any {
	t.Helper()
	er, err := dataset.OpenEvents(filepath.Join(dir, "events.jsonl"), dataset.ReadOptions{Strict: true})
	must(t, err)
	defer er.Close()
	evs, err := er.ReadAll()
	must(t, err)
	fr, err := dataset.OpenFollows(filepath.Join(dir, "follows.jsonl"), dataset.ReadOptions{Strict: true})
	must(t, err)
	defer fr.Close()
	follows, err := fr.ReadAll()
	must(t, err)
	out := make([]map[string]any, 0, len(follows)+len(evs))
	for _, f := range follows {
		out = append(out, map[string]any{"user": f.User, "author": f.Author, "type": "follow", "time": evs[0].Time.Format(time.RFC3339Nano)})
	}
	for _, ev := range evs {
		m := map[string]any{"user": ev.User, "type": ev.Type.String(), "time": ev.Time.Format(time.RFC3339Nano)}
		if ev.Item != "" {
			m["item"] = ev.Item
		}
		if ev.Author != "" {
			m["author"] = ev.Author
		}
		out = append(out, m)
	}
	return out
}

// stopGracefully stops recserve as the kubelet does, with SIGTERM, and
// waits for it to exit.
func stopGracefully(t *testing.T, p *proc) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("recserve exited with %v on SIGTERM; log:\n%s", err, p.logs.String())
	}
}

// countLogged counts the rows of the events logs of dir.
func countLogged(t *testing.T, dir string) int {
	t.Helper()
	files, err := datalog.List(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, f := range files {
		if f.Log != datalog.EventsLog {
			continue
		}
		rep, err := datalog.ReadEvents(f.Path, func(dataset.Event) error { return nil })
		must(t, err)
		if rep.Skipped > 0 {
			t.Errorf("%s has %d bad rows: %v", f.Path, rep.Skipped, rep.Errors)
		}
		n += rep.Rows
	}
	return n
}

// countServed counts the lists of the served logs of dir.
func countServed(t *testing.T, dir string) int {
	t.Helper()
	files, err := datalog.List(dir)
	must(t, err)
	n := 0
	for _, f := range files {
		if f.Log != datalog.ServedLog {
			continue
		}
		b, err := os.ReadFile(f.Path)
		must(t, err)
		for i, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n"))[1:] {
			var row struct {
				User  string `json:"user"`
				Items []struct {
					Item string `json:"item"`
				} `json:"items"`
			}
			if err := json.Unmarshal(line, &row); err != nil || row.User == "" || len(row.Items) == 0 {
				t.Errorf("%s:%d: not a served list: %v %s", f.Path, i+2, err, line)
			}
			n++
		}
	}
	return n
}
