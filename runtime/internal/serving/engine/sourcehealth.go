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
	"math"
	"slices"
	"sync"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// sourceWindow is how many of its latest requests a frontend reports each
// source's failures over.
const sourceWindow = config.SourceWindow

// maxTrackedSources bounds the sources remembered: the live config's and
// those of arms or earlier configs (a rollout that changes the sources
// alternates between two lists).
const maxTrackedSources = 2 * config.MaxSources

// sourceHealth remembers, per retrieval source, which of the latest
// sourceWindow requests that ran it it failed or missed its deadline in.
type sourceHealth struct {
	mu      sync.Mutex
	sources map[string]*sourceRing
	clock   uint64 // requests recorded, for forgetting the least recent source
}

type sourceRing struct {
	failed []bool // a ring of the latest requests' outcomes
	next   int
	n      int
	nfail  int64
	last   uint64 // sourceHealth.clock at the source's latest request
}

// record notes one request: names are the sources it ran, failed those
// that failed it.
func (h *sourceHealth) record(names, failed []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sources == nil {
		h.sources = map[string]*sourceRing{}
	}
	h.clock++
	for _, name := range names {
		r := h.sources[name]
		if r == nil {
			if len(h.sources) >= maxTrackedSources {
				h.forgetOne()
			}
			r = &sourceRing{failed: make([]bool, sourceWindow)}
			h.sources[name] = r
		}
		f := slices.Contains(failed, name)
		if r.n == sourceWindow && r.failed[r.next] {
			r.nfail--
		}
		if f {
			r.nfail++
		}
		r.failed[r.next] = f
		r.next = (r.next + 1) % sourceWindow
		r.n = min(r.n+1, sourceWindow)
		r.last = h.clock
	}
}

// forgetOne drops the source run least recently. h.mu is held.
func (h *sourceHealth) forgetOne() {
	victim, oldest := "", uint64(math.MaxUint64)
	for name, r := range h.sources {
		if r.last < oldest {
			victim, oldest = name, r.last
		}
	}
	delete(h.sources, victim)
}

// counts is, by source, the requests of its window and those it failed;
// nil before any request.
func (h *sourceHealth) counts() map[string]config.SourceCounts {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sources) == 0 {
		return nil
	}
	out := make(map[string]config.SourceCounts, len(h.sources))
	for name, r := range h.sources {
		out[name] = config.SourceCounts{Requests: int64(r.n), Failed: r.nfail}
	}
	return out
}

// SourceCounts is, by retrieval source, how many of the frontend's latest
// requests it served and how many it failed or missed its deadline in;
// nil on the other stages and before any request.
func (e *Engine) SourceCounts() map[string]config.SourceCounts {
	return e.sources.counts()
}
