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
	"math/bits"
	"slices"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// sourceWindow is how many of its latest requests a frontend reports its
// sources' failures over (config.Status.Sources).
const sourceWindow = 1000

// sourceHealth remembers, for the frontend's latest sourceWindow requests,
// which retrieval sources failed them or were given up on at their
// deadline: one bit per source of the live config (config.MaxSources ≤ 64).
type sourceHealth struct {
	mu     sync.Mutex
	names  []string // the live config's sources, in order
	failed []uint64 // a ring of per-request failure masks
	next   int
	n      int // requests in the ring
}

// record notes one request's failed sources; names are the sources the
// request ran. A change of the sources starts a new window.
func (h *sourceHealth) record(names, failed []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Equal(h.names, names) {
		h.names = slices.Clone(names)
		h.failed = make([]uint64, sourceWindow)
		h.next, h.n = 0, 0
	}
	var mask uint64
	for _, f := range failed {
		if i := slices.Index(names, f); i >= 0 && i < 64 {
			mask |= 1 << i
		}
	}
	h.failed[h.next] = mask
	h.next = (h.next + 1) % sourceWindow
	h.n = min(h.n+1, sourceWindow)
}

// counts is, by source, the requests of the window and those it failed;
// nil before any request.
func (h *sourceHealth) counts() map[string]config.SourceCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return nil
	}
	var per [64]int64
	for _, m := range h.failed[:h.n] {
		for m != 0 {
			i := bits.TrailingZeros64(m)
			per[i]++
			m &= m - 1
		}
	}
	out := make(map[string]config.SourceCounts, len(h.names))
	for i, name := range h.names {
		out[name] = config.SourceCounts{Requests: int64(h.n), Failed: per[i]}
	}
	return out
}

// SourceCounts is, by retrieval source, how many of the frontend's latest
// requests it served and how many it failed or missed its deadline in;
// nil on the other stages and before any request.
func (e *Engine) SourceCounts() map[string]config.SourceCounts {
	return e.sources.counts()
}
