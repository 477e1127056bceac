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

package synth

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// TestIDOnlyWithholdsOnlyTheFeatures checks that an id-only world is the
// featured world of the same Config less its features: catalog and user
// table of width 0 that the dataset readers accept, and the same follows,
// log and planted truth.
func TestIDOnlyWithholdsOnlyTheFeatures(t *testing.T) {
	tests := map[string]struct {
		cfg  Config
		opts WriteOptions
	}{
		"default width":     {cfg: Config{Users: 60, Items: 400, Events: 2000, Seed: 4}},
		"width 5, gzip":     {cfg: Config{Users: 60, Items: 400, Events: 2000, Seed: 5, FeatureDim: 5}, opts: WriteOptions{Gzip: true}},
		"two blocks of ids": {cfg: Config{Users: blockSize + 10, Items: blockSize + 10, Events: 3000, Seed: 6, Workers: 2}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			featured := Generate(tc.cfg)
			cfg := tc.cfg
			cfg.IDOnly = true
			idOnly := Generate(cfg)
			fdir, idir := worldDir{t.TempDir(), tc.opts.Gzip}, worldDir{t.TempDir(), tc.opts.Gzip}
			if err := featured.WriteDirWith(fdir.dir, tc.opts); err != nil {
				t.Fatal(err)
			}
			if err := idOnly.WriteDirWith(idir.dir, tc.opts); err != nil {
				t.Fatal(err)
			}
			checkIDOnlyWorld(t, featured, idOnly)
			for _, f := range []string{EventsFile, FollowsFile, TruthUsersFile, TruthItemsFile, TruthAuthorsFile} {
				if !bytes.Equal(readFile(t, fdir.path(f)), readFile(t, idir.path(f))) {
					t.Errorf("%s differs between the featured and the id-only world", f)
				}
			}
			checkIDOnlyEvents(t, fdir, idir, idOnly)
			checkIDOnlyCatalog(t, fdir, idir, featured, idOnly)
			checkIDOnlyUsers(t, idir, idOnly)
			checkIDOnlyTruth(t, idir, featured, idOnly)
		})
	}
}

// worldDir is a directory a world was written to, gzip-compressed or not.
type worldDir struct {
	dir  string
	gzip bool
}

func (w worldDir) path(name string) string {
	if w.gzip {
		name += ".gz"
	}
	return filepath.Join(w.dir, name)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkIDOnlyWorld checks that the id-only world has no features and the
// featured world's events.
func checkIDOnlyWorld(t *testing.T, featured, idOnly *World) {
	t.Helper()
	if idOnly.FeatureDim() != 0 || featured.FeatureDim() != featured.Config().FeatureDim || featured.FeatureDim() == 0 {
		t.Errorf("FeatureDim is %d id-only and %d featured (config %d)", idOnly.FeatureDim(), featured.FeatureDim(), featured.Config().FeatureDim)
	}
	if idOnly.NumEvents() != featured.NumEvents() || idOnly.NumEvents() == 0 {
		t.Errorf("the id-only world has %d events, the featured one %d", idOnly.NumEvents(), featured.NumEvents())
	}
	if len(idOnly.ItemFeatures(3)) != 0 || len(idOnly.UserFeatures(3)) != 0 {
		t.Errorf("id-only features: item %v, user %v", idOnly.ItemFeatures(3), idOnly.UserFeatures(3))
	}
}

// checkIDOnlyEvents checks that the strict events reader reads every event
// of both logs.
func checkIDOnlyEvents(t *testing.T, fdir, idir worldDir, idOnly *World) {
	t.Helper()
	strict := dataset.ReadOptions{Strict: true}
	fEvents, err := readAll(dataset.OpenEvents(fdir.path(EventsFile), strict))
	if err != nil {
		t.Fatal(err)
	}
	iEvents, err := readAll(dataset.OpenEvents(idir.path(EventsFile), strict))
	if err != nil {
		t.Fatal(err)
	}
	if len(iEvents) != len(fEvents) || len(iEvents) != idOnly.NumEvents() {
		t.Errorf("read %d id-only events, %d featured, the world has %d", len(iEvents), len(fEvents), idOnly.NumEvents())
	}
}

// checkIDOnlyCatalog checks that the id-only catalog has width 0 and the
// featured catalog's rows less their features.
func checkIDOnlyCatalog(t *testing.T, fdir, idir worldDir, featured, idOnly *World) {
	t.Helper()
	strict := dataset.ReadOptions{Strict: true}
	cat, err := dataset.OpenCatalog(idir.path(CatalogFile), strict)
	if err != nil {
		t.Fatal(err)
	}
	if d := cat.Header().FeatureDim; d != 0 {
		t.Errorf("id-only catalog has feature_dim %d", d)
	}
	items, err := cat.ReadAll()
	_ = cat.Close()
	if err != nil {
		t.Fatal(err)
	}
	fItems, err := readAll(dataset.OpenCatalog(fdir.path(CatalogFile), strict))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(fItems) || len(items) != idOnly.NumItems() {
		t.Fatalf("read %d id-only items, %d featured, the world has %d", len(items), len(fItems), idOnly.NumItems())
	}
	for k, it := range items {
		f := fItems[k]
		if len(it.Features) != 0 || len(f.Features) != featured.FeatureDim() {
			t.Fatalf("item %s has %d features id-only, %d featured", it.ID, len(it.Features), len(f.Features))
		}
		if it.ID != f.ID || it.Author != f.Author || !it.Created.Equal(f.Created) || it.IntegrityRisk != f.IntegrityRisk {
			t.Fatalf("catalog row %d is %+v id-only, %+v featured", k, it, f)
		}
	}
}

// checkIDOnlyUsers checks that the id-only user table has width 0 and
// every user.
func checkIDOnlyUsers(t *testing.T, idir worldDir, idOnly *World) {
	t.Helper()
	ur, err := dataset.OpenUsers(idir.path(UsersFile), dataset.ReadOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := ur.Header().FeatureDim; d != 0 {
		t.Errorf("id-only user table has feature_dim %d", d)
	}
	users, err := ur.ReadAll()
	_ = ur.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != idOnly.NumUsers() {
		t.Errorf("read %d users, the world has %d", len(users), idOnly.NumUsers())
	}
	for k, u := range users {
		if u.ID != UserID(k) || len(u.Features) != 0 {
			t.Fatalf("user row %d is %+v, want %s without features", k, u, UserID(k))
		}
	}
}

// checkIDOnlyTruth checks that the id-only truth read back is id-only and
// plants the featured world's probabilities.
func checkIDOnlyTruth(t *testing.T, idir worldDir, featured, idOnly *World) {
	t.Helper()
	truth, err := ReadTruth(idir.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !truth.Config().IDOnly || truth.FeatureDim() != 0 {
		t.Errorf("the truth read back has IDOnly %v, FeatureDim() %d", truth.Config().IDOnly, truth.FeatureDim())
	}
	for u := 0; u < idOnly.NumUsers(); u += 11 {
		for i := 0; i < idOnly.NumItems(); i += 37 {
			if a, b := truth.TrueProbabilities(u, i), featured.TrueProbabilities(u, i); a != b {
				t.Fatalf("user %d item %d: id-only truth %+v, featured world %+v", u, i, a, b)
			}
		}
	}
}

func readAll[T any](r *dataset.Reader[T], err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.ReadAll()
}
