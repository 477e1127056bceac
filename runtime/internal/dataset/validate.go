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

package dataset

import (
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// fieldError is a row-level problem before it is placed at a file and line.
type fieldError struct {
	field string // "" when the row as a whole is at fault
	msg   string
}

func errf(field, format string, args ...any) *fieldError {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

func checkID(field, id string) *fieldError {
	switch {
	case id == "":
		return errf(field, "must not be empty")
	case len(id) > MaxIDBytes:
		return errf(field, "longer than %d bytes", MaxIDBytes)
	case !utf8.ValidString(id):
		return errf(field, "not valid UTF-8")
	}
	return nil
}

func checkFeatures(fs []float32, dim int) *fieldError {
	if len(fs) != dim {
		return errf("features", "has %d values, the header declares feature_dim %d", len(fs), dim)
	}
	for i, f := range fs {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return errf("features", "value %d is not finite", i)
		}
	}
	return nil
}

func checkTime(t time.Time) *fieldError {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return errf("time", "year %d outside 1..9999", y)
	}
	return nil
}

// validateItem checks the rules of a catalog row except ID uniqueness.
func validateItem(it *Item, dim int) *fieldError {
	if e := checkID("id", it.ID); e != nil {
		return e
	}
	if e := checkID("author", it.Author); e != nil {
		return e
	}
	if e := checkTime(it.Created); e != nil {
		e.field = "created"
		return e
	}
	if e := checkFeatures(it.Features, dim); e != nil {
		return e
	}
	if !(it.IntegrityRisk >= 0 && it.IntegrityRisk <= 1) {
		return errf("integrity_risk", "%v outside [0, 1]", it.IntegrityRisk)
	}
	return nil
}

// validateEvent checks the rules of a log row except time order.
func validateEvent(ev *Event) *fieldError {
	if e := checkID("user", ev.User); e != nil {
		return e
	}
	if !ev.Type.Valid() {
		return errf("type", "invalid event type %d", uint8(ev.Type))
	}
	social := ev.Type == Follow || ev.Type == Unfollow
	if ev.Item != "" || !social {
		if e := checkID("item", ev.Item); e != nil {
			if social {
				return e
			}
			return errf("item", "required for %s events: %s", ev.Type, e.msg)
		}
	}
	if ev.Author != "" || social {
		if e := checkID("author", ev.Author); e != nil {
			if social {
				return errf("author", "required for %s events: %s", ev.Type, e.msg)
			}
			return e
		}
	}
	return checkTime(ev.Time)
}

func validateFollow(f *FollowEdge) *fieldError {
	if e := checkID("user", f.User); e != nil {
		return e
	}
	return checkID("author", f.Author)
}

func validateUser(u *User, dim int) *fieldError {
	if e := checkID("id", u.ID); e != nil {
		return e
	}
	return checkFeatures(u.Features, dim)
}

// parseFeatures parses a JSON array of numbers, already known to be valid
// JSON, into float32 values; every element must be a finite number that fits
// a float32.
func parseFeatures(b []byte, dst []float32) ([]float32, *fieldError) {
	b = trimSpace(b)
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return nil, errf("features", "must be an array of numbers")
	}
	b = trimSpace(b[1 : len(b)-1])
	if len(b) == 0 {
		return dst[:0], nil
	}
	out := dst[:0]
	for i := 0; ; i++ {
		j := 0
		for j < len(b) && b[j] != ',' {
			j++
		}
		tok := trimSpace(b[:j])
		f, err := strconv.ParseFloat(string(tok), 32)
		if err != nil || !isJSONNumber(tok) {
			if len(tok) > 32 {
				tok = append(tok[:32:32], "..."...)
			}
			return nil, errf("features", "value %d (%s) is not a float32 number", i, tok)
		}
		out = append(out, float32(f))
		if j == len(b) {
			return out, nil
		}
		b = b[j+1:]
	}
}

// isJSONNumber reports whether b starts like a JSON number; the document was
// already checked as JSON, so this only rejects other JSON values.
func isJSONNumber(b []byte) bool {
	return len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9'))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
