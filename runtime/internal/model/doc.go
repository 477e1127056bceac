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

// Package model defines the model artifact format of recpipeline and runs the
// batched forward pass of the funnel's networks.
//
// An artifact is a directory (or a .tar.gz of one) holding two files:
// manifest.json, which describes the architecture, the input feature layout,
// the heads and the version, and model.safetensors, which holds the weights.
// The manifest records the SHA-256 of the weights file; Load refuses an
// artifact whose checksum, shapes, activations, format version or weights
// (NaN, Inf) are wrong, with an error that names the problem and wraps
// ErrInvalid. FORMAT.md in this directory is the reference for writers.
//
// Three kinds of network are built from an artifact:
//
//   - MLP: a dense multi-layer perceptron, the building block of the others.
//   - TwoTower: a user tower and an item tower producing embeddings of the same
//     width; used for retrieval (user embedding as ANN query, item embeddings
//     as the index) and for the light first-stage ranker (dot product).
//   - MTML: a shared-bottom MLP followed by one sigmoid head per event type
//     (click, like, comment, see_less, ...), the second-stage ranker.
//
// The forward pass is batched across candidates: each layer is one
// matrix-matrix product of the batch×in activations by the in×out weights. On
// amd64 CPUs with AVX2 and FMA it runs on an assembly kernel over a copy of
// the weights packed when the network is built (sgemm.go); elsewhere, and with
// the purego build tag, on gonum's blas32.Gemm. MTML.Split gives a network
// for inputs whose columns are partly the same for every candidate (the
// user's features): their share of the first layer is computed once per call.
// With a reused Workspace, Forward, Predict and Score allocate nothing. A Workspace is not safe for concurrent use; keep one per goroutine
// (for example in a sync.Pool). Networks themselves are read-only after Load
// and safe for concurrent use.
package model
