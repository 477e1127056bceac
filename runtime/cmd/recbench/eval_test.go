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
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality"
)

// The evaluation itself is tested in package quality; these tests cover
// the command: its flags, its table, its JSON and its gate.

// writeCatalog adds catalog.jsonl with the given items to a world directory.
func writeCatalog(t *testing.T, dir string, items []string) {
	t.Helper()
	w, err := dataset.CreateCatalog(filepath.Join(dir, "catalog.jsonl"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range items {
		if err := w.Write(dataset.Item{ID: id, Author: "a-" + id, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// ev is an event of a hand-written log, sec seconds after t0.
func ev(sec float64, user string, typ dataset.EventType, item string) dataset.Event {
	e := dataset.Event{User: user, Item: item, Type: typ, Time: t0.Add(time.Duration(sec * float64(time.Second)))}
	if typ == dataset.Follow {
		e.Author, e.Item = item, ""
	}
	return e
}

// evalServer imitates recserve for eval: it keeps the events posted and
// answers GET /v1/recommendations with what answer says.
type evalServer struct {
	*httptest.Server
	mu     sync.Mutex
	events []postedEvent
	asked  []string // users asked for
	answer func(user string, n int, posted []postedEvent) (ids []string, status int)
}

func newEvalServer(t *testing.T, answer func(string, int, []postedEvent) ([]string, int)) *evalServer {
	s := &evalServer{answer: answer}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Events []postedEvent `json:"events"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil || len(body.Events) == 0 {
			writeTestError(w, http.StatusBadRequest, fmt.Sprintf("bad events document: %v", err))
			return
		}
		s.mu.Lock()
		s.events = append(s.events, body.Events...)
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(body.Events)})
	})
	mux.HandleFunc("GET /v1/recommendations", func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			writeTestError(w, http.StatusBadRequest, "bad n")
			return
		}
		s.mu.Lock()
		s.asked = append(s.asked, user)
		posted := slices.Clone(s.events)
		s.mu.Unlock()
		ids, status := s.answer(user, n, posted)
		if status != 0 {
			writeTestError(w, status, "no config loaded yet")
			return
		}
		items := make([]map[string]string, len(ids))
		for i, id := range ids {
			items[i] = map[string]string{"id": id, "author": "a-" + id}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": user, "configRevision": "r1", "items": items})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// evalWorld is a small world: 200 items whose popularity falls with their
// number, 40 users, a follow graph, and about 600 events over 1000 s in
// which every click shares its impression's time.
type evalWorld struct {
	dir     string
	items   []string
	follows []dataset.FollowEdge
	events  []dataset.Event
}

func newEvalWorld(t *testing.T) *evalWorld {
	w := &evalWorld{dir: t.TempDir()}
	for i := range 200 {
		w.items = append(w.items, fmt.Sprintf("i%03d", i))
	}
	w.follows = []dataset.FollowEdge{{User: "u0", Author: "a-i001"}, {User: "u5", Author: "a-i002"}}
	rng := rand.New(rand.NewPCG(4, 2))
	for k := range 400 {
		at := float64(k) * 2.5
		user := fmt.Sprintf("u%d", rng.IntN(40))
		item := w.items[rng.IntN(rng.IntN(len(w.items))+1)]
		w.events = append(w.events, ev(at, user, dataset.Impression, item))
		if rng.IntN(2) == 0 {
			w.events = append(w.events, ev(at, user, dataset.Click, item))
		}
	}
	w.events = append(w.events, ev(1000, "u0", dataset.Impression, "i000"))
	events := writeWorld(t, w.follows, w.events)
	for _, name := range []string{"follows.jsonl", "events.jsonl"} {
		if err := os.Rename(filepath.Join(events, name), filepath.Join(w.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	writeCatalog(t, w.dir, w.items)
	return w
}

// popularAnswer ranks the items by the clicks the server was posted, ties
// in catalog order, leaving out the items shown to the user: popularity as
// recserve would compute it from what it was sent.
func (w *evalWorld) popularAnswer(user string, n int, posted []postedEvent) ([]string, int) {
	clicks := map[string]int{}
	shown := map[string]bool{}
	for _, e := range posted {
		switch {
		case e.Type == "click":
			clicks[e.Item]++
		case e.Type == "impression" && e.User == user:
			shown[e.Item] = true
		}
	}
	order := slices.Clone(w.items)
	slices.SortStableFunc(order, func(a, b string) int { return clicks[b] - clicks[a] })
	var out []string
	for _, id := range order {
		if !shown[id] && len(out) < n {
			out = append(out, id)
		}
	}
	return out, 0
}

// runEvalCmd runs recbench eval with args and returns stdout and the JSON
// report.
func runEvalCmd(t *testing.T, args ...string) (string, quality.Report, error) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "eval.json")
	var stdout, stderr strings.Builder
	err := run(context.Background(), append([]string{"eval", "-json", jsonFile}, args...), &stdout, &stderr)
	var rep quality.Report
	if err == nil || strings.Contains(err.Error(), "min-ndcg-ratio") {
		doc, rerr := os.ReadFile(jsonFile)
		if rerr != nil {
			t.Fatalf("no JSON report: %v (error %v)\n%s", rerr, err, stderr.String())
		}
		if jerr := json.Unmarshal(doc, &rep); jerr != nil {
			t.Fatalf("bad JSON report: %v\n%s", jerr, doc)
		}
	}
	return stdout.String(), rep, err
}

func TestEvalPrintsTheTableAndWritesTheJSON(t *testing.T) {
	w := newEvalWorld(t)
	srv := newEvalServer(t, w.popularAnswer)
	stdout, rep, err := runEvalCmd(t, "-url", srv.URL+"/", "-data", w.dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != w.dir || rep.K != 100 || rep.TestFrac != 0.1 || rep.Users != rep.TestUsers || rep.Replayed == nil || rep.Popularity.NDCG10 == 0 {
		t.Errorf("JSON report %+v: want the world, k 100, test-frac 0.1, every test user, the replay counted and figures", rep)
	}
	if len(srv.asked) != rep.Users || rep.Replayed != nil && len(srv.events) != rep.Replayed.Follows+rep.Replayed.Events {
		t.Errorf("server asked for %d users and posted %d events; the report says %d and %+v", len(srv.asked), len(srv.events), rep.Users, rep.Replayed)
	}
	for _, want := range []string{
		fmt.Sprintf("eval: %s, %d test users, test window from ", w.dir, rep.TestUsers),
		"(the last 10% of the log's time span), k=100, 200 catalog items\n",
		"metric                recserve  popularity      random\n",
		fmt.Sprintf("NDCG@10            %11.4f %11.4f %11.4f\n", rep.Recserve.NDCG10, rep.Popularity.NDCG10, rep.Random.NDCG10),
		"recall@10", "recall@100", "precision@10", "coverage@10",
		"mean list length         100.0       100.0       100.0\n",
		"NDCG@10 recserve/popularity: 1.000\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table has no %q:\n%s", want, stdout)
		}
	}
}

func TestEvalGate(t *testing.T) {
	w := newEvalWorld(t)
	short := func(string, int, []postedEvent) ([]string, int) { return w.items[195:], 0 }
	for name, tc := range map[string]struct {
		answer  func(string, int, []postedEvent) ([]string, int)
		args    []string
		wantErr string
	}{
		"no gate":                            {answer: short},
		"the gate at 0 is off":               {answer: short, args: []string{"-min-ndcg-ratio", "0"}},
		"the gate at 0.5 catches":            {answer: short, args: []string{"-min-ndcg-ratio", "0.5"}, wantErr: "below -min-ndcg-ratio 0.5"},
		"the gate at 1 lets popularity pass": {answer: w.popularAnswer, args: []string{"-min-ndcg-ratio", "1"}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newEvalServer(t, tc.answer)
			stdout, rep, err := runEvalCmd(t, append([]string{"-url", srv.URL, "-data", w.dir}, tc.args...)...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			// The table and the JSON are written whether the gate
			// passes or not.
			if rep.TestUsers == 0 || !strings.Contains(stdout, "NDCG@10 recserve/popularity") {
				t.Errorf("no report: %+v\n%s", rep, stdout)
			}
		})
	}
}

func TestEvalRefusesBadFlagsByName(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no log":           {nil, "give exactly one of -data and -movielens"},
		"two logs":         {[]string{"-data", "d", "-movielens", "m"}, "give exactly one of -data and -movielens"},
		"test-frac":        {[]string{"-data", "d", "-test-frac", "1"}, "-test-frac 1 must be in (0, 1)"},
		"k":                {[]string{"-data", "d", "-k", "-1"}, "-k -1 must be positive"},
		"users":            {[]string{"-data", "d", "-users", "-2"}, "-users -2 must not be negative"},
		"concurrency":      {[]string{"-data", "d", "-concurrency", "300"}, "-concurrency 300 must be between 1 and 256"},
		"batch":            {[]string{"-data", "d", "-batch", "20000"}, "-batch 20000 must be between 1 and 10000"},
		"url":              {[]string{"-data", "d", "-url", "127.0.0.1:8080"}, "-url"},
		"min-ndcg-ratio":   {[]string{"-data", "d", "-min-ndcg-ratio", "-1"}, "-min-ndcg-ratio -1 must not be negative"},
		"a stray argument": {[]string{"-data", "d", "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(context.Background(), append([]string{"eval"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
