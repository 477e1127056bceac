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

// hasBF16 reports whether the CPU has the AVX-512 BF16 instructions of the
// bfloat16 kernel, with the operating system saving their registers.
var hasBF16 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BF16

// bf16Tile computes one kernelRows×bfPanel tile: row r of the tile is bias
// + Σ_p a[r]'s pair p · b's pair row p, with ReLU if relu, stored at c[r].
// b is one packed bfloat16 panel of kp pair rows (see packBF16), bias holds
// bfPanel values, each a[r] has 2·kp readable bfloat16 and each c[r]
// bfPanel writable float32. Rows may repeat.
//
//go:noescape
func bf16Tile(kp int, a *[kernelRows]*uint16, b *uint16, bias *float32, c *[kernelRows]*float32, relu bool)

// toBF16x16 rounds n float32 from src to bfloat16 at dst (see toBF16); n
// is a positive multiple of 16.
//
//go:noescape
func toBF16x16(dst *uint16, src *float32, n int)
