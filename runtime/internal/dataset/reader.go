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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"runtime"
	"strings"
	"time"
)

// ReadOptions controls how a reader treats bad rows.
type ReadOptions struct {
	// Strict makes the first bad row fatal: the reader returns a *RowError
	// naming the file, the line and the field. Default false (lenient): bad
	// rows are skipped, counted in Report.Skipped and the first MaxErrors of
	// them kept in Report.Errors.
	Strict bool
	// MaxErrors is how many bad rows a lenient reader keeps. Default 10;
	// negative keeps none (they are still counted).
	MaxErrors int
	// MaxLineBytes is the longest line accepted. Default 16 MiB. A longer
	// line is fatal in both modes, since the rest of the file cannot be
	// trusted to be split where its writer meant.
	MaxLineBytes int
	// Workers is how many goroutines parse rows. Default GOMAXPROCS; 1
	// parses on the caller's goroutine. Rows, errors and the report come
	// out in file order, the same for every value; only the reading and
	// parsing of later rows run ahead of Next. When a reader that reads
	// ahead stops (Close, a fatal error), it waits for the read in
	// progress: give it files, and 1 for a stream whose reads may stall
	// (a download).
	Workers int
}

const (
	defaultMaxErrors    = 10
	defaultMaxLineBytes = 16 << 20
)

func (o ReadOptions) withDefaults() ReadOptions {
	if o.MaxErrors == 0 {
		o.MaxErrors = defaultMaxErrors
	}
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = defaultMaxLineBytes
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	return o
}

// RowError is a bad row, or a bad header, at a line of a file.
type RowError struct {
	// File is the name the reader was given (the path for Open* readers).
	File string
	// Line is 1-based; the header is line 1.
	Line int
	// Field is the JSON field at fault (a column name for MovieLens files),
	// or "" when the row as a whole is (malformed JSON, wrong column count).
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *RowError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: field %q: %s", e.File, e.Line, e.Field, e.Msg)
}

// Report summarises a read.
type Report struct {
	// Rows is the number of rows accepted (for MovieLens: ratings accepted).
	Rows int
	// Skipped is the number of bad rows skipped; always 0 in strict mode.
	Skipped int
	// Errors holds the first ReadOptions.MaxErrors skipped rows, in order.
	Errors []*RowError
}

// lineScanner splits a stream into lines, numbers them and keeps the record
// of bad rows. Blank lines are skipped (and counted as lines).
type lineScanner struct {
	name   string
	sc     *bufio.Scanner
	opts   ReadOptions
	line   int
	report Report
	err    error // sticky
}

func newLineScanner(r io.Reader, name string, opts ReadOptions) *lineScanner {
	opts = opts.withDefaults()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(64<<10, opts.MaxLineBytes)), opts.MaxLineBytes)
	return &lineScanner{name: name, sc: sc, opts: opts}
}

// next returns the next non-blank line, io.EOF at the end, or a fatal error.
func (s *lineScanner) next() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	for s.sc.Scan() {
		s.line++
		if b := trimSpace(s.sc.Bytes()); len(b) > 0 {
			return b, nil
		}
	}
	switch err := s.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		s.err = &RowError{File: s.name, Line: s.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", s.opts.MaxLineBytes)}
	case err != nil:
		s.err = fmt.Errorf("failed to read %s after line %d: %w", s.name, s.line, err)
	default:
		s.err = io.EOF
	}
	return nil, s.err
}

// bad records a bad row at the current line: in strict mode it returns the
// fatal *RowError (and remembers it), otherwise it counts the row and
// returns nil.
func (s *lineScanner) bad(fe *fieldError) error {
	err := s.record(s.line, fe)
	if err != nil {
		s.err = err
	}
	return err
}

// record is bad for the row at line, without remembering the error.
func (s *lineScanner) record(line int, fe *fieldError) error {
	re := &RowError{File: s.name, Line: line, Field: fe.field, Msg: fe.msg}
	if s.opts.Strict {
		return re
	}
	s.report.Skipped++
	if len(s.report.Errors) < s.opts.MaxErrors {
		s.report.Errors = append(s.report.Errors, re)
	}
	return nil
}

// fatal makes fe the reader's sticky error whatever the mode.
func (s *lineScanner) fatal(fe *fieldError) error {
	s.err = &RowError{File: s.name, Line: s.line, Field: fe.field, Msg: fe.msg}
	return s.err
}

// Reader streams the rows of one file. It is not safe for concurrent use.
type Reader[T any] struct {
	s      *lineScanner
	header Header
	format rowFormat[T]
	closer io.Closer
	// ahead parses on ReadOptions.Workers goroutines; nil until the first
	// Next of a reader with more than one.
	ahead *readAhead[T]
}

// rowFormat is how the rows of a kind of file are read.
type rowFormat[T any] struct {
	// parse turns a line into a row, judging it alone. It is safe for
	// concurrent use.
	parse func(line []byte) (T, *fieldError)
	// check, called in file order on each parsed row, judges it against
	// the rows before it (duplicates, order); nil when nothing does.
	check func(v *T) *fieldError
}

// Header returns the file's header line.
func (r *Reader[T]) Header() Header { return r.header }

// Next returns the next good row. It returns io.EOF after the last row, a
// *RowError for a bad row in strict mode or a line that is too long, and any
// other error for a failed read. After an error every call returns it again.
func (r *Reader[T]) Next() (T, error) {
	if r.s.opts.Workers > 1 {
		return r.nextAhead()
	}
	var zero T
	for {
		line, err := r.s.next()
		if err != nil {
			return zero, err
		}
		v, fe := r.format.parse(line)
		ok, err := r.take(r.s.line, &v, fe)
		if err != nil {
			r.s.err = err
			return zero, err
		}
		if ok {
			return v, nil
		}
	}
}

// take judges a parsed row, in file order: it runs the order-dependent
// checks, then counts the row as read or records it as bad at line. It
// reports whether the row is good, and returns a strict reader's error for
// a bad one.
func (r *Reader[T]) take(line int, v *T, fe *fieldError) (bool, error) {
	if fe == nil && r.format.check != nil {
		fe = r.format.check(v)
	}
	if fe == nil {
		r.s.report.Rows++
		return true, nil
	}
	return false, r.s.record(line, fe)
}

// All iterates the remaining good rows. A final pair carries the error, if
// any, that stopped it; a clean end yields no error.
func (r *Reader[T]) All() iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			v, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// ReadAll returns the remaining good rows.
func (r *Reader[T]) ReadAll() ([]T, error) {
	var out []T
	for v, err := range r.All() {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Report returns the summary so far; call it after the last Next.
func (r *Reader[T]) Report() Report { return r.s.report }

// Close stops the parsing goroutines and releases the file, if the reader
// opened one. Next returns an error after it.
func (r *Reader[T]) Close() error {
	switch {
	case r.ahead != nil:
		r.ahead.stop()
		if r.ahead.err == nil {
			r.ahead.err = errClosed
		}
	case r.s.err == nil:
		r.s.err = errClosed
	}
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// OpenCatalog opens a catalog file (gzip if path ends in ".gz") and reads its header.
func OpenCatalog(path string, opts ReadOptions) (*Reader[Item], error) {
	return openReader(path, opts, NewCatalogReader)
}

// OpenEvents opens an interaction log (gzip if path ends in ".gz") and reads its header.
func OpenEvents(path string, opts ReadOptions) (*Reader[Event], error) {
	return openReader(path, opts, NewEventReader)
}

// OpenFollows opens a follow graph (gzip if path ends in ".gz") and reads its header.
func OpenFollows(path string, opts ReadOptions) (*Reader[FollowEdge], error) {
	return openReader(path, opts, NewFollowReader)
}

// OpenUsers opens a user table (gzip if path ends in ".gz") and reads its header.
func OpenUsers(path string, opts ReadOptions) (*Reader[User], error) {
	return openReader(path, opts, NewUserReader)
}

// NewCatalogReader reads a catalog from r; name is used in errors.
func NewCatalogReader(r io.Reader, name string, opts ReadOptions) (*Reader[Item], error) {
	return newReader(r, name, opts, KindCatalog, catalogParser)
}

// NewEventReader reads an interaction log from r; name is used in errors.
func NewEventReader(r io.Reader, name string, opts ReadOptions) (*Reader[Event], error) {
	return newReader(r, name, opts, KindEvents, eventParser)
}

// NewFollowReader reads a follow graph from r; name is used in errors.
func NewFollowReader(r io.Reader, name string, opts ReadOptions) (*Reader[FollowEdge], error) {
	return newReader(r, name, opts, KindFollows, followParser)
}

// NewUserReader reads a user table from r; name is used in errors.
func NewUserReader(r io.Reader, name string, opts ReadOptions) (*Reader[User], error) {
	return newReader(r, name, opts, KindUsers, userParser)
}

func openReader[T any](path string, opts ReadOptions, mk func(io.Reader, string, ReadOptions) (*Reader[T], error)) (*Reader[T], error) {
	rd, closer, err := openFile(path)
	if err != nil {
		return nil, err
	}
	r, err := mk(rd, path, opts)
	if err != nil {
		_ = closer.Close()
		return nil, err
	}
	r.closer = closer
	return r, nil
}

// openFile opens path for reading, decompressing if it ends in ".gz".
func openFile(path string) (io.Reader, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to open %s: %w", path, err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, f, nil
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("failed to open %s as gzip: %w", path, err)
	}
	return zr, closers{zr, f}, nil
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func newReader[T any](r io.Reader, name string, opts ReadOptions, kind Kind, mk func(Header) rowFormat[T]) (*Reader[T], error) {
	s := newLineScanner(r, name, opts)
	line, err := s.next()
	if err == io.EOF {
		return nil, &RowError{File: name, Line: 1, Msg: fmt.Sprintf("missing header: the first line must be {\"format\":%q,\"version\":%d}", kind, Version)}
	}
	if err != nil {
		return nil, err
	}
	h, fe := parseHeader(line, kind)
	if fe != nil {
		return nil, s.fatal(fe)
	}
	return &Reader[T]{s: s, header: h, format: mk(h)}, nil
}

func parseHeader(line []byte, kind Kind) (Header, *fieldError) {
	var raw struct {
		Format     *string `json:"format"`
		Version    *int    `json:"version"`
		FeatureDim *int    `json:"feature_dim"`
	}
	if fe := unmarshalRow(line, &raw); fe != nil {
		fe.msg = "bad header: " + fe.msg
		return Header{}, fe
	}
	switch {
	case raw.Format == nil:
		return Header{}, errf("format", "missing: the first line must be a header with format %q", kind)
	case Kind(*raw.Format) != kind:
		return Header{}, errf("format", "is %q, want %q", *raw.Format, kind)
	case raw.Version == nil:
		return Header{}, errf("version", "missing")
	case *raw.Version != Version:
		return Header{}, errf("version", "unsupported version %d: this reader understands version %d", *raw.Version, Version)
	}
	h := Header{Format: kind, Version: Version}
	withFeatures := kind == KindCatalog || kind == KindUsers
	switch {
	case withFeatures && raw.FeatureDim == nil:
		return Header{}, errf("feature_dim", "missing: required for %s", kind)
	case withFeatures && (*raw.FeatureDim < 0 || *raw.FeatureDim > MaxFeatureDim):
		return Header{}, errf("feature_dim", "%d outside 0..%d", *raw.FeatureDim, MaxFeatureDim)
	case withFeatures:
		h.FeatureDim = *raw.FeatureDim
	case raw.FeatureDim != nil && *raw.FeatureDim != 0:
		return Header{}, errf("feature_dim", "not allowed in %s", kind)
	}
	return h, nil
}

// unmarshalRow decodes one JSON object, turning decoder errors into errors
// that name the field.
func unmarshalRow(line []byte, v any) *fieldError {
	if len(line) == 0 || line[0] != '{' {
		return errf("", "row must be a JSON object")
	}
	err := json.Unmarshal(line, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return errf("", "row must be a JSON object")
		}
		return errf(te.Field, "must be a JSON %s, not %s", jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errf("", "malformed JSON at byte %d: %v", se.Offset, se)
	}
	return errf("", "malformed JSON: %v", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice":
		return "array"
	case "ptr", "struct", "map":
		return "object"
	default:
		return "number"
	}
}

func requiredString(field string, p *string) (string, *fieldError) {
	if p == nil {
		return "", errf(field, "required")
	}
	return *p, nil
}

func parseTime(field string, p *string) (time.Time, *fieldError) {
	if p == nil {
		return time.Time{}, errf(field, "required")
	}
	t, err := time.Parse(time.RFC3339Nano, *p)
	if err != nil {
		return time.Time{}, errf(field, "%q is not an RFC 3339 time", truncate(*p))
	}
	return t, nil
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func catalogParser(h Header) rowFormat[Item] {
	seen := make(map[string]struct{})
	return rowFormat[Item]{parse: func(line []byte) (Item, *fieldError) {
		var raw struct {
			ID            *string         `json:"id"`
			Author        *string         `json:"author"`
			Created       *string         `json:"created"`
			Features      json.RawMessage `json:"features"`
			IntegrityRisk *float64        `json:"integrity_risk"`
		}
		if fe := unmarshalRow(line, &raw); fe != nil {
			return Item{}, fe
		}
		var it Item
		var fe *fieldError
		if it.ID, fe = requiredString("id", raw.ID); fe != nil {
			return Item{}, fe
		}
		if it.Author, fe = requiredString("author", raw.Author); fe != nil {
			return Item{}, fe
		}
		if it.Created, fe = parseTime("created", raw.Created); fe != nil {
			return Item{}, fe
		}
		if len(raw.Features) == 0 {
			return Item{}, errf("features", "required")
		}
		if it.Features, fe = parseFeatures(raw.Features, make([]float32, 0, h.FeatureDim)); fe != nil {
			return Item{}, fe
		}
		if raw.IntegrityRisk == nil {
			return Item{}, errf("integrity_risk", "required")
		}
		it.IntegrityRisk = *raw.IntegrityRisk
		if fe := validateItem(&it, h.FeatureDim); fe != nil {
			return Item{}, fe
		}
		return it, nil
	}, check: func(it *Item) *fieldError {
		if _, dup := seen[it.ID]; dup {
			return errf("id", "duplicate item %q", truncate(it.ID))
		}
		seen[it.ID] = struct{}{}
		return nil
	}}
}

func eventParser(Header) rowFormat[Event] {
	var last time.Time
	return rowFormat[Event]{parse: parseEventLine, check: func(ev *Event) *fieldError {
		if ev.Time.Before(last) {
			return errf("time", "%s is before the previous row's %s: the log must be time-ordered",
				ev.Time.Format(time.RFC3339Nano), last.Format(time.RFC3339Nano))
		}
		last = ev.Time
		return nil
	}}
}

// parseEventLine parses and validates one log row, order aside.
func parseEventLine(line []byte) (Event, *fieldError) {
	var raw struct {
		User   *string `json:"user"`
		Item   *string `json:"item"`
		Type   *string `json:"type"`
		Time   *string `json:"time"`
		Author *string `json:"author"`
	}
	if fe := unmarshalRow(line, &raw); fe != nil {
		return Event{}, fe
	}
	var ev Event
	var fe *fieldError
	if ev.User, fe = requiredString("user", raw.User); fe != nil {
		return Event{}, fe
	}
	if raw.Type == nil {
		return Event{}, errf("type", "required")
	}
	t, err := ParseEventType(*raw.Type)
	if err != nil {
		return Event{}, errf("type", "unknown event type %q", truncate(*raw.Type))
	}
	ev.Type = t
	if ev.Time, fe = parseTime("time", raw.Time); fe != nil {
		return Event{}, fe
	}
	if raw.Item != nil {
		ev.Item = *raw.Item
		if ev.Item == "" {
			return Event{}, errf("item", "must not be empty")
		}
	}
	if raw.Author != nil {
		ev.Author = *raw.Author
		if ev.Author == "" {
			return Event{}, errf("author", "must not be empty")
		}
	}
	if fe := validateEvent(&ev); fe != nil {
		return Event{}, fe
	}
	return ev, nil
}

func followParser(Header) rowFormat[FollowEdge] {
	return rowFormat[FollowEdge]{parse: func(line []byte) (FollowEdge, *fieldError) {
		var raw struct {
			User   *string `json:"user"`
			Author *string `json:"author"`
		}
		if fe := unmarshalRow(line, &raw); fe != nil {
			return FollowEdge{}, fe
		}
		var f FollowEdge
		var fe *fieldError
		if f.User, fe = requiredString("user", raw.User); fe != nil {
			return FollowEdge{}, fe
		}
		if f.Author, fe = requiredString("author", raw.Author); fe != nil {
			return FollowEdge{}, fe
		}
		if fe := validateFollow(&f); fe != nil {
			return FollowEdge{}, fe
		}
		return f, nil
	}}
}

func userParser(h Header) rowFormat[User] {
	seen := make(map[string]struct{})
	return rowFormat[User]{parse: func(line []byte) (User, *fieldError) {
		var raw struct {
			ID       *string         `json:"id"`
			Features json.RawMessage `json:"features"`
		}
		if fe := unmarshalRow(line, &raw); fe != nil {
			return User{}, fe
		}
		var u User
		var fe *fieldError
		if u.ID, fe = requiredString("id", raw.ID); fe != nil {
			return User{}, fe
		}
		if len(raw.Features) == 0 {
			return User{}, errf("features", "required")
		}
		if u.Features, fe = parseFeatures(raw.Features, make([]float32, 0, h.FeatureDim)); fe != nil {
			return User{}, fe
		}
		if fe := validateUser(&u, h.FeatureDim); fe != nil {
			return User{}, fe
		}
		return u, nil
	}, check: func(u *User) *fieldError {
		if _, dup := seen[u.ID]; dup {
			return errf("id", "duplicate user %q", truncate(u.ID))
		}
		seen[u.ID] = struct{}{}
		return nil
	}}
}
