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

package sources

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// BenchmarkMix mixes four overlapping sources of a few hundred candidates
// into a budget of 1500, as the sample pipeline does; allocations per
// request stay constant, none per candidate.
func BenchmarkMix(b *testing.B) {
	m := NewMixer([]Weighted{
		{Name: "a", Source: items(0, 400), Weight: 0.25, Limit: 400, Timeout: time.Second, Index: 0},
		{Name: "b", Source: items(200, 800), Weight: 0.45, Limit: 800, Timeout: time.Second, Index: 1},
		{Name: "c", Source: items(900, 400), Weight: 0.2, Limit: 400, Timeout: time.Second, Index: 2},
		{Name: "d", Source: items(1200, 200), Weight: 0.1, Limit: 200, Timeout: time.Second, Index: 3},
	}, catalog, MixerOptions{})
	ctx := context.Background()
	dst := make([]Mixed, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = m.Mix(ctx, &Request{User: "u"}, 1500, nil, dst[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

// annBench is a two-tower index of 20,000 items and a user whose 1,000
// nearest items include the 600 they have seen.
type annBench struct {
	index *ann.Index
	users *fakeEmbedder
	seen  *store.Filter
}

var (
	annBenchOnce sync.Once
	annBenchVal  annBench
)

func newANNBench(b *testing.B) *annBench {
	b.Helper()
	annBenchOnce.Do(func() {
		const n, dim = 20000, 32
		r := rand.New(rand.NewPCG(1, 2))
		vecs := make([]float32, n*dim)
		for i := range vecs {
			vecs[i] = float32(r.NormFloat64())
		}
		ix := ann.New(dim, ann.InnerProduct, ann.Options{Seed: 1})
		ix.Reserve(n)
		if err := ix.Build(context.Background(), nil, vecs, 2); err != nil {
			panic(err)
		}
		q := make([]float32, dim)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		top := ann.Exact(ann.InnerProduct, dim, vecs, nil, q, 1000, nil)
		// The filter is a snapshot: the store goes once it is read.
		dir, err := os.MkdirTemp("", "sources-bench-")
		if err != nil {
			panic(err)
		}
		defer os.RemoveAll(dir)
		st, err := store.OpenMemory(dir, store.MemoryOptions{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			panic(err)
		}
		defer st.Close()
		var events []store.Event
		for i, res := range top {
			if i%5 < 3 { // 600 of the nearest 1,000
				events = append(events, store.Event{User: "u", Item: fmt.Sprintf("i%d", res.ID), Type: store.Impression})
			}
		}
		if err := st.Apply(context.Background(), events); err != nil {
			panic(err)
		}
		seen, err := st.Seen(context.Background(), "u")
		if err != nil {
			panic(err)
		}
		annBenchVal = annBench{index: ix, users: &fakeEmbedder{vecs: map[string][]float32{"u": q}}, seen: seen}
	})
	return &annBenchVal
}

// BenchmarkMixSeenANN mixes a two-tower ANN source (limit 800) whose
// nearest items the user has mostly seen with a list source, into a budget
// of 1,000: the ANN source must reach past what the seen filter drops.
// cands/op is how many candidates the mix returns.
func BenchmarkMixSeenANN(b *testing.B) {
	ab := newANNBench(b)
	tt := NewTwoTowerANN(config.Source{Name: "tt", Model: "two-tower"}, ab.users, ab.index)
	m := NewMixer([]Weighted{
		{Name: "tt", Source: tt, Weight: 0.8, Limit: 800, Timeout: time.Second, Index: 0},
		{Name: "l", Source: items(19800, 200), Weight: 0.2, Limit: 200, Timeout: time.Second, Index: 1},
	}, fakeItems{n: 20000, authors: 100}, MixerOptions{})
	ctx := context.Background()
	dst := make([]Mixed, 0, 1000)
	b.ReportAllocs()
	total := 0
	for b.Loop() {
		var err error
		dst, err = m.Mix(ctx, &Request{User: "u"}, 1000, ab.seen, dst[:0])
		if err != nil {
			b.Fatal(err)
		}
		total += len(dst)
	}
	b.ReportMetric(float64(total)/float64(b.N), "cands/op")
}
