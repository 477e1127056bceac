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
	"math"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := map[string]struct {
		in, want []float32
	}{
		"scales to unit length": {[]float32{3, 0, 4}, []float32{0.6, 0, 0.8}},
		"zero stays zero":       {[]float32{0, 0}, []float32{0, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			normalize(tc.in)
			for i := range tc.in {
				if math.Abs(float64(tc.in[i]-tc.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", tc.in, tc.want)
				}
			}
		})
	}
}
