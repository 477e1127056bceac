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
