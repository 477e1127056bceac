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
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReplayFeatures checks the features of each impression against the
// contract with the runtime, on a log small enough to work out by hand.
func TestReplayFeatures(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		CatalogFile: `{"format":"recpipeline.catalog","version":1,"feature_dim":2}
{"id":"i0","author":"a0","created":"2025-01-01T00:00:00Z","features":[1,0],"integrity_risk":0.1}
{"id":"i1","author":"a1","created":"2025-01-01T00:00:00Z","features":[0,2],"integrity_risk":0.5}
{"id":"i2","author":"a0","created":"2025-01-01T01:00:00Z","features":[3,3],"integrity_risk":0}
`,
		UsersFile: `{"format":"recpipeline.users","version":1,"feature_dim":1}
{"id":"u0","features":[0.5]}
`,
		FollowsFile: `{"format":"recpipeline.follows","version":1}
{"user":"u0","author":"a1"}
`,
		EventsFile: `{"format":"recpipeline.events","version":1}
{"user":"u0","item":"i0","type":"impression","time":"2025-01-01T00:00:00Z"}
{"user":"u0","item":"i0","type":"click","time":"2025-01-01T00:00:10Z"}
{"user":"u0","item":"i0","type":"like","time":"2025-01-01T00:00:20Z"}
{"user":"u0","item":"i99","type":"click","time":"2025-01-01T00:00:30Z"}
{"user":"u0","item":"i1","type":"impression","time":"2025-01-01T01:00:00Z"}
{"user":"u0","type":"unfollow","author":"a1","time":"2025-01-01T01:00:10Z"}
{"user":"u0","item":"i1","type":"see_less","time":"2025-01-01T01:00:20Z"}
{"user":"u9","item":"i2","type":"impression","time":"2025-01-01T02:00:00Z"}
{"user":"u0","item":"i2","type":"impression","time":"2025-01-01T02:00:00Z"}
{"user":"u0","item":"i2","type":"share","time":"2025-01-01T02:00:05Z"}
{"user":"u0","item":"i1","type":"impression","time":"2025-01-01T10:00:00Z"}
`,
	})
	d, err := LoadDir(dir, LoadOptions{TestFrac: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	const (
		click   = 1 << 0
		like    = 1 << 1
		share   = 1 << 3
		seeLess = 1 << 4
	)
	tests := []struct {
		name     string
		user     string
		item     string
		pool     []float32
		followed bool
		labels   uint8
		age      float64
	}{
		{"first impression: empty pool", "u0", "i0", []float32{0, 0}, false, click | like, 0},
		{"pool counts the click and the like", "u0", "i1", []float32{1, 0}, true, seeLess, math.Log(2)},
		{"unknown user: zero features", "u9", "i2", []float32{0, 0}, false, 0, math.Log(2)},
		{"see_less is not a positive engagement", "u0", "i2", []float32{1, 0}, false, share, math.Log(2)},
		{"after the unfollow and the share", "u0", "i1", []float32{5.0 / 3, 1}, false, 0, math.Log(11)},
	}
	if len(d.Imps) != len(tests) {
		t.Fatalf("%d impressions, want %d", len(d.Imps), len(tests))
	}
	for k, tc := range tests {
		im := d.Imps[k]
		if d.UserIDs[im.User] != tc.user || d.ItemIDs[im.Item] != tc.item {
			t.Errorf("%s: impression %d is %s×%s, want %s×%s", tc.name, k, d.UserIDs[im.User], d.ItemIDs[im.Item], tc.user, tc.item)
		}
		if !slices.EqualFunc(d.Pool(k), tc.pool, func(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 }) {
			t.Errorf("%s: engagement_pool %v, want %v", tc.name, d.Pool(k), tc.pool)
		}
		if im.Followed != tc.followed {
			t.Errorf("%s: author_followed %v, want %v", tc.name, im.Followed, tc.followed)
		}
		if im.Labels != tc.labels {
			t.Errorf("%s: labels %05b, want %05b", tc.name, im.Labels, tc.labels)
		}
		if got := d.ItemAge(im.Item, im.T); math.Abs(got-tc.age) > 1e-12 {
			t.Errorf("%s: item_age %v, want %v", tc.name, got, tc.age)
		}
	}
	if got := d.User(d.Imps[2].User); got[0] != 0 {
		t.Errorf("unknown user has features %v, want zeros", got)
	}
	// The log spans 10h; the last 10% (from 09:00) is the test split.
	if d.TrainN != 4 {
		t.Errorf("TrainN = %d, want 4", d.TrainN)
	}
	if got := d.SplitPools[0:2]; math.Abs(float64(got[0])-5.0/3) > 1e-6 || math.Abs(float64(got[1])-1) > 1e-6 {
		t.Errorf("u0's pool at the split is %v, want [5/3 1]", got)
	}
	if d.Skipped["events of unknown items"] != 1 {
		t.Errorf("skipped %v, want one event of an unknown item", d.Skipped)
	}
	row := make([]float64, d.rankSpec().Width())
	d.rankRow(row, d.Imps[1].User, d.Pool(1), d.Imps[1].Item, d.Imps[1].T, d.Imps[1].Followed)
	want := []float64{0.5, 1, 0, 0, 2, 0.5, math.Log(2), 1}
	for k := range want {
		if math.Abs(row[k]-want[k]) > 1e-6 {
			t.Fatalf("ranker input %v, want %v", row, want)
		}
	}
}

func TestPoolKeepsLast50(t *testing.T) {
	d := &Data{ItemDim: 1, ItemFeat: make([]float32, 60)}
	for i := range d.ItemFeat {
		d.ItemFeat[i] = float32(i)
	}
	p := newPoolState(1, d)
	for i := range 60 {
		p.add(0, int32(i))
	}
	// Items 10..59: mean 34.5.
	if got := p.mean(0)[0]; got != 34.5 {
		t.Errorf("pool mean %v, want 34.5 (the last 50 engagements)", got)
	}
}

func TestAUC(t *testing.T) {
	tests := map[string]struct {
		scores []float64
		labels []bool
		want   float64
	}{
		"perfect":      {[]float64{0.1, 0.2, 0.8, 0.9}, []bool{false, false, true, true}, 1},
		"reversed":     {[]float64{0.9, 0.8, 0.2, 0.1}, []bool{false, false, true, true}, 0},
		"all tied":     {[]float64{0.5, 0.5, 0.5, 0.5}, []bool{false, true, false, true}, 0.5},
		"one swap":     {[]float64{0.1, 0.3, 0.2, 0.9}, []bool{false, false, true, true}, 0.75},
		"no positives": {[]float64{0.1, 0.3}, []bool{false, false}, 0.5},
	}
	for name, tc := range tests {
		if got := AUC(tc.scores, tc.labels); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: AUC %v, want %v", name, got, tc.want)
		}
	}
}

func TestSpearman(t *testing.T) {
	tests := map[string]struct {
		a, b []float64
		want float64
	}{
		"monotone":  {[]float64{1, 2, 3, 4}, []float64{10, 20, 30, 1000}, 1},
		"reversed":  {[]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		"constant":  {[]float64{1, 2, 3}, []float64{5, 5, 5}, 0},
		"textbook":  {[]float64{1, 2, 3, 4, 5}, []float64{2, 1, 4, 3, 5}, 0.8},
		"with ties": {[]float64{1, 2, 2, 3}, []float64{1, 2, 3, 4}, 0.9486832980505138},
	}
	for name, tc := range tests {
		if got := Spearman(tc.a, tc.b); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: Spearman %v, want %v", name, got, tc.want)
		}
	}
}

func TestTopK(t *testing.T) {
	var h minHeap
	got := topK([]float64{0.5, 0.9, 0.1, 0.9, 0.7}, 3, &h)
	if want := []int32{1, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("topK = %v, want %v (ties by lower index)", got, want)
	}
}
