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
	"math/rand/v2"
	"os"
	"path/filepath"
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

// BenchmarkMemoryReplay opens a Memory store whose log holds 2,000,000
// events (20,000 batches of benchBatch: 10,000 users, 100,000 items), as
// written (compaction off) and compacted (RECPIPELINE_BENCH_COMPACT_MB, 16
// by default), and reports the log's size: what a restart reads.
func BenchmarkMemoryReplay(b *testing.B) {
	for _, compact := range []bool{false, true} {
		name := "whole"
		if compact {
			name = "compacted"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			opts := MemoryOptions{Fsync: FsyncInterval, CompactBytes: -1, Logger: slog.New(slog.DiscardHandler)}
			if compact {
				opts.CompactBytes = 16 << 20
				if v, err := strconv.Atoi(os.Getenv("RECPIPELINE_BENCH_COMPACT_MB")); err == nil && v > 0 {
					opts.CompactBytes = int64(v) << 20
				}
			}
			m, err := OpenMemory(dir, opts)
			if err != nil {
				b.Fatal(err)
			}
			for i := range 20000 {
				if err := m.Apply(context.Background(), benchBatch(i)); err != nil {
					b.Fatal(err)
				}
			}
			compactions := m.c.compactions.Load()
			if err := m.Close(); err != nil {
				b.Fatal(err)
			}
			if compact && compactions == 0 {
				b.Fatal("no compaction")
			}
			info, err := os.Stat(filepath.Join(dir, logName))
			if err != nil {
				b.Fatal(err)
			}
			opts.CompactBytes = -1
			b.ResetTimer()
			for range b.N {
				m, err := OpenMemory(dir, opts)
				if err != nil {
					b.Fatal(err)
				}
				_ = m.Close()
			}
			b.ReportMetric(float64(info.Size())/(1<<20), "log-MiB")
			b.ReportMetric(float64(compactions), "compactions")
		})
	}
}

// BenchmarkMemoryUserList reads a user's 50-item list among 10,000 users'
// lists: the List stored is returned, nothing is allocated.
func BenchmarkMemoryUserList(b *testing.B) {
	m, err := OpenMemory(b.TempDir(), MemoryOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	created := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	items := make([]ListItem, 50)
	for k := range items {
		items[k] = ListItem{Item: "i" + itoa(k), Score: float64(50 - k), Sources: []string{"follows"}}
	}
	lists := make([]List, 10000)
	users := make([]string, len(lists))
	for k := range lists {
		users[k] = "u" + itoa(k)
		lists[k] = List{User: users[k], Items: items, Arm: "main", Revision: "r1", Created: created, Expires: created.Add(24 * time.Hour)}
	}
	ctx := context.Background()
	if err := m.PutLists(ctx, lists, created); err != nil {
		b.Fatal(err)
	}
	now := created.Add(time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l, err := m.UserList(ctx, users[i%len(users)], now)
		if err != nil || l == nil || len(l.Items) != 50 {
			b.Fatalf("UserList = %v, %v", l, err)
		}
	}
}

// BenchmarkMemoryRecentByAuthors reads the newest 400 items of 30 followed
// authors among 2,000 (the newest 100 items kept of each), as the
// followed-authors source does for every request.
func BenchmarkMemoryRecentByAuthors(b *testing.B) {
	m, err := OpenMemory(b.TempDir(), MemoryOptions{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	events := make([]Event, 0, 2000*200)
	for k := range 2000 * 200 {
		author := "a" + itoa(rng.IntN(2000))
		events = append(events, Event{Type: NewItem, Item: "i" + itoa(k), Author: author, Time: start.Add(time.Duration(k) * time.Second)})
	}
	if err := m.Apply(ctx, events); err != nil {
		b.Fatal(err)
	}
	follows := make([]string, 30)
	for k := range follows {
		follows[k] = "a" + itoa(k*61)
	}
	var buf []ItemTime
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		got, err := m.RecentByAuthors(ctx, follows, time.Time{}, 400, buf)
		if err != nil || len(got) != 400 {
			b.Fatalf("got %d items, %v", len(got), err)
		}
		buf = got
	}
}
