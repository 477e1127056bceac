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
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/config"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "lists.jsonl")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecomputedParse(t *testing.T) {
	tests := map[string]struct {
		text      string
		wantLines []int // bad lines reported, nil for a good file
		wantStats PrecomputedStats
		lists     map[string][]uint32
	}{
		"lists in file order, blank lines and extra fields ignored": {
			text: `{"user": "u1", "items": ["i3", "i1", "i2"]}

{"user": "u2", "items": [], "generated": "2026-03-01"}
`,
			wantStats: PrecomputedStats{Users: 2, Items: 3},
			lists:     map[string][]uint32{"u1": {3, 1, 2}, "u2": {}, "u3": {}},
		},
		"unknown items and repeats dropped": {
			text:      `{"user": "u1", "items": ["i3", "x9", "i3", "i4"]}`,
			wantStats: PrecomputedStats{Users: 1, Items: 2, Unknown: 1},
			lists:     map[string][]uint32{"u1": {3, 4}},
		},
		"bad lines reported by number": {
			text: `{"user": "u1", "items": ["i1"]}
not json
{"items": ["i1"]}
{"user": "u2"}
{"user": "u1", "items": ["i2"]}
{"user": "u3", "items": "i1"}
`,
			wantLines: []int{2, 3, 4, 5, 6},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := NewPrecomputed(config.Source{Name: "pre", URI: writeFile(t, tc.text)}, catalog, PrecomputedOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st, err := s.Load(context.Background())
			if tc.wantLines != nil {
				var perr *ParseError
				if !errors.As(err, &perr) {
					t.Fatalf("error = %v, want a ParseError", err)
				}
				var lines []int
				for _, l := range perr.Lines {
					lines = append(lines, l.Line)
				}
				if !slices.Equal(lines, tc.wantLines) || perr.Count != len(tc.wantLines) {
					t.Errorf("bad lines %v (count %d), want %v", lines, perr.Count, tc.wantLines)
				}
				if !strings.Contains(err.Error(), "line 2:") {
					t.Errorf("error %q does not name line 2", err)
				}
				if _, err := s.Fetch(context.Background(), &Request{User: "u1"}, 10, nil); !errors.Is(err, ErrNotLoaded) {
					t.Errorf("Fetch after a failed first load: %v, want ErrNotLoaded", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st != tc.wantStats {
				t.Errorf("stats = %+v, want %+v", st, tc.wantStats)
			}
			for user, want := range tc.lists {
				got, err := s.Fetch(context.Background(), &Request{User: user}, 10, nil)
				if err != nil {
					t.Fatal(err)
				}
				if g := candItems(got); !slices.Equal(g, want) {
					t.Errorf("list of %s = %v, want %v", user, g, want)
				}
				for i := 1; i < len(got); i++ {
					if got[i].Score >= got[i-1].Score {
						t.Errorf("scores of %s not descending: %v", user, got)
					}
				}
			}
		})
	}
}

func TestPrecomputedReportsAtMostTenLines(t *testing.T) {
	p := writeFile(t, strings.Repeat("bad\n", 25))
	s, _ := NewPrecomputed(config.Source{URI: "file://" + p}, catalog, PrecomputedOptions{})
	_, err := s.Load(context.Background())
	var perr *ParseError
	if !errors.As(err, &perr) || len(perr.Lines) != 10 || perr.Count != 25 {
		t.Fatalf("error = %v, want 10 of 25 bad lines detailed", err)
	}
}

func TestPrecomputedReload(t *testing.T) {
	p := writeFile(t, `{"user": "u", "items": ["i1", "i2"]}`)
	s, _ := NewPrecomputed(config.Source{URI: "file://" + p}, catalog, PrecomputedOptions{})
	fetch := func() []uint32 {
		t.Helper()
		got, err := s.Fetch(context.Background(), &Request{User: "u"}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return candItems(got)
	}
	if _, err := s.Fetch(context.Background(), &Request{User: "u"}, 1, nil); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("Fetch before Load: %v, want ErrNotLoaded", err)
	}
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fetch(); !slices.Equal(got, []uint32{1}) {
		t.Errorf("after the first load: %v, want the list's head within the limit", got)
	}
	if err := os.WriteFile(p, []byte(`{"user": "u", "items": ["i7"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fetch(); !slices.Equal(got, []uint32{7}) {
		t.Errorf("after a reload: %v, want the new list", got)
	}
	if err := os.WriteFile(p, []byte(`{"user": "u", "items": ["i8"]}`+"\n{\"user\": \"v\", \"it"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background()); err == nil {
		t.Fatal("a truncated file loaded")
	}
	if got := fetch(); !slices.Equal(got, []uint32{7}) {
		t.Errorf("after a failed reload: %v, want the previous list", got)
	}
}

func TestPrecomputedHTTP(t *testing.T) {
	body := `{"user": "u", "items": ["i5"]}` + "\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/lists.jsonl" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	tests := map[string]struct {
		path     string
		maxBytes int64
		wantErr  string
	}{
		"fetched over http":                     {path: "/lists.jsonl"},
		"a missing file is an error":            {path: "/missing", wantErr: "404"},
		"a file over the size limit is refused": {path: "/lists.jsonl", maxBytes: 10, wantErr: "size limit"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := NewPrecomputed(config.Source{URI: srv.URL + tc.path}, catalog, PrecomputedOptions{Client: srv.Client(), MaxBytes: tc.maxBytes})
			_, err := s.Load(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Fetch(context.Background(), &Request{User: "u"}, 10, nil)
			if err != nil || !slices.Equal(candItems(got), []uint32{5}) {
				t.Errorf("Fetch = %v, %v; want [5]", candItems(got), err)
			}
		})
	}
}

func TestPrecomputedLocalSizeLimit(t *testing.T) {
	p := writeFile(t, `{"user": "u", "items": ["i5"]}`)
	s, _ := NewPrecomputed(config.Source{URI: p}, catalog, PrecomputedOptions{MaxBytes: 8})
	if _, err := s.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Errorf("error = %v, want the size limit", err)
	}
}
