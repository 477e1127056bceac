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
	"encoding/json"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	seq := func(n int) []time.Duration {
		out := make([]time.Duration, n)
		for i := range out {
			out[i] = time.Duration(i+1) * time.Millisecond
		}
		return out
	}
	for name, tc := range map[string]struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		"empty":                   {nil, 50, 0},
		"one value is every rank": {[]time.Duration{7}, 99, 7},
		"p50 of 1..10":            {seq(10), 50, 5 * time.Millisecond},
		"p90 of 1..10":            {seq(10), 90, 9 * time.Millisecond},
		"p99 of 1..10 is the max": {seq(10), 99, 10 * time.Millisecond},
		"p50 of 1..100":           {seq(100), 50, 50 * time.Millisecond},
		"p99 of 1..100":           {seq(100), 99, 99 * time.Millisecond},
		"p99.9 of 1..1000":        {seq(1000), 99.9, 999 * time.Millisecond},
		"p100 is the max":         {seq(100), 100, 100 * time.Millisecond},
		"p0 is the min":           {seq(100), 0, time.Millisecond},
		"p25 of 4 rounds up":      {seq(4), 25, time.Millisecond},
		"p26 of 4 rounds up":      {seq(4), 26, 2 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Errorf("percentile(p%g) = %s, want %s", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarizeSortsAndConvertsToMilliseconds(t *testing.T) {
	// 1..100 ms, shuffled, plus a 1.5 s outlier: 101 values.
	var lat []time.Duration
	for i := range 100 {
		lat = append(lat, time.Duration((i*37)%100+1)*time.Millisecond)
	}
	lat = append(lat, 1500*time.Millisecond)
	got := summarize(lat)
	want := latencySummary{P50: 51, P90: 91, P99: 100, Max: 1500}
	if got != want {
		t.Errorf("summary %+v, want %+v", got, want)
	}
	if s := summarize([]time.Duration{1234567 * time.Nanosecond}); s.P50 != 1.235 {
		t.Errorf("1.234567ms reported as %g, want 1.235 (microsecond rounding)", s.P50)
	}
}

func TestAppendEventIsValidJSON(t *testing.T) {
	for name, e := range map[string]wireEvent{
		"plain":        {User: "u1", Item: "i1", Type: "click", Time: t0},
		"follow":       {User: "u1", Author: "a1", Type: "follow", Time: t0.Add(time.Nanosecond)},
		"quotes":       {User: `u"1`, Item: `i\1`, Type: "like", Time: t0},
		"control":      {User: "u\x01\n", Item: "i", Type: "share", Time: t0},
		"unicode":      {User: "ü€😀", Item: "<i&>", Type: "impression", Time: t0},
		"zone and sub": {User: "u", Item: "i", Type: "click", Time: time.Date(2025, 3, 1, 1, 2, 3, 456789, time.FixedZone("x", 3600))},
	} {
		t.Run(name, func(t *testing.T) {
			var enc batchEncoder
			enc.add(&e, serverMaxBodyBytes)
			enc.add(&e, serverMaxBodyBytes)
			var got struct {
				Events []postedEvent `json:"events"`
			}
			if err := json.Unmarshal(enc.body(), &got); err != nil {
				t.Fatalf("%s: %v", enc.buf, err)
			}
			want := postedEvent{User: e.User, Item: e.Item, Author: e.Author, Type: e.Type, Time: e.Time}
			if !equalEvents(got.Events, []postedEvent{want, want}) {
				t.Errorf("decoded %+v, want twice %+v", got.Events, want)
			}
		})
	}
}
