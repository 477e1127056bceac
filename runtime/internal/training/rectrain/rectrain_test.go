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
	"context"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/features"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// tinyOptions train small networks quickly enough for the race detector.
func tinyOptions(seed uint64) Options {
	return Options{Epochs: 4, Seed: seed, Dim: 16, TowerHidden: 32, FirstStageDim: 8, FirstStageHidden: 32,
		Hidden: []int{32, 16}, Batch: 128, LR: 3e-3, EvalUsers: 50}
}

var tiny struct {
	once sync.Once
	dir  string
	data *Data
	res  *Result
	err  error
}

// tinyWorld generates, loads and trains on a small synthetic world once.
func tinyWorld(t *testing.T) (*Data, *Result) {
	t.Helper()
	tiny.once.Do(func() {
		dir, err := os.MkdirTemp("", "rectrain-tiny-")
		if err != nil {
			tiny.err = err
			return
		}
		tiny.dir = dir
		w := synth.Generate(synth.Config{Users: 300, Items: 1000, Events: 40000, Seed: 3})
		if tiny.err = w.WriteDir(dir); tiny.err != nil {
			return
		}
		if tiny.data, tiny.err = LoadDir(dir, LoadOptions{}); tiny.err != nil {
			return
		}
		tiny.res, tiny.err = Train(tiny.data, tinyOptions(1))
	})
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	return tiny.data, tiny.res
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tiny.dir != "" {
		os.RemoveAll(tiny.dir)
	}
	os.Exit(code)
}

func TestTrainingBeatsBaselines(t *testing.T) {
	_, res := tinyWorld(t)
	e := res.Eval
	var b stringsBuilder
	e.Table(&b)
	t.Logf("\n%s", b.String())
	// The targets for retrieval: twice the popularity baseline and
	// 0.7 of the planted truth's recall.
	if e.Recall < 2*e.RecallPopular {
		t.Errorf("two-tower recall@%d %.4f is not twice the popularity baseline %.4f", RecallK, e.Recall, e.RecallPopular)
	}
	if e.Recall < 0.7*e.RetrievalOracle.Recall100 {
		t.Errorf("two-tower recall@%d %.4f is below 0.7 of the oracle's %.4f", RecallK, e.Recall, e.RetrievalOracle.Recall100)
	}
	if e.AUC[0] < 0.65 {
		t.Errorf("MTML click AUC %.4f < 0.65", e.AUC[0])
	}
	for h, name := range Heads {
		if e.Positives[h] >= 20 && e.AUC[h] <= e.AUCPopular[h] {
			t.Errorf("MTML %s AUC %.4f does not beat the item-rate baseline %.4f", name, e.AUC[h], e.AUCPopular[h])
		}
	}
	if e.Spearman < 0.6 {
		t.Errorf("first stage vs teacher Spearman %.4f < 0.6", e.Spearman)
	}
}

type stringsBuilder struct{ b []byte }

func (s *stringsBuilder) Write(p []byte) (int, error) { s.b = append(s.b, p...); return len(p), nil }
func (s *stringsBuilder) String() string              { return string(s.b) }

// within reports whether a float32 output matches the trainer's float64
// one to 1e-5, relative to its magnitude when that exceeds 1.
func within(got float32, want float64) bool {
	return math.Abs(float64(got)-want) <= 1e-5*math.Max(1, math.Abs(want))
}

// TestArtifactRoundTrip saves the trained models and loads them as
// recserve does: the towers' inputs are assembled by runtime/internal/serving/features from
// the runtime catalog and the artifact's item_id table, and must give the
// embeddings of rectrain's own forward pass.
func TestArtifactRoundTrip(t *testing.T) {
	d, res := tinyWorld(t)
	out := t.TempDir()
	if err := res.Save(out, "test"); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Load(context.Background(), tiny.dir, catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// An item published after training: the artifact's table does not
	// list it, and both sides give it a zero item_id vector.
	newItem := dataset.Item{ID: "new-item", Author: "a0", Created: time.Unix(d.Split, 0), Features: d.Item(0), IntegrityRisk: 0.3}
	if _, err := cat.Add(newItem); err != nil {
		t.Fatal(err)
	}
	const rows = 64
	imps := d.Imps[d.TrainN : d.TrainN+rows]
	for _, name := range []string{"two-tower", "first-stage"} {
		t.Run(name, func(t *testing.T) {
			tt := res.TwoTower
			if name == "first-stage" {
				tt = res.FirstStage
			}
			checkTowerRoundTrip(t, d, tt, filepath.Join(out, name), cat, imps, newItem)
		})
	}
	t.Run("mtml", func(t *testing.T) { checkMTMLRoundTrip(t, d, res, filepath.Join(out, "mtml"), len(imps)) })
}

// checkTowerRoundTrip checks that the towers of the artifact in dir, fed
// by runtime/internal/serving/features from cat, give tt's inputs and embeddings for the
// test impressions imps and for newItem, an item published after
// training.
func checkTowerRoundTrip(t *testing.T, d *Data, tt *TwoTower, dir string, cat *catalog.Catalog, imps []Impression, newItem dataset.Item) {
	a, err := model.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.TwoTower == nil || a.Manifest.Normalize {
		t.Fatalf("loaded %s is not an unnormalised TwoTower: %+v", filepath.Base(dir), a.Manifest)
	}
	if (tt.ItemIDs != nil) != (a.Embeddings[features.ItemID] != nil) {
		t.Fatalf("trainer's item_id table %v, artifact's %v", tt.ItemIDs != nil, a.Embeddings)
	}
	in := towerInputsOf(t, d, tt, a, cat, imps, newItem)
	rows, uw, iw := len(imps)+1, tt.UserSpec.Width(), tt.ItemSpec.Width()
	for k, v := range in.gotI.Data {
		if !within(v, in.ib[k]) {
			t.Fatalf("item tower input %d (row %d): recserve %v, rectrain %v", k, k/iw, v, in.ib[k])
		}
	}
	for k, v := range in.gotU {
		if !within(v, in.ub[k]) {
			t.Fatalf("user tower input %d (row %d): recserve %v, rectrain %v", k, k/uw, v, in.ub[k])
		}
	}
	var tu, ti nn.Tape
	wantU, wantI := tt.User.Forward(in.ux, &tu), tt.Item.Forward(in.ix, &ti)
	ws := model.NewWorkspace(nil, rows)
	embU := copy32(a.TwoTower.UserEmbeddings(blas32.General{Rows: rows, Cols: uw, Stride: uw, Data: in.gotU}, ws))
	embI := a.TwoTower.ItemEmbeddings(in.gotI, ws)
	for k, v := range embU.Data {
		if !within(v, wantU.Data[k]) {
			t.Fatalf("user embedding value %d: recserve %v, rectrain %v", k, v, wantU.Data[k])
		}
	}
	for k, v := range embI.Data {
		if !within(v, wantI.Data[k]) {
			t.Fatalf("item embedding value %d: recserve %v, rectrain %v", k, v, wantI.Data[k])
		}
	}
}

// towerInputs are the towers' inputs for the rows of a round trip: the
// trainer's (ub, ib and the matrices ux, ix over them) and recserve's
// (gotU, gotI).
type towerInputs struct {
	ub, ib []float64
	ux, ix blas64.General
	gotU   []float32
	gotI   blas32.General
}

// towerInputsOf assembles the towers' inputs of imps, and of newItem in a
// last row, the trainer's way and recserve's: the user's pooled
// engagements (newest first, before now) and the catalog.
func towerInputsOf(t *testing.T, d *Data, tt *TwoTower, a *model.Artifact, cat *catalog.Catalog, imps []Impression, newItem dataset.Item) towerInputs {
	t.Helper()
	ua, err := features.CompileUser(a.Manifest.Networks[model.NetUser].Input, cat, a.Embeddings)
	if err != nil {
		t.Fatal(err)
	}
	ia, err := features.CompileItem(a.Manifest.Networks[model.NetItem].Input, cat, a.Embeddings)
	if err != nil {
		t.Fatal(err)
	}
	rows := len(imps)
	uw, iw := tt.UserSpec.Width(), tt.ItemSpec.Width()
	var in towerInputs
	in.ub, in.ux = matrix(nil, rows+1, uw)
	in.ib, in.ix = matrix(nil, rows+1, iw)
	in.gotU = make([]float32, (rows+1)*uw)
	in.gotI = blas32.General{Rows: rows + 1, Cols: iw, Stride: iw, Data: make([]float32, (rows+1)*iw)}
	ords := make([]uint32, rows+1)
	for j, im := range imps {
		k := d.TrainN + j
		pooled := d.PoolItems(im.User, im.PoolN)
		tt.userRow(d, in.ub[j*uw:(j+1)*uw], im.User, d.Pool(k), pooled)
		tt.itemRow(d, in.ib[j*iw:(j+1)*iw], im.Item)
		now := time.Unix(im.T, 0)
		engs := make([]store.Engagement, len(pooled))
		for p, i := range pooled {
			engs[len(pooled)-1-p] = store.Engagement{Item: d.ItemIDs[i], Type: store.Click, Time: now.Add(-time.Duration(len(pooled)-p) * time.Second)}
		}
		ua.FillUser(features.NewUserContext(d.UserIDs[im.User], now, cat, engs, nil), in.gotU[j*uw:(j+1)*uw])
		var ok bool
		if ords[j], ok = cat.Ordinal(d.ItemIDs[im.Item]); !ok {
			t.Fatalf("item %s is not in the runtime catalog", d.ItemIDs[im.Item])
		}
	}
	// The new item: the trainer's row is its features (and risk) with a
	// zero item_id vector.
	copy(in.ub[rows*uw:], in.ub[:uw])
	copy(in.gotU[rows*uw:], in.gotU[:uw])
	tt.itemRow(d, in.ib[rows*iw:(rows+1)*iw], 0)
	if off, w, ok := tt.ItemSpec.Block(FeatItemID); ok {
		clear(in.ib[rows*iw+off : rows*iw+off+w])
	}
	if off, _, ok := tt.ItemSpec.Block(FeatItemRisk); ok {
		in.ib[rows*iw+off] = float64(float32(newItem.IntegrityRisk))
	}
	ords[rows], _ = cat.Ordinal(newItem.ID)
	ia.Fill(features.NewUserContext("", time.Unix(d.Split, 0), cat, nil, nil), ords, in.gotI)
	return in
}

// checkMTMLRoundTrip checks that the MTML artifact in dir predicts the
// trainer's probabilities for the first rows test impressions.
func checkMTMLRoundTrip(t *testing.T, d *Data, res *Result, dir string, rows int) {
	a, err := model.Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.MTML == nil {
		t.Fatalf("loaded mtml is kind %s", a.Manifest.Kind)
	}
	if got := a.MTML.Heads(); len(got) != len(Heads) || got[4] != "see_less" {
		t.Fatalf("heads %v, want %v", got, Heads)
	}
	rw := res.MTML.Spec.Width()
	xb, x := matrix(nil, rows, rw)
	for j, im := range d.Imps[d.TrainN : d.TrainN+rows] {
		res.MTML.rankRow(d, xb[j*rw:(j+1)*rw], im.User, d.Pool(d.TrainN+j), d.PoolItems(im.User, im.PoolN), im.Item, im.T, im.Followed, res.scores.at(int32(d.TrainN+j), im.Item))
	}
	// The trainer's float64 network is the reference.
	var tb, th nn.Tape
	z := res.MTML.HeadLayer.Forward(res.MTML.Bottom.Forward(x, &tb), &th)
	want := make([]float64, rows*len(Heads))
	for k := range want {
		want[k] = nn.Sigmoid(z.Data[k])
	}
	got := make([]float32, rows*len(Heads))
	a.MTML.Predict(to32(x), got, model.NewWorkspace(nil, rows))
	for k, v := range got {
		if !within(v, want[k]) {
			t.Fatalf("probability %d: loaded %v, trainer %v", k, v, want[k])
		}
	}
	// The teacher's values run the same network in float32.
	probs, vals := make([]float64, rows*len(Heads)), make([]float64, rows)
	res.teacher(x, &teacherBuf{}, vals, probs)
	for k, p := range probs {
		if !within(float32(p), want[k]) {
			t.Fatalf("teacher's probability %d: %v, trainer %v", k, p, want[k])
		}
	}
	for r, v := range vals {
		w := res.retrievalW * x.Data[r*x.Stride+x.Cols-1]
		for h := range Heads {
			w += res.weights[h] * want[r*len(Heads)+h]
		}
		if !within(float32(v), w) {
			t.Fatalf("teacher's value %d: %v, want %v", r, v, w)
		}
	}
}

func to32(m blas64.General) blas32.General {
	return blas32.General{Rows: m.Rows, Cols: m.Cols, Stride: m.Cols, Data: nn.To32(m.Data[:m.Rows*m.Stride])}
}

func copy32(m blas32.General) blas32.General {
	m.Data = append([]float32(nil), m.Data[:m.Rows*m.Stride]...)
	return m
}

func TestDeterministic(t *testing.T) {
	d, res := tinyWorld(t)
	checksums := func(r *Result) map[string]string {
		dir := t.TempDir()
		if err := r.Save(dir, "test"); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, name := range []string{"two-tower", "first-stage", "mtml"} {
			a, err := model.LoadDir(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			out[name] = a.Manifest.Checksum
		}
		return out
	}
	first := checksums(res)
	again, err := Train(d, tinyOptions(1))
	if err != nil {
		t.Fatal(err)
	}
	for name, sum := range checksums(again) {
		if sum != first[name] {
			t.Errorf("%s: the same seed gave checksums %s and %s", name, first[name], sum)
		}
	}
	o := tinyOptions(2)
	o.Epochs = 1
	other, err := Train(d, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum := checksums(other)["mtml"]; sum == first["mtml"] {
		t.Errorf("another seed gave the same mtml checksum %s", sum)
	}
}

// TestPhasesAreReported checks that a run times each of its steps, in
// order, and reads the resident high-water mark on Linux.
func TestPhasesAreReported(t *testing.T) {
	_, res := tinyWorld(t)
	var names []string
	for _, p := range res.Phases {
		names = append(names, p.Name)
		if p.Took < 0 {
			t.Errorf("phase %s took %v", p.Name, p.Took)
		}
		if runtime.GOOS == "linux" && p.PeakRSS <= 0 {
			t.Errorf("phase %s: peak RSS %d on Linux, want it read", p.Name, p.PeakRSS)
		}
	}
	want := []string{"two-tower", "two-tower scores", "mtml", "retrieval weight", "first-stage pairs", "first-stage", "evaluation"}
	if !slices.Equal(names, want) {
		t.Errorf("phases %v, want %v", names, want)
	}
}

// TestFirstStageEpochsFitThePairBudget checks the first stage's default
// epochs: ten on a small log, fewer on a large one, never none.
func TestFirstStageEpochsFitThePairBudget(t *testing.T) {
	for _, tc := range []struct{ trainN, want int }{
		{1000, 10},
		{FirstStageMaxPairs / 20, 10},
		{1_197_715, 6}, // the 1M-item world's training impressions
		{FirstStageMaxPairs, 1},
		{0, 10},
	} {
		if got := firstStageEpochs(tc.trainN); got != tc.want {
			t.Errorf("firstStageEpochs(%d) = %d, want %d", tc.trainN, got, tc.want)
		}
	}
}
