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
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Writer writes the rows of one file, header first. Every row is validated
// by the rules a reader applies, so what a Writer accepts reads back. It is
// not safe for concurrent use.
type Writer[T any] struct {
	name   string
	bw     *bufio.Writer
	closer io.Closer // the gzip stream and the file, or nil
	encode func(dst []byte, v *T) ([]byte, *fieldError)
	buf    []byte
	rows   int
	err    error // sticky
}

// CreateCatalog creates a catalog file (gzip if path ends in ".gz") whose
// rows carry featureDim features.
func CreateCatalog(path string, featureDim int) (*Writer[Item], error) {
	return createWriter(path, func(w io.Writer) (*Writer[Item], error) { return NewCatalogWriter(w, featureDim) })
}

// CreateEvents creates an interaction log (gzip if path ends in ".gz").
func CreateEvents(path string) (*Writer[Event], error) {
	return createWriter(path, NewEventWriter)
}

// CreateFollows creates a follow graph file (gzip if path ends in ".gz").
func CreateFollows(path string) (*Writer[FollowEdge], error) {
	return createWriter(path, NewFollowWriter)
}

// CreateUsers creates a user table (gzip if path ends in ".gz") whose rows
// carry featureDim features.
func CreateUsers(path string, featureDim int) (*Writer[User], error) {
	return createWriter(path, func(w io.Writer) (*Writer[User], error) { return NewUserWriter(w, featureDim) })
}

// NewCatalogWriter writes a catalog to w.
func NewCatalogWriter(w io.Writer, featureDim int) (*Writer[Item], error) {
	if featureDim < 0 || featureDim > MaxFeatureDim {
		return nil, fmt.Errorf("feature dimension %d outside 0..%d", featureDim, MaxFeatureDim)
	}
	seen := make(map[string]struct{})
	return newWriter(w, Header{Format: KindCatalog, Version: Version, FeatureDim: featureDim}, func(b []byte, it *Item) ([]byte, *fieldError) {
		if fe := validateItem(it, featureDim); fe != nil {
			return b, fe
		}
		if _, dup := seen[it.ID]; dup {
			return b, errf("id", "duplicate item %q", truncate(it.ID))
		}
		seen[it.ID] = struct{}{}
		b = append(b, `{"id":`...)
		b = appendString(b, it.ID)
		b = append(b, `,"author":`...)
		b = appendString(b, it.Author)
		b = append(b, `,"created":`...)
		b = appendTime(b, it.Created)
		b = append(b, `,"features":`...)
		b = appendFeatures(b, it.Features)
		b = append(b, `,"integrity_risk":`...)
		b = strconv.AppendFloat(b, it.IntegrityRisk, 'g', -1, 64)
		return append(b, '}', '\n'), nil
	})
}

// NewEventWriter writes an interaction log to w. Rows must come in time
// order (equal times allowed).
func NewEventWriter(w io.Writer) (*Writer[Event], error) {
	var last time.Time
	return newWriter(w, Header{Format: KindEvents, Version: Version}, func(b []byte, ev *Event) ([]byte, *fieldError) {
		if fe := validateEvent(ev); fe != nil {
			return b, fe
		}
		if ev.Time.Before(last) {
			return b, errf("time", "%s is before the previous row's %s: the log must be time-ordered",
				ev.Time.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
		}
		last = ev.Time
		return AppendEvent(b, ev), nil
	})
}

// AppendEvent appends the JSON line of ev, newline included, to dst without
// validating it.
func AppendEvent(dst []byte, ev *Event) []byte {
	dst = append(dst, `{"user":`...)
	dst = appendString(dst, ev.User)
	if ev.Item != "" {
		dst = append(dst, `,"item":`...)
		dst = appendString(dst, ev.Item)
	}
	dst = append(dst, `,"type":"`...)
	dst = append(dst, ev.Type.String()...)
	dst = append(dst, `","time":`...)
	dst = appendTime(dst, ev.Time)
	if ev.Author != "" {
		dst = append(dst, `,"author":`...)
		dst = appendString(dst, ev.Author)
	}
	return append(dst, '}', '\n')
}

// NewFollowWriter writes a follow graph to w.
func NewFollowWriter(w io.Writer) (*Writer[FollowEdge], error) {
	return newWriter(w, Header{Format: KindFollows, Version: Version}, func(b []byte, f *FollowEdge) ([]byte, *fieldError) {
		if fe := validateFollow(f); fe != nil {
			return b, fe
		}
		b = append(b, `{"user":`...)
		b = appendString(b, f.User)
		b = append(b, `,"author":`...)
		b = appendString(b, f.Author)
		return append(b, '}', '\n'), nil
	})
}

// NewUserWriter writes a user table to w.
func NewUserWriter(w io.Writer, featureDim int) (*Writer[User], error) {
	if featureDim < 0 || featureDim > MaxFeatureDim {
		return nil, fmt.Errorf("feature dimension %d outside 0..%d", featureDim, MaxFeatureDim)
	}
	seen := make(map[string]struct{})
	return newWriter(w, Header{Format: KindUsers, Version: Version, FeatureDim: featureDim}, func(b []byte, u *User) ([]byte, *fieldError) {
		if fe := validateUser(u, featureDim); fe != nil {
			return b, fe
		}
		if _, dup := seen[u.ID]; dup {
			return b, errf("id", "duplicate user %q", truncate(u.ID))
		}
		seen[u.ID] = struct{}{}
		b = append(b, `{"id":`...)
		b = appendString(b, u.ID)
		b = append(b, `,"features":`...)
		b = appendFeatures(b, u.Features)
		return append(b, '}', '\n'), nil
	})
}

func createWriter[T any](path string, mk func(io.Writer) (*Writer[T], error)) (*Writer[T], error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("failed to create %s: %w", path, err)
	}
	var out io.Writer = f
	var c io.Closer = f
	if strings.HasSuffix(path, ".gz") {
		zw := gzip.NewWriter(f)
		out, c = zw, closers{zw, f}
	}
	w, err := mk(out)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	w.name, w.closer = path, c
	return w, nil
}

func newWriter[T any](w io.Writer, h Header, encode func([]byte, *T) ([]byte, *fieldError)) (*Writer[T], error) {
	wr := &Writer[T]{name: string(h.Format), bw: bufio.NewWriterSize(w, 1<<16), encode: encode}
	b := append([]byte(nil), `{"format":"`...)
	b = append(b, h.Format...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, int64(h.Version), 10)
	if h.Format == KindCatalog || h.Format == KindUsers {
		b = append(b, `,"feature_dim":`...)
		b = strconv.AppendInt(b, int64(h.FeatureDim), 10)
	}
	b = append(b, '}', '\n')
	if _, err := wr.bw.Write(b); err != nil {
		return nil, fmt.Errorf("failed to write header: %w", err)
	}
	return wr, nil
}

// Write validates and writes one row. A row that breaks a rule returns a
// *RowError whose Line is the line it would have had; nothing is written and
// the writer stays usable. A failed write is sticky.
func (w *Writer[T]) Write(v T) error {
	if w.err != nil {
		return w.err
	}
	b, fe := w.encode(w.buf[:0], &v)
	w.buf = b
	if fe != nil {
		return &RowError{File: w.name, Line: w.rows + 2, Field: fe.field, Msg: fe.msg}
	}
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("failed to write %s: %w", w.name, err)
		return w.err
	}
	w.rows++
	return nil
}

// Rows returns the number of rows written.
func (w *Writer[T]) Rows() int { return w.rows }

// Flush writes buffered rows to the underlying writer.
func (w *Writer[T]) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("failed to write %s: %w", w.name, err)
	}
	return w.err
}

// Close flushes and, for Create* writers, closes the gzip stream and the
// file. Writers made with New* leave the io.Writer open.
func (w *Writer[T]) Close() error {
	err := w.Flush()
	if w.closer != nil {
		if cerr := w.closer.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("failed to close %s: %w", w.name, cerr)
		}
		w.closer = nil
	}
	return err
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendFeatures(b []byte, fs []float32) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. IDs are validated as UTF-8
// before they get here.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == '\u2028' || r == '\u2029' {
				b = append(b, s[start:i]...)
				b = append(b, `\u202`...)
				b = append(b, hexDigits[r&0xf])
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
