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

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// echoEngine serves the weight of "click" of its live config as the score
// of one item, so that a test can see which config answered; it refuses a
// config whose weights name "forbidden".
type echoEngine struct {
	mu       sync.Mutex
	live     *config.Live
	ingested []store.Event
	ingest   error
}

func (e *echoEngine) Apply(cfg *config.Config, _ string) error {
	if _, ok := cfg.Live.Weights["forbidden"]; ok {
		return errors.New(`live.weights.forbidden: "forbidden" is not a head of the model`)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.live = &cfg.Live
	return nil
}

func (e *echoEngine) Recommend(_ context.Context, req *Request) (*Response, error) {
	e.mu.Lock()
	live := e.live
	e.mu.Unlock()
	if req.User == "panic" {
		panic("boom")
	}
	return &Response{User: req.User, Items: []Item{{ID: "i1", Score: live.Weights["click"]}}}, nil
}

// NewItemRisk is the default risk of the tests' new items.
func (e *echoEngine) NewItemRisk() float64 { return 0.25 }

func (e *echoEngine) Ingest(_ context.Context, events []store.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ingest != nil {
		return e.ingest
	}
	e.ingested = append(e.ingested, events...)
	return nil
}

func (e *echoEngine) Info() map[string]any { return map[string]any{"catalogItems": 1} }

func (e *echoEngine) ShadowCounts() map[string]config.ShadowCounts {
	return map[string]config.ShadowCounts{config.StageRankerSecond: {Model: "mtml-v2", Compared: 4, Overlap: 3.2, Spearman: 3.6}}
}

func (e *echoEngine) SourceCounts() map[string]config.SourceCounts {
	return map[string]config.SourceCounts{"for-you": {Requests: 200, Failed: 30}}
}

// The echo engine keeps no precomputed lists: the real engine's are
// tested through recserve (runtime/cmd/recserve).
func (e *echoEngine) StartPrecompute(time.Duration) (*config.PrecomputeRun, error) {
	return nil, fmt.Errorf("%w: the live config has no precompute section", ErrBadRequest)
}

func (e *echoEngine) LastPrecompute() *config.PrecomputeRun      { return nil }
func (e *echoEngine) PrecomputeCounts() *config.PrecomputeCounts { return nil }

func (e *echoEngine) RecommendPrecomputed(context.Context, *Request) (*Response, error) {
	return nil, nil
}

func (e *echoEngine) ArmCounts() map[string]config.ArmCounts {
	return map[string]config.ArmCounts{"short": {Requests: 2, Events: map[string]int64{"click": 1}}}
}

func testConfig(t testing.TB, click float64, extra map[string]float64) []byte {
	t.Helper()
	c := &config.Config{
		Version: config.SchemaVersion, Pipeline: "recs/test",
		Deploy: config.Deploy{Catalog: "file:///c", Store: config.Store{Type: "Memory"}, Models: []config.Model{{Name: "m", URI: "file:///m"}}},
		Live: config.Live{
			Retrieval: config.Retrieval{Candidates: 10, Sources: []config.Source{
				{Name: "pop", Type: config.SourcePopular, Weight: 1, Limit: 10, Timeout: config.Duration(time.Second), Window: config.Duration(time.Hour)},
			}},
			FirstStage: config.Ranker{Model: "m", Keep: 10}, SecondStage: config.Ranker{Model: "m", Keep: 10},
			Weights: map[string]float64{"click": click},
			Rerank:  config.Rerank{Size: 5},
		},
	}
	for k, v := range extra {
		c.Live.Weights[k] = v
	}
	c.DeployRevision, _ = config.DeployRevisionOf(&c.Deploy)
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestServer(t *testing.T) (*Server, *echoEngine, *httptest.Server) {
	t.Helper()
	eng := &echoEngine{}
	s := New(eng, Options{Stage: "all", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, eng, ts
}

func get(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestReadinessFollowsConfigAndDrain(t *testing.T) {
	s, _, ts := newTestServer(t)
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("ready before any config: %d", code)
	}
	if code, _ := get(t, ts.URL+"/v1/recommendations?user=u"); code != http.StatusServiceUnavailable {
		t.Errorf("recommendations before any config: %d", code)
	}
	s.OnConfig(testConfig(t, 1, nil))
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("not ready with a config: %d", code)
	}
	s.Drain()
	if code, _ := get(t, ts.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("ready while draining: %d", code)
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("unhealthy while draining: %d", code)
	}
	if code, _ := get(t, ts.URL+"/v1/recommendations?user=u"); code != http.StatusOK {
		t.Errorf("a draining server must still answer requests in flight: %d", code)
	}
}

func TestConfigSwapAndRefusal(t *testing.T) {
	s, _, ts := newTestServer(t)
	first := testConfig(t, 1, nil)
	s.OnConfig(first)
	_, body := get(t, ts.URL+"/v1/recommendations?user=u")
	if score := body["items"].([]any)[0].(map[string]any)["score"]; score != 1.0 {
		t.Fatalf("served score %v, want the first config's 1", score)
	}

	second := testConfig(t, 7, nil)
	s.OnConfig(second)
	_, body = get(t, ts.URL+"/v1/recommendations?user=u")
	if score := body["items"].([]any)[0].(map[string]any)["score"]; score != 7.0 {
		t.Errorf("after the swap served score %v, want 7", score)
	}

	cases := map[string]struct {
		raw  []byte
		want string
	}{
		"invalid document":         {[]byte(`{"version":1,"pipeline":""}`), "pipeline: must be set"},
		"engine refuses a head":    {testConfig(t, 9, map[string]float64{"forbidden": 1}), "is not a head of the model"},
		"not JSON":                 {[]byte("weights: 1"), "failed to decode config"},
		"weights out of the range": {[]byte(strings.Replace(string(second), `"click": 7`, `"click": 7000`, 1)), "live.weights.click"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s.OnConfig(tc.raw)
			code, body := get(t, ts.URL+"/v1/recommendations?user=u")
			if score := body["items"].([]any)[0].(map[string]any)["score"]; code != 200 || score != 7.0 {
				t.Errorf("after a refused config: %d score %v, want the previous config (7) serving", code, score)
			}
			_, st := get(t, ts.URL+config.StatusPath)
			if st["configRevision"] != config.Revision(second) {
				t.Errorf("status revision %v, want %s", st["configRevision"], config.Revision(second))
			}
			if st["rejectedRevision"] != config.Revision(tc.raw) || !strings.Contains(fmt.Sprint(st["rejected"]), tc.want) {
				t.Errorf("status reports refusal %v: %v, want %s: %q", st["rejectedRevision"], st["rejected"], config.Revision(tc.raw), tc.want)
			}
		})
	}
	// The status carries the engine's per-arm counts, which the operator's
	// rollout analysis reads.
	_, st := get(t, ts.URL+config.StatusPath)
	if got := fmt.Sprint(st["arms"]); got != "map[short:map[events:map[click:1] requests:2]]" {
		t.Errorf("status arms %s, want the engine's counts of arm short", got)
	}
	if got := fmt.Sprint(st["shadow"]); got != "map[ranker-second:map[compared:4 model:mtml-v2 overlap:3.2 spearman:3.6]]" {
		t.Errorf("status shadow %s, want the engine's sums", got)
	}
	if got := fmt.Sprint(st["sources"]); got != "map[for-you:map[failed:30 requests:200]]" {
		t.Errorf("status sources %s, want the engine's window", got)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(b), "recpipeline_config_rejected_total 4") ||
		!strings.Contains(string(b), `recpipeline_config_revision_info{revision="`+config.Revision(second)+`"} 1`) {
		t.Errorf("metrics do not count the refusals or name the revision:\n%s", b)
	}
}

func TestConfigForAnotherDeployRevisionIsNotApplied(t *testing.T) {
	eng := &echoEngine{}
	s := New(eng, Options{DeployRevision: "old-template", Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.OnConfig(testConfig(t, 1, nil))
	if s.Revision() != "" || eng.live != nil {
		t.Errorf("a pod of another template applied the config (revision %q)", s.Revision())
	}
}

func TestBadRequestsGet4xxWithAReason(t *testing.T) {
	s, _, ts := newTestServer(t)
	s.OnConfig(testConfig(t, 1, nil))
	cases := map[string]struct {
		method, path, body string
		code               int
		want               string
	}{
		"no user":                {"GET", "/v1/recommendations", "", 400, "user is required"},
		"n not a number":         {"GET", "/v1/recommendations?user=u&n=ten", "", 400, "n must be an integer"},
		"n too large":            {"GET", "/v1/recommendations?user=u&n=100000", "", 400, "between 1 and 1000"},
		"n zero":                 {"GET", "/v1/recommendations?user=u&n=0", "", 400, "between 1 and 1000"},
		"bad debug":              {"GET", "/v1/recommendations?user=u&debug=maybe", "", 400, "debug must be true or false"},
		"events not JSON":        {"POST", "/v1/events", "click u i", 400, "not an events document"},
		"no events":              {"POST", "/v1/events", `{"events":[]}`, 400, "at least one event"},
		"unknown event type":     {"POST", "/v1/events", `{"events":[{"user":"u","item":"i","type":"stare"}]}`, 400, "is not an event type"},
		"click without item":     {"POST", "/v1/events", `{"events":[{"user":"u","item":"i","type":"click"},{"user":"u","type":"click"}]}`, 400, "events[1]: type click needs user and item"},
		"follow without author":  {"POST", "/v1/events", `{"events":[{"user":"u","type":"follow"}]}`, 400, "needs user and author"},
		"unknown field":          {"POST", "/v1/events", `{"events":[{"user":"u","item":"i","type":"click","colour":"red"}]}`, 400, "unknown field"},
		"event from the future":  {"POST", "/v1/events", `{"events":[{"user":"u","item":"i","type":"click","time":"2035-01-01T00:00:00Z"}]}`, 400, "events[0]: time 2035-01-01T00:00:00Z is more than 5m0s after this server's clock"},
		"body too large":         {"POST", "/v1/events", `{"events":[` + strings.Repeat(`{"user":"u","item":"i","type":"click"},`, 200000) + `]}`, 413, "body larger than"},
		"wrong method":           {"DELETE", "/v1/events", "", 405, ""},
		"engine panic is a 500":  {"GET", "/v1/recommendations?user=panic", "", 500, "internal error"},
		"accepted events":        {"POST", "/v1/events", `{"events":[{"user":"u","item":"i","type":"like"},{"user":"u","author":"a","type":"follow"}]}`, 202, ""},
		"debug accepted as true": {"GET", "/v1/recommendations?user=u&debug=true&n=3", "", 200, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, ts.URL+tc.path, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(b), tc.want) {
				t.Errorf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, resp.StatusCode, b, tc.code, tc.want)
			}
		})
	}
}

// TestEventRisks: an integrity event needs a risk in [0, 1]; a new_item
// takes the engine's default risk when it names none; no other event may
// carry one.
func TestEventRisks(t *testing.T) {
	s, eng, ts := newTestServer(t)
	s.OnConfig(testConfig(t, 1, nil))
	for body, want := range map[string]int{
		`{"item":"i1","type":"integrity","risk":1}`:             http.StatusAccepted,
		`{"item":"i2","author":"a","type":"new_item","risk":0}`: http.StatusAccepted,
		`{"item":"i3","author":"a","type":"new_item"}`:          http.StatusAccepted,
		`{"item":"i1","type":"integrity"}`:                      http.StatusBadRequest,
		`{"item":"i1","type":"integrity","risk":1.5}`:           http.StatusBadRequest,
		`{"item":"i1","type":"integrity","risk":-0.5}`:          http.StatusBadRequest,
		`{"type":"integrity","risk":0.5}`:                       http.StatusBadRequest,
		`{"user":"u","item":"i1","type":"click","risk":0.5}`:    http.StatusBadRequest,
		`{"user":"u","item":"i1","type":"impression","risk":0}`: http.StatusBadRequest,
	} {
		resp, err := http.Post(ts.URL+"/v1/events", "application/json", strings.NewReader(`{"events":[`+body+`]}`))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: HTTP %d, want %d", body, resp.StatusCode, want)
		}
	}
	risks := map[string]float64{}
	for _, e := range eng.ingested {
		risks[e.Item] = e.Risk
	}
	if want := map[string]float64{"i1": 1, "i2": 0, "i3": 0.25}; !reflect.DeepEqual(risks, want) {
		t.Errorf("risks ingested %v, want %v", risks, want)
	}
}

func TestEventsReachTheEngine(t *testing.T) {
	s, eng, ts := newTestServer(t)
	s.OnConfig(testConfig(t, 1, nil))
	resp, err := http.Post(ts.URL+"/v1/events", "application/json", strings.NewReader(
		`{"events":[{"user":"u1","item":"i9","type":"see_less","time":"2026-01-02T03:04:05Z"},{"item":"i10","author":"a1","type":"new_item"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	want := []store.Event{
		{User: "u1", Item: "i9", Type: store.SeeLess, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Item: "i10", Author: "a1", Type: store.NewItem, Risk: 0.25},
	}
	if fmt.Sprint(eng.ingested) != fmt.Sprint(want) {
		t.Errorf("ingested %+v, want %+v", eng.ingested, want)
	}
	eng.ingest = fmt.Errorf("%w: bad time", store.ErrInvalidEvent)
	resp, err = http.Post(ts.URL+"/v1/events", "application/json", strings.NewReader(`{"events":[{"user":"u","item":"i","type":"click"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("store refusal answered %d, want 400", resp.StatusCode)
	}
}

func TestFileSourceDeliversChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &FileSource{Path: path, Poll: 50 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	go func() { _ = src.Watch(ctx, func(b []byte) { got <- string(b) }) }()
	if v := <-got; v != "one" {
		t.Fatalf("first delivery %q", v)
	}
	// Replace the file the way editors and kubelet do: write aside, rename.
	tmp := filepath.Join(dir, "config.json.tmp")
	if err := os.WriteFile(tmp, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "two" {
			t.Errorf("second delivery %q", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("change not delivered")
	}
	select {
	case v := <-got:
		t.Errorf("unchanged content delivered again: %q", v)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestDecodeEventsForgetsTheLastBatch: batches decode into pooled room,
// and an event takes nothing from the one decoded there before it (a field
// it lacks stays unset, a risk it lacks takes the default).
func TestDecodeEventsForgetsTheLastBatch(t *testing.T) {
	first := `{"events":[{"user":"u1","item":"i1","author":"a1","type":"new_item","time":"2026-01-02T03:04:05Z","risk":0.9},` +
		`{"user":"u2","item":"i2","type":"click","time":"2026-01-02T03:04:06Z"}]}`
	second := `{"events":[{"item":"i3","author":"a3","type":"new_item"},{"user":"u4","item":"i4","type":"click"}]}`
	for range 3 {
		if _, err := decodeEvents(strings.NewReader(first), 100, 0.25); err != nil {
			t.Fatal(err)
		}
		got, err := decodeEvents(strings.NewReader(second), 100, 0.25)
		if err != nil {
			t.Fatal(err)
		}
		want := []store.Event{
			{Item: "i3", Author: "a3", Type: store.NewItem, Risk: 0.25},
			{User: "u4", Item: "i4", Type: store.Click},
		}
		if len(got) != len(want) {
			t.Fatalf("decoded %d events, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
			}
		}
	}
}

// FuzzDecodeEvents: no body makes the events parser panic, and every batch
// it accepts is within bounds and passes the event checks.
func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(`{"events":[{"user":"u","item":"i","type":"click"}]}`))
	f.Add([]byte(`{"events":[{"user":"u","author":"a","type":"follow","time":"2026-01-02T03:04:05Z"}]}`))
	f.Add([]byte(`{"events":[{"item":"i","author":"a","type":"new_item"},{"user":"u","type":"see_less"}]}`))
	f.Add([]byte(`{"events":[{"item":"i","type":"integrity","risk":1},{"item":"j","author":"a","type":"new_item","risk":0.5}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"events":[{"user":"` + strings.Repeat("x", 300) + `","item":"i","type":"like"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := decodeEvents(bytes.NewReader(body), 100, 0.25)
		if err != nil {
			return
		}
		if len(events) == 0 || len(events) > 100 {
			t.Fatalf("accepted %d events", len(events))
		}
		for i := range events {
			if err := checkEvent(&events[i]); err != nil {
				t.Fatalf("accepted an event that fails its check: %v", err)
			}
		}
	})
}

// gateEngine holds every recommendation until released and records how
// many ran at once.
type gateEngine struct {
	echoEngine
	release chan struct{}
	running atomic.Int32
	most    atomic.Int32
}

func (e *gateEngine) Recommend(ctx context.Context, req *Request) (*Response, error) {
	n := e.running.Add(1)
	defer e.running.Add(-1)
	for {
		m := e.most.Load()
		if n <= m || e.most.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-e.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return e.echoEngine.Recommend(ctx, req)
}

// With MaxConcurrent, recommendations beyond the bound wait their turn and
// are all answered; one still waiting when its timeout passes gets a 5xx
// with the reason.
func TestMaxConcurrentQueuesRecommendations(t *testing.T) {
	eng := &gateEngine{release: make(chan struct{})}
	s := New(eng, Options{Stage: "all", MaxConcurrent: 2, RequestTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.OnConfig(testConfig(t, 1, nil))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	const clients = 6
	codes := make(chan int, clients)
	for i := 0; i < clients; i++ {
		go func() {
			resp, err := http.Get(ts.URL + "/v1/recommendations?user=u")
			if err != nil {
				codes <- 0
				return
			}
			_ = resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for eng.running.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a third to start, were it let in
	for i := 0; i < clients; i++ {
		eng.release <- struct{}{}
	}
	for i := 0; i < clients; i++ {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("request answered %d, want 200", code)
		}
	}
	if most := eng.most.Load(); most != 2 {
		t.Errorf("%d recommendations ran at once, want 2", most)
	}

	// A request that waits past its timeout fails with a reason.
	s2 := New(eng, Options{Stage: "all", MaxConcurrent: 1, RequestTimeout: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s2.OnConfig(testConfig(t, 1, nil))
	ts2 := httptest.NewServer(s2.Handler())
	t.Cleanup(ts2.Close)
	first := make(chan int, 1)
	go func() {
		resp, err := http.Get(ts2.URL + "/v1/recommendations?user=u")
		if err == nil {
			_ = resp.Body.Close()
			first <- resp.StatusCode
		}
	}()
	for eng.running.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	eng.most.Store(1)
	code, body := get(t, ts2.URL+"/v1/recommendations?user=u")
	if code < 500 || body["error"] == nil {
		t.Errorf("a request queued past its timeout: %d %v, want a 5xx with a reason", code, body)
	}
	<-first
	if most := eng.most.Load(); most != 1 {
		t.Errorf("%d recommendations ran at once under a bound of 1", most)
	}
}

// orderEngine records the users in the order their funnels start.
type orderEngine struct {
	gateEngine
	mu    sync.Mutex
	order []string
}

func (e *orderEngine) Recommend(ctx context.Context, req *Request) (*Response, error) {
	e.mu.Lock()
	e.order = append(e.order, req.User)
	e.mu.Unlock()
	return e.gateEngine.Recommend(ctx, req)
}

// With MaxConcurrent, the recommendations waiting for a slot get it in the
// order they came: none waits behind later ones, which is what bounds the
// wait of each.
func TestMaxConcurrentServesInArrivalOrder(t *testing.T) {
	eng := &orderEngine{gateEngine: gateEngine{release: make(chan struct{})}}
	s := New(eng, Options{Stage: "all", MaxConcurrent: 1, SaturatedAt: 100, RequestTimeout: 5 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.OnConfig(testConfig(t, 1, nil))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)

	const users = 6
	codes := make(chan int, users)
	for i := range users {
		go func() {
			resp, err := http.Get(fmt.Sprintf("%s/v1/recommendations?user=u%d", ts.URL, i))
			if err != nil {
				codes <- 0
				return
			}
			_ = resp.Body.Close()
			codes <- resp.StatusCode
		}()
		// The next request comes once this one is in the server.
		for s.inFlight.Load() < int64(i+1) {
			time.Sleep(time.Millisecond)
		}
	}
	for range users {
		eng.release <- struct{}{}
	}
	for range users {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("request answered %d, want 200", code)
		}
	}
	want := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	if !slices.Equal(eng.order, want) {
		t.Errorf("funnels started in the order %v, want the arrival order %v", eng.order, want)
	}
}

// TestAStagePodAppliesWhatDoesNotChangeWhatItLoads: a pod started with its
// stage's revision applies a config that changes another stage's model
// live, and keeps serving when the config changes its own model (its
// replacement loads it).
func TestAStagePodAppliesWhatDoesNotChangeWhatItLoads(t *testing.T) {
	withModels := func(first, second string) []byte {
		c, err := config.Parse(testConfig(t, 1, nil))
		if err != nil {
			t.Fatal(err)
		}
		c.Deploy.Models = []config.Model{{Name: "f", URI: first}, {Name: "s", URI: second}}
		c.Live.FirstStage.Model, c.Live.SecondStage.Model = "f", "s"
		c.DeployRevision, _ = config.DeployRevisionOf(&c.Deploy)
		b, err := config.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	start := withModels("file:///f1", "file:///s1")
	parsed, err := config.Parse(start)
	if err != nil {
		t.Fatal(err)
	}
	podRevision, err := parsed.StageRevision(config.StageRankerFirst)
	if err != nil {
		t.Fatal(err)
	}
	eng := &echoEngine{}
	s := New(eng, Options{Stage: config.StageRankerFirst, DeployRevision: podRevision, Log: slog.New(slog.DiscardHandler)})
	s.OnConfig(start)
	if s.Revision() != config.Revision(start) {
		t.Fatalf("the pod did not apply the config it started with (serving %q)", s.Revision())
	}
	other := withModels("file:///f1", "file:///s2")
	s.OnConfig(other)
	if s.Revision() != config.Revision(other) {
		t.Errorf("a new second-stage model was not applied live on the first stage (serving %q)", s.Revision())
	}
	own := withModels("file:///f2", "file:///s2")
	s.OnConfig(own)
	if s.Revision() != config.Revision(other) {
		t.Errorf("a new first-stage model was applied by a pod that did not load it (serving %q)", s.Revision())
	}
}

// TestSlowClientsAreCutOff: a client that sends headers and then trickles
// (or never sends) its body loses the connection after the read timeout,
// and one with oversized headers is refused.
func TestSlowClientsAreCutOff(t *testing.T) {
	s, _, _ := newTestServer(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer("", s.Handler(), HTTPTimeouts{Read: 200 * time.Millisecond})
	go func() { _ = hs.Serve(lis) }()
	t.Cleanup(func() { _ = hs.Close() })

	conn, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = io.WriteString(conn, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ev")
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("the connection was not closed by the server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the server held a stalled body for %s", d)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+lis.Addr().String()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("x", 2*MaxHeaderBytes))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized headers answered %d, want 431", resp.StatusCode)
	}
}

// brokenEngine is an engine whose store can record nothing more.
type brokenEngine struct{ echoEngine }

func (*brokenEngine) Healthy() error { return errors.New("failed to write log: disk full") }

func TestABrokenEngineFailsBothProbes(t *testing.T) {
	eng := &brokenEngine{}
	s := New(eng, Options{Log: slog.New(slog.DiscardHandler)})
	s.OnConfig(testConfig(t, 1, nil))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	for _, path := range []string{config.HealthzPath, config.ReadyzPath} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "disk full") {
			t.Errorf("%s answered %d %q, want 503 with the reason", path, resp.StatusCode, body)
		}
	}
}

// TestEventsNeedTheTokenWhenSet: with a token, POST /v1/events without it
// or with another answers 401 and records nothing; with it, 202.
// Recommendations stay open.
func TestEventsNeedTheTokenWhenSet(t *testing.T) {
	eng := &echoEngine{}
	s := New(eng, Options{EventsToken: "s3cret", Log: slog.New(slog.DiscardHandler)})
	s.OnConfig(testConfig(t, 1, nil))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	body := `{"events":[{"user":"u","item":"i","type":"click"}]}`
	post := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/v1/events", strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "s3cret": 401, "Bearer s3cret": 202} {
		if got := post(auth); got != want {
			t.Errorf("Authorization %q: %d, want %d", auth, got, want)
		}
	}
	eng.mu.Lock()
	n := len(eng.ingested)
	eng.mu.Unlock()
	if n != 1 {
		t.Errorf("%d events recorded, want only the authorised one", n)
	}
	if code, _ := get(t, ts.URL+"/v1/recommendations?user=u"); code != http.StatusOK {
		t.Errorf("recommendations answered %d with a token set", code)
	}
}

// listEngine is a gateEngine with a precomputed list for the user
// "listed".
type listEngine struct{ gateEngine }

func (e *listEngine) RecommendPrecomputed(_ context.Context, req *Request) (*Response, error) {
	if req.User != "listed" {
		return nil, nil
	}
	return &Response{User: req.User, Items: []Item{{ID: "from-list"}}, Precomputed: true}, nil
}

// A saturated frontend (more than SaturatedAt recommendations in it,
// computed or waiting for a slot) answers a user with a precomputed list
// from it at once; a user without one waits for the funnel. Below
// saturation the funnel answers everyone.
func TestSaturatedFrontendAnswersFromPrecomputedLists(t *testing.T) {
	for _, opts := range []Options{{MaxConcurrent: 1, SaturatedAt: 1}, {SaturatedAt: 1}} {
		t.Run(fmt.Sprintf("maxConcurrent=%d,saturatedAt=%d", opts.MaxConcurrent, opts.SaturatedAt), func(t *testing.T) {
			eng := &listEngine{gateEngine{release: make(chan struct{})}}
			opts.Stage, opts.RequestTimeout = "all", 5*time.Second
			opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
			s := New(eng, opts)
			s.OnConfig(testConfig(t, 1, nil))
			ts := httptest.NewServer(s.Handler())
			t.Cleanup(ts.Close)

			// Below saturation the funnel answers, list or not.
			done := make(chan int, 3)
			ask := func(user string) {
				resp, err := http.Get(ts.URL + "/v1/recommendations?user=" + user)
				if err != nil {
					done <- 0
					return
				}
				_ = resp.Body.Close()
				done <- resp.StatusCode
			}
			go ask("listed")
			for eng.running.Load() < 1 {
				time.Sleep(time.Millisecond)
			}
			// Saturated now: the listed user is answered from the list
			// while the funnel is held.
			code, body := get(t, ts.URL+"/v1/recommendations?user=listed")
			items, _ := body["items"].([]any)
			if code != http.StatusOK || body["precomputed"] != true || len(items) != 1 || items[0].(map[string]any)["id"] != "from-list" {
				t.Errorf("listed user while saturated: %d %v, want the precomputed list", code, body)
			}
			go ask("other")
			time.Sleep(50 * time.Millisecond)
			if got := eng.running.Load(); opts.MaxConcurrent == 1 && got != 1 {
				t.Errorf("%d funnels run under a bound of 1", got)
			}
			eng.release <- struct{}{}
			eng.release <- struct{}{}
			for range 2 {
				if code := <-done; code != http.StatusOK {
					t.Errorf("a funnel request answered %d", code)
				}
			}
			if n := testutil.ToFloat64(s.metrics.shed); n != 1 {
				t.Errorf("%v answers counted as shed to a list, want 1", n)
			}
		})
	}
}

// runEngine starts one precompute run and refuses a second while it runs.
type runEngine struct {
	echoEngine
	runs     int
	deadline time.Duration
}

func (e *runEngine) StartPrecompute(deadline time.Duration) (*config.PrecomputeRun, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs > 0 {
		return nil, engine.ErrPrecomputeRunning
	}
	e.runs++
	e.deadline = deadline
	return &config.PrecomputeRun{ID: "r1", Revision: "rev"}, nil
}

func (e *runEngine) LastPrecompute() *config.PrecomputeRun {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runs == 0 {
		return nil
	}
	return &config.PrecomputeRun{ID: "r1", Revision: "rev"}
}

// POST /v1/precompute needs the events token when one is set, takes a
// deadline, starts one run at a time (409 names the one going on); GET
// answers the last run, 404 before any.
func TestPrecomputeEndpoint(t *testing.T) {
	eng := &runEngine{}
	s := New(eng, Options{EventsToken: "s3cret", Log: slog.New(slog.DiscardHandler)})
	s.OnConfig(testConfig(t, 1, nil))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	post := func(query, auth string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+config.PrecomputePath+query, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	if code, _ := get(t, ts.URL+config.PrecomputePath); code != http.StatusNotFound {
		t.Errorf("GET before any run: %d, want 404", code)
	}
	for _, auth := range []string{"", "Bearer wrong"} {
		if code, _ := post("", auth); code != http.StatusUnauthorized {
			t.Errorf("POST with Authorization %q: %d, want 401", auth, code)
		}
	}
	if code, body := post("?deadline=soon", "Bearer s3cret"); code != http.StatusBadRequest || body["error"] == nil {
		t.Errorf("POST with a bad deadline: %d %v, want 400 with the reason", code, body)
	}
	if eng.runs != 0 {
		t.Fatalf("%d runs started by refused requests", eng.runs)
	}
	if code, body := post("?deadline=90m", "Bearer s3cret"); code != http.StatusAccepted || body["id"] != "r1" || eng.deadline != 90*time.Minute {
		t.Errorf("POST: %d %v with deadline %s, want 202 with the run and a deadline of 90m", code, body, eng.deadline)
	}
	code, body := post("", "Bearer s3cret")
	if run, _ := body["run"].(map[string]any); code != http.StatusConflict || run["id"] != "r1" {
		t.Errorf("POST while a run goes on: %d %v, want 409 naming run r1", code, body)
	}
	if code, body := get(t, ts.URL+config.PrecomputePath); code != http.StatusOK || body["id"] != "r1" {
		t.Errorf("GET: %d %v, want 200 with run r1", code, body)
	}
}
