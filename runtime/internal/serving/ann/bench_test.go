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

package ann

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
)

// The benchmarks run on clustered data whose scale comes from the
// environment, so that a plain `go test -bench .` stays small:
//
//	RECPIPELINE_ANN_N       items in the index; default 100000
//	RECPIPELINE_ANN_DIM     dimension; default 64
//	RECPIPELINE_ANN_METRIC  InnerProduct (default) or Cosine
//	RECPIPELINE_ANN_EF      the one ef of BenchmarkSearch; default 128, 200 and 300
//	RECPIPELINE_ANN_M       Options.M; default its default
//	RECPIPELINE_ANN_EFC     Options.EfConstruction; default its default
//	RECPIPELINE_ANN_K       k of BenchmarkSearchLargeK and BenchmarkSearchBeam; default 800
//
// The full run of the project's targets is
//
//	RECPIPELINE_ANN_N=1000000 go test -run xxx -bench . -benchtime=3s -timeout 30m ./runtime/internal/serving/ann/
//
// where BenchmarkBuild, which takes longer than the bench time, runs once and
// hands its index to BenchmarkSearch.
const (
	benchCentres = 1000
	benchQueries = 200
	benchK       = 100
)

type benchSet struct {
	n, dim  int
	metric  Metric
	m       int
	ef, efC int
	vecs    []float32
	queries []float32
	exact   [][]Result // per query, the true top benchK
	exactK  [][]Result // per query, the true top k of BenchmarkSearchLargeK

	once  sync.Once
	index *Index
}

var (
	benchOnce sync.Once
	bench     *benchSet
)

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		b.Fatalf("%s=%q: want a non-negative integer", name, s)
	}
	return v
}

func benchData(b *testing.B) *benchSet {
	benchOnce.Do(func() {
		metric := InnerProduct
		if s := os.Getenv("RECPIPELINE_ANN_METRIC"); s != "" {
			var err error
			if metric, err = ParseMetric(s); err != nil {
				b.Fatal(err)
			}
		}
		s := &benchSet{
			n:      envInt(b, "RECPIPELINE_ANN_N", 100000),
			dim:    envInt(b, "RECPIPELINE_ANN_DIM", 64),
			metric: metric,
			ef:     envInt(b, "RECPIPELINE_ANN_EF", 0),
			m:      envInt(b, "RECPIPELINE_ANN_M", 0),
			efC:    envInt(b, "RECPIPELINE_ANN_EFC", 0),
		}
		s.vecs = clustered(s.n, s.dim, benchCentres, 11)
		s.queries = queries(benchQueries, s.dim, benchCentres, 11)
		bench = s
	})
	if bench == nil {
		b.Fatal("benchmark data failed to generate")
	}
	return bench
}

func (s *benchSet) build(b *testing.B) *Index {
	ix := New(s.dim, s.metric, Options{M: s.m, EfConstruction: s.efC, EfSearch: s.ef, Seed: 1})
	if err := ix.Build(context.Background(), nil, s.vecs, 0); err != nil {
		b.Fatal(err)
	}
	return ix
}

// built returns the index of the set, building it on first use unless
// BenchmarkBuild already did.
func (s *benchSet) built(b *testing.B) *Index {
	s.once.Do(func() { s.index = s.build(b) })
	return s.index
}

func (s *benchSet) query(i int) []float32 {
	i %= benchQueries
	return s.queries[i*s.dim : (i+1)*s.dim]
}

func (s *benchSet) truth() [][]Result {
	if s.exact == nil {
		s.exact = make([][]Result, benchQueries)
		for i := range s.exact {
			s.exact[i] = Exact(s.metric, s.dim, s.vecs, nil, s.query(i), benchK, nil)
		}
	}
	return s.exact
}

// truthK computes the true top k of every query, once, into s.exactK.
func (s *benchSet) truthK(k int) {
	if s.exactK == nil {
		s.exactK = make([][]Result, benchQueries)
		for i := range s.exactK {
			s.exactK[i] = Exact(s.metric, s.dim, s.vecs, nil, s.query(i), k, nil)
		}
	}
}

// BenchmarkBuild measures a parallel build of the whole set on all CPUs.
func BenchmarkBuild(b *testing.B) {
	s := benchData(b)
	b.ReportAllocs()
	b.ResetTimer()
	var ix *Index
	for i := 0; i < b.N; i++ {
		ix = s.build(b)
	}
	b.StopTimer()
	b.ReportMetric(float64(s.n), "items")
	s.once.Do(func() { s.index = ix })
}

// BenchmarkSearch measures one top-100 query with a reused result buffer,
// for a few values of ef, and reports the mean recall@100 against Exact.
func BenchmarkSearch(b *testing.B) {
	s := benchData(b)
	efs := []int{128, 200, 300}
	if s.ef > 0 {
		efs = []int{s.ef}
	}
	for _, ef := range efs {
		b.Run("ef="+strconv.Itoa(ef), func(b *testing.B) {
			ix := s.built(b)
			truth := s.truth()
			dst := make([]Result, 0, benchK)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst, _ = ix.Search(s.query(i), benchK, ef, dst[:0])
			}
			b.StopTimer()
			var sum float64
			for i := 0; i < benchQueries; i++ {
				dst, _ = ix.Search(s.query(i), benchK, ef, dst[:0])
				sum += recall(dst, truth[i])
			}
			b.ReportMetric(sum/benchQueries, "recall@100")
		})
	}
}

// BenchmarkSearchLargeK measures the query of a retrieval that asks for
// many candidates (the for-you source asks for 800), with ef left to the
// index, which raises it to k. It reports the recall of the true top 100
// among the first 100 results and of the true top k among all k.
func BenchmarkSearchLargeK(b *testing.B) {
	s := benchData(b)
	k := envInt(b, "RECPIPELINE_ANN_K", 800)
	ix := s.built(b)
	s.truthK(k)
	dst := make([]Result, 0, k)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst, _ = ix.Search(s.query(i), k, 0, dst[:0])
	}
	b.StopTimer()
	var top, all float64
	for i := 0; i < benchQueries; i++ {
		dst, _ = ix.Search(s.query(i), k, 0, dst[:0])
		want := s.exactK[i]
		top += recall(dst[:min(benchK, len(dst))], want[:min(benchK, len(want))])
		all += recall(dst, want)
	}
	b.ReportMetric(top/benchQueries, "recall@100")
	b.ReportMetric(all/benchQueries, "recall@k")
}

// BenchmarkExact measures the brute-force top-100 that Search replaces.
func BenchmarkExact(b *testing.B) {
	s := benchData(b)
	dst := make([]Result, 0, benchK)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = Exact(s.metric, s.dim, s.vecs, nil, s.query(i), benchK, dst[:0])
	}
}

// BenchmarkSearchBeam measures the query of BenchmarkSearchLargeK through
// SearchBeam, for beams of 0 (Search with ef = k) and below k, with the
// same recall figures.
func BenchmarkSearchBeam(b *testing.B) {
	s := benchData(b)
	k := envInt(b, "RECPIPELINE_ANN_K", 800)
	ix := s.built(b)
	s.truthK(k)
	for _, w := range []int{0, 200, 400, 600} {
		b.Run("beam="+strconv.Itoa(w), func(b *testing.B) {
			dst := make([]Result, 0, k)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dst, _ = ix.SearchBeam(s.query(i), k, w, dst[:0])
			}
			b.StopTimer()
			var top, all float64
			for i := 0; i < benchQueries; i++ {
				dst, _ = ix.SearchBeam(s.query(i), k, w, dst[:0])
				want := s.exactK[i]
				top += recall(dst[:min(benchK, len(dst))], want[:min(benchK, len(want))])
				all += recall(dst, want)
			}
			b.ReportMetric(top/benchQueries, "recall@100")
			b.ReportMetric(all/benchQueries, "recall@k")
		})
	}
}
