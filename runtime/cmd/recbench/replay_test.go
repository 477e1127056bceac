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
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// testLog is a log of n events over users users, one a second from T0+1h,
// cycling through impression, click, like and follow.
func testLog(n, users int) []dataset.Event {
	evs := make([]dataset.Event, n)
	for i := range evs {
		evs[i] = dataset.Event{
			User: fmt.Sprintf("u%d", i%users),
			Item: fmt.Sprintf("i%d", i),
			Type: []dataset.EventType{dataset.Impression, dataset.Click, dataset.Like, dataset.Follow}[i%4],
			Time: qualitytest.T0.Add(time.Hour + time.Duration(i)*time.Second),
		}
		if evs[i].Type == dataset.Follow {
			evs[i].Author = fmt.Sprintf("a%d", i)
		}
	}
	return evs
}

func TestReplaySendsEverythingInOrderInBatches(t *testing.T) {
	follows := []dataset.FollowEdge{{User: "u0", Author: "a1"}, {User: "u1", Author: "a2"}}
	events := testLog(5, 2)
	dir := qualitytest.WriteWorld(t, follows, events)
	srv := qualitytest.NewServer(t, qualitytest.Config{})

	res, err := replay(context.Background(), newClient(1, 10*time.Second), replayOptions{URL: srv.URL, Data: dir, SendOptions: recclient.SendOptions{Batch: 3, Concurrency: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := srv.Events(), qualitytest.Expected(follows, events); !qualitytest.Equal(got, want) {
		t.Errorf("server received\n%v\nwant\n%v", got, want)
	}
	var sizes []int
	for _, b := range srv.Batches() {
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
	dir := qualitytest.WriteWorld(t, follows, events)

	for name, tc := range map[string]struct {
		concurrency, batch int
	}{
		"one sender":    {1, 16},
		"three senders": {3, 16},
		"batch of one":  {4, 1},
	} {
		t.Run(name, func(t *testing.T) {
			srv := qualitytest.NewServer(t, qualitytest.Config{})
			res, err := replay(context.Background(), newClient(tc.concurrency, 10*time.Second),
				replayOptions{URL: srv.URL, Data: dir, SendOptions: recclient.SendOptions{Batch: tc.batch, Concurrency: tc.concurrency}})
			if err != nil {
				t.Fatal(err)
			}
			got, want := srv.Events(), qualitytest.Expected(follows, events)
			if len(got) != len(want) || res.Follows+res.Events != len(want) {
				t.Fatalf("server received %d events, result counts %d, want %d", len(got), res.Follows+res.Events, len(want))
			}
			for _, b := range srv.Batches() {
				if len(b) > tc.batch {
					t.Errorf("a batch of %d events, at most %d allowed", len(b), tc.batch)
				}
			}
			if d := qualitytest.DiffByUser(got, want); d != "" {
				t.Errorf("a user's events arrived out of order: %s", d)
			}
		})
	}
}

func TestReplayBounds(t *testing.T) {
	events := testLog(100, 3)
	dir := qualitytest.WriteWorld(t, []dataset.FollowEdge{{User: "u0", Author: "a0"}}, events)

	t.Run("max events", func(t *testing.T) {
		srv := qualitytest.NewServer(t, qualitytest.Config{})
		res, err := replay(context.Background(), newClient(1, 10*time.Second),
			replayOptions{URL: srv.URL, Data: dir, SendOptions: recclient.SendOptions{Concurrency: 1}, MaxEvents: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := srv.Events(), qualitytest.Expected([]dataset.FollowEdge{{User: "u0", Author: "a0"}}, events[:10]); !qualitytest.Equal(got, want) {
			t.Errorf("server received %d events, want the follow and the first 10", len(got))
		}
		if res.Follows != 1 || res.Events != 10 {
			t.Errorf("result %+v, want 1 follow and 10 events", res)
		}
	})
	t.Run("body bytes", func(t *testing.T) {
		srv := qualitytest.NewServer(t, qualitytest.Config{})
		const maxBody = 1024
		_, err := replay(context.Background(), newClient(2, 10*time.Second),
			replayOptions{URL: srv.URL, Data: dir, SendOptions: recclient.SendOptions{Concurrency: 2, MaxBody: maxBody}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(srv.Events()); n != 101 {
			t.Errorf("server received %d events, want 101", n)
		}
		if n := len(srv.Batches()); n <= 2 {
			t.Errorf("%d batches: the byte bound did not split the two senders' batches", n)
		}
		for _, n := range srv.BodySizes() {
			if n > maxBody {
				t.Errorf("a body of %d bytes, at most %d allowed", n, maxBody)
			}
		}
	})
}

func TestReplayStopsOnRefusalWithTheServersReason(t *testing.T) {
	dir := qualitytest.WriteWorld(t, nil, testLog(50, 1))
	const reason = `events[3]: type "click" needs user and item`
	srv := qualitytest.NewServer(t, qualitytest.Config{Refuse: func(batch int, _ []qualitytest.Event) (int, string) {
		if batch == 2 {
			return http.StatusBadRequest, reason
		}
		return 0, ""
	}})
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
	if n := len(srv.Events()); n != 20 {
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
	srv := qualitytest.NewServer(t, qualitytest.Config{})
	res, err := replay(context.Background(), newClient(2, 10*time.Second), replayOptions{URL: srv.URL, Data: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Events()); res.Follows != s.Follows || res.Events != s.Events || got != s.Follows+s.Events {
		t.Errorf("replayed %d follows and %d events, server got %d; the world has %d and %d",
			res.Follows, res.Events, got, s.Follows, s.Events)
	}
}

func TestReplayOfMovieLensRatings(t *testing.T) {
	// Out of time order, as MovieLens files are; user 1 rated m2 and m3 in
	// the same second.
	ratings := "userId,movieId,rating,timestamp\n" +
		"1,m1,5.0,1000000030\n" +
		"2,m4,4.5,1000000005\n" +
		"1,m2,3.5,1000000010\n" +
		"3,m2,0.5,1000000040\n" +
		"1,m3,4.0,1000000010\n" +
		"2,m1,2.0,1000000020\n"
	path := filepath.Join(t.TempDir(), "ratings.csv")
	if err := os.WriteFile(path, []byte(ratings), 0o644); err != nil {
		t.Fatal(err)
	}
	// Every rating is an impression and a click at its time, and a like at
	// 4 stars and up; the log is in time order, ties in file order.
	rated := func(user, item string, sec int64, types ...string) []qualitytest.Event {
		var out []qualitytest.Event
		for _, typ := range types {
			out = append(out, qualitytest.Event{User: user, Item: item, Type: typ, Time: time.Unix(1000000000+sec, 0)})
		}
		return out
	}
	want := slices.Concat(
		rated("2", "m4", 5, "impression", "click", "like"),
		rated("1", "m2", 10, "impression", "click"),
		rated("1", "m3", 10, "impression", "click", "like"),
		rated("2", "m1", 20, "impression", "click"),
		rated("1", "m1", 30, "impression", "click", "like"),
		rated("3", "m2", 40, "impression", "click"),
	)

	t.Run("every rating", func(t *testing.T) {
		srv := qualitytest.NewServer(t, qualitytest.Config{})
		var stdout, stderr strings.Builder
		err := run(context.Background(), []string{"replay", "-url", srv.URL, "-movielens", path, "-batch", "2", "-concurrency", "2"}, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		got := srv.Events()
		if len(got) != len(want) {
			t.Errorf("server received %d events, want %d", len(got), len(want))
		}
		if d := qualitytest.DiffByUser(got, want); d != "" {
			t.Errorf("the ratings' events did not arrive in time order per user: %s", d)
		}
		if report := fmt.Sprintf("replay: follows 0, events %d, total %d in ", len(want), len(want)); !strings.HasPrefix(stdout.String(), report) {
			t.Errorf("report %q, want it to start %q", stdout.String(), report)
		}
	})
	t.Run("max events", func(t *testing.T) {
		srv := qualitytest.NewServer(t, qualitytest.Config{})
		res, err := replay(context.Background(), newClient(1, 10*time.Second),
			replayOptions{URL: srv.URL, MovieLens: path, SendOptions: recclient.SendOptions{Concurrency: 1}, MaxEvents: 4})
		if err != nil {
			t.Fatal(err)
		}
		// One sender keeps the log's order across users too.
		if got := srv.Events(); !qualitytest.Equal(got, want[:4]) || res.Events != 4 {
			t.Errorf("server received %v (%d counted), want the first 4 events in time order %v", got, res.Events, want[:4])
		}
	})
	t.Run("one log only", func(t *testing.T) {
		var stdout, stderr strings.Builder
		err := run(context.Background(), []string{"replay", "-movielens", path, "-data", t.TempDir()}, &stdout, &stderr)
		if want := "give exactly one of -data and -movielens"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want %q", err, want)
		}
	})
}

// With -token (or $RECPIPELINE_EVENTS_TOKEN), replay sends the events
// token a pipeline's frontend asks for; without it such a frontend refuses
// the first batch.
func TestReplaySendsTheEventsToken(t *testing.T) {
	dir := qualitytest.WriteWorld(t, nil, testLog(20, 2))
	srv := qualitytest.NewServer(t, qualitytest.Config{})
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error":"POST /v1/events needs the pipeline's events token"}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)

	var stdout, stderr strings.Builder
	t.Setenv(config.EventsTokenEnv, "")
	if err := run(context.Background(), []string{"replay", "-url", guarded.URL, "-data", dir}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("replay without the token: %v, want the 401", err)
	}
	if err := run(context.Background(), []string{"replay", "-url", guarded.URL, "-data", dir, "-token", "s3cret"}, &stdout, &stderr); err != nil {
		t.Errorf("replay with -token: %v", err)
	}
	t.Setenv(config.EventsTokenEnv, "s3cret")
	if err := run(context.Background(), []string{"replay", "-url", guarded.URL, "-data", dir}, &stdout, &stderr); err != nil {
		t.Errorf("replay with $%s: %v", config.EventsTokenEnv, err)
	}
	if n := len(srv.Events()); n != 40 {
		t.Errorf("the server got %d events, want the 20 of each of the two runs with the token", n)
	}
}
