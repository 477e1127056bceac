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
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// fakeItems is a catalog of items "i0".."i<n-1>"; item i is by "a<i%authors>".
type fakeItems struct {
	n, authors int
}

func (c fakeItems) Ordinal(id string) (uint32, bool) {
	v, err := strconv.Atoi(strings.TrimPrefix(id, "i"))
	if !strings.HasPrefix(id, "i") || err != nil || v < 0 || v >= c.n {
		return 0, false
	}
	return uint32(v), true
}

func (c fakeItems) Ordinals(ids []string, dst []int64) []int64 {
	return appendOrdinals(c.Ordinal, ids, dst)
}

// appendOrdinals is Items.Ordinals through ordinal.
func appendOrdinals(ordinal func(string) (uint32, bool), ids []string, dst []int64) []int64 {
	for _, id := range ids {
		o, ok := ordinal(id)
		if !ok {
			dst = append(dst, -1)
			continue
		}
		dst = append(dst, int64(o))
	}
	return dst
}

func (c fakeItems) ID(i uint32) string { return fmt.Sprintf("i%d", i) }

func (c fakeItems) Author(i uint32) string { return fmt.Sprintf("a%d", int(i)%c.authors) }

func (c fakeItems) AuthorIndex(i uint32) uint32 { return i % uint32(c.authors) }

func (c fakeItems) LookupAuthor(id string) (uint32, bool) {
	v, err := strconv.Atoi(strings.TrimPrefix(id, "a"))
	if !strings.HasPrefix(id, "a") || err != nil || v < 0 || v >= c.authors {
		return 0, false
	}
	return uint32(v), true
}

func (c fakeItems) Created(uint32) time.Time { return time.Time{} }

// openStore opens a Memory store holding events.
func openStore(t *testing.T, events ...store.Event) *store.Memory {
	t.Helper()
	st, err := store.OpenMemory(t.TempDir(), store.MemoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Apply(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeVectors maps ordinals to embeddings.
type fakeVectors map[uint32][]float32

func (v fakeVectors) Vector(i uint32, dst []float32) []float32 {
	x, ok := v[i]
	if !ok {
		return nil
	}
	return append(dst[:0], x...)
}

// exactSearcher searches fakeVectors by brute-force inner product and
// records the k of each search.
type exactSearcher struct {
	vecs  fakeVectors
	mu    sync.Mutex
	ks    []int
	beams []int
	err   error
}

func (s *exactSearcher) SearchBeam(q []float32, k, beam int, dst []ann.Result) ([]ann.Result, error) {
	s.mu.Lock()
	s.ks = append(s.ks, k)
	s.beams = append(s.beams, beam)
	s.mu.Unlock()
	if s.err != nil {
		return dst, s.err
	}
	start := len(dst)
	for id, v := range s.vecs {
		var dot float32
		for j := range q {
			dot += q[j] * v[j]
		}
		dst = append(dst, ann.Result{ID: id, Score: dot})
	}
	res := dst[start:]
	// Selection sort is plenty for a handful of vectors.
	for i := range res {
		for j := i + 1; j < len(res); j++ {
			if res[j].Score > res[i].Score || res[j].Score == res[i].Score && res[j].ID < res[i].ID {
				res[i], res[j] = res[j], res[i]
			}
		}
	}
	return dst[:start+min(k, len(res))], nil
}

// fakeEmbedder returns a fixed embedding per user and counts its calls.
type fakeEmbedder struct {
	vecs  map[string][]float32
	err   error
	mu    sync.Mutex
	calls int
}

func (e *fakeEmbedder) EmbedUser(ctx context.Context, req *Request, dst []float32) ([]float32, error) {
	e.mu.Lock()
	e.calls++
	e.mu.Unlock()
	if e.err != nil {
		return dst, e.err
	}
	return append(dst, e.vecs[req.User]...), nil
}

// listSource returns its candidates, up to limit.
type listSource []Candidate

func (s listSource) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	return append(dst, s[:min(len(s), limit)]...), nil
}

// items returns a source of items from, from+1, … (n of them), best first.
func items(from, n int) listSource {
	s := make(listSource, n)
	for i := range s {
		s[i] = Candidate{Item: uint32(from + i), Score: float32(n - i)}
	}
	return s
}

// errSource fails.
type errSource struct{ err error }

func (s errSource) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	return append(dst, Candidate{Item: 999}), s.err
}

// slowSource blocks until its context ends, telling started when it runs.
type slowSource struct{ started chan<- struct{} }

func (s slowSource) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	if s.started != nil {
		s.started <- struct{}{}
	}
	<-ctx.Done()
	return dst, ctx.Err()
}

// stuckSource ignores its context and blocks until release is closed.
type stuckSource struct{ release <-chan struct{} }

func (s stuckSource) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	<-s.release
	return append(dst, Candidate{Item: 998}), nil
}

// panicSource panics.
type panicSource struct{}

func (panicSource) Fetch(context.Context, *Request, int, []Candidate) ([]Candidate, error) {
	panic("broken source")
}

// countingSource counts its calls.
type countingSource struct {
	mu    sync.Mutex
	calls int
	listSource
}

func (s *countingSource) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	s.mu.Lock()
	s.calls++
	s.mu.Unlock()
	return s.listSource.Fetch(ctx, req, limit, dst)
}

type observation struct {
	name string
	n    int
	err  error
}

// recorder is an Observer keeping what it is told.
type recorder struct {
	mu  sync.Mutex
	obs map[string]observation
}

func (r *recorder) SourceDone(name string, d time.Duration, n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.obs == nil {
		r.obs = map[string]observation{}
	}
	if _, dup := r.obs[name]; dup {
		panic("source observed twice: " + name)
	}
	r.obs[name] = observation{name: name, n: n, err: err}
}

func (r *recorder) get(name string) (observation, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.obs[name]
	return o, ok
}

var errBoom = errors.New("boom")

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-5 }
