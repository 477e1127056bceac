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
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// tinyWorld generates a small synthetic world once per call.
func tinyWorld(t testing.TB) *synth.World {
	t.Helper()
	return synth.Generate(synth.Config{Users: 30, Items: 300, Authors: 12, FeatureDim: 5, EventsPerUser: 5, Seed: 7, Workers: 2})
}

func writeWorld(t testing.TB, w *synth.World, gz bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := w.WriteDirWith(dir, synth.WriteOptions{Gzip: gz, SkipTruth: true}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// checkAgainstWorld compares every item of c, and the user table when
// wantUsers, with the world that wrote the files.
func checkAgainstWorld(t *testing.T, c *Catalog, w *synth.World, wantUsers bool) {
	t.Helper()
	if c.Len() != w.NumItems() {
		t.Fatalf("Len() = %d, want %d", c.Len(), w.NumItems())
	}
	if c.FeatureDim() != w.Config().FeatureDim {
		t.Fatalf("FeatureDim() = %d, want %d", c.FeatureDim(), w.Config().FeatureDim)
	}
	for i := range w.NumItems() {
		o, ok := c.Ordinal(synth.ItemID(i))
		if !ok {
			t.Fatalf("Ordinal(%q) not found", synth.ItemID(i))
		}
		if got, want := c.Author(o), synth.AuthorID(w.ItemAuthor(i)); got != want {
			t.Errorf("item %d: Author = %q, want %q", i, got, want)
		}
		if got, want := c.Created(o), w.ItemCreated(i); !got.Equal(want) {
			t.Errorf("item %d: Created = %v, want %v", i, got, want)
		}
		if got, want := c.Risk(o), float32(w.ItemRisk(i)); got != want {
			t.Errorf("item %d: Risk = %v, want %v", i, got, want)
		}
		if got, want := c.Features(o), w.ItemFeatures(i); !slices.Equal(got, want) {
			t.Errorf("item %d: Features = %v, want %v", i, got, want)
		}
	}
	if !wantUsers {
		if c.NumUsers() != 0 || c.UserFeatureDim() != 0 {
			t.Errorf("NumUsers, UserFeatureDim = %d, %d; want no user table", c.NumUsers(), c.UserFeatureDim())
		}
		return
	}
	if c.NumUsers() != w.NumUsers() || c.UserFeatureDim() != w.Config().FeatureDim {
		t.Fatalf("NumUsers, UserFeatureDim = %d, %d; want %d, %d", c.NumUsers(), c.UserFeatureDim(), w.NumUsers(), w.Config().FeatureDim)
	}
	for u := range w.NumUsers() {
		got, ok := c.UserFeatures(synth.UserID(u))
		if !ok || !slices.Equal(got, w.UserFeatures(u)) {
			t.Errorf("UserFeatures(%q) = %v, %v; want %v, true", synth.UserID(u), got, ok, w.UserFeatures(u))
		}
	}
}

func TestLoadReadsEverySupportedLocation(t *testing.T) {
	w := tinyWorld(t)
	plain := writeWorld(t, w, false)
	gz := writeWorld(t, w, true)
	srv := httptest.NewServer(http.FileServer(http.Dir(gz)))
	t.Cleanup(srv.Close)
	plainSrv := httptest.NewServer(http.FileServer(http.Dir(plain)))
	t.Cleanup(plainSrv.Close)

	tests := map[string]struct {
		uri       string
		users     string
		wantUsers bool
	}{
		"directory path, plain files":     {uri: plain, wantUsers: true},
		"directory path, gzip files":      {uri: gz, wantUsers: true},
		"file URL of a directory":         {uri: "file://" + plain, wantUsers: true},
		"catalog file path, no users":     {uri: filepath.Join(plain, CatalogFile)},
		"gzip catalog file URL, no users": {uri: "file://" + filepath.Join(gz, CatalogFile+".gz")},
		"catalog file with users option":  {uri: filepath.Join(plain, CatalogFile), users: filepath.Join(gz, UsersFile+".gz"), wantUsers: true},
		"http gzip catalog":               {uri: srv.URL + "/" + CatalogFile + ".gz"},
		"http plain catalog":              {uri: plainSrv.URL + "/" + CatalogFile},
		"http catalog with http users":    {uri: srv.URL + "/" + CatalogFile + ".gz", users: plainSrv.URL + "/" + UsersFile, wantUsers: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := Load(context.Background(), tc.uri, Options{Users: tc.users})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstWorld(t, c, w, tc.wantUsers)
		})
	}
}

func writeLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	data := []byte(strings.Join(lines, "\n") + "\n")
	if strings.HasSuffix(path, ".gz") {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	catalogHeader = `{"format":"recpipeline.catalog","version":1,"feature_dim":2}`
	usersHeader   = `{"format":"recpipeline.users","version":1,"feature_dim":3}`
	goodItem      = `{"id":"i0","author":"a0","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":0.5}`
	goodItem2     = `{"id":"i1","author":"a0","created":"2025-01-02T00:00:00Z","features":[3,4],"integrity_risk":0}`
	goodUser      = `{"id":"u0","features":[1,2,3]}`
)

func TestLoadRefusesTheFirstBadRowNamingFileAndLine(t *testing.T) {
	tests := map[string]struct {
		file  string
		lines []string
		want  string // the error names file:line and what is wrong
		line  int
	}{
		"risk out of range": {
			file:  CatalogFile,
			lines: []string{catalogHeader, goodItem, "", `{"id":"i2","author":"a0","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":1.5}`},
			want:  `catalog.jsonl:4: field "integrity_risk"`, line: 4,
		},
		"features too short, gzip": {
			file:  CatalogFile + ".gz",
			lines: []string{catalogHeader, `{"id":"i2","author":"a0","created":"2025-01-01T00:00:00Z","features":[1],"integrity_risk":0}`},
			want:  `catalog.jsonl.gz:2: field "features"`, line: 2,
		},
		"duplicate item ID": {
			file:  CatalogFile,
			lines: []string{catalogHeader, goodItem, goodItem},
			want:  `catalog.jsonl:3: field "id"`, line: 3,
		},
		"not JSON": {
			file:  CatalogFile,
			lines: []string{catalogHeader, goodItem, goodItem2, `{"id":`},
			want:  `catalog.jsonl:4:`, line: 4,
		},
		"wrong header": {
			file:  CatalogFile,
			lines: []string{`{"format":"recpipeline.users","version":1,"feature_dim":2}`, goodItem},
			want:  `catalog.jsonl:1: field "format"`, line: 1,
		},
		"bad user row": {
			file:  UsersFile,
			lines: []string{usersHeader, goodUser, `{"id":"u1","features":[1,2]}`},
			want:  `users.jsonl:3: field "features"`, line: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if !strings.HasPrefix(tc.file, "catalog") {
				writeLines(t, filepath.Join(dir, CatalogFile), catalogHeader, goodItem)
			}
			writeLines(t, filepath.Join(dir, tc.file), tc.lines...)
			_, err := Load(context.Background(), dir, Options{})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.want)) {
				t.Errorf("error %q does not contain %q", err, filepath.Join(dir, tc.want))
			}
			var re *dataset.RowError
			if !errors.As(err, &re) || re.Line != tc.line {
				t.Errorf("error %v: want a *dataset.RowError at line %d", err, tc.line)
			}
		})
	}
}

func TestLoadRefusesAmbiguousOrMissingSources(t *testing.T) {
	both := t.TempDir()
	writeLines(t, filepath.Join(both, CatalogFile), catalogHeader, goodItem)
	writeLines(t, filepath.Join(both, CatalogFile+".gz"), catalogHeader, goodItem)
	// A gzip file far smaller than its content, for the decompressed limit.
	big := t.TempDir()
	lines := []string{catalogHeader}
	for i := range 500 {
		lines = append(lines, `{"id":"i`+strconv.Itoa(i)+`","author":"a0","created":"2025-01-01T00:00:00Z","features":[0,0],"integrity_risk":0}`)
	}
	writeLines(t, filepath.Join(big, CatalogFile+".gz"), lines...)
	fi, err := os.Stat(filepath.Join(big, CatalogFile+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	limit := 2 * fi.Size() // above the transfer, far below the content
	bigSrv := httptest.NewServer(http.FileServer(http.Dir(big)))
	t.Cleanup(bigSrv.Close)
	// The same file cut short: the read error, not the partial last line,
	// is the cause to report.
	cut := t.TempDir()
	whole, err := os.ReadFile(filepath.Join(big, CatalogFile+".gz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cut, CatalogFile+".gz"), whole[:len(whole)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(both)))
	t.Cleanup(srv.Close)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := map[string]struct {
		ctx  context.Context
		uri  string
		opts Options
		want string
	}{
		"plain and gzip catalogs side by side": {uri: both, want: "keep one"},
		"directory without a catalog":          {uri: empty, want: "neither catalog.jsonl nor catalog.jsonl.gz"},
		"missing path":                         {uri: filepath.Join(empty, "nope"), want: "no such file"},
		"unsupported scheme":                   {uri: "s3://bucket/catalog.jsonl", want: `unsupported scheme "s3"`},
		"file URL naming a remote host":        {uri: "file://example.com/data", want: "only local files"},
		"http not found":                       {uri: srv.URL + "/missing.jsonl", want: "404"},
		"http over the size limit":             {uri: srv.URL + "/" + CatalogFile, opts: Options{MaxBytes: 10}, want: "size limit of 10 bytes"},
		"gzip over the decompressed limit": {
			uri: bigSrv.URL + "/" + CatalogFile + ".gz", opts: Options{MaxBytes: limit}, want: "bytes decompressed",
		},
		"truncated gzip file":             {uri: cut, want: "failed to read " + filepath.Join(cut, CatalogFile+".gz") + ": unexpected EOF"},
		"users option naming a directory": {uri: filepath.Join(both, CatalogFile), opts: Options{Users: empty}, want: "is a directory"},
		"canceled context":                {ctx: canceled, uri: srv.URL + "/" + CatalogFile, want: context.Canceled.Error()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			c, err := Load(ctx, tc.uri, tc.opts)
			if err == nil {
				t.Fatalf("Load succeeded with %d items, want an error containing %q", c.Len(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadHonoursContextDeadlineWhileFetching(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(catalogHeader + "\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Load(ctx, srv.URL+"/"+CatalogFile, Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Load = %v, want an error wrapping context.DeadlineExceeded", err)
	}
}
