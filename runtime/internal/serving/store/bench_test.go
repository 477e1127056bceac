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

package store

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

func itoa(i int) string { return strconv.Itoa(i) }

// benchBatch returns a batch of 100 events: mostly impressions, some
// engagements, over 10,000 users and 100,000 items.
func benchBatch(seq int) []Event {
	events := make([]Event, 100)
	now := time.Now()
	for i := range events {
		n := seq*100 + i
		typ := Impression
		switch n % 10 {
		case 0:
			typ = Click
		case 1:
			typ = Like
		}
		events[i] = Event{Type: typ, User: "u" + itoa(n%10000), Item: "i" + itoa(n*7919%100000), Time: now}
	}
	return events
}

func benchApply(b *testing.B, s Store) {
	b.Helper()
	const pregenerated = 256
	batches := make([][]Event, pregenerated)
	for i := range batches {
		batches[i] = benchBatch(i)
	}
	var seq atomic.Int64
	ctx := context.Background()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Apply(ctx, batches[seq.Add(1)%pregenerated]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*100/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkMemoryApply applies batches of 100 events from many goroutines,
// syncing the log before each Apply returns.
func BenchmarkMemoryApply(b *testing.B) {
	m, err := OpenMemory(b.TempDir(), MemoryOptions{Fsync: FsyncAlways, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	benchApply(b, m)
}

// BenchmarkRedisApply applies batches of 100 events from many goroutines.
func BenchmarkRedisApply(b *testing.B) {
	addr := needRedis(b)
	r, err := OpenRedis(context.Background(), RedisOptions{Address: addr, Prefix: fmt.Sprintf("bench%d:", time.Now().UnixNano())})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	benchApply(b, r)
}
