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
	"errors"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// item returns a valid item whose fields all derive from k, so that a reader
// can check any ordinal's columns without shared state.
func item(k int, dim int) dataset.Item {
	fs := make([]float32, dim)
	for j := range fs {
		fs[j] = float32(k*10 + j)
	}
	return dataset.Item{
		ID:            "i" + strconv.Itoa(k),
		Author:        "a" + strconv.Itoa(k%7),
		Created:       t0.Add(time.Duration(k) * time.Second),
		Features:      fs,
		IntegrityRisk: float64(k%100) / 100,
	}
}

func mustNew(t testing.TB, dim int, users ...dataset.User) *Catalog {
	t.Helper()
	userDim := 0
	if len(users) > 0 {
		userDim = len(users[0].Features)
	}
	c, err := New(dim, userDim, users)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOrdinalAndIDRoundTripAcrossChunks(t *testing.T) {
	c := mustNew(t, 3)
	n := 2*chunkSize + 17 // crosses chunk boundaries and several index growths
	for k := range n {
		o, err := c.Add(item(k, 3))
		if err != nil {
			t.Fatal(err)
		}
		if int(o) != k {
			t.Fatalf("Add #%d returned ordinal %d", k, o)
		}
	}
	if c.Len() != n {
		t.Fatalf("Len() = %d, want %d", c.Len(), n)
	}
	for k := range n {
		o := uint32(k)
		want := item(k, 3)
		if got, ok := c.Ordinal(c.ID(o)); !ok || got != o {
			t.Fatalf("Ordinal(ID(%d)) = %d, %v", o, got, ok)
		}
		if c.ID(o) != want.ID || c.Author(o) != want.Author || !c.Created(o).Equal(want.Created) ||
			c.Risk(o) != float32(want.IntegrityRisk) || !slices.Equal(c.Features(o), want.Features) {
			t.Fatalf("ordinal %d reads back %q %q %v %v %v, want %+v", o, c.ID(o), c.Author(o), c.Created(o), c.Risk(o), c.Features(o), want)
		}
	}
	for _, id := range []string{"", "i-1", "i" + strconv.Itoa(n), "a0"} {
		if o, ok := c.Ordinal(id); ok {
			t.Errorf("Ordinal(%q) = %d, true; want not found", id, o)
		}
	}
}

// TestOrdinalsIsOrdinalForEachID checks the batched lookup against Ordinal
// over more ids than a batch, held and absent, in a table full enough that
// many ids sit past their first slot.
func TestOrdinalsIsOrdinalForEachID(t *testing.T) {
	c := mustNew(t, 0)
	n := chunkSize + 300
	for k := range n {
		if _, err := c.Add(item(k, 0)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for k := range n + 500 { // the last 500 are not held
		ids = append(ids, "i"+strconv.Itoa((k*7919)%(n+500)))
	}
	ids = append(ids, "", "a0", ids[3])
	prefix := []int64{42}
	got := c.Ordinals(ids, prefix)
	if len(got) != 1+len(ids) || got[0] != 42 {
		t.Fatalf("Ordinals appended %d values to a 1-value prefix (kept %d); want %d after 42", len(got)-1, got[0], len(ids))
	}
	absent := 0
	for i, id := range ids {
		want := int64(-1)
		if o, ok := c.Ordinal(id); ok {
			want = int64(o)
		} else {
			absent++
		}
		if got[1+i] != want {
			t.Fatalf("Ordinals: %q -> %d, Ordinal gives %d", id, got[1+i], want)
		}
	}
	if absent != 502 {
		t.Errorf("%d ids not found, want 502", absent)
	}
}

func TestFeaturesIsACappedViewOfOneRow(t *testing.T) {
	c := mustNew(t, 4)
	for k := range 3 {
		if _, err := c.Add(item(k, 4)); err != nil {
			t.Fatal(err)
		}
	}
	f := c.Features(1)
	if len(f) != 4 || cap(f) != 4 {
		t.Fatalf("len, cap = %d, %d; want 4, 4 so that an append cannot overwrite the next row", len(f), cap(f))
	}
	_ = append(f, -1)
	if c.Features(2)[0] != 20 {
		t.Fatalf("appending to a view changed the next item")
	}
}

func TestAuthorsAreInternedAndIndexed(t *testing.T) {
	c := mustNew(t, 0)
	for _, it := range []dataset.Item{
		{ID: "x", Author: strings.Clone("alice"), Created: t0},
		{ID: "y", Author: "bob", Created: t0},
		{ID: "z", Author: strings.Clone("alice"), Created: t0},
	} {
		if _, err := c.Add(it); err != nil {
			t.Fatal(err)
		}
	}
	if c.NumAuthors() != 2 {
		t.Fatalf("NumAuthors() = %d, want 2", c.NumAuthors())
	}
	if c.AuthorIndex(0) != c.AuthorIndex(2) || c.AuthorIndex(0) == c.AuthorIndex(1) {
		t.Errorf("author indices %d %d %d: want items 0 and 2 equal, 1 different", c.AuthorIndex(0), c.AuthorIndex(1), c.AuthorIndex(2))
	}
	if unsafe.StringData(c.Author(0)) != unsafe.StringData(c.Author(2)) {
		t.Errorf("the two items of alice do not share one author string")
	}
	if a, ok := c.LookupAuthor("bob"); !ok || c.AuthorName(a) != "bob" || a != c.AuthorIndex(1) {
		t.Errorf("LookupAuthor(bob) = %d, %v", a, ok)
	}
	if _, ok := c.LookupAuthor("carol"); ok {
		t.Errorf("LookupAuthor(carol) found an author that has no item")
	}
}

func TestAddChecksItemsAndKeepsTheFirstOfADuplicate(t *testing.T) {
	nan := float32(math.NaN())
	tests := map[string]struct {
		item    dataset.Item
		wantErr string
	}{
		"features absent are zeros":   {item: dataset.Item{ID: "n", Author: "a", Created: t0}},
		"features of the right width": {item: dataset.Item{ID: "n", Author: "a", Created: t0, Features: []float32{1, 2}}},
		"features too narrow":         {item: dataset.Item{ID: "n", Author: "a", Created: t0, Features: []float32{1}}, wantErr: `"features": has 1 values, want 2`},
		"features too wide":           {item: dataset.Item{ID: "n", Author: "a", Created: t0, Features: []float32{1, 2, 3}}, wantErr: `"features": has 3 values, want 2`},
		"feature not finite":          {item: dataset.Item{ID: "n", Author: "a", Created: t0, Features: []float32{1, nan}}, wantErr: "value 1 is not finite"},
		"empty ID":                    {item: dataset.Item{Author: "a", Created: t0}, wantErr: `"id": must not be empty`},
		"empty author":                {item: dataset.Item{ID: "n", Created: t0}, wantErr: `"author": must not be empty`},
		"ID too long":                 {item: dataset.Item{ID: strings.Repeat("x", 257), Author: "a", Created: t0}, wantErr: "longer than 256 bytes"},
		"risk above one":              {item: dataset.Item{ID: "n", Author: "a", Created: t0, IntegrityRisk: 1.01}, wantErr: `"integrity_risk"`},
		"risk NaN":                    {item: dataset.Item{ID: "n", Author: "a", Created: t0, IntegrityRisk: math.NaN()}, wantErr: `"integrity_risk"`},
		"zero creation time":          {item: dataset.Item{ID: "n", Author: "a"}, wantErr: `"created"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := mustNew(t, 2)
			o, err := c.Add(tc.item)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Add = %v, want an error containing %q", err, tc.wantErr)
				}
				if c.Len() != 0 {
					t.Fatalf("a refused item was added")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.item.Features
			if want == nil {
				want = []float32{0, 0}
			}
			if !slices.Equal(c.Features(o), want) {
				t.Errorf("Features = %v, want %v", c.Features(o), want)
			}
		})
	}

	t.Run("duplicate ID", func(t *testing.T) {
		c := mustNew(t, 2)
		first, _ := c.Add(item(0, 2))
		if _, err := c.Add(item(1, 2)); err != nil {
			t.Fatal(err)
		}
		dup := item(0, 2)
		dup.Features = []float32{-1, -1}
		o, err := c.Add(dup)
		if !errors.Is(err, ErrDuplicate) || o != first {
			t.Fatalf("Add(duplicate) = %d, %v; want %d and ErrDuplicate", o, err, first)
		}
		if c.Len() != 2 || !slices.Equal(c.Features(first), item(0, 2).Features) {
			t.Fatalf("the duplicate changed the catalog")
		}
	})
}

func TestUserFeaturesAreZerosForUnknownUsers(t *testing.T) {
	c := mustNew(t, 2,
		dataset.User{ID: "u0", Features: []float32{1, 2, 3}},
		dataset.User{ID: "u1", Features: []float32{4, 5, 6}},
	)
	tests := map[string]struct {
		user   string
		want   []float32
		wantOK bool
	}{
		"first user":   {user: "u0", want: []float32{1, 2, 3}, wantOK: true},
		"second user":  {user: "u1", want: []float32{4, 5, 6}, wantOK: true},
		"unknown user": {user: "u2", want: []float32{0, 0, 0}},
		"empty user":   {user: "", want: []float32{0, 0, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := c.UserFeatures(tc.user)
			if ok != tc.wantOK || !slices.Equal(got, tc.want) {
				t.Errorf("UserFeatures(%q) = %v, %v; want %v, %v", tc.user, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	if c.UserFeatureDim() != 3 || c.NumUsers() != 2 {
		t.Errorf("UserFeatureDim, NumUsers = %d, %d; want 3, 2", c.UserFeatureDim(), c.NumUsers())
	}
}

func TestNewRefusesBadUserTables(t *testing.T) {
	tests := map[string]struct {
		dim, userDim int
		users        []dataset.User
		want         string
	}{
		"duplicate user":      {userDim: 1, users: []dataset.User{{ID: "u", Features: []float32{1}}, {ID: "u", Features: []float32{2}}}, want: `user "u" appears twice`},
		"user width":          {userDim: 2, users: []dataset.User{{ID: "u", Features: []float32{1}}}, want: "has 1 values, want 2"},
		"missing user ID":     {userDim: 1, users: []dataset.User{{Features: []float32{1}}}, want: "must not be empty"},
		"feature_dim too big": {dim: dataset.MaxFeatureDim + 1, want: "outside 0..4096"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := New(tc.dim, tc.userDim, tc.users); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestConcurrentAddAndReads runs readers of every accessor while writers add
// items across chunk boundaries and index growths. Run with -race.
func TestConcurrentAddAndReads(t *testing.T) {
	const (
		dim     = 4
		writers = 2
		perW    = chunkSize + 500
		readers = 4
	)
	c := mustNew(t, dim)
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perW {
				if _, err := c.Add(item(w*perW+j, dim)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var rg sync.WaitGroup
	for r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for step := 0; ; step++ {
				select {
				case <-done:
					return
				default:
				}
				n := c.Len()
				if n == 0 {
					continue
				}
				o := uint32((step*7919 + r) % n)
				id := c.ID(o)
				k, err := strconv.Atoi(id[1:])
				if err != nil {
					errs <- err
					return
				}
				want := item(k, dim)
				if c.Author(o) != want.Author || c.CreatedMillis(o) != want.Created.UnixMilli() ||
					c.Risk(o) != float32(want.IntegrityRisk) || !slices.Equal(c.Features(o), want.Features) {
					errs <- errors.New("ordinal " + strconv.Itoa(int(o)) + " read back columns of another item")
					return
				}
				if got, ok := c.Ordinal(id); !ok || got != o {
					errs <- errors.New("Ordinal(" + id + ") does not find its ordinal")
					return
				}
				// An ID being added concurrently is either absent or complete.
				next := "i" + strconv.Itoa((step*31+r)%(writers*perW))
				if o2, ok := c.Ordinal(next); ok && c.ID(o2) != next {
					errs <- errors.New("Ordinal(" + next + ") returned another item")
					return
				}
				if a, ok := c.LookupAuthor(want.Author); !ok || c.AuthorName(a) != want.Author {
					errs <- errors.New("LookupAuthor(" + want.Author + ") failed")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	rg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Len() != writers*perW {
		t.Fatalf("Len() = %d, want %d", c.Len(), writers*perW)
	}
	for k := range writers * perW {
		if o, ok := c.Ordinal("i" + strconv.Itoa(k)); !ok || c.ID(o) != "i"+strconv.Itoa(k) {
			t.Fatalf("item %d lost", k)
		}
	}
}

func TestReadsAllocateNothing(t *testing.T) {
	c := mustNew(t, 8, dataset.User{ID: "u0", Features: make([]float32, 8)})
	for k := range 1000 {
		if _, err := c.Add(item(k, 8)); err != nil {
			t.Fatal(err)
		}
	}
	var sink float32
	allocs := testing.AllocsPerRun(100, func() {
		for o := range uint32(1000) {
			if got, ok := c.Ordinal(c.ID(o)); !ok || got != o {
				t.Fatal("round trip failed")
			}
			sink += c.Features(o)[0] + c.Risk(o) + float32(c.AuthorIndex(o)) + float32(c.CreatedMillis(o)%2)
			_ = c.Author(o)
		}
		u, _ := c.UserFeatures("u0")
		sink += u[0]
	})
	if allocs != 0 {
		t.Errorf("reads allocate %v times per run, want 0", allocs)
	}
	_ = sink
}

// The serving clock reads the catalog's newest creation time: it must
// follow items added in any order, and report an empty catalog.
func TestNewestCreatedFollowsAddedItems(t *testing.T) {
	c := mustNew(t, 0)
	if got, ok := c.NewestCreated(); ok {
		t.Errorf("an empty catalog's newest creation time is %v, want none", got)
	}
	for _, tc := range []struct {
		k    int
		want int // the k of the newest item so far
	}{{5, 5}, {2, 5}, {9, 9}, {7, 9}} {
		it := item(tc.k, 0)
		it.Features = nil
		if _, err := c.Add(it); err != nil {
			t.Fatal(err)
		}
		want := t0.Add(time.Duration(tc.want) * time.Second)
		if got, ok := c.NewestCreated(); !ok || !got.Equal(want) {
			t.Errorf("after adding item %d the newest creation time is %v (%v), want %v", tc.k, got, ok, want)
		}
	}
}

// BenchmarkOrdinals looks up 400 random ids of a million-item catalog, as
// the followed-authors source does per request, one at a time with Ordinal
// and at once with Ordinals.
func BenchmarkOrdinals(b *testing.B) {
	const n, batch = 1_000_000, 400
	c := mustNew(b, 0)
	for k := range n {
		if _, err := c.Add(item(k, 0)); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, batch*64)
	for i := range ids {
		ids[i] = "i" + strconv.Itoa((i*7919+13)%n)
	}
	b.Run("Ordinal", func(b *testing.B) {
		i := 0
		for b.Loop() {
			for _, id := range ids[i : i+batch] {
				c.Ordinal(id)
			}
			i = (i + batch) % len(ids)
		}
	})
	b.Run("Ordinals", func(b *testing.B) {
		dst := make([]int64, 0, batch)
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			dst = c.Ordinals(ids[i:i+batch], dst[:0])
			i = (i + batch) % len(ids)
		}
	})
}

// TestChunkHoldsOnePointerFirst: a chunk's only pointer is its features
// slice, first, so that a collection reads 24 bytes of each 4,096 items
// rather than a column of id headers (a million pointers at a million
// items, followed by every collection).
func TestChunkHoldsOnePointerFirst(t *testing.T) {
	ty := reflect.TypeFor[chunk]()
	for i := range ty.NumField() {
		f := ty.Field(i)
		if hasPointers(f.Type) != (f.Name == "features") {
			t.Errorf("chunk.%s (%v): pointers %v", f.Name, f.Type, hasPointers(f.Type))
		}
	}
	if ty.Field(0).Name != "features" {
		t.Errorf("chunk's first field is %s, want features", ty.Field(0).Name)
	}
}

func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return hasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if hasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	case reflect.Pointer, reflect.Slice, reflect.String, reflect.Map, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return true
	}
	return false
}
