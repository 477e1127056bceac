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
	"fmt"
	"testing"
)

// benchMTMLManifest is a second-stage network of production shape: a
// 128-wide input, hidden layers (256, 128), four heads.
func benchMTMLManifest() *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion, Name: "mtml", Version: "bench", Kind: KindMTML,
		Networks: map[string]NetworkSpec{NetBottom: {
			Input: FeatureSpec{
				{Name: "user_embedding", Width: 32},
				{Name: "item_embedding", Width: 32},
				{Name: "item_features", Width: 48},
				{Name: "context", Width: 15},
				{Name: "dot_user_item", Width: 1},
			},
			Layers: []LayerSpec{{Out: 256, Activation: ReLU}, {Out: 128, Activation: ReLU}},
		}},
		Heads: []string{"click", "like", "comment", "see_less"},
	}
}

func BenchmarkMTMLPredict(b *testing.B) {
	m := benchMTMLManifest()
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{300, 1500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			in := randInput(1, batch, a.MTML.In(), a.MTML.In())
			out := make([]float32, batch*len(m.Heads))
			ws := NewWorkspace(a.MTML.Bottom(), batch)
			b.ReportAllocs()
			calls := 0
			for b.Loop() {
				a.MTML.Predict(in, out, ws)
				calls++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls*batch), "ns/candidate")
		})
	}
}

func BenchmarkTwoTowerItem(b *testing.B) {
	m := &Manifest{
		FormatVersion: FormatVersion, Name: "first-stage", Version: "bench", Kind: KindTwoTower, Normalize: true,
		Networks: map[string]NetworkSpec{
			NetUser: {Input: FeatureSpec{{Name: "user_features", Width: 64}},
				Layers: []LayerSpec{{Out: 128, Activation: ReLU}, {Out: 32, Activation: Identity}}},
			NetItem: {Input: FeatureSpec{{Name: "item_id_embedding", Width: 32}, {Name: "item_features", Width: 32}},
				Layers: []LayerSpec{{Out: 128, Activation: ReLU}, {Out: 32, Activation: Identity}}},
		},
	}
	a, err := New(m, randTensors(m, 1))
	if err != nil {
		b.Fatal(err)
	}
	tt := a.TwoTower
	const batch = 1500
	items := randInput(2, batch, tt.Item.In(), tt.Item.In())
	user := make([]float32, tt.Dim)
	for i := range user {
		user[i] = float32(i) / float32(tt.Dim)
	}
	scores := make([]float32, batch)
	ws := NewWorkspace(tt.Item, batch)
	b.ReportAllocs()
	calls := 0
	for b.Loop() {
		tt.Score(user, items, scores, ws)
		calls++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(calls*batch), "ns/candidate")
}

// prodMTMLManifest is the second-stage network recserve serves (rectrain's
// layout): 128 per-user columns (user features, engagement pool), then 67
// per-item columns; hidden layers (256, 128); five heads.
func prodMTMLManifest() *Manifest {
	return &Manifest{
		FormatVersion: FormatVersion, Name: "mtml", Version: "bench", Kind: KindMTML,
		Networks: map[string]NetworkSpec{NetBottom: {
			Input: FeatureSpec{
				{Name: "user_features", Width: 64},
				{Name: "engagement_pool", Width: 64},
				{Name: "item_features", Width: 64},
				{Name: "item_risk", Width: 1},
				{Name: "item_age", Width: 1},
				{Name: "author_followed", Width: 1},
			},
			Layers: []LayerSpec{{Out: 256, Activation: ReLU}, {Out: 128, Activation: ReLU}},
		}},
		Heads: []string{"click", "like", "comment", "share", "see_less"},
	}
}

// BenchmarkMTMLProduction is one ranking call of recserve: 300 candidates
// through 195 → 256 → 128 → 5, on the kernel (where the CPU has it) and on
// gonum, and in bfloat16 where the CPU has it (SplitPredict only), with the whole input (Predict) and with the 128 user columns split
// off (SplitPredict).
func BenchmarkMTMLProduction(b *testing.B) {
	m := prodMTMLManifest()
	tensors := randTensors(m, 1)
	const batch, userCols = 300, 128
	for _, p := range computePaths() {
		var a *Artifact
		var s *SplitMTML
		var err error
		p.build(func() {
			if a, err = New(m, tensors); err != nil {
				return
			}
			constant := make([]int, userCols)
			for i := range constant {
				constant[i] = i
			}
			s, err = a.MTML.Split(constant)
		})
		if err == nil && p.bf16 {
			s, err = s.WithPrecision(BFloat16)
		}
		if err != nil {
			b.Fatal(err)
		}
		out := make([]float32, batch*len(m.Heads))
		b.Run(p.name+"/Predict", func(b *testing.B) {
			if p.bf16 {
				b.Skip("the whole network has no bfloat16 form")
			}
			in := randInput(1, batch, a.MTML.In(), a.MTML.In())
			ws := NewWorkspace(a.MTML.Bottom(), batch)
			b.ReportAllocs()
			for b.Loop() {
				a.MTML.Predict(in, out, ws)
			}
		})
		b.Run(p.name+"/SplitPredict", func(b *testing.B) {
			shared := randInput(2, 1, userCols, userCols).Data
			in := randInput(1, batch, s.In(), s.In())
			ws := NewWorkspace(a.MTML.Bottom(), batch)
			b.ReportAllocs()
			for b.Loop() {
				s.Predict(shared, in, out, ws)
			}
		})
	}
}
