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

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of POST /v1/events that recserve enforces (server.Options).
const (
	serverMaxEvents    = 10000
	serverMaxBodyBytes = 4 << 20
)

// newClient returns a client for many concurrent requests to one host:
// conns idle connections are kept so that a closed loop of conns workers
// never dials again, and every request is bounded by timeout.
func newClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		// The target is the benchmark's own server; never go through a proxy.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// recserve does not compress; asking for gzip would only cost.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// baseURL checks the -url flag and returns it without a trailing slash.
func baseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("failed to parse -url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("-url %q must be http(s)://host[:port]", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("-url %q must not carry a query or fragment", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// wireEvent is one event as POST /v1/events takes it.
type wireEvent struct {
	User   string
	Item   string
	Author string
	Type   string
	Time   time.Time
}

// batchEncoder builds the body of one POST /v1/events in a reused buffer.
type batchEncoder struct {
	buf []byte
	n   int // events in buf
}

func (b *batchEncoder) reset() {
	b.buf = append(b.buf[:0], `{"events":[`...)
	b.n = 0
}

// add appends e unless that would make the finished body longer than
// maxBytes; the first event of a batch is always added, so that an
// oversized event reaches the server and is refused there with a reason.
func (b *batchEncoder) add(e *wireEvent, maxBytes int) bool {
	if len(b.buf) == 0 {
		b.reset()
	}
	mark := len(b.buf)
	if b.n > 0 {
		b.buf = append(b.buf, ',')
	}
	b.buf = appendEvent(b.buf, e)
	if b.n > 0 && len(b.buf)+len("]}") > maxBytes {
		b.buf = b.buf[:mark]
		return false
	}
	b.n++
	return true
}

// body closes the document and returns it; the encoder must be reset
// before it is reused.
func (b *batchEncoder) body() []byte {
	b.buf = append(b.buf, ']', '}')
	return b.buf
}

func appendEvent(dst []byte, e *wireEvent) []byte {
	dst = append(dst, `{"user":`...)
	dst = appendJSONString(dst, e.User)
	if e.Item != "" {
		dst = append(dst, `,"item":`...)
		dst = appendJSONString(dst, e.Item)
	}
	if e.Author != "" {
		dst = append(dst, `,"author":`...)
		dst = appendJSONString(dst, e.Author)
	}
	dst = append(dst, `,"type":`...)
	dst = appendJSONString(dst, e.Type)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"', '}')
}

// appendJSONString appends s as a JSON string. IDs are plain ASCII in
// practice and take the fast path; anything else is escaped by
// encoding/json so that both sides agree on every byte.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(dst, q...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// statusError is a non-2xx answer of the server.
type statusError struct {
	Code   int
	Reason string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Code, http.StatusText(e.Code), e.Reason)
}

// reasonOf extracts the server's reason from an error body: the "error"
// field of recserve's JSON errors, or the start of the text otherwise.
func reasonOf(body []byte) string {
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

// postEvents sends one finished batch of n events to eventsURL
// (base + "/v1/events"). It fails on a non-2xx answer (a *statusError with
// the server's reason) and when the server acknowledges a different number
// of events than were sent.
func postEvents(ctx context.Context, client *http.Client, eventsURL string, body []byte, n int) error {
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
		return &statusError{Code: resp.StatusCode, Reason: reasonOf(answer)}
	}
	var ack struct {
		Accepted *int `json:"accepted"`
	}
	if json.Unmarshal(answer, &ack) == nil && ack.Accepted != nil && *ack.Accepted != n {
		return fmt.Errorf("server accepted %d of %d events", *ack.Accepted, n)
	}
	return nil
}

// userShard maps a user to one of n shards (FNV-1a), so that all of a
// user's events go through the same ordered sender.
func userShard(user string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// formatRate renders a per-second figure for the reports.
func formatRate(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
