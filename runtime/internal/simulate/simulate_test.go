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

package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// plantedWorld is a world of 100 users and 10 items whose true
// probabilities are planted by hand: item i is clicked with
// 0.04·(i+1), halved for the users from 50 on; a click leads to a like,
// comment or share with 0.5, 0.2 and 0.1; no click to a see less with
// 0.3 for the items from 5 on and 0.02 before.
type plantedWorld struct{}

func (plantedWorld) NumUsers() int { return 100 }
func (plantedWorld) NumItems() int { return 10 }
func (plantedWorld) TrueProbabilities(u, i int) synth.Probabilities {
	click := 0.04 * float64(i+1)
	if u >= 50 {
		click /= 2
	}
	seeLess := 0.02
	if i >= 5 {
		seeLess = 0.3
	}
	return synth.Probabilities{Click: click, Like: 0.5 * click, Comment: 0.2 * click, Share: 0.1 * click, SeeLess: (1 - click) * seeLess}
}

// served is one list the fake recommender answered.
type served struct {
	user, arm string
	items     []string
}

// fakeRec is a recserve whose lists and arms are decided by pick, given
// the number of the request, and which refuses the events POST number k
// with the code refuse(k) when that is not 0; it records what it served.
type fakeRec struct {
	*qualitytest.Server
	mu     sync.Mutex
	served []served
}

func newFakeRec(t *testing.T, pick func(k int, user string, n int) qualitytest.Reply, refuse func(batch int) int) *fakeRec {
	f := &fakeRec{}
	var asked atomic.Int64
	cfg := qualitytest.Config{Answer: func(user string, n int, _ []qualitytest.Event) qualitytest.Reply {
		r := pick(int(asked.Add(1)-1), user, n)
		if r.Code == 0 {
			ids := make([]string, len(r.Items))
			for j, it := range r.Items {
				ids[j] = it.ID
			}
			f.mu.Lock()
			f.served = append(f.served, served{user: user, arm: r.Arm, items: ids})
			f.mu.Unlock()
		}
		return r
	}}
	if refuse != nil {
		var posts atomic.Int64
		cfg.Refuse = func(int, []qualitytest.Event) (int, string) {
			if code := refuse(int(posts.Add(1) - 1)); code != 0 {
				return code, "refused by the test"
			}
			return 0, ""
		}
	}
	f.Server = qualitytest.NewServer(t, cfg)
	return f
}

func items(ids ...int) []server.Item {
	out := make([]server.Item, len(ids))
	for j, i := range ids {
		out[j] = server.Item{ID: synth.ItemID(i), Author: "a" + fmt.Sprint(i)}
	}
	return out
}

func run(t *testing.T, f *fakeRec, o Options) (Summary, error) {
	t.Helper()
	if err := o.Default(nil, plantedWorld{}.NumUsers()); err != nil {
		t.Fatal(err)
	}
	h := HTTP{Client: f.Client(), Base: f.URL}
	return Run(context.Background(), h, h, plantedWorld{}, o)
}

// TestEventsAtTrueRates checks that the events drawn per impression match
// the world's true probabilities: each type's count over the impressions
// of each arm within 4.5 standard deviations of its expectation, the
// expectation summed from the lists actually served.
func TestEventsAtTrueRates(t *testing.T) {
	for name, tc := range map[string]struct {
		viewed int
		// canary's list; control serves items 0..4.
		canary []int
	}{
		"whole lists":             {canary: []int{9, 8, 7, 6, 5}},
		"the top two items":       {viewed: 2, canary: []int{9, 8, 7, 6, 5}},
		"an item served twice":    {canary: []int{9, 9, 0}},
		"high and low click rate": {canary: []int{9, 0, 9, 0, 9, 0}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRec(t, func(_ int, user string, _ int) qualitytest.Reply {
				u, _ := synth.ParseID('u', user)
				if u%2 == 1 {
					return qualitytest.Reply{Arm: "canary", Items: items(tc.canary...)}
				}
				return qualitytest.Reply{Arm: "control", Items: items(0, 1, 2, 3, 4)}
			}, nil)
			sum, err := run(t, f, Options{Users: 100, Requests: 3000, Rate: -1, Concurrency: 4, Viewed: tc.viewed, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			if sum.Requests != 3000 || sum.Failed != 0 || sum.UnknownItems != 0 {
				t.Fatalf("requests %d, failed %d, unknown items %d; want 3000, 0, 0", sum.Requests, sum.Failed, sum.UnknownItems)
			}
			type want struct {
				impressions     int
				mean, variance  [numTypes]float64
				value, requests float64
			}
			exp := map[string]*want{"control": {}, "canary": {}}
			w := synth.DefaultWeights()
			for _, s := range f.served {
				u, _ := synth.ParseID('u', s.user)
				e := exp[s.arm]
				e.requests++
				shown := s.items
				if tc.viewed > 0 {
					shown = shown[:min(tc.viewed, len(shown))]
				}
				for _, id := range shown {
					i, _ := synth.ParseID('i', id)
					p := plantedWorld{}.TrueProbabilities(u, i)
					e.impressions++
					e.value += trueValue(p, w)
					for _, typ := range Engagements {
						e.mean[typ] += p.Of(typ)
						e.variance[typ] += p.Of(typ) * (1 - p.Of(typ))
					}
				}
			}
			for arm, e := range exp {
				got := sum.Arms[arm]
				if float64(got.Requests) != e.requests || got.Impressions != e.impressions {
					t.Errorf("%s: %d requests and %d impressions, want the %g and %d served", arm, got.Requests, got.Impressions, e.requests, e.impressions)
				}
				if math.Abs(got.TrueValue-e.value/float64(e.impressions)) > 1e-9 {
					t.Errorf("%s: true value %g, want %g", arm, got.TrueValue, e.value/float64(e.impressions))
				}
				for _, typ := range Engagements {
					n := float64(got.Events[typ.String()])
					if z := (n - e.mean[typ]) / math.Sqrt(e.variance[typ]); math.Abs(z) > 4.5 {
						t.Errorf("%s: %.0f %s events, expected %.1f ± %.1f (z = %.1f)", arm, n, typ, e.mean[typ], math.Sqrt(e.variance[typ]), z)
					}
					if r := got.Rates[typ.String()]; math.Abs(r-n/float64(got.Impressions)) > 1e-12 {
						t.Errorf("%s: %s rate %g, want %g per impression", arm, typ, r, n/float64(got.Impressions))
					}
				}
				// The objective is consistent with the rates and near its
				// expectation: within 4.5 times Σ|w|·sd(rate), which bounds
				// its standard deviation whatever the events' correlations.
				var v, sd float64
				for typ, x := range w {
					v += x * got.Rates[typ.String()]
					sd += math.Abs(x) * math.Sqrt(e.variance[typ]) / float64(e.impressions)
				}
				if math.Abs(got.Value-v) > 1e-12 || math.Abs(got.Value-got.TrueValue) > 4.5*sd {
					t.Errorf("%s: value %g, want Σ w·rate = %g, within %g of the true value %g", arm, got.Value, v, 4.5*sd, got.TrueValue)
				}
			}
			checkPosted(t, f.Events(), sum)
		})
	}
}

// checkPosted checks that what the server was posted is what the summary
// counts, and that engagements are consistent: each follows its item's
// impression, a like, comment or share follows a click, a see less comes
// without one.
func checkPosted(t *testing.T, posted []qualitytest.Event, sum Summary) {
	t.Helper()
	byType := map[string]int{}
	type pair struct{ user, item string }
	var last pair
	seen := map[string]bool{}
	for k, e := range posted {
		byType[e.Type]++
		p := pair{e.User, e.Item}
		if e.Type == "impression" {
			last, seen = p, map[string]bool{}
			continue
		}
		if p != last {
			t.Fatalf("event %d, %v, does not follow its impression", k, e)
		}
		switch e.Type {
		case "like", "comment", "share":
			if !seen["click"] {
				t.Fatalf("event %d, %v, without a click", k, e)
			}
		case "see_less":
			if seen["click"] {
				t.Fatalf("event %d, %v, after a click", k, e)
			}
		}
		seen[e.Type] = true
	}
	if byType["impression"] != sum.Total.Impressions {
		t.Errorf("%d impressions posted, the summary counts %d", byType["impression"], sum.Total.Impressions)
	}
	for _, typ := range Engagements {
		if byType[typ.String()] != sum.Total.Events[typ.String()] {
			t.Errorf("%d %s posted, the summary counts %d", byType[typ.String()], typ, sum.Total.Events[typ.String()])
		}
	}
}

// TestAttributionByAnswer checks that lists are counted for the arm their
// answer names, whatever the user: the fake puts every third request in
// canary, so that each user is served by both arms.
func TestAttributionByAnswer(t *testing.T) {
	for name, tc := range map[string]struct {
		arm  func(k int) string
		want map[string]int // requests per arm
	}{
		"two arms": {arm: func(k int) string {
			if k%3 == 2 {
				return "canary"
			}
			return "control"
		}, want: map[string]int{"control": 200, "canary": 100}},
		"no experiments": {arm: func(int) string { return "" }, want: map[string]int{NoArm: 300}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRec(t, func(k int, _ string, _ int) qualitytest.Reply {
				arm := tc.arm(k)
				if arm == "canary" {
					// Only canary serves items 5 and 6.
					return qualitytest.Reply{Arm: arm, Items: items(5, 6)}
				}
				return qualitytest.Reply{Arm: arm, Items: items(0, 1, 2)}
			}, nil)
			sum, err := run(t, f, Options{Users: 20, Requests: 300, Rate: -1, Concurrency: 1, Seed: 3})
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Arms) != len(tc.want) {
				t.Errorf("arms %v, want %v", sum.Arms, tc.want)
			}
			for arm, n := range tc.want {
				a := sum.Arms[arm]
				perList := 3
				if arm == "canary" {
					perList = 2
				}
				if a.Requests != n || a.Impressions != perList*n || a.Revisions["r1"] != n {
					t.Errorf("%s: %d requests, %d impressions, revisions %v; want %d, %d, r1: %d", arm, a.Requests, a.Impressions, a.Revisions, n, perList*n, n)
				}
			}
			// Canary's items earn canary's events: the events of items 5
			// and 6 posted are canary's.
			var canaryEvents int
			for _, e := range f.Events() {
				if e.Type != "impression" && (e.Item == "i5" || e.Item == "i6") {
					canaryEvents++
				}
			}
			var counted int
			for _, n := range sum.Arms["canary"].Events {
				counted += n
			}
			if counted != canaryEvents {
				t.Errorf("canary counts %d events, the server was posted %d on canary's items", counted, canaryEvents)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		listFails func(k int) bool // answer 503
		refuse    func(post int) int
		maxFailed int
		// wantLists and wantPosts are the failures expected, out of 200
		// requests.
		wantLists, wantPosts int
		wantErr              bool
		wantLabels           []string
	}{
		"none": {},
		"lists fail": {listFails: func(k int) bool { return k%10 == 0 },
			wantLists: 20, wantErr: true, wantLabels: []string{"20 lists 503, the first: server answered 503"}},
		"within the allowance": {listFails: func(k int) bool { return k%10 == 0 }, maxFailed: 20, wantLists: 20},
		"just over the allowance": {listFails: func(k int) bool { return k%10 == 0 }, maxFailed: 19,
			wantLists: 20, wantErr: true},
		"event posts fail": {refuse: func(post int) int {
			if post < 5 {
				return http.StatusUnauthorized
			}
			return 0
		}, wantPosts: 5, wantErr: true, wantLabels: []string{"5 events 401, the first: server answered 401 Unauthorized: refused by the test"}},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeRec(t, func(k int, _ string, _ int) qualitytest.Reply {
				if tc.listFails != nil && tc.listFails(k) {
					return qualitytest.Reply{Code: http.StatusServiceUnavailable, Reason: "no config loaded yet"}
				}
				return qualitytest.Reply{Arm: "control", Items: items(0, 1)}
			}, tc.refuse)
			sum, err := run(t, f, Options{Users: 10, Requests: 200, Rate: -1, Concurrency: 1, MaxFailed: tc.maxFailed})
			if sum.Requests != 200 || sum.FailedLists != tc.wantLists || sum.FailedPosts != tc.wantPosts || sum.Failed != tc.wantLists+tc.wantPosts {
				t.Errorf("requests %d, failed %d (%d lists, %d posts); want 200, %d lists and %d posts",
					sum.Requests, sum.Failed, sum.FailedLists, sum.FailedPosts, tc.wantLists, tc.wantPosts)
			}
			if tc.wantErr != errors.Is(err, ErrTooManyFailed) {
				t.Errorf("error %v, want ErrTooManyFailed: %t", err, tc.wantErr)
			}
			if !tc.wantErr && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if a := sum.Arms["control"]; a.Requests != 200-tc.wantLists || a.FailedPosts != tc.wantPosts || a.Impressions != 2*(200-tc.wantLists-tc.wantPosts) {
				t.Errorf("control: %d requests, %d failed posts, %d impressions: the failed posts' impressions must not count", a.Requests, a.FailedPosts, a.Impressions)
			}
			var text bytes.Buffer
			sum.WriteText(&text)
			for _, l := range tc.wantLabels {
				if !strings.Contains(text.String(), l) {
					t.Errorf("report does not say %q:\n%s", l, text.String())
				}
			}
		})
	}
}

func TestUnreachableServerFails(t *testing.T) {
	o := Options{Users: 10, Requests: 5, Rate: -1, Concurrency: 2}
	if err := o.Default(nil, 100); err != nil {
		t.Fatal(err)
	}
	h := HTTP{Client: &http.Client{Timeout: time.Second}, Base: "http://127.0.0.1:1"}
	sum, err := Run(context.Background(), h, h, plantedWorld{}, o)
	if !errors.Is(err, ErrTooManyFailed) || sum.FailedLists != 5 || sum.Failures["lists error"] != 5 {
		t.Errorf("error %v, failures %v; want ErrTooManyFailed and 5 lists error", err, sum.Failures)
	}
}

func TestUnknownItemsAreSkipped(t *testing.T) {
	f := newFakeRec(t, func(int, string, int) qualitytest.Reply {
		// i10 is past the world's 10 items; x3 and i03 are not item IDs.
		r := qualitytest.Reply{Items: items(1, 10, 2)}
		r.Items = append(r.Items, server.Item{ID: "x3"}, server.Item{ID: "i03"})
		return r
	}, nil)
	sum, err := run(t, f, Options{Users: 10, Requests: 40, Rate: -1, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if sum.UnknownItems != 3*40 || sum.Total.Impressions != 2*40 {
		t.Errorf("%d unknown items and %d impressions, want %d and %d", sum.UnknownItems, sum.Total.Impressions, 3*40, 2*40)
	}
	for _, e := range f.Events() {
		if e.Item != "i1" && e.Item != "i2" {
			t.Fatalf("posted %v, an item the world does not know", e)
		}
	}
}

// TestSeededPopulation checks that the users asked for depend on the seed
// alone, whatever the concurrency, and stay among the first Users users.
func TestSeededPopulation(t *testing.T) {
	asked := func(seed uint64, concurrency int) map[string]int {
		f := newFakeRec(t, func(int, string, int) qualitytest.Reply { return qualitytest.Reply{Items: items(0)} }, nil)
		if _, err := run(t, f, Options{Users: 30, Requests: 400, Rate: -1, Concurrency: concurrency, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, u := range f.Asked() {
			m[u]++
		}
		return m
	}
	a, b, c := asked(5, 1), asked(5, 8), asked(6, 1)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 5 asked %v with one worker and %v with eight", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 5 and 6 asked for the same users %v", a)
	}
	if len(a) != 30 {
		t.Errorf("asked for %d distinct users, want all 30 of the population", len(a))
	}
	for u := range a {
		if i, ok := synth.ParseID('u', u); !ok || i >= 30 {
			t.Errorf("asked for %q, not one of the first 30 users", u)
		}
	}
}

func TestPacedRun(t *testing.T) {
	f := newFakeRec(t, func(int, string, int) qualitytest.Reply { return qualitytest.Reply{Items: items(0)} }, nil)
	var lines []string
	sum, err := run(t, f, Options{Users: 10, Rate: 200, Duration: 300 * time.Millisecond, Concurrency: 2,
		Report: 100 * time.Millisecond, Progress: func(s Summary) { lines = append(lines, s.Line()) }})
	if err != nil {
		t.Fatal(err)
	}
	// 200/s for 0.3 s is 60 requests, the first at once.
	if sum.Requests != 60 {
		t.Errorf("%d requests at 200/s in 300ms, want 60", sum.Requests)
	}
	if len(lines) == 0 || !strings.Contains(lines[0], NoArm+": ") {
		t.Errorf("progress lines %q, want some, with the arm's figures", lines)
	}
}

func TestOptionsDefault(t *testing.T) {
	names := recclient.Names{"Users": "-users", "Duration": "-duration", "Requests": "-requests"}
	for name, tc := range map[string]struct {
		o       Options
		wantErr string
	}{
		"defaults":              {o: Options{Users: 100, Duration: time.Second}},
		"more users than world": {o: Options{Users: 101, Duration: time.Second}, wantErr: "-users 101 must be between 1 and the world's 100 users"},
		"the default 2000 users too": {o: Options{Duration: time.Second},
			wantErr: "-users 2000 must be between 1 and the world's 100 users"},
		"unbounded":       {o: Options{Users: 10}, wantErr: "give -duration or -requests"},
		"not an event":    {o: Options{Users: 10, Requests: 1, Weights: synth.Weights{dataset.EventType(42): 1}}, wantErr: "EventType(42) is not an event type the users are simulated to post"},
		"a follow weight": {o: Options{Users: 10, Requests: 1, Weights: synth.Weights{dataset.Follow: 1}}, wantErr: "follow is not an event type the users are simulated to post"},
		"negative -max":   {o: Options{Users: 10, Requests: 1, MaxFailed: -1}, wantErr: "MaxFailed -1 must not be negative"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.o.Default(names, 100)
			if tc.wantErr == "" {
				if err != nil || tc.o.Rate != 50 || tc.o.N != 25 || tc.o.Concurrency != 4 || tc.o.Weights[dataset.Like] != 2 {
					t.Errorf("Default: %v, options %+v; want the documented defaults", err, tc.o)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			}
		})
	}
}

// TestEngageMarginals checks the draw itself against exact expectations,
// without a server: 200,000 impressions of each case.
func TestEngageMarginals(t *testing.T) {
	for name, p := range map[string]synth.Probabilities{
		"typical":     {Click: 0.1, Like: 0.04, Comment: 0.01, Share: 0.005, SeeLess: 0.02},
		"always":      {Click: 1, Like: 1, Comment: 0.5, Share: 0, SeeLess: 0},
		"never click": {Click: 0, SeeLess: 0.25},
	} {
		t.Run(name, func(t *testing.T) {
			const n = 200000
			rng := rand.New(rand.NewPCG(1, 2))
			var counts [numTypes]float64
			for range n {
				for _, typ := range engage(p, rng) {
					counts[typ]++
				}
			}
			for _, typ := range Engagements {
				q := p.Of(typ)
				sd := math.Sqrt(n * q * (1 - q))
				if math.Abs(counts[typ]-n*q) > 4.5*sd+1e-9 {
					t.Errorf("%s: %.0f in %d, expected %.0f ± %.1f", typ, counts[typ], n, n*q, sd)
				}
			}
		})
	}
}

func TestSummaryJSON(t *testing.T) {
	f := newFakeRec(t, func(int, string, int) qualitytest.Reply {
		return qualitytest.Reply{Arm: "canary", Items: items(9)}
	}, nil)
	sum, err := run(t, f, Options{Users: 10, Requests: 10, Rate: -1, Weights: synth.Weights{dataset.Click: 1}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Failed  int                `json:"failed"`
		Weights map[string]float64 `json:"weights"`
		Arms    map[string]struct {
			Impressions int                `json:"impressions"`
			Rates       map[string]float64 `json:"rates"`
			Value       float64            `json:"value"`
		} `json:"arms"`
	}
	if err := json.Unmarshal(doc, &back); err != nil {
		t.Fatal(err)
	}
	c := back.Arms["canary"]
	if back.Weights["click"] != 1 || c.Impressions != 10 || c.Value != c.Rates["click"] {
		t.Errorf("JSON %s: want weights click=1, canary with 10 impressions and value = click rate", doc)
	}
}
