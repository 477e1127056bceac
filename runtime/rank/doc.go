// Package rank holds what the late funnel of recserve passes from stage to
// stage: the Candidate, the event Weights that turn the second-stage model's
// per-event probabilities into one value, the Ranker seam between stages, and
// TopK, the in-place selection that keeps the best candidates of a stage.
//
// Everything on the per-candidate path works on caller-owned slices and
// allocates nothing: per-head probabilities live in one batch buffer shared by
// all candidates of a request (Candidate.Probs is a window into it), Values
// fills a caller-provided slice, and TopK reorders the candidate slice itself.
package rank
