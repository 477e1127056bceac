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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// batchEvents returns the events of test batch id: n items published by
// author "au-<id>", each clicked by user "us-<id>".
func batchEvents(id, n int) []Event {
	events := make([]Event, 0, 2*n)
	for j := range n {
		item := fmt.Sprintf("it-%d-%d", id, j)
		events = append(events,
			Event{Type: NewItem, Item: item, Author: fmt.Sprintf("au-%d", id), Time: at(float64(j))},
			Event{Type: Click, User: fmt.Sprintf("us-%d", id), Item: item, Time: at(float64(j))})
	}
	return events
}

// checkBatch fails the test unless every event of batch id is in s.
func checkBatch(t *testing.T, s Store, id, n int) {
	t.Helper()
	ctx := context.Background()
	items, err := s.RecentByAuthors(ctx, []string{fmt.Sprintf("au-%d", id)}, time.Time{}, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	engs, err := s.RecentEngagements(ctx, fmt.Sprintf("us-%d", id), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != n || len(engs) != n {
		t.Errorf("batch %d: %d items and %d engagements, want %d of each", id, len(items), len(engs), n)
	}
}

func openMemory(t *testing.T, dir string, o MemoryOptions) *Memory {
	t.Helper()
	m, err := OpenMemory(dir, o)
	if err != nil {
		t.Fatalf("OpenMemory: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func applyBatches(t *testing.T, m *Memory, ids ...int) {
	t.Helper()
	for _, id := range ids {
		if err := m.Apply(context.Background(), batchEvents(id, 5)); err != nil {
			t.Fatalf("Apply batch %d: %v", id, err)
		}
	}
}

func TestMemoryReplaysLogAfterReopen(t *testing.T) {
	for _, policy := range []FsyncPolicy{FsyncAlways, FsyncInterval} {
		t.Run(string(policy), func(t *testing.T) {
			dir := tempDir(t)
			m := openMemory(t, dir, MemoryOptions{Fsync: policy})
			applyBatches(t, m, 1, 2, 3)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			re := openMemory(t, dir, MemoryOptions{Fsync: policy})
			want := RecoveryStats{Records: 3, Events: 30}
			if got := re.Recovery(); got != want {
				t.Errorf("Recovery = %+v, want %+v", got, want)
			}
			for _, id := range []int{1, 2, 3} {
				checkBatch(t, re, id, 5)
			}
		})
	}
}

func TestMemoryDropsTornTail(t *testing.T) {
	full := appendRecord(nil, batchEvents(9, 5))
	corrupt := append([]byte(nil), full...)
	corrupt[len(corrupt)-1] ^= 0xff
	cases := map[string][]byte{
		"partial header":                 full[:5],
		"partial payload":                full[:len(full)-3],
		"checksum mismatch":              corrupt,
		"zero-filled tail":               make([]byte, 4096),
		"length beyond the end":          {0xff, 0xff, 0x00, 0x00, 1, 2, 3, 4, 1, 1},
		"length beyond the largest size": {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 1, 1},
	}
	for name, tail := range cases {
		t.Run(name, func(t *testing.T) {
			dir := tempDir(t)
			m := openMemory(t, dir, MemoryOptions{})
			applyBatches(t, m, 1, 2, 3)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, logName)
			good := fileSize(t, path)
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tail); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()

			re := openMemory(t, dir, MemoryOptions{})
			want := RecoveryStats{Records: 3, Events: 30, TornRecords: 1, TruncatedBytes: int64(len(tail))}
			if got := re.Recovery(); got != want {
				t.Errorf("Recovery = %+v, want %+v", got, want)
			}
			if got := fileSize(t, path); got != good {
				t.Errorf("log is %d bytes after recovery, want %d", got, good)
			}
			for _, id := range []int{1, 2, 3} {
				checkBatch(t, re, id, 5)
			}
			checkBatch(t, re, 9, 0)

			// The log goes on after the cut.
			applyBatches(t, re, 4)
			if err := re.Close(); err != nil {
				t.Fatal(err)
			}
			again := openMemory(t, dir, MemoryOptions{})
			if got, want := again.Recovery(), (RecoveryStats{Records: 4, Events: 40}); got != want {
				t.Errorf("Recovery after appending = %+v, want %+v", got, want)
			}
			checkBatch(t, again, 4, 5)
		})
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func TestMemoryRecoversTornHeader(t *testing.T) {
	dir := tempDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, logName), []byte(logMagic[:3]), 0o644); err != nil {
		t.Fatal(err)
	}
	m := openMemory(t, dir, MemoryOptions{})
	if got, want := m.Recovery(), (RecoveryStats{TornRecords: 1, TruncatedBytes: 3}); got != want {
		t.Errorf("Recovery = %+v, want %+v", got, want)
	}
	applyBatches(t, m, 1)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	checkBatch(t, openMemory(t, dir, MemoryOptions{}), 1, 5)
}

func TestMemoryRefusesForeignFile(t *testing.T) {
	dir := tempDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, logName), []byte("not a store log at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err := OpenMemory(dir, MemoryOptions{}); err == nil {
		_ = m.Close()
		t.Fatal("OpenMemory of a foreign file succeeded, want an error")
	}
}

func TestMemoryOptionsValidated(t *testing.T) {
	cases := map[string]MemoryOptions{
		"unknown fsync policy": {Fsync: "sometimes"},
		"negative weight":      {State: StateOptions{Weights: map[EventType]float64{Click: -1}}},
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			if m, err := OpenMemory(tempDir(t), o); err == nil {
				_ = m.Close()
				t.Fatal("OpenMemory succeeded, want an error")
			}
		})
	}
}

func TestMemoryClosed(t *testing.T) {
	m := openMemory(t, tempDir(t), MemoryOptions{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Apply(ctx, batchEvents(1, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Apply after Close = %v, want ErrClosed", err)
	}
	if _, err := m.Follows(ctx, "u"); !errors.Is(err, ErrClosed) {
		t.Errorf("Follows after Close = %v, want ErrClosed", err)
	}
	if err := m.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
}

func TestMemoryHonoursCanceledContext(t *testing.T) {
	m := openMemory(t, tempDir(t), MemoryOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Apply(ctx, batchEvents(1, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply = %v, want context.Canceled", err)
	}
	checkBatch(t, m, 1, 0)
}

// TestMemoryConcurrentApplyAndRead applies from many goroutines while others
// read, then checks every batch, live and after replay.
func TestMemoryConcurrentApplyAndRead(t *testing.T) {
	dir := tempDir(t)
	m := openMemory(t, dir, MemoryOptions{PopularRefresh: -1})
	const writers, perWriter = 8, 25
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for b := range perWriter {
				if err := m.Apply(ctx, batchEvents(w*1000+b, 4)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for r := range 4 {
		readers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := (r+i)%writers*1000 + i%perWriter
				_, _ = m.RecentByAuthors(ctx, []string{fmt.Sprintf("au-%d", id)}, time.Time{}, 10, nil)
				_, _ = m.RecentEngagements(ctx, fmt.Sprintf("us-%d", id), 10)
				_, _ = m.Seen(ctx, fmt.Sprintf("us-%d", id))
				_, _ = m.Popular(ctx, at(0), 10)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check := func(s Store) {
		for w := range writers {
			for b := range perWriter {
				checkBatch(t, s, w*1000+b, 4)
			}
		}
		top, err := s.Popular(ctx, at(0), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != writers*perWriter*4 {
			t.Errorf("Popular has %d items, want %d", len(top), writers*perWriter*4)
		}
	}
	check(m)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	check(openMemory(t, dir, MemoryOptions{PopularRefresh: -1}))
}

const crashChildEnv = "STORE_TEST_CRASH_CHILD_DIR"

// crashChild is the child process of TestMemoryKeepsAcknowledgedBatchesAfterKill:
// it applies batches from several goroutines and prints "ack <id>" once each
// Apply returns, until it is killed.
func crashChild(dir string) int {
	m, err := OpenMemory(dir, MemoryOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Minute) // in case nobody kills us
	for g := range 4 {
		wg.Go(func() {
			for b := 0; time.Now().Before(deadline); b++ {
				id := g*1_000_000 + b
				if err := m.Apply(context.Background(), batchEvents(id, 10)); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d\n", id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}

// TestMemoryKeepsAcknowledgedBatchesAfterKill kills a process that is applying
// batches with SIGKILL and checks that every batch it acknowledged survives.
func TestMemoryKeepsAcknowledgedBatchesAfterKill(t *testing.T) {
	dir := tempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "ack "))
		if err != nil {
			t.Errorf("child wrote %q", sc.Text())
			continue
		}
		acked = append(acked, id)
		if len(acked) == 300 {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Acks written before the kill are still read above, up to EOF.
	err = cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged %d batches before it ended (%v), want at least 300", len(acked), err)
	}
	m := openMemory(t, dir, MemoryOptions{})
	rec := m.Recovery()
	t.Logf("child acknowledged %d batches; replay: %+v", len(acked), rec)
	if rec.Records < len(acked) {
		t.Errorf("replayed %d records, fewer than the %d acknowledged", rec.Records, len(acked))
	}
	for _, id := range acked {
		checkBatch(t, m, id, 10)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	batch := []Event{
		{Type: Impression, User: "ü", Item: "ítem|with|bars", Time: at(-1e6)},
		{Type: SeeLess, User: "u", Author: "a", Time: time.UnixMilli(0)},
		{Type: NewItem, Item: strings.Repeat("x", 300), Author: "a", Time: at(1.5)},
		{Type: Unfollow, User: "u", Author: "", Time: at(2)},
	}
	rec := appendRecord(nil, batch)
	got, err := decodePayload(rec[recordHeader:])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(batch) {
		t.Fatalf("decoded %d events, want %d", len(got), len(batch))
	}
	for i := range batch {
		if got[i].Type != batch[i].Type || got[i].User != batch[i].User || got[i].Item != batch[i].Item ||
			got[i].Author != batch[i].Author || !got[i].Time.Equal(batch[i].Time) {
			t.Errorf("event %d = %+v, want %+v", i, got[i], batch[i])
		}
	}
	for cut := 1; cut < len(rec)-recordHeader; cut++ {
		if _, err := decodePayload(rec[recordHeader : len(rec)-cut]); err == nil {
			t.Errorf("payload cut by %d bytes decoded without error", cut)
		}
	}
}

func TestRecentSetStaysBounded(t *testing.T) {
	var s recentSet
	for i := range 10000 {
		s.add(strconv.Itoa(i%3), 5)
		s.add(strconv.Itoa(i), 5)
	}
	if s.len() != 5 {
		t.Errorf("recentSet holds %d keys, want 5", s.len())
	}
	if live := len(s.order) - s.head; live > 2*5+16 {
		t.Errorf("recentSet keeps %d entries for 5 keys", live)
	}
	for _, k := range []string{"9999", "9998", "9997", "0", "2"} {
		if !slices.Contains(slices.Collect(s.all), k) {
			t.Errorf("recentSet lacks recent key %q; has %v", k, slices.Collect(s.all))
		}
	}
}

// TestRecentSetSmallAndLarge: a set keeps the newest distinct keys, oldest
// first, whether it holds them in its list alone (up to smallSet keys) or
// with a map past that, across the switch, and bounded by size either way;
// a map-backed reference says what it must hold.
func TestRecentSetSmallAndLarge(t *testing.T) {
	for _, size := range []int{1, 3, smallSet, smallSet + 1, 40} {
		var s recentSet
		var ref []string // distinct keys, oldest first
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		for i := range 2000 {
			k := strconv.Itoa(rng.IntN(min(8+i/10, 60)))
			s.add(k, size)
			ref = slices.DeleteFunc(ref, func(x string) bool { return x == k })
			ref = append(ref, k)
			if len(ref) > size {
				ref = ref[len(ref)-size:]
			}
			got := slices.Collect(s.all)
			if !slices.Equal(got, ref) || s.len() != len(ref) {
				t.Fatalf("size %d, add %d of %q: keys %v (len %d), want %v", size, i, k, got, s.len(), ref)
			}
		}
		if size > smallSet && s.last == nil {
			t.Errorf("size %d: %d keys held without a map", size, s.len())
		}
		if size <= smallSet && s.last != nil {
			t.Errorf("size %d: a map for at most %d keys", size, size)
		}
	}
}

// Two stores on one directory would interleave appends to one log: the
// second is refused while the first is open, and opens once it is closed.
func TestOneStorePerDirectory(t *testing.T) {
	dir := t.TempDir()
	first, err := OpenMemory(dir, MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second, err := OpenMemory(dir, MemoryOptions{}); err == nil || !strings.Contains(err.Error(), "held by another store") {
		if second != nil {
			_ = second.Close()
		}
		t.Fatalf("a second store on the directory opened (err %v), want it refused", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := OpenMemory(dir, MemoryOptions{})
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	_ = again.Close()
}

// TestMemoryRefusesACorruptLog: a bad record with more of the log after
// it is not a torn tail: the store refuses to open, names the record, and
// leaves the file as it was (before, one flipped bit in the first record
// dropped every event after it and the server started).
func TestMemoryRefusesACorruptLog(t *testing.T) {
	first := int64(len(logMagic))
	cases := map[string]struct {
		at   func(size int64) int64 // the byte to flip
		want string
	}{
		"payload bit of the first record":   {func(int64) int64 { return first + recordHeader + 3 }, "record 1 at byte 8: checksum mismatch"},
		"length bit of the first record":    {func(int64) int64 { return first + 3 }, "record 1 at byte 8: length"},
		"checksum bit of the second record": {func(int64) int64 { return first + int64(len(appendRecord(nil, batchEvents(1, 5)))) + 5 }, "record 2 at byte"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := tempDir(t)
			m := openMemory(t, dir, MemoryOptions{})
			applyBatches(t, m, 1, 2, 3)
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, logName)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[tc.at(int64(len(b)))] ^= 0x40
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = OpenMemory(dir, MemoryOptions{})
			if !errors.Is(err, ErrCorruptLog) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenMemory: %v, want ErrCorruptLog naming %q", err, tc.want)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, b) {
				t.Errorf("the corrupt log was changed: %d bytes, was %d", len(after), len(b))
			}
		})
	}
}

// TestMemoryReportsABrokenLog: after a write fails (here the log's file is
// closed under the store), Apply fails and Err says why, so that the
// server's probes can fail and the pod be restarted; before, only every
// later POST failed.
func TestMemoryReportsABrokenLog(t *testing.T) {
	m := openMemory(t, tempDir(t), MemoryOptions{Fsync: FsyncAlways})
	applyBatches(t, m, 1)
	if err := m.Err(); err != nil {
		t.Fatalf("Err of a working store = %v", err)
	}
	_ = m.c.f.Close()
	if err := m.Apply(context.Background(), batchEvents(2, 5)); err == nil {
		t.Fatal("Apply succeeded on a log that cannot be written")
	}
	if err := m.Err(); err == nil || !strings.Contains(err.Error(), "failed to write log") {
		t.Errorf("Err after a failed write = %v, want the write's failure", err)
	}
}

// TestMemoryForgetsTheLeastRecentlyActiveUsersPastItsCap: a flood of new
// user ids keeps the state at opts.Users, and the users active since are
// kept.
func TestMemoryForgetsTheLeastRecentlyActiveUsersPastItsCap(t *testing.T) {
	const capUsers = 20 * shards
	m := openMemory(t, tempDir(t), MemoryOptions{State: StateOptions{Users: capUsers}, PopularRefresh: -1})
	ctx := context.Background()
	follow := func(user string, s float64) {
		t.Helper()
		if err := m.Apply(ctx, []Event{ev(Follow, user, "", "a", s)}); err != nil {
			t.Fatal(err)
		}
	}
	follow("regular", 0)
	for i := range 5000 {
		follow(fmt.Sprintf("flood-%d", i), float64(i))
		if i%100 == 0 {
			follow("regular", float64(i)) // active all along
		}
	}
	kept := 0
	for i := range m.st.users {
		kept += len(m.st.users[i].users)
	}
	if kept > capUsers {
		t.Errorf("%d users kept, want at most %d", kept, capUsers)
	}
	if n := m.st.evicted.Load(); n < 5001-capUsers {
		t.Errorf("%d users evicted, want at least %d", n, 5001-capUsers)
	}
	for _, user := range []string{"regular", "flood-4999"} {
		if f, err := m.Follows(ctx, user); err != nil || len(f) != 1 {
			t.Errorf("%s follows %v (%v); an active user's state was forgotten", user, f, err)
		}
	}
	if f, _ := m.Follows(ctx, "flood-0"); len(f) != 0 {
		t.Errorf("the first of the flood is still kept: the state grew past its cap")
	}
}

// TestNormalizeSharesTheTypeConstants: events decoded from JSON carry their
// types as strings of their own; once accepted they carry the constants, so
// that the engagements the state remembers do not each keep one.
func TestNormalizeSharesTheTypeConstants(t *testing.T) {
	var events []Event
	body := `[{"User":"u1","Item":"i1","Type":"click"},{"User":"u1","Item":"i2","Type":"like"},{"User":"u1","Author":"a1","Type":"follow"}]`
	if err := json.Unmarshal([]byte(body), &events); err != nil {
		t.Fatal(err)
	}
	out, err := normalize(events, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []EventType{Click, Like, Follow} {
		if got := out[i].Type; got != want || unsafe.StringData(string(got)) != unsafe.StringData(string(want)) {
			t.Errorf("event %d: type %q at %p, want the constant %q at %p", i, got, unsafe.StringData(string(got)), want, unsafe.StringData(string(want)))
		}
	}
}
