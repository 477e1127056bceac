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
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/dataset"
)

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

func TestSplitLogFollowsRectrainsDefinitions(t *testing.T) {
	const (
		imp   = dataset.Impression
		click = dataset.Click
	)
	// The log spans 0..100 s (the last row names an item outside the
	// catalog, which rectrain leaves out), so the split is at 90 s.
	events := []dataset.Event{
		ev(0, "u1", imp, "i1"),
		ev(1, "u1", click, "i1"), // i1: a positive train impression
		ev(2, "u2", imp, "i1"),
		ev(3, "u2", dataset.Like, "i1"), // i1: another
		ev(4, "u2", imp, "i2"),
		ev(5, "u2", dataset.SeeLess, "i2"), // not a positive engagement
		ev(6, "u3", imp, "i3"),
		ev(50, "u3", imp, "x9"),   // outside the catalog: not seen
		ev(89.5, "u1", imp, "i2"), // second 89: train
		ev(90, "u1", click, "i2"), // labels u1's train impression of i2
		ev(90, "u1", imp, "i4"),
		ev(91, "u1", dataset.Like, "i4"), // u1: i4 relevant
		ev(92, "u2", click, "i5"),        // no impression: counts for nothing
		ev(93, "u2", imp, "i6"),
		ev(94, "u2", dataset.SeeLess, "i6"), // not positive
		ev(95, "u3", imp, "i3"),
		ev(96, "u3", dataset.Comment, "i3"), // shown to u3 before the split
		ev(97, "u3", imp, "i7"),
		ev(98, "u3", dataset.Share, "i7"), // u3: i7 relevant
		ev(98, "u4", imp, "i8"),
		ev(99, "u4", click, "i8"),
		ev(99, "u4", dataset.Like, "i8"), // u4: i8 relevant, once
		ev(99, "u4", imp, "x9"),
		ev(99, "u4", click, "x9"), // outside the catalog
		ev(100, "u5", dataset.Follow, "a1"),
		ev(120, "u6", imp, "x9"), // outside the catalog: not the log's end
	}
	dir := writeWorld(t, nil, events)
	writeCatalog(t, dir, []string{"i1", "i2", "i3", "i4", "i5", "i6", "i7", "i8"})
	l, err := loadWorldLog(dir, dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := splitLog(l, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(sp.split, 0).UTC(), t0.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("split at %s, want %s", got, want)
	}
	if sp.trainRows != 9 {
		t.Errorf("%d train rows, want the 9 before 90 s", sp.trainRows)
	}
	ids := func(items []int32) []string {
		var out []string
		for _, i := range items {
			out = append(out, l.items.ids[i])
		}
		slices.Sort(out)
		return out
	}
	relevant := map[string][]string{}
	for u, items := range sp.relevant {
		relevant[l.users.ids[u]] = ids(slices.Collect(maps.Keys(items)))
	}
	wantRelevant := map[string][]string{"u1": {"i4"}, "u3": {"i7"}, "u4": {"i8"}}
	if fmt.Sprint(relevant) != fmt.Sprint(wantRelevant) {
		t.Errorf("relevant items %v, want %v", relevant, wantRelevant)
	}
	var users []string
	for _, u := range sp.testUsers(l, 0, 1) {
		users = append(users, l.users.ids[u])
	}
	if want := []string{"u1", "u3", "u4"}; !slices.Equal(users, want) {
		t.Errorf("test users %v, want %v", users, want)
	}
	seen := map[string][]string{}
	for u, items := range sp.seen {
		if len(items) > 0 {
			seen[l.users.ids[u]] = ids(items)
		}
	}
	wantSeen := map[string][]string{"u1": {"i1", "i2"}, "u2": {"i1", "i2"}, "u3": {"i3"}}
	if fmt.Sprint(seen) != fmt.Sprint(wantSeen) {
		t.Errorf("items shown before the split %v, want %v", seen, wantSeen)
	}
	// i2's train impression counts: rectrain labels the latest impression,
	// and the click at 90 s follows u1's impression at 89.5 s.
	if want := []int{2, 1, 0, 0, 0, 0, 0, 0}; !slices.Equal(sp.popularity, want) {
		t.Errorf("popularity %v, want %v", sp.popularity, want)
	}
}

func TestSplitSecond(t *testing.T) {
	events := []dataset.Event{ev(0, "u1", dataset.Impression, "i1"), ev(100.9, "u1", dataset.Impression, "i1")}
	l := &evalLog{catalog: 1}
	l.items.of("i1")
	for i := range events {
		l.add(&events[i])
	}
	for name, tc := range map[string]struct {
		frac float64
		want int64
	}{
		"a tenth":                      {0.1, 90},
		"a quarter":                    {0.25, 75},
		"12.5 s rounds away from zero": {0.125, 87},
		"a tiny fraction rounds to 0":  {0.001, 100},
	} {
		t.Run(name, func(t *testing.T) {
			sp, err := splitLog(l, tc.frac)
			if err != nil {
				t.Fatal(err)
			}
			if got := sp.split - t0.Unix(); got != tc.want {
				t.Errorf("split at %d s, want %d s (the span is 0..100 s in whole seconds)", got, tc.want)
			}
		})
	}
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

// train returns the events before the split, computed from the times
// alone: the log spans 0..1000 s, so the split is at 900 s.
func (w *evalWorld) train() []dataset.Event {
	split := t0.Add(900 * time.Second)
	var out []dataset.Event
	for _, e := range w.events {
		if e.Time.Before(split) {
			out = append(out, e)
		}
	}
	return out
}

// relevantIDs are each test user's relevant items, by ID.
func (w *evalWorld) relevantIDs(t *testing.T) map[string][]string {
	t.Helper()
	l, err := loadWorldLog(w.dir, dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := splitLog(l, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for u, items := range sp.relevant {
		for i := range items {
			out[l.users.ids[u]] = append(out[l.users.ids[u]], l.items.ids[i])
		}
		slices.Sort(out[l.users.ids[u]])
	}
	return out
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

// byUser groups events by user, keeping their order: the replay keeps
// each user's events in order, not the log's across users.
func byUser(evs []postedEvent) map[string][]string {
	m := map[string][]string{}
	for _, e := range evs {
		m[e.User] = append(m[e.User], fmt.Sprintf("%s %s %s %s", e.Item, e.Author, e.Type, e.Time.Format(time.RFC3339Nano)))
	}
	return m
}

// runEvalCmd runs recbench eval with args and returns stdout and the JSON
// report.
func runEvalCmd(t *testing.T, args ...string) (string, evalReport, error) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "eval.json")
	var stdout, stderr strings.Builder
	err := run(context.Background(), append([]string{"eval", "-json", jsonFile}, args...), &stdout, &stderr)
	var rep evalReport
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

func TestEvalOfAnOracleBeatsPopularity(t *testing.T) {
	w := newEvalWorld(t)
	relevant := w.relevantIDs(t)
	srv := newEvalServer(t, func(user string, n int, _ []postedEvent) ([]string, int) {
		// The user's test items first, then filler that is never relevant.
		out := slices.Clone(relevant[user])
		for _, id := range w.items {
			if len(out) < n && !slices.Contains(relevant[user], id) {
				out = append(out, id)
			}
		}
		return out, 0
	})
	stdout, rep, err := runEvalCmd(t, "-url", srv.URL, "-data", w.dir, "-min-ndcg-ratio", "1.5")
	if err != nil {
		t.Fatal(err)
	}
	if rep.TestUsers != len(relevant) || rep.Users != len(relevant) || len(srv.asked) != len(relevant) {
		t.Errorf("%d test users, %d evaluated, %d asked for; want %d", rep.TestUsers, rep.Users, len(srv.asked), len(relevant))
	}
	if rep.Recserve.NDCG10 != 1 || rep.Recserve.Recall100 != 1 || rep.Recserve.MeanLength != 100 {
		t.Errorf("recserve %+v: want NDCG@10 and recall@100 of 1 over lists of 100", rep.Recserve)
	}
	if rep.NDCG10Ratio == nil || *rep.NDCG10Ratio <= 1.5 || rep.Popularity.NDCG10 <= rep.Random.NDCG10 {
		t.Errorf("NDCG@10 recserve %.4f, popularity %.4f, random %.4f: want the oracle well above popularity",
			rep.Recserve.NDCG10, rep.Popularity.NDCG10, rep.Random.NDCG10)
	}
	// Replayed: the follows at the log's first time, then the train part
	// at the log's times, and nothing of the test window.
	if got, want := byUser(srv.events), byUser(expected(w.follows, w.train())); !reflect.DeepEqual(got, want) {
		t.Errorf("server was posted\n%v\nwant the follows and train events in order\n%v", got, want)
	}
	for _, want := range []string{"NDCG@10", "recall@100", "precision@10", "coverage@10", "mean list length", "recserve/popularity"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table has no %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "WARNING: recserve answered") {
		t.Errorf("a warning for full lists:\n%s", stdout)
	}
}

func TestEvalOfPopularityEqualsTheBaseline(t *testing.T) {
	w := newEvalWorld(t)
	srv := newEvalServer(t, w.popularAnswer)
	_, rep, err := runEvalCmd(t, "-url", srv.URL, "-data", w.dir, "-concurrency", "2", "-batch", "50", "-min-ndcg-ratio", "1")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recserve != rep.Popularity {
		t.Errorf("a server answering the popular items scored\n%+v\nthe popularity baseline\n%+v", rep.Recserve, rep.Popularity)
	}
	if rep.NDCG10Ratio == nil || *rep.NDCG10Ratio != 1 || rep.Popularity.NDCG10 == 0 {
		t.Errorf("NDCG@10 ratio %v of popularity's %.4f, want 1 of a positive figure", rep.NDCG10Ratio, rep.Popularity.NDCG10)
	}
}

// Lists shorter than -k are scored as they are, with a warning; the NDCG
// gate fails the run only when asked for.
func TestEvalGatesAndWarnsOfShortLists(t *testing.T) {
	w := newEvalWorld(t)
	users := len(w.relevantIDs(t))
	short := func(string, int, []postedEvent) ([]string, int) { return w.items[195:], 0 }
	for name, tc := range map[string]struct {
		args    []string
		wantErr string
	}{
		"no gate":                 {},
		"the gate at 0 is off":    {args: []string{"-min-ndcg-ratio", "0"}},
		"the gate at 0.5 catches": {args: []string{"-min-ndcg-ratio", "0.5"}, wantErr: "below -min-ndcg-ratio 0.5"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newEvalServer(t, short)
			stdout, rep, err := runEvalCmd(t, append([]string{"-url", srv.URL, "-data", w.dir}, tc.args...)...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if rep.Recserve.MeanLength != 5 || rep.ShortLists != users {
				t.Errorf("mean length %g, %d short lists; want the 5 items answered to each of %d users",
					rep.Recserve.MeanLength, rep.ShortLists, users)
			}
			want := fmt.Sprintf("WARNING: recserve answered 5.0 items a list on average, %d of its %d lists fewer than -k 100", users, users)
			if !strings.Contains(stdout, want) || len(rep.Warnings) != 1 {
				t.Errorf("warnings %q, want one; the table does not say %q:\n%s", rep.Warnings, want, stdout)
			}
		})
	}
}

func TestEvalSkipReplayAndSample(t *testing.T) {
	w := newEvalWorld(t)
	srv := newEvalServer(t, w.popularAnswer)
	_, rep, err := runEvalCmd(t, "-url", srv.URL, "-data", w.dir, "-skip-replay", "-users", "3", "-seed", "9")
	if err != nil {
		t.Fatal(err)
	}
	if len(srv.events) != 0 || rep.Replayed != nil {
		t.Errorf("-skip-replay posted %d events", len(srv.events))
	}
	if rep.Users != 3 || rep.TestUsers <= 3 || len(srv.asked) != 3 {
		t.Fatalf("%d of %d test users evaluated, %d asked for; want 3 of more", rep.Users, rep.TestUsers, len(srv.asked))
	}
	first := slices.Sorted(slices.Values(srv.asked))
	srv.asked = nil
	if _, _, err := runEvalCmd(t, "-url", srv.URL, "-data", w.dir, "-skip-replay", "-users", "3", "-seed", "9"); err != nil {
		t.Fatal(err)
	}
	if again := slices.Sorted(slices.Values(srv.asked)); !slices.Equal(first, again) {
		t.Errorf("the same seed sampled %v, then %v", first, again)
	}
}

func TestEvalStopsOnAFailedRequest(t *testing.T) {
	w := newEvalWorld(t)
	relevant := w.relevantIDs(t)
	bad := slices.Sorted(maps.Keys(relevant))[1]
	srv := newEvalServer(t, func(user string, _ int, _ []postedEvent) ([]string, int) {
		if user == bad {
			return nil, http.StatusServiceUnavailable
		}
		return w.items[:10], 0
	})
	_, _, err := runEvalCmd(t, "-url", srv.URL, "-data", w.dir, "-skip-replay")
	if err == nil {
		t.Fatal("eval succeeded although a request failed")
	}
	for _, want := range []string{"user " + bad + ":", "503", "no config loaded yet"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestEvalOfMovieLens(t *testing.T) {
	// u.data: user, movie, rating, time. Ratings of 4 and up are likes.
	// The span is 0..100 s: the split is at 90 s, and only m3 (rated by
	// 2 at 95 s; 1 rated it before) and m4 (by 1 at 100 s) are test items.
	lines := []string{
		"1\tm1\t5\t1000000000",
		"2\tm1\t3\t1000000010",
		"1\tm3\t2\t1000000020",
		"2\tm2\t4\t1000000050",
		"1\tm4\t1\t1000000100",
		"2\tm3\t5\t1000000095",
		"1\tm3\t4\t1000000095",
	}
	path := filepath.Join(t.TempDir(), "u.data")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := newEvalServer(t, func(user string, _ int, _ []postedEvent) ([]string, int) {
		return map[string][]string{"1": {"m4", "m2"}, "2": {"m3", "m4"}}[user], 0
	})
	_, rep, err := runEvalCmd(t, "-url", srv.URL, "-movielens", path)
	if err != nil {
		t.Fatal(err)
	}
	if rep.TestUsers != 2 || rep.CatalogItems != 4 || rep.Recserve.NDCG10 != 1 {
		t.Errorf("%d test users, %d items, NDCG@10 %.4f; want 2, 4 and 1", rep.TestUsers, rep.CatalogItems, rep.Recserve.NDCG10)
	}
	// Train: the first four ratings in time order, as impression, click
	// and, for the likes, like.
	at := func(sec int64) time.Time { return time.Unix(1000000000+sec, 0).UTC() }
	want := map[string][]string{
		"1": {"m1 impression", "m1 click", "m1 like", "m3 impression", "m3 click"},
		"2": {"m1 impression", "m1 click", "m2 impression", "m2 click", "m2 like"},
	}
	times := map[string]time.Time{"m1 1": at(0), "m3 1": at(20), "m1 2": at(10), "m2 2": at(50)}
	got := map[string][]string{}
	for _, e := range srv.events {
		got[e.User] = append(got[e.User], e.Item+" "+e.Type)
		if !e.Time.Equal(times[e.Item+" "+e.User]) {
			t.Errorf("%s's %s of %s posted at %s, want the rating's time", e.User, e.Type, e.Item, e.Time)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("posted\n%v\nwant\n%v", got, want)
	}
	// Each user has two unseen movies of four: user 1 saw m1 and m3
	// before the split, user 2 m1 and m2.
	if rep.Random.MeanLength != 2 || rep.Popularity.MeanLength != 2 {
		t.Errorf("random lists of %g items, popular ones of %g; want 2", rep.Random.MeanLength, rep.Popularity.MeanLength)
	}
}
