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
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/race"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

func TestRecall(t *testing.T) {
	const (
		dim, centres = 32, 200
		k            = 100
	)
	n, nq := 20000, 100
	if race.Enabled {
		n, nq = 2000, 20
	}
	vecs := clustered(n, dim, centres, 1)
	qs := queries(nq, dim, centres, 1)
	for name, metric := range map[string]Metric{"inner product": InnerProduct, "cosine": Cosine} {
		t.Run(name, func(t *testing.T) {
			ix := New(dim, metric, Options{Seed: 7})
			if err := ix.Build(context.Background(), nil, vecs, 0); err != nil {
				t.Fatal(err)
			}
			if ix.Len() != n {
				t.Fatalf("Len() = %d, want %d", ix.Len(), n)
			}
			var sum float64
			var got []Result
			for i := 0; i < nq; i++ {
				q := qs[i*dim : (i+1)*dim]
				var err error
				got, err = ix.Search(q, k, 0, got[:0])
				if err != nil {
					t.Fatal(err)
				}
				want := Exact(metric, dim, vecs, nil, q, k, nil)
				if len(got) != k {
					t.Fatalf("query %d: %d results, want %d", i, len(got), k)
				}
				for j := 1; j < len(got); j++ {
					if got[j].Score > got[j-1].Score {
						t.Fatalf("query %d: results not sorted at %d", i, j)
					}
				}
				sum += recall(got, want)
			}
			if r := sum / float64(nq); r < 0.95 {
				t.Errorf("recall@%d = %.3f, want >= 0.95", k, r)
			} else {
				t.Logf("recall@%d over %d items = %.3f", k, n, r)
			}
		})
	}
}

// TestMetrics checks that inner product favours long vectors and cosine
// only direction.
func TestMetrics(t *testing.T) {
	vecs := [][]float32{
		{1, 0},   // 0: aligned with the query, short
		{10, 10}, // 1: 45 degrees off, long
		{0, 1},   // 2: orthogonal
		{-3, 0},  // 3: opposite
	}
	tests := map[string]struct {
		metric Metric
		want   []uint32
		scores []float32
	}{
		"inner product prefers the long vector": {InnerProduct, []uint32{1, 0, 2, 3}, []float32{20, 2, 0, -6}},
		"cosine prefers the aligned vector":     {Cosine, []uint32{0, 1, 2, 3}, []float32{1, float32(math.Sqrt2 / 2), 0, -1}},
	}
	query := []float32{2, 0}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ix := New(2, tc.metric, Options{})
			for i, v := range vecs {
				if err := ix.Add(uint32(i), v); err != nil {
					t.Fatal(err)
				}
			}
			flat := make([]float32, 0, 8)
			for _, v := range vecs {
				flat = append(flat, v...)
			}
			got, err := ix.Search(query, 4, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			exact := Exact(tc.metric, 2, flat, nil, query, 4, nil)
			// Search scores the vectors as stored, at half precision:
			// within 2⁻¹¹ relative per coordinate.
			for name, res := range map[string][]Result{"Search": got, "Exact": exact} {
				if len(res) != len(tc.want) {
					t.Fatalf("%s: %v, want ids %v", name, res, tc.want)
				}
				tol := 1e-5
				if name == "Search" {
					tol = 1e-3 * (1 + math.Abs(float64(tc.scores[0])))
				}
				for i, r := range res {
					if r.ID != tc.want[i] || math.Abs(float64(r.Score-tc.scores[i])) > tol {
						t.Errorf("%s: result %d = %+v, want id %d score %g", name, i, r, tc.want[i], tc.scores[i])
					}
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	ix := New(4, InnerProduct, Options{})
	if err := ix.Add(5, []float32{1, 2, 3, 4}); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		run  func() error
		want error
	}{
		"add short vector": {func() error { return ix.Add(6, []float32{1, 2, 3}) }, ErrDimension},
		"add long vector":  {func() error { return ix.Add(6, []float32{1, 2, 3, 4, 5}) }, ErrDimension},
		"add duplicate id": {func() error { return ix.Add(5, []float32{1, 2, 3, 4}) }, ErrDuplicateID},
		"search wrong dimension": {func() error {
			_, err := ix.Search([]float32{1}, 1, 0, nil)
			return err
		}, ErrDimension},
		"build ragged vectors": {func() error {
			return ix.Build(context.Background(), nil, make([]float32, 7), 1)
		}, ErrDimension},
		"build ids and vectors disagree": {func() error {
			return ix.Build(context.Background(), []uint32{10, 11}, make([]float32, 4), 1)
		}, ErrDimension},
		"build duplicate of existing id": {func() error {
			return ix.Build(context.Background(), []uint32{10, 5}, make([]float32, 8), 1)
		}, ErrDuplicateID},
		"build duplicate within batch": {func() error {
			return ix.Build(context.Background(), []uint32{10, 10}, make([]float32, 8), 1)
		}, ErrDuplicateID},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if err := tc.run(); !errors.Is(err, tc.want) {
				t.Errorf("error = %v, want %v", err, tc.want)
			}
		})
	}
	// Failed calls leave the index as it was: id 10 is still free.
	if ix.Len() != 1 {
		t.Errorf("Len() = %d after failed calls, want 1", ix.Len())
	}
	if err := ix.Add(10, []float32{0, 0, 0, 1}); err != nil {
		t.Errorf("Add(10) after failed batches: %v", err)
	}
}

func TestBuildCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ix := New(8, InnerProduct, Options{})
	if err := ix.Build(ctx, nil, clustered(100, 8, 4, 1), 2); !errors.Is(err, context.Canceled) {
		t.Errorf("Build with cancelled context: error = %v, want %v", err, context.Canceled)
	}
}

func TestSmallIndexes(t *testing.T) {
	tests := map[string]struct {
		n, k int
	}{
		"empty index":          {0, 10},
		"one item":             {1, 10},
		"k larger than Len":    {50, 100},
		"k equal to Len":       {50, 50},
		"k zero":               {50, 0},
		"k smaller than Len":   {50, 10},
		"many items k is one":  {500, 1},
		"ef smaller than k ok": {500, 200},
	}
	const dim = 8
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			vecs := clustered(tc.n, dim, 5, 3)
			ids := make([]uint32, tc.n)
			for i := range ids {
				ids[i] = uint32(1000 + 3*i)
			}
			ix := New(dim, Cosine, Options{EfSearch: 16})
			if err := ix.Build(context.Background(), ids, vecs, 2); err != nil {
				t.Fatal(err)
			}
			q := queries(1, dim, 5, 3)
			dst := []Result{{ID: 42, Score: 42}} // Search appends after it
			got, err := ix.Search(q, tc.k, 0, dst)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != (Result{42, 42}) {
				t.Errorf("Search overwrote dst[0]: %+v", got[0])
			}
			got = got[1:]
			want := Exact(Cosine, dim, vecs, ids, q, tc.k, nil)
			if len(want) != min(tc.k, tc.n) {
				t.Fatalf("Exact returned %d results, want %d", len(want), min(tc.k, tc.n))
			}
			if len(got) != len(want) {
				t.Fatalf("Search returned %d results, want %d", len(got), len(want))
			}
			// Small graphs are searched exhaustively.
			if tc.n <= 50 {
				for i := range got {
					if got[i].ID != want[i].ID {
						t.Errorf("result %d = %+v, want %+v", i, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestExact checks Exact against a sort of every score computed in float64.
func TestExact(t *testing.T) {
	const n, dim, k = 300, 5, 17
	rng := rand.New(rand.NewPCG(9, 9))
	vecs := make([]float32, n*dim)
	for i := range vecs {
		vecs[i] = float32(rng.NormFloat64())
	}
	q := []float32{0.5, -1, 2, 0, 0.25}
	for _, metric := range []Metric{InnerProduct, Cosine} {
		t.Run(metric.String(), func(t *testing.T) {
			type scored struct {
				id    uint32
				score float64
			}
			all := make([]scored, n)
			for i := 0; i < n; i++ {
				var d, nv, nq float64
				for j := 0; j < dim; j++ {
					a, b := float64(q[j]), float64(vecs[i*dim+j])
					d += a * b
					nv += b * b
					nq += a * a
				}
				if metric == Cosine {
					d /= math.Sqrt(nv) * math.Sqrt(nq)
				}
				all[i] = scored{uint32(i), d}
			}
			sort.Slice(all, func(i, j int) bool { return all[i].score > all[j].score })
			got := Exact(metric, dim, vecs, nil, q, k, nil)
			if len(got) != k {
				t.Fatalf("%d results, want %d", len(got), k)
			}
			for i := range got {
				if got[i].ID != all[i].id || math.Abs(float64(got[i].Score)-all[i].score) > 1e-4 {
					t.Errorf("result %d = %+v, want id %d score %g", i, got[i], all[i].id, all[i].score)
				}
			}
		})
	}
}

// TestConcurrentAddSearch adds items while other goroutines search; run
// under -race it checks the locking, and every result must name an item that
// was added.
func TestConcurrentAddSearch(t *testing.T) {
	const (
		dim, centres  = 16, 20
		base, streamN = 2000, 2000
		batchN        = 1000 // the last batchN of the streamed items come in one Build
		searchers     = 3
	)
	vecs := clustered(base+streamN, dim, centres, 5)
	ix := New(dim, InnerProduct, Options{M: 8, EfConstruction: 64})
	if err := ix.Build(context.Background(), nil, vecs[:base*dim], 2); err != nil {
		t.Fatal(err)
	}
	qs := queries(64, dim, centres, 5)
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, searchers+3)
	for w := 0; w < searchers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var res []Result
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				var err error
				res, err = ix.Search(qs[(i%64)*dim:(i%64+1)*dim], 20, 32, res[:0])
				if err != nil {
					errs <- err
					return
				}
				if len(res) != 20 {
					t.Errorf("search %d: %d results, want 20", i, len(res))
					return
				}
				for _, r := range res {
					if r.ID >= base+streamN {
						t.Errorf("search %d: result id %d was never added", i, r.ID)
						return
					}
				}
			}
		}()
	}
	// Two writers stream in items one at a time, starting from an index
	// sized for only the base items, so the slabs grow under load, while a
	// third builds a batch.
	var adders sync.WaitGroup
	adders.Add(1)
	go func() {
		defer adders.Done()
		const first = base + streamN - batchN
		ids := make([]uint32, batchN)
		for i := range ids {
			ids[i] = uint32(first + i)
		}
		if err := ix.Build(context.Background(), ids, vecs[first*dim:], 2); err != nil {
			errs <- err
		}
	}()
	for w := 0; w < 2; w++ {
		adders.Add(1)
		go func() {
			defer adders.Done()
			for i := base + w; i < base+streamN-batchN; i += 2 {
				if err := ix.Add(uint32(i), vecs[i*dim:(i+1)*dim]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	adders.Wait()
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ix.Len() != base+streamN {
		t.Fatalf("Len() = %d, want %d", ix.Len(), base+streamN)
	}
	// Streamed items must be findable: each item is its own best match
	// under cosine-like data only approximately, so check recall instead.
	var sum float64
	for i := 0; i < 64; i++ {
		q := qs[i*dim : (i+1)*dim]
		got, _ := ix.Search(q, 10, 64, nil)
		sum += recall(got, Exact(InnerProduct, dim, vecs, nil, q, 10, nil))
	}
	if r := sum / 64; r < 0.9 {
		t.Errorf("recall@10 after streaming inserts = %.3f, want >= 0.9", r)
	}
}

func TestParseMetric(t *testing.T) {
	for _, m := range []Metric{InnerProduct, Cosine} {
		got, err := ParseMetric(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMetric(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	if _, err := ParseMetric("L2"); err == nil {
		t.Error("ParseMetric(\"L2\") succeeded, want an error")
	}
}

// TestSearchBeam checks that a search with a beam below k returns k
// distinct items, best first, each with its true score, finding most of the
// true top k and the same top few as a full search; and that a beam of k or
// more, or none, is Search.
func TestSearchBeam(t *testing.T) {
	const (
		dim, centres = 32, 200
		k, beam      = 200, 50
	)
	n, nq := 20000, 50
	if race.Enabled {
		n, nq = 3000, 10
	}
	vecs := clustered(n, dim, centres, 2)
	qs := queries(nq, dim, centres, 2)
	ix := New(dim, InnerProduct, Options{Seed: 7})
	if err := ix.Build(context.Background(), nil, vecs, 0); err != nil {
		t.Fatal(err)
	}
	var wide, narrow, full float64
	var got, ref []Result
	for i := 0; i < nq; i++ {
		q := qs[i*dim : (i+1)*dim]
		var err error
		if got, err = ix.SearchBeam(q, k, beam, got[:0]); err != nil {
			t.Fatal(err)
		}
		if len(got) != k {
			t.Fatalf("query %d: %d results, want %d", i, len(got), k)
		}
		seen := map[uint32]bool{}
		for j, r := range got {
			if seen[r.ID] {
				t.Fatalf("query %d: item %d returned twice", i, r.ID)
			}
			seen[r.ID] = true
			if j > 0 && r.Score > got[j-1].Score {
				t.Fatalf("query %d: results not sorted at %d", i, j)
			}
			v := vecs[int(r.ID)*dim : int(r.ID+1)*dim]
			if exact := vec.Dot(q, v); math.Abs(float64(r.Score-exact)) > 1e-2*math.Max(1, math.Abs(float64(exact))) {
				t.Fatalf("query %d: item %d scored %v, its inner product is %v", i, r.ID, r.Score, exact)
			}
		}
		want := Exact(InnerProduct, dim, vecs, nil, q, k, nil)
		wide += recall(got, want)
		// The items a search of k = beam keeps are a subset of those it
		// scores, so the wide search finds at least those of the top k.
		if ref, err = ix.Search(q, beam, beam, ref[:0]); err != nil {
			t.Fatal(err)
		}
		narrow += recall(ref, want)
		if ref, err = ix.Search(q, k, 0, ref[:0]); err != nil {
			t.Fatal(err)
		}
		full += recall(ref, want)
		if r := recall(got[:10], want[:10]); r < 0.9 {
			t.Errorf("query %d: %.2f of the true top 10 among the first 10, want >= 0.9", i, r)
		}
	}
	wide, narrow, full = wide/float64(nq), narrow/float64(nq), full/float64(nq)
	t.Logf("recall@%d: beam %d %.3f, search of %d %.3f, full search %.3f", k, beam, wide, beam, narrow, full)
	if wide < 0.6 || wide <= narrow || wide > full+0.01 {
		t.Errorf("recall@%d of a beam of %d = %.3f, want >= 0.6, above the %.3f of the %d it keeps and at most the full search's %.3f", k, beam, wide, narrow, beam, full)
	}

	q := qs[:dim]
	for _, b := range []int{0, -1, k, 2 * k} {
		a, _ := ix.SearchBeam(q, k, b, nil)
		s, _ := ix.Search(q, k, b, nil)
		if !slices.Equal(a, s) {
			t.Errorf("SearchBeam(k=%d, beam=%d) differs from Search", k, b)
		}
	}
	if !race.Enabled {
		dst := make([]Result, 0, k)
		if allocs := testing.AllocsPerRun(20, func() { dst, _ = ix.SearchBeam(q, k, beam, dst[:0]) }); allocs != 0 {
			t.Errorf("SearchBeam allocates %v times per call once warm, want 0", allocs)
		}
	}
}

// TestDenseIDsNeedNoMap checks that an index whose ids are its nodes'
// numbers keeps no id map and still refuses repeated ids, before and after
// an id out of sequence makes it map them.
func TestDenseIDsNeedNoMap(t *testing.T) {
	const dim = 4
	ix := New(dim, InnerProduct, Options{Seed: 1})
	v := func(n int) []float32 { return clustered(n, dim, 2, 5) }
	if err := ix.Build(context.Background(), nil, v(100), 1); err != nil {
		t.Fatal(err)
	}
	if err := ix.Add(100, v(1)); err != nil {
		t.Fatal(err)
	}
	if ix.ids != nil {
		t.Fatalf("an index of ids 0..100 keeps a map of %d ids", len(ix.ids))
	}
	for _, id := range []uint32{0, 57, 100} {
		if err := ix.Add(id, v(1)); !errors.Is(err, ErrDuplicateID) {
			t.Errorf("Add(%d) of a taken id: %v, want %v", id, err, ErrDuplicateID)
		}
	}
	if err := ix.Build(context.Background(), []uint32{101, 102, 7}, v(3), 1); !errors.Is(err, ErrDuplicateID) {
		t.Errorf("a batch ending with a taken id: %v, want %v", err, ErrDuplicateID)
	}
	// Out of sequence: 500 is not node 101's number.
	if err := ix.Build(context.Background(), []uint32{101, 500}, v(2), 1); err != nil {
		t.Fatal(err)
	}
	if ix.ids == nil || len(ix.ids) != 103 {
		t.Fatalf("after an id out of sequence the map holds %d ids, want 103", len(ix.ids))
	}
	for _, id := range []uint32{3, 101, 500} {
		if err := ix.Add(id, v(1)); !errors.Is(err, ErrDuplicateID) {
			t.Errorf("Add(%d) of a taken id after mapping: %v, want %v", id, err, ErrDuplicateID)
		}
	}
	if err := ix.Add(102, v(1)); err != nil {
		t.Errorf("Add(102), free: %v", err)
	}
	if ix.Len() != 104 {
		t.Errorf("Len() = %d, want 104", ix.Len())
	}
	res, _ := ix.Search(v(1), 104, 0, nil)
	seen := map[uint32]bool{}
	for _, r := range res {
		seen[r.ID] = true
	}
	if !seen[500] || !seen[102] || !seen[0] || len(seen) != 104 {
		t.Errorf("a search over all items finds %d distinct ids (500: %v, 102: %v), want all 104", len(seen), seen[500], seen[102])
	}
}

// TestStoredRows reads back the vectors as stored, in the index's memory,
// for ranges of dense ids within a segment, and nothing for a range that
// crosses segments or passes Len, for Cosine (which stores normalised
// vectors) or once ids stop being node numbers.
func TestStoredRows(t *testing.T) {
	const dim, n = 4, 70
	vecs := clustered(n, dim, 3, 9)
	ix := withSegments(dim, InnerProduct, Options{Seed: 1}, 5) // 32 nodes a segment
	if err := ix.Build(context.Background(), nil, vecs, 2); err != nil {
		t.Fatal(err)
	}
	want := make([]uint16, n*dim)
	vec.EncodeHalf(want, vecs)
	for _, r := range []struct{ from, count int }{{0, 32}, {32, 32}, {64, 6}, {40, 3}} {
		got := ix.StoredRows(r.from, r.count)
		if !slices.Equal(got, want[r.from*dim:(r.from+r.count)*dim]) {
			t.Errorf("StoredRows(%d, %d) = %v, want the vectors as added at half precision", r.from, r.count, got)
		}
		if len(got) > 0 && &got[0] != &ix.vec(uint32(r.from))[0] {
			t.Errorf("StoredRows(%d, %d) is not the index's memory", r.from, r.count)
		}
		if cap(got) != len(got) {
			t.Errorf("StoredRows(%d, %d) has room past its rows (cap %d)", r.from, r.count, cap(got))
		}
	}
	for _, r := range []struct{ from, count int }{{30, 4}, {64, 7}, {-1, 2}, {3, 0}} {
		if got := ix.StoredRows(r.from, r.count); got != nil {
			t.Errorf("StoredRows(%d, %d) = %d values, want nil", r.from, r.count, len(got))
		}
	}
	cos := New(dim, Cosine, Options{Seed: 1})
	if err := cos.Build(context.Background(), nil, vecs, 1); err != nil {
		t.Fatal(err)
	}
	if got := cos.StoredRows(0, 8); got != nil {
		t.Errorf("a Cosine index gave %d stored values, which are normalised, not as added", len(got))
	}
	if err := ix.Add(1000, vecs[:dim]); err != nil {
		t.Fatal(err)
	}
	if got := ix.StoredRows(0, 32); got != nil {
		t.Errorf("after id 1000 at node 70, StoredRows(0, 32) = %d values, want nil: ids are no longer node numbers", len(got))
	}
}
