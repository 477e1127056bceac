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

// Package ann is the approximate-nearest-neighbour index of recserve: an HNSW
// graph over item embeddings given in float32 and stored at half precision,
// scored by inner product or cosine with float32 queries.
//
// It is written here rather than taken from a library because retrieval needs
// an index that answers queries while new items are inserted in real time,
// scores float32 queries against half-precision vectors on the SIMD kernel,
// searches without allocating into caller-owned buffers, and builds a million
// items in parallel at load; no maintained Go library does all of that
// reliably.
//
// Inner product is not a distance, and a graph linked by it lets long
// vectors crowd out the neighbour lists of short ones. Links are therefore
// chosen after lifting every item onto a sphere by one extra coordinate,
// while queries keep scoring by plain inner product, so results are exact
// inner products with the stored vectors.
//
// Concurrency: Search, Add and Build may be called from any number of
// goroutines at once. Neighbour lists are read with atomic loads and written
// under a per-node mutex, so a search never waits for an insert; the only
// exclusive lock is taken when the storage slabs grow, which Build and
// Reserve avoid by sizing them once.
package ann
