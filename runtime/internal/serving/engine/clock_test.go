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
	"errors"
	"log/slog"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
)

// fakeEvents is an EventClock that counts its reads.
type fakeEvents struct {
	newest time.Time
	err    error
	reads  atomic.Int32
}

func (f *fakeEvents) NewestEvent(context.Context) (time.Time, error) {
	f.reads.Add(1)
	return f.newest, f.err
}

func TestClockNow(t *testing.T) {
	created := time.Date(2003, 5, 1, 12, 0, 0, 0, time.UTC)
	wall := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const ms = time.Millisecond
	event := config.Clock{Type: config.ClockEvent}
	tests := map[string]struct {
		clock   config.Clock
		items   bool      // the catalog holds an item created at created
		events  time.Time // the store's newest event; zero: none
		err     error
		arrived time.Time
		want    time.Time
	}{
		"event time is the newest event plus 1ms": {
			clock: event, items: true, events: created.Add(time.Hour), arrived: wall, want: created.Add(time.Hour + ms),
		},
		"the default is event time": {
			clock: config.Clock{}, items: true, events: created.Add(time.Hour), arrived: wall, want: created.Add(time.Hour + ms),
		},
		"a catalog item newer than every event counts": {
			clock: event, items: true, events: created.Add(-time.Hour), arrived: wall, want: created.Add(ms),
		},
		"without events, the catalog's newest item": {
			clock: event, items: true, arrived: wall, want: created.Add(ms),
		},
		"without events or items, the wall clock": {
			clock: event, arrived: wall, want: wall,
		},
		"never later than the wall clock": {
			clock: event, items: true, events: wall.Add(24 * time.Hour), arrived: wall, want: wall,
		},
		"a failed read serves the time known": {
			clock: event, items: true, events: created.Add(time.Hour), err: errors.New("down"), arrived: wall, want: created.Add(ms),
		},
		"the wall clock": {
			clock: config.Clock{Type: config.ClockWall}, items: true, events: created.Add(time.Hour), arrived: wall, want: wall,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cat, err := catalog.New(0, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.items {
				if _, err := cat.Add(dataset.Item{ID: "i1", Author: "a", Created: created}); err != nil {
					t.Fatal(err)
				}
			}
			c := newClock(cat, nil, "Memory", slog.New(slog.DiscardHandler))
			c.events = &fakeEvents{newest: tc.events, err: tc.err}
			if got := c.now(context.Background(), tc.clock, tc.arrived); !got.Equal(tc.want) {
				t.Errorf("now = %v, want %v", got, tc.want)
			}
		})
	}
}

// A store read over the network (Redis) is read once per refresh; events
// this process ingests move the clock at once.
func TestClockRefreshesARemoteStore(t *testing.T) {
	cat, err := catalog.New(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2003, 5, 1, 12, 0, 0, 0, time.UTC)
	events := &fakeEvents{newest: t0}
	c := newClock(cat, nil, "Redis", slog.New(slog.DiscardHandler))
	c.events, c.refresh = events, time.Hour
	ctx := context.Background()
	cfg := config.Clock{Type: config.ClockEvent}
	if got := c.now(ctx, cfg, time.Now()); !got.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("now = %v, want %v", got, t0.Add(time.Millisecond))
	}
	events.newest = t0.Add(time.Minute) // ingested by another replica
	if got := c.now(ctx, cfg, time.Now()); !got.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("within the refresh now = %v, want the time read before, %v", got, t0.Add(time.Millisecond))
	}
	c.observe(t0.Add(time.Second)) // ingested here
	if got := c.now(ctx, cfg, time.Now()); !got.Equal(t0.Add(time.Second + time.Millisecond)) {
		t.Errorf("after an ingested event now = %v, want %v", got, t0.Add(time.Second+time.Millisecond))
	}
	if n := events.reads.Load(); n != 1 {
		t.Errorf("the store was read %d times within one refresh, want 1", n)
	}
	c.readAt.Store(math.MinInt64 / 2) // the refresh is due
	if got := c.now(ctx, cfg, time.Now()); !got.Equal(t0.Add(time.Minute + time.Millisecond)) {
		t.Errorf("after the refresh now = %v, want %v", got, t0.Add(time.Minute+time.Millisecond))
	}
}
