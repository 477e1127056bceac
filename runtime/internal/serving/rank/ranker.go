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

package rank

import (
	"context"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/features"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Ranker is the seam between funnel stages. Rank scores cands for the
// request's user and returns the best keep of them, best first, in cands'
// storage: Value is the stage's score (and Probs the second stage's
// per-head probabilities, in the order of the returned head names; nil
// names for a ranker without heads). On an error cands is unchanged, so
// the caller may go on with the previous stage's order. Rank honours ctx's
// deadline.
type Ranker interface {
	Rank(ctx context.Context, req *Request, cands []Candidate, keep int) ([]Candidate, []string, error)
}

// Request is the user a request ranks for: the state the frontend read once
// (sent along to a ranker served by another process) and, built from it on
// first use, the feature context the models read. A Request belongs to one
// request; Release returns the buffers the rankers held for it (Probs point
// into them) once the response is built.
type Request struct {
	// State is the user's state; it is read-only for rankers.
	State *store.UserState
	// Arm is the experiment arm the user is served, sent along to a ranker
	// served by another process; empty without experiments.
	Arm string
	// Revision is the config revision the request is served with. A ranker
	// served by another process reports through Answered the revision it
	// ranked with: while a new config propagates, a stage may rank with
	// another, which knows other arms or none.
	Revision string

	stale []string

	cat  *catalog.Catalog
	user *features.UserContext
	held []func()
}

// NewRequest returns the request of state, whose features are looked up in
// cat.
func NewRequest(state *store.UserState, cat *catalog.Catalog) *Request {
	return &Request{State: state, cat: cat}
}

// User returns the user's feature context, computed on first use.
func (r *Request) User() *features.UserContext {
	if r.user == nil {
		s := r.State
		r.user = features.PooledUserContext(s.User, s.Now, r.cat, s.Engagements, s.Follows)
	}
	return r.user
}

// Answered records that stage ranked the request with config revision.
func (r *Request) Answered(stage, revision string) {
	if revision != r.Revision {
		r.stale = append(r.stale, stage)
	}
}

// Stale names the stages that ranked the request with another config
// revision than Revision.
func (r *Request) Stale() []string { return r.stale }

// hold runs release when the request is released.
func (r *Request) hold(release func()) { r.held = append(r.held, release) }

// Release returns what the rankers held for the request, and its feature
// context (User). Neither candidates' Probs nor the context may be read
// after it.
func (r *Request) Release() {
	for _, f := range r.held {
		f()
	}
	r.held = nil
	if r.user != nil {
		r.user.Release()
		r.user = nil
	}
}
