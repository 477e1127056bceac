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

package rank

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// TestVectorsKeepHalfPrecision appends embeddings in batches that cross
// chunk boundaries and checks that every item reads back, at half precision
// and widened, within the half-precision rounding of what was appended,
// that items past Len have none, and that Vector reuses dst's memory.
func TestVectorsKeepHalfPrecision(t *testing.T) {
	const dim = 5
	n := 2*vectorChunk + 37
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]float32, n*dim)
	for i := range rows {
		rows[i] = float32(rng.NormFloat64())
	}
	v := newVectors(dim)
	for lo := 0; lo < n; {
		hi := min(n, lo+1+rng.IntN(vectorChunk))
		v.append(rows[lo*dim : hi*dim])
		lo = hi
	}
	if v.Len() != n {
		t.Fatalf("Len = %d, want %d", v.Len(), n)
	}
	buf := make([]float32, 0, dim)
	for i := 0; i < n; i++ {
		want := rows[i*dim : (i+1)*dim]
		got := v.Vector(uint32(i), buf)
		if len(got) != dim || &got[0] != &buf[:1][0] {
			t.Fatalf("item %d: Vector gave %d floats, not in dst's memory", i, len(got))
		}
		h := v.Half(uint32(i))
		for k := range want {
			if d := math.Abs(float64(got[k] - want[k])); d > math.Abs(float64(want[k]))/2048+1e-7 {
				t.Fatalf("item %d, coordinate %d: %g, want %g within half precision", i, k, got[k], want[k])
			}
			if x := vec.DotHalf([]float32{1}, h[k:k+1]); x != got[k] {
				t.Fatalf("item %d, coordinate %d: Half widens to %g, Vector to %g", i, k, x, got[k])
			}
		}
	}
	if v.Half(uint32(n)) != nil || v.Vector(uint32(n), buf) != nil {
		t.Error("an item past Len has an embedding")
	}
}

// TestVectorsShare shares the chunks another holder has identically: those
// read from its memory afterwards, a chunk that differs in one bit and the
// partial last chunk keep their own, and appends after sharing still land.
func TestVectorsShare(t *testing.T) {
	const dim = 3
	n := 3*vectorChunk + 10
	rows := make([]float32, n*dim)
	for i := range rows {
		rows[i] = float32(i%1000) / 7
	}
	v := newVectors(dim)
	v.append(rows)
	other := make([]uint16, n*dim) // the same vectors in other memory
	vec.EncodeHalf(other, rows)
	other[vectorChunk*dim+5] ^= 1 // the second chunk differs in one bit
	var asked [][2]int
	holder := new(int)
	got := v.Share(func(from, count int) []uint16 {
		asked = append(asked, [2]int{from, count})
		return other[from*dim : (from+count)*dim]
	}, holder)
	if got != 2*vectorChunk {
		t.Fatalf("Share = %d items, want %d (chunks 0 and 2)", got, 2*vectorChunk)
	}
	if len(asked) != 3 || asked[2] != [2]int{2 * vectorChunk, vectorChunk} {
		t.Errorf("rows asked for %v, want the three whole chunks", asked)
	}
	for _, c := range []struct {
		item   uint32
		shared bool
	}{{0, true}, {vectorChunk - 1, true}, {vectorChunk, false}, {2 * vectorChunk, true}, {uint32(n - 1), false}} {
		h := v.Half(c.item)
		if isOther := &h[0] == &other[int(c.item)*dim]; isOther != c.shared {
			t.Errorf("item %d read from the shared memory: %v, want %v", c.item, isOther, c.shared)
		}
		want := make([]uint16, dim)
		vec.EncodeHalf(want, rows[int(c.item)*dim:(int(c.item)+1)*dim])
		if !slices.Equal(h, want) {
			t.Errorf("item %d = %v, want %v", c.item, h, want)
		}
	}
	if len(v.keep) != 1 || v.keep[0] != holder {
		t.Errorf("keep = %v, want the holder", v.keep)
	}
	v.append([]float32{1, 2, 3})
	if h := v.Vector(uint32(n), nil); !slices.Equal(h, []float32{1, 2, 3}) {
		t.Errorf("item appended after sharing = %v, want [1 2 3]", h)
	}
	if nothing := v.Share(func(int, int) []uint16 { return nil }, nil); nothing != 0 || len(v.keep) != 1 {
		t.Errorf("sharing with a holder of nothing: %d items, keep %v; want 0 and unchanged", nothing, v.keep)
	}
}
