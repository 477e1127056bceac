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
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Memory store's lists are a cache: a restart loses them.
func TestMemoryListsAreNotLogged(t *testing.T) {
	dir := tempDir(t)
	m := openMemory(t, dir, MemoryOptions{})
	ctx := context.Background()
	if err := m.PutLists(ctx, []List{list("u1", 0, 60, "i1")}, clock(0)); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.UserList(ctx, "u1", clock(1)); got == nil {
		t.Fatal("UserList = nil before the restart, want the list")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	re := openMemory(t, dir, MemoryOptions{})
	if got, err := re.UserList(ctx, "u1", clock(1)); err != nil || got != nil {
		t.Errorf("UserList after a restart = %+v (%v), want none", got, err)
	}
	if rec := re.Recovery(); rec.Records != 0 {
		t.Errorf("the log holds %d records after only lists were put, want 0", rec.Records)
	}
}

// Past the store's user bound the soonest-expiring lists are dropped, and
// the lists expired at a put's now are dropped from the shards it writes.
func TestMemoryListsAreBounded(t *testing.T) {
	const perShard = 2
	m := openMemory(t, tempDir(t), MemoryOptions{State: StateOptions{Users: perShard * shards}})
	ctx := context.Background()
	// User k's list expires at minute 100+k: the later users' lists are
	// the ones to keep.
	var batch []List
	for k := range 2000 {
		batch = append(batch, list(fmt.Sprintf("u%d", k), 0, float64(100+k), "i1"))
	}
	if err := m.PutLists(ctx, batch, clock(0)); err != nil {
		t.Fatal(err)
	}
	if n := m.lists.len(); n > perShard*shards {
		t.Errorf("%d lists kept, want at most %d", n, perShard*shards)
	}
	for k, l := range batch {
		got, err := m.UserList(ctx, l.User, clock(1))
		if err != nil {
			t.Fatal(err)
		}
		sh := m.lists.shard(l.User)
		// A list is kept when fewer than perShard later-expiring lists
		// share its shard.
		later := 0
		for _, o := range batch[k+1:] {
			if m.lists.shard(o.User) == sh {
				later++
			}
		}
		if kept := got != nil; kept != (later < perShard) {
			t.Fatalf("list of %s kept: %v, with %d later-expiring lists in its shard (bound %d)", l.User, kept, later, perShard)
		}
	}

	// At minute 5000 every list put so far has expired: a batch that
	// writes to every shard drops them all.
	batch = batch[:0]
	for k := range 2000 {
		batch = append(batch, list(fmt.Sprintf("v%d", k), 5000, 6000+float64(k)/1000, "i1"))
	}
	written := map[*listShard]bool{}
	for _, l := range batch {
		written[m.lists.shard(l.User)] = true
	}
	if len(written) != shards {
		t.Fatalf("the batch writes to %d shards of %d", len(written), shards)
	}
	if err := m.PutLists(ctx, batch, clock(5000)); err != nil {
		t.Fatal(err)
	}
	for i := range m.lists.shards {
		sh := &m.lists.shards[i]
		for user, e := range sh.byUser {
			if user[0] != 'v' || !e.list.Expires.After(clock(5000)) {
				t.Errorf("the list of %s, expiring at %v, is still kept", user, e.list.Expires)
			}
		}
	}
}

// The activity of the users a Memory store forgets past its bound is
// forgotten too.
func TestMemoryForgetsTheActivityOfForgottenUsers(t *testing.T) {
	const capUsers = 2 * shards
	m := openMemory(t, tempDir(t), MemoryOptions{State: StateOptions{Users: capUsers}, Fsync: FsyncInterval})
	ctx := context.Background()
	for i := range 2000 {
		if err := m.Apply(ctx, []Event{ev(Impression, fmt.Sprintf("u%d", i), "i1", "", float64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.ActiveUsers(ctx, at(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > capUsers || len(got) == 0 {
		t.Errorf("ActiveUsers lists %d users, want some and at most the %d kept", len(got), capUsers)
	}
	for _, a := range got {
		if f, _ := m.Seen(ctx, a.User); f.Len() != 1 {
			t.Errorf("ActiveUsers lists %s, whose state was forgotten", a.User)
		}
	}
}

// A compacted log (a snapshot) restores each user's activity.
func TestMemoryActivitySurvivesCompaction(t *testing.T) {
	dir := tempDir(t)
	m := openMemory(t, dir, MemoryOptions{CompactBytes: 1 << 10})
	ctx := context.Background()
	for i, batch := range activityBatches {
		if err := m.Apply(ctx, batch); err != nil {
			t.Fatalf("Apply batch %d: %v", i, err)
		}
	}
	for i := range 40 { // past CompactBytes, with users of their own
		if err := m.Apply(ctx, []Event{ev(Impression, fmt.Sprintf("filler%d", i), "i1", "", -1)}); err != nil {
			t.Fatal(err)
		}
	}
	if m.c.compactions.Load() == 0 {
		t.Fatal("no compaction")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	re := openMemory(t, dir, MemoryOptions{CompactBytes: -1})
	if rec := re.Recovery(); rec.SnapshotBytes == 0 {
		t.Fatalf("the reopened log has no snapshot: %+v", rec)
	}
	// activityQueries skip the fillers: their events are before at(0),
	// and the queries with no since are left out.
	checkActivity(t, re, activityQueries[2:])
	got, err := re.ActiveUsers(ctx, at(-1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 44 {
		t.Errorf("ActiveUsers lists %d users after the compaction, want 44", len(got))
	}
}

// v2Snapshot returns a log in the format of the snapshots written before
// users' activity was kept (version 2): a user "old" who follows "au",
// clicked i1, saw i2 and see-less'd author "as"; i1's popularity; and the
// meta record.
func v2Snapshot(t *testing.T) []byte {
	t.Helper()
	record := func(kind byte, entry []byte) []byte {
		buf, start := beginRecord(nil)
		buf = append(buf, snapshotVersionNoActivity, kind)
		buf = binary.AppendUvarint(buf, 1)
		buf = append(buf, entry...)
		return finishRecord(buf, start)
	}
	var user []byte
	user = appendString(user, "old")
	user = binary.AppendUvarint(user, 7) // last
	user = appendStrings(user, []string{"au"})
	user = binary.AppendUvarint(user, 1) // one engagement
	user = append(user, typeCode(Click))
	user = binary.AppendVarint(user, at(10).UnixMilli())
	user = appendString(user, "i1")
	user = appendStrings(user, []string{"i2"})
	user = appendStrings(user, nil)
	user = appendStrings(user, []string{"as"})
	pop := binary.LittleEndian.AppendUint64(appendString(nil, "i1"), math.Float64bits(3))
	var meta []byte
	meta = binary.AppendVarint(meta, at(10).UnixMilli())
	meta = binary.AppendUvarint(meta, 7)
	meta = binary.AppendVarint(meta, 0)
	out := []byte(logMagic)
	out = append(out, record(snapUsers, user)...)
	out = append(out, record(snapPopular, pop)...)
	return append(out, record(snapMeta, meta)...)
}

// A log compacted by a binary from before activity was kept still opens:
// its users are restored, and count their activity from their next event.
func TestMemoryReadsASnapshotWithoutActivity(t *testing.T) {
	dir := tempDir(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, logName), v2Snapshot(t), 0o644); err != nil {
		t.Fatal(err)
	}
	m := openMemory(t, dir, MemoryOptions{PopularRefresh: -1})
	ctx := context.Background()
	if rec := m.Recovery(); rec.Records != 3 || rec.TornRecords != 0 || rec.SnapshotBytes == 0 {
		t.Errorf("Recovery = %+v, want the 3 snapshot records", rec)
	}
	follows, _ := m.Follows(ctx, "old")
	engs, _ := m.RecentEngagements(ctx, "old", 10)
	seen, _ := m.Seen(ctx, "old")
	pop, _ := m.Popular(ctx, popularityEpoch, 10)
	newest, _ := m.NewestEvent(ctx)
	if !reflect.DeepEqual(follows, []string{"au"}) || !equalEngagements(engs, []Engagement{eng("i1", Click, 10)}) ||
		!seen.HasItem("i2") || !seen.HasAuthor("as") || seen.Len() != 2 ||
		len(pop) != 1 || pop[0].Item != "i1" || !newest.Equal(at(10)) {
		t.Errorf("the old snapshot restored follows %v, engagements %v, seen %d, popular %v, newest %v", follows, engs, seen.Len(), pop, newest)
	}
	checkActivity(t, m, []activityQuery{{}})
	if err := m.Apply(ctx, []Event{ev(Impression, "old", "i3", "", 20)}); err != nil {
		t.Fatal(err)
	}
	checkActivity(t, m, []activityQuery{{want: []UserActivity{active("old", 20, 1)}}})
	// Compacted again, in the current format, it keeps what it has.
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	c := openMemory(t, dir, MemoryOptions{CompactBytes: 1})
	for range 20 { // past twice the snapshot's size
		if err := c.Apply(ctx, []Event{ev(Impression, "new", "i3", "", 30)}); err != nil {
			t.Fatal(err)
		}
	}
	if c.c.compactions.Load() == 0 {
		t.Fatal("no compaction")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	re := openMemory(t, dir, MemoryOptions{CompactBytes: -1})
	checkActivity(t, re, []activityQuery{{want: []UserActivity{active("new", 30, 20), active("old", 20, 1)}}})
	if f, _ := re.Follows(ctx, "old"); !reflect.DeepEqual(f, []string{"au"}) {
		t.Errorf("Follows after compacting the old snapshot = %v, want [au]", f)
	}
}

// roundTrips counts the exchanges a Redis client has with the server: a
// command alone or a pipeline (MULTI/EXEC included) each count one, but
// for those that set up a new connection (HELLO, CLIENT SETINFO).
type roundTrips struct{ n int }

func connSetup(cmd redis.Cmder) bool { return cmd.Name() == "hello" || cmd.Name() == "client" }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !connSetup(cmd) {
			h.n++
		}
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && !connSetup(cmds[0]) {
			h.n++
		}
		return next(ctx, cmds)
	}
}

// A batch of 10,000 lists is one round trip, and each list's key expires
// Expires−Created after it was put.
func TestRedisPutsListsInOneRoundTrip(t *testing.T) {
	r := redisBackend(t, StateOptions{}).(*Redis)
	ctx := context.Background()
	items := make([]string, 50)
	for k := range items {
		items[k] = fmt.Sprintf("item-%d", k)
	}
	batch := make([]List, 10000)
	for k := range batch {
		batch[k] = list(fmt.Sprintf("u%d", k), 0, 90, items...)
	}
	rt := &roundTrips{}
	r.c.AddHook(rt)
	if err := r.PutLists(ctx, batch, clock(0)); err != nil {
		t.Fatal(err)
	}
	if rt.n != 1 {
		t.Errorf("PutLists of %d lists took %d round trips, want 1", len(batch), rt.n)
	}
	for _, user := range []string{"u0", "u9999"} {
		got, err := r.UserList(ctx, user, clock(1))
		if err != nil || got == nil || got.User != user || len(got.Items) != 50 {
			t.Errorf("UserList(%s) = %+v (%v), want its 50 items", user, got, err)
		}
		ttl, err := r.c.PTTL(ctx, r.key("pl", user)).Result()
		if err != nil || ttl <= 89*time.Minute || ttl > 90*time.Minute {
			t.Errorf("TTL of %s's list = %v (%v), want within (89m, 90m]", user, ttl, err)
		}
	}
}

// ActiveUsers answers for 100,000 active users in one call, reading
// 10,000 users a round trip, each user with its own count; a limit keeps
// the same first users.
func TestRedisActiveUsersScales(t *testing.T) {
	if testing.Short() {
		t.Skip("applies 200,000 events")
	}
	r := redisBackend(t, StateOptions{}).(*Redis)
	ctx := context.Background()
	const users = 100000
	events := make([]Event, 0, 20000)
	flush := func() {
		if err := r.Apply(ctx, events); err != nil {
			t.Fatal(err)
		}
		events = events[:0]
	}
	// User k has 1 + k%3 events, the latest at second k.
	for k := range users {
		for j := range 1 + k%3 {
			events = append(events, ev(Impression, fmt.Sprintf("u%06d", k), "i1", "", float64(k-j)))
		}
		if len(events) >= 19000 {
			flush()
		}
	}
	flush()
	rt := &roundTrips{}
	r.c.AddHook(rt)
	start := time.Now()
	got, err := r.ActiveUsers(ctx, at(0), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ActiveUsers of %d users took %v", len(got), time.Since(start))
	// A page of users a round trip, each page's counts read with the
	// next page, and the last page's with an empty one.
	if want := users/activityPage + 1; rt.n != want {
		t.Errorf("ActiveUsers took %d round trips, want %d", rt.n, want)
	}
	if len(got) != users {
		t.Fatalf("ActiveUsers lists %d users, want %d", len(got), users)
	}
	for i, a := range got {
		var k int
		if _, err := fmt.Sscanf(a.User, "u%06d", &k); err != nil {
			t.Fatal(err)
		}
		if a.Events != int64(1+k%3) || !a.Last.Equal(at(float64(k))) {
			t.Fatalf("ActiveUsers[%d] = %+v, want %d events, the last at %v", i, a, 1+k%3, at(float64(k)))
		}
		if i > 0 && lessActivity(got[i-1], a) >= 0 {
			t.Fatalf("ActiveUsers out of order at %d: %+v before %+v", i, got[i-1], a)
		}
	}
	// Windows of several pages, with limits of less than a page and of
	// several, read by time or by count.
	for _, q := range []struct {
		since time.Time
		limit int
	}{{at(0), 1000}, {at(0), 45000}, {at(30000), 100}, {at(30000), 50000}, {at(90000), 25000}} {
		var want []UserActivity
		for _, a := range got {
			if !a.Last.Before(q.since) && len(want) < q.limit {
				want = append(want, a)
			}
		}
		limited, err := r.ActiveUsers(ctx, q.since, q.limit)
		if err != nil {
			t.Fatal(err)
		}
		same := func(a, b UserActivity) bool { return a.User == b.User && a.Events == b.Events && a.Last.Equal(b.Last) }
		if !slices.EqualFunc(limited, want, same) {
			t.Errorf("ActiveUsers(%v, %d) lists %d users, not the first %d of the window", q.since, q.limit, len(limited), len(want))
		}
	}
}

// lessActivity is the order of ActiveUsers: the most events first, ties
// by user id.
func lessActivity(a, b UserActivity) int {
	if a.Events != b.Events {
		return int(b.Events - a.Events)
	}
	if a.User < b.User {
		return -1
	}
	if a.User > b.User {
		return 1
	}
	return 0
}
