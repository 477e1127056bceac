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
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// embeddingManifest is a two-tower model whose item tower reads a 4-wide
// item_id table of three items.
func embeddingManifest() *Manifest {
	m := twoTowerManifest(false)
	item := m.Networks[NetItem]
	item.Input = FeatureSpec{{Name: "item_features", Width: 6}, {Name: "item_id", Width: 4}}
	m.Networks[NetItem] = item
	m.Embeddings = map[string]EmbeddingSpec{"item_id": {Width: 4, IDs: []string{"i0", "i1", "i2"}}}
	return m
}

func TestEmbeddingRoundTrip(t *testing.T) {
	m := embeddingManifest()
	tensors := randTensors(m, 7)
	if got := tensors[EmbeddingName("item_id")].Shape; !slices.Equal(got, []int{3, 4}) {
		t.Fatalf("ExpectedShapes gives the table shape %v, want [3 4]", got)
	}
	dir := filepath.Join(t.TempDir(), "tt")
	if err := Save(dir, m, tensors); err != nil {
		t.Fatal(err)
	}
	a, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := a.Embeddings["item_id"]
	if e == nil || e.Width() != 4 || e.Len() != 3 {
		t.Fatalf("loaded table %+v, want 3 keys of width 4", e)
	}
	table := tensors[EmbeddingName("item_id")].Data
	for r, id := range []string{"i0", "i1", "i2"} {
		if got := e.Lookup(id); !slices.Equal(got, table[r*4:(r+1)*4]) {
			t.Errorf("Lookup(%s) = %v, want row %d %v", id, got, r, table[r*4:(r+1)*4])
		}
	}
	if got := e.Lookup("i3"); got != nil {
		t.Errorf("Lookup of a key the table does not list = %v, want nil", got)
	}
	if n := testing.AllocsPerRun(100, func() { e.Lookup("i1") }); n != 0 {
		t.Errorf("Lookup allocates %v times", n)
	}
}

func TestEmbeddingRefusals(t *testing.T) {
	tests := map[string]struct {
		mutate  func(m *Manifest, tensors map[string]Tensor)
		wantErr string
	}{
		"repeated key": {
			mutate: func(m *Manifest, _ map[string]Tensor) {
				m.Embeddings["item_id"] = EmbeddingSpec{Width: 4, IDs: []string{"i0", "i1", "i0"}}
			},
			wantErr: `embeddings["item_id"].ids[2] "i0" repeats ids[0]`,
		},
		"empty key": {
			mutate: func(m *Manifest, _ map[string]Tensor) {
				m.Embeddings["item_id"] = EmbeddingSpec{Width: 4, IDs: []string{"i0", "", "i2"}}
			},
			wantErr: `embeddings["item_id"].ids[1] is empty`,
		},
		"no keys": {
			mutate: func(m *Manifest, ts map[string]Tensor) {
				m.Embeddings["item_id"] = EmbeddingSpec{Width: 4}
			},
			wantErr: `embeddings["item_id"].ids has 0 keys`,
		},
		"block narrower than the table": {
			mutate: func(m *Manifest, _ map[string]Tensor) {
				m.Embeddings["item_id"] = EmbeddingSpec{Width: 5, IDs: []string{"i0", "i1", "i2"}}
			},
			wantErr: `networks["item"].input block "item_id" has width 4, but embeddings["item_id"].width is 5`,
		},
		"table no network reads": {
			mutate: func(m *Manifest, _ map[string]Tensor) {
				m.Embeddings["author_id"] = EmbeddingSpec{Width: 2, IDs: []string{"a0"}}
			},
			wantErr: `embeddings["author_id"] is not read by any network`,
		},
		"table with a row too few": {
			mutate: func(_ *Manifest, ts map[string]Tensor) {
				ts[EmbeddingName("item_id")] = Tensor{Shape: []int{2, 4}, Data: make([]float32, 8)}
			},
			wantErr: `tensor "embeddings.item_id" has shape [2 4], manifest requires [3 4]`,
		},
		"table missing": {
			mutate: func(_ *Manifest, ts map[string]Tensor) {
				delete(ts, EmbeddingName("item_id"))
			},
			wantErr: `tensor "embeddings.item_id" is missing`,
		},
		"table of a manifest without embeddings": {
			mutate: func(m *Manifest, _ map[string]Tensor) {
				m.Embeddings = nil
			},
			wantErr: `tensor "embeddings.item_id" is not used by the manifest`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := embeddingManifest()
			tensors := randTensors(m, 8)
			tc.mutate(m, tensors)
			// Save refuses it, and so does Load of the same bytes written
			// without validation.
			err := Save(filepath.Join(t.TempDir(), "a"), m, tensors)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Save error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
			mb, wb := rawArtifact(t, m, tensors)
			if _, err := Parse(mb, wb); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestEmbeddingFindsEveryKey checks the key table on enough keys that many
// sit past their first slot: every key finds its row, other keys none, and
// a repeated key is refused.
func TestEmbeddingFindsEveryKey(t *testing.T) {
	const n, width = 20000, 2
	ids := make([]string, n)
	for r := range ids {
		ids[r] = "item-" + strconv.Itoa(r*7)
	}
	table := make([]float32, n*width)
	for i := range table {
		table[i] = float32(i)
	}
	e, err := NewEmbedding(ids, width, table)
	if err != nil {
		t.Fatal(err)
	}
	if e.Len() != n {
		t.Fatalf("Len() = %d, want %d", e.Len(), n)
	}
	for r, id := range ids {
		if got := e.Row(id); got != int32(r) {
			t.Fatalf("Row(%q) = %d, want %d", id, got, r)
		}
		if v := e.Lookup(id); len(v) != width || v[0] != float32(r*width) {
			t.Fatalf("Lookup(%q) = %v, want row %d", id, v, r)
		}
	}
	for _, id := range []string{"", "item-1", "item-" + strconv.Itoa(7*n), "item"} {
		if got := e.Row(id); got != -1 {
			t.Errorf("Row(%q) = %d, want -1", id, got)
		}
	}
	dup := append(slices.Clone(ids), ids[n/2])
	if _, err := NewEmbedding(dup, width, make([]float32, len(dup)*width)); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Errorf("NewEmbedding with a repeated key: %v, want refused", err)
	}
}
