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

package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// shareIDs points the events' user, item and author ids at the catalog's
// copies where the catalog has them. The store keeps the strings of what
// it remembers (its users, seen items, engagements, popularity, follows):
// decoded ones would be an object each, for every collection to mark,
// where the catalog's share its blocks (strpack).
func (e *Engine) shareIDs(events []store.Event) {
	for i := range events {
		ev := &events[i]
		if ev.User != "" {
			ev.User, _ = e.cat.UserID(ev.User)
		}
		if ev.Item != "" {
			if o, ok := e.cat.Ordinal(ev.Item); ok {
				ev.Item = e.cat.ID(o)
			}
		}
		if ev.Author != "" {
			if a, ok := e.cat.LookupAuthor(ev.Author); ok {
				ev.Author = e.cat.AuthorName(a)
			}
		}
	}
}

// Ingest records events; new items join the catalog, the embeddings and
// the indexes before the call returns. A batch is checked whole first: when
// Ingest returns an error wrapping store.ErrInvalidEvent nothing of it was
// recorded. New items join the catalog only once the store has recorded
// them, in the store's order, so that a restart restores the same catalog.
func (e *Engine) Ingest(ctx context.Context, events []store.Event) error {
	if e.state == nil {
		return ErrNotFrontend
	}
	if err := e.checkIntegrity(events); err != nil {
		return err
	}
	e.shareIDs(events)
	var now time.Time
	var published []store.Event // events with new items dated
	for i := range events {
		if events[i].Type != store.NewItem {
			continue
		}
		if published == nil {
			published = slices.Clone(events)
			now = time.Now()
		}
		ev := &published[i]
		if ev.Time.IsZero() {
			ev.Time = now // the store and the catalog date the item alike
		}
		if err := checkNewItem(ev); err != nil {
			return fmt.Errorf("%w: events[%d]: %v", store.ErrInvalidEvent, i, err)
		}
		if _, ok := e.cat.Ordinal(ev.Item); ok {
			ev.Risk = 0 // a known item keeps its risk: the store records none
		}
	}
	if published == nil {
		if slices.ContainsFunc(events, func(ev store.Event) bool { return ev.Type == store.Integrity }) {
			// The store and the catalog take concurrent risks in one order.
			e.addMu.Lock()
			defer e.addMu.Unlock()
		}
		if err := e.state.Apply(ctx, events); err != nil {
			return err
		}
		e.datalog.Events(events)
		e.observeEvents(events)
		e.applyRisks(events)
		e.arms.attribute(ctx, events, e.live.Load())
		return nil
	}
	e.addMu.Lock()
	defer e.addMu.Unlock()
	if err := e.roomFor(published); err != nil {
		return err
	}
	if err := e.state.Apply(ctx, published); err != nil {
		return err
	}
	e.datalog.Events(published)
	e.observeEvents(published)
	e.arms.attribute(ctx, published, e.live.Load())
	for i := range published {
		if published[i].Type != store.NewItem {
			continue
		}
		if err := e.addItem(ctx, &published[i]); err != nil {
			return fmt.Errorf("failed to add the recorded item of events[%d]: %w", i, err)
		}
	}
	e.applyRisks(published)
	return nil
}

// checkIntegrity refuses integrity events for items neither in the catalog
// nor published in the same batch: a risk is kept for each item given
// one, so that ids made up by a client would grow the store for ever. On a
// shared store (Redis) any item is taken: another frontend may have
// published it, and this one learns of it at its next start.
func (e *Engine) checkIntegrity(events []store.Event) error {
	if e.storeTy == "Redis" {
		return nil
	}
	var batch map[string]bool
	for i := range events {
		ev := &events[i]
		if ev.Type != store.Integrity {
			continue
		}
		if _, ok := e.cat.Ordinal(ev.Item); ok {
			continue
		}
		if batch == nil {
			batch = map[string]bool{}
			for j := range events {
				if events[j].Type == store.NewItem {
					batch[events[j].Item] = true
				}
			}
		}
		if !batch[ev.Item] {
			return fmt.Errorf("%w: events[%d]: integrity event for item %q, which is neither in the catalog nor published", store.ErrInvalidEvent, i, ev.Item)
		}
	}
	return nil
}

// applyRisks gives the catalog the risks of recorded integrity events.
func (e *Engine) applyRisks(events []store.Event) {
	for i := range events {
		if ev := &events[i]; ev.Type == store.Integrity {
			if o, ok := e.cat.Ordinal(ev.Item); ok {
				e.cat.SetRisk(o, float32(ev.Risk))
			}
		}
	}
}

// NewItemRisk is the integrity risk of an item published live that names
// none: the live config's rerank.newItemRisk, 0 before a config.
func (e *Engine) NewItemRisk() float64 {
	if l := e.live.Load(); l != nil {
		return l.cfg.Live.Rerank.NewItemRisk
	}
	return 0
}

// observeEvents moves the clock to the newest of recorded events; an
// undated one was dated by the store, at about now.
func (e *Engine) observeEvents(events []store.Event) {
	var newest time.Time
	for i := range events {
		t := events[i].Time
		if t.IsZero() {
			t = time.Now()
		}
		if t.After(newest) {
			newest = t
		}
	}
	if !newest.IsZero() {
		e.clock.observe(newest)
	}
}

// checkNewItem checks a new_item event as the catalog checks an added item,
// so that an item the store records is one the catalog takes.
func checkNewItem(ev *store.Event) error {
	for _, f := range []struct{ name, v string }{{"item", ev.Item}, {"author", ev.Author}} {
		switch {
		case f.v == "":
			return fmt.Errorf("new_item needs %s", f.name)
		case len(f.v) > dataset.MaxIDBytes:
			return fmt.Errorf("new_item %s is longer than %d bytes", f.name, dataset.MaxIDBytes)
		case !utf8.ValidString(f.v):
			return fmt.Errorf("new_item %s is not valid UTF-8", f.name)
		}
	}
	if y := ev.Time.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("new_item time: year %d outside 1..9999", y)
	}
	return nil
}

// roomFor refuses a batch whose new items would take the items published
// live past deploy.publishedItems: each grows the catalog, the embeddings
// and the indexes for the life of the process. The caller holds addMu.
func (e *Engine) roomFor(events []store.Event) error {
	fresh := map[string]bool{}
	for i := range events {
		if ev := &events[i]; ev.Type == store.NewItem && !fresh[ev.Item] {
			if _, ok := e.cat.Ordinal(ev.Item); !ok {
				fresh[ev.Item] = true
			}
		}
	}
	if published := e.cat.Len() - e.base; published+len(fresh) > e.maxPublished {
		return fmt.Errorf("%w: %d new items would take the items published live since the catalog was loaded from %d past deploy.publishedItems (%d); rebuild the catalog with them",
			store.ErrInvalidEvent, len(fresh), published, e.maxPublished)
	}
	return nil
}

// addItem adds a recorded new item to the catalog, embeds and indexes it.
// The caller holds addMu.
func (e *Engine) addItem(ctx context.Context, ev *store.Event) error {
	o, err := e.cat.Add(dataset.Item{ID: ev.Item, Author: ev.Author, Created: ev.Time, IntegrityRisk: ev.Risk})
	if errors.Is(err, catalog.ErrDuplicate) {
		return nil
	}
	if err != nil {
		return err
	}
	// The item is recorded: embed it even if the caller gives up, and catch
	// up on any item an earlier failure left without an embedding, since
	// embeddings are appended by ordinal.
	ctx = context.WithoutCancel(ctx)
	for name, t := range e.towers {
		from := uint32(t.Vectors().Len())
		if err := t.EmbedItems(ctx, e.cat, int(from), int(o)+1); err != nil {
			return err
		}
		idx := e.indexes[name]
		if idx == nil {
			continue
		}
		var v []float32
		for i := from; i <= o; i++ {
			v = t.Vectors().Vector(i, v)
			if err := idx.Add(i, v); err != nil {
				return err
			}
		}
	}
	return nil
}
