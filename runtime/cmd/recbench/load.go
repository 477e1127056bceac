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
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// loadOptions configure a load run.
type loadOptions struct {
	// URL of recserve, without a path.
	URL string
	// Users asked for, uniformly at random; at least one.
	Users []string
	// Concurrency is the number of closed-loop workers; 8 by default.
	Concurrency int
	// Rate, when positive, paces the workers to that many requests per
	// second in all: request i is due at i/Rate after the phase starts,
	// and its latency counts from when it was due, so time spent waiting
	// for a free worker behind a slow answer is measured rather than
	// omitted. 0 runs the workers back to back.
	Rate float64
	// Duration bounds the measured phase; 0 leaves Requests as the bound.
	Duration time.Duration
	// Requests bounds the measured requests; 0 leaves Duration as the
	// bound. One of the two must be positive: a load is always bounded.
	Requests int
	// N is the n parameter of every request; 25 by default.
	N int
	// Warmup runs the same load, unmeasured, before the measured phase;
	// 0 skips it.
	Warmup time.Duration
	// EventsRate is the background ingestion in events per second during
	// the measured phase; 0 sends none.
	EventsRate float64
	// EventsBatch is the most events per POST of the ingestion; 500 by
	// default, at most 10000.
	EventsBatch int
	// EventsSenders post events in parallel, each at its share of the
	// rate, so that one POST's round trip does not cap the rate; 4 by
	// default.
	EventsSenders int
	// Items are the items events name. Empty: items sampled from the
	// recommendations answered so far.
	Items []catalogItem
	// Seed makes the choice of users, items and event types reproducible.
	Seed uint64
}

func (o *loadOptions) defaults() error {
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.N == 0 {
		o.N = 25
	}
	if o.EventsSenders == 0 {
		o.EventsSenders = 4
	}
	if o.EventsBatch == 0 {
		o.EventsBatch = 500
	}
	switch {
	case len(o.Users) == 0:
		return errors.New("no users: give -users, -user-prefix with -user-count, or -data")
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("-concurrency %d must be between 1 and 4096", o.Concurrency)
	case o.Duration < 0 || o.Requests < 0 || o.Warmup < 0:
		return errors.New("-duration, -requests and -warmup must not be negative")
	case o.Duration == 0 && o.Requests == 0:
		return errors.New("the load must be bounded: give -duration or -requests")
	case o.N < 1:
		return fmt.Errorf("-n %d must be positive", o.N)
	case o.Rate < 0:
		return fmt.Errorf("-rate %g must not be negative", o.Rate)
	case o.EventsRate < 0:
		return fmt.Errorf("-events-rate %g must not be negative", o.EventsRate)
	case o.EventsBatch < 1 || o.EventsBatch > recclient.MaxEvents:
		return fmt.Errorf("-events-batch %d must be between 1 and %d", o.EventsBatch, recclient.MaxEvents)
	}
	return nil
}

// catalogItem is an item events may name.
type catalogItem struct {
	ID     string
	Author string
}

// loadResult is what the measured phase saw.
type loadResult struct {
	// Requests measured, answered or not.
	Requests int
	// OK is the number of 200 answers that carried an items list.
	OK int
	// Failures counts the other requests by HTTP status code, "timeout",
	// "error" (transport) or "bad_body" (a 200 without items).
	Failures map[string]int
	// Examples holds one reason per failure label.
	Examples map[string]string
	// Elapsed is the measured phase's wall time, until the last answer.
	Elapsed time.Duration
	// Latency summarises the OK requests.
	Latency latencySummary
	// Items is the number of items in the OK answers.
	Items int64
	// Short is the number of OK answers with fewer items than asked (n).
	Short int
	// Events is the background ingestion, zero when it was off.
	Events eventStats
	// Interrupted is set when the run was cut short.
	Interrupted bool
}

// eventStats is what the background ingestion achieved.
type eventStats struct {
	Sent    int
	Failed  int
	Elapsed time.Duration
	Example string // the first failure's reason
}

// phase bounds one run of the workers.
type phase struct {
	deadline time.Time // zero: no deadline
	limit    int64     // 0: no request bound
	issued   atomic.Int64
	record   bool // false for the warm-up
	// rate paces the requests from start; 0 leaves them back to back.
	rate  float64
	start time.Time
}

// take reports whether another request may start and when it is due: now
// for back-to-back requests, its place in the schedule for a paced phase.
// A paced phase sends every request due before its deadline, however late,
// so that a server falling behind is measured by its backlog.
func (p *phase) take() (time.Time, bool) {
	due := time.Now()
	if p.rate <= 0 && !p.deadline.IsZero() && !due.Before(p.deadline) {
		return time.Time{}, false
	}
	i := p.issued.Add(1)
	if p.limit > 0 && i > p.limit {
		return time.Time{}, false
	}
	if p.rate <= 0 {
		return due, true
	}
	due = p.start.Add(time.Duration(float64(i-1) / p.rate * float64(time.Second)))
	if !p.deadline.IsZero() && !due.Before(p.deadline) {
		return time.Time{}, false
	}
	return due, true
}

// loadWorker is one closed loop. Its buffers are reused across requests
// and its counts merged once at the end, so a request costs the load
// generator little more than net/http's own allocations.
type loadWorker struct {
	n        int // the n every request asks for
	rng      *rand.Rand
	buf      bytes.Buffer
	lat      []time.Duration
	ok       int
	items    int64
	short    int
	answered int
	failures map[string]int
	examples map[string]string
}

func (w *loadWorker) fail(label string, reason func() string) {
	if _, seen := w.examples[label]; !seen {
		w.examples[label] = reason()
	}
	w.failures[label]++
}

// run sends requests back to back until the phase ends. req is the
// worker's own request; only its query changes between requests, which
// net/http allows once the previous answer's body is closed.
func (w *loadWorker) run(ctx context.Context, client *http.Client, req *http.Request, queries []string, p *phase, pool *itemPool) {
	for ctx.Err() == nil {
		start, ok := p.take()
		if !ok {
			return
		}
		if wait := time.Until(start); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return
			}
		}
		req.URL.RawQuery = queries[w.rng.IntN(len(queries))]
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return // interrupted: not a measurement
			}
			if p.record {
				w.fail(transportLabel(err), err.Error)
			}
			continue
		}
		w.buf.Reset()
		_, err = w.buf.ReadFrom(resp.Body)
		_ = resp.Body.Close()
		lat := time.Since(start)
		if ctx.Err() != nil {
			return
		}
		body := w.buf.Bytes()
		if err == nil && resp.StatusCode == http.StatusOK && pool != nil {
			w.answered++
			if w.answered%8 == 1 {
				if id := sampleItem(body, w.rng); id != "" {
					pool.add(id)
				}
			}
		}
		if !p.record {
			continue
		}
		switch {
		case err != nil:
			w.fail(transportLabel(err), err.Error)
		case resp.StatusCode != http.StatusOK:
			w.fail(strconv.Itoa(resp.StatusCode), func() string { return recclient.Reason(body) })
		default:
			n, ok := countItems(body)
			if !ok {
				w.fail("bad_body", func() string { return "a 200 answer without an items list" })
				continue
			}
			w.ok++
			w.items += int64(n)
			if n < w.n {
				w.short++
			}
			w.lat = append(w.lat, lat)
		}
	}
}

// transportLabel classifies a request that got no complete answer.
func transportLabel(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "timeout"
	}
	return "error"
}

// itemsKey and itemKey locate items in recserve's compact JSON answer:
// Item.ID is the first field of every item, and no other object in the
// answer opens with an "id" string, so each item starts with itemKey.
var (
	itemsKey = []byte(`"items":`)
	itemKey  = []byte(`{"id":"`)
)

// countItems counts the items of an answer without decoding it; ok is
// false when the answer has no items list.
func countItems(body []byte) (n int, ok bool) {
	i := bytes.Index(body, itemsKey)
	if i < 0 {
		return 0, false
	}
	return bytes.Count(body[i:], itemKey), true
}

// sampleItem returns the ID of a random item of an answer, or "" when
// there is none (or its ID is escaped, which plain IDs never are).
func sampleItem(body []byte, rng *rand.Rand) string {
	n, ok := countItems(body)
	if !ok || n == 0 {
		return ""
	}
	rest := body[bytes.Index(body, itemsKey):]
	for k := rng.IntN(n); ; k-- {
		j := bytes.Index(rest, itemKey)
		rest = rest[j+len(itemKey):]
		if k == 0 {
			break
		}
	}
	end := bytes.IndexByte(rest, '"')
	if end <= 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return ""
	}
	return string(rest[:end])
}

// itemPool keeps the latest item IDs seen in answers, for events to name
// when no catalog was given.
type itemPool struct {
	mu  sync.Mutex
	ids []string
	pos int
}

const itemPoolSize = 4096

func (p *itemPool) add(id string) {
	p.mu.Lock()
	if len(p.ids) < itemPoolSize {
		p.ids = append(p.ids, id)
	} else {
		p.ids[p.pos] = id
		p.pos = (p.pos + 1) % itemPoolSize
	}
	p.mu.Unlock()
}

func (p *itemPool) pick(rng *rand.Rand) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return "", false
	}
	return p.ids[rng.IntN(len(p.ids))], true
}

// load runs the closed loop: an optional warm-up, then the measured phase,
// with background event ingestion during the latter when asked for.
func load(ctx context.Context, client *http.Client, o loadOptions) (loadResult, error) {
	res := loadResult{Failures: map[string]int{}, Examples: map[string]string{}}
	if err := o.defaults(); err != nil {
		return res, err
	}
	base, err := baseURL(o.URL)
	if err != nil {
		return res, err
	}
	template, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/recommendations", http.NoBody)
	if err != nil {
		return res, fmt.Errorf("failed to build the recommendations request: %w", err)
	}
	queries := make([]string, len(o.Users))
	suffix := "&n=" + strconv.Itoa(o.N)
	for i, u := range o.Users {
		queries[i] = "user=" + url.QueryEscape(u) + suffix
	}
	var pool *itemPool
	if o.EventsRate > 0 && len(o.Items) == 0 {
		pool = &itemPool{}
	}
	workers := newLoadWorkers(o)
	runPhase := func(p *phase) {
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(ctx, client, template.Clone(ctx), queries, p, pool)
			}()
		}
		wg.Wait()
	}

	if o.Warmup > 0 {
		now := time.Now()
		runPhase(&phase{deadline: now.Add(o.Warmup), rate: o.Rate, start: now})
	}

	start := time.Now()
	measured := &phase{limit: int64(o.Requests), record: true, rate: o.Rate, start: start}
	if o.Duration > 0 {
		measured.deadline = start.Add(o.Duration)
	}
	done := make(chan struct{})
	wait := startIngest(ctx, client, base+"/v1/events", o, done, pool)
	runPhase(measured)
	res.Elapsed = time.Since(start)
	close(done)
	res.Events = wait()
	res.Interrupted = ctx.Err() != nil
	res.add(workers)
	return res, nil
}

// newLoadWorkers returns o.Concurrency workers, each with its own seeded
// generator and room for its share of the latencies.
func newLoadWorkers(o loadOptions) []*loadWorker {
	workers := make([]*loadWorker, o.Concurrency)
	perWorker := 4096
	if o.Requests > 0 {
		perWorker = min(o.Requests/o.Concurrency+1, 1<<20)
	}
	for i := range workers {
		workers[i] = &loadWorker{
			n:        o.N,
			rng:      rand.New(rand.NewPCG(o.Seed, uint64(i))),
			lat:      make([]time.Duration, 0, perWorker),
			failures: map[string]int{},
			examples: map[string]string{},
		}
	}
	return workers
}

// startIngest starts the background event senders, o.EventsSenders (at
// least one) sharing o.EventsRate, when the rate is set; they stop once
// done is closed. wait returns what they sent, summed, once they have
// stopped.
func startIngest(ctx context.Context, client *http.Client, eventsURL string, o loadOptions, done <-chan struct{}, pool *itemPool) (wait func() eventStats) {
	senders := 0
	if o.EventsRate > 0 {
		senders = max(o.EventsSenders, 1)
	}
	events := make(chan eventStats, senders)
	for i := 0; i < senders; i++ {
		so := o
		so.EventsRate = o.EventsRate / float64(senders)
		so.Seed = o.Seed + uint64(i)*7919
		go func() {
			events <- ingest(ctx, client, eventsURL, so, done, pool)
		}()
	}
	return func() eventStats {
		var sum eventStats
		for i := 0; i < senders; i++ {
			st := <-events
			sum.Sent += st.Sent
			sum.Failed += st.Failed
			sum.Elapsed = max(sum.Elapsed, st.Elapsed)
			if sum.Example == "" {
				sum.Example = st.Example
			}
		}
		return sum
	}
}

// add merges the workers' counts, failures and latencies into res.
func (res *loadResult) add(workers []*loadWorker) {
	var lat []time.Duration
	for _, w := range workers {
		res.OK += w.ok
		res.Items += w.items
		res.Short += w.short
		lat = append(lat, w.lat...)
		for k, v := range w.failures {
			res.Failures[k] += v
			if _, seen := res.Examples[k]; !seen {
				res.Examples[k] = w.examples[k]
			}
		}
	}
	res.Requests = res.OK
	for _, v := range res.Failures {
		res.Requests += v
	}
	res.Latency = summarize(lat)
}

// ingest posts click and impression events at o.EventsRate until done is
// closed. It paces by the count due so far rather than by batch, so that
// short runs and low rates send the right number; a server slower than
// the rate leaves the count behind, which the report shows.
func ingest(ctx context.Context, client *http.Client, eventsURL string, o loadOptions, done <-chan struct{}, pool *itemPool) (st eventStats) {
	rng := rand.New(rand.NewPCG(o.Seed, 1<<32))
	interval := time.Duration(float64(o.EventsBatch) / o.EventsRate * float64(time.Second))
	interval = min(max(interval, 10*time.Millisecond), 200*time.Millisecond)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var (
		enc       recclient.Encoder
		attempted int64
		start     = time.Now()
	)
	defer func() { st.Elapsed = time.Since(start) }()
	for {
		select {
		case <-done:
			return st
		case <-ctx.Done():
			return st
		case <-tick.C:
		}
		due := int64(o.EventsRate * time.Since(start).Seconds())
		for posts := 0; attempted < due && posts < 8; posts++ {
			want := int(min(due-attempted, int64(o.EventsBatch)))
			enc.Reset()
			now := time.Now().UTC()
			for range want {
				e := recclient.Event{User: o.Users[rng.IntN(len(o.Users))], Type: "impression", Time: now}
				if rng.IntN(5) == 0 {
					e.Type = "click"
				}
				if pool != nil {
					id, ok := pool.pick(rng)
					if !ok {
						break
					}
					e.Item = id
				} else {
					it := o.Items[rng.IntN(len(o.Items))]
					e.Item, e.Author = it.ID, it.Author
				}
				if !enc.Add(&e, recclient.MaxBodyBytes) {
					break
				}
			}
			if enc.Len() == 0 {
				// No item seen yet: what was due is forgone, not owed.
				attempted = due
				break
			}
			attempted += int64(enc.Len())
			if err := recclient.PostEvents(ctx, client, eventsURL, enc.Body(), enc.Len()); err != nil {
				if ctx.Err() != nil {
					return st
				}
				st.Failed += enc.Len()
				if st.Example == "" {
					st.Example = err.Error()
				}
				continue
			}
			st.Sent += enc.Len()
		}
	}
}
