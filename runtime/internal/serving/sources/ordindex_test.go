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
	"math/rand/v2"
	"testing"
)

// TestOrdIndexMatchesAMap runs random puts and gets, through growth and
// resets (the generation wrapping around once), against a Go map.
func TestOrdIndexMatchesAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var x ordIndex
	for round := range 60 {
		if round == 30 {
			x.gen = ^uint32(0) // the next reset wraps
		}
		x.reset()
		want := map[uint32]int32{}
		n := rng.IntN(3000)
		for range n {
			// Keys from a small range repeat; from the whole range they
			// collide in the table's high bits.
			key := uint32(rng.IntN(4000))
			if rng.IntN(2) == 0 {
				key = rng.Uint32()
			}
			if rng.IntN(3) == 0 {
				got, ok := x.get(key)
				w, wok := want[key]
				if ok != wok || got != w {
					t.Fatalf("round %d: get(%d) = %d, %v; want %d, %v", round, key, got, ok, w, wok)
				}
				continue
			}
			v := rng.Int32()
			x.put(key, v)
			want[key] = v
		}
		if x.n != len(want) {
			t.Fatalf("round %d: holds %d items, want %d", round, x.n, len(want))
		}
		for key, w := range want {
			if got, ok := x.get(key); !ok || got != w {
				t.Fatalf("round %d: get(%d) = %d, %v; want %d", round, key, got, ok, w)
			}
		}
	}
}
