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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recpipeline/recpipeline/runtime/internal/testport"
)

func TestRedisPrefixesIsolatePipelines(t *testing.T) {
	addr := needRedis(t)
	ctx := context.Background()
	open := func(prefix string) *Redis {
		r, err := OpenRedis(ctx, RedisOptions{Address: addr, Prefix: testPrefix(t) + prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	a, b := open("a:"), open("b:")
	if err := a.Apply(ctx, []Event{ev(Follow, "u", "", "x", 1), ev(Click, "u", "i", "", 1)}); err != nil {
		t.Fatal(err)
	}
	if got, _ := a.Follows(ctx, "u"); len(got) != 1 {
		t.Errorf("Follows in the writing pipeline = %v, want [x]", got)
	}
	if got, _ := b.Follows(ctx, "u"); len(got) != 0 {
		t.Errorf("Follows in another pipeline = %v, want none", got)
	}
	if got, _ := b.Popular(ctx, at(1), 10); len(got) != 0 {
		t.Errorf("Popular in another pipeline = %v, want none", got)
	}
}

func TestRedisSeenExpires(t *testing.T) {
	addr := needRedis(t)
	ctx := context.Background()
	r, err := OpenRedis(ctx, RedisOptions{Address: addr, Prefix: testPrefix(t), SeenTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Apply(ctx, []Event{ev(Impression, "u", "i", "", 1), ev(SeeLess, "u", "j", "a", 1)}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"se", "si", "sa"} {
		ttl, err := r.c.TTL(ctx, r.key(kind, "u")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL of %s = %v, want within (0, 1h]", kind, ttl)
		}
	}
}

func TestRedisUnreachable(t *testing.T) {
	port, err := testport.Free()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := OpenRedis(ctx, RedisOptions{Address: "127.0.0.1:" + itoa(port), DialTimeout: 200 * time.Millisecond})
	if err == nil {
		_ = r.Close()
		t.Fatal("OpenRedis of a closed port succeeded, want an error")
	}
}

// Two replicas sharing the server: what one served, the other attributes.
func TestRedisRemembersWhichArmServed(t *testing.T) {
	addr := needRedis(t)
	ctx := context.Background()
	open := func() *Redis {
		r, err := OpenRedis(ctx, RedisOptions{Address: addr, Prefix: testPrefix(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	a, b := open(), open()
	if err := a.RecordServed(ctx, "canary", "u1", []string{"i1", "i2"}); err != nil {
		t.Fatal(err)
	}
	if err := a.RecordServed(ctx, "baseline", "u2", []string{"i1"}); err != nil {
		t.Fatal(err)
	}
	got, err := b.ServedBy(ctx, []Event{
		ev(Click, "u1", "i2", "", 1), ev(Like, "u2", "i1", "", 1), ev(Click, "u1", "i9", "", 1),
		ev(Follow, "u1", "", "a1", 1), ev(Impression, "u3", "i1", "", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"canary", "baseline", "", "", ""}; !slices.Equal(got, want) {
		t.Errorf("ServedBy = %q, want %q", got, want)
	}
	if ttl, err := a.c.TTL(ctx, a.key("sv", "u1")).Result(); err != nil || ttl <= 0 || ttl > servedTTL {
		t.Errorf("TTL of the served arms = %v (%v), want within (0, %v]", ttl, err, servedTTL)
	}
}

func TestCheckRedisVersion(t *testing.T) {
	info := func(version string) string {
		return "# Server\r\nredis_version:" + version + "\r\nredis_git_sha1:00000000\r\nredis_mode:standalone\r\n"
	}
	cases := map[string]struct {
		info    string
		wantErr string // a part of the error; "" for none
	}{
		"the oldest supported":      {info: info("6.2.0")},
		"a patch release":           {info: info("6.2.14")},
		"a newer major":             {info: info("7.0.15")},
		"no patch number":           {info: info("6.2")},
		"a release candidate":       {info: info("7.4.0-rc1")},
		"an unstable build":         {info: info("255.255.255")},
		"the minor before":          {info: info("6.0.16"), wantErr: "redis 6.0.16 is too old: the store needs Redis 6.2.0 or later"},
		"an older major":            {info: info("5.0.7"), wantErr: "redis 5.0.7 is too old"},
		"a newer minor of an older": {info: info("5.9.0"), wantErr: "redis 5.9.0 is too old"},
		"no version":                {info: "# Server\r\nredis_mode:standalone\r\n", wantErr: "no redis_version"},
		"a version without numbers": {info: info("unknown"), wantErr: `failed to parse the server's version "unknown"`},
		"a major alone":             {info: info("7"), wantErr: `failed to parse the server's version "7"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := checkRedisVersion(c.info)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("checkRedisVersion = %v, want no error", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("checkRedisVersion = %v, want an error with %q", err, c.wantErr)
			}
		})
	}
}

// activitySets returns the members of ua: and uc:, each sorted.
func activitySets(t *testing.T, r *Redis) (byTime, byCount []string) {
	t.Helper()
	ctx := context.Background()
	byTime, err := r.c.ZRange(ctx, r.key("ua", ""), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	byCount, err = r.c.ZRange(ctx, r.key("uc", ""), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(byTime)
	slices.Sort(byCount)
	return byTime, byCount
}

// The activity sets keep the StateOptions.Users most recently active
// users with their counts, however far in the future an event is.
func TestRedisActivityKeepsTheMostRecentUsers(t *testing.T) {
	r := redisBackend(t, StateOptions{Users: 4}).(*Redis)
	ctx := context.Background()
	batches := [][]Event{
		// u1..u3, u2 with 2 events.
		{ev(Click, "u1", "i", "", 1), ev(Impression, "u2", "i", "", 2), ev(Like, "u2", "i", "", 3), ev(Impression, "u3", "i", "", 4)},
		// u1 active again, and u4 and u5 new: u2, the least recent, is
		// dropped.
		{ev(Impression, "u1", "i", "", 10), ev(Impression, "u4", "i", "", 5), ev(Impression, "u5", "i", "", 6)},
		// One event a year ahead drops only the least recent, u3.
		{ev(Impression, "far", "i", "", 365*24*3600)},
		// u3 comes back with its count started over; u4 goes.
		{ev(Impression, "u3", "i", "", 20)},
	}
	for i, b := range batches {
		if err := r.Apply(ctx, b); err != nil {
			t.Fatalf("Apply batch %d: %v", i, err)
		}
	}
	byTime, byCount := activitySets(t, r)
	if want := []string{"far", "u1", "u3", "u5"}; !slices.Equal(byTime, want) || !slices.Equal(byCount, want) {
		t.Errorf("activity sets hold %v (ua:) and %v (uc:), want %v in both", byTime, byCount, want)
	}
	checkActivity(t, r, []activityQuery{{want: []UserActivity{
		active("u1", 10, 2), active("far", 365*24*3600, 1), active("u3", 20, 1), active("u5", 6, 1),
	}}})
}

// Sets grown past the bound, as by an older version of the store, shrink
// by at most activityTrimMax users an Apply, the least recent first.
func TestRedisActivityShrinksOversizedSetsGradually(t *testing.T) {
	r := redisBackend(t, StateOptions{Users: 5}).(*Redis)
	ctx := context.Background()
	const legacy = 2*activityTrimMax + 10
	zs := make([]redis.Z, legacy)
	for k := range zs {
		zs[k] = redis.Z{Score: float64(at(float64(k)).UnixMilli()), Member: fmt.Sprintf("old%06d", k)}
	}
	if err := r.c.ZAdd(ctx, r.key("ua", ""), zs...).Err(); err != nil {
		t.Fatal(err)
	}
	for k := range zs {
		zs[k].Score = 1
	}
	if err := r.c.ZAdd(ctx, r.key("uc", ""), zs...).Err(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{legacy + 1 - activityTrimMax, legacy + 1 - 2*activityTrimMax, 5} {
		if err := r.Apply(ctx, []Event{ev(Impression, "new", "i", "", float64(legacy+i))}); err != nil {
			t.Fatal(err)
		}
		nt, err1 := r.c.ZCard(ctx, r.key("ua", "")).Result()
		nc, err2 := r.c.ZCard(ctx, r.key("uc", "")).Result()
		if err1 != nil || err2 != nil || nt != want || nc != want {
			t.Fatalf("after Apply %d the activity sets hold %d and %d users (%v, %v), want %d", i, nt, nc, err1, err2, want)
		}
	}
	byTime, byCount := activitySets(t, r)
	if want := []string{"new", "old020006", "old020007", "old020008", "old020009"}; !slices.Equal(byTime, want) || !slices.Equal(byCount, want) {
		t.Errorf("activity sets hold %v (ua:) and %v (uc:), want %v in both", byTime, byCount, want)
	}
}

// ActiveUsers answers the same, whatever the page size and whichever set
// it reads first, as the Memory store does from the same events.
func TestRedisActiveUsersPages(t *testing.T) {
	ctx := context.Background()
	r := redisBackend(t, StateOptions{}).(*Redis)
	m := memoryBackend(t, StateOptions{}).(*Memory)
	// User k has 1 + k%4 events (ties of counts), the latest at second
	// k/3 (ties of times), and users 0 and 1 one more each at second 100.
	var events []Event
	const users = 60
	for k := range users {
		for j := range 1 + k%4 {
			events = append(events, ev(Impression, fmt.Sprintf("u%02d", k), "i", "", float64(k/3-j)))
		}
	}
	events = append(events, ev(Click, "u00", "i", "", 100), ev(Click, "u01", "i", "", 100))
	for _, s := range []Store{r, m} {
		if err := s.Apply(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	type query struct {
		since time.Time
		limit int
	}
	var queries []query
	for _, since := range []time.Time{{}, at(0), at(5), at(5.0005), at(19), at(100), at(101)} {
		for _, limit := range []int{0, 1, 2, 3, 5, 15, 16, 17, 30, 59, 60, 61} {
			queries = append(queries, query{since, limit})
		}
	}
	same := func(a, b UserActivity) bool { return a.User == b.User && a.Events == b.Events && a.Last.Equal(b.Last) }
	for _, page := range []int64{1, 2, 3, 7, 15, 16, 60, activityPage} {
		r.pageSize = page
		for _, q := range queries {
			want, err := m.ActiveUsers(ctx, q.since, q.limit)
			if err != nil {
				t.Fatal(err)
			}
			from := ceilMilli(q.since)
			for name, read := range map[string]func() ([]UserActivity, error){
				"ActiveUsers": func() ([]UserActivity, error) { return r.ActiveUsers(ctx, q.since, q.limit) },
				"by time":     func() ([]UserActivity, error) { return r.activeByTime(ctx, from, q.limit) },
				"by count":    func() ([]UserActivity, error) { return r.activeByCount(ctx, from, max(q.limit, 1)) },
			} {
				if name == "by count" && q.limit <= 0 {
					continue // needs a limit
				}
				got, err := read()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !slices.EqualFunc(got, want, same) {
					t.Errorf("pages of %d, %s(%v, %d) = %v, want %v", page, name, q.since, q.limit, got, want)
				}
			}
		}
	}
	// The few most active users of a window holding them all are found
	// without reading the whole window.
	r.pageSize = 10
	rt := &roundTrips{}
	r.c.AddHook(rt)
	if _, err := r.ActiveUsers(ctx, time.Time{}, 3); err != nil {
		t.Fatal(err)
	}
	if byCount := rt.n; byCount >= users/10 {
		t.Errorf("ActiveUsers of the first 3 of %d users took %d round trips of 10 users, want fewer than reading them all", users, byCount)
	}
}
