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
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/strpack"
)

// Artifact is a loaded, validated model. Exactly one of MLP, TwoTower and
// MTML is set, according to Manifest.Kind.
type Artifact struct {
	// Manifest is the model's manifest, except that its Embeddings carry no
	// IDs: the Embeddings below hold them, packed.
	Manifest Manifest
	MLP      *MLP
	TwoTower *TwoTower
	MTML     *MTML
	// Embeddings are the lookup tables of Manifest.Embeddings, by name;
	// nil when there are none.
	Embeddings map[string]*Embedding
}

// Embedding is a loaded lookup table: a learned vector per key. It is
// read-only and safe for concurrent use.
//
// Its keys are found through an open-addressing table of row numbers
// written here rather than a Go map: a map from a million string keys takes
// about 58 bytes a key, all of them scanned by every collection, where the
// table takes 8 bytes a key and holds no pointers; the keys themselves are
// kept once, packed in one block (strpack.Table) that holds no pointers
// either. (The catalog's index of ids is the same kind of table but grows
// under concurrent inserts and keeps a hash per slot, twice the bytes; a
// model's keys are fixed when it loads.)
type Embedding struct {
	width int
	ids   strpack.Table // one block, which collections do not read
	seed  maphash.Seed
	slots []uint32  // row+1 of the key hashing there, 0 for none; a power of two at most half full
	table []float32 // len(ids)×width
}

// NewEmbedding builds a table of width-long vectors, row r of table (row
// major) being the vector of ids[r]. IDs must be non-empty and unique. The
// table keeps a packed copy of ids.
func NewEmbedding(ids []string, width int, table []float32) (*Embedding, error) {
	if width < 1 || len(table) != len(ids)*width {
		return nil, invalidf("embedding: %d values for %d keys of width %d", len(table), len(ids), width)
	}
	size := 16
	for size < 2*len(ids) {
		size *= 2
	}
	packed, err := strpack.NewTable(ids)
	if err != nil {
		return nil, invalidf("embedding: %v", err)
	}
	e := &Embedding{width: width, ids: packed, seed: maphash.MakeSeed(), slots: make([]uint32, size), table: table}
	for r, id := range ids {
		i, found := e.probe(id)
		if found || id == "" {
			return nil, invalidf("embedding: key %d %q is empty or repeated", r, id)
		}
		e.slots[i] = uint32(r) + 1
	}
	return e, nil
}

// probe returns the slot of key id, and whether it holds id; when it does
// not, the slot is the empty one where id would go.
func (e *Embedding) probe(id string) (int, bool) {
	mask := uint64(len(e.slots) - 1)
	for i := maphash.String(e.seed, id) & mask; ; i = (i + 1) & mask {
		s := e.slots[i]
		if s == 0 {
			return int(i), false
		}
		if e.ids.At(int(s-1)) == id {
			return int(i), true
		}
	}
}

// Width is the length of a vector.
func (e *Embedding) Width() int { return e.width }

// Len is the number of keys.
func (e *Embedding) Len() int { return e.ids.Len() }

// Lookup returns the vector of key id (a view of the table, not to be
// modified), or nil when the table does not list it. It allocates nothing.
func (e *Embedding) Lookup(id string) []float32 {
	r := e.Row(id)
	if r < 0 {
		return nil
	}
	off := int(r) * e.width
	return e.table[off : off+e.width : off+e.width]
}

// Row returns the table row of key id, or -1 when the table does not list
// it: with Vector, a lookup that callers can resolve once and keep.
func (e *Embedding) Row(id string) int32 {
	i, ok := e.probe(id)
	if !ok {
		return -1
	}
	return int32(e.slots[i] - 1)
}

// Vector returns row r's vector (a view of the table, not to be modified);
// r must be a row Row returned.
func (e *Embedding) Vector(r int32) []float32 {
	off := int(r) * e.width
	return e.table[off : off+e.width : off+e.width]
}

// New validates a manifest and its tensors and builds the networks. It does
// not check Manifest.Checksum, which belongs to a file; Load does. The tensors
// are used in place, not copied.
func New(m *Manifest, tensors map[string]Tensor) (*Artifact, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if err := m.CheckTensors(tensors); err != nil {
		return nil, err
	}
	a := &Artifact{Manifest: *m}
	if len(m.Embeddings) > 0 {
		// The manifest's ids, a string object each, would stay reachable
		// through a.Manifest; the embeddings keep them packed instead.
		a.Manifest.Embeddings = make(map[string]EmbeddingSpec, len(m.Embeddings))
		for name, spec := range m.Embeddings {
			spec.IDs = nil
			a.Manifest.Embeddings[name] = spec
		}
	}
	for name, spec := range m.Embeddings {
		e, err := NewEmbedding(spec.IDs, spec.Width, tensors[EmbeddingName(name)].Data)
		if err != nil {
			return nil, fmt.Errorf("embeddings[%q]: %w", name, err)
		}
		if a.Embeddings == nil {
			a.Embeddings = map[string]*Embedding{}
		}
		a.Embeddings[name] = e
	}
	build := func(net string) (*MLP, error) {
		spec := m.Networks[net]
		layers := make([]Layer, len(spec.Layers))
		for i, l := range spec.Layers {
			w := tensors[WeightName(net, i)]
			layers[i] = Layer{
				W:   blas32.General{Rows: w.Shape[0], Cols: w.Shape[1], Stride: w.Shape[1], Data: w.Data},
				B:   tensors[BiasName(net, i)].Data,
				Act: l.Activation,
			}
		}
		return NewMLP(layers)
	}
	var err error
	switch m.Kind {
	case KindMLP:
		a.MLP, err = build(NetMLP)
	case KindTwoTower:
		var user, item *MLP
		if user, err = build(NetUser); err != nil {
			return nil, err
		}
		if item, err = build(NetItem); err != nil {
			return nil, err
		}
		a.TwoTower, err = NewTwoTower(user, item, m.Normalize)
	case KindMTML:
		var bottom *MLP
		if bottom, err = build(NetBottom); err != nil {
			return nil, err
		}
		w := tensors[HeadsWeight]
		hw := blas32.General{Rows: w.Shape[0], Cols: w.Shape[1], Stride: w.Shape[1], Data: w.Data}
		a.MTML, err = NewMTML(bottom, m.Heads, hw, tensors[HeadsBias].Data)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Checksum returns the manifest checksum of a weights file's bytes:
// "sha256:" and the lowercase hex digest.
func Checksum(weights []byte) string {
	sum := sha256.Sum256(weights)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// maxManifestBytes bounds manifest.json, whose embedding keys make it
// grow with the catalog (about 12 bytes per item ID).
const maxManifestBytes = 256 << 20

// ParseManifest decodes and validates manifest.json. Unknown fields are
// refused, so that a misspelt field is an error rather than a default.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > maxManifestBytes {
		return nil, invalidf("%s is %d bytes (limit %d)", ManifestFile, len(b), maxManifestBytes)
	}
	// Read the version alone first: a manifest of another version is
	// reported as such, not as unknown fields.
	var v struct {
		FormatVersion *int `json:"formatVersion"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, invalidf("failed to decode %s: %v", ManifestFile, err)
	}
	if v.FormatVersion == nil {
		return nil, invalidf("manifest: formatVersion is missing")
	}
	if *v.FormatVersion != FormatVersion {
		return nil, invalidf("manifest: unsupported formatVersion %d (this reader supports %d)", *v.FormatVersion, FormatVersion)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, invalidf("failed to decode %s: %v", ManifestFile, err)
	}
	if dec.More() {
		return nil, invalidf("failed to decode %s: trailing data after the JSON object", ManifestFile)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Parse builds an artifact from the bytes of manifest.json and
// model.safetensors, checking the manifest, the checksum, the safetensors
// structure, the tensor shapes and values, in that order. The weights buffer
// is retained by the artifact and must not be modified.
func Parse(manifest, weights []byte) (*Artifact, error) {
	m, err := ParseManifest(manifest)
	if err != nil {
		return nil, err
	}
	if !checksumRE.MatchString(m.Checksum) {
		return nil, invalidf("manifest: checksum %q is not of the form sha256:<64 lowercase hex digits>", m.Checksum)
	}
	if got := Checksum(weights); got != m.Checksum {
		return nil, invalidf("checksum mismatch: manifest records %s but %s (%d bytes) has %s; the weights file is corrupt, truncated or from another artifact", m.Checksum, WeightsFile, len(weights), got)
	}
	tensors, err := ParseSafetensors(weights)
	if err != nil {
		return nil, err
	}
	return New(m, tensors)
}

// LoadDir loads the artifact in directory dir.
func LoadDir(dir string) (*Artifact, error) {
	mb, err := readFileLimit(filepath.Join(dir, ManifestFile), maxManifestBytes)
	if err != nil {
		return nil, err
	}
	wb, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, fmt.Errorf("failed to read weights: %w", err)
	}
	return Parse(mb, wb)
}

func readFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read manifest: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("failed to read manifest: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, invalidf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// encode validates m and tensors and returns the bytes of manifest.json and
// model.safetensors, with FormatVersion (when zero) and Checksum filled in.
func encode(m *Manifest, tensors map[string]Tensor) (manifest, weights []byte, err error) {
	mc := *m
	if mc.FormatVersion == 0 {
		mc.FormatVersion = FormatVersion
	}
	if err := mc.Validate(); err != nil {
		return nil, nil, err
	}
	if err := mc.CheckTensors(tensors); err != nil {
		return nil, nil, err
	}
	var wb bytes.Buffer
	if err := WriteSafetensors(&wb, tensors); err != nil {
		return nil, nil, err
	}
	mc.Checksum = Checksum(wb.Bytes())
	mb, err := json.MarshalIndent(&mc, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("failed to encode manifest: %w", err)
	}
	return append(mb, '\n'), wb.Bytes(), nil
}

// Save validates the manifest and tensors exactly as Load will and writes the
// artifact to dir (created if needed) as manifest.json and model.safetensors.
// The written manifest carries the current FormatVersion (m.FormatVersion may
// be zero) and the checksum of the weights; m itself is not modified. Each
// file is written to a temporary name and renamed, weights first, so a reader
// never sees a partly written file. Nothing is written if validation fails.
func Save(dir string, m *Manifest, tensors map[string]Tensor) error {
	mb, wb, err := encode(m, tensors)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create artifact directory: %w", err)
	}
	if err := writeFileAtomic(dir, WeightsFile, wb); err != nil {
		return err
	}
	return writeFileAtomic(dir, ManifestFile, mb)
}

func writeFileAtomic(dir, name string, b []byte) error {
	return WriteFileAtomic(dir, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// WriteFileAtomic replaces dir/name with what write writes, through a
// synced temporary file in dir renamed over it (mode 0644, readable by the
// serving user) and a synced dir: a reader, or a restart after a crash,
// finds the old file or the whole new one, never a torn one.
func WriteFileAtomic(dir, name string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, "."+name+"-*")
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", name, err)
	}
	tmp := f.Name()
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync() // the rename survives a crash
		_ = d.Close()
	}
	return nil
}
