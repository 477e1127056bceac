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
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// itemIDTable is a 2-wide item_id table listing i0 and i1 of the fixture
// (and an item the catalog does not hold); i2 is new since training.
func itemIDTable(t testing.TB) map[string]*model.Embedding {
	t.Helper()
	e, err := model.NewEmbedding([]string{"i1", "gone", "i0"}, 2, []float32{10, 20, 7, 7, 1, 3})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*model.Embedding{ItemID: e}
}

func TestItemTowerReadsTheItemIDTable(t *testing.T) {
	c := fixture(t)
	a, err := CompileItem(model.FeatureSpec{{Name: ItemFeatures, Width: 2}, {Name: ItemRisk, Width: 1}, {Name: ItemID, Width: 2}}, c, itemIDTable(t))
	if err != nil {
		t.Fatal(err)
	}
	var ords []uint32
	for _, id := range []string{"i0", "i1", "i2"} {
		o, _ := c.Ordinal(id)
		ords = append(ords, o)
	}
	dst := blas32.General{Rows: 3, Cols: 5, Stride: 5, Data: make([]float32, 15)}
	for k := range dst.Data {
		dst.Data[k] = -9 // every value must be written
	}
	a.Fill(NewUserContext("", now, c, nil, nil), ords, dst)
	want := []float32{
		1, 2, 0.25, 1, 3, // i0: its row
		3, 4, 0.5, 10, 20, // i1: its row
		5, 6, 0, 0, 0, // i2: not in the table, zeros
	}
	for k, v := range want {
		if dst.Data[k] != v {
			t.Fatalf("rows = %v, want %v", dst.Data, want)
		}
	}
}

func TestUserTowerPoolsTheItemIDTable(t *testing.T) {
	c := fixture(t)
	a, err := CompileUser(model.FeatureSpec{{Name: EngagementPool, Width: 2}, {Name: EngagementIDPool, Width: 2}}, c, itemIDTable(t))
	if err != nil {
		t.Fatal(err)
	}
	row := make([]float32, a.Width())
	a.FillUser(fixtureUser(c), row)
	// The pool is i1, i0, i0: rows (10,20), (1,3), (1,3).
	want := append(append([]float32(nil), wantPool...), 12.0/3, 26.0/3)
	if !near(row, want) {
		t.Errorf("user row = %v, want %v", row, want)
	}
	// An item the table does not list counts as zeros; no engagement
	// gives zeros.
	u := NewUserContext("u0", now, c, []store.Engagement{eng("i2", store.Click, time.Minute), eng("i1", store.Like, 2*time.Minute)}, nil)
	a.FillUser(u, row)
	if want := []float32{4, 5, 5, 10}; !near(row, want) {
		t.Errorf("user row with an unlisted item = %v, want %v", row, want)
	}
	a.FillUser(NewUserContext("u0", now, c, nil, nil), row)
	if want := []float32{0, 0, 0, 0}; !near(row, want) {
		t.Errorf("user row without engagements = %v, want %v", row, want)
	}
	fu := fixtureUser(c)
	if n := testing.AllocsPerRun(20, func() { a.FillUser(fu, row) }); n != 0 {
		t.Errorf("FillUser allocates %v times", n)
	}
}

func TestCompileRefusesTablesAndRequestBlocksWhereTheyCannotBeFilled(t *testing.T) {
	c := fixture(t)
	tables := itemIDTable(t)
	fb := func(name string, width int) model.FeatureBlock { return model.FeatureBlock{Name: name, Width: width} }
	compileItem := func(s model.FeatureSpec) error { _, err := CompileItem(s, c, tables); return err }
	compileUser := func(s model.FeatureSpec) error { _, err := CompileUser(s, c, tables); return err }
	compileAny := func(s model.FeatureSpec) error { _, err := Compile(s, c); return err }
	tests := map[string]struct {
		compile func(model.FeatureSpec) error
		spec    model.FeatureSpec
		want    string
	}{
		"item age in an item tower": {compileItem, model.FeatureSpec{fb(ItemFeatures, 2), fb(ItemAge, 1)},
			`block 1 "item_age": changes with the request's user or time, but this item tower's outputs are computed once per item (allowed: item_features, item_risk, item_id)`},
		"author followed in an item tower": {compileItem, model.FeatureSpec{fb(AuthorFollowed, 1)}, `block 0 "author_followed": changes with the request's user or time`},
		"user features in an item tower":   {compileItem, model.FeatureSpec{fb(UserFeatures, 3)}, `block 0 "user_features": changes with the request's user or time`},
		"item id of the wrong width":       {compileItem, model.FeatureSpec{fb(ItemID, 3)}, `block 0 "item_id": width 3, but the width of the model's item_id table is 2`},
		"item id without a table": {func(s model.FeatureSpec) error { _, err := CompileItem(s, c, nil); return err },
			model.FeatureSpec{fb(ItemID, 2)}, `block 0 "item_id": the model has no item_id embedding table`},
		"item id in a ranker": {compileAny, model.FeatureSpec{fb(ItemFeatures, 2), fb(ItemID, 2)}, `block 1 "item_id": reads the model's item_id embedding table, which this network is not given`},
		"item id in a ranker without a table": {func(s model.FeatureSpec) error { _, err := CompileRanker(s, c, nil, nil); return err },
			model.FeatureSpec{fb(ItemID, 2)}, `block 0 "item_id": the model has no item_id embedding table`},
		"id affinity without the id pool": {func(s model.FeatureSpec) error { _, err := CompileRanker(s, c, tables, nil); return err },
			model.FeatureSpec{fb(ItemID, 2), fb(IDAffinity, 1)}, `block "id_affinity": the spec must also list "engagement_id_pool"`},
		"id affinity of the wrong width": {func(s model.FeatureSpec) error { _, err := CompileRanker(s, c, tables, nil); return err },
			model.FeatureSpec{fb(EngagementIDPool, 2), fb(IDAffinity, 2)}, `block 1 "id_affinity": width 2, but a scalar is 1`},
		"id pool in a ranker":        {compileAny, model.FeatureSpec{fb(EngagementIDPool, 2)}, `block 0 "engagement_id_pool": reads the model's item_id embedding table`},
		"item id in a user tower":    {compileUser, model.FeatureSpec{fb(UserFeatures, 3), fb(ItemID, 2)}, `block 1 "item_id": describes the item`},
		"id pool of the wrong width": {compileUser, model.FeatureSpec{fb(EngagementIDPool, 4)}, `block 0 "engagement_id_pool": width 4, but the width of the model's item_id table is 2`},
		"id pool in an item tower":   {compileItem, model.FeatureSpec{fb(EngagementIDPool, 2)}, `block 0 "engagement_id_pool": changes with the request's user or time`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.compile(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A ranker with its own item_id table reads the item's row, the pool's
// mean row and their dot product, the same through Fill and FillSplit.
func TestRankerReadsItsItemIDTable(t *testing.T) {
	c := fixture(t)
	spec := model.FeatureSpec{{Name: IDAffinity, Width: 1}, {Name: ItemRisk, Width: 1}, {Name: EngagementIDPool, Width: 2}, {Name: ItemID, Width: 2}}
	a, err := CompileRanker(spec, c, itemIDTable(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ords []uint32
	for _, id := range []string{"i0", "i1", "i2"} {
		o, _ := c.Ordinal(id)
		ords = append(ords, o)
	}
	// u0's pool is i1, i0, i0: rows (10,20), (1,3), (1,3), mean (4, 26/3).
	pool := []float32{4, 26.0 / 3}
	want := []float32{
		4*1 + 26.0/3*3, 0.25, pool[0], pool[1], 1, 3, // i0
		4*10 + 26.0/3*20, 0.5, pool[0], pool[1], 10, 20, // i1
		0, 0, pool[0], pool[1], 0, 0, // i2: not in the table
	}
	dst := blas32.General{Rows: 3, Cols: 6, Stride: 6, Data: make([]float32, 18)}
	for k := range dst.Data {
		dst.Data[k] = -9 // every value must be written
	}
	u := fixtureUser(c)
	a.Fill(u, ords, dst)
	if !near(dst.Data, want) {
		t.Errorf("Fill rows = %v, want %v", dst.Data, want)
	}
	// FillSplit: the pool is shared, the rest per item in row order.
	if cols := a.SharedColumns(); !slices.Equal(cols, []int{2, 3}) {
		t.Fatalf("shared columns %v, want [2 3]", cols)
	}
	shared := make([]float32, 2)
	rest := blas32.General{Rows: 3, Cols: 4, Stride: 4, Data: make([]float32, 12)}
	a.FillSplit(u, ords, shared, rest)
	if !near(shared, pool) {
		t.Errorf("shared = %v, want %v", shared, pool)
	}
	for r := range 3 {
		w := want[r*6 : (r+1)*6]
		if got, wantRest := rest.Data[r*4:(r+1)*4], []float32{w[0], w[1], w[4], w[5]}; !near(got, wantRest) {
			t.Errorf("FillSplit row %d = %v, want %v", r, got, wantRest)
		}
	}
	if n := testing.AllocsPerRun(20, func() { a.Fill(u, ords, dst) }); n != 0 {
		t.Errorf("Fill allocates %v times", n)
	}
}

// An ID-only catalog (feature_dim 0, no user table): the blocks of its
// empty data are one column wide and read as zeros, whatever the buffer
// held, as rectrain writes them.
func TestEmptyDataBlocksReadAsOneZero(t *testing.T) {
	c, err := catalog.New(0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(dataset.Item{ID: "i0", Author: "a0", Created: now.Add(-time.Hour), Features: []float32{}}); err != nil {
		t.Fatal(err)
	}
	spec := model.FeatureSpec{{Name: UserFeatures, Width: 1}, {Name: EngagementPool, Width: 1}, {Name: ItemFeatures, Width: 1}, {Name: ItemAge, Width: 1}}
	a, err := Compile(spec, c)
	if err != nil {
		t.Fatal(err)
	}
	dst := blas32.General{Rows: 1, Cols: 4, Stride: 4, Data: []float32{-9, -9, -9, -9}}
	a.Fill(NewUserContext("u0", now, c, nil, nil), []uint32{0}, dst)
	if want := []float32{0, 0, 0, float32(math.Log(2))}; !near(dst.Data, want) {
		t.Errorf("row = %v, want %v", dst.Data, want)
	}
	if _, err := Compile(model.FeatureSpec{{Name: ItemFeatures, Width: 2}}, c); err == nil || !strings.Contains(err.Error(), `block 0 "item_features": width 2, but the catalog's feature_dim is 0`) {
		t.Errorf("a 2-wide block of empty data: error %v", err)
	}
}

// TestItemIDRowsFollowTheCatalog: the table's rows are resolved by catalog
// ordinal once per model and catalog; an item the catalog gains later
// still reads its row (the table may list it), an unlisted one zeros.
func TestItemIDRowsFollowTheCatalog(t *testing.T) {
	c := fixture(t)
	tables := itemIDTable(t)
	spec := model.FeatureSpec{{Name: ItemID, Width: 2}}
	a, err := CompileItem(spec, c, tables)
	if err != nil {
		t.Fatal(err)
	}
	b, err := CompileItem(spec, c, tables)
	if err != nil {
		t.Fatal(err)
	}
	if a.idRows != b.idRows {
		t.Error("a second compile for the same model and catalog resolved the rows again")
	}
	for _, id := range []string{"gone", "i9"} {
		if _, err := c.Add(dataset.Item{ID: id, Author: "a1", Created: now.Add(-time.Minute), Features: []float32{0, 0}}); err != nil {
			t.Fatal(err)
		}
	}
	var ords []uint32
	for _, id := range []string{"i0", "gone", "i9", "i1"} {
		o, ok := c.Ordinal(id)
		if !ok {
			t.Fatalf("%s not in the catalog", id)
		}
		ords = append(ords, o)
	}
	// The first assembler reads the items added since by their ids; a new
	// compile extends the mapping to them.
	grown, err := CompileItem(spec, c, tables)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(grown.idRows.rows); n != c.Len() || len(a.idRows.rows) >= n {
		t.Errorf("mappings of %d and, after the catalog grew, %d items; the catalog holds %d", len(a.idRows.rows), n, c.Len())
	}
	for _, as := range []*Assembler{a, grown} {
		dst := blas32.General{Rows: 4, Cols: 2, Stride: 2, Data: make([]float32, 8)}
		as.Fill(NewUserContext("", now, c, nil, nil), ords, dst)
		if want := []float32{1, 3, 7, 7, 0, 0, 10, 20}; !slices.Equal(dst.Data, want) {
			t.Errorf("rows = %v, want %v (i0, gone added after the mapping, i9 unlisted, i1)", dst.Data, want)
		}
	}
}

// TestItemIDRowsAreDroppedWithTheModel: the cache does not keep a model's
// table alive.
func TestItemIDRowsAreDroppedWithTheModel(t *testing.T) {
	c := fixture(t)
	count := func() int {
		n := 0
		idRowsCache.Range(func(k, _ any) bool {
			if k.(idRowsKey).cat.Value() == c {
				n++
			}
			return true
		})
		return n
	}
	func() {
		tables := itemIDTable(t)
		if _, err := CompileItem(model.FeatureSpec{{Name: ItemID, Width: 2}}, c, tables); err != nil {
			t.Fatal(err)
		}
		if count() != 1 {
			t.Fatalf("%d mappings for the catalog after a compile, want 1", count())
		}
		runtime.KeepAlive(tables[ItemID])
	}()
	deadline := time.Now().Add(10 * time.Second)
	for count() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the mapping outlived its model's table")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkFillItemID fills the blocks that read the item_id table, as the
// second stage of rectrain's models does, for 1,500 candidates of a
// 200,000-item catalog whose table lists every item.
func BenchmarkFillItemID(b *testing.B) {
	c, u, items := benchWorld(b, 200000)
	const width = 16
	ids := make([]string, c.Len())
	table := make([]float32, c.Len()*width)
	for o := range ids {
		ids[o] = c.ID(uint32(o))
		for k := range width {
			table[o*width+k] = float32((o+k)%13) / 13
		}
	}
	e, err := model.NewEmbedding(ids, width, table)
	if err != nil {
		b.Fatal(err)
	}
	spec := model.FeatureSpec{{Name: ItemFeatures, Width: 8}, {Name: ItemID, Width: width}, {Name: EngagementIDPool, Width: width}, {Name: IDAffinity, Width: 1}}
	a, err := CompileRanker(spec, c, map[string]*model.Embedding{ItemID: e}, nil)
	if err != nil {
		b.Fatal(err)
	}
	dst := blas32.General{Rows: len(items), Cols: a.Width(), Stride: a.Width(), Data: make([]float32, len(items)*a.Width())}
	b.ReportAllocs()
	for b.Loop() {
		a.Fill(u, items, dst)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(items)), "ns/item")
}
