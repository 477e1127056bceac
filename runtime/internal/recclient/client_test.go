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
