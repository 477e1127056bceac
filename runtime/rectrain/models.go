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
	"maps"

	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/model"
	"github.com/recpipeline/recpipeline/runtime/rectrain/nn"
)

// Feature block names: the contract with the runtime, which assembles the
// same vectors at serving time.
const (
	FeatUser           = "user_features"
	FeatEngagementPool = "engagement_pool"
	FeatItem           = "item_features"
	FeatItemRisk       = "item_risk"
	FeatItemAge        = "item_age"
	FeatAuthorFollowed = "author_followed"
)

// featureDocs describes the features in every manifest's metadata.
var featureDocs = map[string]string{
	"feature." + FeatUser:           "the user's features from users.jsonl; zeros for an unknown user",
	"feature." + FeatEngagementPool: "mean item_features of the user's last 50 click/like/comment/share events (each event counts once) before the scored event; zeros if none",
	"feature." + FeatItem:           "the item's features from catalog.jsonl",
	"feature." + FeatItemRisk:       "the item's integrity_risk",
	"feature." + FeatItemAge:        "ln(1 + max(0, t - created)/1h) at the scoring time t",
	"feature." + FeatAuthorFollowed: "1 if the user follows the item's author at the scoring time, else 0",
}

// TwoTower is a trainable two-tower model: the score of an item for a user
// is the dot product of the towers' outputs (not normalised: the artifact
// sets normalize false, so an embedding's norm carries popularity).
type TwoTower struct {
	User, Item         *nn.MLP
	UserSpec, ItemSpec model.FeatureSpec
}

// MTML is a trainable shared-bottom multi-task ranker: P = σ(bottom(x)·W+b),
// one column per entry of Heads.
type MTML struct {
	Bottom *nn.MLP
	// HeadLayer is a single identity layer from the bottom's output to one
	// logit per head.
	HeadLayer *nn.MLP
	Spec      model.FeatureSpec
}

func (d *Data) userSpec() model.FeatureSpec {
	return model.FeatureSpec{{Name: FeatUser, Width: max(d.UserDim, 1)}, {Name: FeatEngagementPool, Width: max(d.ItemDim, 1)}}
}

func (d *Data) itemSpec() model.FeatureSpec {
	return model.FeatureSpec{{Name: FeatItem, Width: max(d.ItemDim, 1)}}
}

func (d *Data) rankSpec() model.FeatureSpec {
	return model.FeatureSpec{
		{Name: FeatUser, Width: max(d.UserDim, 1)}, {Name: FeatEngagementPool, Width: max(d.ItemDim, 1)},
		{Name: FeatItem, Width: max(d.ItemDim, 1)}, {Name: FeatItemRisk, Width: 1},
		{Name: FeatItemAge, Width: 1}, {Name: FeatAuthorFollowed, Width: 1},
	}
}

func newTwoTower(d *Data, hidden, dim int, seed uint64) (*TwoTower, error) {
	t := &TwoTower{UserSpec: d.userSpec(), ItemSpec: d.itemSpec()}
	layers := []nn.LayerSize{{Out: hidden, Act: model.ReLU}, {Out: dim, Act: model.Identity}}
	var err error
	if t.User, err = nn.NewMLP(t.UserSpec.Width(), layers, seed); err != nil {
		return nil, err
	}
	if t.Item, err = nn.NewMLP(t.ItemSpec.Width(), layers, seed+1); err != nil {
		return nil, err
	}
	return t, nil
}

func newMTML(d *Data, hidden []int, seed uint64) (*MTML, error) {
	m := &MTML{Spec: d.rankSpec()}
	layers := make([]nn.LayerSize, len(hidden))
	for i, h := range hidden {
		layers[i] = nn.LayerSize{Out: h, Act: model.ReLU}
	}
	var err error
	if m.Bottom, err = nn.NewMLP(m.Spec.Width(), layers, seed); err != nil {
		return nil, err
	}
	if m.HeadLayer, err = nn.NewMLP(m.Bottom.Out(), []nn.LayerSize{{Out: len(Heads), Act: model.Identity}}, seed+1); err != nil {
		return nil, err
	}
	return m, nil
}

// Manifest returns the artifact manifest and tensors of the model.
func (t *TwoTower) Manifest(name, version string, meta map[string]string) (*model.Manifest, map[string]model.Tensor) {
	tensors := map[string]model.Tensor{}
	m := &model.Manifest{
		FormatVersion: model.FormatVersion, Name: name, Version: version, Kind: model.KindTwoTower,
		Networks: map[string]model.NetworkSpec{
			model.NetUser: {Input: t.UserSpec, Layers: t.User.Export(model.NetUser, tensors)},
			model.NetItem: {Input: t.ItemSpec, Layers: t.Item.Export(model.NetItem, tensors)},
		},
		Normalize: false,
		Metadata:  withFeatureDocs(meta),
	}
	return m, tensors
}

// Manifest returns the artifact manifest and tensors of the model.
func (m *MTML) Manifest(name, version string, meta map[string]string) (*model.Manifest, map[string]model.Tensor) {
	tensors := map[string]model.Tensor{}
	man := &model.Manifest{
		FormatVersion: model.FormatVersion, Name: name, Version: version, Kind: model.KindMTML,
		Networks: map[string]model.NetworkSpec{
			model.NetBottom: {Input: m.Spec, Layers: m.Bottom.Export(model.NetBottom, tensors)},
		},
		Heads:    append([]string(nil), Heads...),
		Metadata: withFeatureDocs(meta),
	}
	h := m.HeadLayer.Layers[0]
	tensors[model.HeadsWeight] = model.Tensor{Shape: []int{h.In, h.Out}, Data: nn.To32(h.W)}
	tensors[model.HeadsBias] = model.Tensor{Shape: []int{h.Out}, Data: nn.To32(h.B)}
	return man, tensors
}

func withFeatureDocs(meta map[string]string) map[string]string {
	out := maps.Clone(featureDocs)
	maps.Copy(out, meta)
	return out
}

// Save writes the model as an artifact directory.
func (t *TwoTower) Save(dir, name, version string, meta map[string]string) error {
	m, tensors := t.Manifest(name, version, meta)
	if err := model.Save(dir, m, tensors); err != nil {
		return fmt.Errorf("failed to save %s: %w", name, err)
	}
	return nil
}

// Save writes the model as an artifact directory.
func (m *MTML) Save(dir, name, version string, meta map[string]string) error {
	man, tensors := m.Manifest(name, version, meta)
	if err := model.Save(dir, man, tensors); err != nil {
		return fmt.Errorf("failed to save %s: %w", name, err)
	}
	return nil
}

// Inputs assembles feature rows into reused buffers.

// userRow writes [user_features, engagement_pool] to dst.
func (d *Data) userRow(dst []float64, u int32, pool []float32) {
	o := 0
	if d.UserDim > 0 {
		for _, v := range d.User(u) {
			dst[o] = float64(v)
			o++
		}
	} else {
		dst[o] = 0
		o++
	}
	if d.ItemDim == 0 {
		dst[o] = 0
		return
	}
	for _, v := range pool {
		dst[o] = float64(v)
		o++
	}
}

// itemRow writes [item_features] to dst.
func (d *Data) itemRow(dst []float64, i int32) {
	if d.ItemDim == 0 {
		dst[0] = 0
		return
	}
	for k, v := range d.Item(i) {
		dst[k] = float64(v)
	}
}

// rankRow writes the MTML input of item i for user u at time t.
func (d *Data) rankRow(dst []float64, u int32, pool []float32, i int32, t int64, followed bool) {
	uw, iw := max(d.UserDim, 1), max(d.ItemDim, 1)
	d.userRow(dst[:uw+iw], u, pool)
	d.itemRow(dst[uw+iw:uw+2*iw], i)
	o := uw + 2*iw
	dst[o] = float64(d.ItemRisk[i])
	dst[o+1] = d.ItemAge(i, t)
	dst[o+2] = 0
	if followed {
		dst[o+2] = 1
	}
}

func matrix(buf []float64, rows, cols int) ([]float64, blas64.General) {
	if cap(buf) < rows*cols {
		buf = make([]float64, rows*cols)
	}
	buf = buf[:rows*cols]
	return buf, blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: buf}
}
