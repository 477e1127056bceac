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
	"net/url"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			_, _ = io.WriteString(w, "hello")
		case "/declared-large":
			w.Header().Set("Content-Length", "1000")
			_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		case "/chunked-large":
			w.(http.Flusher).Flush() // no Content-Length: the limit must hold while reading
			_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	cases := map[string]struct {
		path            string
		want            string
		wantGetErr      string
		wantReadErr     bool
		wantTooLargeErr bool
	}{
		"a small file is read whole":              {path: "/small", want: "hello"},
		"a 404 is an error naming the status":     {path: "/missing", wantGetErr: "HTTP 404"},
		"a declared length over the limit fails":  {path: "/declared-large", wantGetErr: "1000 bytes", wantTooLargeErr: true},
		"an undeclared body over the limit fails": {path: "/chunked-large", wantReadErr: true, wantTooLargeErr: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u, _ := url.Parse(srv.URL + tc.path)
			body, err := Get(context.Background(), nil, u, 100)
			if tc.wantGetErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantGetErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantGetErr)
				}
				if tc.wantTooLargeErr != errors.Is(err, ErrTooLarge) {
					t.Errorf("errors.Is(err, ErrTooLarge) = %v", errors.Is(err, ErrTooLarge))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer body.Close()
			b, err := io.ReadAll(body)
			if tc.wantReadErr {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("read err = %v, want ErrTooLarge", err)
				}
				return
			}
			if err != nil || string(b) != tc.want {
				t.Errorf("read %q, %v; want %q", b, err, tc.want)
			}
		})
	}
}

func TestGetHonoursTheContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u, _ := url.Parse(srv.URL)
	if _, err := Get(ctx, nil, u, 100); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestLimitReaderExactLimitPasses(t *testing.T) {
	b, err := io.ReadAll(LimitReader(strings.NewReader("12345"), 5, "read"))
	if err != nil || string(b) != "12345" {
		t.Errorf("read %q, %v", b, err)
	}
	if _, err := io.ReadAll(LimitReader(strings.NewReader("123456"), 5, "read")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("one byte over: err = %v", err)
	}
}
