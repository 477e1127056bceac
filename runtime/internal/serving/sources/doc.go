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

// Package sources is the retrieval stage of recserve: the candidate sources
// and the mixer that merges their candidates into the stage's budget.
//
// # Sources
//
// A Source proposes up to a limit of catalog items for a user, each with a
// score of its own, best first:
//
//   - FollowedAuthorsRecent: the items of followed authors published within
//     MaxAge, scored by freshness (real time, from the store);
//   - TwoTowerANN: the user tower's embedding searched in the ANN index of
//     item embeddings, scored by inner product;
//   - ItemToItemANN: the neighbours of the user's latest engaged items, each
//     scored by its best inner product with a seed, the seeds excluded;
//   - Popular: the store's time-decayed popularity, whose half-life is the
//     store's, set from the source's Window when the store is opened;
//   - Precomputed: lists computed offline per user, loaded from a JSON Lines
//     file and reloadable.
//
// Sources of one request share what several of them read (follows, recent
// engagements, the user embedding) through the Request.
//
// Items the user has seen or see-less'd never take a source's limit: the
// mixer hands the seen filter, by catalog ordinal, to the sources through
// the Request (Request.Excludes), and each source reads its list past them.
// A source asks its index or the store for its limit plus as many items as
// the filter holds (at most twice its limit at first), and asks again for
// twice as many while the unseen ones fall short and the list has more, up
// to the most the filter can hide (FetchUnseen). A user who has seen much
// thus still gets each source's limit of unseen candidates; nothing is
// asked beyond the limit for a user who has seen nothing.
//
// # Mixing
//
// Mixer.Mix runs every source in parallel, each under its own timeout. A
// source that fails, panics or outlives its timeout is reported to the
// Observer and contributes nothing: the request goes on with the others
// (fail-open). Mix fails only when its own context ends. A source is asked
// for its Limit of candidates (the budget if it has none), which may exceed
// the budget so that filtering and de-duplication leave enough.
//
// The budget is then filled in rounds:
//
//  1. Each source's candidates are put in its score order; items the seen
//     filter excludes (seen or see-less'd items, see-less'd authors, looked
//     up through Items) that a source still returned are dropped before
//     they take any budget, as are a source's repeats of an item.
//  2. The budget left is split over the sources still holding candidates in
//     proportion to their weights, none above its Limit less what it already
//     contributed, with integer shares by largest remainder. With weights
//     0.25/0.45/0.2/0.1 and a budget of 100 the quotas are 25/45/20/10.
//  3. Each source, in config order, takes its quota from its list in order.
//     An item another source already took costs neither budget nor quota;
//     the source moves on to its next one.
//  4. A source that comes up short leaves the rounds, and the next round
//     splits the shortfall over the others by weight, from their remaining
//     candidates. Rounds end when the budget is spent or no source has
//     candidates left.
//
// An item's Sources records every source that returned it, whichever took
// it, so later stages see where it came from. The mixed score interleaves
// the sources in proportion to what they contributed, without comparing
// their scores, which live on different scales: a source that consumed c
// positions of its list gives position p the score 1 − (p+½)/c, and an item
// consumed by several sources keeps its best. Sorting by it, as Mix does
// (ties by item), gives the first stage a fair order even where it scores
// nothing.
//
// A mix left short of MixerOptions.Min (by a user who has seen most of what
// the sources find, or by failing sources) is topped up from the backfill
// (Backfill: the most popular items, then the rest of the catalog, the
// most recently added first, unseen ones only), appended after the mixed
// items with no source of their own.
//
// Weights of zero leave a source out of the run; if every weight is zero, all
// sources weigh the same, so that a misweighted config still serves.
//
// Per-request buffers (source results, the merge's entries and lists) are
// pooled per Mixer; a request whose sources have not all returned drops its
// buffers to the stragglers rather than reusing them.
package sources
