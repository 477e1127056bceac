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

package rectrain

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadMovieLens(t *testing.T) {
	// Out of time order, as MovieLens files are; line 3 is bad.
	const udata = "1\t10\t5\t1000\n" +
		"2\t20\t3\t900\n" +
		"2\t10\t9\t950\n" +
		"1\t20\t4\t1100\n" +
		"3\t10\t2\t2000\n"
	dir := writeFiles(t, map[string]string{"u.data": udata})
	path := filepath.Join(dir, "u.data")
	d, err := LoadMovieLens(path, LoadOptions{TestFrac: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(d.ItemIDs, ","); got != "10,20" {
		t.Errorf("items %s, want 10,20 (order of first appearance)", got)
	}
	if got := strings.Join(d.UserIDs, ","); got != "1,2,3" {
		t.Errorf("users %s, want 1,2,3", got)
	}
	// Item 10 is first rated at 1000, item 20 at 900; each is its own
	// author.
	if d.ItemCreated[0] != 1000 || d.ItemCreated[1] != 900 || d.ItemAuthor[0] != 0 || d.ItemAuthor[1] != 1 {
		t.Errorf("created %v authors %v, want [1000 900] [0 1]", d.ItemCreated, d.ItemAuthor)
	}
	if d.ItemDim != 0 || d.UserDim != 0 {
		t.Errorf("feature widths %d, %d; want 0, 0", d.UserDim, d.ItemDim)
	}
	// Four ratings, each an impression with a click, two of them liked
	// (ratings 5 and 4), in time order.
	const click, like = 1, 2
	wantT := []int64{900, 1000, 1100, 2000}
	wantL := []uint8{click, click | like, click | like, click}
	if len(d.Imps) != 4 {
		t.Fatalf("%d impressions, want 4", len(d.Imps))
	}
	for k, im := range d.Imps {
		if im.T != wantT[k] || im.Labels != wantL[k] {
			t.Errorf("impression %d at %d labels %b, want %d %b", k, im.T, im.Labels, wantT[k], wantL[k])
		}
	}
	if d.Skipped["u.data"] != 1 || len(d.Errors) != 1 || d.Errors[0].Line != 3 {
		t.Errorf("skipped %v errors %v, want the rating on line 3", d.Skipped, d.Errors)
	}
	if _, err := LoadMovieLens(path, LoadOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), "u.data:3:") {
		t.Errorf("strict read: %v, want an error at u.data:3", err)
	}
}

func TestLoadDirReportsBadRows(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		CatalogFile: `{"format":"recpipeline.catalog","version":1,"feature_dim":1}
{"id":"i0","author":"a0","created":"2025-01-01T00:00:00Z","features":[1],"integrity_risk":0.1}
{"id":"i1","author":"a0","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":0.1}
`,
		UsersFile:   `{"format":"recpipeline.users","version":1,"feature_dim":1}` + "\n",
		FollowsFile: `{"format":"recpipeline.follows","version":1}` + "\n",
		EventsFile: `{"format":"recpipeline.events","version":1}
{"user":"u0","item":"i0","type":"impression","time":"2025-01-01T00:00:00Z"}
{"user":"u0","item":"i0","type":"wave","time":"2025-01-01T00:00:01Z"}
{"user":"u0","item":"i0","type":"click","time":"2025-01-01T00:00:02Z"}
{"user":"u1","item":"i0","type":"impression","time":"2025-01-01T01:00:00Z"}
`,
	})
	d, err := LoadDir(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range d.Errors {
		got = append(got, fmt.Sprintf("%s:%d", filepath.Base(e.File), e.Line))
	}
	if want := "catalog.jsonl:3 events.jsonl:3"; strings.Join(got, " ") != want {
		t.Errorf("bad rows at %v, want %s", got, want)
	}
	if d.Skipped[CatalogFile] != 1 || d.Skipped[EventsFile] != 1 {
		t.Errorf("skipped %v, want one row of the catalog and one of the events", d.Skipped)
	}
	if _, err := LoadDir(dir, LoadOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), "catalog.jsonl:3:") {
		t.Errorf("strict load: %v, want an error at catalog.jsonl:3", err)
	}
}
