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
	"runtime"
	"sync"
	"weak"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
)

// idRows maps the catalog's ordinals to the rows of a model's item_id
// table, resolved once per model and catalog: the blocks that read the
// table (item_id, id_affinity, engagement_id_pool) would otherwise hash the
// item's id string for every candidate of every request (6.8% of a loaded
// frontend's CPU at 1M items). An ordinal the catalog gained after the
// mapping was made is looked up by its id.
type idRows struct {
	rows []int32 // by ordinal; -1 where the table does not list the item
}

// itemIDVector returns item o's row of the item_id table, nil if it has
// none.
func (a *Assembler) itemIDVector(o uint32) []float32 {
	rows := a.idRows.rows
	if int(o) >= len(rows) {
		return a.itemIDs.Lookup(a.cat.ID(o))
	}
	if r := rows[o]; r >= 0 {
		return a.itemIDs.Vector(r)
	}
	return nil
}

// idRowsKey names one mapping; it holds neither the model nor the catalog,
// so that the cache does not keep them alive.
type idRowsKey struct {
	emb weak.Pointer[model.Embedding]
	cat weak.Pointer[catalog.Catalog]
}

// idRowsCache holds the mappings, each dropped when its model's table is
// collected (a mapping holds neither). Assemblers are compiled again at
// every live config change (a new value, an experiment), and the mapping
// of a 1M-item catalog costs a million lookups to make.
var idRowsCache sync.Map // idRowsKey → *idRows

// idRowsOf returns the mapping of cat's ordinals to emb's rows. A cached
// mapping shorter than the catalog has grown is extended, so that items
// published since it was made are resolved by the next compile (a new
// config) rather than looked up by id for as long as the model serves.
func idRowsOf(cat *catalog.Catalog, emb *model.Embedding) *idRows {
	key := idRowsKey{weak.Make(emb), weak.Make(cat)}
	n := cat.Len()
	v, ok := idRowsCache.Load(key)
	if ok && len(v.(*idRows).rows) >= n {
		return v.(*idRows)
	}
	var have []int32
	if ok {
		have = v.(*idRows).rows
	}
	r := &idRows{rows: make([]int32, n)}
	copy(r.rows, have)
	for o := len(have); o < n; o++ {
		r.rows[o] = emb.Row(cat.ID(uint32(o)))
	}
	switch {
	case !ok:
		if got, loaded := idRowsCache.LoadOrStore(key, r); loaded {
			return got.(*idRows)
		}
		runtime.AddCleanup(emb, func(k idRowsKey) { idRowsCache.Delete(k) }, key)
	default:
		idRowsCache.CompareAndSwap(key, v, r) // a lost race leaves another extension
	}
	return r
}
