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

// Package quality judges the quality of what a running recserve serves,
// from outside, through its HTTP API: it splits a log in time as rectrain
// does, replays the train part to POST /v1/events at its log times, asks
// GET /v1/recommendations for every test user's list and scores it against
// the items the user engaged with in the test window, beside a popularity
// and a random baseline scored the same way. recbench eval is its command
// line.
package quality

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
)

// Options configure an evaluation.
type Options struct {
	// URL of recserve, http(s)://host[:port], without a path. Required.
	URL string
	// Data is a world directory (catalog.jsonl, events.jsonl and, when
	// present, follows.jsonl, each plain or gzip); MovieLens a ratings
	// file instead. Exactly one is required.
	Data, MovieLens string
	// TestFrac is the fraction of the log's time span, at its end, that is
	// the test window; 0.1 by default, as rectrain's.
	TestFrac float64
	// K is the n asked of recserve and the length of the baselines'
	// lists; 100 by default.
	K int
	// Users caps the test users evaluated with a sample drawn with Seed;
	// 0 evaluates them all.
	Users int
	// Concurrency bounds the requests in flight, and the senders of the
	// replay; 4 by default, at most 256.
	Concurrency int
	// Seed draws the random baseline and the sample of users; 0 is a
	// seed like any other.
	Seed uint64
	// SkipReplay leaves out the replay of the follows and the train part
	// of the log, for a server that has them already.
	SkipReplay bool
	// Batch is the most events per POST of the replay; 1000 by default,
	// at most recclient.MaxEvents.
	Batch int
	// Lenient skips bad rows of the files instead of failing on the first.
	Lenient bool
}

// Default fills in the defaults of the fields left at 0 and checks the
// options, as Evaluate does; its errors call the fields by names (recbench
// names them after its flags).
func (o *Options) Default(names recclient.Names) error {
	o.TestFrac = cmp.Or(o.TestFrac, 0.1)
	o.K = cmp.Or(o.K, 100)
	o.Concurrency = cmp.Or(o.Concurrency, 4)
	switch {
	case (o.Data == "") == (o.MovieLens == ""):
		return fmt.Errorf("give exactly one of %s and %s", names.Of("Data"), names.Of("MovieLens"))
	case o.TestFrac <= 0 || o.TestFrac >= 1:
		return fmt.Errorf("%s %g must be in (0, 1)", names.Of("TestFrac"), o.TestFrac)
	case o.K < 1:
		return fmt.Errorf("%s %d must be positive", names.Of("K"), o.K)
	case o.Users < 0:
		return fmt.Errorf("%s %d must not be negative", names.Of("Users"), o.Users)
	}
	send := o.send()
	if err := send.Default(names); err != nil {
		return err
	}
	o.Batch = send.Batch
	if _, err := recclient.BaseURL(o.URL); err != nil {
		return fmt.Errorf("%s %w", names.Of("URL"), err)
	}
	return nil
}

// send is what the options ask of the replay's sender: its Default checks
// Batch and Concurrency.
func (o *Options) send() recclient.SendOptions {
	return recclient.SendOptions{Batch: o.Batch, MaxBody: recclient.MaxBodyBytes, Concurrency: o.Concurrency}
}

// Report is the outcome of an evaluation; recbench eval -json writes it.
type Report struct {
	// Source is Options.Data or Options.MovieLens.
	Source   string  `json:"source"`
	TestFrac float64 `json:"testFrac"`
	// Split is the first second of the test window.
	Split time.Time `json:"split"`
	// TrainEvents and TestEvents are the log's rows before and from the
	// split.
	TrainEvents  int `json:"trainEvents"`
	TestEvents   int `json:"testEvents"`
	CatalogItems int `json:"catalogItems"`
	// TestUsers is the number of test users; Users how many of them were
	// evaluated (fewer with Options.Users).
	TestUsers int `json:"testUsers"`
	Users     int `json:"users"`
	K         int `json:"k"`
	// ShortLists counts recserve's lists of fewer than K items.
	ShortLists int `json:"shortLists"`
	// Replayed counts what the replay posted; nil with SkipReplay.
	Replayed *Replayed `json:"replayed,omitempty"`

	Recserve   Metrics `json:"recserve"`
	Popularity Metrics `json:"popularity"`
	Random     Metrics `json:"random"`
	// NDCG10Ratio is recserve's NDCG@10 over popularity's; null when the
	// latter is 0.
	NDCG10Ratio *float64 `json:"ndcg10Ratio"`
	// Warnings say what makes the figures compare less well: short
	// lists, a K below 100. They call K -k, recbench's flag.
	Warnings []string `json:"warnings,omitempty"`
}

// Replayed counts what the replay posted and how long it took.
type Replayed struct {
	Follows  int     `json:"follows"`
	Events   int     `json:"events"`
	Batches  int     `json:"batches"`
	ElapsedS float64 `json:"elapsedS"`
}

// Evaluate replays the follows and the train part of the log to recserve,
// asks it for every test user's list of K and scores it, and the
// baselines' lists, against the user's relevant items. The definitions
// are rectrain's, so that the figures compare with its report on the same
// log: the test window is the last TestFrac of the log's time span; a
// user's relevant items are those shown to the user in the test window,
// not before it, that drew a click, like, comment or share; the test users
// are those with at least one. Popularity ranks the items by their
// engaged train impressions; both baselines leave out the items shown to
// the user before the split, as recserve does.
//
// progress receives a line per step. Evaluate stops at the first failed
// request, and when ctx is done.
func Evaluate(ctx context.Context, client *http.Client, o Options, progress io.Writer) (Report, error) {
	var rep Report
	if err := o.Default(nil); err != nil {
		return rep, err
	}
	base, err := recclient.BaseURL(o.URL)
	if err != nil {
		return rep, err
	}
	ropts := dataset.ReadOptions{Strict: !o.Lenient}
	var l *Log
	if o.Data != "" {
		rep.Source = o.Data
		l, err = loadWorldLog(o.Data, ropts)
	} else {
		rep.Source = o.MovieLens
		l, err = ReadMovieLens(o.MovieLens, ropts)
	}
	if err != nil {
		return rep, err
	}
	sp, err := splitLog(l, o.TestFrac)
	if err != nil {
		return rep, fmt.Errorf("%s: %w", rep.Source, err)
	}
	users := sp.testUsers(l, o.Users, o.Seed)
	rep.TestFrac, rep.K, rep.CatalogItems = o.TestFrac, o.K, l.catalog
	rep.Split = time.Unix(sp.split, 0).UTC()
	rep.TrainEvents, rep.TestEvents = sp.trainRows, len(l.rows)-sp.trainRows
	rep.TestUsers, rep.Users = len(sp.relevant), len(users)
	fmt.Fprintf(progress, "eval: %d events (%d skipped), split at %s: %d train, %d test; %d test users\n",
		len(l.rows), l.skipped, rep.Split.Format(time.RFC3339), rep.TrainEvents, rep.TestEvents, rep.TestUsers)
	if len(users) == 0 {
		return rep, fmt.Errorf("%s: no test users: nobody engaged in the test window with an item not shown to them before", rep.Source)
	}

	if !o.SkipReplay {
		start := time.Now()
		sent, err := replayTrain(ctx, client, base, l, sp.trainRows, o)
		rep.Replayed = &Replayed{Follows: sent.Follows, Events: sent.Events, Batches: sent.Batches, ElapsedS: round3(time.Since(start).Seconds())}
		if err != nil {
			return rep, fmt.Errorf("failed to replay the train part: %w", err)
		}
		fmt.Fprintf(progress, "eval: replayed %d follows and %d train events in %d batches, %.2fs\n",
			sent.Follows, sent.Events, sent.Batches, rep.Replayed.ElapsedS)
	}
	lists, err := fetchLists(ctx, client, base, l, users, o)
	if err != nil {
		return rep, err
	}
	scoreLists(&rep, l, sp, users, lists, o)
	return rep, nil
}

// replayTrain posts the world's follow graph, dated by the log's first
// event as recbench replay does, then the log's first trainRows rows at
// their log times.
func replayTrain(ctx context.Context, client *http.Client, base string, l *Log, trainRows int, o Options) (recclient.Sent, error) {
	s := recclient.NewSender(ctx, client, base+"/v1/events", o.send())
	readErr := func() error {
		if o.Data != "" {
			if _, err := recclient.SendFollows(s, o.Data, dataset.ReadOptions{Strict: !o.Lenient}, l.rows[0].time()); err != nil {
				return err
			}
		}
		return l.Send(s, trainRows)
	}()
	return s.Finish(readErr)
}

// scoreLists scores recserve's lists and the baselines' on the same users.
func scoreLists(rep *Report, l *Log, sp *evalSplit, users []int32, lists [][]int32, o Options) {
	var served, popular, random metricSum
	order := popularOrder(sp.popularity)
	buf := make([]int32, 0, o.K)
	for j, u := range users {
		relevant, seen := sp.relevant[u], sp.seen[u]
		served.add(lists[j], relevant)
		buf = popularList(buf[:0], order, seen, o.K)
		popular.add(buf, relevant)
		// A stream per user: the same user gets the same list whatever
		// the sample.
		random.add(randomList(newRand(o.Seed, uint64(u)+1), l.catalog, seen, o.K), relevant)
	}
	rep.Recserve = served.result(l.catalog)
	rep.Popularity = popular.result(l.catalog)
	rep.Random = random.result(l.catalog)
	if rep.Popularity.NDCG10 > 0 {
		r := rep.Recserve.NDCG10 / rep.Popularity.NDCG10
		rep.NDCG10Ratio = &r
	}
	for _, list := range lists {
		if len(list) < o.K {
			rep.ShortLists++
		}
	}
	if rep.ShortLists > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf(
			"recserve answered %.1f items a list on average, %d of its %d lists fewer than -k %d: its recall@%d is of shorter lists than the baselines' "+
				"(recserve answers at most live.rerank.size items, fewer when its candidates run out)",
			rep.Recserve.MeanLength, rep.ShortLists, len(lists), o.K, rectrain.RecallK))
	}
	if o.K < rectrain.RecallK {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("-k %d is below %d: recall@%d is recall@%d", o.K, rectrain.RecallK, rectrain.RecallK, o.K))
	}
}

// fetchLists asks recserve for every user's list, o.Concurrency requests
// at a time, and returns the lists as item indexes (-1 for an item the log
// does not know). The first failure stops it.
func fetchLists(ctx context.Context, client *http.Client, base string, l *Log, users []int32, o Options) ([][]int32, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lists := make([][]int32, len(users))
	next := make(chan int)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstBad error
	)
	for range min(o.Concurrency, len(users)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				user := l.users.ids[users[j]]
				ids, err := recclient.Recommendations(ctx, client, base, user, o.K)
				if err != nil {
					mu.Lock()
					if firstBad == nil {
						firstBad = fmt.Errorf("failed to get the recommendations of user %s: %w", user, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				list := make([]int32, len(ids))
				for r, id := range ids {
					i, ok := l.items.index[id]
					list[r] = i
					if !ok {
						list[r] = -1
					}
				}
				lists[j] = list
			}
		}()
	}
feed:
	for j := range users {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstBad != nil {
		return nil, firstBad
	}
	return lists, ctx.Err()
}

// WriteText prints the report as a table, with the warnings under it.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "eval: %s, %d test users", r.Source, r.TestUsers)
	if r.Users < r.TestUsers {
		fmt.Fprintf(w, " (%d evaluated)", r.Users)
	}
	fmt.Fprintf(w, ", test window from %s (the last %g%% of the log's time span), k=%d, %d catalog items\n",
		r.Split.Format(time.RFC3339), r.TestFrac*100, r.K, r.CatalogItems)
	fmt.Fprintf(w, "%-18s %11s %11s %11s\n", "metric", "recserve", "popularity", "random")
	row := func(name string, get func(*Metrics) float64) {
		fmt.Fprintf(w, "%-18s %11.4f %11.4f %11.4f\n", name, get(&r.Recserve), get(&r.Popularity), get(&r.Random))
	}
	row("NDCG@10", func(m *Metrics) float64 { return m.NDCG10 })
	row("recall@10", func(m *Metrics) float64 { return m.Recall10 })
	row("recall@100", func(m *Metrics) float64 { return m.Recall100 })
	row("precision@10", func(m *Metrics) float64 { return m.Precision10 })
	row("coverage@10", func(m *Metrics) float64 { return m.Coverage10 })
	fmt.Fprintf(w, "%-18s %11.1f %11.1f %11.1f\n", "mean list length", r.Recserve.MeanLength, r.Popularity.MeanLength, r.Random.MeanLength)
	if r.NDCG10Ratio != nil {
		fmt.Fprintf(w, "NDCG@10 recserve/popularity: %.3f\n", *r.NDCG10Ratio)
	} else {
		fmt.Fprintln(w, "NDCG@10 recserve/popularity: n/a (popularity's is 0)")
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
