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

package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// Location is where an input is read from: a local path or an http(s) URL.
type Location struct {
	// Path is the local file or directory, when URL is nil.
	Path string
	// URL is the remote file.
	URL *url.URL
}

// Parse resolves uri, which is a plain path, a file:// URL of a local file
// (host empty or localhost) or an http:// or https:// URL. It does not look
// at the file.
func Parse(uri string) (Location, error) {
	if uri == "" {
		return Location{}, errors.New("empty URI")
	}
	if !strings.Contains(uri, "://") {
		return Location{Path: uri}, nil
	}
	u, err := url.Parse(uri)
	if err != nil {
		return Location{}, fmt.Errorf("failed to parse URI: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("file URI names host %q; only local files are supported", u.Host)
		}
		if u.Path == "" {
			return Location{}, errors.New("file URI has no path")
		}
		return Location{Path: u.Path}, nil
	case "http", "https":
		return Location{URL: u}, nil
	}
	return Location{}, fmt.Errorf("unsupported scheme %q (want a path, file://, http:// or https://)", u.Scheme)
}

// String is the path, or the URL with its password redacted.
func (l Location) String() string {
	if l.URL != nil {
		return l.URL.Redacted()
	}
	return l.Path
}

// Options controls Open.
type Options struct {
	// Client fetches http and https URLs; the request is bound to Open's
	// context. Default http.DefaultClient.
	Client *http.Client
	// MaxBytes bounds a remote file: a declared length over it is refused
	// and the body fails to read past it (ErrTooLarge). Required: it must be
	// positive.
	MaxBytes int64
	// LimitLocal applies MaxBytes to a local file too: one larger is
	// refused and reading fails past it. Default false: a local file is
	// read whole.
	LimitLocal bool
}

// Open parses uri (see Parse) and opens the file it names (see
// Location.Open).
func Open(ctx context.Context, uri string, opts Options) (io.ReadCloser, error) {
	loc, err := Parse(uri)
	if err != nil {
		return nil, err
	}
	return loc.Open(ctx, opts)
}

// Open opens the file at l for reading: a local file as it is, a remote
// one with a GET (see Get) bound to ctx. The caller closes it.
func (l Location) Open(ctx context.Context, opts Options) (io.ReadCloser, error) {
	if l.URL != nil {
		return Get(ctx, opts.Client, l.URL, opts.MaxBytes)
	}
	if l.Path == "" {
		return nil, errors.New("empty path")
	}
	f, err := os.Open(l.Path)
	if err != nil {
		return nil, err
	}
	if !opts.LimitLocal {
		return f, nil
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > opts.MaxBytes {
		_ = f.Close()
		return nil, tooLarge(fmt.Sprintf("%s is %d bytes, over the size limit of %d bytes", l.Path, fi.Size(), opts.MaxBytes))
	}
	return readCloser{LimitReader(f, opts.MaxBytes, "read"), f}, nil
}

// Redact returns uri with the password of its URL, if any, replaced by
// "xxxxx", for messages and logs.
func Redact(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		return u.Redacted()
	}
	return uri
}
