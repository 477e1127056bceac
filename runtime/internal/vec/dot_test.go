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

package vec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestDot checks every dot product implementation against float64
// arithmetic, for lengths that exercise each unrolled step and its tail and
// for slices that start off any alignment.
func TestDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]float32, 300)
	for i := range buf {
		buf[i] = float32(rng.NormFloat64())
	}
	impls := map[string]func(a, b []float32) float32{"Dot": Dot, "dotGeneric": dotGeneric}
	for name, f := range impls {
		for n := 0; n <= 100; n++ {
			for _, off := range []int{0, 1, 3} {
				a, b := buf[off:off+n], buf[150+2*off:150+2*off+n]
				var want, mag float64
				for i := range a {
					want += float64(a[i]) * float64(b[i])
					mag += math.Abs(float64(a[i]) * float64(b[i]))
				}
				got := float64(f(a, b))
				if math.Abs(got-want) > 1e-5*(mag+1) {
					t.Errorf("%s, length %d, offset %d: got %g, want %g", name, n, off, got, want)
				}
			}
		}
	}
}

// TestDotIgnoresTheTailOfB checks that b may be longer than a, as callers
// pass a row of a wider buffer, and that a shorter b panics.
func TestDotIgnoresTheTailOfB(t *testing.T) {
	a := []float32{1, 2, 3}
	if got := Dot(a, []float32{4, 5, 6, 100}); got != 32 {
		t.Errorf("Dot with a longer b = %g, want 32", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Dot with a shorter b did not panic")
		}
	}()
	Dot(a, []float32{4, 5})
}

var sink float32

// BenchmarkDot measures one inner product at the widths the serving path
// uses: the ranker's value (5 heads), the first stage's
// and the ANN index's (16, 64) and a wide one.
func BenchmarkDot(b *testing.B) {
	for _, n := range []int{5, 16, 64, 256} {
		x, y := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i], y[i] = float32(i), float32(n-i)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				sink += Dot(x, y)
			}
		})
	}
}
