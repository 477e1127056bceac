//go:build !amd64 || purego

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

// hasBF16 is false: there is no bfloat16 kernel for this platform.
const hasBF16 = false

func bf16Tile(int, *[kernelRows]*uint16, *uint16, *float32, *[kernelRows]*float32, bool) {
	panic("model: no bfloat16 kernel on this platform")
}

func toBF16x16(*uint16, *float32, int) {
	panic("model: no bfloat16 kernel on this platform")
}
