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

package model

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mtmlArchive(t *testing.T) ([]byte, *Manifest, map[string]Tensor) {
	t.Helper()
	m := mtmlManifest()
	tensors := randTensors(m, 8)
	var buf bytes.Buffer
	if err := WriteArchive(&buf, m, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), m, tensors
}

// tarGz builds an archive from name→content pairs, in order.
func tarGz(t *testing.T, files ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLoadHTTP(t *testing.T) {
	archive, m, tensors := mtmlArchive(t)
	mc := *m
	want, err := New(&mc, tensors)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mtml/v12.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive) })
	mux.HandleFunc("/truncated.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(archive[:len(archive)/2]) })
	mux.HandleFunc("/not-gzip.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>login</html>")) })
	mux.HandleFunc("/nested.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Write(tarGz(t, [2]string{"v12/manifest.json", "{}"}, [2]string{"v12/model.safetensors", ""}))
	})
	mux.HandleFunc("/hang.tar.gz", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })

	for _, tls := range []bool{false, true} {
		var srv *httptest.Server
		scheme := "http"
		if tls {
			scheme = "https"
			srv = httptest.NewTLSServer(mux)
		} else {
			srv = httptest.NewServer(mux)
		}
		defer srv.Close()
		loader := &Loader{Client: srv.Client()}

		tests := map[string]struct {
			path     string
			loader   *Loader
			ctx      func() (context.Context, context.CancelFunc)
			wantErr  string
			invalid  bool // error must wrap ErrInvalid
			canceled bool // error must wrap context.Canceled
		}{
			"archive loads":           {path: "/mtml/v12.tar.gz"},
			"not found":               {path: "/mtml/v13.tar.gz", wantErr: "HTTP 404"},
			"truncated archive":       {path: "/truncated.tar.gz", wantErr: "truncated or corrupt", invalid: true},
			"not gzip":                {path: "/not-gzip.tar.gz", wantErr: "not gzip-compressed", invalid: true},
			"files in a subdirectory": {path: "/nested.tar.gz", wantErr: "no manifest.json at its top level (entries: v12/manifest.json", invalid: true},
			"over the size limit": {path: "/mtml/v12.tar.gz", loader: &Loader{Client: srv.Client(), MaxBytes: 1000},
				wantErr: "size limit of 1000 bytes"},
			"canceled while waiting": {path: "/hang.tar.gz", canceled: true, ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				go cancel()
				return ctx, cancel
			}},
		}
		for name, tc := range tests {
			t.Run(scheme+" "+name, func(t *testing.T) {
				l := loader
				if tc.loader != nil {
					l = tc.loader
				}
				ctx, cancel := context.WithCancel(context.Background())
				if tc.ctx != nil {
					ctx, cancel = tc.ctx()
				}
				defer cancel()
				a, err := l.Load(ctx, srv.URL+tc.path)
				switch {
				case tc.canceled:
					if !errors.Is(err, context.Canceled) {
						t.Fatalf("error = %v, want context.Canceled", err)
					}
				case tc.wantErr == "":
					if err != nil {
						t.Fatalf("Load: %v", err)
					}
					if !sameBits(outputs(t, a), outputs(t, want)) {
						t.Fatal("model loaded over HTTP predicts differently from the one written")
					}
				default:
					if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
						t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
					}
					if tc.invalid != errors.Is(err, ErrInvalid) {
						t.Fatalf("errors.Is(err, ErrInvalid) = %v, want %v (error %v)", !tc.invalid, tc.invalid, err)
					}
				}
			})
		}
	}
}

func TestLoadURIForms(t *testing.T) {
	archive, _, _ := mtmlArchive(t)
	dir := t.TempDir()
	tgz := filepath.Join(dir, "mtml.tgz")
	if err := os.WriteFile(tgz, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "weights.bin")
	if err := os.WriteFile(plain, archive, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		uri     string
		wantErr string
	}{
		"tgz path":               {uri: tgz},
		"file URL":               {uri: "file://" + tgz},
		"file URL of localhost":  {uri: "file://localhost" + tgz},
		"file URL of other host": {uri: "file://models.example" + tgz, wantErr: `names host "models.example"`},
		"unsupported scheme":     {uri: "s3://bucket/mtml.tar.gz", wantErr: `unsupported scheme "s3"`},
		"neither dir nor tar.gz": {uri: plain, wantErr: "neither a directory nor a .tar.gz"},
		"empty URI":              {uri: "", wantErr: "empty URI"},
		"password redacted":      {uri: "http://user:hunter2@127.0.0.1:1/x.tar.gz", wantErr: "user:xxxxx@"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := Load(context.Background(), tc.uri)
			if tc.wantErr == "" {
				if err != nil || a.MTML == nil {
					t.Fatalf("Load(%q) = %v, %v; want an MTML artifact", tc.uri, a, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load(%q) error = %v, want one containing %q", tc.uri, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
