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

// Package rerank is the final stage of recserve's funnel: an ordered chain of
// rules, compiled from the live config, that filters, demotes and spreads the
// ranked candidates before the list is cut to the size a client sees.
//
// Compile orders the configured rules by kind: filters first
// (IntegrityFilter), then value adjustments (IntegrityDownrank), then
// arrangement (AuthorDiversity); rules of one kind keep the order the config
// lists them in. A filter run after AuthorDiversity would close the gaps it
// made and a downrank would re-sort them away, so this order is the one in
// which every rule's promise holds of the final list: no item over the
// integrity threshold, and no two items of one author closer than the gap.
// NewChain runs rules in exactly the order given.
//
// Every rule works in place on the caller's slice and allocates nothing. A
// Chain holds no mutable state, so one Chain serves concurrent requests, each
// with its own list.
package rerank

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
)

// Rule rewrites a ranked list in place: it may drop, demote or reorder
// candidates, and returns the list that remains, a prefix of list's backing
// array. It expects list in rank order (rank.Compare) and leaves it in the
// order the rule defines.
type Rule interface {
	Apply(list []rank.Candidate) []rank.Candidate
}

// IntegrityFilter drops every candidate whose risk is above MaxRisk; a
// candidate at exactly MaxRisk stays. The survivors keep their order.
type IntegrityFilter struct {
	MaxRisk float32
}

// Apply implements Rule.
func (r IntegrityFilter) Apply(list []rank.Candidate) []rank.Candidate {
	n := 0
	for i := range list {
		if list[i].Risk > r.MaxRisk {
			continue
		}
		if n != i {
			list[n] = list[i]
		}
		n++
	}
	return list[:n]
}

// IntegrityDownrank demotes every candidate whose risk is above Above (a
// candidate at exactly Above is left alone) by Factor, then re-sorts the list
// by value (rank.Sort).
//
// Demoting always lowers a value: a positive value is multiplied by Factor,
// a negative one (negative event weights, such as see_less, make those) is
// divided by it, since multiplying it by a factor below one would raise it.
// A Factor of zero sends a negative-valued candidate to the bottom.
type IntegrityDownrank struct {
	Above  float32
	Factor float32
}

// Apply implements Rule.
func (r IntegrityDownrank) Apply(list []rank.Candidate) []rank.Candidate {
	changed := false
	for i := range list {
		if list[i].Risk > r.Above {
			list[i].Value = demote(list[i].Value, r.Factor)
			changed = true
		}
	}
	if changed {
		rank.Sort(list)
	}
	return list
}

func demote(v, factor float32) float32 {
	if v >= 0 || v != v {
		return v * factor
	}
	if factor == 0 {
		return -math.MaxFloat32
	}
	// Clamp rather than reach -Inf, which JSON cannot carry.
	return max(v/factor, -math.MaxFloat32)
}

// AuthorDiversity spreads authors: between two items of one author stand at
// least MinGap items of others, so with MinGap 1 no author appears twice in a
// row, and with MinGap 3 an author's items are at least four positions apart.
//
// It walks the ranked list greedily: each position takes the best remaining
// candidate whose author is not among the last MinGap placed, and the
// candidates it passes over keep their order. When no remaining candidate
// qualifies, the gap is relaxed there, and only there: the position takes
// the best remaining candidate whose author was placed longest ago. A list
// therefore keeps every candidate (a feed is never cut short by its
// authors), and breaks the gap only where its candidates leave no choice.
// Its cost is the length of the list times the candidates passed over at
// each position times MinGap.
type AuthorDiversity struct {
	MinGap int
}

// Apply implements Rule.
func (r AuthorDiversity) Apply(list []rank.Candidate) []rank.Candidate {
	if r.MinGap < 1 {
		return list
	}
	for i := range list {
		j := i
		for j < len(list) && recent(list[max(0, i-r.MinGap):i], list[j].Author) {
			j++
		}
		if j == len(list) {
			j = longestAgo(list[:i], list[i:], r.MinGap) + i
		}
		if j != i {
			// Move list[j] to position i, shifting the passed-over
			// candidates down one so that they keep their rank order.
			c := list[j]
			copy(list[i+1:j+1], list[i:j])
			list[i] = c
		}
	}
	return list
}

// longestAgo returns the index in rest of the best candidate whose author
// is the furthest back among the last gap placed items (all of rest's
// authors are among them).
func longestAgo(placed, rest []rank.Candidate, gap int) int {
	best, bestAgo := 0, -1
	for j := range rest {
		ago := 0
		for k := len(placed) - 1; k >= max(0, len(placed)-gap); k-- {
			if placed[k].Author == rest[j].Author {
				ago = len(placed) - k
				break
			}
		}
		if ago > bestAgo {
			best, bestAgo = j, ago
		}
	}
	return best
}

func recent(placed []rank.Candidate, author string) bool {
	for i := range placed {
		if placed[i].Author == author {
			return true
		}
	}
	return false
}

// Chain is an ordered list of rules compiled from the live config. It holds
// no mutable state and is safe for concurrent use.
type Chain struct {
	rules []Rule
}

// NewChain returns a chain running rules in order.
func NewChain(rules ...Rule) Chain {
	return Chain{rules: append([]Rule(nil), rules...)}
}

// Compile builds the chain of the configured rules (live.rerank.rules), in
// the configured order. It refuses a rule of unknown type and parameters out
// of range, naming the rule by its index.
func Compile(rules []config.Rule) (Chain, error) {
	out := make([]Rule, 0, len(rules))
	for i, r := range rules {
		path := fmt.Sprintf("rules[%d]", i)
		switch r.Type {
		case config.RuleAuthorDiversity:
			if r.MinGap < 1 {
				return Chain{}, fmt.Errorf("%s.minGap: is %d, must be at least 1", path, r.MinGap)
			}
			out = append(out, AuthorDiversity{MinGap: r.MinGap})
		case config.RuleIntegrityFilter:
			if err := unit(path+".maxRisk", r.MaxRisk); err != nil {
				return Chain{}, err
			}
			out = append(out, IntegrityFilter{MaxRisk: float32(r.MaxRisk)})
		case config.RuleIntegrityDownrank:
			if err := unit(path+".above", r.Above); err != nil {
				return Chain{}, err
			}
			if err := unit(path+".factor", r.Factor); err != nil {
				return Chain{}, err
			}
			out = append(out, IntegrityDownrank{Above: float32(r.Above), Factor: float32(r.Factor)})
		default:
			return Chain{}, fmt.Errorf("%s.type: %q is not a known rule type (%s, %s, %s)", path, r.Type,
				config.RuleAuthorDiversity, config.RuleIntegrityFilter, config.RuleIntegrityDownrank)
		}
	}
	slices.SortStableFunc(out, func(a, b Rule) int { return cmp.Compare(phase(a), phase(b)) })
	return Chain{rules: out}, nil
}

// phase orders rule kinds within a compiled chain.
func phase(r Rule) int {
	switch r.(type) {
	case IntegrityFilter:
		return 0
	case IntegrityDownrank:
		return 1
	default:
		return 2
	}
}

func unit(path string, x float64) error {
	if !(x >= 0 && x <= 1) {
		return fmt.Errorf("%s: is %v, must be between 0 and 1", path, x)
	}
	return nil
}

// Rules returns the rules in order; the slice must not be modified.
func (c Chain) Rules() []Rule { return c.rules }

// Apply runs the rules in order on list, a ranked list the caller owns and
// that Apply rewrites in place, then cuts the result to at most size items
// (none for a size below one). It allocates nothing.
func (c Chain) Apply(list []rank.Candidate, size int) []rank.Candidate {
	for _, r := range c.rules {
		list = r.Apply(list)
	}
	return list[:max(0, min(size, len(list)))]
}
