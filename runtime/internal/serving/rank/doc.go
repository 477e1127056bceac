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

// Package rank is the late funnel of recserve: the Candidate that passes
// from stage to stage, the Ranker seam between stages, the two rankers that
// run in process (First, the two-tower first stage; Second, the MTML second
// stage with its weighted value), the served two-tower model (Tower) and
// TopK, the in-place selection that keeps the best candidates of a stage.
//
// A ranker served by another process implements the same Ranker interface
// (package stageclient), so the engine runs one path whether a stage is
// local or remote.
//
// Everything on the per-candidate path works on reused slices and allocates
// nothing: per-head probabilities live in one batch buffer shared by all
// candidates of a request (Candidate.Probs is a window into it, held until
// the Request is released), Values fills a caller-provided slice, and TopK
// reorders the candidate slice itself.
package rank
