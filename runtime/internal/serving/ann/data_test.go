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
	"math/rand/v2"
)

// clustered returns n dim-dimensional vectors drawn from a Gaussian mixture
// around centres random centres, the shape of trained item embeddings: each
// vector is its centre plus noise of a third of the centre's scale. Centres
// are chosen with a skew so that some clusters are much larger than others,
// as popular genres are. The same seed gives the same vectors.
func clustered(n, dim, centres int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	c := make([]float32, centres*dim)
	for i := range c {
		c[i] = float32(rng.NormFloat64())
	}
	return around(rng, c, n, dim)
}

// queries returns n query vectors drawn like user embeddings: near the same
// centres as the items of clustered(_, dim, centres, seed), but with fresh
// noise.
func queries(n, dim, centres int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	c := make([]float32, centres*dim)
	for i := range c {
		c[i] = float32(rng.NormFloat64())
	}
	q := rand.New(rand.NewPCG(seed, 0xa5e7))
	return around(q, c, n, dim)
}

func around(rng *rand.Rand, c []float32, n, dim int) []float32 {
	centres := len(c) / dim
	out := make([]float32, n*dim)
	for i := 0; i < n; i++ {
		// Square of a uniform: low-numbered centres are drawn more often.
		u := rng.Float64()
		j := int(u * u * float64(centres))
		for d := 0; d < dim; d++ {
			out[i*dim+d] = c[j*dim+d] + float32(rng.NormFloat64())/3
		}
	}
	return out
}

// recall returns the fraction of want's ids found in got.
func recall(got, want []Result) float64 {
	if len(want) == 0 {
		return 1
	}
	in := make(map[uint32]bool, len(want))
	for _, r := range want {
		in[r.ID] = true
	}
	hit := 0
	for _, r := range got {
		if in[r.ID] {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}
