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
	"sync"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/rectrain/nn"
	"github.com/recpipeline/recpipeline/runtime/synth"
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
	if e.Recall < 1.3*e.RecallPopular {
		t.Errorf("two-tower recall@%d %.4f is not clearly above the popularity baseline %.4f", RecallK, e.Recall, e.RecallPopular)
	}
	if e.AUC[0] < 0.65 {
		t.Errorf("MTML click AUC %.4f < 0.65", e.AUC[0])
	}
	for h, name := range Heads {
		if e.Positives[h] >= 20 && e.AUC[h] <= e.AUCPopular[h] {
			t.Errorf("MTML %s AUC %.4f does not beat the item-rate baseline %.4f", name, e.AUC[h], e.AUCPopular[h])
		}
	}
	if e.Spearman < 0.3 {
		t.Errorf("first stage vs teacher Spearman %.4f < 0.3", e.Spearman)
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

func TestArtifactRoundTrip(t *testing.T) {
	d, res := tinyWorld(t)
	out := t.TempDir()
	if err := res.Save(out, "test"); err != nil {
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
			a, err := model.Load(context.Background(), filepath.Join(out, name))
			if err != nil {
				t.Fatal(err)
			}
			if a.TwoTower == nil || a.Manifest.Normalize {
				t.Fatalf("loaded %s is not an unnormalised TwoTower: %+v", name, a.Manifest)
			}
			// Inputs are laid out by the loaded manifest's feature spec.
			if off, w, ok := a.Manifest.Networks[model.NetUser].Input.Block(FeatEngagementPool); !ok || off != d.UserDim || w != d.ItemDim {
				t.Fatalf("user tower input has %s at %d width %d, want %d width %d", FeatEngagementPool, off, w, d.UserDim, d.ItemDim)
			}
			uw, iw := tt.UserSpec.Width(), tt.ItemSpec.Width()
			ub, ux := matrix(nil, rows, uw)
			ib, ix := matrix(nil, rows, iw)
			for j, im := range imps {
				d.userRow(ub[j*uw:(j+1)*uw], im.User, d.Pool(d.TrainN+j))
				d.itemRow(ib[j*iw:(j+1)*iw], im.Item)
			}
			var tu, ti nn.Tape
			wantU, wantI := tt.User.Forward(ux, &tu), tt.Item.Forward(ix, &ti)
			ws := model.NewWorkspace(nil, rows)
			gotU := copy32(a.TwoTower.UserEmbeddings(to32(ux), ws))
			gotI := a.TwoTower.ItemEmbeddings(to32(ix), ws)
			for k, v := range gotU.Data {
				if !within(v, wantU.Data[k]) {
					t.Fatalf("user embedding value %d: loaded %v, trainer %v", k, v, wantU.Data[k])
				}
			}
			for k, v := range gotI.Data {
				if !within(v, wantI.Data[k]) {
					t.Fatalf("item embedding value %d: loaded %v, trainer %v", k, v, wantI.Data[k])
				}
			}
		})
	}

	t.Run("mtml", func(t *testing.T) {
		a, err := model.Load(context.Background(), filepath.Join(out, "mtml"))
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
		for j, im := range imps {
			d.rankRow(xb[j*rw:(j+1)*rw], im.User, d.Pool(d.TrainN+j), im.Item, im.T, im.Followed)
		}
		want := make([]float64, rows*len(Heads))
		var tb, th nn.Tape
		res.teacher(x, &tb, &th, make([]float64, rows), want)
		got := make([]float32, rows*len(Heads))
		a.MTML.Predict(to32(x), got, model.NewWorkspace(nil, rows))
		for k, v := range got {
			if !within(v, want[k]) {
				t.Fatalf("probability %d: loaded %v, trainer %v", k, v, want[k])
			}
		}
	})
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
