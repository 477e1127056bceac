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

package rerank

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/race"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
)

// c builds a candidate; the id doubles as the name tests compare.
func c(id, author string, value, risk float32) rank.Candidate {
	return rank.Candidate{ID: id, Author: author, Value: value, Risk: risk}
}

func ids(list []rank.Candidate) []string {
	out := make([]string, len(list))
	for i := range list {
		out[i] = list[i].ID
	}
	return out
}

func TestIntegrityFilter(t *testing.T) {
	list := []rank.Candidate{
		c("zero", "a", 6, 0),
		c("below", "a", 5, 0.49),
		c("at", "a", 4, 0.5),
		c("above", "a", 3, 0.51),
		c("one", "a", 2, 1),
	}
	tests := map[string]struct {
		maxRisk float32
		want    []string
	}{
		"risk equal to maxRisk stays, above goes": {maxRisk: 0.5, want: []string{"zero", "below", "at"}},
		"maxRisk 0 keeps only riskless items":     {maxRisk: 0, want: []string{"zero"}},
		"maxRisk 1 keeps everything":              {maxRisk: 1, want: []string{"zero", "below", "at", "above", "one"}},
		"just under an item's risk drops it":      {maxRisk: 0.48, want: []string{"zero"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := IntegrityFilter{MaxRisk: tc.maxRisk}.Apply(slices.Clone(list))
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("kept %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestIntegrityDownrank(t *testing.T) {
	tests := map[string]struct {
		rule IntegrityDownrank
		in   []rank.Candidate
		want []string
	}{
		"risky best item falls below safer ones": {
			rule: IntegrityDownrank{Above: 0.5, Factor: 0.3},
			in:   []rank.Candidate{c("risky", "a", 10, 0.8), c("safe1", "b", 5, 0.1), c("safe2", "c", 2, 0.2)},
			want: []string{"safe1", "risky", "safe2"}, // 10 × 0.3 = 3
		},
		"risk equal to above is not demoted": {
			rule: IntegrityDownrank{Above: 0.5, Factor: 0.1},
			in:   []rank.Candidate{c("edge", "a", 10, 0.5), c("safe", "b", 5, 0)},
			want: []string{"edge", "safe"},
		},
		"factor 1 changes nothing": {
			rule: IntegrityDownrank{Above: 0, Factor: 1},
			in:   []rank.Candidate{c("x", "a", 3, 0.9), c("y", "b", 2, 0.9), c("z", "c", 1, 0.9)},
			want: []string{"x", "y", "z"},
		},
		"factor 0 sends positive values to zero": {
			rule: IntegrityDownrank{Above: 0.5, Factor: 0},
			in:   []rank.Candidate{c("risky", "a", 10, 0.9), c("small", "b", 0.01, 0), c("neg", "c", -1, 0)},
			want: []string{"small", "risky", "neg"},
		},
		"negative value is lowered, not raised": {
			rule: IntegrityDownrank{Above: 0.5, Factor: 0.5},
			in:   []rank.Candidate{c("safe", "a", -1.5, 0), c("risky", "b", -1, 0.9)},
			want: []string{"safe", "risky"}, // -1 / 0.5 = -2
		},
		"negative value with factor 0 goes to the bottom": {
			rule: IntegrityDownrank{Above: 0.5, Factor: 0},
			in:   []rank.Candidate{c("risky", "a", -0.1, 0.9), c("safe", "b", -1e30, 0)},
			want: []string{"safe", "risky"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.rule.Apply(slices.Clone(tc.in))
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("order %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestIntegrityDownrankScalesValue(t *testing.T) {
	got := IntegrityDownrank{Above: 0.5, Factor: 0.3}.Apply([]rank.Candidate{c("r", "a", 10, 0.9), c("s", "b", 4, 0.2)})
	want := map[string]float32{"r": 3, "s": 4}
	for _, x := range got {
		if d := x.Value - want[x.ID]; d > 1e-6 || d < -1e-6 {
			t.Errorf("%s: value %v, want %v", x.ID, x.Value, want[x.ID])
		}
	}
}

// gapViolation describes two items of one author with fewer than gap items
// between them, or returns "".
func gapViolation(list []rank.Candidate, gap int) string {
	for i := range list {
		for j := max(0, i-gap); j < i; j++ {
			if list[j].Author == list[i].Author {
				return fmt.Sprintf("author %s at positions %d and %d", list[i].Author, j, i)
			}
		}
	}
	return ""
}

// greedy is the reference author diversity, written over a list of the
// remaining candidates rather than in place.
func greedy(in []rank.Candidate, gap int) []string {
	remaining := slices.Clone(in)
	var placed []rank.Candidate
	for len(remaining) > 0 {
		pick := -1
		for j, x := range remaining {
			ok := true
			for _, p := range placed[max(0, len(placed)-gap):] {
				if p.Author == x.Author {
					ok = false
				}
			}
			if ok {
				pick = j
				break
			}
		}
		if pick < 0 {
			// Relax: the author placed longest ago, the best of them.
			far := -1
			for j, x := range remaining {
				ago := 0
				for k := len(placed) - 1; k >= max(0, len(placed)-gap); k-- {
					if placed[k].Author == x.Author {
						ago = len(placed) - k
						break
					}
				}
				if ago > far {
					pick, far = j, ago
				}
			}
		}
		placed = append(placed, remaining[pick])
		remaining = slices.Delete(remaining, pick, pick+1)
	}
	return ids(placed)
}

func randRanked(r *rand.Rand, n, authors int) []rank.Candidate {
	list := make([]rank.Candidate, n)
	for i := range list {
		list[i] = rank.Candidate{
			Item:   uint32(i),
			ID:     fmt.Sprintf("i%03d", i),
			Author: fmt.Sprintf("a%d", r.IntN(authors)),
			Value:  r.Float32(),
			Risk:   r.Float32(),
		}
	}
	rank.Sort(list)
	return list
}

func TestAuthorDiversity(t *testing.T) {
	tests := map[string]struct {
		gap  int
		in   []rank.Candidate
		want []string
	}{
		"gap 1 splits neighbours": {
			gap:  1,
			in:   []rank.Candidate{c("a1", "A", 5, 0), c("a2", "A", 4, 0), c("b1", "B", 3, 0), c("a3", "A", 2, 0)},
			want: []string{"a1", "b1", "a2", "a3"}, // nothing else can follow a2: the gap gives
		},
		"gap 2 pulls up the next other authors in rank order": {
			gap:  2,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("a2", "A", 8, 0), c("b1", "B", 7, 0), c("b2", "B", 6, 0), c("c1", "C", 5, 0)},
			want: []string{"a1", "b1", "c1", "a2", "b2"},
		},
		"gap 3 needs four authors to repeat one": {
			gap:  3,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("a2", "A", 8, 0), c("b1", "B", 7, 0), c("c1", "C", 6, 0), c("d1", "D", 5, 0)},
			want: []string{"a1", "b1", "c1", "d1", "a2"},
		},
		"gap 3 with three authors relaxes only at the end": {
			gap:  3,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("a2", "A", 8, 0), c("b1", "B", 7, 0), c("c1", "C", 6, 0)},
			want: []string{"a1", "b1", "c1", "a2"},
		},
		"relaxing takes the author placed longest ago": {
			gap:  3,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("b1", "B", 8, 0), c("c1", "C", 7, 0), c("c2", "C", 6, 0), c("b2", "B", 5, 0), c("a2", "A", 4, 0)},
			want: []string{"a1", "b1", "c1", "a2", "b2", "c2"},
		},
		"already diverse list is unchanged": {
			gap:  2,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("b1", "B", 8, 0), c("c1", "C", 7, 0), c("a2", "A", 6, 0)},
			want: []string{"a1", "b1", "c1", "a2"},
		},
		"all one author keeps the rank order": {
			gap:  1,
			in:   []rank.Candidate{c("a1", "A", 9, 0), c("a2", "A", 8, 0), c("a3", "A", 7, 0)},
			want: []string{"a1", "a2", "a3"},
		},
		"empty list": {gap: 3, in: nil, want: []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := AuthorDiversity{MinGap: tc.gap}.Apply(slices.Clone(tc.in))
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("placed %v, want %v", ids(got), tc.want)
			}
		})
	}
}

func TestAuthorDiversityRandom(t *testing.T) {
	tests := map[string]struct {
		gap, n, authors int
	}{
		"gap 1, many authors":  {gap: 1, n: 100, authors: 40},
		"gap 1, two authors":   {gap: 1, n: 100, authors: 2},
		"gap 2, few authors":   {gap: 2, n: 100, authors: 4},
		"gap 3, few authors":   {gap: 3, n: 100, authors: 5},
		"gap 3, one author":    {gap: 3, n: 30, authors: 1},
		"gap 3, gap+1 authors": {gap: 3, n: 100, authors: 4},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(30) {
				in := randRanked(rand.New(rand.NewPCG(seed, 1)), tc.n, tc.authors)
				got := AuthorDiversity{MinGap: tc.gap}.Apply(slices.Clone(in))
				// Each position holds the best candidate allowed there.
				if want := greedy(in, tc.gap); !slices.Equal(ids(got), want) {
					t.Fatalf("seed %d: placed %v\nwant %v", seed, ids(got), want)
				}
				if len(got) != len(in) || got[0].ID != in[0].ID {
					t.Fatalf("seed %d: %d of %d placed, first %v, want all, %s first", seed, len(got), len(in), ids(got[:1]), in[0].ID)
				}
				// The gap breaks only where every later candidate's
				// author is among the last gap placed.
				for i := range got {
					if gapViolation(got[max(0, i-tc.gap):i+1], tc.gap) == "" {
						continue
					}
					for _, x := range got[i:] {
						if !slices.ContainsFunc(got[max(0, i-tc.gap):i], func(p rank.Candidate) bool { return p.Author == x.Author }) {
							t.Fatalf("seed %d: gap broken at %d although %s (author %s) could stand there", seed, i, x.ID, x.Author)
						}
					}
				}
				if tc.authors > tc.gap*3 {
					if v := gapViolation(got[:len(got)/2], tc.gap); v != "" {
						t.Fatalf("seed %d: with %d authors, the first half breaks the gap: %s", seed, tc.authors, v)
					}
				}
			}
		})
	}
}

func TestRuleOrderMatters(t *testing.T) {
	// b1 is the only item separating a1 from a2, and it is too risky.
	in := []rank.Candidate{
		c("a1", "A", 9, 0),
		c("b1", "B", 8, 0.95),
		c("a2", "A", 7, 0),
		c("c1", "C", 6, 0),
	}
	filter := IntegrityFilter{MaxRisk: 0.9}
	diversity := AuthorDiversity{MinGap: 1}
	tests := map[string]struct {
		chain        Chain
		want         []string
		neighbouring bool
	}{
		"filter then diversity keeps authors apart": {
			chain: NewChain(filter, diversity),
			want:  []string{"a1", "c1", "a2"},
		},
		"diversity then filter leaves same-author neighbours": {
			chain:        NewChain(diversity, filter),
			want:         []string{"a1", "a2", "c1"},
			neighbouring: true,
		},
	}
	compiled, err := Compile([]config.Rule{
		{Type: config.RuleAuthorDiversity, MinGap: 1},
		{Type: config.RuleIntegrityFilter, MaxRisk: 0.9},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests["a compiled chain listed diversity first still keeps authors apart"] = struct {
		chain        Chain
		want         []string
		neighbouring bool
	}{chain: compiled, want: []string{"a1", "c1", "a2"}}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.chain.Apply(slices.Clone(in), 10)
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("chain gave %v, want %v", ids(got), tc.want)
			}
			if v := gapViolation(got, 1); (v != "") != tc.neighbouring {
				t.Errorf("same-author neighbours: %q, want present=%v", v, tc.neighbouring)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	tests := map[string]struct {
		rules   []config.Rule
		want    []Rule
		wantErr string
	}{
		"rules run by kind: filters, downranks, then diversity": {
			rules: []config.Rule{
				{Type: config.RuleAuthorDiversity, MinGap: 3},
				{Type: config.RuleIntegrityDownrank, Above: 0.5, Factor: 0.3},
				{Type: config.RuleIntegrityFilter, MaxRisk: 0.9},
			},
			want: []Rule{
				IntegrityFilter{MaxRisk: 0.9},
				IntegrityDownrank{Above: 0.5, Factor: 0.3},
				AuthorDiversity{MinGap: 3},
			},
		},
		"rules of one kind keep their configured order": {
			rules: []config.Rule{
				{Type: config.RuleIntegrityFilter, MaxRisk: 0.9},
				{Type: config.RuleAuthorDiversity, MinGap: 2},
				{Type: config.RuleIntegrityFilter, MaxRisk: 0.5},
			},
			want: []Rule{
				IntegrityFilter{MaxRisk: 0.9},
				IntegrityFilter{MaxRisk: 0.5},
				AuthorDiversity{MinGap: 2},
			},
		},
		"no rules": {rules: nil, want: []Rule{}},
		"unknown type refused": {
			rules:   []config.Rule{{Type: config.RuleAuthorDiversity, MinGap: 1}, {Type: "Freshness"}},
			wantErr: `rules[1].type: "Freshness" is not a known rule type`,
		},
		"type is case-sensitive": {
			rules:   []config.Rule{{Type: "authorDiversity", MinGap: 1}},
			wantErr: `rules[0].type: "authorDiversity"`,
		},
		"zero minGap refused": {
			rules:   []config.Rule{{Type: config.RuleAuthorDiversity}},
			wantErr: "rules[0].minGap",
		},
		"maxRisk above one refused": {
			rules:   []config.Rule{{Type: config.RuleIntegrityFilter, MaxRisk: 1.5}},
			wantErr: "rules[0].maxRisk",
		},
		"negative factor refused": {
			rules:   []config.Rule{{Type: config.RuleIntegrityDownrank, Above: 0.5, Factor: -0.1}},
			wantErr: "rules[0].factor",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			chain, err := Compile(tc.rules)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Compile error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if !slices.Equal(chain.Rules(), tc.want) {
				t.Errorf("rules %#v, want %#v", chain.Rules(), tc.want)
			}
		})
	}
}

func TestChainApplyCutsToSize(t *testing.T) {
	in := []rank.Candidate{c("a1", "A", 9, 0), c("b1", "B", 8, 0), c("a2", "A", 7, 0), c("c1", "C", 6, 0)}
	chain := NewChain(AuthorDiversity{MinGap: 1})
	tests := map[string]struct {
		size int
		want []string
	}{
		"size below the list":  {size: 2, want: []string{"a1", "b1"}},
		"size above the list":  {size: 25, want: []string{"a1", "b1", "a2", "c1"}},
		"size zero keeps none": {size: 0, want: []string{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := chain.Apply(slices.Clone(in), tc.size)
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("got %v, want %v", ids(got), tc.want)
			}
		})
	}
}

// designChain is the rule set of the design's sample pipeline with diversity
// moved last, so the final list keeps its gap.
func designChain(t testing.TB) Chain {
	chain, err := Compile([]config.Rule{
		{Type: config.RuleIntegrityFilter, MaxRisk: 0.9},
		{Type: config.RuleIntegrityDownrank, Above: 0.5, Factor: 0.3},
		{Type: config.RuleAuthorDiversity, MinGap: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

func TestChainConcurrentUse(t *testing.T) {
	chain := designChain(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 2))
			for range 50 {
				in := randRanked(r, 100, 12)
				got := chain.Apply(in, 25)
				if v := gapViolation(got, 3); v != "" {
					t.Errorf("goroutine %d: %s", g, v)
					return
				}
				for _, x := range got {
					if x.Risk > 0.9 {
						t.Errorf("goroutine %d: kept %s with risk %v", g, x.ID, x.Risk)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

func TestChainAllocatesNothing(t *testing.T) {
	chain := designChain(t)
	in := randRanked(rand.New(rand.NewPCG(9, 9)), 100, 12)
	list := make([]rank.Candidate, len(in))
	allocs := testing.AllocsPerRun(20, func() {
		copy(list, in)
		chain.Apply(list, 25)
	})
	if allocs != 0 && !race.Enabled {
		t.Errorf("Chain.Apply allocates %v times per run, want 0", allocs)
	}
}

// BenchmarkChain100to25 reranks the second stage's 100 candidates to the 25
// a client sees, restoring the input each iteration.
func BenchmarkChain100to25(b *testing.B) {
	chain := designChain(b)
	in := randRanked(rand.New(rand.NewPCG(9, 9)), 100, 12)
	list := make([]rank.Candidate, len(in))
	b.ReportAllocs()
	for b.Loop() {
		copy(list, in)
		chain.Apply(list, 25)
	}
}
