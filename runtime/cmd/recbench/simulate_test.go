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
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// simulateWorld writes a small world as recgen does: 60 users, 200 items.
func simulateWorld(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := synth.Generate(synth.Config{Users: 60, Items: 200, Events: 500, Seed: 3}).WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// simReport is the part of the -json summary the tests read.
type simReport struct {
	Requests     int `json:"requests"`
	Failed       int `json:"failed"`
	UnknownItems int `json:"unknownItems"`
	Arms         map[string]struct {
		Requests    int                `json:"requests"`
		Impressions int                `json:"impressions"`
		Events      map[string]int     `json:"events"`
		Rates       map[string]float64 `json:"rates"`
		Value       float64            `json:"value"`
		TrueValue   float64            `json:"trueValue"`
	} `json:"arms"`
}

func TestSimulateCommand(t *testing.T) {
	dir := simulateWorld(t)
	world, err := synth.ReadTruth(dir)
	if err != nil {
		t.Fatal(err)
	}
	// canary serves the world's best items for the user, control its
	// worst: canary's true value per impression must come out higher.
	oracle := world.Oracle(synth.DefaultWeights())
	for name, tc := range map[string]struct {
		args      []string
		token     string // the server's events token
		env       string // $RECPIPELINE_EVENTS_TOKEN
		failEvery int    // answer 503 to every failEvery-th list
		wantErr   string
		wantFail  int
	}{
		"two arms":                    {args: []string{"-requests", "120"}},
		"events token from the flag":  {args: []string{"-requests", "40", "-token", "s3cret"}, token: "s3cret"},
		"events token from the env":   {args: []string{"-requests", "40"}, token: "s3cret", env: "s3cret"},
		"events token missing":        {args: []string{"-requests", "40"}, token: "s3cret", wantErr: "40 failed (0 lists, 40 event posts)", wantFail: 40},
		"failed lists fail the run":   {args: []string{"-requests", "100"}, failEvery: 10, wantErr: "at most 0 allowed (-max-failed)", wantFail: 10},
		"failed lists within -max":    {args: []string{"-requests", "100", "-max-failed", "10"}, failEvery: 10, wantFail: 10},
		"failed lists just over -max": {args: []string{"-requests", "100", "-max-failed", "9"}, failEvery: 10, wantErr: "10 failed", wantFail: 10},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(config.EventsTokenEnv, tc.env)
			var mu sync.Mutex
			asked := 0
			srv := qualitytest.NewServer(t, qualitytest.Config{Token: tc.token, Answer: func(user string, n int, _ []qualitytest.Event) qualitytest.Reply {
				mu.Lock()
				asked++
				k := asked
				mu.Unlock()
				if tc.failEvery > 0 && k%tc.failEvery == 0 {
					return qualitytest.Reply{Code: http.StatusServiceUnavailable, Reason: "no config loaded yet"}
				}
				u, ok := synth.ParseID('u', user)
				if !ok || u >= world.NumUsers() || n != 5 {
					t.Errorf("asked for user %q and n=%d; want one of the world's users and 5", user, n)
					return qualitytest.Reply{Code: http.StatusBadRequest}
				}
				ranked := oracle.TopK(u, world.NumItems(), nil)
				arm, pick := "control", ranked[len(ranked)-n:]
				if u%2 == 0 {
					arm, pick = "canary", ranked[:n]
				}
				items := make([]server.Item, len(pick))
				for j, s := range pick {
					items[j] = server.Item{ID: synth.ItemID(s.Item), Author: synth.AuthorID(world.ItemAuthor(s.Item))}
				}
				return qualitytest.Reply{Arm: arm, Items: items}
			}})
			args := append([]string{"simulate", "-world", dir, "-url", srv.URL, "-rate", "0", "-n", "5", "-json", "-report", "0"}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			if tc.wantErr == "" && err != nil {
				t.Fatalf("recbench simulate: %v\n%s", err, stderr.String())
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
			var rep simReport
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("stdout is not one JSON summary: %v\n%s", err, stdout.String())
			}
			if rep.Failed != tc.wantFail {
				t.Errorf("%d failed, want %d", rep.Failed, tc.wantFail)
			}
			if !strings.Contains(stderr.String(), "canary") || !strings.Contains(stderr.String(), "true value") {
				t.Errorf("the table on stderr lacks the arms:\n%s", stderr.String())
			}
			if tc.wantFail > 0 {
				return
			}
			can, ctl := rep.Arms["canary"], rep.Arms["control"]
			if can.Requests+ctl.Requests != rep.Requests || can.Impressions != 5*can.Requests || ctl.Impressions != 5*ctl.Requests {
				t.Errorf("arms %+v do not add up to %d requests of 5 items", rep.Arms, rep.Requests)
			}
			if can.TrueValue <= ctl.TrueValue || can.Rates["click"] <= ctl.Rates["click"] {
				t.Errorf("canary, serving the best items, has true value %g and click rate %g; control, serving the worst, %g and %g",
					can.TrueValue, can.Rates["click"], ctl.TrueValue, ctl.Rates["click"])
			}
			// What was posted is what the summary counts.
			posted := map[string]int{}
			for _, e := range srv.Events() {
				posted[e.Type]++
			}
			for _, typ := range []dataset.EventType{dataset.Impression, dataset.Click, dataset.Like, dataset.SeeLess} {
				counted := can.Events[typ.String()] + ctl.Events[typ.String()]
				if typ == dataset.Impression {
					counted = can.Impressions + ctl.Impressions
				}
				if posted[typ.String()] != counted {
					t.Errorf("%d %s posted, %d counted", posted[typ.String()], typ, counted)
				}
			}
		})
	}
}

func TestSimulateDefaultUsersFitTheWorld(t *testing.T) {
	dir := simulateWorld(t)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(string, int, []qualitytest.Event) qualitytest.Reply {
		return qualitytest.IDs("i1")
	}})
	var stdout, stderr bytes.Buffer
	// The world has 60 users: the default 2000 shrinks to them.
	if err := run(context.Background(), []string{"simulate", "-world", dir, "-url", srv.URL, "-requests", "300", "-rate", "0"}, &stdout, &stderr); err != nil {
		t.Fatalf("recbench simulate: %v\n%s", err, stderr.String())
	}
	users := map[string]bool{}
	for _, u := range srv.Asked() {
		users[u] = true
	}
	if len(users) != 60 {
		t.Errorf("asked for %d distinct users, want the world's 60", len(users))
	}
	if !strings.Contains(stdout.String(), "simulate: 300 requests") || !strings.Contains(stdout.String(), "(none)") {
		t.Errorf("text report:\n%s\nwant 300 requests and the lists without an arm", stdout.String())
	}
	// Asked for more users than the world has, it refuses.
	err := run(context.Background(), []string{"simulate", "-world", dir, "-url", srv.URL, "-requests", "1", "-users", "61"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-users 61 must be between 1 and the world's 60 users") {
		t.Errorf("-users 61: error %v, want one naming the world's 60 users", err)
	}
}

func TestParseWeights(t *testing.T) {
	for name, tc := range map[string]struct {
		in      string
		want    synth.Weights
		wantErr string
	}{
		"several":       {in: "click=1, like=2,see_less=-8", want: synth.Weights{dataset.Click: 1, dataset.Like: 2, dataset.SeeLess: -8}},
		"not a pair":    {in: "click", wantErr: `"click" is not type=weight`},
		"unknown type":  {in: "clicks=1", wantErr: `clicks`},
		"twice":         {in: "click=1,click=2", wantErr: "click is given twice"},
		"not a number":  {in: "like=x", wantErr: "the weight of like must be a finite number"},
		"not finite":    {in: "like=NaN", wantErr: "the weight of like must be a finite number"},
		"empty element": {in: "click=1,", wantErr: `"" is not type=weight`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseWeights(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("parseWeights(%q) error %v, want one saying %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("parseWeights(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			for k, v := range tc.want {
				if math.Abs(got[k]-v) > 0 {
					t.Errorf("weight of %s %g, want %g", k, got[k], v)
				}
			}
		})
	}
}

func TestSimulateLogTime(t *testing.T) {
	dir := simulateWorld(t)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(string, int, []qualitytest.Event) qualitytest.Reply {
		return qualitytest.IDs("i1", "i2")
	}})
	for name, tc := range map[string]struct {
		flag     string
		from, to time.Time
	}{
		// The world's log spans the 30 days from 2025-01-01.
		"log":  {flag: "log", from: time.Date(2025, 1, 31, 0, 0, 0, 0, time.UTC), to: time.Date(2025, 1, 31, 0, 1, 0, 0, time.UTC)},
		"wall": {flag: "wall", from: time.Now().Add(-time.Minute), to: time.Now().Add(time.Minute)},
	} {
		t.Run(name, func(t *testing.T) {
			before := len(srv.Events())
			var stdout, stderr bytes.Buffer
			if err := run(context.Background(), []string{"simulate", "-world", dir, "-url", srv.URL, "-requests", "20", "-rate", "0", "-time", tc.flag}, &stdout, &stderr); err != nil {
				t.Fatalf("recbench simulate: %v\n%s", err, stderr.String())
			}
			evs := srv.Events()[before:]
			if len(evs) < 40 {
				t.Fatalf("%d events posted, want at least the 40 impressions", len(evs))
			}
			for _, e := range evs {
				if e.Time.Before(tc.from) || e.Time.After(tc.to) {
					t.Fatalf("event %v dated outside [%v, %v]", e, tc.from, tc.to)
				}
			}
		})
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"simulate", "-world", dir, "-url", srv.URL, "-requests", "1", "-time", "event"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), `-time "event" must be wall or log`) {
		t.Errorf("-time event: error %v, want one naming the choices", err)
	}
}
