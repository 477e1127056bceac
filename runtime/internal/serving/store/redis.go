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
// The activity sets (ua: and uc:) hold a member for every user ever
// active: they are not expired, and what bounds them is the server's
// memory policy, as for the other keys. Apply updates them in the batch's
// transaction.
type Redis struct {
	c     *redis.Client
	opts  RedisOptions
	decay decay
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

// OpenRedis connects to the server and checks that it answers.
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
	return &Redis{c: c, opts: opts, decay: newDecay(so)}, nil
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

// recordActivity queues in p the updates of the activity sets for the
// events of a batch: each user's latest event time is raised (ZADD GT) and
// its count added to (ZINCRBY).
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
func (r *Redis) RecentByAuthors(ctx context.Context, authors []string, since time.Time, limit int) ([]ItemTime, error) {
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
	var out []ItemTime
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

// activityChunk is how many users one ZMSCORE of ActiveUsers asks for.
const activityChunk = 10000

// ActiveUsers implements ActivityReader with two round trips: the users by
// time since since (ZRANGEBYSCORE), then their counts (ZMSCORE, in chunks
// of activityChunk users, pipelined).
func (r *Redis) ActiveUsers(ctx context.Context, since time.Time, limit int) ([]UserActivity, error) {
	zs, err := r.c.ZRangeByScoreWithScores(ctx, r.key("ua", ""), &redis.ZRangeBy{
		Min: strconv.FormatInt(ceilMilli(since), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read active users from redis: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	out := make([]UserActivity, len(zs))
	users := make([]string, len(zs))
	for i, z := range zs {
		users[i] = z.Member.(string)
		out[i] = UserActivity{User: users[i], Last: time.UnixMilli(int64(z.Score))}
	}
	cmds := make([]*redis.FloatSliceCmd, 0, (len(users)+activityChunk-1)/activityChunk)
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(users); start += activityChunk {
			cmds = append(cmds, p.ZMScore(ctx, r.key("uc", ""), users[start:min(start+activityChunk, len(users))]...))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read users' event counts from redis: %w", err)
	}
	for c, cmd := range cmds {
		for j, n := range cmd.Val() {
			out[c*activityChunk+j].Events = int64(n)
		}
	}
	return sortActivity(out, limit), nil
}

// Close closes the connections.
func (r *Redis) Close() error {
	if err := r.c.Close(); err != nil {
		return fmt.Errorf("failed to close redis client: %w", err)
	}
	return nil
}
