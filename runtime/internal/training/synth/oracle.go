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
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// condProbs are the per-impression probabilities of the planted model, each
// conditional as in the package comment.
type condProbs struct {
	click, like, comment, share, follow, seeLess float64
}

func (w *World) conditional(u, i int) condProbs {
	m := &w.cfg.Model
	s := w.Affinity(u, i)
	q := float64(w.itemQuality[i])
	return condProbs{
		click:   sigmoid(m.ClickScale*s + m.ClickBias + q + float64(w.userBias[u])),
		like:    sigmoid(m.LikeScale*s + m.LikeBias + q),
		comment: sigmoid(m.CommentScale*s + m.CommentBias + 0.5*q),
		share:   sigmoid(m.ShareScale*s + m.ShareBias + q),
		follow:  sigmoid(m.FollowScale*s + m.FollowBias),
		seeLess: sigmoid(-m.SeeLessScale*s + m.SeeLessRisk*w.itemRisk[i] + m.SeeLessBias),
	}
}

// Probabilities are the true probabilities that one impression of an item
// leads to each event, unconditionally (a like is a click followed by a like).
// Follow assumes the user does not follow the author yet.
type Probabilities struct {
	Click, Like, Comment, Share, SeeLess, Follow float64
}

// Of returns the probability of an event type; 1 for Impression, and 0 for
// Unfollow, which depends on the follow state.
func (p Probabilities) Of(t dataset.EventType) float64 {
	switch t {
	case dataset.Impression:
		return 1
	case dataset.Click:
		return p.Click
	case dataset.Like:
		return p.Like
	case dataset.Comment:
		return p.Comment
	case dataset.Share:
		return p.Share
	case dataset.SeeLess:
		return p.SeeLess
	case dataset.Follow:
		return p.Follow
	}
	return 0
}

// Weights gives each event type its value, as the ranking weights of a
// RecPipeline do.
type Weights map[dataset.EventType]float64

// DefaultWeights are the weights of the project's example pipeline.
func DefaultWeights() Weights {
	return Weights{dataset.Click: 1, dataset.Like: 2, dataset.Comment: 4, dataset.SeeLess: -8}
}

// Value is the expected value Σ_e w_e·P(e).
func (p Probabilities) Value(w Weights) float64 {
	var v float64
	for t, x := range w {
		v += x * p.Of(t)
	}
	return v
}

// Affinity is the planted affinity ⟨u, i⟩ of a user and an item (indexes).
func (w *World) Affinity(user, item int) float64 {
	d := w.cfg.Dim
	return float64(vec.Dot(w.userLatent[user*d:(user+1)*d], w.itemLatent[item*d:(item+1)*d]))
}

// TrueProbabilities are the planted model's probabilities for one
// impression of item to user (indexes).
func (w *World) TrueProbabilities(user, item int) Probabilities {
	c := w.conditional(user, item)
	return Probabilities{
		Click:   c.click,
		Like:    c.click * c.like,
		Comment: c.click * c.comment,
		Share:   c.click * c.share,
		Follow:  c.click * c.follow,
		SeeLess: (1 - c.click) * c.seeLess,
	}
}

// TrueValue is the expected value of showing item to user under weights.
func (w *World) TrueValue(user, item int, weights Weights) float64 {
	return w.TrueProbabilities(user, item).Value(weights)
}

// Oracle ranks items by their true expected value under fixed weights: the
// ceiling a learned ranker is measured against.
type Oracle struct {
	w       *World
	weights [6]float64 // click, like, comment, share, see_less, follow
}

// Oracle returns an oracle for weights.
func (w *World) Oracle(weights Weights) *Oracle {
	o := &Oracle{w: w}
	for j, t := range []dataset.EventType{dataset.Click, dataset.Like, dataset.Comment, dataset.Share, dataset.SeeLess, dataset.Follow} {
		o.weights[j] = weights[t]
	}
	return o
}

// Value is the true expected value of one impression of item to user.
func (o *Oracle) Value(user, item int) float64 {
	p := o.w.TrueProbabilities(user, item)
	ws := &o.weights
	return ws[0]*p.Click + ws[1]*p.Like + ws[2]*p.Comment + ws[3]*p.Share + ws[4]*p.SeeLess + ws[5]*p.Follow
}

// Scored is an item index and its true value.
type Scored struct {
	Item  int
	Value float64
}

// TopK returns the k items of candidates (every item when nil) with the
// highest true value for user, best first, ties by lower index.
func (o *Oracle) TopK(user, k int, candidates []int) []Scored {
	n := len(candidates)
	if candidates == nil {
		n = o.w.cfg.Items
	}
	all := make([]Scored, n)
	for j := range all {
		i := j
		if candidates != nil {
			i = candidates[j]
		}
		all[j] = Scored{Item: i, Value: o.Value(user, i)}
	}
	slices.SortFunc(all, func(a, b Scored) int {
		return cmp.Or(cmp.Compare(b.Value, a.Value), cmp.Compare(a.Item, b.Item))
	})
	return all[:min(k, len(all))]
}

// DCG is Σ_j max(0, value_j)/log2(j+2) over ranked, the discounted true
// value of a list as shown (negative values count as 0).
func (o *Oracle) DCG(user int, ranked []int) float64 {
	var s float64
	for j, i := range ranked {
		s += max(0, o.Value(user, i)) / math.Log2(float64(j+2))
	}
	return s
}

// NDCG is DCG(ranked) divided by the DCG of the best list of the same
// length drawn from candidates (every item when nil); 0 when that is 0.
func (o *Oracle) NDCG(user int, ranked []int, candidates []int) float64 {
	best := o.TopK(user, len(ranked), candidates)
	ideal := make([]int, len(best))
	for j, s := range best {
		ideal[j] = s.Item
	}
	d := o.DCG(user, ideal)
	if d == 0 {
		return 0
	}
	return o.DCG(user, ranked) / d
}

// Config returns the configuration the world was generated from, defaults
// filled in.
func (w *World) Config() Config { return w.cfg }

// NumUsers, NumItems, NumAuthors and NumTopics return the world's sizes.
func (w *World) NumUsers() int   { return w.cfg.Users }
func (w *World) NumItems() int   { return w.cfg.Items }
func (w *World) NumAuthors() int { return w.cfg.Authors }
func (w *World) NumTopics() int  { return w.cfg.Topics }

// UserID, ItemID and AuthorID return the IDs written for an index:
// "u<index>", "i<index>", "a<index>".
func UserID(u int) string   { return "u" + strconv.Itoa(u) }
func ItemID(i int) string   { return "i" + strconv.Itoa(i) }
func AuthorID(a int) string { return "a" + strconv.Itoa(a) }

// ParseID returns the index in an ID with the given prefix ('u', 'i' or 'a').
func ParseID(prefix byte, id string) (int, bool) {
	if len(id) < 2 || id[0] != prefix || (id[1] == '0' && len(id) > 2) {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	return n, err == nil && n >= 0
}

// UserTopic, UserLatent, UserBias and UserFeatures are a user's ground truth
// and observable features. Returned slices are shared; do not modify them.
func (w *World) UserTopic(u int) int { return int(w.userTopic[u]) }
func (w *World) UserLatent(u int) []float32 {
	return w.userLatent[u*w.cfg.Dim : (u+1)*w.cfg.Dim]
}
func (w *World) UserBias(u int) float64 { return float64(w.userBias[u]) }
func (w *World) UserFeatures(u int) []float32 {
	d := w.FeatureDim()
	return w.userFeat[u*d : (u+1)*d]
}

// ItemAuthor, ItemTopic, ItemLatent, ItemQuality, ItemRisk, ItemCreated and
// ItemFeatures are an item's ground truth and catalog fields. Returned
// slices are shared; do not modify them.
func (w *World) ItemAuthor(i int) int { return int(w.itemAuthor[i]) }
func (w *World) ItemTopic(i int) int  { return int(w.itemTopic[i]) }
func (w *World) ItemLatent(i int) []float32 {
	return w.itemLatent[i*w.cfg.Dim : (i+1)*w.cfg.Dim]
}
func (w *World) ItemQuality(i int) float64 { return float64(w.itemQuality[i]) }
func (w *World) ItemRisk(i int) float64    { return w.itemRisk[i] }
func (w *World) ItemCreated(i int) time.Time {
	return time.Unix(w.itemCreated[i], 0).UTC()
}
func (w *World) ItemFeatures(i int) []float32 {
	d := w.FeatureDim()
	return w.itemFeat[i*d : (i+1)*d]
}

// FeatureDim is the width of the observable features as written: 0 for an
// id-only world (Config.IDOnly), else Config.FeatureDim.
func (w *World) FeatureDim() int {
	if w.cfg.IDOnly {
		return 0
	}
	return w.cfg.FeatureDim
}

// AuthorTopic, AuthorPopularity and AuthorRisky are an author's ground truth.
func (w *World) AuthorTopic(a int) int                   { return int(w.authorTopic[a]) }
func (w *World) AuthorPopularity(a int) float64          { return w.authorPop[a] }
func (w *World) AuthorRisky(a int) bool                  { return w.authorRisky[a] }
func (w *World) TopicCenter(k int) []float32             { return w.topicCenter[k*w.cfg.Dim : (k+1)*w.cfg.Dim] }
func (w *World) AuthorItems(a int) []int32               { return w.authorItems.list(a) }
func (w *World) InitialFollows(u int) []int32            { return w.follows.list(u) }
func (w *World) Interactions() []Interaction             { return w.events }
func (w *World) NumEvents() int                          { return len(w.events) }
func (w *World) topicWeights() []float64                 { return w.topicWeight }
func (w *World) featureMatrices() ([]float32, []float32) { return w.wItem, w.wUser }

// Event returns row k of the log in the dataset form.
func (w *World) Event(k int) dataset.Event {
	e := w.events[k]
	ev := dataset.Event{User: UserID(int(e.User)), Type: e.Type, Time: time.Unix(e.Time, 0).UTC()}
	if e.Item >= 0 {
		ev.Item = ItemID(int(e.Item))
	}
	if e.Author >= 0 {
		ev.Author = AuthorID(int(e.Author))
	}
	return ev
}

// SplitTime returns the time that splits the log into a training part with
// the fraction trainFrac of the rows (strictly before it) and a test part.
func (w *World) SplitTime(trainFrac float64) time.Time {
	if len(w.events) == 0 {
		return w.cfg.Start
	}
	k := int(math.Round(trainFrac * float64(len(w.events))))
	k = min(max(k, 0), len(w.events)-1)
	return time.Unix(w.events[k].Time, 0).UTC()
}

// Summary counts what a world holds.
type Summary struct {
	Users, Items, Authors, Follows, Events int
	ByType                                 map[dataset.EventType]int
}

// Summary counts the world's rows and events by type.
func (w *World) Summary() Summary {
	s := Summary{Users: w.cfg.Users, Items: w.cfg.Items, Authors: w.cfg.Authors,
		Follows: len(w.follows.items), Events: len(w.events), ByType: map[dataset.EventType]int{}}
	for _, e := range w.events {
		s.ByType[e.Type]++
	}
	return s
}
