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
	"cmp"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// LoadMovieLens reads a MovieLens ratings file (u.data, ratings.csv or
// ratings.dat, chosen by name as dataset.MovieLensAuto does; gzip when the
// name ends in ".gz") and replays it as a dataset. Each rating becomes the
// events dataset.AppendRatingEvents gives (an impression and a click, and a
// like from dataset.LikeRating up), and the events are ordered by time.
//
// MovieLens has no catalog, user table or follow graph, so they are built
// from the IDs:
//   - items are the movies rated, in order of first appearance in the file;
//     item_features has width 0 (the artifacts carry one zero column),
//     integrity_risk is 0, the author is the item itself (its own ID in the
//     author space) and the creation time is the time of its first rating;
//   - users have no features (user_features is one zero column);
//   - nobody follows anybody, so author_followed is always 0.
//
// With no item features, the towers tell items apart by their item_id
// embeddings alone (Options.IDDim; the first stage then has one too), the
// user tower by engagement_id_pool, and the ranker sees only what item_age
// and the user's engagement pool carry.
func LoadMovieLens(path string, opts LoadOptions) (*Data, error) {
	if opts.TestFrac == 0 {
		opts.TestFrac = 0.1
	}
	if opts.TestFrac <= 0 || opts.TestFrac >= 1 {
		return nil, fmt.Errorf("test fraction %v outside (0, 1)", opts.TestFrac)
	}
	d := &Data{Skipped: map[string]int{}}
	users := map[string]int32{}
	items := map[string]int32{}
	var log []logRow
	ro := dataset.ReadOptions{Strict: opts.Strict, MaxErrors: opts.MaxErrors}
	rep, err := dataset.ReadMovieLens(path, dataset.MovieLensAuto, ro, func(e dataset.Event) error {
		u, ok := users[e.User]
		if !ok {
			u = int32(len(d.UserIDs))
			users[e.User] = u
			d.UserIDs = append(d.UserIDs, e.User)
		}
		i, ok := items[e.Item]
		t := e.Time.Unix()
		if !ok {
			i = int32(len(d.ItemIDs))
			items[e.Item] = i
			d.ItemIDs = append(d.ItemIDs, e.Item)
			d.ItemCreated = append(d.ItemCreated, t)
		}
		d.ItemCreated[i] = min(d.ItemCreated[i], t)
		log = append(log, logRow{t: t, user: u, item: i, author: -1, typ: e.Type})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the MovieLens ratings: %w", err)
	}
	d.noteBad(filepath.Base(path), rep)
	if len(log) == 0 {
		return nil, fmt.Errorf("%s has no usable ratings", path)
	}
	// A rating's events share its time and keep their order (impression,
	// click, like) under the stable sort.
	slices.SortStableFunc(log, func(a, b logRow) int { return cmp.Compare(a.t, b.t) })
	d.UserFeat = []float32{}
	d.ItemFeat = []float32{}
	d.ItemRisk = make([]float32, len(d.ItemIDs))
	d.ItemAuthor = make([]int32, len(d.ItemIDs))
	for i := range d.ItemAuthor {
		d.ItemAuthor[i] = int32(i)
	}
	d.replay(log, map[uint64]struct{}{}, opts.TestFrac)
	return d, nil
}
