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

package features

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is a catalog of three items (feature_dim 2) by two authors and a
// user table of one user (feature_dim 3).
func fixture(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.New(2, 3, []dataset.User{{ID: "u0", Features: []float32{0.5, -1, 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range []dataset.Item{
		{ID: "i0", Author: "a0", Created: now.Add(-2 * time.Hour), Features: []float32{1, 2}, IntegrityRisk: 0.25},
		{ID: "i1", Author: "a1", Created: now.Add(-30 * time.Minute), Features: []float32{3, 4}, IntegrityRisk: 0.5},
		{ID: "i2", Author: "a0", Created: now.Add(time.Hour), Features: []float32{5, 6}, IntegrityRisk: 0},
	} {
		if _, err := c.Add(it); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func eng(item string, typ store.EventType, ago time.Duration) store.Engagement {
	return store.Engagement{Item: item, Type: typ, Time: now.Add(-ago)}
}

// The user u0 of the fixture: follows a1 (and an author the catalog does
// not know), has engaged with i1 and i0 (twice) before now.
func fixtureUser(c *catalog.Catalog) *UserContext {
	return NewUserContext("u0", now, c, []store.Engagement{
		eng("i1", store.Click, time.Minute),
		eng("i0", store.Like, 2*time.Minute),
		eng("i0", store.Click, 3*time.Minute),
	}, []string{"a1", "nobody"})
}

// Independently computed blocks of u0 and each fixture item.
var (
	wantUser = []float32{0.5, -1, 2}
	wantPool = []float32{(3 + 1 + 1) / 3.0, (4 + 2 + 2) / 3.0}
	wantItem = map[string]map[string][]float32{
		"i0": {ItemFeatures: {1, 2}, ItemRisk: {0.25}, ItemAge: {float32(math.Log(3))}, AuthorFollowed: {0}},
		"i1": {ItemFeatures: {3, 4}, ItemRisk: {0.5}, ItemAge: {float32(math.Log(1.5))}, AuthorFollowed: {1}},
		"i2": {ItemFeatures: {5, 6}, ItemRisk: {0}, ItemAge: {0}, AuthorFollowed: {0}},
	}
)

func expectedRow(spec model.FeatureSpec, item string) []float32 {
	var row []float32
	for _, b := range spec {
		switch b.Name {
		case UserFeatures:
			row = append(row, wantUser...)
		case EngagementPool:
			row = append(row, wantPool...)
		default:
			row = append(row, wantItem[item][b.Name]...)
		}
	}
	return row
}

func near(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > 1e-6*math.Max(1, math.Abs(float64(b[i]))) {
			return false
		}
	}
	return true
}

func spec(blocks ...string) model.FeatureSpec {
	widths := map[string]int{UserFeatures: 3, EngagementPool: 2, ItemFeatures: 2, ItemRisk: 1, ItemAge: 1, AuthorFollowed: 1}
	var s model.FeatureSpec
	for _, b := range blocks {
		s = append(s, model.FeatureBlock{Name: b, Width: widths[b]})
	}
	return s
}

func TestFillWritesEveryBlockInSpecOrder(t *testing.T) {
	c := fixture(t)
	u := fixtureUser(c)
	tests := map[string]model.FeatureSpec{
		"every block, documented order": spec(UserFeatures, EngagementPool, ItemFeatures, ItemRisk, ItemAge, AuthorFollowed),
		"every block, reversed":         spec(AuthorFollowed, ItemAge, ItemRisk, ItemFeatures, EngagementPool, UserFeatures),
		"item blocks interleaved":       spec(ItemRisk, UserFeatures, ItemAge, EngagementPool, AuthorFollowed, ItemFeatures),
		"item features alone":           spec(ItemFeatures),
		"item age alone":                spec(ItemAge),
		"author followed alone":         spec(AuthorFollowed),
		"user blocks only":              spec(EngagementPool, UserFeatures),
	}
	items := []string{"i2", "i0", "i1", "i0"}
	for name, sp := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := Compile(sp, c)
			if err != nil {
				t.Fatal(err)
			}
			if a.Width() != sp.Width() {
				t.Fatalf("Width() = %d, want %d", a.Width(), sp.Width())
			}
			ords := make([]uint32, len(items))
			for k, id := range items {
				ords[k], _ = c.Ordinal(id)
			}
			dst := blas32.General{Rows: len(items), Cols: a.Width(), Stride: a.Width(), Data: make([]float32, len(items)*a.Width())}
			for k := range dst.Data {
				dst.Data[k] = float32(math.NaN()) // every value must be written
			}
			a.Fill(u, ords, dst)
			for k, id := range items {
				got := dst.Data[k*dst.Stride : (k+1)*dst.Stride]
				if want := expectedRow(sp, id); !near(got, want) {
					t.Errorf("row %d (%s) = %v, want %v", k, id, got, want)
				}
			}
		})
	}
}

func TestFillLeavesOtherRowsAndStridePaddingAlone(t *testing.T) {
	c := fixture(t)
	u := fixtureUser(c)
	sp := spec(ItemRisk, ItemFeatures)
	a, err := Compile(sp, c)
	if err != nil {
		t.Fatal(err)
	}
	const stride = 5
	dst := blas32.General{Rows: 3, Cols: 3, Stride: stride, Data: make([]float32, 3*stride)}
	for k := range dst.Data {
		dst.Data[k] = -7
	}
	o1, _ := c.Ordinal("i1")
	o0, _ := c.Ordinal("i0")
	a.Fill(u, []uint32{o1, o0}, dst)
	want := []float32{
		0.5, 3, 4, -7, -7,
		0.25, 1, 2, -7, -7,
		-7, -7, -7, -7, -7,
	}
	if !slices.Equal(dst.Data, want) {
		t.Errorf("matrix = %v, want %v", dst.Data, want)
	}
}

func TestEngagementPool(t *testing.T) {
	c := fixture(t)
	many := func(n int, item string) []store.Engagement {
		var es []store.Engagement
		for k := range n {
			es = append(es, eng(item, store.Like, time.Duration(k+1)*time.Second))
		}
		return es
	}
	tests := map[string]struct {
		engagements []store.Engagement
		want        []float32
	}{
		"no engagements are zeros":       {want: []float32{0, 0}},
		"one engagement is its features": {engagements: []store.Engagement{eng("i2", store.Share, time.Hour)}, want: []float32{5, 6}},
		"mean of two items": {
			engagements: []store.Engagement{eng("i0", store.Click, 1), eng("i1", store.Comment, 2)},
			want:        []float32{2, 3},
		},
		"each engagement counts, duplicates included": {
			engagements: []store.Engagement{eng("i0", store.Click, 1), eng("i0", store.Like, 2), eng("i2", store.Click, 3)},
			want:        []float32{7 / 3.0, 10 / 3.0},
		},
		"unknown items are skipped": {
			engagements: []store.Engagement{eng("gone", store.Click, 1), eng("i1", store.Click, 2)},
			want:        []float32{3, 4},
		},
		"only unknown items are zeros": {engagements: []store.Engagement{eng("gone", store.Click, 1)}, want: []float32{0, 0}},
		"impressions and see-less are not engagements": {
			engagements: []store.Engagement{eng("i0", store.Impression, 1), eng("i2", store.SeeLess, 2), eng("i1", store.Like, 3)},
			want:        []float32{3, 4},
		},
		"engagements at or after now are ignored": {
			engagements: []store.Engagement{eng("i2", store.Click, -time.Second), eng("i2", store.Click, 0), eng("i0", store.Click, time.Second)},
			want:        []float32{1, 2},
		},
		"only the newest 50 count": {
			engagements: append(many(PoolSize, "i0"), many(10, "i2")...),
			want:        []float32{1, 2},
		},
		"unknown items use up places among the 50": {
			engagements: append(many(PoolSize, "gone"), many(10, "i2")...),
			want:        []float32{0, 0},
		},
		"49 then one more counts the one more": {
			engagements: append(many(PoolSize-1, "i0"), eng("i2", store.Click, time.Hour)),
			want:        []float32{(49*1 + 5) / 50.0, (49*2 + 6) / 50.0},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u := NewUserContext("u0", now, c, tc.engagements, nil)
			if !near(u.Pool, tc.want) {
				t.Errorf("Pool = %v, want %v", u.Pool, tc.want)
			}
		})
	}
}

func TestUnknownUserHasZeroUserFeatures(t *testing.T) {
	c := fixture(t)
	a, err := CompileUser(spec(UserFeatures, EngagementPool), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		user string
		want []float32
	}{
		"known user":   {user: "u0", want: []float32{0.5, -1, 2, 3, 4}},
		"unknown user": {user: "stranger", want: []float32{0, 0, 0, 3, 4}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u := NewUserContext(tc.user, now, c, []store.Engagement{eng("i1", store.Click, time.Minute)}, nil)
			dst := make([]float32, a.Width())
			a.FillUser(u, dst)
			if !slices.Equal(dst, tc.want) {
				t.Errorf("FillUser = %v, want %v", dst, tc.want)
			}
		})
	}
}

func TestResetReusesAContextWithoutStaleValues(t *testing.T) {
	c := fixture(t)
	u := fixtureUser(c)
	u.Reset("stranger", now, c, nil, nil)
	if !slices.Equal(u.Features, []float32{0, 0, 0}) || !slices.Equal(u.Pool, []float32{0, 0}) || len(u.Followed) != 0 {
		t.Errorf("after Reset to a new user: %+v", u)
	}
}

func TestFollowedAuthors(t *testing.T) {
	c := fixture(t)
	tests := map[string]struct {
		follows []string
		want    map[string]float32 // author_followed by item
	}{
		"follows nobody":         {want: map[string]float32{"i0": 0, "i1": 0, "i2": 0}},
		"follows a0, both items": {follows: []string{"a0"}, want: map[string]float32{"i0": 1, "i1": 0, "i2": 1}},
		"follows all, repeated":  {follows: []string{"a1", "a0", "a1"}, want: map[string]float32{"i0": 1, "i1": 1, "i2": 1}},
		"unknown author only":    {follows: []string{"zed"}, want: map[string]float32{"i0": 0, "i1": 0, "i2": 0}},
		"prefix of a known name": {follows: []string{"a"}, want: map[string]float32{"i0": 0, "i1": 0, "i2": 0}},
	}
	a, err := Compile(spec(AuthorFollowed), c)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			u := NewUserContext("u0", now, c, nil, tc.follows)
			for item, want := range tc.want {
				o, _ := c.Ordinal(item)
				dst := blas32.General{Rows: 1, Cols: 1, Stride: 1, Data: []float32{-1}}
				a.Fill(u, []uint32{o}, dst)
				if dst.Data[0] != want {
					t.Errorf("%s: author_followed = %v, want %v", item, dst.Data[0], want)
				}
			}
		})
	}
}

func TestCompileRefusesSpecsTheCatalogCannotFill(t *testing.T) {
	c := fixture(t)
	noUsers, err := catalog.New(2, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	fb := func(name string, width int) model.FeatureBlock { return model.FeatureBlock{Name: name, Width: width} }
	tests := map[string]struct {
		spec     model.FeatureSpec
		cat      *catalog.Catalog
		userOnly bool
		want     string
	}{
		"unknown block":                {spec: model.FeatureSpec{fb(ItemRisk, 1), fb("user_embedding", 16)}, want: `block 1 "user_embedding": unknown name`},
		"item features too wide":       {spec: model.FeatureSpec{fb(ItemFeatures, 3)}, want: `block 0 "item_features": width 3, but the catalog's feature_dim is 2`},
		"engagement pool too narrow":   {spec: model.FeatureSpec{fb(EngagementPool, 1)}, want: `"engagement_pool": width 1, but the catalog's feature_dim is 2`},
		"user features of wrong width": {spec: model.FeatureSpec{fb(UserFeatures, 2)}, want: `"user_features": width 2, but the user table's feature_dim is 3`},
		"scalar of width two":          {spec: model.FeatureSpec{fb(ItemAge, 2)}, want: `"item_age": width 2, but a scalar is 1`},
		"user features without users":  {spec: model.FeatureSpec{fb(UserFeatures, 3)}, cat: noUsers, want: `"user_features": width 3, but the user table's feature_dim is 0`},
		"block listed twice":           {spec: model.FeatureSpec{fb(ItemRisk, 1), fb(ItemRisk, 1)}, want: `block 1 "item_risk": listed twice`},
		"empty spec":                   {spec: nil, want: "no blocks"},
		"item block in a user network": {spec: model.FeatureSpec{fb(UserFeatures, 3), fb(ItemFeatures, 2)}, userOnly: true, want: `block 1 "item_features": describes the item`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cat := tc.cat
			if cat == nil {
				cat = c
			}
			compile := Compile
			if tc.userOnly {
				compile = func(s model.FeatureSpec, c *catalog.Catalog) (*Assembler, error) { return CompileUser(s, c, nil) }
			}
			a, err := compile(tc.spec, cat)
			if err == nil {
				t.Fatalf("Compile succeeded with width %d, want an error containing %q", a.Width(), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestMisuseOfAnAssemblerPanics(t *testing.T) {
	c := fixture(t)
	u := fixtureUser(c)
	item, err := Compile(spec(UserFeatures, ItemRisk), c)
	if err != nil {
		t.Fatal(err)
	}
	user, err := CompileUser(spec(UserFeatures), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(){
		"FillUser with item blocks": func() { item.FillUser(u, make([]float32, item.Width())) },
		"FillUser into a short row": func() { user.FillUser(u, make([]float32, 2)) },
		"Fill into too few columns": func() {
			item.Fill(u, []uint32{0}, blas32.General{Rows: 1, Cols: 3, Stride: 3, Data: make([]float32, 3)})
		},
		"Fill into too few rows": func() {
			item.Fill(u, []uint32{0, 1}, blas32.General{Rows: 1, Cols: 4, Stride: 4, Data: make([]float32, 4)})
		},
		"Fill from a context of another width": func() {
			item.Fill(&UserContext{Features: []float32{1}}, []uint32{0}, blas32.General{Rows: 1, Cols: 4, Stride: 4, Data: make([]float32, 4)})
		},
	}
	for name, call := range tests {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("did not panic")
				}
			}()
			call()
		})
	}
}

func TestAge(t *testing.T) {
	tests := map[string]struct {
		age  time.Duration
		want float64
	}{
		"just created":      {0, 0},
		"one hour":          {time.Hour, math.Ln2},
		"a day":             {24 * time.Hour, math.Log(25)},
		"90 minutes":        {90 * time.Minute, math.Log(2.5)},
		"created in future": {-time.Hour, 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			created := now.Add(-tc.age)
			if got := Age(now.UnixMilli(), created.UnixMilli()); math.Abs(float64(got)-tc.want) > 1e-6 {
				t.Errorf("Age = %v, want %v", got, tc.want)
			}
		})
	}
}

// benchWorld is a catalog of n items with 8 item and 8 user features, a
// user with 50 engagements and 20 follows, and 1500 candidates.
func benchWorld(tb testing.TB, n int) (*catalog.Catalog, *UserContext, []uint32) {
	tb.Helper()
	users := []dataset.User{{ID: "u0", Features: []float32{1, 2, 3, 4, 5, 6, 7, 8}}}
	c, err := catalog.New(8, 8, users)
	if err != nil {
		tb.Fatal(err)
	}
	for k := range n {
		fs := make([]float32, 8)
		for j := range fs {
			fs[j] = float32((k*31+j*7)%97) / 97
		}
		if _, err := c.Add(dataset.Item{
			ID: "i" + strconv.Itoa(k), Author: "a" + strconv.Itoa(k%1000),
			Created: now.Add(-time.Duration(k) * time.Minute), Features: fs, IntegrityRisk: float64(k%10) / 10,
		}); err != nil {
			tb.Fatal(err)
		}
	}
	var engs []store.Engagement
	for k := range PoolSize {
		engs = append(engs, eng("i"+strconv.Itoa(k*13), store.Click, time.Duration(k+1)*time.Minute))
	}
	var follows []string
	for k := range 20 {
		follows = append(follows, "a"+strconv.Itoa(k*17))
	}
	u := NewUserContext("u0", now, c, engs, follows)
	items := make([]uint32, 1500)
	for k := range items {
		items[k] = uint32((k * 7919) % n)
	}
	return c, u, items
}

func rankerSpec() model.FeatureSpec {
	return model.FeatureSpec{
		{Name: UserFeatures, Width: 8}, {Name: EngagementPool, Width: 8}, {Name: ItemFeatures, Width: 8},
		{Name: ItemRisk, Width: 1}, {Name: ItemAge, Width: 1}, {Name: AuthorFollowed, Width: 1},
	}
}

func TestFillAndFillUserAllocateNothing(t *testing.T) {
	c, u, items := benchWorld(t, 20000)
	a, err := Compile(rankerSpec(), c)
	if err != nil {
		t.Fatal(err)
	}
	dst := blas32.General{Rows: len(items), Cols: a.Width(), Stride: a.Width(), Data: make([]float32, len(items)*a.Width())}
	if allocs := testing.AllocsPerRun(20, func() { a.Fill(u, items, dst) }); allocs != 0 {
		t.Errorf("Fill of %d items allocates %v times, want 0", len(items), allocs)
	}
	ua, err := CompileUser(model.FeatureSpec{{Name: UserFeatures, Width: 8}, {Name: EngagementPool, Width: 8}}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]float32, ua.Width())
	if allocs := testing.AllocsPerRun(20, func() { ua.FillUser(u, row) }); allocs != 0 {
		t.Errorf("FillUser allocates %v times, want 0", allocs)
	}
}

func BenchmarkFill(b *testing.B) {
	c, u, items := benchWorld(b, 200000)
	a, err := Compile(rankerSpec(), c)
	if err != nil {
		b.Fatal(err)
	}
	dst := blas32.General{Rows: len(items), Cols: a.Width(), Stride: a.Width(), Data: make([]float32, len(items)*a.Width())}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		a.Fill(u, items, dst)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
}

func BenchmarkNewUserContext(b *testing.B) {
	c, u, _ := benchWorld(b, 200000)
	var engs []store.Engagement
	for k := range PoolSize {
		engs = append(engs, eng("i"+strconv.Itoa(k*13), store.Like, time.Duration(k+1)*time.Minute))
	}
	follows := []string{"a1", "a17", "a34", "a51"}
	b.ReportAllocs()
	for b.Loop() {
		u.Reset("u0", now, c, engs, follows)
	}
}
