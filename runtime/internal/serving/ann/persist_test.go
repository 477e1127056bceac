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
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/race"
)

// saved builds an index over vecs and returns it with the bytes Save wrote.
func saved(t *testing.T, dim int, metric Metric, opts Options, ids []uint32, vecs []float32) (*Index, []byte) {
	t.Helper()
	ix := New(dim, metric, opts)
	if err := ix.Build(context.Background(), ids, vecs, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ix.Save(&buf); err != nil {
		t.Fatalf("Save: %v", err)
	}
	return ix, buf.Bytes()
}

// sameSearches fails unless a and b answer every query alike, ids and
// scores, at the default ef and a wide one.
func sameSearches(t *testing.T, a, b *Index, qs []float32, dim int) {
	t.Helper()
	var ra, rb []Result
	for i := 0; i < len(qs)/dim; i++ {
		q := qs[i*dim : (i+1)*dim]
		for _, ef := range []int{0, 300} {
			var err error
			if ra, err = a.Search(q, 50, ef, ra[:0]); err != nil {
				t.Fatal(err)
			}
			if rb, err = b.Search(q, 50, ef, rb[:0]); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ra, rb) {
				t.Fatalf("query %d, ef %d: loaded index found %v, saved one %v", i, ef, rb, ra)
			}
		}
	}
}

func TestSaveLoadSearchesAlike(t *testing.T) {
	const dim, centres = 16, 40
	n, nq, added := 4000, 200, 300
	if race.Enabled {
		n, nq, added = 800, 40, 60
	}
	vecs := clustered(n+added, dim, centres, 2)
	qs := queries(nq, dim, centres, 2)
	ordinals := make([]uint32, n)
	for i := range ordinals {
		ordinals[i] = uint32(10 * i)
	}
	tests := map[string]struct {
		metric Metric
		ids    []uint32
	}{
		"inner product, ordinals": {InnerProduct, nil},
		"cosine, ids":             {Cosine, ordinals},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			opts := Options{M: 12, EfConstruction: 100, Seed: 9}
			orig, data := saved(t, dim, tc.metric, opts, tc.ids, vecs[:n*dim])
			ix, err := Load(bytes.NewReader(data), dim, tc.metric, opts, tc.ids, vecs[:n*dim])
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if ix.Len() != n {
				t.Fatalf("Len() = %d after Load, want %d", ix.Len(), n)
			}
			sameSearches(t, orig, ix, qs, dim)

			// The same new items, added to both in the same order, leave
			// them alike: the loaded index inserts as the saved one does.
			for i := n; i < n+added; i++ {
				for _, x := range []*Index{orig, ix} {
					if err := x.Add(uint32(100000+i), vecs[i*dim:(i+1)*dim]); err != nil {
						t.Fatalf("Add after Load: %v", err)
					}
				}
			}
			if ix.Len() != n+added {
				t.Fatalf("Len() = %d after adds, want %d", ix.Len(), n+added)
			}
			sameSearches(t, orig, ix, qs, dim)
			if err := ix.Add(100000+uint32(n), vecs[:dim]); !errors.Is(err, ErrDuplicateID) {
				t.Errorf("Add of an id added after Load: error = %v, want %v", err, ErrDuplicateID)
			}
		})
	}
}

func TestLoadOfFewerItemsThanGiven(t *testing.T) {
	const dim, n, more = 8, 600, 200
	vecs := clustered(n+more, dim, 10, 4)
	_, data := saved(t, dim, InnerProduct, Options{}, nil, vecs[:n*dim])
	ix, err := Load(bytes.NewReader(data), dim, InnerProduct, Options{}, nil, vecs)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if ix.Len() != n {
		t.Fatalf("Len() = %d, want the %d items saved", ix.Len(), n)
	}
	ids := make([]uint32, more)
	for i := range ids {
		ids[i] = uint32(n + i)
	}
	if err := ix.Build(context.Background(), ids, vecs[n*dim:], 0); err != nil {
		t.Fatalf("Build of the rest: %v", err)
	}
	// Every item is found by exact search among all: the graph reaches the
	// items built after the load.
	q := vecs[(n+7)*dim : (n+8)*dim]
	got, err := ix.Search(q, 10, len(vecs)/dim, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Exact(InnerProduct, dim, vecs, nil, q, 10, nil)
	if r := recall(got, want); r < 1 {
		t.Errorf("recall@10 with ef = every item: %.2f, want 1 (got %v, want %v)", r, got, want)
	}
}

func TestSaveLoadEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := New(4, Cosine, Options{}).Save(&buf); err != nil {
		t.Fatal(err)
	}
	ix, err := Load(&buf, 4, Cosine, Options{}, nil, nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, _ := ix.Search([]float32{1, 0, 0, 0}, 5, 0, nil); len(got) != 0 || ix.Len() != 0 {
		t.Fatalf("empty index loaded with %d items, found %v", ix.Len(), got)
	}
	if err := ix.Add(3, []float32{1, 1, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if got, _ := ix.Search([]float32{1, 0, 0, 0}, 5, 0, nil); len(got) != 1 || got[0].ID != 3 {
		t.Errorf("after Add, found %v, want item 3", got)
	}
}

// reseal recomputes the checksums of a file edited on purpose.
func reseal(b []byte) []byte {
	le := binary.LittleEndian
	le.PutUint32(b[headerCRC:], crc32.Checksum(b[:headerCRC], castagnoli))
	le.PutUint32(b[len(b)-4:], crc32.Checksum(b[headerSize:len(b)-4], castagnoli))
	return b
}

func TestLoadRefuses(t *testing.T) {
	const dim, n = 8, 500
	opts := Options{Seed: 5}
	vecs := clustered(n, dim, 10, 6)
	_, data := saved(t, dim, InnerProduct, opts, nil, vecs)
	other := slices.Clone(vecs)
	other[3*dim+1] += 0.001
	le := binary.LittleEndian
	links0 := headerSize + n*dim*2 + 2*n*4 // node 0's layer-0 list: after the half-precision vectors, lift coordinates and ids

	type load struct {
		dim    int
		metric Metric
		opts   Options
		ids    []uint32
		vecs   []float32
	}
	same := load{dim, InnerProduct, opts, nil, vecs}
	tests := map[string]struct {
		edit func([]byte) []byte
		load load
		want error
		says string
	}{
		"empty file":            {func([]byte) []byte { return nil }, same, ErrCorrupt, "truncated in its header"},
		"truncated header":      {func(b []byte) []byte { return b[:40] }, same, ErrCorrupt, "truncated in its header"},
		"truncated items":       {func(b []byte) []byte { return b[:len(b)/2] }, same, ErrCorrupt, "truncated in its items"},
		"truncated checksum":    {func(b []byte) []byte { return b[:len(b)-2] }, same, ErrCorrupt, "truncated in its checksum"},
		"bytes after the end":   {func(b []byte) []byte { return append(b, 0) }, same, ErrCorrupt, "bytes follow"},
		"not an index":          {func(b []byte) []byte { return []byte(strings.Repeat("{}\n", 40)) }, same, ErrCorrupt, "does not start"},
		"damaged header":        {func(b []byte) []byte { b[13] ^= 1; return b }, same, ErrCorrupt, "header's checksum"},
		"damaged vector":        {func(b []byte) []byte { b[headerSize+100] ^= 1; return b }, same, ErrCorrupt, "items' checksum"},
		"damaged link":          {func(b []byte) []byte { b[len(b)-10] ^= 1; return b }, same, ErrCorrupt, "items' checksum"},
		"link out of the graph": {func(b []byte) []byte { le.PutUint32(b[links0+4:], n+3); return reseal(b) }, same, ErrCorrupt, "links to item"},
		"newer format":          {func(b []byte) []byte { le.PutUint32(b[8:], FileVersion+1); return reseal(b) }, same, ErrMismatch, "format version"},
		"other vectors":         {nil, load{dim, InnerProduct, opts, nil, other}, ErrMismatch, "other vectors"},
		"fewer vectors":         {nil, load{dim, InnerProduct, opts, nil, vecs[:(n-1)*dim]}, ErrMismatch, "more than the"},
		"other dimension":       {nil, load{dim / 2, InnerProduct, opts, nil, vecs}, ErrMismatch, "dimension"},
		"other metric":          {nil, load{dim, Cosine, opts, nil, vecs}, ErrMismatch, "metric"},
		"other M":               {nil, load{dim, InnerProduct, Options{Seed: 5, M: 8}, nil, vecs}, ErrMismatch, "built with M"},
		"other efConstruction":  {nil, load{dim, InnerProduct, Options{Seed: 5, EfConstruction: 50}, nil, vecs}, ErrMismatch, "built with M"},
		"other seed":            {nil, load{dim, InnerProduct, Options{Seed: 6}, nil, vecs}, ErrMismatch, "built with M"},
		"other ids": {nil, load{dim, InnerProduct, opts, func() []uint32 {
			ids := make([]uint32, n)
			for i := range ids {
				ids[i] = uint32(i + 1)
			}
			return ids
		}(), vecs}, ErrMismatch, "has id 0, want 1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b := slices.Clone(data)
			if tc.edit != nil {
				b = tc.edit(b)
			}
			l := tc.load
			ix, err := Load(bytes.NewReader(b), l.dim, l.metric, l.opts, l.ids, l.vecs)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Load: error = %v, want %v saying %q", err, tc.want, tc.says)
			}
			if ix != nil {
				t.Errorf("Load returned an index with its error")
			}
		})
	}
	// The unedited file loads, with the caller's EfSearch, which is no part
	// of the graph: the cases above fail for their edit alone.
	ix, err := Load(bytes.NewReader(data), same.dim, same.metric, Options{Seed: 5, EfSearch: 64}, same.ids, same.vecs)
	if err != nil {
		t.Fatalf("Load of the unedited file: %v", err)
	}
	if ix.efS != 64 {
		t.Errorf("loaded index searches with ef %d by default, want the caller's 64", ix.efS)
	}
}
