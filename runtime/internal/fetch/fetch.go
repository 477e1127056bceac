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

// Package fetch opens the runtime's inputs (catalogs, model archives,
// precomputed lists) named by a URI: a path, a file:// URL or an http(s)://
// URL. A remote file is read with a size limit, so that a wrong URL or an
// unexpectedly large file fails cleanly instead of exhausting memory.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// ErrTooLarge matches (errors.Is) every error about a size limit.
var ErrTooLarge = errors.New("over the size limit")

// tooLarge is an error about a size limit, with its own message.
type tooLarge string

func (e tooLarge) Error() string        { return string(e) }
func (e tooLarge) Is(target error) bool { return target == ErrTooLarge }

// Get sends a GET for u and returns the body of a 200 answer. It refuses
// other answers and a declared length over max, and the body fails to read
// once more than max bytes have come. client is http.DefaultClient when nil.
func Get(ctx context.Context, client *http.Client, u *url.URL, max int64) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build request: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("failed to fetch %s: HTTP %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > max {
		_ = resp.Body.Close()
		return nil, tooLarge(fmt.Sprintf("%s is %d bytes, over the size limit of %d bytes", u.Redacted(), resp.ContentLength, max))
	}
	return readCloser{LimitReader(resp.Body, max, "transferred"), resp.Body}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// LimitReader reads r and fails, rather than stops, once more than max
// bytes are read: a truncated input must not pass for a whole one. what
// says which bytes count ("transferred", "decompressed").
func LimitReader(r io.Reader, max int64, what string) io.Reader {
	return &limited{r: r, max: max, what: what}
}

type limited struct {
	r         io.Reader
	read, max int64
	what      string
}

func (l *limited) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.max {
		return n, tooLarge(fmt.Sprintf("more than the size limit of %d bytes %s", l.max, l.what))
	}
	return n, err
}
