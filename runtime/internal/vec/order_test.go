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
	"math"
	"testing"
)

// TestDescKeyOrdersScoresBestFirst: a score's key is smaller exactly when
// the score is higher, over signs, zeros and infinities.
func TestDescKeyOrdersScoresBestFirst(t *testing.T) {
	scores := []float32{float32(math.Inf(1)), 1, 0.75, 0.5, 1e-30, 0, -1e-30, -0.5, -2, float32(math.Inf(-1))}
	for i, a := range scores {
		for j, b := range scores {
			if got, want := DescKey(a) < DescKey(b), i < j; got != want {
				t.Errorf("DescKey(%g) < DescKey(%g) = %v, want %v", a, b, got, want)
			}
		}
	}
	if negZero := float32(math.Copysign(0, -1)); DescKey(negZero) != DescKey(0) {
		t.Errorf("-0 and +0 have keys %#x and %#x, want equal", DescKey(negZero), DescKey(0))
	}
}
