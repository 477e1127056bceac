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

package sources

import (
	"context"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// authorSlack is how many times its limit more a source may ask for when
// the request excludes whole authors, whose items it cannot count.
const authorSlack = 4

// MaxAsk bounds what FetchUnseen asks of a list for any valid config: a
// limit of at most config.MaxBudget, past at most twice config.MaxSeenItems
// excluded items (seen and see-less'd) and the author slack.
const MaxAsk = (1+authorSlack)*config.MaxBudget + 2*config.MaxSeenItems

// FetchUnseen appends to dst at most limit candidates of fetch that req
// does not exclude, in fetch's order, and returns the extended slice: how
// a source reads its list past what the user has seen.
//
// fetch(ask, dst) appends the best ask candidates of the underlying list to
// dst and reports whether asking for more could find more (false once the
// list is exhausted). When req excludes nothing, fetch is asked for limit.
// Otherwise it is asked for limit plus the excluded items, at most twice
// limit at first, then for twice as many each time the unexcluded ones fall
// short of limit and the list has more, up to limit plus every excluded
// item (plus authorSlack × limit when whole authors are excluded), the
// most that can be needed. Each ask starts again from the list's top, so
// fetch need keep no state; ctx ending stops the asking.
func FetchUnseen(ctx context.Context, req *Request, limit int, dst []Candidate,
	fetch func(ask int, dst []Candidate) ([]Candidate, bool, error)) ([]Candidate, error) {
	start := len(dst)
	excluded, authors := req.Excluded()
	most := limit + excluded
	if authors {
		most += authorSlack * limit
	}
	ask := min(limit+min(excluded, limit), most)
	if authors && excluded == 0 {
		ask = 2 * limit
	}
	for {
		out, more, err := fetch(ask, dst[:start])
		if err != nil {
			return out, err
		}
		kept := out[:start]
		for _, c := range out[start:] {
			if !req.Excludes(c.Item) {
				kept = append(kept, c)
			}
		}
		dst = kept
		if len(dst)-start >= limit || !more || ask >= most || ctx.Err() != nil {
			break
		}
		ask = min(2*ask, most)
	}
	return dst[:start+min(limit, len(dst)-start)], nil
}
