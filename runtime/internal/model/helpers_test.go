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
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// net builds a NetworkSpec with one input block of width in and the given
// layers.
func net(in int, layers ...LayerSpec) NetworkSpec {
	return NetworkSpec{Input: FeatureSpec{{Name: "x", Width: in}}, Layers: layers}
}

func mlpManifest(n NetworkSpec) *Manifest {
	return &Manifest{FormatVersion: FormatVersion, Name: "test-mlp", Version: "v1", Kind: KindMLP,
		Networks: map[string]NetworkSpec{NetMLP: n}}
}

// mtmlManifest is the second-stage layout used across tests.
func mtmlManifest() *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion, Name: "mtml", Version: "v12", Kind: KindMTML,
		Networks: map[string]NetworkSpec{NetBottom: {
			Input: FeatureSpec{
				{Name: "user_embedding", Width: 16},
				{Name: "item_embedding", Width: 16},
				{Name: "item_features", Width: 8},
				{Name: "dot_user_item", Width: 1},
			},
			Layers: []LayerSpec{{Out: 32, Activation: ReLU}, {Out: 16, Activation: ReLU}},
		}},
		Heads:    []string{"click", "like", "comment", "see_less"},
		Metadata: map[string]string{"trainedOn": "2024-06-01..2024-06-07"},
	}
}

func twoTowerManifest(normalize bool) *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion, Name: "two-tower", Version: "v7", Kind: KindTwoTower, Normalize: normalize,
		Networks: map[string]NetworkSpec{
			NetUser: {Input: FeatureSpec{{Name: "user_id_embedding", Width: 12}, {Name: "recent_items", Width: 12}},
				Layers: []LayerSpec{{Out: 20, Activation: GELU}, {Out: 8, Activation: Identity}}},
			NetItem: {Input: FeatureSpec{{Name: "item_id_embedding", Width: 10}, {Name: "item_features", Width: 6}},
				Layers: []LayerSpec{{Out: 24, Activation: ReLU}, {Out: 8, Activation: Identity}}},
		},
	}
}

// randTensors returns random tensors of the shapes m requires.
func randTensors(m *Manifest, seed uint64) map[string]Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	out := map[string]Tensor{}
	for name, shape := range m.ExpectedShapes() {
		t := Tensor{Shape: shape, Data: make([]float32, Tensor{Shape: shape}.NumElements())}
		for i := range t.Data {
			t.Data[i] = float32(r.NormFloat64() * 0.2)
		}
		out[name] = t
	}
	return out
}

// randInput returns a rows×cols matrix with the given stride (≥ cols).
func randInput(seed uint64, rows, cols, stride int) blas32.General {
	r := rand.New(rand.NewPCG(seed, 2))
	g := blas32.General{Rows: rows, Cols: cols, Stride: stride, Data: make([]float32, rows*stride)}
	for i := range g.Data {
		g.Data[i] = float32(r.NormFloat64())
	}
	return g
}

func toF64(g blas32.General) [][]float64 {
	out := make([][]float64, g.Rows)
	for r := range out {
		out[r] = make([]float64, g.Cols)
		for c := range out[r] {
			out[r][c] = float64(g.Data[r*g.Stride+c])
		}
	}
	return out
}

// naiveAct is the reference activation, in float64.
func naiveAct(a Activation, x float64) float64 {
	switch a {
	case ReLU:
		return math.Max(0, x)
	case GELU:
		return x * 0.5 * math.Erfc(-x/math.Sqrt2)
	case GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case Tanh:
		return math.Tanh(x)
	case Sigmoid:
		return 1 / (1 + math.Exp(-x))
	}
	return x
}

// naiveDense computes act(x·W + b) with a triple loop in float64.
func naiveDense(x [][]float64, w, b Tensor, act Activation) [][]float64 {
	in, out := w.Shape[0], w.Shape[1]
	y := make([][]float64, len(x))
	for r := range x {
		y[r] = make([]float64, out)
		for j := 0; j < out; j++ {
			s := float64(b.Data[j])
			for k := 0; k < in; k++ {
				s += x[r][k] * float64(w.Data[k*out+j])
			}
			y[r][j] = naiveAct(act, s)
		}
	}
	return y
}

func naiveNetwork(m *Manifest, netName string, tensors map[string]Tensor, x [][]float64) [][]float64 {
	for i, l := range m.Networks[netName].Layers {
		x = naiveDense(x, tensors[WeightName(netName, i)], tensors[BiasName(netName, i)], l.Activation)
	}
	return x
}

// assertClose fails unless got (rows×cols with stride) matches want.
func assertClose(t *testing.T, what string, got blas32.General, want [][]float64) {
	t.Helper()
	if got.Rows != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, got.Rows, len(want))
	}
	for r := range want {
		if got.Cols != len(want[r]) {
			t.Fatalf("%s: %d columns, want %d", what, got.Cols, len(want[r]))
		}
		for c, w := range want[r] {
			g := float64(got.Data[r*got.Stride+c])
			if math.Abs(g-w) > 1e-4+1e-4*math.Abs(w) {
				t.Fatalf("%s[%d][%d] = %v, want %v", what, r, c, g, w)
			}
		}
	}
}

// rawArtifact encodes an artifact without validation, with a correct
// checksum, so that tests can build artifacts Save would refuse.
func rawArtifact(t testing.TB, m *Manifest, tensors map[string]Tensor) (manifest, weights []byte) {
	t.Helper()
	var wb bytes.Buffer
	if err := WriteSafetensors(&wb, tensors); err != nil {
		t.Fatal(err)
	}
	mc := *m
	mc.Checksum = Checksum(wb.Bytes())
	return encodeManifest(t, &mc), wb.Bytes()
}

// encodeManifest encodes m as is, checksum included.
func encodeManifest(t testing.TB, m *Manifest) []byte {
	t.Helper()
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}
