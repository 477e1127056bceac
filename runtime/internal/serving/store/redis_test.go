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
	"slices"
	"testing"
	"time"
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
	port, err := freePort()
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
