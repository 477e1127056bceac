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

// Package simulate is a population of simulated users who engage with what
// a recommender shows them as a synthetic world's planted model says they
// would. Each request draws a user, asks for the user's list, shows the
// user its top items and posts an impression for each, with the
// engagements the world's true probabilities draw for that user and item.
// What each experiment arm served and earned is counted apart, by the arm
// the recommender answered with, so that arms can be compared on the
// events they earn per impression and on the objective value Σ w·rate.
package simulate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// Recommender answers a user's list: recserve's GET /v1/recommendations.
type Recommender interface {
	Recommend(ctx context.Context, user string, n int) (recclient.Answer, error)
}

// Sink takes the events of one list, in order: recserve's POST
// /v1/events.
type Sink interface {
	Post(ctx context.Context, events []recclient.Event) error
}

// World is the planted truth the users behave by; *synth.World is one.
// Users and items are the indexes of the IDs synth.UserID and
// synth.ItemID write.
type World interface {
	NumUsers() int
	NumItems() int
	TrueProbabilities(user, item int) synth.Probabilities
}

var _ World = (*synth.World)(nil)

// Engagements are the event types a simulated user may follow an
// impression with. A follow is left out: its probability holds only while
// the user does not follow the author yet, which the simulation does not
// track.
var Engagements = []dataset.EventType{dataset.Click, dataset.Like, dataset.Comment, dataset.Share, dataset.SeeLess}

// Options configure a simulation.
type Options struct {
	// Users is the population: the first Users users of the world, drawn
	// uniformly for each request; 2000 by default, at most the world's.
	Users int
	// Rate paces the requests to that many per second in all; 50 by
	// default. Negative sends them back to back.
	Rate float64
	// Duration bounds the run; 0 leaves Requests as the bound.
	Duration time.Duration
	// Requests bounds the run; 0 leaves Duration as the bound. One of the
	// two must be positive.
	Requests int
	// N is the length of the lists asked for; 25 by default.
	N int
	// Viewed is how many items of each list, from the top, the user sees
	// and may engage with; 0 (the default) sees them all.
	Viewed int
	// Concurrency is the number of requests in flight at most; 4 by
	// default.
	Concurrency int
	// Seed makes the population's choices reproducible: the user of the
	// k-th request and the engagements drawn for a given list depend on
	// Seed and k alone.
	Seed uint64
	// Weights value the events in the objective; synth.DefaultWeights()
	// when nil. Only the types the users post count: an impression and
	// the Engagements.
	Weights synth.Weights
	// MaxFailed is the most failed requests (lists and event posts) a run
	// may have before Run returns an error; 0 by default.
	MaxFailed int
	// Report, when positive, is the interval at which Progress is called
	// with the figures so far.
	Report time.Duration
	// Progress receives the figures every Report; it runs on its own
	// goroutine, one call at a time.
	Progress func(Summary)
	// Now dates the events; time.Now by default.
	Now func() time.Time
}

// Default fills in the defaults of the fields left at 0 and checks the
// options against the world's size; its errors call the fields by names.
func (o *Options) Default(names recclient.Names, worldUsers int) error {
	o.Users = cmp.Or(o.Users, 2000)
	o.Rate = cmp.Or(o.Rate, 50)
	o.N = cmp.Or(o.N, 25)
	o.Concurrency = cmp.Or(o.Concurrency, 4)
	if o.Weights == nil {
		o.Weights = synth.DefaultWeights()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.Users < 1 || o.Users > worldUsers:
		return fmt.Errorf("%s %d must be between 1 and the world's %d users", names.Of("Users"), o.Users, worldUsers)
	case o.Duration < 0 || o.Requests < 0:
		return fmt.Errorf("%s and %s must not be negative", names.Of("Duration"), names.Of("Requests"))
	case o.Duration == 0 && o.Requests == 0:
		return fmt.Errorf("the simulation must be bounded: give %s or %s", names.Of("Duration"), names.Of("Requests"))
	case o.N < 1:
		return fmt.Errorf("%s %d must be positive", names.Of("N"), o.N)
	case o.Viewed < 0:
		return fmt.Errorf("%s %d must not be negative", names.Of("Viewed"), o.Viewed)
	case o.Concurrency < 1 || o.Concurrency > 4096:
		return fmt.Errorf("%s %d must be between 1 and 4096", names.Of("Concurrency"), o.Concurrency)
	case o.MaxFailed < 0:
		return fmt.Errorf("%s %d must not be negative", names.Of("MaxFailed"), o.MaxFailed)
	}
	for t := range o.Weights {
		if !slices.Contains(valued, t) {
			return fmt.Errorf("%s: %v is not an event type the users are simulated to post (%v)", names.Of("Weights"), t, valued)
		}
	}
	return nil
}

// ErrTooManyFailed is the error of a run with more failed requests than
// Options.MaxFailed.
var ErrTooManyFailed = errors.New("too many failed requests")

// Run simulates the population against rec and sink until the run's bound
// or ctx ends it, and returns its figures. o is as Options.Default leaves
// it. The error wraps ErrTooManyFailed when more than o.MaxFailed
// requests failed, and is ctx's when the run was cut short; the figures
// cover what ran in both cases.
func Run(ctx context.Context, rec Recommender, sink Sink, world World, o Options) (Summary, error) {
	st := newStats(o)
	start := time.Now()
	p := &pacer{start: start, rate: o.Rate, limit: int64(o.Requests)}
	if o.Duration > 0 {
		p.deadline = start.Add(o.Duration)
	}
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				k, due, ok := p.take()
				if !ok {
					return
				}
				if wait := time.Until(due); wait > 0 {
					select {
					case <-time.After(wait):
					case <-ctx.Done():
						return
					}
				}
				simulateOne(ctx, rec, sink, world, o, st, k)
			}
		})
	}
	stopReports := st.startReports(start)
	wg.Wait()
	stopReports()
	sum := st.summary(time.Since(start))
	if err := ctx.Err(); err != nil {
		sum.Interrupted = true
		return sum, err
	}
	if sum.Failed > o.MaxFailed {
		return sum, fmt.Errorf("%w: %d failed (%d lists, %d event posts), at most %d allowed",
			ErrTooManyFailed, sum.Failed, sum.FailedLists, sum.FailedPosts, o.MaxFailed)
	}
	return sum, nil
}

// pacer hands out the requests' numbers and the times they are due.
type pacer struct {
	start    time.Time
	rate     float64   // requests per second; not positive: back to back
	deadline time.Time // zero: none
	limit    int64     // 0: none
	next     atomic.Int64
}

// take returns the next request's number and when it is due, or false
// once the run's bound is reached. A paced request due before the
// deadline is sent however late, so that a recommender falling behind is
// measured by its backlog rather than spared it.
func (p *pacer) take() (k int64, due time.Time, ok bool) {
	due = time.Now()
	if p.rate <= 0 && !p.deadline.IsZero() && !due.Before(p.deadline) {
		return 0, time.Time{}, false
	}
	k = p.next.Add(1) - 1
	if p.limit > 0 && k >= p.limit {
		return 0, time.Time{}, false
	}
	if p.rate > 0 {
		due = p.start.Add(time.Duration(float64(k) / p.rate * float64(time.Second)))
		if !p.deadline.IsZero() && !due.Before(p.deadline) {
			return 0, time.Time{}, false
		}
	}
	return k, due, true
}

// simulateOne is request k: a user, the user's list, what the user does
// with it.
func simulateOne(ctx context.Context, rec Recommender, sink Sink, world World, o Options, st *stats, k int64) {
	// One generator per request: request k draws the same user and, given
	// the same list, the same events whatever the concurrency.
	rng := rand.New(rand.NewPCG(o.Seed, uint64(k)))
	u := rng.IntN(o.Users)
	user := synth.UserID(u)
	ans, err := rec.Recommend(ctx, user, o.N)
	if err != nil {
		if ctx.Err() == nil {
			st.failList(err)
		}
		return
	}
	items := ans.Items
	if o.Viewed > 0 && len(items) > o.Viewed {
		items = items[:o.Viewed]
	}
	var (
		now     = o.Now().UTC()
		events  = make([]recclient.Event, 0, 2*len(items))
		counts  [numTypes]int
		value   float64 // Σ over the impressions of their true value
		unknown int
	)
	for _, it := range items {
		i, ok := synth.ParseID('i', it.ID)
		if !ok || i >= world.NumItems() {
			unknown++
			continue
		}
		p := world.TrueProbabilities(u, i)
		value += trueValue(p, o.Weights)
		counts[dataset.Impression]++
		events = append(events, recclient.Event{User: user, Item: it.ID, Author: it.Author, Type: dataset.Impression.String(), Time: now})
		for _, t := range engage(p, rng) {
			counts[t]++
			events = append(events, recclient.Event{User: user, Item: it.ID, Author: it.Author, Type: t.String(), Time: now})
		}
	}
	if len(events) > 0 {
		if err := sink.Post(ctx, events); err != nil {
			if ctx.Err() == nil {
				st.failPost(ans.Arm, err, unknown)
			}
			return
		}
	}
	st.served(ans, &counts, value, unknown)
}

// engage draws what a user does after one impression with the true
// probabilities p, returning the events in the order they happen. The
// draw follows the planted model's structure, so that its events are
// consistent: a like, comment or share comes only with a click, a see
// less only without one. Each event still happens with its unconditional
// probability p.Of(type): a click with p.Click, and given a click a like
// with p.Like/p.Click; without one a see less with p.SeeLess/(1-p.Click).
func engage(p synth.Probabilities, rng *rand.Rand) []dataset.EventType {
	var out []dataset.EventType
	if rng.Float64() < p.Click {
		out = append(out, dataset.Click)
		for _, t := range []dataset.EventType{dataset.Like, dataset.Comment, dataset.Share} {
			if rng.Float64()*p.Click < p.Of(t) {
				out = append(out, t)
			}
		}
		return out
	}
	if rng.Float64()*(1-p.Click) < p.SeeLess {
		out = append(out, dataset.SeeLess)
	}
	return out
}

// trueValue is the expected value of one impression, Σ w·P(e) over the
// engagements the simulation draws.
func trueValue(p synth.Probabilities, w synth.Weights) float64 {
	var v float64
	for _, t := range Engagements {
		v += w[t] * p.Of(t)
	}
	return v
}
