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

import "math"

// DescKey maps a score (not NaN) to an integer that is smaller the higher
// the score, so that sorting keys ascending (or by radix, a byte at a
// time) sorts scores best first: the float's bits made to order as the
// float does, inverted. -0 and +0 have one key.
func DescKey(score float32) uint32 {
	b := math.Float32bits(score + 0) // -0 as +0
	if b>>31 != 0 {
		return b // negative: a larger magnitude is a smaller score
	}
	return ^(b | 1<<31)
}
