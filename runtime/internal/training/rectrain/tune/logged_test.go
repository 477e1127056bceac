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

package tune

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// TestLoggedScoresLikeRectrain checks that the table's probabilities, from
// the saved artifact and the features assembled here, rank the test
// impressions as rectrain's own evaluation does (same per-head AUC), and
// that it has one session per user and day.
func TestLoggedScoresLikeRectrain(t *testing.T) {
	data, models := t.TempDir(), t.TempDir()
	if err := synth.Generate(synth.Config{Users: 100, Items: 400, Events: 8000, Seed: 5}).WriteDirWith(data, synth.WriteOptions{SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	d, err := rectrain.LoadDir(data, rectrain.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := rectrain.Train(d, rectrain.Options{Epochs: 1, Seed: 1, Dim: 8, TowerHidden: 16, FirstStageDim: 4,
		FirstStageHidden: 8, Hidden: []int{16, 8}, Batch: 64, EvalUsers: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Save(models, "1"); err != nil {
		t.Fatal(err)
	}
	art, err := model.LoadDir(filepath.Join(models, "mtml"))
	if err != nil {
		t.Fatal(err)
	}
	tt, err := model.LoadDir(filepath.Join(models, "two-tower"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Logged(d, art, nil); err == nil || !strings.Contains(err.Error(), "two_tower_score") {
		t.Errorf("Logged without the retrieval model its ranker reads: %v, want an error naming two_tower_score", err)
	}
	tab, err := Logged(d, art, tt)
	if err != nil {
		t.Fatal(err)
	}
	if tab.Rows() != len(d.Imps)-d.TrainN {
		t.Fatalf("%d rows, want the %d test impressions", tab.Rows(), len(d.Imps)-d.TrainN)
	}
	nh := len(tab.Heads)
	for h, name := range tab.Heads {
		scores, labels := make([]float64, tab.Rows()), make([]bool, tab.Rows())
		pos := 0
		for r := range scores {
			scores[r] = tab.Probs[r*nh+h]
			labels[r] = tab.Labels[r]>>h&1 == 1
			if labels[r] {
				pos++
			}
		}
		if pos != res.Eval.Positives[h] {
			t.Errorf("%s: %d positives, rectrain counts %d", name, pos, res.Eval.Positives[h])
		}
		if got := rectrain.AUC(scores, labels); math.Abs(got-res.Eval.AUC[h]) > 1e-3 {
			t.Errorf("%s: AUC %v from the table, rectrain's %v", name, got, res.Eval.AUC[h])
		}
	}
	if tab.Sessions() < 2 {
		t.Fatalf("%d sessions", tab.Sessions())
	}
	// One session per user and day of the test split.
	rows := map[[2]int64]int{}
	for k := d.TrainN; k < len(d.Imps); k++ {
		rows[[2]int64{d.Imps[k].T / sessionSeconds, int64(d.Imps[k].User)}]++
	}
	if len(rows) != tab.Sessions() {
		t.Errorf("%d sessions, want %d user-days", tab.Sessions(), len(rows))
	}
}
