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
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/synth"
)

// postedEvent is an event as the fake server decoded it.
type postedEvent struct {
	User   string    `json:"user"`
	Item   string    `json:"item"`
	Author string    `json:"author"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
}

// eventsServer imitates POST /v1/events: it decodes strictly, as recserve
// does, records every batch in arrival order and answers 202 with the
// count, or what refuse says.
type eventsServer struct {
	*httptest.Server
	mu      sync.Mutex
	batches [][]postedEvent
	sizes   []int // body bytes
	refuse  func(batch int, evs []postedEvent) (code int, reason string)
}

func newEventsServer(t *testing.T, refuse func(int, []postedEvent) (int, string)) *eventsServer {
	s := &eventsServer{refuse: refuse}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/events" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		var body struct {
			Events []postedEvent `json:"events"`
		}
		cr := &countingReader{r: http.MaxBytesReader(w, r.Body, recclient.MaxBodyBytes)}
		dec := json.NewDecoder(cr)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeTestError(w, http.StatusBadRequest, "body is not an events document: "+err.Error())
			return
		}
		if len(body.Events) == 0 || len(body.Events) > recclient.MaxEvents {
			writeTestError(w, http.StatusBadRequest, fmt.Sprintf("events: %d events", len(body.Events)))
			return
		}
		s.mu.Lock()
		n := len(s.batches)
		s.mu.Unlock()
		if s.refuse != nil {
			if code, reason := s.refuse(n, body.Events); code != 0 {
				writeTestError(w, code, reason)
				return
			}
		}
		s.mu.Lock()
		s.batches = append(s.batches, body.Events)
		s.sizes = append(s.sizes, cr.n)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(body.Events)})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *eventsServer) all() []postedEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []postedEvent
	for _, b := range s.batches {
		out = append(out, b...)
	}
	return out
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func writeTestError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// writeWorld writes follows.jsonl and events.jsonl to a new directory.
func writeWorld(t *testing.T, follows []dataset.FollowEdge, events []dataset.Event) string {
	t.Helper()
	dir := t.TempDir()
	fw, err := dataset.CreateFollows(filepath.Join(dir, "follows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range follows {
		if err := fw.Write(follows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	ew, err := dataset.CreateEvents(filepath.Join(dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if err := ew.Write(events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := ew.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testLog is a log of n events over users users, one a second from t0+1h,
// cycling through impression, click, like and follow.
func testLog(n, users int) []dataset.Event {
	evs := make([]dataset.Event, n)
	for i := range evs {
		evs[i] = dataset.Event{
			User: fmt.Sprintf("u%d", i%users),
			Item: fmt.Sprintf("i%d", i),
			Type: []dataset.EventType{dataset.Impression, dataset.Click, dataset.Like, dataset.Follow}[i%4],
			Time: t0.Add(time.Hour + time.Duration(i)*time.Second),
		}
		if evs[i].Type == dataset.Follow {
			evs[i].Author = fmt.Sprintf("a%d", i)
		}
	}
	return evs
}

// expected is what the server must receive for a world: the follow graph
// as follow events at the log's first time, then the log.
func expected(follows []dataset.FollowEdge, events []dataset.Event) []postedEvent {
	var out []postedEvent
	for _, f := range follows {
		out = append(out, postedEvent{User: f.User, Author: f.Author, Type: "follow", Time: events[0].Time})
	}
	for _, e := range events {
		out = append(out, postedEvent{User: e.User, Item: e.Item, Author: e.Author, Type: e.Type.String(), Time: e.Time})
	}
	return out
}

func equalEvents(a, b []postedEvent) bool {
	return slices.EqualFunc(a, b, func(x, y postedEvent) bool {
		return x.User == y.User && x.Item == y.Item && x.Author == y.Author && x.Type == y.Type && x.Time.Equal(y.Time)
	})
}

func TestReplaySendsEverythingInOrderInBatches(t *testing.T) {
	follows := []dataset.FollowEdge{{User: "u0", Author: "a1"}, {User: "u1", Author: "a2"}}
	events := testLog(5, 2)
	dir := writeWorld(t, follows, events)
	srv := newEventsServer(t, nil)

	res, err := replay(context.Background(), newClient(1, 10*time.Second), replayOptions{URL: srv.URL, Data: dir, Batch: 3, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.all(), expected(follows, events); !equalEvents(got, want) {
		t.Errorf("server received\n%v\nwant\n%v", got, want)
	}
	var sizes []int
	for _, b := range srv.batches {
		sizes = append(sizes, len(b))
	}
	if want := []int{3, 3, 1}; !slices.Equal(sizes, want) {
		t.Errorf("batch sizes %v, want %v", sizes, want)
	}
	if res.Follows != 2 || res.Events != 5 || res.Batches != 3 {
		t.Errorf("result %+v, want 2 follows, 5 events, 3 batches", res)
	}
}

func TestReplayKeepsEachUsersOrderAcrossSenders(t *testing.T) {
	var follows []dataset.FollowEdge
	for u := range 7 {
		follows = append(follows, dataset.FollowEdge{User: fmt.Sprintf("u%d", u), Author: fmt.Sprintf("a%d", u)})
	}
	events := testLog(500, 7)
	dir := writeWorld(t, follows, events)

	for name, tc := range map[string]struct {
		concurrency, batch int
	}{
		"one sender":    {1, 16},
		"three senders": {3, 16},
		"batch of one":  {4, 1},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newEventsServer(t, nil)
			res, err := replay(context.Background(), newClient(tc.concurrency, 10*time.Second),
				replayOptions{URL: srv.URL, Data: dir, Batch: tc.batch, Concurrency: tc.concurrency})
			if err != nil {
				t.Fatal(err)
			}
			got, want := srv.all(), expected(follows, events)
			if len(got) != len(want) || res.Follows+res.Events != len(want) {
				t.Fatalf("server received %d events, result counts %d, want %d", len(got), res.Follows+res.Events, len(want))
			}
			for _, b := range srv.batches {
				if len(b) > tc.batch {
					t.Errorf("a batch of %d events, at most %d allowed", len(b), tc.batch)
				}
			}
			byUser := func(evs []postedEvent) map[string][]postedEvent {
				m := map[string][]postedEvent{}
				for _, e := range evs {
					m[e.User] = append(m[e.User], e)
				}
				return m
			}
			gotBy, wantBy := byUser(got), byUser(want)
			for u, w := range wantBy {
				if !equalEvents(gotBy[u], w) {
					t.Errorf("user %s: events arrived as %v, want %v", u, gotBy[u], w)
				}
			}
		})
	}
}

func TestReplayBounds(t *testing.T) {
	events := testLog(100, 3)
	dir := writeWorld(t, []dataset.FollowEdge{{User: "u0", Author: "a0"}}, events)

	t.Run("max events", func(t *testing.T) {
		srv := newEventsServer(t, nil)
		res, err := replay(context.Background(), newClient(1, 10*time.Second), replayOptions{URL: srv.URL, Data: dir, Concurrency: 1, MaxEvents: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := srv.all(), expected([]dataset.FollowEdge{{User: "u0", Author: "a0"}}, events[:10]); !equalEvents(got, want) {
			t.Errorf("server received %d events, want the follow and the first 10", len(got))
		}
		if res.Follows != 1 || res.Events != 10 {
			t.Errorf("result %+v, want 1 follow and 10 events", res)
		}
	})
	t.Run("body bytes", func(t *testing.T) {
		srv := newEventsServer(t, nil)
		const maxBody = 1024
		_, err := replay(context.Background(), newClient(2, 10*time.Second), replayOptions{URL: srv.URL, Data: dir, Concurrency: 2, MaxBody: maxBody})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(srv.all()); n != 101 {
			t.Errorf("server received %d events, want 101", n)
		}
		if len(srv.batches) <= 2 {
			t.Errorf("%d batches: the byte bound did not split the two senders' batches", len(srv.batches))
		}
		for _, n := range srv.sizes {
			if n > maxBody {
				t.Errorf("a body of %d bytes, at most %d allowed", n, maxBody)
			}
		}
	})
}

func TestReplayStopsOnRefusalWithTheServersReason(t *testing.T) {
	dir := writeWorld(t, nil, testLog(50, 1))
	const reason = `events[3]: type "click" needs user and item`
	srv := newEventsServer(t, func(batch int, _ []postedEvent) (int, string) {
		if batch == 2 {
			return http.StatusBadRequest, reason
		}
		return 0, ""
	})
	var stdout, stderr strings.Builder
	err := run(context.Background(), []string{"replay", "-url", srv.URL, "-data", dir, "-batch", "10", "-concurrency", "1"}, &stdout, &stderr)
	if err == nil {
		t.Fatal("replay succeeded although the server refused a batch")
	}
	for _, want := range []string{"400", reason, "events row 21"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if n := len(srv.all()); n != 20 {
		t.Errorf("server accepted %d events, want the 20 before the refusal and nothing after", n)
	}
	if !strings.Contains(stdout.String(), "events 20,") {
		t.Errorf("report %q does not count the 20 accepted events", stdout.String())
	}
}

func TestReplayOfAGeneratedWorld(t *testing.T) {
	dir := t.TempDir()
	w := synth.Generate(synth.Config{Users: 40, Items: 200, Seed: 3})
	if err := w.WriteDirWith(dir, synth.WriteOptions{SkipTruth: true, Gzip: true}); err != nil {
		t.Fatal(err)
	}
	s := w.Summary()
	srv := newEventsServer(t, nil)
	res, err := replay(context.Background(), newClient(2, 10*time.Second), replayOptions{URL: srv.URL, Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Follows != s.Follows || res.Events != s.Events || len(srv.all()) != s.Follows+s.Events {
		t.Errorf("replayed %d follows and %d events, server got %d; the world has %d and %d",
			res.Follows, res.Events, len(srv.all()), s.Follows, s.Events)
	}
}
