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
	"os"
	"path/filepath"
	"testing"
)

func TestReadTruthGivesTheSameProbabilities(t *testing.T) {
	tests := map[string]WriteOptions{
		"plain": {},
		"gzip":  {Gzip: true},
	}
	w := Generate(Config{Users: 50, Items: 300, Events: 2000, Seed: 9})
	weights := DefaultWeights()
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := w.WriteDirWith(dir, opts); err != nil {
				t.Fatal(err)
			}
			if !HasTruth(dir) {
				t.Fatalf("HasTruth is false for a directory WriteDir wrote")
			}
			got, err := ReadTruth(dir)
			if err != nil {
				t.Fatal(err)
			}
			if gc, wc := got.Config(), w.Config(); gc.TopicCandidates != wc.TopicCandidates || gc.RankerNoise != wc.RankerNoise {
				t.Errorf("read back a previous recommender of %d candidates, noise %v; want %d, %v", gc.TopicCandidates, gc.RankerNoise, wc.TopicCandidates, wc.RankerNoise)
			}
			if got.NumUsers() != w.NumUsers() || got.NumItems() != w.NumItems() || got.Config().Model != w.Config().Model {
				t.Fatalf("read back %d users, %d items, model %+v; want %d, %d, %+v",
					got.NumUsers(), got.NumItems(), got.Config().Model, w.NumUsers(), w.NumItems(), w.Config().Model)
			}
			for u := 0; u < w.NumUsers(); u += 7 {
				for i := 0; i < w.NumItems(); i += 13 {
					if a, b := got.TrueProbabilities(u, i), w.TrueProbabilities(u, i); a != b {
						t.Fatalf("user %d item %d: read-back probabilities %+v, generated %+v", u, i, a, b)
					}
				}
				if a, b := got.Oracle(weights).TopK(u, 5, nil), w.Oracle(weights).TopK(u, 5, nil); a[0] != b[0] || a[4] != b[4] {
					t.Fatalf("user %d: read-back oracle top 5 %v, generated %v", u, a, b)
				}
			}
			for i := 0; i < w.NumItems(); i += 17 {
				if got.ItemAuthor(i) != w.ItemAuthor(i) || !got.ItemCreated(i).Equal(w.ItemCreated(i)) {
					t.Fatalf("item %d: author %d created %v, want %d %v", i, got.ItemAuthor(i), got.ItemCreated(i), w.ItemAuthor(i), w.ItemCreated(i))
				}
			}
		})
	}
}

func TestReadTruthRefusesBrokenFiles(t *testing.T) {
	w := Generate(Config{Users: 20, Items: 100, Events: 500, Seed: 2})
	tests := map[string]func(dir string) error{
		"no truth": func(dir string) error { return os.Remove(filepath.Join(dir, TruthFile)) },
		"truncated users": func(dir string) error {
			p := filepath.Join(dir, TruthUsersFile)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b[:len(b)/2], 0o644)
		},
		"other format": func(dir string) error {
			return os.WriteFile(filepath.Join(dir, TruthFile), []byte(`{"format":"something","version":1}`), 0o644)
		},
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := w.WriteDir(dir); err != nil {
				t.Fatal(err)
			}
			if err := breakIt(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadTruth(dir); err == nil {
				t.Errorf("ReadTruth accepted a directory with %s", name)
			}
		})
	}
}
