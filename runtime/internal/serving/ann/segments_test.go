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
	"runtime"
	"testing"
	"unsafe"
)

// withSegments returns an empty index whose segments hold 1<<shift nodes.
func withSegments(dim int, metric Metric, opts Options, shift int) *Index {
	ix := New(dim, metric, opts)
	ix.segShift = shift
	return ix
}

// segBytes is the memory of one segment's fields.
func segBytes(sg *segment) uintptr {
	return uintptr(len(sg.vecs))*2 + uintptr(len(sg.aug))*4 + uintptr(len(sg.links0)+len(sg.upper)+len(sg.upperAt)+len(sg.ext))*4 +
		uintptr(len(sg.locks))*unsafe.Sizeof(sg.locks[0])
}

// TestSaveLoadAcrossSegments saves an index whose items span several
// segments, the last one partly filled, and loads the file into an index of
// the default segments and into one of other small segments: both search
// exactly as the saved one, and take new items as it does.
func TestSaveLoadAcrossSegments(t *testing.T) {
	const dim, n, added = 8, 5*64 + 17, 150
	vecs := clustered(n+added, dim, 12, 7)
	qs := queries(30, dim, 12, 7)
	opts := Options{M: 6, EfConstruction: 40, Seed: 3}
	orig := withSegments(dim, InnerProduct, opts, 6)
	if err := orig.Build(context.Background(), nil, vecs[:n*dim], 0); err != nil {
		t.Fatal(err)
	}
	if len(orig.segs) != 6 {
		t.Fatalf("%d items in %d segments of 64, want 6", n, len(orig.segs))
	}
	var buf bytes.Buffer
	if err := orig.Save(&buf); err != nil {
		t.Fatal(err)
	}
	for name, shift := range map[string]int{"default segments": defaultSegShift, "segments of 32": 5} {
		t.Run(name, func(t *testing.T) {
			ix, err := load(bytes.NewReader(buf.Bytes()), withSegments(dim, InnerProduct, opts, shift), nil, vecs[:n*dim])
			if err != nil {
				t.Fatal(err)
			}
			sameSearches(t, orig, ix, qs, dim)
			// Saved again, it writes the same bytes: the file does not
			// depend on the segments.
			var again bytes.Buffer
			if err := ix.Save(&again); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("the loaded index saves %d bytes unlike the %d it was loaded from", again.Len(), buf.Len())
			}
		})
	}
	// New items cross into new segments on both sides alike.
	a, err := load(bytes.NewReader(buf.Bytes()), withSegments(dim, InnerProduct, opts, 5), nil, vecs[:n*dim])
	if err != nil {
		t.Fatal(err)
	}
	for i := n; i < n+added; i++ {
		for _, x := range []*Index{orig, a} {
			if err := x.Add(uint32(i), vecs[i*dim:(i+1)*dim]); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameSearches(t, orig, a, qs, dim)
}

// TestFirstInsertDoesNotCopy checks that the first live insert into an
// index filled to its capacity, after a build or a load, leaves the stored
// nodes where they are and allocates one segment, not a copy of the index.
func TestFirstInsertDoesNotCopy(t *testing.T) {
	const dim, shift = 8, 9
	n := 2 << shift // two full segments
	vecs := clustered(n+1, dim, 8, 5)
	opts := Options{M: 6, EfConstruction: 40, Seed: 1}
	built := withSegments(dim, Cosine, opts, shift)
	if err := built.Build(context.Background(), nil, vecs[:n*dim], 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := built.Save(&buf); err != nil {
		t.Fatal(err)
	}
	loaded, err := load(bytes.NewReader(buf.Bytes()), withSegments(dim, Cosine, opts, shift), nil, vecs[:n*dim])
	if err != nil {
		t.Fatal(err)
	}
	for name, ix := range map[string]*Index{"after Build": built, "after Load": loaded} {
		t.Run(name, func(t *testing.T) {
			if ix.capacity != n {
				t.Fatalf("capacity %d for %d items, want exactly %d (else the insert need not grow)", ix.capacity, n, n)
			}
			index := segBytes(ix.segs[0]) + segBytes(ix.segs[1])
			firstVec, firstLinks := &ix.vec(0)[0], &ix.links(0, 0)[0]
			lastVec := &ix.vec(uint32(n - 1))[0]
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			if err := ix.Add(uint32(n), vecs[n*dim:]); err != nil {
				t.Fatal(err)
			}
			runtime.ReadMemStats(&after)
			allocated := uintptr(after.TotalAlloc - before.TotalAlloc)
			if len(ix.segs) != 3 {
				t.Fatalf("%d segments after the insert, want 3", len(ix.segs))
			}
			added := segBytes(ix.segs[2])
			if allocated > added+64<<10 {
				t.Errorf("the first insert allocated %d bytes: more than the new segment's %d (the index holds %d)", allocated, added, index)
			}
			if &ix.vec(0)[0] != firstVec || &ix.links(0, 0)[0] != firstLinks || &ix.vec(uint32(n - 1))[0] != lastVec {
				t.Errorf("the stored nodes moved: the insert copied the index")
			}
			res, err := ix.Search(vecs[n*dim:], 1, 0, nil)
			if err != nil || len(res) == 0 || res[0].ID != uint32(n) {
				t.Errorf("search for the inserted vector found %v (%v), want item %d first", res, err, n)
			}
		})
	}
}
