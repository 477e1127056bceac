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
