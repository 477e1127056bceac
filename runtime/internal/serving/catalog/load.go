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

package catalog

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
)

// The file names looked for in a catalog directory, each also accepted with
// ".gz" appended.
const (
	CatalogFile = "catalog.jsonl"
	UsersFile   = "users.jsonl"
)

// DefaultMaxBytes is the default bound on a file fetched over HTTP, both as
// transferred and after decompression.
const DefaultMaxBytes = 4 << 30

// Options controls Load.
type Options struct {
	// Users is the location of the user table when it is not beside the
	// catalog: a path, file:// URL or http(s):// URL of a users.jsonl[.gz]
	// file. Default "": users.jsonl[.gz] in the catalog directory when the
	// catalog URI names a directory and the file exists; otherwise no user
	// table (UserFeatureDim 0).
	Users string
	// Client fetches http(s) URIs; requests are bound to Load's context.
	// Default http.DefaultClient.
	Client *http.Client
	// MaxBytes bounds each file fetched over HTTP, both as transferred and
	// after decompression. Default DefaultMaxBytes (4 GiB).
	MaxBytes int64
	// MaxLineBytes is the longest line accepted. Default 16 MiB, the dataset
	// readers' default.
	MaxLineBytes int
}

func (o Options) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return DefaultMaxBytes
}

// Load reads a catalog, and optionally a user table, from uri, which is one
// of
//
//   - a path or file:// URL of a directory holding catalog.jsonl or
//     catalog.jsonl.gz and, optionally, users.jsonl or users.jsonl.gz;
//   - a path or file:// URL of a catalog file itself (gzip when the name ends
//     in ".gz");
//   - an http:// or https:// URL of a catalog file (gzip when the URL's path
//     ends in ".gz").
//
// Options.Users names a user table elsewhere. Reading is strict: the first
// bad row fails the load with an error that wraps the *dataset.RowError
// naming the file and line. Load honours ctx's cancellation and deadline.
func Load(ctx context.Context, uri string, opts Options) (*Catalog, error) {
	c, err := load(ctx, uri, opts)
	if err != nil {
		return nil, fmt.Errorf("failed to load catalog from %q: %w", fetch.Redact(uri), err)
	}
	return c, nil
}

// isGzip reports whether the file's name says gzip.
func isGzip(loc fetch.Location) bool {
	if loc.URL != nil {
		return strings.HasSuffix(loc.URL.Path, ".gz")
	}
	return strings.HasSuffix(loc.Path, ".gz")
}

func load(ctx context.Context, uri string, opts Options) (*Catalog, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	items, users, err := resolve(uri, opts.Users != "")
	if err != nil {
		return nil, err
	}
	if opts.Users != "" {
		u, err := resolveFile(opts.Users)
		if err != nil {
			return nil, fmt.Errorf("failed to resolve user table %q: %w", fetch.Redact(opts.Users), err)
		}
		users = &u
	}
	var userRows []dataset.User
	userDim := 0
	if users != nil {
		userRows, userDim, err = readUsers(ctx, *users, opts)
		if err != nil {
			return nil, err
		}
	}
	return readCatalog(ctx, items, userRows, userDim, opts)
}

// resolve finds the catalog file named by uri and, for a directory unless
// skipUsers, the user table beside it.
func resolve(uri string, skipUsers bool) (fetch.Location, *fetch.Location, error) {
	loc, err := fetch.Parse(uri)
	if err != nil || loc.URL != nil {
		return loc, nil, err
	}
	fi, err := os.Stat(loc.Path)
	if err != nil {
		return fetch.Location{}, nil, err
	}
	if !fi.IsDir() {
		return loc, nil, nil
	}
	items, err := findFile(loc.Path, CatalogFile)
	if err != nil {
		return fetch.Location{}, nil, err
	}
	if items == "" {
		return fetch.Location{}, nil, fmt.Errorf("directory %s holds neither %s nor %s.gz", loc.Path, CatalogFile, CatalogFile)
	}
	if skipUsers {
		return fetch.Location{Path: items}, nil, nil
	}
	users, err := findFile(loc.Path, UsersFile)
	if err != nil || users == "" {
		return fetch.Location{Path: items}, nil, err
	}
	return fetch.Location{Path: items}, &fetch.Location{Path: users}, nil
}

// resolveFile parses the URI of a single file.
func resolveFile(uri string) (fetch.Location, error) {
	loc, err := fetch.Parse(uri)
	if err != nil || loc.URL != nil {
		return loc, err
	}
	fi, err := os.Stat(loc.Path)
	if err != nil {
		return fetch.Location{}, err
	}
	if fi.IsDir() {
		return fetch.Location{}, fmt.Errorf("%s is a directory, not a file", loc.Path)
	}
	return loc, nil
}

// findFile returns dir/name or dir/name.gz, whichever exists, "" if neither
// does, and an error if both do.
func findFile(dir, name string) (string, error) {
	var found []string
	for _, n := range []string{name, name + ".gz"} {
		p := filepath.Join(dir, n)
		switch _, err := os.Stat(p); {
		case err == nil:
			found = append(found, p)
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("directory %s holds both %s and %s.gz; keep one", dir, name, name)
}

// source is a file being read. It remembers the first read error: a line
// scanner hands the partial line before a failed read to the row parser,
// and the read error, not the "bad row" that follows from it, is the cause
// to report.
type source struct {
	r   io.Reader
	loc fetch.Location
	err error
}

func (s *source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

// cause returns the read error behind err, if reading failed.
func (s *source) cause(err error) error {
	if s.err != nil {
		return fmt.Errorf("failed to read %s: %w", s.loc, s.err)
	}
	return err
}

// open opens a file for reading, decompressed when its name says gzip. A
// remote file is bounded by MaxBytes as transferred and as decompressed.
func open(ctx context.Context, loc fetch.Location, opts Options) (*source, io.Closer, error) {
	raw, err := loc.Open(ctx, fetch.Options{Client: opts.Client, MaxBytes: opts.maxBytes()})
	if err != nil {
		return nil, nil, err
	}
	if !isGzip(loc) {
		return &source{r: raw, loc: loc}, raw, nil
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(raw, 1<<16))
	if err != nil {
		_ = raw.Close()
		return nil, nil, fmt.Errorf("failed to open %s as gzip: %w", loc, err)
	}
	var r io.Reader = zr
	if loc.URL != nil {
		r = fetch.LimitReader(zr, opts.maxBytes(), "decompressed")
	}
	return &source{r: r, loc: loc}, multiCloser{zr, raw}, nil
}

type multiCloser []io.Closer

func (cs multiCloser) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ctxCheckRows is how many rows are read between checks of the context.
const ctxCheckRows = 1024

// readOptions are the reader's options for loc. A local file is parsed on
// every CPU; a download on the caller's goroutine alone, since a reader
// that parses ahead waits, when it stops, for the read in progress, and a
// stalled download would hold it (see dataset.ReadOptions.Workers).
func readOptions(loc fetch.Location, opts Options) dataset.ReadOptions {
	ro := dataset.ReadOptions{Strict: true, MaxLineBytes: opts.MaxLineBytes}
	if loc.URL != nil {
		ro.Workers = 1
	}
	return ro
}

func readUsers(ctx context.Context, loc fetch.Location, opts Options) ([]dataset.User, int, error) {
	r, closer, err := open(ctx, loc, opts)
	if err != nil {
		return nil, 0, err
	}
	defer closer.Close()
	ur, err := dataset.NewUserReader(r, loc.String(), readOptions(loc, opts))
	if err != nil {
		return nil, 0, r.cause(err)
	}
	defer func() { _ = ur.Close() }() // before the file: it stops the reader's parsing goroutines
	var users []dataset.User
	for u, err := range ur.All() {
		if err != nil {
			return nil, 0, r.cause(err)
		}
		if len(users)%ctxCheckRows == 0 {
			if err := ctx.Err(); err != nil {
				return nil, 0, err
			}
		}
		users = append(users, u)
	}
	return users, ur.Header().FeatureDim, nil
}

func readCatalog(ctx context.Context, loc fetch.Location, users []dataset.User, userDim int, opts Options) (*Catalog, error) {
	r, closer, err := open(ctx, loc, opts)
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	cr, err := dataset.NewCatalogReader(r, loc.String(), readOptions(loc, opts))
	if err != nil {
		return nil, r.cause(err)
	}
	defer func() { _ = cr.Close() }() // before the file: it stops the reader's parsing goroutines
	c, err := newCatalog(cr.Header().FeatureDim, userDim, len(users), 0)
	if err != nil {
		return nil, err
	}
	for i := range users {
		if err := c.addUser(&users[i]); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for it, err := range cr.All() {
		if err != nil {
			return nil, r.cause(err)
		}
		if c.n.Load()%ctxCheckRows == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if _, err := c.addLocked(&it); err != nil {
			return nil, err
		}
	}
	return c, nil
}
