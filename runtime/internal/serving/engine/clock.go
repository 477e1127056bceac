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

package engine

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// redisClockRefresh is how often the clock reads the newest event time from
// a store that answers it over the network.
const redisClockRefresh = time.Second

// clock gives each request the time it is served at, the one item ages,
// the popularity decay and the followed authors' window are measured
// against (config.Live.Clock).
//
// On event time it is the newest event the store has recorded or the
// catalog's newest item, whichever is later, plus one millisecond, so that
// an engagement recorded at that time counts as before it (the engagement
// pool takes those strictly before); and never later than the wall clock,
// so that an event dated in the future cannot stop the clock there. With
// neither events nor items it is the wall clock.
//
// The Memory store answers its newest event with an atomic load, read at
// every request. The Redis store needs a round trip, so the clock reads it
// at most once per redisClockRefresh, by whichever request finds it due,
// and otherwise serves the newest time it knows: the last it read, or a
// later event this process ingested. A frontend thus sees its own events at
// once and those ingested by other replicas within the refresh.
type clock struct {
	cat     *catalog.Catalog
	events  store.EventClock // nil in a stage without a store
	refresh time.Duration    // between reads of events; zero: every request
	log     *slog.Logger

	newest  atomic.Int64 // the newest event time known, Unix ms; MinInt64 for none
	readAt  atomic.Int64 // wall time of the last read of events, Unix ns
	reading atomic.Bool  // a request is reading events
}

func newClock(cat *catalog.Catalog, st store.Store, storeType string, log *slog.Logger) *clock {
	c := &clock{cat: cat, log: log}
	c.newest.Store(math.MinInt64)
	if ec, ok := st.(store.EventClock); ok {
		c.events = ec
		if storeType == "Redis" {
			c.refresh = redisClockRefresh
		}
	}
	return c
}

// observe raises the newest event time known to t.
func (c *clock) observe(t time.Time) {
	ms := t.UnixMilli()
	for {
		old := c.newest.Load()
		if ms <= old || c.newest.CompareAndSwap(old, ms) {
			return
		}
	}
}

// sync reads the store's newest event time when it is due.
func (c *clock) sync(ctx context.Context) {
	if c.events == nil {
		return
	}
	if c.refresh > 0 {
		if time.Now().UnixNano()-c.readAt.Load() < int64(c.refresh) || !c.reading.CompareAndSwap(false, true) {
			return
		}
		defer c.reading.Store(false)
	}
	t, err := c.events.NewestEvent(ctx)
	c.readAt.Store(time.Now().UnixNano())
	if err != nil {
		// The time known stands; the next refresh tries again.
		c.log.Debug("Could not read the newest event time, serving the last known", "err", err)
		return
	}
	if !t.IsZero() {
		c.observe(t)
	}
}

// now returns the time to serve a request at that arrived at wall, by the
// wall clock (time.Now() when zero), under cfg.
func (c *clock) now(ctx context.Context, cfg config.Clock, wall time.Time) time.Time {
	if wall.IsZero() {
		wall = time.Now()
	}
	if cfg.TypeOrDefault() == config.ClockWall {
		return wall
	}
	c.sync(ctx)
	ms := c.newest.Load()
	if t, ok := c.cat.NewestCreated(); ok {
		ms = max(ms, t.UnixMilli())
	}
	if ms == math.MinInt64 {
		return wall
	}
	t := time.UnixMilli(ms + 1).UTC()
	if t.After(wall) {
		return wall
	}
	return t
}
