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

// Package features assembles the input rows of recserve's networks from
// named feature blocks. A model's manifest lists the blocks its network was
// trained with, in order (model.FeatureSpec); Compile checks every name and
// width against the catalog once, and Fill then writes one row per candidate
// item into a caller-owned batch matrix without allocating.
//
// The block names are the contract with the trainer, rectrain, which must
// compute each block exactly as recserve does (FEATURES.md in this directory
// is the reference):
//
//	name                width                    value
//	user_features       users' feature_dim       the user's row of users.jsonl; zeros for an unknown user
//	engagement_pool     catalog's feature_dim    mean catalog features of the user's last (at most 50)
//	                                             positive engagements before now; zeros if none
//	item_features       catalog's feature_dim    the item's catalog features
//	item_risk           1                        the item's integrity_risk
//	item_age            1                        ln(1 + max(0, now − created) / 1h)
//	author_followed     1                        1 if the user follows the item's author, else 0
//	item_id             the model's table width  the item's row of the model's item_id embedding
//	                                             table; zeros for an item the table does not list
//	engagement_id_pool  the model's table width  the mean item_id row of the engagement pool's
//	                                             items (zeros for unlisted ones); zeros if none
//	id_affinity         1                        the dot product of engagement_id_pool and item_id
//	two_tower_score     1                        the retrieval two-tower model's score of the item for the
//	                                             user (UserContext.TowerUser · the item's embedding)
//
// A block whose data has no columns (item_features and engagement_pool of
// a catalog with feature_dim 0, user_features with no user table) is
// declared one column wide and reads as one zero: a network needs an input
// of width 1 at least, and this is what rectrain writes for an ID-only log.
//
// The engagement pool counts click, like, comment and share engagements
// whose time is strictly before now, newest first: the first PoolSize of
// them are taken, each engagement counting once (an item clicked and liked
// counts twice); engagements of items missing from the catalog are then
// dropped, and the pool is the mean of the rest.
//
// user_features, engagement_pool and engagement_id_pool describe the user
// alone; CompileUser accepts only those, for the user tower, and FillUser
// writes its one row. item_features, item_risk and item_id describe the
// item alone and do not change with the request: CompileItem accepts only
// those, for an item tower whose outputs are computed once per item and
// kept. item_id, engagement_id_pool and id_affinity read the item_id table
// of the model artifact (model.Artifact.Embeddings), which CompileUser,
// CompileItem and CompileRanker are given; Compile refuses them.
package features

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/blas/blas32"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// The feature block names.
const (
	UserFeatures   = "user_features"
	EngagementPool = "engagement_pool"
	ItemFeatures   = "item_features"
	ItemRisk       = "item_risk"
	ItemAge        = "item_age"
	AuthorFollowed = "author_followed"
	ItemID         = "item_id"
	// EngagementIDPool reads the ItemID table too.
	EngagementIDPool = "engagement_id_pool"
	// IDAffinity is the dot product of the EngagementIDPool and ItemID
	// vectors: the collaborative signal of an ID-only log, given to a
	// ranker as one column because a relu network learns a product of its
	// inputs poorly. A spec that lists it lists EngagementIDPool too.
	IDAffinity = "id_affinity"
	// TwoTowerScore is the retrieval model's score of the item for the
	// user, the dot product of its user and item towers' outputs: a ranker
	// that reads it starts from what retrieval knows. CompileRanker is
	// given the item embeddings; the user's is UserContext.TowerUser.
	TwoTowerScore = "two_tower_score"
)

// PoolSize is the most engagements the engagement pool averages. The store
// must keep at least as many per user (store.StateOptions.RecentEngagements,
// default 50).
const PoolSize = 50

type kind uint8

const (
	userFeatures kind = iota + 1
	engagementPool
	itemFeatures
	itemRisk
	itemAge
	authorFollowed
	itemID
	engagementIDPool
	idAffinity
	twoTowerScore
)

// blockDef defines one block of the vocabulary.
type blockDef struct {
	name   string
	kind   kind
	item   bool                       // depends on the candidate item
	static bool                       // depends on the item alone, not on the user or the time
	width  func(*catalog.Catalog) int // the width the data provides; nil: the model's table's
	from   string                     // where that width comes from, for errors
	table  bool                       // reads the model's item_id table
}

// blocks lists the vocabulary in the order the documentation gives it.
var blocks = []blockDef{
	{UserFeatures, userFeatures, false, false, (*catalog.Catalog).UserFeatureDim, "the user table's feature_dim", false},
	{EngagementPool, engagementPool, false, false, (*catalog.Catalog).FeatureDim, "the catalog's feature_dim", false},
	{ItemFeatures, itemFeatures, true, true, (*catalog.Catalog).FeatureDim, "the catalog's feature_dim", false},
	{ItemRisk, itemRisk, true, true, one, "a scalar", false},
	{ItemAge, itemAge, true, false, one, "a scalar", false},
	{AuthorFollowed, authorFollowed, true, false, one, "a scalar", false},
	{ItemID, itemID, true, true, nil, "the width of the model's item_id table", true},
	{EngagementIDPool, engagementIDPool, false, false, nil, "the width of the model's item_id table", true},
	{IDAffinity, idAffinity, true, false, one, "a scalar", true},
	{TwoTowerScore, twoTowerScore, true, false, one, "a scalar", false},
}

// staticNames are the blocks an item tower may use (CompileItem).
func staticNames() string {
	var names []string
	for _, b := range blocks {
		if b.static {
			names = append(names, b.name)
		}
	}
	return strings.Join(names, ", ")
}

func one(*catalog.Catalog) int { return 1 }

// Names returns the block names recserve assembles.
func Names() []string {
	names := make([]string, len(blocks))
	for i, b := range blocks {
		names[i] = b.name
	}
	return names
}

// op writes one block at an offset of the row.
type op struct {
	kind       kind
	item       bool // the block depends on the candidate
	off, width int
	// pad marks a block whose data has no columns, written as one zero.
	pad bool
}

// Assembler writes network inputs laid out by one FeatureSpec. It is
// read-only after Compile and safe for concurrent use.
type Assembler struct {
	cat      *catalog.Catalog
	spec     model.FeatureSpec
	ops      []op
	width    int
	userOnly bool // no block depends on the item
	needUser bool // some block reads UserContext.Features
	needPool bool // some block reads UserContext.Pool
	// itemIDs is the model's item_id table when a block reads it, and
	// idRows its rows by catalog ordinal.
	itemIDs *model.Embedding
	idRows  *idRows
	// poolOff is the column of engagement_id_pool in the row, -1 if none;
	// affinity marks an id_affinity block, computed from it.
	poolOff  int
	affinity bool
	// vectors are the item embeddings two_tower_score reads.
	vectors ItemVectors
}

// ItemVectors gives the item embeddings of a two-tower model by catalog
// ordinal, at half precision (vec.EncodeHalf), nil for an item it has none
// of yet.
type ItemVectors interface {
	Half(o uint32) []uint16
}

// network is what a compiled spec feeds, which limits its blocks.
type network uint8

const (
	anyNetwork    network = iota // scored per request and candidate: the blocks that read no table
	rankerNetwork                // scored per request and candidate, with the model's tables
	userNetwork                  // the user alone: user_features, engagement_pool, engagement_id_pool
	itemNetwork                  // the item alone, computed once per item: the static blocks
)

// Compile checks spec against the vocabulary and the catalog's widths and
// returns an assembler for it. It refuses an unknown block name, a width
// that differs from what the catalog provides, a block listed twice and an
// empty spec, with an error that names the block.
func Compile(spec model.FeatureSpec, cat *catalog.Catalog) (*Assembler, error) {
	return compile(spec, cat, anyNetwork, nil)
}

// CompileRanker is Compile for a ranker that carries an item_id embedding
// table (model.Artifact.Embeddings): it also accepts item_id,
// engagement_id_pool and id_affinity, which read that table, and, when
// vectors is not nil, two_tower_score, which reads the item embeddings of
// the retrieval model that vectors holds.
func CompileRanker(spec model.FeatureSpec, cat *catalog.Catalog, tables map[string]*model.Embedding, vectors ItemVectors) (*Assembler, error) {
	a, err := compile(spec, cat, rankerNetwork, tables)
	if err != nil {
		return nil, err
	}
	if a.hasTowerScore() && vectors == nil {
		return nil, fmt.Errorf("failed to compile feature spec: block %q: no retrieval two-tower model to read (the pipeline needs a TwoTowerANN source or live.secondStage.retrievalModel)", TwoTowerScore)
	}
	a.vectors = vectors
	return a, nil
}

// hasTowerScore reports whether the spec lists two_tower_score.
func (a *Assembler) hasTowerScore() bool {
	return slices.ContainsFunc(a.ops, func(o op) bool { return o.kind == twoTowerScore })
}

// CompileUser is Compile for a network of the user alone (the two-tower
// model's user tower): it also refuses blocks that depend on the item.
// tables are the model's embedding tables (model.Artifact.Embeddings);
// engagement_id_pool reads the item_id one, whose width its block must
// have.
func CompileUser(spec model.FeatureSpec, cat *catalog.Catalog, tables map[string]*model.Embedding) (*Assembler, error) {
	return compile(spec, cat, userNetwork, tables)
}

// CompileItem is Compile for a network of the item alone whose outputs are
// computed once per item and kept (the two-tower model's item tower): it
// accepts only item_features, item_risk and item_id, refusing blocks of the
// user or of the request's time, which a kept output cannot follow.
// tables are the model's embedding tables (model.Artifact.Embeddings);
// item_id reads the one of that name, whose width its block must have.
func CompileItem(spec model.FeatureSpec, cat *catalog.Catalog, tables map[string]*model.Embedding) (*Assembler, error) {
	return compile(spec, cat, itemNetwork, tables)
}

func compile(spec model.FeatureSpec, cat *catalog.Catalog, net network, tables map[string]*model.Embedding) (*Assembler, error) {
	if cat == nil {
		return nil, errors.New("failed to compile feature spec: no catalog")
	}
	if len(spec) == 0 {
		return nil, errors.New("failed to compile feature spec: it has no blocks")
	}
	a := &Assembler{cat: cat, spec: slices.Clone(spec), userOnly: true, poolOff: -1}
	seen := make(map[string]bool, len(spec))
	for i, fb := range spec {
		bi := slices.IndexFunc(blocks, func(b blockDef) bool { return b.name == fb.Name })
		if bi < 0 {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: unknown name; recserve assembles %s", i, fb.Name, strings.Join(Names(), ", "))
		}
		b := blocks[bi]
		if seen[fb.Name] {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: listed twice", i, fb.Name)
		}
		seen[fb.Name] = true
		if net == userNetwork && b.item {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: describes the item, but this network sees the user alone (allowed: %s, %s, %s)", i, fb.Name, UserFeatures, EngagementPool, EngagementIDPool)
		}
		if net == itemNetwork && !b.static {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: changes with the request's user or time, but this item tower's outputs are computed once per item (allowed: %s)", i, fb.Name, staticNames())
		}
		var want int
		if b.kind == twoTowerScore && net != rankerNetwork {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: only a ranker given the retrieval model's embeddings reads it", i, fb.Name)
		}
		if b.table {
			if net == anyNetwork {
				return nil, fmt.Errorf("failed to compile feature spec: block %d %q: reads the model's %s embedding table, which this network is not given", i, fb.Name, ItemID)
			}
			if a.itemIDs = tables[ItemID]; a.itemIDs == nil {
				return nil, fmt.Errorf("failed to compile feature spec: block %d %q: the model has no %s embedding table", i, fb.Name, ItemID)
			}
		}
		if b.width == nil {
			want = a.itemIDs.Width()
		} else {
			want = b.width(cat)
		}
		pad := want == 0 && fb.Width == 1
		if fb.Width != want && !pad || fb.Width < 1 {
			return nil, fmt.Errorf("failed to compile feature spec: block %d %q: width %d, but %s is %d", i, fb.Name, fb.Width, b.from, want)
		}
		switch b.kind {
		case engagementIDPool:
			a.poolOff = a.width
		case idAffinity:
			a.affinity = true
		}
		a.ops = append(a.ops, op{kind: b.kind, item: b.item, off: a.width, width: fb.Width, pad: pad})
		a.width += fb.Width
		a.userOnly = a.userOnly && !b.item
		a.needUser = a.needUser || b.kind == userFeatures
		a.needPool = a.needPool || b.kind == engagementPool
	}
	if a.affinity && a.poolOff < 0 {
		return nil, fmt.Errorf("failed to compile feature spec: block %q: the spec must also list %q, from which it is computed", IDAffinity, EngagementIDPool)
	}
	if a.itemIDs != nil {
		a.idRows = idRowsOf(cat, a.itemIDs)
	}
	return a, nil
}

// Width returns the width of a row, the sum of the block widths.
func (a *Assembler) Width() int { return a.width }

// Spec returns the layout the assembler writes.
func (a *Assembler) Spec() model.FeatureSpec { return slices.Clone(a.spec) }

// UserOnly reports whether no block depends on the item, so that FillUser
// may be used.
func (a *Assembler) UserOnly() bool { return a.userOnly }

// Fill writes the rows of the candidate items, by catalog ordinal, into
// rows 0..len(items)-1 of dst; other rows are left alone. It allocates
// nothing. It panics if dst.Cols != Width(), dst has fewer than len(items)
// rows, u's vectors do not have the catalog's widths, or an ordinal is not
// in the catalog.
func (a *Assembler) Fill(u *UserContext, items []uint32, dst blas32.General) {
	if dst.Cols != a.width || dst.Rows < len(items) || dst.Stride < dst.Cols {
		panic(fmt.Sprintf("features: Fill of %d items into a %d×%d matrix (stride %d), want %d columns", len(items), dst.Rows, dst.Cols, dst.Stride, a.width))
	}
	a.checkUser(u)
	for r, o := range items {
		row := dst.Data[r*dst.Stride : r*dst.Stride+a.width]
		for _, op := range a.ops {
			seg := row[op.off : op.off+op.width]
			switch {
			case op.kind == engagementIDPool && r > 0:
				// The same for every row: computed once, in row 0.
				copy(seg, dst.Data[op.off:op.off+op.width])
			case op.item:
				a.fillItem(u, op, o, seg)
			default:
				a.fillUser(u, op, seg)
			}
		}
		if a.affinity {
			a.fillAffinity(row, row[a.poolOff:], o)
		}
	}
}

// fillUser writes a block that does not depend on the item.
func (a *Assembler) fillUser(u *UserContext, op op, seg []float32) {
	switch {
	case op.pad:
		seg[0] = 0
	case op.kind == userFeatures:
		copy(seg, u.Features)
	case op.kind == engagementPool:
		copy(seg, u.Pool)
	case op.kind == engagementIDPool:
		a.idPool(u, seg)
	}
}

// fillItem writes a block of item o; id_affinity is left to fillAffinity.
func (a *Assembler) fillItem(u *UserContext, op op, o uint32, seg []float32) {
	cat := a.cat
	switch {
	case op.pad:
		seg[0] = 0
	case op.kind == itemFeatures:
		copy(seg, cat.Features(o))
	case op.kind == itemRisk:
		seg[0] = cat.Risk(o)
	case op.kind == itemAge:
		seg[0] = Age(u.Now.UnixMilli(), cat.CreatedMillis(o))
	case op.kind == authorFollowed:
		seg[0] = 0
		if u.Followed.Has(cat.AuthorIndex(o)) {
			seg[0] = 1
		}
	case op.kind == itemID:
		if v := a.itemIDVector(o); v != nil {
			copy(seg, v)
		} else {
			clear(seg)
		}
	case op.kind == twoTowerScore:
		seg[0] = 0
		if v := a.vectors.Half(o); v != nil && len(u.TowerUser) == len(v) {
			seg[0] = vec.DotHalf(u.TowerUser, v)
		}
	}
}

// fillAffinity writes the id_affinity block of row, item o's, from pool,
// whose first values are the user's engagement_id_pool.
func (a *Assembler) fillAffinity(row, pool []float32, o uint32) {
	for _, op := range a.ops {
		if op.kind == idAffinity {
			row[op.off] = a.affinityOf(pool, o)
		}
	}
}

// affinityOf is the id_affinity value of item o for a user whose
// engagement_id_pool starts pool: their dot product in float64, rounded
// once; 0 for an item the table does not list.
func (a *Assembler) affinityOf(pool []float32, o uint32) float32 {
	var dot float64
	if v := a.itemIDVector(o); v != nil {
		for k, x := range v {
			dot += float64(x) * float64(pool[k])
		}
	}
	return float32(dot)
}

// FillUser writes the one row of a user-only network into dst, which must
// be Width() long. It allocates nothing. It panics if the assembler has an
// item block (see UserOnly) or if the widths disagree.
func (a *Assembler) FillUser(u *UserContext, dst []float32) {
	if !a.userOnly {
		panic("features: FillUser on an assembler with item blocks")
	}
	if len(dst) != a.width {
		panic(fmt.Sprintf("features: FillUser into %d values, want %d", len(dst), a.width))
	}
	a.checkUser(u)
	for _, op := range a.ops {
		a.fillUser(u, op, dst[op.off:op.off+op.width])
	}
}

// idPool writes the engagement_id_pool block: the mean item_id row of the
// pool's items, an item the table does not list counting as zeros, summed
// in float64 and rounded once.
func (a *Assembler) idPool(u *UserContext, seg []float32) {
	clear(seg)
	if len(u.pooled) == 0 {
		return
	}
	var acc [64]float64
	for lo := 0; lo < len(seg); lo += len(acc) {
		part := seg[lo:min(lo+len(acc), len(seg))]
		clear(acc[:])
		for _, o := range u.pooled {
			if v := a.itemIDVector(o); v != nil {
				for k, x := range v[lo : lo+len(part)] {
					acc[k] += float64(x)
				}
			}
		}
		for k := range part {
			part[k] = float32(acc[k] / float64(len(u.pooled)))
		}
	}
}

func (a *Assembler) checkUser(u *UserContext) {
	if a.needUser && len(u.Features) != a.cat.UserFeatureDim() {
		panic(fmt.Sprintf("features: user context has %d user features, want %d", len(u.Features), a.cat.UserFeatureDim()))
	}
	if a.needPool && len(u.Pool) != a.cat.FeatureDim() {
		panic(fmt.Sprintf("features: user context has an engagement pool of %d values, want %d", len(u.Pool), a.cat.FeatureDim()))
	}
}

// millisPerHour scales item ages.
const millisPerHour = float64(time.Hour / time.Millisecond)

// Age returns the item_age value of an item created at createdMillis seen at
// nowMillis (Unix milliseconds): ln(1 + max(0, now − created)/1h).
func Age(nowMillis, createdMillis int64) float32 {
	return float32(math.Log1p(float64(max(0, nowMillis-createdMillis)) / millisPerHour))
}

// AuthorSet is a set of catalog author indices (catalog.AuthorIndex), kept
// sorted.
type AuthorSet []uint32

// Has reports whether author index a is in the set.
func (s AuthorSet) Has(a uint32) bool {
	_, ok := slices.BinarySearch(s, a)
	return ok
}

// UserContext is what the blocks need to know of the user for one request.
// Build it with NewUserContext, or reuse one with Reset; one context serves
// every Fill of the request. It is not modified by Fill.
type UserContext struct {
	// User is the user's ID.
	User string
	// Now is the time of the request; item_age is measured to it and only
	// engagements before it are pooled.
	Now time.Time
	// Features is the user_features block, the user table's feature_dim wide.
	Features []float32
	// Pool is the engagement_pool block, the catalog's feature_dim wide.
	Pool []float32
	// Followed holds the authors the user follows that the catalog knows.
	Followed AuthorSet
	// TowerUser is the retrieval two-tower model's embedding of the user,
	// which two_tower_score reads; the caller sets it (nil reads as 0).
	TowerUser []float32
	// pooled are the catalog ordinals of the engagement pool's items, the
	// ones Pool averages, for engagement_id_pool.
	pooled []uint32
}

// NewUserContext computes the user's blocks. engagements are the user's
// positive engagements newest first, as store.UserReader.RecentEngagements
// returns them; follows are the authors the user follows. Engagements of
// items and follows of authors that the catalog does not know are skipped.
func NewUserContext(user string, now time.Time, cat *catalog.Catalog, engagements []store.Engagement, follows []string) *UserContext {
	u := new(UserContext)
	u.Reset(user, now, cat, engagements, follows)
	return u
}

// PooledUserContext is NewUserContext into a released context's buffers;
// Release hands it back once nothing reads it any more.
func PooledUserContext(user string, now time.Time, cat *catalog.Catalog, engagements []store.Engagement, follows []string) *UserContext {
	u := userContexts.Get().(*UserContext)
	u.Reset(user, now, cat, engagements, follows)
	return u
}

// Release hands u to a later PooledUserContext. Neither u nor its slices
// may be read after it.
func (u *UserContext) Release() { userContexts.Put(u) }

// userContexts keeps released contexts for their buffers.
var userContexts = sync.Pool{New: func() any { return new(UserContext) }}

// Reset is NewUserContext into an existing context, reusing its buffers.
func (u *UserContext) Reset(user string, now time.Time, cat *catalog.Catalog, engagements []store.Engagement, follows []string) {
	u.User, u.Now, u.TowerUser = user, now, nil

	feats, _ := cat.UserFeatures(user)
	u.Features = append(u.Features[:0], feats...)

	u.Pool = resize(u.Pool, cat.FeatureDim())
	if cap(u.pooled) < PoolSize {
		u.pooled = make([]uint32, 0, PoolSize)
	}
	pooled := u.pooled[:0]
	taken := 0
	for _, e := range engagements {
		if taken == PoolSize {
			break
		}
		if !positive(e.Type) || !e.Time.Before(now) {
			continue
		}
		taken++
		if o, ok := cat.Ordinal(e.Item); ok {
			pooled = append(pooled, o)
		}
	}
	u.pooled = pooled
	if n := len(pooled); n > 0 {
		for d := range u.Pool {
			var sum float64
			for _, o := range pooled {
				sum += float64(cat.Features(o)[d])
			}
			u.Pool[d] = float32(sum / float64(n))
		}
	}

	u.Followed = u.Followed[:0]
	for _, name := range follows {
		if a, ok := cat.LookupAuthor(name); ok {
			u.Followed = append(u.Followed, a)
		}
	}
	slices.Sort(u.Followed)
	u.Followed = slices.Compact(u.Followed)
}

// resize returns a zeroed slice of n values, reusing buf's storage if it
// can.
func resize(buf []float32, n int) []float32 {
	if cap(buf) < n {
		return make([]float32, n)
	}
	buf = buf[:n]
	clear(buf)
	return buf
}

func positive(t store.EventType) bool {
	switch t {
	case store.Click, store.Like, store.Comment, store.Share:
		return true
	}
	return false
}
