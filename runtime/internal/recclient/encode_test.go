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

package recclient

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// decoded is an event as a strict server decodes it.
type decoded struct {
	User   string    `json:"user"`
	Item   string    `json:"item"`
	Author string    `json:"author"`
	Type   string    `json:"type"`
	Time   time.Time `json:"time"`
}

func decode(t *testing.T, body []byte) []decoded {
	t.Helper()
	var doc struct {
		Events []decoded `json:"events"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return doc.Events
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestEncoderWritesValidJSON(t *testing.T) {
	for name, e := range map[string]Event{
		"plain":        {User: "u1", Item: "i1", Type: "click", Time: t0},
		"follow":       {User: "u1", Author: "a1", Type: "follow", Time: t0.Add(time.Nanosecond)},
		"quotes":       {User: `u"1`, Item: `i\1`, Type: "like", Time: t0},
		"control":      {User: "u\x01\n", Item: "i", Type: "share", Time: t0},
		"unicode":      {User: "ü€😀", Item: "<i&>", Type: "impression", Time: t0},
		"zone and sub": {User: "u", Item: "i", Type: "click", Time: time.Date(2025, 3, 1, 1, 2, 3, 456789, time.FixedZone("x", 3600))},
	} {
		t.Run(name, func(t *testing.T) {
			var enc Encoder
			enc.Add(&e, MaxBodyBytes)
			enc.Add(&e, MaxBodyBytes)
			got := decode(t, enc.Body())
			want := decoded(e)
			if len(got) != 2 || got[0] != got[1] || got[0].User != want.User || got[0].Item != want.Item ||
				got[0].Author != want.Author || got[0].Type != want.Type || !got[0].Time.Equal(want.Time) {
				t.Errorf("decoded %+v, want twice %+v", got, want)
			}
		})
	}
}

func TestEncoderKeepsToTheByteBound(t *testing.T) {
	e := Event{User: "u1", Item: "i1", Type: "click", Time: t0}
	var enc Encoder
	enc.Reset()
	const maxBytes = 300
	for enc.Add(&e, maxBytes) {
	}
	body := enc.Body()
	if len(body) > maxBytes || enc.Len() < 2 || len(decode(t, body)) != enc.Len() {
		t.Errorf("%d events in %d bytes, want as many as fit in %d: %s", enc.Len(), len(body), maxBytes, body)
	}
	// The first event of a batch goes in whatever its size, for the
	// server to refuse with a reason.
	enc.Reset()
	if !enc.Add(&e, 10) || enc.Len() != 1 {
		t.Errorf("the first event was not added over the bound")
	}
}

func TestReason(t *testing.T) {
	for name, tc := range map[string]struct {
		body, want string
	}{
		"recserve's JSON error": {`{"error":"events[3]: bad type"}`, "events[3]: bad type"},
		"plain text":            {"  upstream down \n", "upstream down"},
		"empty":                 {"", "(empty body)"},
		"long text is cut":      {strings.Repeat("x", 600), strings.Repeat("x", 512) + "…"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := Reason([]byte(tc.body)); got != tc.want {
				t.Errorf("Reason(%q) = %q, want %q", tc.body, got, tc.want)
			}
		})
	}
}
