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
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// idOnlyWorld loads a small synthetic world whose catalog and users carry
// no features, the shape of a public ratings log: its planted preferences
// can be learnt from the IDs alone.
func idOnlyWorld(t *testing.T) *Data {
	t.Helper()
	dir := t.TempDir()
	w := synth.Generate(synth.Config{Users: 400, Items: 1000, Events: 60000, Seed: 5, IDOnly: true})
	if err := w.WriteDirWith(dir, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	d, err := LoadDir(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if d.ItemDim != 0 || d.UserDim != 0 {
		t.Fatalf("feature widths %d and %d, want an ID-only world", d.ItemDim, d.UserDim)
	}
	return d
}

func tableOf(r Report) string {
	var b strings.Builder
	r.Table(&b)
	return b.String()
}

// From IDs alone every model learns: the losses fall, retrieval and the
// funnel beat popularity, the first stage follows its teacher and the
// quality gate lets the models through.
func TestIDOnlyLogIsLearnt(t *testing.T) {
	d := idOnlyWorld(t)
	res, err := Train(d, tinyOptions(2))
	if err != nil {
		t.Fatal(err)
	}
	e := res.Eval
	t.Logf("\n%s", tableOf(e))
	for _, stage := range stages {
		c := res.Curve[stage]
		if len(c) < 2 || c[len(c)-1] > 0.98*c[0] {
			t.Errorf("%s loss per epoch %v: does not fall by 2%%", stage, c)
		}
	}
	if e.Recall < 1.5*e.RecallPopular {
		t.Errorf("two-tower recall@%d %.4f is not 1.5× popularity's %.4f", RecallK, e.Recall, e.RecallPopular)
	}
	if e.Funnel.NDCG100 <= e.FunnelPopular.NDCG100 || e.Funnel.NDCG100 <= e.FunnelRandom.NDCG100 {
		t.Errorf("funnel NDCG@%d %.4f does not beat popularity's %.4f and random's %.4f", RecallK, e.Funnel.NDCG100, e.FunnelPopular.NDCG100, e.FunnelRandom.NDCG100)
	}
	if e.AUC[0] <= e.AUCPopular[0] {
		t.Errorf("MTML click AUC %.4f does not beat the item-rate baseline %.4f", e.AUC[0], e.AUCPopular[0])
	}
	if e.Spearman < 0.3 {
		t.Errorf("first stage vs teacher Spearman %.4f < 0.3", e.Spearman)
	}
	if why := e.Weak(); len(why) > 0 {
		t.Errorf("quality gate refuses learnt models: %v", why)
	}
}

// A log whose engagements say nothing of the users' taste (each
// impression's item swapped for a random other impression's, which keeps
// every item's popularity) cannot be learnt: the quality gate must say so.
func TestUnlearnableLogFailsTheGate(t *testing.T) {
	d := idOnlyWorld(t)
	r := rand.New(rand.NewPCG(9, 9))
	r.Shuffle(len(d.Imps), func(a, b int) { d.Imps[a].Item, d.Imps[b].Item = d.Imps[b].Item, d.Imps[a].Item })
	res, err := Train(d, tinyOptions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", tableOf(res.Eval))
	why := res.Eval.Weak()
	if len(why) == 0 {
		t.Fatalf("quality gate lets models of a shuffled log through")
	}
	for _, w := range why {
		if !strings.Contains(w, "does not beat popularity") {
			t.Errorf("reason %q does not name the baseline", w)
		}
	}
}

func TestWeakNamesEachFailure(t *testing.T) {
	good := Ranked{Recall100: 0.2, NDCG100: 0.1}
	poor := Ranked{Recall100: 0.05, NDCG100: 0.02}
	tests := map[string]struct {
		r    Report
		want []string
	}{
		"both beat popularity": {Report{TestUsers: 10, FunnelUsers: 10, Retrieval: good, RetrievalPopular: poor, Funnel: good, FunnelPopular: poor}, nil},
		"retrieval ties popularity": {Report{TestUsers: 10, FunnelUsers: 10, Retrieval: poor, RetrievalPopular: poor, Funnel: good, FunnelPopular: poor},
			[]string{"two-tower recall@100 0.0500 does not beat popularity's 0.0500"}},
		"funnel below popularity": {Report{TestUsers: 10, FunnelUsers: 10, Retrieval: good, RetrievalPopular: poor, Funnel: poor, FunnelPopular: good},
			[]string{"funnel NDCG@100 0.0200 does not beat popularity's 0.1000"}},
		"no test user": {Report{}, []string{"no test user"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := tc.r.Weak()
			if len(got) != len(tc.want) {
				t.Fatalf("Weak() = %q, want %d reasons %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("reason %d %q, want one containing %q", i, got[i], w)
				}
			}
		})
	}
}
