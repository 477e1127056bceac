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
	"slices"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
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
	FeatItemID         = "item_id"
	FeatEngagementIDs  = "engagement_id_pool"
	FeatIDAffinity     = "id_affinity"
	FeatTwoTowerScore  = "two_tower_score"
)

// featureDocs describes the features in every manifest's metadata.
var featureDocs = map[string]string{
	"feature." + FeatUser:           "the user's features from users.jsonl; zeros for an unknown user",
	"feature." + FeatEngagementPool: "mean item_features of the user's last 50 click/like/comment/share events (each event counts once) before the scored event; zeros if none",
	"feature." + FeatItem:           "the item's features from catalog.jsonl",
	"feature." + FeatItemRisk:       "the item's integrity_risk",
	"feature." + FeatItemAge:        "ln(1 + max(0, t - created)/1h) at the scoring time t",
	"feature." + FeatAuthorFollowed: "1 if the user follows the item's author at the scoring time, else 0",
	"feature." + FeatItemID:         "the item's learned vector in embeddings.item_id; zeros for an item it does not list (unseen in training)",
	"feature." + FeatEngagementIDs:  "mean embeddings.item_id vector of the engagement_pool's engagements (zeros for items it does not list); zeros if none",
	"feature." + FeatIDAffinity:     "dot product of engagement_id_pool and item_id",
	"feature." + FeatTwoTowerScore:  "the retrieval two-tower model's score of the item for the user (the dot product of its towers' outputs); recserve reads the model of the pipeline's first TwoTowerANN source",
}

// TwoTower is a trainable two-tower model: the score of an item for a user
// is the dot product of the towers' outputs (not normalised: the artifact
// sets normalize false, so an embedding's norm carries popularity). The
// item tower reads only blocks that do not change with the request
// (item_features, item_risk, item_id), since recserve computes its outputs
// once per item.
type TwoTower struct {
	User, Item         *nn.MLP
	UserSpec, ItemSpec model.FeatureSpec
	// ItemIDs is the item_id embedding, a row per item of the data
	// (Data.ItemIDs order), all zeros until trained; nil when ItemSpec has
	// no item_id block.
	ItemIDs *nn.Table
}

// towerShape sizes a two-tower model.
type towerShape struct {
	// layers hidden relu layers of width hidden (at least one), then a
	// linear layer to the embedding width dim, in each tower.
	layers, hidden, dim int
	// idDim is the width of the item_id embedding; 0 for none.
	idDim int
	// risk adds item_risk to the item tower.
	risk bool
	// idPool adds engagement_id_pool to the user tower (needs idDim).
	idPool bool
}

// MTML is a trainable shared-bottom multi-task ranker: P = σ(bottom(x)·W+b),
// one column per entry of Heads.
type MTML struct {
	Bottom *nn.MLP
	// HeadLayer is a single identity layer from the bottom's output to one
	// logit per head.
	HeadLayer *nn.MLP
	Spec      model.FeatureSpec
	// ItemIDs is the ranker's own item_id embedding, a row per item of the
	// data, read by its item_id, engagement_id_pool and id_affinity
	// blocks: what tells items apart when the catalog has no features, and
	// the user-item affinity (a collaborative signal the relu bottom could
	// not form from the two vectors alone). nil when it has none.
	ItemIDs *nn.Table
	// TowerScore adds two_tower_score, the retrieval model's score, as the
	// last input column: the ranker starts from what retrieval knows
	// (trained on what users engaged with among the whole catalog), and
	// learns from the impressions what to change.
	TowerScore bool
}

func (d *Data) userSpec() model.FeatureSpec {
	return model.FeatureSpec{{Name: FeatUser, Width: max(d.UserDim, 1)}, {Name: FeatEngagementPool, Width: max(d.ItemDim, 1)}}
}

func (d *Data) towerUserSpec(s towerShape) model.FeatureSpec {
	spec := d.userSpec()
	if s.idPool && s.idDim > 0 {
		spec = append(spec, model.FeatureBlock{Name: FeatEngagementIDs, Width: s.idDim})
	}
	return spec
}

func (d *Data) itemSpec(s towerShape) model.FeatureSpec {
	spec := model.FeatureSpec{{Name: FeatItem, Width: max(d.ItemDim, 1)}}
	if s.risk {
		spec = append(spec, model.FeatureBlock{Name: FeatItemRisk, Width: 1})
	}
	if s.idDim > 0 {
		spec = append(spec, model.FeatureBlock{Name: FeatItemID, Width: s.idDim})
	}
	return spec
}

// rankSpec is the ranker's input without its item_id blocks (rankRow's).
func (d *Data) rankSpec() model.FeatureSpec {
	return model.FeatureSpec{
		{Name: FeatUser, Width: max(d.UserDim, 1)}, {Name: FeatEngagementPool, Width: max(d.ItemDim, 1)},
		{Name: FeatItem, Width: max(d.ItemDim, 1)}, {Name: FeatItemRisk, Width: 1},
		{Name: FeatItemAge, Width: 1}, {Name: FeatAuthorFollowed, Width: 1},
	}
}

// mtmlSpec is rankSpec and, with an item_id table of width idDim, its
// item_id, engagement_id_pool and id_affinity blocks.
func (d *Data) mtmlSpec(idDim int) model.FeatureSpec {
	spec := d.rankSpec()
	if idDim > 0 {
		spec = append(spec, model.FeatureBlock{Name: FeatItemID, Width: idDim},
			model.FeatureBlock{Name: FeatEngagementIDs, Width: idDim}, model.FeatureBlock{Name: FeatIDAffinity, Width: 1})
	}
	return spec
}

func newTwoTower(d *Data, s towerShape, seed uint64) (*TwoTower, error) {
	t := &TwoTower{UserSpec: d.towerUserSpec(s), ItemSpec: d.itemSpec(s)}
	if s.idDim > 0 {
		t.ItemIDs = nn.NewRandomTable(len(d.ItemIDs), s.idDim, idInitStd, seed+2)
	}
	var layers []nn.LayerSize
	for range max(s.layers, 1) {
		layers = append(layers, nn.LayerSize{Out: s.hidden, Act: model.ReLU})
	}
	layers = append(layers, nn.LayerSize{Out: s.dim, Act: model.Identity})
	var err error
	if t.User, err = nn.NewMLP(t.UserSpec.Width(), layers, seed); err != nil {
		return nil, err
	}
	if t.Item, err = nn.NewMLP(t.ItemSpec.Width(), layers, seed+1); err != nil {
		return nil, err
	}
	return t, nil
}

// newMTML returns an untrained ranker; its item_id table starts as a copy
// of ids (the retrieval model's, trained first) when ids is not nil, and
// it reads two_tower_score when towerScore is set.
func newMTML(d *Data, hidden []int, ids *nn.Table, towerScore bool, seed uint64) (*MTML, error) {
	m := &MTML{Spec: d.rankSpec(), TowerScore: towerScore}
	if ids != nil {
		m.ItemIDs = &nn.Table{Rows: ids.Rows, Width: ids.Width, W: slices.Clone(ids.W)}
		m.Spec = d.mtmlSpec(ids.Width)
	}
	if towerScore {
		m.Spec = append(m.Spec, model.FeatureBlock{Name: FeatTwoTowerScore, Width: 1})
	}
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

// Params returns the parameters in a fixed order: the user tower's, the
// item tower's, then the item_id table when there is one.
func (t *TwoTower) Params() [][]float64 {
	ps := append(t.User.Params(), t.Item.Params()...)
	if t.ItemIDs != nil {
		ps = append(ps, t.ItemIDs.W)
	}
	return ps
}

// idInitStd is the standard deviation of the item_id tables' initial
// values: small beside the inputs' unit scale, large enough that an
// ID-only network's relu units start alive.
const idInitStd = 0.1

// Manifest returns the artifact manifest and tensors of the model. The
// item_id table keeps only the items of training impressions, whose rows
// were trained: the others (still at their random start) read as zeros,
// as an item new since training does.
func (t *TwoTower) Manifest(d *Data, name, version string, meta map[string]string) (*model.Manifest, map[string]model.Tensor) {
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
	if tb := t.ItemIDs; tb != nil {
		m.Embeddings, tensors[model.EmbeddingName(FeatItemID)] = idTable(d, tb)
	}
	return m, tensors
}

// idTable returns the manifest entry and tensor of an item_id table.
func idTable(d *Data, tb *nn.Table) (map[string]model.EmbeddingSpec, model.Tensor) {
	ids, rows := d.trainedRows(tb)
	if len(ids) == 0 {
		// An untrained table: one zero row keeps the artifact valid and
		// reads as the absent rows do.
		ids, rows = []string{d.ItemIDs[0]}, make([]float32, tb.Width)
	}
	return map[string]model.EmbeddingSpec{FeatItemID: {Width: tb.Width, IDs: ids}},
		model.Tensor{Shape: []int{len(ids), tb.Width}, Data: rows}
}

// Params returns the parameters in a fixed order: the bottom's, the
// heads', then the item_id table when there is one.
func (m *MTML) Params() [][]float64 {
	ps := append(m.Bottom.Params(), m.HeadLayer.Params()...)
	if m.ItemIDs != nil {
		ps = append(ps, m.ItemIDs.W)
	}
	return ps
}

// Manifest returns the artifact manifest and tensors of the model.
func (m *MTML) Manifest(d *Data, name, version string, meta map[string]string) (*model.Manifest, map[string]model.Tensor) {
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
	if tb := m.ItemIDs; tb != nil {
		man.Embeddings, tensors[model.EmbeddingName(FeatItemID)] = idTable(d, tb)
	}
	return man, tensors
}

// inference returns the network as model builds it from an artifact,
// without the item_id table (the rows given to it hold the embeddings).
func (m *MTML) inference() (*model.MTML, error) {
	layers := make([]model.Layer, len(m.Bottom.Layers))
	for i, l := range m.Bottom.Layers {
		layers[i] = model.Layer{W: blas32.General{Rows: l.In, Cols: l.Out, Stride: l.Out, Data: nn.To32(l.W)}, B: nn.To32(l.B), Act: l.Act}
	}
	bottom, err := model.NewMLP(layers)
	if err != nil {
		return nil, err
	}
	h := m.HeadLayer.Layers[0]
	return model.NewMTML(bottom, Heads, blas32.General{Rows: h.In, Cols: h.Out, Stride: h.Out, Data: nn.To32(h.W)}, nn.To32(h.B))
}

// trainedItems reports, per item, whether a training impression shows it:
// the rows of an item table that training updates.
func (d *Data) trainedItems() []bool {
	trained := make([]bool, len(d.ItemIDs))
	for k := range d.TrainN {
		trained[d.Imps[k].Item] = true
	}
	return trained
}

// forgetUntrained zeroes the rows of tb, a table with a row per item, of
// the items no training impression shows, so that the model evaluated
// reads them as recserve reads the rows the artifact leaves out.
func (d *Data) forgetUntrained(tb *nn.Table) {
	if tb == nil {
		return
	}
	for i, ok := range d.trainedItems() {
		if !ok {
			clear(tb.Row(int32(i)))
		}
	}
}

// trainedRows returns the IDs and rows of tb, a table with a row per item,
// of the items that training impressions show.
func (d *Data) trainedRows(tb *nn.Table) ([]string, []float32) {
	trained := d.trainedItems()
	var ids []string
	var rows []float32
	for i := range int32(tb.Rows) {
		if trained[i] {
			ids = append(ids, d.ItemIDs[i])
			rows = append(rows, nn.To32(tb.Row(i))...)
		}
	}
	return ids, rows
}

func withFeatureDocs(meta map[string]string) map[string]string {
	out := maps.Clone(featureDocs)
	maps.Copy(out, meta)
	return out
}

// Save writes the model as an artifact directory.
func (t *TwoTower) Save(d *Data, dir, name, version string, meta map[string]string) error {
	m, tensors := t.Manifest(d, name, version, meta)
	if err := model.Save(dir, m, tensors); err != nil {
		return fmt.Errorf("failed to save %s: %w", name, err)
	}
	return nil
}

// Save writes the model as an artifact directory.
func (m *MTML) Save(d *Data, dir, name, version string, meta map[string]string) error {
	man, tensors := m.Manifest(d, name, version, meta)
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

// itemRow writes the item tower's input for item i to dst: its
// item_features, then item_risk and the item_id row when the spec has them.
func (t *TwoTower) itemRow(d *Data, dst []float64, i int32) {
	o := 0
	if d.ItemDim == 0 {
		dst[o] = 0
		o++
	}
	for _, v := range d.Item(i) {
		dst[o] = float64(v)
		o++
	}
	for _, b := range t.ItemSpec[1:] {
		switch b.Name {
		case FeatItemRisk:
			dst[o] = float64(d.ItemRisk[i])
		case FeatItemID:
			copy(dst[o:o+b.Width], t.ItemIDs.Row(i))
		}
		o += b.Width
	}
}

// userRow writes the user tower's input to dst: user_features and
// engagement_pool for a user with pool, and the engagement_id_pool of the
// items of poolItems when the spec has it.
func (t *TwoTower) userRow(d *Data, dst []float64, u int32, pool []float32, poolItems []int32) {
	d.userRow(dst, u, pool)
	off, w, ok := t.UserSpec.Block(FeatEngagementIDs)
	if !ok {
		return
	}
	seg := dst[off : off+w]
	clear(seg)
	if len(poolItems) == 0 {
		return
	}
	for _, i := range poolItems {
		for k, v := range t.ItemIDs.Row(i) {
			seg[k] += v
		}
	}
	inv := 1 / float64(len(poolItems))
	for k := range seg {
		seg[k] *= inv
	}
}

// hasIDPool reports whether the user tower reads engagement_id_pool.
func (t *TwoTower) hasIDPool() bool {
	_, _, ok := t.UserSpec.Block(FeatEngagementIDs)
	return ok
}

// addPoolGrads adds to g the item_id rows' gradients through the user
// tower's engagement_id_pool: each pooled row of input row r gets the
// pool's columns of dx divided by the pool's size.
func (t *TwoTower) addPoolGrads(g *nn.RowGrads, dx blas64.General, pools [][]int32) {
	off, w, _ := t.UserSpec.Block(FeatEngagementIDs)
	buf := make([]float64, w)
	for r, items := range pools {
		if len(items) == 0 {
			continue
		}
		inv := 1 / float64(len(items))
		for k := range buf {
			buf[k] = dx.Data[r*dx.Stride+off+k] * inv
		}
		for _, i := range items {
			g.Add(i, buf)
		}
	}
}

// idOffset is the column of the item_id block in the item tower's input.
func (t *TwoTower) idOffset() int {
	off, _, _ := t.ItemSpec.Block(FeatItemID)
	return off
}

// addIDGrads adds to g the item_id rows' gradients: the item_id columns of
// dx, the gradient of the item tower's input whose row r was items[r].
func (t *TwoTower) addIDGrads(g *nn.RowGrads, dx blas64.General, items []int32) {
	off := t.idOffset()
	for r, i := range items {
		g.Add(i, dx.Data[r*dx.Stride+off:r*dx.Stride+off+g.Width])
	}
}

// rankRow writes the MTML input of item i for user u at time t.
func (d *Data) rankRow(dst []float64, u int32, pool []float32, i int32, t int64, followed bool) {
	uw, iw := max(d.UserDim, 1), max(d.ItemDim, 1)
	d.userRow(dst[:uw+iw], u, pool)
	if d.ItemDim == 0 {
		dst[uw+iw] = 0
	}
	for k, v := range d.Item(i) {
		dst[uw+iw+k] = float64(v)
	}
	o := uw + 2*iw
	dst[o] = float64(d.ItemRisk[i])
	dst[o+1] = d.ItemAge(i, t)
	dst[o+2] = 0
	if followed {
		dst[o+2] = 1
	}
}

// rankRow writes the ranker's input of item i for user u at time t: the
// blocks of Data.rankRow, then, with an item_id table, the item's row, the
// mean row of poolItems (the user's engagement pool) and their dot
// product, then, with TowerScore, score (the retrieval model's).
func (m *MTML) rankRow(d *Data, dst []float64, u int32, pool []float32, poolItems []int32, i int32, t int64, followed bool, score float64) {
	if m.TowerScore {
		dst[len(dst)-1] = score
		dst = dst[:len(dst)-1]
	}
	base := len(dst)
	if m.ItemIDs != nil {
		base -= 2*m.ItemIDs.Width + 1
	}
	d.rankRow(dst[:base], u, pool, i, t, followed)
	if m.ItemIDs == nil {
		return
	}
	w := m.ItemIDs.Width
	item, mean := dst[base:base+w], dst[base+w:base+2*w]
	copy(item, m.ItemIDs.Row(i))
	clear(mean)
	for _, p := range poolItems {
		for k, v := range m.ItemIDs.Row(p) {
			mean[k] += v
		}
	}
	var dot float64
	if n := len(poolItems); n > 0 {
		inv := 1 / float64(n)
		for k := range mean {
			mean[k] *= inv
			dot += mean[k] * item[k]
		}
	}
	dst[base+2*w] = dot
}

// addIDGrads adds to g the item_id rows' gradients of a batch: x and dx
// are its inputs and their gradients, items[r] and pools[r] row r's item
// and pooled items. The item's row gets its columns' gradient plus the
// affinity's times the pool; each pooled row the pool's columns' plus the
// affinity's times the item's row, divided by the pool's size.
func (m *MTML) addIDGrads(g *nn.RowGrads, x, dx blas64.General, items []int32, pools [][]int32) {
	w := m.ItemIDs.Width
	base := x.Cols - 2*w - 1
	if m.TowerScore {
		base--
	}
	buf := make([]float64, w)
	for r, i := range items {
		xr, dr := x.Data[r*x.Stride:], dx.Data[r*dx.Stride:]
		ga := dr[base+2*w]
		for k := range buf {
			buf[k] = dr[base+k] + ga*xr[base+w+k]
		}
		g.Add(i, buf)
		if len(pools[r]) == 0 {
			continue
		}
		inv := 1 / float64(len(pools[r]))
		for k := range buf {
			buf[k] = (dr[base+w+k] + ga*xr[base+k]) * inv
		}
		for _, p := range pools[r] {
			g.Add(p, buf)
		}
	}
}

func matrix(buf []float64, rows, cols int) ([]float64, blas64.General) {
	if cap(buf) < rows*cols {
		buf = make([]float64, rows*cols)
	}
	buf = buf[:rows*cols]
	return buf, blas64.General{Rows: rows, Cols: cols, Stride: cols, Data: buf}
}

// matrixOf is matrix into *buf.
func matrixOf(buf *[]float64, rows, cols int) blas64.General {
	var m blas64.General
	*buf, m = matrix(*buf, rows, cols)
	return m
}
