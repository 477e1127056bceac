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
