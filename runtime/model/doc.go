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
// matrix-matrix product (blas32.Gemm) of the batch×in activations by the
// in×out weights. With a reused Workspace, Forward, Predict and Score allocate
// nothing. A Workspace is not safe for concurrent use; keep one per goroutine
// (for example in a sync.Pool). Networks themselves are read-only after Load
// and safe for concurrent use.
package model
