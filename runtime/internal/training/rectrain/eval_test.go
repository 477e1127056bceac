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

package rectrain

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9 }

func TestRankedListMetrics(t *testing.T) {
	tests := map[string]struct {
		list     []int32
		relevant []int32
		k        int
		recall   float64
		ndcg     float64
	}{
		// Hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5); the ideal
		// list has them at ranks 1 and 2: 1 + 1/log2(3).
		"hits at 2 and 4":      {list: []int32{1, 2, 3, 4}, relevant: []int32{2, 4}, k: 4, recall: 1, ndcg: 1.0616063116448506 / 1.6309297535714575},
		"cut-off before a hit": {list: []int32{1, 2, 3, 4}, relevant: []int32{2, 4}, k: 2, recall: 0.5, ndcg: 0.38685280723454163},
		"perfect":              {list: []int32{7, 8, 9}, relevant: []int32{7, 8}, k: 3, recall: 1, ndcg: 1},
		"more relevant than k": {list: []int32{5, 1}, relevant: []int32{1, 2, 3}, k: 2, recall: 1.0 / 3, ndcg: 0.6309297535714575 / 1.6309297535714575},
		"no hit":               {list: []int32{1, 2}, relevant: []int32{3}, k: 2, recall: 0, ndcg: 0},
		"nothing relevant":     {list: []int32{1, 2}, relevant: nil, k: 2, recall: 0, ndcg: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rel := map[int32]bool{}
			for _, i := range tc.relevant {
				rel[i] = true
			}
			if got := RecallAt(tc.list, rel, tc.k); !near(got, tc.recall) {
				t.Errorf("recall@%d = %v, want %v", tc.k, got, tc.recall)
			}
			if got := NDCGAt(tc.list, rel, tc.k); !near(got, tc.ndcg) {
				t.Errorf("NDCG@%d = %v, want %v", tc.k, got, tc.ndcg)
			}
		})
	}
}

func TestKendall(t *testing.T) {
	tests := map[string]struct {
		a, b []float64
		want float64
	}{
		"identical order": {a: []float64{1, 2, 3, 4}, b: []float64{10, 20, 30, 40}, want: 1},
		"reversed":        {a: []float64{1, 2, 3, 4}, b: []float64{4, 3, 2, 1}, want: -1},
		// One discordant pair (2, 3) of six.
		"one swap": {a: []float64{1, 2, 3, 4}, b: []float64{1, 3, 2, 4}, want: 4.0 / 6},
		// Pairs: 4 concordant, one tied in a only, one tied in b only:
		// tau-b = 4 / √((6−1)(6−1)).
		"ties":     {a: []float64{1, 2, 2, 3}, b: []float64{1, 2, 3, 3}, want: 0.8},
		"constant": {a: []float64{1, 1, 1}, b: []float64{1, 2, 3}, want: 0},
		"one item": {a: []float64{1}, b: []float64{2}, want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := Kendall(tc.a, tc.b); !near(got, tc.want) {
				t.Errorf("Kendall(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestECE(t *testing.T) {
	tests := map[string]struct {
		p      []float64
		labels []bool
		want   float64
	}{
		// Bin 0: mean 0.05, rate 0; bin 1: mean 0.15, rate 0.5; bin 9:
		// mean 0.95, rate 1. ECE = (1·0.05 + 2·0.35 + 1·0.05)/4.
		"three bins":               {p: []float64{0.05, 0.15, 0.15, 0.95}, labels: []bool{false, true, false, true}, want: 0.2},
		"calibrated":               {p: []float64{0.5, 0.5, 0.5, 0.5}, labels: []bool{true, false, true, false}, want: 0},
		"one goes in the last bin": {p: []float64{1, 1}, labels: []bool{false, false}, want: 1},
		"empty":                    {want: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := ECE(tc.p, tc.labels, 10); !near(got, tc.want) {
				t.Errorf("ECE = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestOracleBoundsTheModel checks the planted truth's figures on the tiny
// world: the true probabilities rank test impressions at least as well as
// the trained ranker, and the oracle's retrieval list is the catalog
// ordered by the true click probability.
func TestOracleBoundsTheModel(t *testing.T) {
	d, res := tinyWorld(t)
	e := res.Eval
	if !e.HasOracle || d.Truth == nil {
		t.Fatalf("the tiny world's truth files gave no oracle")
	}
	const eps = 0.01
	if e.AUCOracle[0] < e.AUC[0]-eps {
		t.Errorf("oracle click AUC %.4f is below the model's %.4f", e.AUCOracle[0], e.AUC[0])
	}
	for h, name := range Heads {
		if e.Positives[h] >= 50 && e.AUCOracle[h] < e.AUC[h]-0.03 {
			t.Errorf("oracle %s AUC %.4f is below the model's %.4f", name, e.AUCOracle[h], e.AUC[h])
		}
	}
	if e.RetrievalOracle.Recall100 <= e.RetrievalPopular.Recall100 {
		t.Errorf("oracle recall@%d %.4f does not beat the popularity baseline %.4f", RecallK, e.RetrievalOracle.Recall100, e.RetrievalPopular.Recall100)
	}
	if e.ECEOracle[0] > e.ECE[0]+0.02 {
		t.Errorf("true click probabilities have ECE %.4f, the model %.4f", e.ECEOracle[0], e.ECE[0])
	}

	users := []int32{0, 1, 2}
	top := oracleRetrieve(d, d.Truth, users, 5, nil)
	for j, u := range users {
		tu := int(d.TruthUser[u])
		best, bestP := int32(-1), -1.0
		for i, ti := range d.TruthItem {
			if p := d.Truth.TrueProbabilities(tu, int(ti)).Click; p > bestP {
				best, bestP = int32(i), p
			}
		}
		if top[j][0] != best {
			t.Errorf("user %s: oracle's first item %s, the most likely click is %s", d.UserIDs[u], d.ItemIDs[top[j][0]], d.ItemIDs[best])
		}
	}
}

// TestRetrievalLeavesOutSeenItems checks the seen filter of the evaluation:
// the items shown to a user before the split are found, and no list holds
// one, even the best-scored.
func TestRetrievalLeavesOutSeenItems(t *testing.T) {
	d := &Data{TrainN: 4, Imps: []Impression{
		{User: 1, Item: 3}, {User: 0, Item: 2}, {User: 1, Item: 0}, {User: 1, Item: 3},
		{User: 0, Item: 1}, // after the split
	}}
	seen := shownBefore(d)
	tests := map[string]struct {
		user int32
		want []int32
	}{
		"one item":                   {0, []int32{2}},
		"two items, one shown twice": {1, []int32{0, 3}},
		"nothing shown":              {2, []int32{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := seen.of(tc.user); !slices.Equal(got, tc.want) {
				t.Errorf("seen.of(%d) = %v, want %v", tc.user, got, tc.want)
			}
		})
	}
	if seen.has(0, 1) {
		t.Errorf("an item shown after the split counts as seen")
	}
	// Item scores 4, 3, 2, 1, 0 for every user: the top 2 leave out what
	// each user saw.
	ue := mat32{Rows: 3, Cols: 1, Data: []float32{1, 1, 1}}
	ie := mat32{Rows: 5, Cols: 1, Data: []float32{4, 3, 2, 1, 0}}
	users := []int32{0, 1, 2}
	got := retrieve(ue, ie, 2, func(j int) []int32 { return seen.of(users[j]) })
	want := [][]int32{{0, 1}, {1, 2}, {0, 1}}
	for j := range want {
		if !slices.Equal(got[j], want[j]) {
			t.Errorf("user %d: top 2 %v, want %v", users[j], got[j], want[j])
		}
	}
}

func TestOneStandardErrorLeansOnRetrievalWithoutEvidence(t *testing.T) {
	users := 400
	figs := func(means ...float64) [][]float64 {
		out := make([][]float64, len(means))
		for g, m := range means {
			out[g] = make([]float64, users)
			for j := range out[g] {
				// Users differ far more than the weights do; the paired
				// differences are what is compared.
				out[g][j] = m + float64(j%10)/10
				if j%2 == 0 {
					out[g][j] += 0.002 * float64(g%2)
				}
			}
		}
		return out
	}
	// A lead of 0.05 over the larger weights, with paired noise of 0.001:
	// the best stands.
	if got := oneStandardError(figs(0.1, 0.2, 0.15, 0.15)); got != 1 {
		t.Errorf("chose %d, want 1: its lead is far beyond the noise", got)
	}
	// A lead smaller than its standard error: the largest weight within
	// it.
	if got := oneStandardError(figs(0.1, 0.2, 0.2, 0.2)); got != 3 {
		t.Errorf("chose %d, want 3: the lead of 1 is within one standard error", got)
	}
}

// TestRetrieveAcrossItemTiles checks the tiled retrieval against a plain
// sort of every item's score, on a catalog of several tiles and a number
// of users that is not a multiple of the chunk, with left-out items in
// every tile and scores tied across tiles.
func TestRetrieveAcrossItemTiles(t *testing.T) {
	const dim, nu, ni, k = 4, retrieveUsers + 7, 2*retrieveItems + 513, 50
	r := rand.New(rand.NewPCG(3, 4))
	ue := mat32{Rows: nu, Cols: dim, Data: make([]float32, nu*dim)}
	ie := mat32{Rows: ni, Cols: dim, Data: make([]float32, ni*dim)}
	for i := range ue.Data {
		ue.Data[i] = float32(r.IntN(5) - 2)
	}
	for i := range ie.Data {
		ie.Data[i] = float32(r.IntN(5) - 2) // small integers: many ties
	}
	left := make([][]int32, nu)
	for j := range left {
		for range 30 {
			left[j] = append(left[j], int32(r.IntN(ni)))
		}
	}
	got := retrieve(ue, ie, k, func(j int) []int32 { return left[j] })
	for j := range nu {
		out := map[int32]bool{}
		for _, i := range left[j] {
			out[i] = true
		}
		score := func(i int) float64 {
			if out[int32(i)] {
				return math.Inf(-1)
			}
			var s float64
			for c := range dim {
				s += float64(ue.Data[j*dim+c]) * float64(ie.Data[i*dim+c])
			}
			return s
		}
		order := make([]int32, ni)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(score(int(b)), score(int(a))) })
		if want := order[:k]; !slices.Equal(got[j], want) {
			t.Fatalf("user %d: top %d %v, want %v", j, k, got[j], want)
		}
	}
}
