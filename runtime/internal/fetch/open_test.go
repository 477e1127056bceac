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
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cases := map[string]struct {
		uri      string
		wantPath string
		wantURL  string
		wantErr  string
	}{
		"a plain path is local":              {uri: "data/catalog.jsonl", wantPath: "data/catalog.jsonl"},
		"a file URL is local":                {uri: "file:///data/catalog.jsonl", wantPath: "/data/catalog.jsonl"},
		"a file URL may name localhost":      {uri: "file://localhost/data", wantPath: "/data"},
		"an https URL is remote":             {uri: "https://example.com/m.tar.gz", wantURL: "https://example.com/m.tar.gz"},
		"an empty URI is refused":            {uri: "", wantErr: "empty URI"},
		"a file URL without a path":          {uri: "file://", wantErr: "file URI has no path"},
		"a file URL naming another host":     {uri: "file://example.com/data", wantErr: "only local files"},
		"an unsupported scheme is named":     {uri: "s3://bucket/key", wantErr: `unsupported scheme "s3"`},
		"an unparsable URL is refused":       {uri: "http://[::1/x", wantErr: "failed to parse URI"},
		"a password is redacted from String": {uri: "https://u:hunter2@example.com/x", wantURL: "https://u:xxxxx@example.com/x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			loc, err := Parse(tc.uri)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if loc.Path != tc.wantPath {
				t.Errorf("Path = %q, want %q", loc.Path, tc.wantPath)
			}
			if (loc.URL != nil) != (tc.wantURL != "") || (loc.URL != nil && loc.String() != tc.wantURL) {
				t.Errorf("URL = %v (String %q), want %q", loc.URL, loc.String(), tc.wantURL)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	local := filepath.Join(dir, "lists.jsonl")
	if err := os.WriteFile(local, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "0123456789")
	}))
	defer srv.Close()
	cases := map[string]struct {
		uri             string
		opts            Options
		wantOpenErr     string
		wantTooLargeErr bool
	}{
		"a local file is read whole":                    {uri: local, opts: Options{MaxBytes: 5}},
		"a file URL is read whole":                      {uri: "file://" + local, opts: Options{MaxBytes: 5}},
		"a local file under LimitLocal within the size": {uri: local, opts: Options{MaxBytes: 10, LimitLocal: true}},
		"a local file over the size under LimitLocal":   {uri: local, opts: Options{MaxBytes: 5, LimitLocal: true}, wantOpenErr: "10 bytes, over the size limit of 5 bytes", wantTooLargeErr: true},
		"a missing local file":                          {uri: filepath.Join(dir, "nope"), opts: Options{MaxBytes: 5}, wantOpenErr: "no such file"},
		"a remote file within the size":                 {uri: srv.URL + "/x", opts: Options{Client: srv.Client(), MaxBytes: 10}},
		"a remote file over the size":                   {uri: srv.URL + "/x", opts: Options{Client: srv.Client(), MaxBytes: 5}, wantOpenErr: "size limit of 5 bytes", wantTooLargeErr: true},
		"a bad URI does not open":                       {uri: "ftp://example.com/x", opts: Options{MaxBytes: 5}, wantOpenErr: `unsupported scheme "ftp"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rc, err := Open(context.Background(), tc.uri, tc.opts)
			if tc.wantOpenErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantOpenErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantOpenErr)
				}
				if tc.wantTooLargeErr != errors.Is(err, ErrTooLarge) {
					t.Errorf("errors.Is(err, ErrTooLarge) = %v", errors.Is(err, ErrTooLarge))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if b, err := io.ReadAll(rc); err != nil || string(b) != "0123456789" {
				t.Errorf("read %q, %v; want the whole file", b, err)
			}
		})
	}
}

// TestOpenLimitsAGrowingLocalFile checks that LimitLocal holds while
// reading, not only at open: a file that grows past the limit after the
// check must not be read whole.
func TestOpenLimitsAGrowingLocalFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(context.Background(), p, Options{MaxBytes: 5, LimitLocal: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := os.WriteFile(p, []byte("1234567890"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, ErrTooLarge) {
		t.Errorf("read err = %v, want ErrTooLarge", err)
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]struct{ uri, want string }{
		"a password is hidden":       {"https://user:hunter2@example.com/m.tar.gz", "https://user:xxxxx@example.com/m.tar.gz"},
		"a URL without one is as is": {"https://example.com/m.tar.gz", "https://example.com/m.tar.gz"},
		"a path is as is":            {"/data/catalog.jsonl", "/data/catalog.jsonl"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := Redact(tc.uri); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.uri, got, tc.want)
			}
		})
	}
}
