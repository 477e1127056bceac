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

// Package qualitytest holds what the tests of the tools that drive
// recserve from outside share (package quality, recbench): a fake recserve
// that records what it is posted, and small worlds written to disk.
package qualitytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/server"
)

// Event is an event as the fake server decoded it.
type Event struct {
	User   string    `json:"user"`
	Item   string    `json:"item"`
	Author string    `json:"author"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s item=%s author=%s at %s", e.User, e.Type, e.Item, e.Author, e.Time.Format(time.RFC3339Nano))
}

// Reply is what the fake answers a GET /v1/recommendations with: Items,
// served by experiment arm Arm when it is set, or, when Code is not 0, an
// error of that code with Reason, written as recserve writes its errors.
type Reply struct {
	Items  []server.Item
	Arm    string
	Code   int
	Reason string
}

// IDs is a Reply of the items ids, each by the author WriteCatalog gives
// it ("a-" + id).
func IDs(ids ...string) Reply {
	items := make([]server.Item, len(ids))
	for i, id := range ids {
		items[i] = server.Item{ID: id, Author: "a-" + id}
	}
	return Reply{Items: items}
}

// Config sets what the fake does beyond recording the events posted.
type Config struct {
	// Answer answers GET /v1/recommendations?user=&n= given the events
	// accepted so far, which it must not modify; nil leaves the route
	// out (404).
	Answer func(user string, n int, posted []Event) Reply
	// Refuse, when set, is asked about every batch of events before it is
	// accepted, batch being the number accepted before it: a code other
	// than 0 refuses the batch with reason.
	Refuse func(batch int, evs []Event) (code int, reason string)
	// Token, when set, is the bearer token POST /v1/events requires, as
	// recserve's events token: a batch without it answers 401.
	Token string
}

// Server imitates recserve's HTTP API. POST /v1/events decodes strictly
// and enforces recserve's limits (recclient.MaxEvents events and
// recclient.MaxBodyBytes bytes a POST), records every accepted batch in
// arrival order and answers 202 with the count; GET /v1/recommendations
// answers what Config.Answer says, encoded as server.Response.
type Server struct {
	*httptest.Server
	cfg Config

	mu      sync.Mutex
	events  []Event // accepted, in arrival order
	batches []int   // events per accepted batch
	sizes   []int   // body bytes per accepted batch
	asked   []string
}

// NewServer starts a fake recserve, closed when the test ends.
func NewServer(t testing.TB, cfg Config) *Server {
	s := &Server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
		if cfg.Token != "" && r.Header.Get("Authorization") != "Bearer "+cfg.Token {
			writeError(w, http.StatusUnauthorized, "POST /v1/events needs the pipeline's events token: Authorization: Bearer <token>")
			return
		}
		s.postEvents(w, r)
	})
	if cfg.Answer != nil {
		mux.HandleFunc("GET /v1/recommendations", s.recommend)
	}
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Events []Event `json:"events"`
	}
	cr := &countingReader{r: http.MaxBytesReader(w, r.Body, recclient.MaxBodyBytes)}
	dec := json.NewDecoder(cr)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "body is not an events document: "+err.Error())
		return
	}
	if len(body.Events) == 0 || len(body.Events) > recclient.MaxEvents {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("events: %d events", len(body.Events)))
		return
	}
	if s.cfg.Refuse != nil {
		s.mu.Lock()
		n := len(s.batches)
		s.mu.Unlock()
		if code, reason := s.cfg.Refuse(n, body.Events); code != 0 {
			writeError(w, code, reason)
			return
		}
	}
	s.mu.Lock()
	s.events = append(s.events, body.Events...)
	s.batches = append(s.batches, len(body.Events))
	s.sizes = append(s.sizes, cr.n)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]int{"accepted": len(body.Events)})
}

func (s *Server) recommend(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad n")
		return
	}
	s.mu.Lock()
	s.asked = append(s.asked, user)
	// Events are only appended: the accepted ones stay as they are.
	posted := s.events[:len(s.events):len(s.events)]
	s.mu.Unlock()
	reply := s.cfg.Answer(user, n, posted)
	if reply.Code != 0 {
		writeError(w, reply.Code, reply.Reason)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&server.Response{User: user, Revision: "r1", Arm: reply.Arm, Items: reply.Items})
}

// Events returns the events accepted so far, in arrival order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.events)
}

// Batches returns the batches accepted so far, in arrival order.
func (s *Server) Batches() [][]Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]Event, len(s.batches))
	rest := s.events
	for i, n := range s.batches {
		out[i], rest = slices.Clone(rest[:n]), rest[n:]
	}
	return out
}

// BodySizes returns the body bytes of the batches accepted so far.
func (s *Server) BodySizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

// Asked returns the users asked for so far, in arrival order.
func (s *Server) Asked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.asked)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

type countingReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
