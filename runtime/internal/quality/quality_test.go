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

package quality

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
)

// relevantIDs are each test user's relevant items in w, by ID.
func relevantIDs(t *testing.T, w *qualitytest.World) map[string][]string {
	t.Helper()
	l, err := loadWorldLog(w.Dir, dataset.ReadOptions{Strict: true})
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

// evaluate runs Evaluate on srv with o, on a client of its own.
func evaluate(t *testing.T, srv *qualitytest.Server, o Options) (Report, error) {
	t.Helper()
	o.URL = srv.URL
	return Evaluate(context.Background(), &http.Client{Timeout: 10 * time.Second}, o, io.Discard)
}

func TestEvaluateOfAnOracleBeatsPopularity(t *testing.T) {
	w := qualitytest.NewWorld(t)
	relevant := relevantIDs(t, w)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(user string, n int, _ []qualitytest.Event) qualitytest.Reply {
		// The user's test items first, then filler that is never relevant.
		out := slices.Clone(relevant[user])
		for _, id := range w.Items {
			if len(out) < n && !slices.Contains(relevant[user], id) {
				out = append(out, id)
			}
		}
		return qualitytest.IDs(out...)
	}})
	rep, err := evaluate(t, srv, Options{Data: w.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if asked := srv.Asked(); rep.TestUsers != len(relevant) || rep.Users != len(relevant) || len(asked) != len(relevant) {
		t.Errorf("%d test users, %d evaluated, %d asked for; want %d", rep.TestUsers, rep.Users, len(asked), len(relevant))
	}
	if rep.Recserve.NDCG10 != 1 || rep.Recserve.Recall100 != 1 || rep.Recserve.MeanLength != 100 || rep.ShortLists != 0 {
		t.Errorf("recserve %+v, %d short lists: want NDCG@10 and recall@100 of 1 over lists of 100", rep.Recserve, rep.ShortLists)
	}
	if rep.NDCG10Ratio == nil || *rep.NDCG10Ratio <= 1.5 || rep.Popularity.NDCG10 <= rep.Random.NDCG10 {
		t.Errorf("NDCG@10 recserve %.4f, popularity %.4f, random %.4f: want the oracle well above popularity",
			rep.Recserve.NDCG10, rep.Popularity.NDCG10, rep.Random.NDCG10)
	}
	// Replayed: the follows at the log's first time, then the train part
	// at the log's times, and nothing of the test window.
	if d := qualitytest.DiffByUser(srv.Events(), qualitytest.Expected(w.Follows, w.Train())); d != "" {
		t.Errorf("the server was not posted the follows and train events in order: %s", d)
	}
	if r := rep.Replayed; r == nil || r.Follows != len(w.Follows) || r.Events != len(w.Train()) {
		t.Errorf("replay counted %+v, want %d follows and %d events", r, len(w.Follows), len(w.Train()))
	}
	var text strings.Builder
	rep.WriteText(&text)
	for _, want := range []string{"NDCG@10", "recall@100", "precision@10", "coverage@10", "mean list length", "recserve/popularity"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the table has no %q:\n%s", want, text.String())
		}
	}
	if len(rep.Warnings) > 0 {
		t.Errorf("warnings %q for full lists of 100", rep.Warnings)
	}
}

func TestEvaluateOfPopularityEqualsTheBaseline(t *testing.T) {
	w := qualitytest.NewWorld(t)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: w.PopularAnswer})
	rep, err := evaluate(t, srv, Options{Data: w.Dir, Concurrency: 2, Batch: 50})
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

// Lists shorter than K are scored as they are, with a warning.
func TestEvaluateWarnsOfShortLists(t *testing.T) {
	w := qualitytest.NewWorld(t)
	users := len(relevantIDs(t, w))
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(string, int, []qualitytest.Event) qualitytest.Reply {
		return qualitytest.IDs(w.Items[195:]...)
	}})
	rep, err := evaluate(t, srv, Options{Data: w.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recserve.MeanLength != 5 || rep.ShortLists != users {
		t.Errorf("mean length %g, %d short lists; want the 5 items answered to each of %d users",
			rep.Recserve.MeanLength, rep.ShortLists, users)
	}
	want := fmt.Sprintf("recserve answered 5.0 items a list on average, %d of its %d lists fewer than -k 100", users, users)
	if len(rep.Warnings) != 1 || !strings.HasPrefix(rep.Warnings[0], want) {
		t.Errorf("warnings %q, want one starting %q", rep.Warnings, want)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "WARNING: "+want) {
		t.Errorf("the table does not warn %q:\n%s", want, text.String())
	}
}

func TestEvaluateSkipReplayAndSample(t *testing.T) {
	w := qualitytest.NewWorld(t)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: w.PopularAnswer})
	o := Options{Data: w.Dir, SkipReplay: true, Users: 3, Seed: 9}
	rep, err := evaluate(t, srv, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Events()); n != 0 || rep.Replayed != nil {
		t.Errorf("SkipReplay posted %d events", n)
	}
	asked := srv.Asked()
	if rep.Users != 3 || rep.TestUsers <= 3 || len(asked) != 3 {
		t.Fatalf("%d of %d test users evaluated, %d asked for; want 3 of more", rep.Users, rep.TestUsers, len(asked))
	}
	first := slices.Sorted(slices.Values(asked))
	if _, err := evaluate(t, srv, o); err != nil {
		t.Fatal(err)
	}
	if again := slices.Sorted(slices.Values(srv.Asked()[len(asked):])); !slices.Equal(first, again) {
		t.Errorf("the same seed sampled %v, then %v", first, again)
	}
}

func TestEvaluateStopsOnAFailedRequest(t *testing.T) {
	w := qualitytest.NewWorld(t)
	relevant := relevantIDs(t, w)
	bad := slices.Sorted(maps.Keys(relevant))[1]
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(user string, _ int, _ []qualitytest.Event) qualitytest.Reply {
		if user == bad {
			return qualitytest.Reply{Code: http.StatusServiceUnavailable, Reason: "no config loaded yet"}
		}
		return qualitytest.IDs(w.Items[:10]...)
	}})
	_, err := evaluate(t, srv, Options{Data: w.Dir, SkipReplay: true})
	if err == nil {
		t.Fatal("Evaluate succeeded although a request failed")
	}
	for _, want := range []string{"user " + bad + ":", "503", "no config loaded yet"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestEvaluateOfMovieLens(t *testing.T) {
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
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: func(user string, _ int, _ []qualitytest.Event) qualitytest.Reply {
		return qualitytest.IDs(map[string][]string{"1": {"m4", "m2"}, "2": {"m3", "m4"}}[user]...)
	}})
	rep, err := evaluate(t, srv, Options{MovieLens: path})
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
	for _, e := range srv.Events() {
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

func TestEvaluateRefusesBadOptions(t *testing.T) {
	for name, tc := range map[string]struct {
		o    Options
		want string
	}{
		"no log":                 {Options{URL: "http://127.0.0.1:1"}, "exactly one of Data and MovieLens"},
		"two logs":               {Options{URL: "http://127.0.0.1:1", Data: "d", MovieLens: "m"}, "exactly one of Data and MovieLens"},
		"a test window of all":   {Options{URL: "http://127.0.0.1:1", Data: "d", TestFrac: 1}, "TestFrac 1 must be in (0, 1)"},
		"a negative K":           {Options{URL: "http://127.0.0.1:1", Data: "d", K: -1}, "K -1 must be positive"},
		"too many in flight":     {Options{URL: "http://127.0.0.1:1", Data: "d", Concurrency: 257}, "Concurrency 257"},
		"a batch over the limit": {Options{URL: "http://127.0.0.1:1", Data: "d", Batch: 10001}, "Batch 10001"},
		"a URL without a scheme": {Options{URL: "127.0.0.1:8080", Data: "d"}, `URL "127.0.0.1:8080" must be http(s)://host[:port]`},
		"a URL with a query":     {Options{URL: "http://h/?a=1", Data: "d"}, "must be http(s)://host[:port]"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Evaluate(context.Background(), http.DefaultClient, tc.o, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
