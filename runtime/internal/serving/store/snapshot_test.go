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
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// mixedEvents is a random day of every kind of event from users users on
// items items by authors authors, oldest first.
func mixedEvents(rng *rand.Rand, n, users, items, authors int) []Event {
	kinds := []EventType{Impression, Impression, Impression, Click, Like, Comment, Share, SeeLess, Follow, Unfollow, NewItem, Integrity}
	out := make([]Event, n)
	for k := range out {
		e := Event{Type: kinds[rng.IntN(len(kinds))], Time: at(float64(k) * 7)}
		item := rng.IntN(items)
		switch e.Type {
		case NewItem:
			e.Item, e.Author, e.Risk = fmt.Sprintf("new-%d", k), fmt.Sprintf("au-%d", rng.IntN(authors)), float64(rng.IntN(3))/4
		case Integrity:
			e.Item, e.Risk = fmt.Sprintf("it-%d", item), rng.Float64()
		case Follow, Unfollow:
			e.User, e.Author = fmt.Sprintf("us-%d", rng.IntN(users)), fmt.Sprintf("au-%d", rng.IntN(authors))
		case SeeLess:
			e.User, e.Item, e.Author = fmt.Sprintf("us-%d", rng.IntN(users)), fmt.Sprintf("it-%d", item), fmt.Sprintf("au-%d", item%authors)
		default:
			e.User, e.Item = fmt.Sprintf("us-%d", rng.IntN(users)), fmt.Sprintf("it-%d", item)
		}
		out[k] = e
	}
	return out
}

// answers is everything a store answers about users and authors.
type answers struct {
	Follows     map[string][]string
	Engagements map[string][]Engagement
	Seen        map[string]*Filter
	Recent      []ItemTime
	Popular     []ItemScore
	Published   []ItemTime
	Risks       map[string]float64
	Newest      time.Time
	Active      []UserActivity
}

func answersOf(t *testing.T, m *Memory, users, authors int) answers {
	t.Helper()
	ctx := context.Background()
	a := answers{Follows: map[string][]string{}, Engagements: map[string][]Engagement{}, Seen: map[string]*Filter{}}
	for u := range users {
		id := fmt.Sprintf("us-%d", u)
		var err error
		if a.Follows[id], err = m.Follows(ctx, id); err != nil {
			t.Fatal(err)
		}
		if a.Engagements[id], err = m.RecentEngagements(ctx, id, 1000); err != nil {
			t.Fatal(err)
		}
		if a.Seen[id], err = m.Seen(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for k := range authors {
		all = append(all, fmt.Sprintf("au-%d", k))
	}
	var err error
	if a.Recent, err = m.RecentByAuthors(ctx, all, time.Time{}, 100000, nil); err != nil {
		t.Fatal(err)
	}
	if a.Popular, err = m.Popular(ctx, at(1e6), 100000); err != nil {
		t.Fatal(err)
	}
	if a.Published, err = m.NewItems(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Risks, err = m.Risks(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Newest, err = m.NewestEvent(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Active, err = m.ActiveUsers(ctx, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestMemoryCompactsItsLog: a store whose log passes CompactBytes replaces
// it with a snapshot, so that the file stays bounded, and answers exactly
// as a store fed the same events that never compacts, before and after
// both are reopened.
func TestMemoryCompactsItsLog(t *testing.T) {
	const users, items, authors = 40, 300, 12
	so := StateOptions{SeenItems: 50, SeeLess: 10, RecentEngagements: 8, AuthorItems: 6, Follows: 5, NewItems: 40, PopularItems: 100}
	compacting, plain := tempDir(t), tempDir(t)
	c := openMemory(t, compacting, MemoryOptions{State: so, CompactBytes: 16 << 10, PopularRefresh: -1})
	p := openMemory(t, plain, MemoryOptions{State: so, CompactBytes: -1, PopularRefresh: -1})
	rng := rand.New(rand.NewPCG(7, 7))
	events := mixedEvents(rng, 30000, users, items, authors)
	ctx := context.Background()
	for len(events) > 0 {
		n := min(len(events), 1+rng.IntN(40))
		for _, m := range []*Memory{c, p} {
			if err := m.Apply(ctx, events[:n]); err != nil {
				t.Fatal(err)
			}
		}
		events = events[n:]
	}
	if c.c.compactions.Load() == 0 {
		t.Fatalf("the log grew to %d bytes without a compaction", fileSize(t, filepath.Join(compacting, logName)))
	}
	if p.c.compactions.Load() != 0 {
		t.Fatal("a store with compaction off compacted")
	}
	cs, ps := fileSize(t, filepath.Join(compacting, logName)), fileSize(t, filepath.Join(plain, logName))
	if cs >= ps/4 {
		t.Errorf("compacted log %d bytes, the whole log %d: want a fraction", cs, ps)
	}
	t.Logf("%d compactions; log %d bytes against %d", c.c.compactions.Load(), cs, ps)
	want := answersOf(t, p, users, authors)
	if got := answersOf(t, c, users, authors); !reflect.DeepEqual(got, want) {
		t.Errorf("the compacting store answers differently:\n got %+v\nwant %+v", got, want)
	}
	for _, m := range []*Memory{c, p} {
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
	reopened := openMemory(t, compacting, MemoryOptions{State: so, CompactBytes: -1, PopularRefresh: -1})
	if rec := reopened.Recovery(); rec.SnapshotBytes == 0 || rec.TornRecords != 0 {
		t.Errorf("reopening the compacted log: %+v, want a snapshot and nothing torn", rec)
	}
	if got := answersOf(t, reopened, users, authors); !reflect.DeepEqual(got, want) {
		t.Errorf("the reopened compacted store answers differently:\n got %+v\nwant %+v", got, want)
	}
}

// TestMemoryIgnoresAnUnfinishedCompaction: a compacted log written but
// never renamed into place (a crash in between) is removed at open and
// changes nothing.
func TestMemoryIgnoresAnUnfinishedCompaction(t *testing.T) {
	dir := tempDir(t)
	m := openMemory(t, dir, MemoryOptions{})
	applyBatches(t, m, 1, 2)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, logName+compactSuffix)
	if err := os.WriteFile(half, []byte(logMagic+"partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	m = openMemory(t, dir, MemoryOptions{})
	checkBatch(t, m, 1, 5)
	checkBatch(t, m, 2, 5)
	if _, err := os.Stat(half); !os.IsNotExist(err) {
		t.Errorf("the unfinished compaction is still there: %v", err)
	}
}

// TestMemoryRefusesACorruptSnapshot: a snapshot record is checked like any
// other: a flipped bit in it, with more of the log after it, refuses to
// open.
func TestMemoryRefusesACorruptSnapshot(t *testing.T) {
	dir := tempDir(t)
	m := openMemory(t, dir, MemoryOptions{CompactBytes: 1 << 10})
	for id := range 20 {
		applyBatches(t, m, id)
	}
	if m.c.compactions.Load() == 0 {
		t.Fatal("no compaction")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, logName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b[len(logMagic)+recordHeader] != snapshotVersion {
		t.Fatalf("the compacted log does not start with a snapshot record")
	}
	b[len(logMagic)+recordHeader+3] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMemory(dir, MemoryOptions{}); !errors.Is(err, ErrCorruptLog) {
		t.Errorf("opening a log with a corrupt snapshot: %v, want ErrCorruptLog", err)
	}
}
