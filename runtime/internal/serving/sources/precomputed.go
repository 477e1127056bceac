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

package sources

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
)

// DefaultPrecomputedMaxBytes bounds a precomputed lists file by default.
const DefaultPrecomputedMaxBytes = 256 << 20

// maxLineBytes bounds one line of a precomputed lists file.
const maxLineBytes = 4 << 20

// maxReportedLines is how many bad lines a ParseError details.
const maxReportedLines = 10

// ErrNotLoaded is returned by Precomputed.Fetch until a load succeeded.
var ErrNotLoaded = errors.New("precomputed lists not loaded")

// PrecomputedOptions configure a Precomputed source.
type PrecomputedOptions struct {
	// Client fetches http and https URIs. Default http.DefaultClient; the
	// request is bound to the context passed to Load.
	Client *http.Client
	// MaxBytes bounds the size of the file. Default
	// DefaultPrecomputedMaxBytes (256 MiB).
	MaxBytes int64
}

// Precomputed proposes lists computed offline per user (off-peak
// recommendations). The lists are read from a JSON Lines file, one user per
// line:
//
//	{"user": "u1", "items": ["i9", "i4", "i7"]}
//
// best first. Blank lines are skipped and fields other than user and items
// ignored. Item ids the catalog does not hold are dropped, as are repeats
// within a list. A user absent from the file gets no candidates.
//
// Load reads the file and swaps the lists in atomically; Fetch serves the
// last lists loaded while a reload runs or after one fails.
type Precomputed struct {
	uri   string
	items Items
	opts  PrecomputedOptions
	lists atomic.Pointer[precomputedLists]

	mu      sync.Mutex // serialises loads
	version string     // the local file's size and time at the last good load
}

type precomputedLists struct {
	spans map[string]span
	items []uint32
}

type span struct{ off, n uint32 }

// PrecomputedStats describe a load.
type PrecomputedStats struct {
	// Users is the number of lists loaded.
	Users int
	// Items is the number of items over all lists.
	Items int
	// Unknown is the number of item ids dropped because the catalog does
	// not hold them.
	Unknown int
}

// LineError is a bad line of a precomputed lists file.
type LineError struct {
	Line int // 1-based
	Err  error
}

func (e LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// ParseError reports the bad lines of a precomputed lists file.
type ParseError struct {
	// Lines are the first bad lines, at most 10 of them, in file order.
	Lines []LineError
	// Count is the number of bad lines.
	Count int
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad lines", e.Count)
	for i, l := range e.Lines {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(l.Error())
	}
	if e.Count > len(e.Lines) {
		b.WriteString("; …")
	}
	return b.String()
}

// NewPrecomputed returns the source of cfg, reading cfg.URI: a path, a
// file:// URL or an http(s):// URL. It serves nothing until Load succeeds.
func NewPrecomputed(cfg config.Source, items Items, opts PrecomputedOptions) (*Precomputed, error) {
	if cfg.URI == "" {
		return nil, fmt.Errorf("failed to create source %q: uri must be set", cfg.Name)
	}
	if opts.Client == nil {
		opts.Client = http.DefaultClient
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultPrecomputedMaxBytes
	}
	return &Precomputed{uri: cfg.URI, items: items, opts: opts}, nil
}

// Fetch implements Source. The score of the item at rank r of a list of n
// is (n−r)/n. Items the request excludes are passed over without taking
// the limit.
func (s *Precomputed) Fetch(ctx context.Context, req *Request, limit int, dst []Candidate) ([]Candidate, error) {
	l := s.lists.Load()
	if l == nil {
		return dst, ErrNotLoaded
	}
	sp, ok := l.spans[req.User]
	if !ok || limit <= 0 {
		return dst, nil
	}
	list := l.items[sp.off : sp.off+sp.n]
	n := float32(len(list))
	for r, it := range list {
		if limit == 0 {
			break
		}
		if req.Excludes(it) {
			continue // the list goes on past what the user has seen
		}
		dst = append(dst, Candidate{Item: it, Score: (n - float32(r)) / n})
		limit--
	}
	return dst, nil
}

// Load reads the file and, if it parses, replaces the lists served. A file
// with any bad line is refused as a whole, with a *ParseError naming the
// lines, so that a corrupt or truncated file never replaces good lists.
func (s *Precomputed) Load(ctx context.Context) (PrecomputedStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load(ctx, s.localVersion())
}

// Refresh loads the file again if it may have changed since the last good
// load: a local file whose size or modification time differs, or any
// remote one (no cheaper check is made of a URL). It reports whether the
// lists were replaced; on an error the lists loaded before keep serving.
func (s *Precomputed) Refresh(ctx context.Context) (bool, PrecomputedStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.localVersion()
	if v != "" && v == s.version && s.lists.Load() != nil {
		return false, PrecomputedStats{}, nil
	}
	st, err := s.load(ctx, v)
	return err == nil, st, err
}

// URI is where the lists are read from.
func (s *Precomputed) URI() string { return s.uri }

// localVersion identifies the content of a local file by its size and
// modification time; "" for a remote file or one that cannot be read.
func (s *Precomputed) localVersion() string {
	loc, err := fetch.Parse(s.uri)
	if err != nil || loc.URL != nil {
		return ""
	}
	fi, err := os.Stat(loc.Path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d@%d", fi.Size(), fi.ModTime().UnixNano())
}

func (s *Precomputed) load(ctx context.Context, version string) (PrecomputedStats, error) {
	rc, err := fetch.Open(ctx, s.uri, fetch.Options{Client: s.opts.Client, MaxBytes: s.opts.MaxBytes, LimitLocal: true})
	if err != nil {
		return PrecomputedStats{}, fmt.Errorf("failed to load precomputed lists from %q: %w", fetch.Redact(s.uri), err)
	}
	defer rc.Close()
	l, st, err := parsePrecomputed(rc, s.items)
	if err != nil {
		return st, fmt.Errorf("failed to load precomputed lists from %q: %w", fetch.Redact(s.uri), err)
	}
	s.lists.Store(l)
	s.version = version
	return st, nil
}

type precomputedLine struct {
	User  *string  `json:"user"`
	Items []string `json:"items"`
}

// parsePrecomputed reads a precomputed lists file.
func parsePrecomputed(r io.Reader, items Items) (*precomputedLists, PrecomputedStats, error) {
	var (
		st    PrecomputedStats
		perr  ParseError
		first = map[string]int{} // user -> line
		last  = map[uint32]int{} // item -> the last line listing it
		l     = &precomputedLists{spans: map[string]span{}}
	)
	bad := func(line int, err error) {
		perr.Count++
		if len(perr.Lines) < maxReportedLines {
			perr.Lines = append(perr.Lines, LineError{Line: line, Err: err})
		}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var pl precomputedLine
		if err := json.Unmarshal(b, &pl); err != nil {
			bad(line, fmt.Errorf("not a JSON object of user and items: %w", err))
			continue
		}
		switch {
		case pl.User == nil || *pl.User == "":
			bad(line, errors.New(`"user" must be a non-empty string`))
			continue
		case pl.Items == nil:
			bad(line, errors.New(`"items" must be a list of item ids`))
			continue
		}
		user := *pl.User
		if prev, dup := first[user]; dup {
			bad(line, fmt.Errorf("user %q is already listed on line %d", user, prev))
			continue
		}
		first[user] = line
		off := len(l.items)
		for _, id := range pl.Items {
			ord, ok := items.Ordinal(id)
			if !ok {
				st.Unknown++
				continue
			}
			if last[ord] == line {
				continue
			}
			last[ord] = line
			l.items = append(l.items, ord)
		}
		l.spans[user] = span{off: uint32(off), n: uint32(len(l.items) - off)}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, st, fmt.Errorf("line %d: longer than %d bytes", line+1, maxLineBytes)
		}
		return nil, st, fmt.Errorf("failed to read after line %d: %w", line, err)
	}
	if perr.Count > 0 {
		return nil, st, &perr
	}
	st.Users, st.Items = len(l.spans), len(l.items)
	return l, st, nil
}
