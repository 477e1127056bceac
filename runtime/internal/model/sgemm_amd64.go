//go:build amd64 && !purego

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

package model

import "golang.org/x/sys/cpu"

// useKernel reports whether layers run on the assembly kernel; it is set once
// from the CPU's features. Networks built while it is false use gonum (tests
// clear it to check one path against the other).
var useKernel = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// sgemmTile computes one kernelRows×panelWidth tile: row r of the tile is
// bias + Σ_k a[r][k]·b[k*panelWidth:], with ReLU if relu, stored at c[r].
// b is one packed panel of k rows, bias holds panelWidth values, each a[r]
// has k readable values (k ≥ 1) and each c[r] panelWidth writable ones.
// Rows may repeat: a tile shorter than kernelRows repeats its last row.
//
//go:noescape
func sgemmTile(k int, a *[kernelRows]*float32, b, bias *float32, c *[kernelRows]*float32, relu bool)
