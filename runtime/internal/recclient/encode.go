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
	"time"
	"unicode/utf8"
)

// Event is one event as POST /v1/events takes it; Item and Author are
// left out of the document when empty.
type Event struct {
	User   string
	Item   string
	Author string
	Type   string
	Time   time.Time
}

// Encoder builds the body of one POST /v1/events in a reused buffer. Its
// zero value is ready to use.
type Encoder struct {
	buf []byte
	n   int // events in buf
}

// Reset empties the encoder for a new batch.
func (b *Encoder) Reset() {
	b.buf = append(b.buf[:0], `{"events":[`...)
	b.n = 0
}

// Len is the number of events added since the last Reset.
func (b *Encoder) Len() int { return b.n }

// Add appends e unless that would make the finished body longer than
// maxBytes; the first event of a batch is always added, so that an
// oversized event reaches the server and is refused there with a reason.
func (b *Encoder) Add(e *Event, maxBytes int) bool {
	if len(b.buf) == 0 {
		b.Reset()
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

// Body closes the document and returns it; the encoder must be Reset
// before it is reused.
func (b *Encoder) Body() []byte {
	b.buf = append(b.buf, ']', '}')
	return b.buf
}

func appendEvent(dst []byte, e *Event) []byte {
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
