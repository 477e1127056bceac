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

package recclient

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestBaseURL(t *testing.T) {
	for name, tc := range map[string]struct {
		raw, want, wantErr string
	}{
		"host and port":           {raw: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		"a trailing slash is cut": {raw: "https://rec.example/", want: "https://rec.example"},
		"no scheme":               {raw: "127.0.0.1:8080", wantErr: `"127.0.0.1:8080" must be http(s)://host[:port]`},
		"another scheme":          {raw: "ftp://h", wantErr: `"ftp://h" must be http(s)://host[:port]`},
		"a query":                 {raw: "http://h/?a=1", wantErr: "without a query or fragment"},
		"a fragment":              {raw: "http://h/#x", wantErr: "without a query or fragment"},
		"not a URL":               {raw: "http://h:port", wantErr: `"http://h:port" must be http(s)://host[:port]: `},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := BaseURL(tc.raw)
			if tc.wantErr == "" && (err != nil || got != tc.want) {
				t.Errorf("BaseURL(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
			}
			if tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), `"`) || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("BaseURL(%q) error %v, want one starting with the URL quoted and saying %q", tc.raw, err, tc.wantErr)
			}
		})
	}
}

func TestRecommend(t *testing.T) {
	for name, tc := range map[string]struct {
		code    int
		body    string
		want    Answer
		wantErr string
	}{
		"arm and items": {code: 200, body: `{"user":"u1","configRevision":"r2","arm":"canary","items":[{"id":"i1","author":"a1","score":0.5},{"id":"i2","author":"a2"}]}`,
			want: Answer{Revision: "r2", Arm: "canary", Items: []AnswerItem{{ID: "i1", Author: "a1"}, {ID: "i2", Author: "a2"}}}},
		"no experiments":  {code: 200, body: `{"user":"u1","configRevision":"r1","items":[]}`, want: Answer{Revision: "r1", Items: []AnswerItem{}}},
		"no items list":   {code: 200, body: `{"user":"u1"}`, wantErr: "not a recommendations list: it has no items list"},
		"not JSON":        {code: 200, body: `<html>`, wantErr: "not a recommendations list: failed to decode it"},
		"an error answer": {code: 503, body: `{"error":"no config loaded yet"}`, wantErr: "503 Service Unavailable: no config loaded yet"},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if got := r.URL.Query(); got.Get("user") != "u1" || got.Get("n") != "3" {
					t.Errorf("query %v, want user=u1 and n=3", got)
				}
				w.WriteHeader(tc.code)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			got, err := Recommend(context.Background(), srv.Client(), srv.URL, "u1", 3)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Recommend = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestWithBearer(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	plain := srv.Client()
	for _, c := range []*http.Client{WithBearer(plain, "s3cret"), plain, WithBearer(plain, "")} {
		if err := PostEvents(context.Background(), c, srv.URL+"/v1/events", []byte(`{"events":[]}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"Bearer s3cret", "", ""}; !reflect.DeepEqual(got, want) {
		t.Errorf("Authorization headers %q, want %q: the token on its client only", got, want)
	}
}
