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
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/testredis"
)

// precomputeConfig is the fixture's config with lists precomputed for the
// top most active users of the last 30 days.
func precomputeConfig(t *testing.T, f *fixture, weights map[string]float64, top int) []byte {
	t.Helper()
	c, err := config.Parse(pipelineConfig(t, f, weights))
	if err != nil {
		t.Fatal(err)
	}
	c.Live.Precompute = &config.Precompute{
		Serve: config.PrecomputeAlways, TTL: config.Duration(24 * time.Hour), Size: 40,
		ActiveWithin: config.Duration(30 * 24 * time.Hour), Top: top,
	}
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type servedList struct {
	Revision    string `json:"configRevision"`
	Precomputed bool   `json:"precomputed"`
	Items       []struct {
		ID      string   `json:"id"`
		Author  string   `json:"author"`
		Sources []string `json:"sources"`
	} `json:"items"`
}

func getList(t *testing.T, url, user string, n int) servedList {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/recommendations?user=%s&n=%d", url, user, n))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("recommendations for %s: %s", user, resp.Status)
	}
	var l servedList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l
}

// runPrecomputeCommand runs `recserve precompute` against url and returns
// the run it wrote to its result file.
func runPrecomputeCommand(t *testing.T, url string) (*config.PrecomputeRun, error) {
	t.Helper()
	result := filepath.Join(t.TempDir(), "termination-log")
	if err := os.WriteFile(result, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], config.CommandPrecompute, config.Arg(config.FlagFrontend, url), "--poll", "50ms", "--result-file", result)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("recserve precompute:\n%s", out)
	if err != nil {
		return nil, fmt.Errorf("recserve precompute: %w", err)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	var run config.PrecomputeRun
	if err := json.Unmarshal(b, &run); err != nil {
		t.Fatalf("result file %q: %v", b, err)
	}
	return &run, nil
}

// A precompute run stores lists for the most active users; their next
// requests are answered from the lists, through the seen filter, until
// the config changes; the other users' run the funnel.
func TestPrecomputedListsServeTheMostActiveUsers(t *testing.T) {
	f := world(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, precomputeConfig(t, f, defaultWeights(), 3))
	p := start(t, cfgPath, filepath.Join(dir, "state"))

	// Users u10..u14 act, u10 the most and u14 the least, dated a day
	// apart on the event clock: the top 3 are u10, u11, u12.
	then := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	var events []map[string]any
	for i, user := range []string{"u10", "u11", "u12", "u13", "u14"} {
		for k := range 6 - i {
			events = append(events, map[string]any{"user": user, "item": fmt.Sprintf("i%d", 100+10*i+k), "type": "impression", "time": then.Add(time.Duration(i) * time.Hour)})
		}
	}
	if code, err := postEvents(p.url, events); err != nil || code != http.StatusAccepted {
		t.Fatalf("events: %d %v", code, err)
	}
	if got := getList(t, p.url, "u10", 10); got.Precomputed {
		t.Fatal("u10 was answered from a precomputed list before any run")
	}

	run, err := runPrecomputeCommand(t, p.url)
	if err != nil {
		t.Fatal(err)
	}
	if run.Users != 3 || run.Stored != 3 || run.Done != 3 || run.Error != "" || run.Finished.IsZero() {
		t.Fatalf("run = %+v, want 3 users selected, computed and stored", run)
	}

	top := checkListServed(t, p.url, run)
	if got := getList(t, p.url, "u13", 10); got.Precomputed {
		t.Error("u13, not among the 3 most active, was answered from a precomputed list")
	}
	checkSeenFiltered(t, p.url, top, then.Add(6*time.Hour))

	// A new revision does not serve the old revision's lists.
	w := defaultWeights()
	w["like"] = 3
	writeConfig(t, cfgPath, precomputeConfig(t, f, w, 3))
	rev := waitNewRevision(t, p, top.Revision)
	if got := getList(t, p.url, "u11", 10); got.Precomputed || got.Revision != rev {
		t.Errorf("u11 after a weights change: precomputed %v at revision %s, want the funnel at %s", got.Precomputed, got.Revision, rev)
	}

	counts := precomputeStatus(t, p.url)
	if counts.Hits != 2 || counts.Misses != 2 || counts.Stale != 1 || counts.LastRun == nil || counts.LastRun.ID != run.ID {
		t.Errorf("status precompute = %+v, want 2 hits, 2 misses, 1 stale and the run %s", counts, run.ID)
	}
}

// checkListServed checks that u10 is answered from the list of run, with
// the rerank rules applied, and returns the answer.
func checkListServed(t *testing.T, url string, run *config.PrecomputeRun) servedList {
	t.Helper()
	top := getList(t, url, "u10", 10)
	if !top.Precomputed || len(top.Items) != 10 {
		t.Fatalf("u10: precomputed %v with %d items, want a precomputed list of 10", top.Precomputed, len(top.Items))
	}
	if top.Revision != run.Revision {
		t.Errorf("u10's list is of revision %s, the run computed %s", top.Revision, run.Revision)
	}
	for i, it := range top.Items {
		if len(it.Sources) == 0 {
			t.Errorf("item %d (%s) of the precomputed list names no source", i, it.ID)
		}
		if i > 0 && it.Author == top.Items[i-1].Author {
			t.Errorf("items %d and %d are both by %s: the rerank rules did not apply", i-1, i, it.Author)
		}
	}
	return top
}

// checkSeenFiltered records the first 4 items of u10's answer top as seen
// at the time at, then checks that the list still answers without them.
func checkSeenFiltered(t *testing.T, url string, top servedList, at time.Time) {
	t.Helper()
	shown := map[string]bool{}
	var events []map[string]any
	for _, it := range top.Items[:4] {
		shown[it.ID] = true
		events = append(events, map[string]any{"user": "u10", "item": it.ID, "type": "impression", "time": at})
	}
	if code, err := postEvents(url, events); err != nil || code != http.StatusAccepted {
		t.Fatalf("impressions: %d %v", code, err)
	}
	next := getList(t, url, "u10", 10)
	if !next.Precomputed || len(next.Items) != 10 {
		t.Fatalf("u10 after impressions: precomputed %v with %d items", next.Precomputed, len(next.Items))
	}
	for _, it := range next.Items {
		if shown[it.ID] {
			t.Errorf("u10 is served %s again from the list after seeing it", it.ID)
		}
	}
}

// waitNewRevision waits until p serves a revision other than old.
func waitNewRevision(t *testing.T, p *proc, old string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(p.url + config.StatusPath)
		if err != nil {
			continue
		}
		var st config.Status
		_ = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if st.ConfigRevision != "" && st.ConfigRevision != old {
			return st.ConfigRevision
		}
	}
	t.Fatalf("the process still serves %s", old)
	return ""
}

func precomputeStatus(t *testing.T, url string) config.PrecomputeCounts {
	t.Helper()
	resp, err := http.Get(url + config.StatusPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st config.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Precompute == nil {
		t.Fatal("/v1/status has no precompute report")
	}
	return *st.Precompute
}

// Without a precompute section the frontend refuses a run with the
// reason, and the command says so.
func TestPrecomputeRefusedWithoutItsConfig(t *testing.T) {
	f := world(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, pipelineConfig(t, f, defaultWeights()))
	p := start(t, cfgPath, filepath.Join(dir, "state"))
	resp, err := http.Post(p.url+config.PrecomputePath, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || body.Error == "" {
		t.Errorf("POST %s without a precompute section: %d %q, want 400 with the reason", config.PrecomputePath, resp.StatusCode, body.Error)
	}
	if _, err := runPrecomputeCommand(t, p.url); err == nil {
		t.Error("recserve precompute succeeded against a frontend that precomputes nothing")
	}
}

// With the Redis store, the lists one replica's run stores answer the
// users on every replica.
func TestPrecomputedListsReachEveryReplicaThroughRedis(t *testing.T) {
	srv, err := testredis.Start()
	addr := testredis.Need(t, srv, err)
	if srv != nil {
		defer srv.Stop()
	}
	f := world(t)
	dir := t.TempDir()
	c, err := config.Parse(precomputeConfig(t, f, defaultWeights(), 2))
	if err != nil {
		t.Fatal(err)
	}
	c.Deploy.Store = config.Store{Type: "Redis", Redis: &config.RedisStore{Address: addr, KeyPrefix: "it/precompute/"}}
	c.DeployRevision, _ = config.DeployRevisionOf(&c.Deploy)
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, b)
	a := start(t, cfgPath, filepath.Join(dir, "a"))
	other := start(t, cfgPath, filepath.Join(dir, "b"))

	then := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	events := []map[string]any{
		{"user": "u20", "item": "i1", "type": "impression", "time": then},
		{"user": "u20", "item": "i2", "type": "impression", "time": then},
		{"user": "u21", "item": "i3", "type": "impression", "time": then},
		{"user": "u21", "item": "i4", "type": "impression", "time": then},
		{"user": "u22", "item": "i5", "type": "impression", "time": then},
	}
	if code, err := postEvents(a.url, events); err != nil || code != http.StatusAccepted {
		t.Fatalf("events: %d %v", code, err)
	}
	run, err := runPrecomputeCommand(t, a.url)
	if err != nil {
		t.Fatal(err)
	}
	if run.Users != 2 || run.Stored != 2 {
		t.Fatalf("run = %+v, want the 2 most active users computed and stored", run)
	}
	// Replica b reads the event clock from Redis within its refresh.
	for _, user := range []string{"u20", "u21"} {
		var got servedList
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if got = getList(t, other.url, user, 10); got.Precomputed {
				break
			}
		}
		if !got.Precomputed || len(got.Items) != 10 {
			t.Errorf("replica b answered %s with precomputed %v and %d items, want the list replica a's run stored", user, got.Precomputed, len(got.Items))
		}
	}
	if got := getList(t, other.url, "u22", 10); got.Precomputed {
		t.Error("u22, not among the 2 most active, was answered from a list")
	}
}

// With serve Never and a Precomputed source without a URI, a run's lists
// are not served whole but merged into the funnel as that source's
// candidates.
func TestPrecomputedListsMergeAsASource(t *testing.T) {
	f := world(t)
	dir := t.TempDir()
	c, err := config.Parse(precomputeConfig(t, f, defaultWeights(), 2))
	if err != nil {
		t.Fatal(err)
	}
	c.Live.Precompute.Serve = config.PrecomputeNever
	c.Live.Retrieval.Sources = append(c.Live.Retrieval.Sources, config.Source{
		Name: "offpeak", Type: config.SourcePrecomputed, Weight: 0.5, Limit: 50, Timeout: config.Duration(time.Second),
	})
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, b)
	p := start(t, cfgPath, filepath.Join(dir, "state"))

	then := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if code, err := postEvents(p.url, []map[string]any{{"user": "u30", "item": "i1", "type": "impression", "time": then}}); err != nil || code != http.StatusAccepted {
		t.Fatalf("events: %d %v", code, err)
	}
	fromSource := func(l servedList) int {
		n := 0
		for _, it := range l.Items {
			if slices.Contains(it.Sources, "offpeak") {
				n++
			}
		}
		return n
	}
	if n := fromSource(getList(t, p.url, "u30", 25)); n != 0 {
		t.Fatalf("%d items came from the stored lists before any run", n)
	}
	if _, err := runPrecomputeCommand(t, p.url); err != nil {
		t.Fatal(err)
	}
	got := getList(t, p.url, "u30", 25)
	if got.Precomputed {
		t.Error("u30 was answered from the list whole with serve Never")
	}
	if n := fromSource(got); n == 0 {
		t.Error("no item of u30's answer came from the stored list after the run")
	}
	if st := precomputeStatus(t, p.url); st.Hits != 0 {
		t.Errorf("%d answers counted as precomputed hits with serve Never", st.Hits)
	}
}

type scoredList struct {
	Precomputed bool `json:"precomputed"`
	Items       []struct {
		ID    string  `json:"id"`
		Score float64 `json:"score"`
	} `json:"items"`
}

func getScored(t *testing.T, url, user string) scoredList {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/v1/recommendations?user=%s&n=25", url, user))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var l scoredList
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
		t.Fatal(err)
	}
	return l
}

// A precomputed list answers as the funnel would have, scores and order,
// when nothing changed since the run: in particular the integrity
// downranking of risky items applies once, not again on the list.
func TestPrecomputedListAnswersAsTheFunnel(t *testing.T) {
	f := world(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	// A mild downranking keeps the risky items in the list, where a
	// second one would show.
	cfg := func(serve string) []byte {
		c, err := config.Parse(precomputeConfig(t, f, defaultWeights(), 1))
		if err != nil {
			t.Fatal(err)
		}
		c.Live.Precompute.Serve = serve
		c.Live.Rerank.Rules[2].Factor = 0.9
		b, err := config.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	writeConfig(t, cfgPath, cfg(config.PrecomputeAlways))
	p := start(t, cfgPath, filepath.Join(dir, "state"))
	then := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	if code, err := postEvents(p.url, []map[string]any{{"user": "u40", "item": "i1", "type": "impression", "time": then}}); err != nil || code != http.StatusAccepted {
		t.Fatalf("events: %d %v", code, err)
	}
	// The items u40 is served first become risky enough to be downranked
	// (above 0.2), not filtered (above 0.3).
	first := getScored(t, p.url, "u40")
	var risky []map[string]any
	for _, it := range first.Items {
		risky = append(risky, map[string]any{"item": it.ID, "type": "integrity", "risk": 0.25, "time": then})
	}
	if code, err := postEvents(p.url, risky); err != nil || code != http.StatusAccepted {
		t.Fatalf("integrity events: %d %v", code, err)
	}
	if _, err := runPrecomputeCommand(t, p.url); err != nil {
		t.Fatal(err)
	}
	fromList := getScored(t, p.url, "u40")
	if !fromList.Precomputed {
		t.Fatal("u40 was not answered from the list")
	}
	// The same live config without serving lists: the funnel's answer.
	served := getList(t, p.url, "u41", 1).Revision // before the change: the watch may apply it at once
	writeConfig(t, cfgPath, cfg(config.PrecomputeNever))
	waitNewRevision(t, p, served)
	funnel := getScored(t, p.url, "u40")
	if funnel.Precomputed || len(funnel.Items) != len(fromList.Items) {
		t.Fatalf("funnel answer: precomputed %v, %d items; the list's %d", funnel.Precomputed, len(funnel.Items), len(fromList.Items))
	}
	for i := range funnel.Items {
		a, b := fromList.Items[i], funnel.Items[i]
		if a.ID != b.ID || math.Abs(a.Score-b.Score) > 1e-5 {
			t.Errorf("rank %d: the list answers %s (%.6f), the funnel %s (%.6f)", i, a.ID, a.Score, b.ID, b.Score)
		}
	}
}
