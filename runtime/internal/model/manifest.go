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
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
)

// FormatVersion is the artifact format version this package reads and writes.
// A change that an older reader would misinterpret bumps it.
const FormatVersion = 1

// File names inside an artifact directory or archive.
const (
	ManifestFile = "manifest.json"
	WeightsFile  = "model.safetensors"
)

// ErrInvalid is wrapped by every error that reports a malformed artifact
// (as opposed to an I/O or network failure).
var ErrInvalid = errors.New("invalid model artifact")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Kind is the architecture of an artifact.
type Kind string

// Kinds of artifact and the networks each one holds (see Manifest.Networks).
const (
	// KindMLP holds one network, "mlp".
	KindMLP Kind = "MLP"
	// KindTwoTower holds "user" and "item" networks whose outputs have the
	// same width.
	KindTwoTower Kind = "TwoTower"
	// KindMTML holds a "bottom" network and one sigmoid head per entry of
	// Manifest.Heads.
	KindMTML Kind = "MTML"
)

// Network names used in Manifest.Networks and as tensor name prefixes.
const (
	NetMLP    = "mlp"
	NetUser   = "user"
	NetItem   = "item"
	NetBottom = "bottom"
)

// EmbeddingName is the tensor name of the embedding table of the feature
// block name, shaped [len(ids), width]: row r is the vector of ids[r].
func EmbeddingName(name string) string { return "embeddings." + name }

// Tensor names of the MTML heads: HeadsWeight is [bottom output width ×
// len(Heads)], column j being head Heads[j]; HeadsBias is [len(Heads)].
const (
	HeadsWeight = "heads.weight"
	HeadsBias   = "heads.bias"
)

// WeightName is the tensor name of the weight of layer i of a network, shaped
// [in, out] (note: the transpose of a PyTorch nn.Linear weight).
func WeightName(network string, layer int) string {
	return fmt.Sprintf("%s.%d.weight", network, layer)
}

// BiasName is the tensor name of the bias of layer i of a network, shaped [out].
func BiasName(network string, layer int) string {
	return fmt.Sprintf("%s.%d.bias", network, layer)
}

// Activation is the element-wise function applied after a layer.
type Activation string

// Activations understood by the forward pass.
const (
	Identity Activation = "identity"
	ReLU     Activation = "relu"
	// GELU is the exact form x·Φ(x) (PyTorch's default nn.GELU()).
	GELU Activation = "gelu"
	// GELUTanh is the tanh approximation (nn.GELU(approximate="tanh")).
	GELUTanh Activation = "gelu_tanh"
	Tanh     Activation = "tanh"
	Sigmoid  Activation = "sigmoid"
)

var activations = []Activation{Identity, ReLU, GELU, GELUTanh, Tanh, Sigmoid}

// FeatureBlock is a named, contiguous slice of a network's input vector.
type FeatureBlock struct {
	// Name identifies the block, e.g. "user_embedding" or "dot_user_item".
	Name string `json:"name"`
	// Width is the number of float32 values in the block; at least 1.
	Width int `json:"width"`
}

// FeatureSpec is the layout of a network's input vector: its blocks in
// order, each starting where the previous one ends. The runtime assembles
// inputs by it and the trainer writes the layout it trained with.
type FeatureSpec []FeatureBlock

// Width returns the total input width, the sum of the block widths.
func (s FeatureSpec) Width() int {
	w := 0
	for _, b := range s {
		w += b.Width
	}
	return w
}

// Block returns the offset and width of the named block in the input vector.
func (s FeatureSpec) Block(name string) (offset, width int, ok bool) {
	for _, b := range s {
		if b.Name == name {
			return offset, b.Width, true
		}
		offset += b.Width
	}
	return 0, 0, false
}

// LayerSpec describes one dense layer: out = act(in·W + b).
type LayerSpec struct {
	// Out is the output width of the layer; at least 1.
	Out int `json:"out"`
	// Activation applied to the layer's output.
	Activation Activation `json:"activation"`
}

// NetworkSpec describes an MLP: its input layout and its layers in order.
type NetworkSpec struct {
	Input  FeatureSpec `json:"input"`
	Layers []LayerSpec `json:"layers"`
}

// OutputWidth is the output width of the last layer (or the input width of a
// network without layers).
func (n NetworkSpec) OutputWidth() int {
	if len(n.Layers) == 0 {
		return n.Input.Width()
	}
	return n.Layers[len(n.Layers)-1].Out
}

// Manifest is the content of manifest.json.
type Manifest struct {
	// FormatVersion must equal the package's FormatVersion. Save fills it in
	// when zero.
	FormatVersion int `json:"formatVersion"`
	// Name of the model, e.g. "mtml".
	Name string `json:"name"`
	// Version of the model, e.g. "v12"; free-form, non-empty.
	Version string `json:"version"`
	// Kind selects the architecture and the networks required.
	Kind Kind `json:"kind"`
	// Networks by name: "mlp" for KindMLP, "user" and "item" for KindTwoTower,
	// "bottom" for KindMTML.
	Networks map[string]NetworkSpec `json:"networks"`
	// Heads lists the MTML event types in output column order, e.g. click,
	// like, comment, see_less. Empty for other kinds.
	Heads []string `json:"heads,omitempty"`
	// Normalize, for KindTwoTower, L2-normalises both towers' outputs so that
	// their dot product is a cosine. Default false.
	Normalize bool `json:"normalize,omitempty"`
	// Checksum is "sha256:" followed by the lowercase hex SHA-256 of
	// model.safetensors. Save computes it.
	Checksum string `json:"checksum"`
	// Metadata is free-form information from the trainer (data window,
	// offline metrics, ...). Not interpreted.
	Metadata map[string]string `json:"metadata,omitempty"`
	// Embeddings are learned lookup tables by feature block name: a network
	// input block of that name is the table's row for the key the block
	// names (runtime/internal/serving/features defines item_id, keyed by item ID). Each table
	// is the tensor EmbeddingName(name). Last in the file, as it is long.
	Embeddings map[string]EmbeddingSpec `json:"embeddings,omitempty"`
}

// EmbeddingSpec declares one lookup table.
type EmbeddingSpec struct {
	// Width is the length of a vector, and the width of the feature block
	// that reads the table; at least 1.
	Width int `json:"width"`
	// IDs are the keys in table row order: non-empty, unique. A key not
	// listed (an item new since training) reads as zeros.
	IDs []string `json:"ids"`
}

// maxEmbeddingRows bounds the rows of one table.
const maxEmbeddingRows = 1 << 24

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// checksumRE matches the Checksum field.
var checksumRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// maxWidth bounds every input and layer width, to refuse absurd manifests
// before allocating for them.
const maxWidth = 1 << 20

// Validate checks the manifest on its own: format version, names, kind and
// the networks it requires, feature blocks, layer widths and activations,
// heads. It does not check the checksum, which needs the weights file.
func (m *Manifest) Validate() error {
	if m.FormatVersion != FormatVersion {
		return invalidf("manifest: unsupported formatVersion %d (this reader supports %d)", m.FormatVersion, FormatVersion)
	}
	if m.Name == "" {
		return invalidf("manifest: name is empty")
	}
	if m.Version == "" {
		return invalidf("manifest: version is empty")
	}
	var want []string
	switch m.Kind {
	case KindMLP:
		want = []string{NetMLP}
	case KindTwoTower:
		want = []string{NetUser, NetItem}
	case KindMTML:
		want = []string{NetBottom}
	default:
		return invalidf("manifest: unknown kind %q (want %s, %s or %s)", m.Kind, KindMLP, KindTwoTower, KindMTML)
	}
	for name := range m.Networks {
		if !slices.Contains(want, name) {
			return invalidf("manifest: networks[%q] is not used by kind %s (want %s)", name, m.Kind, strings.Join(want, ", "))
		}
	}
	for _, name := range want {
		n, ok := m.Networks[name]
		if !ok {
			return invalidf("manifest: kind %s requires networks[%q]", m.Kind, name)
		}
		if err := n.validate(name); err != nil {
			return err
		}
	}
	switch m.Kind {
	case KindTwoTower:
		u, i := m.Networks[NetUser].OutputWidth(), m.Networks[NetItem].OutputWidth()
		if u != i {
			return invalidf("manifest: user tower output width %d differs from item tower output width %d", u, i)
		}
	case KindMTML:
		if len(m.Heads) == 0 {
			return invalidf("manifest: kind MTML requires at least one entry in heads")
		}
		for i, h := range m.Heads {
			if !nameRE.MatchString(h) {
				return invalidf("manifest: heads[%d] %q is not a valid name (letters, digits, '_', '.', '-')", i, h)
			}
			if slices.Index(m.Heads, h) != i {
				return invalidf("manifest: heads[%d] %q is listed twice", i, h)
			}
		}
	}
	if m.Kind != KindMTML && len(m.Heads) > 0 {
		return invalidf("manifest: heads are only allowed for kind MTML, not %s", m.Kind)
	}
	if m.Normalize && m.Kind != KindTwoTower {
		return invalidf("manifest: normalize is only allowed for kind TwoTower, not %s", m.Kind)
	}
	return m.validateEmbeddings()
}

// validateEmbeddings checks each table's name, width and keys, and that
// some network reads it through an input block of its name and width.
func (m *Manifest) validateEmbeddings() error {
	names := make([]string, 0, len(m.Embeddings))
	for name := range m.Embeddings {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e := m.Embeddings[name]
		if !nameRE.MatchString(name) {
			return invalidf("manifest: embeddings[%q]: not a valid name (letters, digits, '_', '.', '-')", name)
		}
		if e.Width < 1 || e.Width > maxWidth {
			return invalidf("manifest: embeddings[%q].width is %d (want 1..%d)", name, e.Width, maxWidth)
		}
		if len(e.IDs) == 0 || len(e.IDs) > maxEmbeddingRows {
			return invalidf("manifest: embeddings[%q].ids has %d keys (want 1..%d)", name, len(e.IDs), maxEmbeddingRows)
		}
		seen := make(map[string]int, len(e.IDs))
		for r, id := range e.IDs {
			if id == "" {
				return invalidf("manifest: embeddings[%q].ids[%d] is empty", name, r)
			}
			if first, dup := seen[id]; dup {
				return invalidf("manifest: embeddings[%q].ids[%d] %q repeats ids[%d]", name, r, id, first)
			}
			seen[id] = r
		}
		read := false
		for _, net := range m.sortedNetworks() {
			_, w, ok := m.Networks[net].Input.Block(name)
			if !ok {
				continue
			}
			if w != e.Width {
				return invalidf("manifest: networks[%q].input block %q has width %d, but embeddings[%q].width is %d", net, name, w, name, e.Width)
			}
			read = true
		}
		if !read {
			return invalidf("manifest: embeddings[%q] is not read by any network (no input block of that name)", name)
		}
	}
	return nil
}

func (n NetworkSpec) validate(net string) error {
	if len(n.Input) == 0 {
		return invalidf("manifest: networks[%q].input has no feature blocks", net)
	}
	total := 0
	for i, b := range n.Input {
		if !nameRE.MatchString(b.Name) {
			return invalidf("manifest: networks[%q].input[%d].name %q is not a valid name (letters, digits, '_', '.', '-')", net, i, b.Name)
		}
		if b.Width < 1 || b.Width > maxWidth {
			return invalidf("manifest: networks[%q].input[%d] (%s) has width %d (want 1..%d)", net, i, b.Name, b.Width, maxWidth)
		}
		for _, prev := range n.Input[:i] {
			if prev.Name == b.Name {
				return invalidf("manifest: networks[%q].input[%d] (%s) is listed twice", net, i, b.Name)
			}
		}
		total += b.Width
	}
	if total > maxWidth {
		return invalidf("manifest: networks[%q].input is %d wide (want at most %d)", net, total, maxWidth)
	}
	if len(n.Layers) == 0 {
		return invalidf("manifest: networks[%q] has no layers", net)
	}
	for i, l := range n.Layers {
		if l.Out < 1 || l.Out > maxWidth {
			return invalidf("manifest: networks[%q].layers[%d].out is %d (want 1..%d)", net, i, l.Out, maxWidth)
		}
		if !slices.Contains(activations, l.Activation) {
			return invalidf("manifest: networks[%q].layers[%d].activation: unknown activation %q (want one of %s)", net, i, l.Activation, activationList())
		}
	}
	return nil
}

func activationList() string {
	s := make([]string, len(activations))
	for i, a := range activations {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

// sortedNetworks returns the manifest's network names in sorted order.
func (m *Manifest) sortedNetworks() []string {
	names := make([]string, 0, len(m.Networks))
	for name := range m.Networks {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// ExpectedShapes returns every tensor the manifest requires, by name, with its
// shape. The manifest must be valid.
func (m *Manifest) ExpectedShapes() map[string][]int {
	shapes := make(map[string][]int)
	for _, net := range m.sortedNetworks() {
		n := m.Networks[net]
		in := n.Input.Width()
		for i, l := range n.Layers {
			shapes[WeightName(net, i)] = []int{in, l.Out}
			shapes[BiasName(net, i)] = []int{l.Out}
			in = l.Out
		}
	}
	for name, e := range m.Embeddings {
		shapes[EmbeddingName(name)] = []int{len(e.IDs), e.Width}
	}
	if m.Kind == KindMTML {
		shapes[HeadsWeight] = []int{m.Networks[NetBottom].OutputWidth(), len(m.Heads)}
		shapes[HeadsBias] = []int{len(m.Heads)}
	}
	return shapes
}

// CheckTensors checks tensors against a valid manifest: every required tensor
// present with its exact shape, no other tensor, and every value finite.
func (m *Manifest) CheckTensors(tensors map[string]Tensor) error {
	want := m.ExpectedShapes()
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		t, ok := tensors[name]
		if !ok {
			return invalidf("tensor %q is missing (shape %v expected)", name, want[name])
		}
		if !slices.Equal(t.Shape, want[name]) {
			return invalidf("tensor %q has shape %v, manifest requires %v", name, t.Shape, want[name])
		}
		if len(t.Data) != t.NumElements() {
			return invalidf("tensor %q has %d values for shape %v", name, len(t.Data), t.Shape)
		}
		for i, v := range t.Data {
			switch f := float64(v); {
			case math.IsNaN(f):
				return invalidf("tensor %q: element %d is NaN", name, i)
			case math.IsInf(f, 0):
				return invalidf("tensor %q: element %d is %v", name, i, f)
			}
		}
	}
	extra := make([]string, 0)
	for name := range tensors {
		if _, ok := want[name]; !ok {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return invalidf("tensor %q is not used by the manifest (kind %s)", extra[0], m.Kind)
	}
	return nil
}
