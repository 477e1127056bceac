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

package model

import (
	"math"
	"testing"
)

func TestMLPForwardMatchesNaive(t *testing.T) {
	tests := map[string]struct {
		net    NetworkSpec
		batch  int
		stride int // 0: packed
	}{
		"one row, one relu layer": {
			net: net(5, LayerSpec{3, ReLU}), batch: 1,
		},
		"one by one identity": {
			net: net(1, LayerSpec{1, Identity}), batch: 3,
		},
		"batch and width across kernel tiles": {
			net:   net(70, LayerSpec{200, ReLU}, LayerSpec{65, GELU}, LayerSpec{3, Identity}),
			batch: 130,
		},
		"tanh, gelu_tanh and sigmoid layers": {
			net:   net(9, LayerSpec{11, Tanh}, LayerSpec{7, GELUTanh}, LayerSpec{4, Sigmoid}),
			batch: 17,
		},
		"strided input view": {
			net: net(7, LayerSpec{5, ReLU}, LayerSpec{2, Identity}), batch: 9, stride: 11,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := mlpManifest(tc.net)
			tensors := randTensors(m, 7)
			a, err := New(m, tensors)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			stride := tc.stride
			if stride == 0 {
				stride = tc.net.Input.Width()
			}
			in := randInput(3, tc.batch, tc.net.Input.Width(), stride)
			want := naiveNetwork(m, NetMLP, tensors, toF64(in))
			ws := &Workspace{}
			// Twice with the same workspace: the second pass must not see
			// leftovers of the first.
			for pass := 0; pass < 2; pass++ {
				got := a.MLP.Forward(in, ws)
				assertClose(t, "output", got, want)
			}
		})
	}
}

func TestMLPForwardEmptyBatch(t *testing.T) {
	m := mlpManifest(net(4, LayerSpec{3, ReLU}))
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	got := a.MLP.Forward(randInput(1, 0, 4, 4), &Workspace{})
	if got.Rows != 0 || got.Cols != 3 {
		t.Fatalf("empty batch gave %d×%d, want 0×3", got.Rows, got.Cols)
	}
}

func TestMLPForwardPanicsOnWidthMismatch(t *testing.T) {
	m := mlpManifest(net(4, LayerSpec{3, ReLU}))
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Forward accepted a 5-column input for a 4-input network")
		}
	}()
	a.MLP.Forward(randInput(1, 2, 5, 5), &Workspace{})
}

func TestMTMLPredictSigmoidHeads(t *testing.T) {
	m := mtmlManifest()
	tensors := randTensors(m, 11)
	a, err := New(m, tensors)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 70
	in := randInput(5, batch, a.MTML.In(), a.MTML.In())
	bottom := naiveNetwork(m, NetBottom, tensors, toF64(in))
	want := naiveDense(bottom, tensors[HeadsWeight], tensors[HeadsBias], Sigmoid)

	out := make([]float32, batch*len(m.Heads))
	a.MTML.Predict(in, out, &Workspace{})
	for r := range want {
		for j, w := range want[r] {
			g := out[r*len(m.Heads)+j]
			if g < 0 || g > 1 {
				t.Fatalf("P(%s) for candidate %d = %v, not a probability", m.Heads[j], r, g)
			}
			if math.Abs(float64(g)-w) > 1e-5 {
				t.Fatalf("P(%s) for candidate %d = %v, want %v", m.Heads[j], r, g, w)
			}
		}
	}
	if got := a.MTML.HeadIndex("comment"); got != 2 {
		t.Errorf("HeadIndex(comment) = %d, want 2", got)
	}
	if got := a.MTML.HeadIndex("share"); got != -1 {
		t.Errorf("HeadIndex(share) = %d, want -1", got)
	}
}

func TestSigmoidSaturatesWithoutNaN(t *testing.T) {
	tests := map[string]struct {
		in, want float32
	}{
		"zero":           {0, 0.5},
		"large positive": {1000, 1},
		"large negative": {-1000, 0},
		"moderate":       {2, float32(1 / (1 + math.Exp(-2)))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := []float32{tc.in}
			sigmoid(v)
			if math.Abs(float64(v[0]-tc.want)) > 1e-7 {
				t.Fatalf("sigmoid(%v) = %v, want %v", tc.in, v[0], tc.want)
			}
		})
	}
}

func TestTwoTower(t *testing.T) {
	for _, normalize := range []bool{false, true} {
		m := twoTowerManifest(normalize)
		tensors := randTensors(m, 13)
		a, err := New(m, tensors)
		if err != nil {
			t.Fatal(err)
		}
		tt := a.TwoTower
		if tt.Dim != 8 {
			t.Fatalf("Dim = %d, want 8", tt.Dim)
		}
		norm := func(rows [][]float64) [][]float64 {
			if !normalize {
				return rows
			}
			for _, r := range rows {
				var ss float64
				for _, v := range r {
					ss += v * v
				}
				for i := range r {
					r[i] /= math.Sqrt(ss)
				}
			}
			return rows
		}
		ws := &Workspace{}
		users := randInput(1, 2, tt.User.In(), tt.User.In())
		wantUsers := norm(naiveNetwork(m, NetUser, tensors, toF64(users)))
		gotUsers := tt.UserEmbeddings(users, ws)
		assertClose(t, "user embeddings", gotUsers, wantUsers)
		user := append([]float32(nil), gotUsers.Data[:tt.Dim]...)

		items := randInput(2, 90, tt.Item.In(), tt.Item.In())
		wantItems := norm(naiveNetwork(m, NetItem, tensors, toF64(items)))
		assertClose(t, "item embeddings", tt.ItemEmbeddings(items, ws), wantItems)

		scores := make([]float32, items.Rows)
		tt.Score(user, items, scores, ws)
		for i, e := range wantItems {
			var want float64
			for k := range e {
				want += e[k] * float64(user[k])
			}
			if math.Abs(float64(scores[i])-want) > 1e-4+1e-4*math.Abs(want) {
				t.Fatalf("normalize=%v: score of item %d = %v, want %v", normalize, i, scores[i], want)
			}
			if normalize && math.Abs(want) > 1+1e-5 {
				t.Fatalf("normalized score %v is not a cosine", want)
			}
		}
	}
}

// TestHotPathAllocatesNothing checks the property the ranking path relies on:
// with a warmed workspace, a forward pass allocates nothing.
func TestHotPathAllocatesNothing(t *testing.T) {
	mt := mtmlManifest()
	a, err := New(mt, randTensors(mt, 1))
	if err != nil {
		t.Fatal(err)
	}
	in := randInput(1, 300, a.MTML.In(), a.MTML.In())
	out := make([]float32, in.Rows*len(mt.Heads))
	ws := NewWorkspace(a.MTML.Bottom(), in.Rows)
	if n := testing.AllocsPerRun(5, func() { a.MTML.Predict(in, out, ws) }); n != 0 {
		t.Errorf("MTML.Predict allocates %v times per call, want 0", n)
	}

	m := twoTowerManifest(true)
	b, err := New(m, randTensors(m, 1))
	if err != nil {
		t.Fatal(err)
	}
	items := randInput(2, 300, b.TwoTower.Item.In(), b.TwoTower.Item.In())
	user := make([]float32, b.TwoTower.Dim)
	scores := make([]float32, items.Rows)
	ws = &Workspace{}
	b.TwoTower.Score(user, items, scores, ws) // warm the workspace
	if n := testing.AllocsPerRun(5, func() { b.TwoTower.Score(user, items, scores, ws) }); n != 0 {
		t.Errorf("TwoTower.Score allocates %v times per call, want 0", n)
	}
}

func TestFeatureSpecBlock(t *testing.T) {
	spec := mtmlManifest().Networks[NetBottom].Input
	tests := map[string]struct {
		name          string
		offset, width int
		ok            bool
	}{
		"first block":   {"user_embedding", 0, 16, true},
		"middle block":  {"item_features", 32, 8, true},
		"last block":    {"dot_user_item", 40, 1, true},
		"unknown block": {"author_features", 0, 0, false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			off, w, ok := spec.Block(tc.name)
			if off != tc.offset || w != tc.width || ok != tc.ok {
				t.Fatalf("Block(%q) = %d, %d, %v; want %d, %d, %v", tc.name, off, w, ok, tc.offset, tc.width, tc.ok)
			}
		})
	}
	if w := spec.Width(); w != 41 {
		t.Fatalf("Width() = %d, want 41", w)
	}
}
