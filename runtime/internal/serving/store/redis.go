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
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configure a Redis store.
type RedisOptions struct {
	// State shapes the state. Defaults as documented on StateOptions.
	State StateOptions
	// Address of the server, host:port. Default "127.0.0.1:6379".
	Address string
	// Password, if the server requires one. Default none.
	Password string
	// DB number. Default 0.
	DB int
	// Prefix of every key, so that several pipelines can share a server.
	// Default "recpipeline:".
	Prefix string
	// SeenTTL is how long a user's seen and see-less sets are kept after
	// their last change. Default 720h (30 days).
	SeenTTL time.Duration
	// DialTimeout for new connections. Default 5s.
	DialTimeout time.Duration
	// ReadTimeout of each command; writes use it too. Default 3s.
	ReadTimeout time.Duration
}

// Redis is the backend shared by replicas. Every Apply is one MULTI/EXEC
// round trip, so a batch is applied whole or not at all. Its durability is
// the server's: with appendonly and appendfsync always, an acknowledged batch
// survives a crash of the server.
//
// Keys, each after the prefix:
//
//	fo:<user>    set of followed authors
//	ai:<author>  sorted set of the author's items by creation time (unix ms)
//	en:<user>    list of recent engagements, newest first, "type|ms|item"
//	se:<user>    sorted set of seen items by time (unix ms)
//	si:<user>    sorted set of see-less'd items by time
//	sa:<user>    sorted set of see-less'd authors by time
//	pop:         sorted set of items by stored popularity (see decay)
//	ni:          list of new_item publications, oldest first, "ms|len(author)|author item"
//	clk:         the latest event time recorded (unix ms), see EventClock
//	sv:<user>    hash of item → experiment arm that served it, see ArmRecorder
//	pl:<user>    the user's precomputed list, JSON, see ListStore
//	ua:          sorted set of users by their latest event time (unix ms), see ActivityReader
//	uc:          sorted set of users by their count of events
//
// The activity sets (ua: and uc:) hold the same members: Apply updates
// them in the batch's transaction and keeps at most StateOptions.Users
// members in them, the most recently active (see activityTrimScript).
//
// The store needs Redis 6.2 or later (ZADD GT, ZMSCORE and ZRANGE BYSCORE
// REV LIMIT); OpenRedis refuses an older server.
type Redis struct {
	c     *redis.Client
	opts  RedisOptions
	decay decay
	// pageSize is how many users a round trip of ActiveUsers reads:
	// activityPage outside tests.
	pageSize int64
}

var _ Store = (*Redis)(nil)
var _ Seeder = (*Redis)(nil)
var _ NewItemsReader = (*Redis)(nil)
var _ RiskReader = (*Redis)(nil)
var _ EventClock = (*Redis)(nil)
var _ ArmRecorder = (*Redis)(nil)
var _ ListStore = (*Redis)(nil)
var _ ActivityReader = (*Redis)(nil)

// servedTTL is how long a user's served arms are kept after the last list
// served to the user: engagements come within minutes of the impression.
const servedTTL = 24 * time.Hour

// RecordServed implements ArmRecorder: one pipelined HSET and EXPIRE.
func (r *Redis) RecordServed(ctx context.Context, arm, user string, items []string) error {
	if len(items) == 0 {
		return nil
	}
	key := r.key("sv", user)
	fields := make([]any, 0, 2*len(items))
	for _, it := range items {
		fields = append(fields, it, arm)
	}
	p := r.c.Pipeline()
	p.HSet(ctx, key, fields...)
	p.Expire(ctx, key, servedTTL)
	if _, err := p.Exec(ctx); err != nil {
		return fmt.Errorf("failed to record the arm served to %s: %w", user, err)
	}
	return nil
}

// ServedBy implements ArmRecorder: one pipelined HMGET per user.
func (r *Redis) ServedBy(ctx context.Context, events []Event) ([]string, error) {
	byUser := map[string][]int{}
	for i := range events {
		if events[i].User != "" && events[i].Item != "" {
			byUser[events[i].User] = append(byUser[events[i].User], i)
		}
	}
	out := make([]string, len(events))
	if len(byUser) == 0 {
		return out, nil
	}
	p := r.c.Pipeline()
	cmds := make(map[string]*redis.SliceCmd, len(byUser))
	for user, idx := range byUser {
		items := make([]string, len(idx))
		for j, i := range idx {
			items[j] = events[i].Item
		}
		cmds[user] = p.HMGet(ctx, r.key("sv", user), items...)
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("failed to read the arms that served: %w", err)
	}
	for user, idx := range byUser {
		vals := cmds[user].Val()
		for j, i := range idx {
			if j < len(vals) {
				if arm, ok := vals[j].(string); ok {
					out[i] = arm
				}
			}
		}
	}
	return out, nil
}

// minRedisVersion is the oldest server the store works with: ZADD GT,
// ZMSCORE and ZRANGE BYSCORE REV LIMIT came in Redis 6.2.
var minRedisVersion = [3]int{6, 2, 0}

// checkRedisVersion reads redis_version from the reply of INFO server and
// fails when the server is older than minRedisVersion.
func checkRedisVersion(info string) error {
	var v string
	for line := range strings.Lines(info) {
		if rest, ok := strings.CutPrefix(line, "redis_version:"); ok {
			v = strings.TrimSpace(rest)
			break
		}
	}
	if v == "" {
		return errors.New("failed to read the server's version: INFO server has no redis_version")
	}
	got, err := parseRedisVersion(v)
	if err != nil {
		return err
	}
	if slices.Compare(got[:], minRedisVersion[:]) < 0 {
		return fmt.Errorf("redis %s is too old: the store needs Redis %d.%d.%d or later", v, minRedisVersion[0], minRedisVersion[1], minRedisVersion[2])
	}
	return nil
}

// parseRedisVersion parses "major.minor[.patch]", ignoring what follows
// the numbers (as in "7.4.0-rc1").
func parseRedisVersion(v string) ([3]int, error) {
	var out [3]int
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &out[0], &out[1], &out[2]); n < 2 {
		return out, fmt.Errorf("failed to parse the server's version %q", v)
	}
	return out, nil
}

// OpenRedis connects to the server and checks that it answers and is
// Redis 6.2 or later.
func OpenRedis(ctx context.Context, opts RedisOptions) (*Redis, error) {
	so, err := opts.State.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("failed to open store: %w", err)
	}
	opts.State = so
	if opts.Address == "" {
		opts.Address = "127.0.0.1:6379"
	}
	if opts.Prefix == "" {
		opts.Prefix = "recpipeline:"
	}
	if opts.SeenTTL <= 0 {
		opts.SeenTTL = 30 * 24 * time.Hour
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 3 * time.Second
	}
	c := redis.NewClient(&redis.Options{
		Addr:                  opts.Address,
		Password:              opts.Password,
		DB:                    opts.DB,
		DialTimeout:           opts.DialTimeout,
		ReadTimeout:           opts.ReadTimeout,
		WriteTimeout:          opts.ReadTimeout,
		ContextTimeoutEnabled: true,
	})
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to reach redis at %s: %w", opts.Address, err)
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to read the version of redis at %s: %w", opts.Address, err)
	}
	if err := checkRedisVersion(info); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to open the store in redis at %s: %w", opts.Address, err)
	}
	return &Redis{c: c, opts: opts, decay: newDecay(so), pageSize: activityPage}, nil
}

func (r *Redis) key(kind, id string) string { return r.opts.Prefix + kind + ":" + id }

// popularScript adds stored contributions to items' popularity with a
// log-sum-exp and keeps the ARGV[1] most popular items.
// KEYS[1]: the popularity key; ARGV[2k], ARGV[2k+1]: item, contribution.
const popularScript = `
local key = KEYS[1]
for i = 2, #ARGV, 2 do
  local x = tonumber(ARGV[i+1])
  local s = redis.call('ZSCORE', key, ARGV[i])
  if s then
    s = tonumber(s)
    local hi, lo = s, x
    if x > s then hi, lo = x, s end
    x = hi + math.log(1 + math.exp(lo - hi))
  end
  redis.call('ZADD', key, x, ARGV[i])
end
redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(ARGV[1]) - 1)
return 0
`

// newestScript raises KEYS[1] to ARGV[1] unless it already holds more, so
// that batches applied by several replicas leave the latest time.
// followScript adds ARGV[1] to the set KEYS[1] of the authors a user
// follows unless it holds ARGV[2] already.
const followScript = `
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then return redis.call('SADD', KEYS[1], ARGV[1]) end
return 0
`

const newestScript = `
local v = tonumber(redis.call('GET', KEYS[1]))
local t = tonumber(ARGV[1])
if not v or v < t then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
`

// activity is a user's events in one batch.
type activity struct {
	last   int64 // unix ms
	events int64
}

// activityTrimScript keeps the ARGV[1] members of the activity set
// KEYS[1] (ua:) with the latest times, removing at most ARGV[2] of the
// others, the least recently active, from it and from the counts KEYS[2]
// (uc:). Atomic, so that a user that another replica's batch makes active
// meanwhile is not dropped from one set and kept in the other.
//
// The sets are bounded by rank, not by time (dropping users whose latest
// event is older than some age behind the newest): one event with a
// far-future time would put every other user behind it and wipe them all,
// and an age bounds no count.
const activityTrimScript = `
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if over <= 0 then return 0 end
local drop = redis.call('ZRANGE', KEYS[1], 0, math.min(over, tonumber(ARGV[2])) - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, #drop - 1)
for i = 1, #drop, 1000 do
  redis.call('ZREM', KEYS[2], unpack(drop, i, math.min(i + 999, #drop)))
end
return #drop
`

// activityTrimMax is how many users one Apply drops from the activity
// sets at most, so that sets grown past the bound (by an older version of
// the store, or a smaller StateOptions.Users) shrink over several batches
// rather than block the server in one.
const activityTrimMax = 10000

// recordActivity queues in p the updates of the activity sets for the
// events of a batch: each user's latest event time is raised (ZADD GT) and
// its count added to (ZINCRBY); then the sets are trimmed to
// StateOptions.Users (activityTrimScript), which costs a ZCARD while they
// are within it and, past it, removing as many users as the batch added.
func (r *Redis) recordActivity(ctx context.Context, p redis.Pipeliner, events []Event) {
	acts := make(map[string]activity)
	for i := range events {
		e := &events[i]
		if e.Type == NewItem || e.Type == Integrity {
			continue // no user's
		}
		a, ok := acts[e.User]
		if !ok {
			a.last = math.MinInt64
		}
		a.last = max(a.last, e.Time.UnixMilli())
		a.events++
		acts[e.User] = a
	}
	if len(acts) == 0 {
		return
	}
	byTime, byCount := r.key("ua", ""), r.key("uc", "")
	zs := make([]redis.Z, 0, len(acts))
	for user, a := range acts {
		zs = append(zs, redis.Z{Score: float64(a.last), Member: user})
		p.ZIncrBy(ctx, byCount, float64(a.events), user)
	}
	p.ZAddGT(ctx, byTime, zs...)
	p.Eval(ctx, activityTrimScript, []string{byTime, byCount}, r.opts.State.Users, activityTrimMax)
}

// Apply implements Writer.
func (r *Redis) Apply(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return ctx.Err()
	}
	evs, err := normalize(events, time.Now())
	if err != nil {
		return err
	}
	o := r.opts.State
	type trim struct {
		key  string
		keep int
		list bool // a list, else a sorted set
		ttl  bool
	}
	trims := make(map[string]trim)
	pop := make(map[string]float64)
	newest := int64(math.MinInt64)
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range evs {
			e := &evs[i]
			newest = max(newest, e.Time.UnixMilli())
			ms := float64(e.Time.UnixMilli())
			switch e.Type {
			case Impression:
				k := r.key("se", e.User)
				p.ZAdd(ctx, k, redis.Z{Score: ms, Member: e.Item})
				trims[k] = trim{k, o.SeenItems, false, true}
			case Click, Like, Comment, Share:
				k := r.key("en", e.User)
				p.LPush(ctx, k, string(e.Type)+"|"+strconv.FormatInt(e.Time.UnixMilli(), 10)+"|"+e.Item)
				trims[k] = trim{k, o.RecentEngagements, true, false}
			case SeeLess:
				if e.Item != "" {
					k := r.key("si", e.User)
					p.ZAdd(ctx, k, redis.Z{Score: ms, Member: e.Item})
					trims[k] = trim{k, o.SeeLess, false, true}
				}
				if e.Author != "" {
					k := r.key("sa", e.User)
					p.ZAdd(ctx, k, redis.Z{Score: ms, Member: e.Author})
					trims[k] = trim{k, o.SeeLess, false, true}
				}
			case Follow:
				p.Eval(ctx, followScript, []string{r.key("fo", e.User)}, e.Author, o.Follows)
			case Unfollow:
				p.SRem(ctx, r.key("fo", e.User), e.Author)
			case NewItem:
				k := r.key("ai", e.Author)
				p.ZAdd(ctx, k, redis.Z{Score: ms, Member: e.Item})
				trims[k] = trim{k, o.AuthorItems, false, false}
				k = r.key("ni", "")
				p.RPush(ctx, k, encodeNewItem(e))
				trims[k] = trim{k, o.NewItems, true, false}
				if e.Risk != 0 {
					// The first publication's risk: a repeated new_item
					// does not undo an integrity event.
					p.HSetNX(ctx, r.key("risk", ""), e.Item, strconv.FormatFloat(e.Risk, 'g', -1, 64))
				}
			case Integrity:
				p.HSet(ctx, r.key("risk", ""), e.Item, strconv.FormatFloat(e.Risk, 'g', -1, 64))
			}
			if lw, ok := r.decay.logWeight(e); ok {
				if old, ok := pop[e.Item]; ok {
					lw = logAddExp(old, lw)
				}
				pop[e.Item] = lw
			}
		}
		for _, t := range trims {
			switch {
			case t.key == r.key("ni", ""):
				p.LTrim(ctx, t.key, -int64(t.keep), -1)
			case t.list:
				p.LTrim(ctx, t.key, 0, int64(t.keep)-1)
			default:
				p.ZRemRangeByRank(ctx, t.key, 0, -int64(t.keep)-1)
			}
			if t.ttl {
				p.Expire(ctx, t.key, r.opts.SeenTTL)
			}
		}
		if len(pop) > 0 {
			args := make([]any, 0, 1+2*len(pop))
			args = append(args, o.PopularItems)
			for item, lw := range pop {
				args = append(args, item, strconv.FormatFloat(lw, 'g', -1, 64))
			}
			p.Eval(ctx, popularScript, []string{r.key("pop", "")}, args...)
		}
		r.recordActivity(ctx, p, evs)
		p.Eval(ctx, newestScript, []string{r.key("clk", "")}, newest)
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to apply events in redis: %w", err)
	}
	return nil
}

// Seed implements Seeder.
func (r *Redis) Seed(ctx context.Context, items []ItemTime) error {
	for i, it := range items {
		if it.Item == "" || it.Author == "" {
			return fmt.Errorf("failed to seed item %d: %w: item and author are required", i, ErrInvalidEvent)
		}
	}
	byAuthor := make(map[string][]redis.Z)
	for _, it := range items {
		byAuthor[it.Author] = append(byAuthor[it.Author], redis.Z{Score: float64(it.Time.UnixMilli()), Member: it.Item})
	}
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for a, zs := range byAuthor {
			k := r.key("ai", a)
			p.ZAdd(ctx, k, zs...)
			p.ZRemRangeByRank(ctx, k, 0, -int64(r.opts.State.AuthorItems)-1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to seed items in redis: %w", err)
	}
	return nil
}

// Risks implements RiskReader.
func (r *Redis) Risks(ctx context.Context) (map[string]float64, error) {
	vals, err := r.c.HGetAll(ctx, r.key("risk", "")).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read integrity risks from redis: %w", err)
	}
	out := make(map[string]float64, len(vals))
	for item, v := range vals {
		risk, err := strconv.ParseFloat(v, 64)
		if err != nil || !(risk >= 0 && risk <= 1) {
			return nil, fmt.Errorf("failed to read integrity risks from redis: item %q has risk %q", item, v)
		}
		out[item] = risk
	}
	return out, nil
}

// newItemsPage is how many publications one round trip of NewItems reads.
const newItemsPage = 10000

// NewItems implements NewItemsReader, reading the publications in pages.
func (r *Redis) NewItems(ctx context.Context) ([]ItemTime, error) {
	k := r.key("ni", "")
	var out []ItemTime
	seen := make(map[string]struct{})
	for start := int64(0); ; start += newItemsPage {
		vals, err := r.c.LRange(ctx, k, start, start+newItemsPage-1).Result()
		if err != nil {
			return nil, fmt.Errorf("failed to read new items from redis: %w", err)
		}
		for _, v := range vals {
			it, err := decodeNewItem(v)
			if err != nil {
				return nil, err
			}
			if _, dup := seen[it.Item]; dup {
				continue
			}
			seen[it.Item] = struct{}{}
			out = append(out, it)
		}
		if len(vals) < newItemsPage {
			return out, nil
		}
	}
}

// encodeNewItem encodes a new_item publication for the ni: list; IDs may
// hold any character, so the author is length-prefixed.
func encodeNewItem(e *Event) string {
	return strconv.FormatInt(e.Time.UnixMilli(), 10) + "|" + strconv.Itoa(len(e.Author)) + "|" + e.Author + e.Item
}

func decodeNewItem(v string) (ItemTime, error) {
	ms, rest, ok1 := strings.Cut(v, "|")
	n, rest, ok2 := strings.Cut(rest, "|")
	t, err1 := strconv.ParseInt(ms, 10, 64)
	l, err2 := strconv.Atoi(n)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || l < 0 || l > len(rest) {
		return ItemTime{}, fmt.Errorf("failed to parse new item %q from redis", v)
	}
	return ItemTime{Item: rest[l:], Author: rest[:l], Time: time.UnixMilli(t)}, nil
}

// NewestEvent implements EventClock with one round trip.
func (r *Redis) NewestEvent(ctx context.Context) (time.Time, error) {
	ms, err := r.c.Get(ctx, r.key("clk", "")).Int64()
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, fmt.Errorf("failed to read the newest event time from redis: %w", err)
	}
	return time.UnixMilli(ms), nil
}

// Follows implements SocialReader.
func (r *Redis) Follows(ctx context.Context, user string) ([]string, error) {
	out, err := r.c.SMembers(ctx, r.key("fo", user)).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read follows from redis: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	return out, nil
}

// RecentByAuthors implements SocialReader with one round trip.
func (r *Redis) RecentByAuthors(ctx context.Context, authors []string, since time.Time, limit int, buf []ItemTime) ([]ItemTime, error) {
	if limit <= 0 || len(authors) == 0 {
		return nil, ctx.Err()
	}
	min := "-inf"
	if !since.IsZero() {
		min = strconv.FormatInt(since.Truncate(time.Millisecond).UnixMilli(), 10)
	}
	cmds := make([]*redis.ZSliceCmd, len(authors))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range authors {
			cmds[i] = p.ZRevRangeByScoreWithScores(ctx, r.key("ai", a), &redis.ZRangeBy{Min: min, Max: "+inf", Count: int64(limit)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read authors' items from redis: %w", err)
	}
	out := buf[:0]
	for i, c := range cmds {
		for _, z := range c.Val() {
			out = append(out, ItemTime{Item: z.Member.(string), Author: authors[i], Time: time.UnixMilli(int64(z.Score))})
		}
	}
	slices.SortFunc(out, lessItemTime)
	out = slices.CompactFunc(out, func(a, b ItemTime) bool { return a == b })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// RecentEngagements implements UserReader.
func (r *Redis) RecentEngagements(ctx context.Context, user string, limit int) ([]Engagement, error) {
	if limit <= 0 {
		return nil, ctx.Err()
	}
	vals, err := r.c.LRange(ctx, r.key("en", user), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read engagements from redis: %w", err)
	}
	var out []Engagement
	for _, v := range vals {
		typ, rest, ok1 := strings.Cut(v, "|")
		ms, item, ok2 := strings.Cut(rest, "|")
		t, err := strconv.ParseInt(ms, 10, 64)
		if !ok1 || !ok2 || err != nil {
			return nil, fmt.Errorf("failed to parse engagement %q from redis", v)
		}
		out = append(out, Engagement{Item: item, Type: EventType(typ), Time: time.UnixMilli(t)})
	}
	return out, nil
}

// Seen implements UserReader with one round trip.
func (r *Redis) Seen(ctx context.Context, user string) (*Filter, error) {
	var seen, items, authors *redis.StringSliceCmd
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		seen = p.ZRange(ctx, r.key("se", user), 0, -1)
		items = p.ZRange(ctx, r.key("si", user), 0, -1)
		authors = p.ZRange(ctx, r.key("sa", user), 0, -1)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read seen items from redis: %w", err)
	}
	f := newFilter(len(seen.Val())+len(items.Val()), len(authors.Val()))
	for _, list := range [][]string{seen.Val(), items.Val()} {
		for _, it := range list {
			f.items[it] = struct{}{}
		}
	}
	for _, a := range authors.Val() {
		f.authors[a] = struct{}{}
	}
	return f, nil
}

// Popular implements PopularReader; the server keeps the items ordered.
func (r *Redis) Popular(ctx context.Context, now time.Time, limit int) ([]ItemScore, error) {
	if limit <= 0 {
		return nil, ctx.Err()
	}
	zs, err := r.c.ZRevRangeWithScores(ctx, r.key("pop", ""), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read popular items from redis: %w", err)
	}
	out := make([]ItemScore, len(zs))
	for i, z := range zs {
		out[i] = ItemScore{Item: z.Member.(string), Score: r.decay.score(z.Score, now)}
	}
	// The server breaks ties by reverse item order; break them by item.
	slices.SortStableFunc(out, func(a, b ItemScore) int {
		if a.Score != b.Score {
			if a.Score > b.Score || math.IsNaN(b.Score) {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Item, b.Item)
	})
	return out, nil
}

// listTTL is how long Redis keeps a list: Expires−Created, rounded up to
// the millisecond, a backstop that reclaims it; UserList decides expiry by
// comparing Expires with its now.
func listTTL(l *List) time.Duration {
	return max(time.Millisecond, l.Expires.Sub(l.Created)+time.Millisecond-1).Truncate(time.Millisecond)
}

// PutLists implements ListStore: the batch is one MULTI/EXEC round trip,
// stored whole or not at all. Each list is a key, pl:<user>, that Redis
// expires Expires−Created after the call. A list already expired at now
// removes its user's previous list.
func (r *Redis) PutLists(ctx context.Context, lists []List, now time.Time) error {
	if err := checkLists(lists); err != nil {
		return err
	}
	if len(lists) == 0 {
		return ctx.Err()
	}
	vals := make([][]byte, len(lists))
	for i := range lists {
		if !lists[i].Expires.After(now) {
			continue
		}
		b, err := json.Marshal(&lists[i])
		if err != nil {
			return fmt.Errorf("failed to encode the list of %q: %w", lists[i].User, err)
		}
		vals[i] = b
	}
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range lists {
			k := r.key("pl", lists[i].User)
			if vals[i] == nil {
				p.Del(ctx, k)
				continue
			}
			p.Set(ctx, k, vals[i], listTTL(&lists[i]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("failed to store %d lists in redis: %w", len(lists), err)
	}
	return nil
}

// UserList implements ListStore with one GET.
func (r *Redis) UserList(ctx context.Context, user string, now time.Time) (*List, error) {
	b, err := r.c.Get(ctx, r.key("pl", user)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("failed to read the list of %q from redis: %w", user, err)
	}
	l := &List{}
	if err := json.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("failed to parse the list of %q from redis: %w", user, err)
	}
	if !l.Expires.After(now) {
		return nil, nil
	}
	return l, nil
}

// activityPage is how many users one round trip of ActiveUsers reads.
const activityPage = 10000

// ActiveUsers implements ActivityReader, reading the sorted sets in pages
// of at most 10,000 users a round trip. Without a limit, or when the
// window holds few users, it reads the window's users from ua:, newest
// first, each page's counts from uc: in the round trip of the next page.
// With a limit smaller than a window that holds most users, it reads uc:
// instead, the most events first, each page's times from ua:, and stops
// as soon as no unread user can rank among the first limit.
//
// The pages are not one snapshot: a user whose activity changes during
// the read may be left out or counted as of either side of the change.
func (r *Redis) ActiveUsers(ctx context.Context, since time.Time, limit int) ([]UserActivity, error) {
	from := ceilMilli(since)
	if limit > 0 {
		var inWindow, all *redis.IntCmd
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			inWindow = p.ZCount(ctx, r.key("ua", ""), strconv.FormatInt(from, 10), "+inf")
			all = p.ZCard(ctx, r.key("uc", ""))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("failed to count active users in redis: %w", err)
		}
		n, total := inWindow.Val(), all.Val()
		if n == 0 {
			return nil, nil
		}
		// Reading by count finds the first limit users of the window
		// after about limit·total/n users; reading by time reads n.
		if int64(limit) < n && float64(limit)*float64(total) < float64(n)*float64(n) {
			return r.activeByCount(ctx, from, limit)
		}
	}
	return r.activeByTime(ctx, from, limit)
}

// activeByTime reads every user of ua: active at or after the Unix
// millisecond from, and keeps the first limit by activity order.
func (r *Redis) activeByTime(ctx context.Context, from int64, limit int) ([]UserActivity, error) {
	var out []UserActivity
	err := r.scanActivity(ctx, r.key("ua", ""), strconv.FormatInt(from, 10), r.key("uc", ""), func(page []redis.Z, counts []float64) bool {
		for i, z := range page {
			if !(counts[i] > 0) {
				continue // no count: not a user ActiveUsers lists
			}
			out = append(out, UserActivity{User: z.Member.(string), Last: time.UnixMilli(int64(z.Score)), Events: int64(counts[i])})
		}
		if limit > 0 && len(out) >= 2*max(limit, int(r.pageSize)) {
			out = sortActivity(out, limit)
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return sortActivity(out, limit), nil
}

// activeByCount reads the users of uc:, the most events first, keeps those
// active at or after the Unix millisecond from, and stops when limit of
// them are found and the users left have fewer events than the limit-th.
func (r *Redis) activeByCount(ctx context.Context, from int64, limit int) ([]UserActivity, error) {
	var out []UserActivity // by events, the most first (ties in any order)
	err := r.scanActivity(ctx, r.key("uc", ""), "-inf", r.key("ua", ""), func(page []redis.Z, times []float64) bool {
		for i, z := range page {
			if math.IsNaN(times[i]) || int64(times[i]) < from || !(z.Score > 0) {
				continue
			}
			out = append(out, UserActivity{User: z.Member.(string), Last: time.UnixMilli(int64(times[i])), Events: int64(z.Score)})
		}
		if len(out) >= 2*max(limit, int(r.pageSize)) {
			out = sortActivity(out, limit)
		}
		// Users left have at most the events of the page's last user.
		return len(out) < limit || float64(out[limit-1].Events) <= page[len(page)-1].Score
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	return sortActivity(out, limit), nil
}

// scanActivity reads the members of the sorted set key whose score is at
// least lo (a score, or "-inf"), the highest first, r.pageSize a round
// trip, and calls visit with each page and the scores of its members in
// the sorted set other (NaN where a member is not in it), read in the
// round trip of the next page. It stops when visit returns false or the
// members are all read.
//
// Pages follow one another by score: a page starts at the score where the
// last one ended, past the members of that score already read, so that
// members added or trimmed at lower scores do not shift it.
func (r *Redis) scanActivity(ctx context.Context, key, lo, other string, visit func(page []redis.Z, others []float64) bool) error {
	hi, offset := math.Inf(1), int64(0) // the next page: score <= hi, past offset members of score hi
	more := true
	var page []redis.Z
	for more || len(page) > 0 {
		var next *redis.ZSliceCmd
		var scores *redis.Cmd
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			if len(page) > 0 {
				args := make([]any, 0, 2+len(page))
				args = append(args, "zmscore", other)
				for _, z := range page {
					args = append(args, z.Member)
				}
				scores = p.Do(ctx, args...)
			}
			if more {
				next = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
					Key: key, Start: formatScore(hi), Stop: lo,
					ByScore: true, Rev: true, Offset: offset, Count: r.pageSize,
				})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("failed to read active users from redis: %w", err)
		}
		if len(page) > 0 {
			others, err := parseScores(scores, len(page))
			if err != nil {
				return err
			}
			if !visit(page, others) {
				return nil
			}
		}
		page = nil
		if !more {
			break
		}
		page = next.Val()
		more = int64(len(page)) == r.pageSize
		if len(page) == 0 {
			break
		}
		last := page[len(page)-1].Score
		tied := int64(0)
		for i := len(page) - 1; i >= 0 && page[i].Score == last; i-- {
			tied++
		}
		if last == hi {
			offset += tied
		} else {
			hi, offset = last, tied
		}
	}
	return nil
}

// formatScore formats a score for a range, infinity as Redis spells it.
func formatScore(f float64) string {
	if math.IsInf(f, 1) {
		return "+inf"
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// parseScores reads the reply of a ZMSCORE of n members: a number (a
// string in RESP2, a double in RESP3) or nil, which it gives as NaN.
func parseScores(cmd *redis.Cmd, n int) ([]float64, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return nil, fmt.Errorf("failed to read users' activity from redis: %w", err)
	}
	if len(vals) != n {
		return nil, fmt.Errorf("failed to read users' activity from redis: %d scores for %d users", len(vals), n)
	}
	out := make([]float64, n)
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			out[i] = math.NaN()
		case float64:
			out[i] = v
		case string:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("failed to parse the score %q from redis: %w", v, err)
			}
			out[i] = f
		default:
			return nil, fmt.Errorf("failed to read users' activity from redis: a score of type %T", v)
		}
	}
	return out, nil
}

// Close closes the connections.
func (r *Redis) Close() error {
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("failed to close redis client: %w", err)
	}
	return nil
}
