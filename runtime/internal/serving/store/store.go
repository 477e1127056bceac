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

// Package store holds the real-time state that recserve's funnel reads:
// follows and the recent items of authors, each user's recent engagements,
// what each user has seen or asked to see less of, and time-decayed item
// popularity.
//
// Two backends implement Store: Memory, the embedded default, keeps the state
// in memory and makes it durable with an append-only log on disk; Redis keeps
// it in a Redis server, 6.2 or later, so that several replicas share it.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// EventType names what a user did, or that an item was published.
type EventType string

// Event types accepted by Apply.
const (
	Impression EventType = "impression"
	Click      EventType = "click"
	Like       EventType = "like"
	Comment    EventType = "comment"
	Share      EventType = "share"
	SeeLess    EventType = "see_less"
	Follow     EventType = "follow"
	Unfollow   EventType = "unfollow"
	NewItem    EventType = "new_item"
	// Integrity sets an item's integrity risk (Event.Risk); risk 1 takes
	// the item down.
	Integrity EventType = "integrity"
)

// eventTypes lists the event types, for canonical.
var eventTypes = [...]EventType{Impression, Click, Like, Comment, Share, SeeLess, Follow, Unfollow, NewItem, Integrity}

// canonical returns the constant equal to t, or t when none is: a decoded
// event's type is a string of its own, which the state would otherwise keep
// for every engagement it remembers (a quarter of a million objects for the
// collector to mark after half a million events).
func canonical(t EventType) EventType {
	for _, c := range eventTypes {
		if t == c {
			return c
		}
	}
	return t
}

// Event is one impression, engagement, follow change or publication.
type Event struct {
	// User who acted; empty for new_item.
	User string
	// Item acted on; for new_item the published item. Empty for follow and
	// unfollow. For see_less, Item, Author or both may be set.
	Item string
	// Author is the followed (or unfollowed) author for follow and unfollow,
	// the item's author for new_item, and the author to see less of for
	// see_less.
	Author string
	Type   EventType
	// Risk is the item's integrity risk, in [0, 1], of an integrity or a
	// new_item event (kept only when the item has no risk yet: a repeated
	// publication does not undo an integrity event); ignored for the
	// others.
	Risk float64
	// Time of the event. A zero Time is replaced by the time Apply is called.
	// Times are kept with millisecond precision.
	Time time.Time
}

// ItemTime is an item of an author with its creation time.
type ItemTime struct {
	Item   string
	Author string
	Time   time.Time
}

// Engagement is one positive engagement of a user with an item.
type Engagement struct {
	Item string
	Type EventType
	Time time.Time
}

// UserState is what serving one request reads of its user, once: the
// frontend reads it from the store and every stage of the funnel works from
// it (sent along with each call when the stages run apart), so that the
// stages agree on the user without reading the store again.
type UserState struct {
	// User is the user's id.
	User string
	// Now is the time the request is served at.
	Now time.Time
	// Engagements are the user's latest positive engagements, most recently
	// recorded first, as UserReader.RecentEngagements returns them.
	Engagements []Engagement
	// Follows are the authors the user follows, sorted.
	Follows []string
}

// ItemScore is an item with its time-decayed popularity.
type ItemScore struct {
	Item string
	// Score is the sum over the item's engagements of weight·2^(-age/halfLife),
	// ages taken at the time passed to Popular.
	Score float64
}

// Writer records events.
type Writer interface {
	// Apply records a batch of events. When it returns nil every event of the
	// batch is durable and visible to readers. An invalid event rejects the
	// whole batch.
	Apply(ctx context.Context, events []Event) error
}

// SocialReader reads the follow graph and authors' recent items.
type SocialReader interface {
	// Follows returns the authors the user follows, sorted.
	Follows(ctx context.Context, user string) ([]string, error)
	// RecentByAuthors returns the items of the given authors created at or
	// after since, newest first, at most limit of them. The result is built
	// in buf's memory, overwriting it, when buf has room for it (buf may be
	// nil).
	RecentByAuthors(ctx context.Context, authors []string, since time.Time, limit int, buf []ItemTime) ([]ItemTime, error)
}

// UserReader reads a user's history.
type UserReader interface {
	// RecentEngagements returns the user's latest positive engagements
	// (click, like, comment, share), most recently recorded first, at most
	// limit of them.
	RecentEngagements(ctx context.Context, user string, limit int) ([]Engagement, error)
	// Seen returns what to filter out for the user: items seen or see-less'd,
	// and see-less'd authors.
	Seen(ctx context.Context, user string) (*Filter, error)
}

// PopularReader reads item popularity.
type PopularReader interface {
	// Popular returns the most popular items with their scores decayed to
	// now, highest first, at most limit of them.
	Popular(ctx context.Context, now time.Time, limit int) ([]ItemScore, error)
}

// PopularAppender is a PopularReader that can append to the caller's
// slice, so that a reader which keeps one allocates nothing a read.
type PopularAppender interface {
	PopularReader
	// AppendPopular appends what Popular returns to dst.
	AppendPopular(ctx context.Context, now time.Time, limit int, dst []ItemScore) ([]ItemScore, error)
}

// Store is the whole real-time state.
type Store interface {
	Writer
	SocialReader
	UserReader
	PopularReader
	io.Closer
}

// NewItemsReader lists the items published by new_item events, so that a
// process which keeps its own catalog can add them back after a restart.
type NewItemsReader interface {
	// NewItems returns the items published by new_item events, oldest
	// publication first, each item once with the author and time of its
	// first publication. At most StateOptions.NewItems items are kept, the
	// most recently first published.
	NewItems(ctx context.Context) ([]ItemTime, error)
}

// RiskReader lists the integrity risks set by integrity and new_item
// events, so that a process which keeps its own catalog can apply them
// again after a restart.
type RiskReader interface {
	// Risks returns the last risk set of each item that had one set.
	Risks(ctx context.Context) (map[string]float64, error)
}

// ArmRecorder remembers which experiment arm served each (user, item), so
// that the frontends sharing a store attribute each other's events: an
// engagement posted to one replica counts for the arm another replica
// served the item in.
type ArmRecorder interface {
	// RecordServed records that arm served items to user.
	RecordServed(ctx context.Context, arm, user string, items []string) error
	// ServedBy returns, for each event, the arm recorded for its (user,
	// item), "" when none is.
	ServedBy(ctx context.Context, events []Event) ([]string, error)
}

// EventClock reports how far the recorded events reach in time, so that a
// replayed historical log can be served on its own clock rather than the
// wall clock's.
type EventClock interface {
	// NewestEvent returns the latest Time of any event recorded, as
	// Apply dated it, and the zero Time if none was. Seeded items are not
	// events.
	NewestEvent(ctx context.Context) (time.Time, error)
}

// Seeder loads catalog items as authors' recent items without recording
// events: a catalog is seeded again at every start.
type Seeder interface {
	Seed(ctx context.Context, items []ItemTime) error
}

var (
	// ErrInvalidEvent is wrapped by Apply's error when an event of the batch
	// has an unknown type or lacks a field its type needs.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store closed")
)

// Filter tests whether an item or author is filtered out for a user. The zero
// Filter filters nothing. A Filter is a snapshot: later events do not change it.
type Filter struct {
	items   map[string]struct{}
	authors map[string]struct{}
}

// Excludes reports whether an item by author should not be shown.
func (f *Filter) Excludes(item, author string) bool {
	return f.HasItem(item) || f.HasAuthor(author)
}

// HasItem reports whether the item was seen or see-less'd.
func (f *Filter) HasItem(item string) bool {
	if f == nil {
		return false
	}
	_, ok := f.items[item]
	return ok
}

// HasAuthor reports whether the author was see-less'd.
func (f *Filter) HasAuthor(author string) bool {
	if f == nil {
		return false
	}
	_, ok := f.authors[author]
	return ok
}

// Items returns the items filtered out, in no particular order.
func (f *Filter) Items() iter.Seq[string] {
	return func(yield func(string) bool) {
		if f != nil {
			for it := range f.items {
				if !yield(it) {
					return
				}
			}
		}
	}
}

// Authors returns the authors filtered out, in no particular order.
func (f *Filter) Authors() iter.Seq[string] {
	return func(yield func(string) bool) {
		if f != nil {
			for a := range f.authors {
				if !yield(a) {
					return
				}
			}
		}
	}
}

// Len returns the number of items and authors filtered.
func (f *Filter) Len() int {
	if f == nil {
		return 0
	}
	return len(f.items) + len(f.authors)
}

func newFilter(items, authors int) *Filter {
	return &Filter{items: make(map[string]struct{}, items), authors: make(map[string]struct{}, authors)}
}

// StateOptions shape the state; both backends take them.
type StateOptions struct {
	// RecentEngagements is how many positive engagements are kept per user.
	// Default 50.
	RecentEngagements int
	// SeenItems is how many distinct seen items are kept per user, the most
	// recent ones; older ones may be recommended again. Default
	// DefaultSeenItems (10,000).
	SeenItems int
	// SeeLess is how many see-less'd items, and as many authors, are kept per
	// user, the most recent ones. Default 1000.
	SeeLess int
	// AuthorItems is how many recent items are kept per author, the newest.
	// Default 100.
	AuthorItems int
	// Follows is how many authors a user may follow; a follow past it is
	// ignored (an unfollow makes room). Default DefaultFollows.
	Follows int
	// Users is how many users the Memory store keeps state for; past it
	// the least recently active (approximately) are forgotten, with their
	// activity (ActivityReader). It bounds the lists the Memory store
	// keeps (ListStore) too: past it the soonest to expire are dropped.
	// The Redis store keeps the activity of as many users, the most
	// recently active; the rest of its state is bounded by the server's
	// own maxmemory policy. Default DefaultUsers.
	Users int
	// NewItems is how many items published by new_item events NewItems
	// returns, the most recent. Default 1000000.
	NewItems int
	// PopularItems is how many items popularity is tracked for; the least
	// popular are dropped beyond it. Default 100000.
	PopularItems int
	// HalfLife of popularity. Default 6h.
	HalfLife time.Duration
	// Weights of event types in popularity; types absent count zero. Weights
	// must not be negative. Default DefaultWeights.
	Weights map[EventType]float64
}

// DefaultSeenItems is the default of StateOptions.SeenItems.
const DefaultSeenItems = 10000

// DefaultFollows is the default of StateOptions.Follows: the config's
// (deploy.store.follows).
const DefaultFollows = config.DefaultFollows

// DefaultUsers is the default of StateOptions.Users, the config's
// (deploy.store.users): about 1.2 GiB of state at the 1.2 KiB a user with
// a seen item and a follow held in BENCHMARKS.md's "Memory at the caps".
const DefaultUsers = config.DefaultUsers

// DefaultWeights are the popularity weights used when StateOptions.Weights is
// nil.
var DefaultWeights = map[EventType]float64{Click: 1, Like: 2, Comment: 3, Share: 4}

func (o StateOptions) withDefaults() (StateOptions, error) {
	if o.RecentEngagements <= 0 {
		o.RecentEngagements = 50
	}
	if o.SeenItems <= 0 {
		o.SeenItems = DefaultSeenItems
	}
	if o.SeeLess <= 0 {
		o.SeeLess = 1000
	}
	if o.AuthorItems <= 0 {
		o.AuthorItems = 100
	}
	if o.Follows <= 0 {
		o.Follows = DefaultFollows
	}
	if o.Users <= 0 {
		o.Users = DefaultUsers
	}
	if o.NewItems <= 0 {
		o.NewItems = 1000000
	}
	if o.PopularItems <= 0 {
		o.PopularItems = 100000
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 6 * time.Hour
	}
	if o.Weights == nil {
		o.Weights = DefaultWeights
	}
	w := make(map[EventType]float64, len(o.Weights))
	for t, v := range o.Weights {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return o, fmt.Errorf("weight of %q is %v: weights must be finite and not negative", t, v)
		}
		w[t] = v
	}
	o.Weights = w
	return o, nil
}

// decay converts between the stored form of popularity and scores.
//
// A score at time now is Σ w·exp(-λ(now−t)). Both backends store instead
// L = ln Σ w·exp(λ(t−epoch)), which an event adds to with a log-sum-exp and
// which never needs rewriting as time passes: the order of items by L is
// their order by score at any now, and score = exp(L − λ(now−epoch)).
type decay struct {
	lambda  float64 // per second
	weights map[EventType]float64
}

// popularityEpoch is the fixed origin of stored popularity. Changing it
// invalidates stored scores.
var popularityEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newDecay(o StateOptions) decay {
	return decay{lambda: math.Ln2 / o.HalfLife.Seconds(), weights: o.Weights}
}

// logWeight returns the stored contribution of an event and whether it
// contributes at all.
func (d decay) logWeight(e *Event) (float64, bool) {
	w := d.weights[e.Type]
	if w <= 0 || e.Item == "" {
		return 0, false
	}
	return math.Log(w) + d.lambda*e.Time.Sub(popularityEpoch).Seconds(), true
}

func (d decay) score(stored float64, now time.Time) float64 {
	return math.Exp(stored - d.lambda*now.Sub(popularityEpoch).Seconds())
}

// logAddExp returns ln(exp(a)+exp(b)).
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// normalize checks each event and sets zero times to now, truncating times
// to milliseconds. It returns a copy; the caller's slice is not modified.
func normalize(events []Event, now time.Time) ([]Event, error) {
	out := make([]Event, len(events))
	now = now.Truncate(time.Millisecond)
	for i, e := range events {
		if err := validate(&e); err != nil {
			return nil, fmt.Errorf("failed to accept event %d: %w", i, err)
		}
		e.Type = canonical(e.Type)
		if e.Time.IsZero() {
			e.Time = now
		} else {
			e.Time = time.UnixMilli(e.Time.UnixMilli())
		}
		out[i] = e
	}
	return out, nil
}

func validate(e *Event) error {
	need := func(what string, ok bool) error {
		if !ok {
			return fmt.Errorf("%w: %s event needs %s", ErrInvalidEvent, e.Type, what)
		}
		return nil
	}
	switch e.Type {
	case Impression, Click, Like, Comment, Share:
		return need("user and item", e.User != "" && e.Item != "")
	case SeeLess:
		return need("user and item or author", e.User != "" && (e.Item != "" || e.Author != ""))
	case Follow, Unfollow:
		return need("user and author", e.User != "" && e.Author != "")
	case NewItem:
		if err := need("item and author", e.Item != "" && e.Author != ""); err != nil {
			return err
		}
		return checkRisk(e)
	case Integrity:
		if err := need("item", e.Item != ""); err != nil {
			return err
		}
		return checkRisk(e)
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalidEvent, e.Type)
	}
}

func checkRisk(e *Event) error {
	if !(e.Risk >= 0 && e.Risk <= 1) {
		return fmt.Errorf("%w: %s event: risk %v outside [0, 1]", ErrInvalidEvent, e.Type, e.Risk)
	}
	return nil
}

// lessItemTime orders newest first, ties by item.
func lessItemTime(a, b ItemTime) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	switch {
	case a.Item < b.Item:
		return -1
	case a.Item > b.Item:
		return 1
	}
	return 0
}

// List is a user's list computed off-peak by a precompute run.
type List struct {
	// User the list is for.
	User string `json:"user"`
	// Items are the list's items, best first.
	Items []ListItem `json:"items"`
	// Arm and Revision are the experiment arm and the config revision that
	// computed the list; it is served only while they serve the user.
	Arm      string `json:"arm"`
	Revision string `json:"revision"`
	// Created is when the list was computed and Expires when it stops
	// being served, both on the engine's clock (the event clock of a
	// replayed log, or the wall clock).
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// ListItem is one item of a List, as the funnel ranked it.
type ListItem struct {
	Item    string   `json:"item"`
	Score   float64  `json:"score"`
	Sources []string `json:"sources,omitempty"`
}

// ListStore keeps the lists of precompute runs, each until it expires.
// Expiry is decided on the engine's clock: a list is served while its
// Expires is after the now passed, whatever the wall clock says.
type ListStore interface {
	// PutLists stores lists, each replacing its user's previous one (of
	// a user's lists in one batch, the last). A list already expired at
	// now is not stored, and removes its user's previous list. A bad list
	// refuses the whole batch with an error that wraps ErrInvalidList and
	// names it: one without a user, with a user id longer than
	// MaxListUser bytes, without a Created time, with Expires not after
	// Created, or with an item without an id or whose score is not
	// finite. A list with no items is a valid list.
	PutLists(ctx context.Context, lists []List, now time.Time) error
	// UserList returns the user's list, or nil when there is none or it
	// expired at now (its Expires is not after now). The List returned
	// must not be modified: a backend may share it between callers.
	UserList(ctx context.Context, user string, now time.Time) (*List, error)
}

// UserActivity is how active one user was.
type UserActivity struct {
	User string
	// Last is the Time of the user's latest event (the greatest Time, in
	// whatever order the events came).
	Last time.Time
	// Events counts the user's events the store recorded: every event
	// with a user (impression, click, like, comment, share, see_less,
	// follow, unfollow).
	Events int64
}

// ActivityReader selects users by their activity, for precompute runs.
type ActivityReader interface {
	// ActiveUsers returns the users whose latest event is at or after
	// since, the most events first (ties by user id, ascending), at most
	// limit of them; limit <= 0 returns them all.
	ActiveUsers(ctx context.Context, since time.Time, limit int) ([]UserActivity, error)
}
