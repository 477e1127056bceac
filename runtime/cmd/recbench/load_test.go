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
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
)

// recServer is a fake recserve whose users named "bad" get a 503 with a
// reason and the others the three recItems, encoded as recserve encodes
// them; it counts the answers of each kind.
type recServer struct {
	*qualitytest.Server
	good, bad atomic.Int64
}

var recItems = []server.Item{
	{ID: "i1", Author: "a1", Score: 0.9, Sources: []string{"follow", "ann"}, Heads: map[string]float64{"click": 0.2, "id": 0.1}},
	{ID: "i2", Author: "a2", Score: 0.5, Sources: []string{"ann"}, Risk: 0.01},
	{ID: "i3", Author: "a1", Score: 0.1, Sources: []string{"trending"}},
}

func newRecServer(t *testing.T) *recServer {
	s := &recServer{}
	s.Server = qualitytest.NewServer(t, qualitytest.Config{Answer: func(user string, n int, _ []qualitytest.Event) qualitytest.Reply {
		if n != 7 {
			t.Errorf("n=%d, want 7", n)
		}
		if user == "bad" {
			s.bad.Add(1)
			return qualitytest.Reply{Code: http.StatusServiceUnavailable, Reason: "no config loaded yet"}
		}
		s.good.Add(1)
		return qualitytest.Reply{Items: recItems}
	}})
	return s
}

func TestLoadCountsRequestsAndFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		users    []string
		warmup   time.Duration
		requests int
	}{
		"all good":                  {users: []string{"u0", "u1"}, requests: 200},
		"some fail":                 {users: []string{"u0", "u1", "bad"}, requests: 300},
		"warm-up is not measured":   {users: []string{"u0", "bad"}, requests: 100, warmup: 50 * time.Millisecond},
		"fewer requests than users": {users: []string{"u0", "u1", "u2", "bad"}, requests: 3},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newRecServer(t)
			res, err := load(context.Background(), newClient(4, 5*time.Second), loadOptions{
				URL: srv.URL, Users: tc.users, Concurrency: 4, Requests: tc.requests, N: 7, Warmup: tc.warmup,
			})
			if err != nil {
				t.Fatal(err)
			}
			good, bad := int(srv.good.Load()), int(srv.bad.Load())
			if res.Requests != tc.requests {
				t.Errorf("%d requests measured, want %d", res.Requests, tc.requests)
			}
			if tc.warmup == 0 {
				if good+bad != tc.requests || res.OK != good || res.Failures["503"] != bad {
					t.Errorf("server answered %d ok and %d 503; load counted %d ok and failures %v", good, bad, res.OK, res.Failures)
				}
			} else if good+bad <= tc.requests {
				t.Errorf("server saw %d requests, want the warm-up's on top of the %d measured", good+bad, tc.requests)
			}
			if res.OK+res.Failures["503"] != res.Requests || len(res.Failures) > 1 {
				t.Errorf("%d ok and failures %v do not add up to %d requests", res.OK, res.Failures, res.Requests)
			}
			if res.Failures["503"] > 0 && res.Examples["503"] != "no config loaded yet" {
				t.Errorf("503 reason %q, want the server's", res.Examples["503"])
			}
			if res.OK > 0 && res.Items != int64(3*res.OK) {
				t.Errorf("%d items in %d answers, want 3 each", res.Items, res.OK)
			}
			if res.OK > 0 && (res.Latency.P50 <= 0 || res.Latency.P50 > res.Latency.Max) {
				t.Errorf("latency %+v: p50 must be positive and at most max", res.Latency)
			}
		})
	}
}

func TestLoadIsAlwaysBounded(t *testing.T) {
	_, err := load(context.Background(), newClient(1, time.Second), loadOptions{URL: "http://127.0.0.1:1", Users: []string{"u0"}})
	if err == nil || !strings.Contains(err.Error(), "bounded") {
		t.Errorf("load without -duration nor -requests: error %v, want one saying it must be bounded", err)
	}
}

func TestLoadDurationBound(t *testing.T) {
	srv := newRecServer(t)
	start := time.Now()
	res, err := load(context.Background(), newClient(2, 5*time.Second), loadOptions{
		URL: srv.URL, Users: []string{"u0"}, Concurrency: 2, Duration: 200 * time.Millisecond, N: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("a 200ms load took %s", took)
	}
	if res.Requests == 0 || res.Requests != int(srv.good.Load()) {
		t.Errorf("%d requests measured, server answered %d", res.Requests, srv.good.Load())
	}
}

func TestRunLoadReportsAndExitsOnFailures(t *testing.T) {
	srv := newRecServer(t)
	for name, tc := range map[string]struct {
		args    []string
		wantErr bool
	}{
		"failures fail":      {args: []string{"-users", "u0,bad"}, wantErr: true},
		"failures tolerated": {args: []string{"-users", "u0,bad", "-fail-on-error=false"}},
		"no failures":        {args: []string{"-user-prefix", "u", "-user-count", "10"}},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"load", "-url", srv.URL, "-n", "7", "-requests", "40", "-warmup", "0", "-concurrency", "3", "-json"}, tc.args...)
			err := run(context.Background(), args, &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want one: %v\n%s", err, tc.wantErr, stderr.String())
			}
			var rep loadReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil || strings.Count(stdout.String(), "\n") != 1 {
				t.Fatalf("stdout is not one JSON line: %v\n%s", err, stdout.String())
			}
			if rep.Requests != 40 || rep.OK+rep.Failed != 40 || rep.Failed != rep.Failures["503"] {
				t.Errorf("report %+v: want 40 requests, ok and failed adding up", rep)
			}
			if rep.Failed > 0 && !strings.Contains(stderr.String(), "503: ") {
				t.Errorf("text report does not break failures down by status:\n%s", stderr.String())
			}
			if rep.ItemsPerAnswer != 3 {
				t.Errorf("%g items per answer, want 3", rep.ItemsPerAnswer)
			}
			// The server answers 3 items to n=7: every OK answer is short.
			if rep.ShortAnswers != rep.OK || !strings.Contains(stderr.String(), "answers shorter than n=7") {
				t.Errorf("%d short answers of %d OK, want all, and the text report to say so:\n%s", rep.ShortAnswers, rep.OK, stderr.String())
			}
		})
	}
}

func TestLoadEventsRate(t *testing.T) {
	const rate, batch = 1000.0, 50
	catalog := []catalogItem{{ID: "c1", Author: "a9"}, {ID: "c2", Author: "a8"}}
	for name, items := range map[string][]catalogItem{
		"items from answers": nil,
		"items from catalog": catalog,
	} {
		t.Run(name, func(t *testing.T) {
			srv := newRecServer(t)
			users := []string{"u0", "u1", "u2"}
			res, err := load(context.Background(), newClient(3, 5*time.Second), loadOptions{
				URL: srv.URL, Users: users, Concurrency: 2, Duration: time.Second, N: 7,
				EventsRate: rate, EventsBatch: batch, Items: items, Seed: 5,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := srv.Events()
			if res.Events.Sent != len(got) || res.Events.Failed != 0 {
				t.Fatalf("load counted %d sent and %d failed, server accepted %d (%s)", res.Events.Sent, res.Events.Failed, len(got), res.Events.Example)
			}
			// Paced by the count due, ingestion never runs ahead of the
			// rate (plus one batch) and, on an idle loopback server, keeps
			// well above half of it.
			if most := int(rate*res.Events.Elapsed.Seconds()) + batch; len(got) > most {
				t.Errorf("%d events in %s, at most %d at %g/s", len(got), res.Events.Elapsed, most, rate)
			}
			if least := int(rate / 2); len(got) < least {
				t.Errorf("%d events in %s, want at least %d at %g/s", len(got), res.Events.Elapsed, least, rate)
			}
			for _, e := range got {
				valid := e.Item == "i1" || e.Item == "i2" || e.Item == "i3"
				if items != nil {
					valid = (e.Item == "c1" && e.Author == "a9") || (e.Item == "c2" && e.Author == "a8")
				}
				if !valid || (e.Type != "impression" && e.Type != "click") || !strings.HasPrefix(e.User, "u") || time.Since(e.Time) > time.Minute {
					t.Fatalf("event %+v is not a recent click or impression of a known user on a known item", e)
				}
			}
		})
	}
}

func TestCountAndSampleItems(t *testing.T) {
	encode := func(resp *server.Response) []byte {
		var b bytes.Buffer
		if err := json.NewEncoder(&b).Encode(resp); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	for name, tc := range map[string]struct {
		body   []byte
		n      int
		ok     bool
		sample map[string]bool
	}{
		"three items": {body: encode(&server.Response{User: "u1", Items: recItems}), n: 3, ok: true,
			sample: map[string]bool{"i1": true, "i2": true, "i3": true}},
		"a user ID that looks like an item": {body: encode(&server.Response{User: `x{"id":"y`, Items: recItems[:1]}), n: 1, ok: true,
			sample: map[string]bool{"i1": true}},
		"no items":     {body: encode(&server.Response{User: "u1", Items: []server.Item{}}), n: 0, ok: true},
		"null items":   {body: encode(&server.Response{User: "u1"}), n: 0, ok: true},
		"error answer": {body: []byte(`{"error":"internal error"}`), ok: false},
	} {
		t.Run(name, func(t *testing.T) {
			n, ok := countItems(tc.body)
			if n != tc.n || ok != tc.ok {
				t.Errorf("countItems = %d, %v; want %d, %v", n, ok, tc.n, tc.ok)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 20 {
				id := sampleItem(tc.body, rng)
				if (tc.sample == nil && id != "") || (tc.sample != nil && !tc.sample[id]) {
					t.Fatalf("sampleItem = %q, want one of %v", id, tc.sample)
				}
			}
		})
	}
	body := encode(&server.Response{User: "u1", Items: recItems})
	if allocs := testing.AllocsPerRun(100, func() { countItems(body) }); allocs != 0 {
		t.Errorf("countItems allocates %g times per answer, want 0", allocs)
	}
}

// cannedTransport answers every request with the same body, so that a
// benchmark of the worker measures the load generator alone.
type cannedTransport struct{ body []byte }

type cannedBody struct{ bytes.Reader }

func (*cannedBody) Close() error { return nil }

func (c *cannedTransport) RoundTrip(*http.Request) (*http.Response, error) {
	b := &cannedBody{}
	b.Reset(c.body)
	return &http.Response{StatusCode: http.StatusOK, Body: b, Header: http.Header{}}, nil
}

// BenchmarkWorkerRequest measures what one request costs the load
// generator on top of the transport: go test -bench Worker -benchmem.
func BenchmarkWorkerRequest(b *testing.B) {
	var body bytes.Buffer
	_ = json.NewEncoder(&body).Encode(&server.Response{User: "u1", Revision: "r1", Items: recItems})
	client := &http.Client{Transport: &cannedTransport{body: body.Bytes()}, Timeout: 5 * time.Second}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:8080/v1/recommendations", http.NoBody)
	w := &loadWorker{rng: rand.New(rand.NewPCG(1, 1)), lat: make([]time.Duration, 0, b.N), failures: map[string]int{}, examples: map[string]string{}}
	p := &phase{limit: int64(b.N), record: true}
	b.ReportAllocs()
	b.ResetTimer()
	w.run(context.Background(), client, req, []string{"user=u1&n=25", "user=u2&n=25"}, p, nil)
	if w.ok != b.N {
		b.Fatalf("%d ok of %d", w.ok, b.N)
	}
}

func TestPacedLoadSendsTheScheduleWithinTheDuration(t *testing.T) {
	srv := newRecServer(t)
	res, err := load(context.Background(), newClient(4, 5*time.Second), loadOptions{
		URL: srv.URL, Users: []string{"u0"}, Concurrency: 4, Rate: 200, Duration: 500 * time.Millisecond, N: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Requests are due at 0, 5ms, … before the 500ms deadline: 100 of them.
	if res.Requests != 100 || int(srv.good.Load()) != 100 {
		t.Errorf("%d requests measured, %d answered; want the 100 the schedule holds", res.Requests, srv.good.Load())
	}
}

// A paced load counts latency from when each request was due, so a server
// slower than the rate shows the wait for a free worker, where a closed
// loop would hide it.
func TestPacedLoadCountsLatencyFromTheSchedule(t *testing.T) {
	const delay = 20 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		_ = json.NewEncoder(w).Encode(&server.Response{User: "u0", Items: recItems})
	}))
	t.Cleanup(srv.Close)
	const requests = 20
	res, err := load(context.Background(), newClient(1, 5*time.Second), loadOptions{
		URL: srv.URL, Users: []string{"u0"}, Concurrency: 1, Rate: 1000, Requests: requests, N: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	// One worker answers the last request no sooner than 20 × 20ms after
	// the start, and it was due at 19ms.
	floor := float64(requests*delay-19*time.Millisecond) / float64(time.Millisecond)
	if res.OK != requests || res.Latency.Max < floor {
		t.Errorf("%d ok, max latency %.1f ms; want %d and at least %.0f ms", res.OK, res.Latency.Max, requests, floor)
	}
}
