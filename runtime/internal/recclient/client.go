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

// Package recclient drives a running recserve from outside, over its HTTP
// API, for the tools that measure it (recbench, the quality evaluation):
// it posts events to POST /v1/events in batches that keep each user's
// events in order, replays a world's follow graph, and reads the items of
// GET /v1/recommendations.
package recclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Limits of POST /v1/events that recserve enforces (server.Options).
const (
	// MaxEvents is the most events of one POST.
	MaxEvents = 10000
	// MaxBodyBytes is the most bytes of one POST's body.
	MaxBodyBytes = 4 << 20
)

// BaseURL checks the URL of a recserve, http(s)://host[:port] without a
// path, and returns it without a trailing slash. Its errors start with the
// URL quoted, for the caller to name where it came from.
func BaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q must be http(s)://host[:port]: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q must be http(s)://host[:port]", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must be http(s)://host[:port], without a query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// StatusError is a non-2xx answer of the server.
type StatusError struct {
	Code int
	// Reason is the server's explanation (see Reason).
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Reason)
}

// Reason extracts the server's reason from an error body: the "error"
// field of recserve's JSON errors, or the start of the text otherwise.
func Reason(body []byte) string {
	var doc struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error != "" {
		return doc.Error
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// PostEvents sends one finished batch of n events (an Encoder's Body) to
// eventsURL (base + "/v1/events"). It fails on a non-2xx answer, with a
// *StatusError carrying the server's reason, and when the server
// acknowledges a different number of events than were sent.
func PostEvents(ctx context.Context, client *http.Client, eventsURL string, body []byte, n int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, eventsURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to build the events request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to post %d events: %w", n, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, resp.Body) // lets the connection be reused
	if err != nil {
		return fmt.Errorf("failed to read the answer to %d events: %w", n, err)
	}
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode, Reason: Reason(answer)}
	}
	var ack struct {
		Accepted *int `json:"accepted"`
	}
	if json.Unmarshal(answer, &ack) == nil && ack.Accepted != nil && *ack.Accepted != n {
		return fmt.Errorf("server accepted %d of %d events", *ack.Accepted, n)
	}
	return nil
}

// Answer is what the tools read of GET /v1/recommendations' answer.
type Answer struct {
	// Revision is the config revision that served the list.
	Revision string `json:"configRevision"`
	// Arm is the experiment arm the user is in; empty when the config
	// runs no experiments.
	Arm string `json:"arm"`
	// Items is the list, best first.
	Items []AnswerItem `json:"items"`
	// Degraded names what the list went without (failed or late sources,
	// ranker stages passed over).
	Degraded []string `json:"degraded,omitempty"`
}

// AnswerItem is one item of an Answer.
type AnswerItem struct {
	ID     string `json:"id"`
	Author string `json:"author"`
}

// ErrBadAnswer marks a 200 answer of GET /v1/recommendations that is not
// a list.
var ErrBadAnswer = errors.New("the answer is not a recommendations list")

// Recommend returns GET /v1/recommendations for user, n items at most;
// base is recserve's URL without a path. A non-200 answer is a
// *StatusError; a 200 that is not a list wraps ErrBadAnswer.
func Recommend(ctx context.Context, client *http.Client, base, user string, n int) (Answer, error) {
	q := url.Values{"user": {user}, "n": {strconv.Itoa(n)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/recommendations?"+q.Encode(), http.NoBody)
	if err != nil {
		return Answer{}, fmt.Errorf("failed to build the request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Answer{}, fmt.Errorf("failed to read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, &StatusError{Code: resp.StatusCode, Reason: Reason(body)}
	}
	var a Answer
	if err := json.Unmarshal(body, &a); err != nil {
		return Answer{}, fmt.Errorf("%w: failed to decode it: %w", ErrBadAnswer, err)
	}
	if a.Items == nil {
		return Answer{}, fmt.Errorf("%w: it has no items list", ErrBadAnswer)
	}
	return a, nil
}

// Recommendations returns the item IDs of GET /v1/recommendations for
// user, n of them at most, as Recommend reads them.
func Recommendations(ctx context.Context, client *http.Client, base, user string, n int) ([]string, error) {
	a, err := Recommend(ctx, client, base, user, n)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(a.Items))
	for r, it := range a.Items {
		ids[r] = it.ID
	}
	return ids, nil
}

// WithBearer returns a copy of client whose requests carry token as their
// bearer token (Authorization: Bearer <token>), as POST /v1/events asks
// when the pipeline has an events token; client itself is unchanged. An
// empty token returns client.
func WithBearer(client *http.Client, token string) *http.Client {
	if token == "" {
		return client
	}
	c := *client
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = &bearerTransport{base: base, header: "Bearer " + token}
	return &c
}

// bearerTransport sets the Authorization header of every request.
type bearerTransport struct {
	base   http.RoundTripper
	header string
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the request it is given.
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", t.header)
	return t.base.RoundTrip(r)
}
