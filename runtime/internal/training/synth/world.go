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
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// Interaction is one row of the generated log in compact form.
type Interaction struct {
	Time   int64 // Unix seconds
	User   int32
	Item   int32 // -1 when none
	Author int32 // the followed or unfollowed author, -1 otherwise
	Type   dataset.EventType
}

// World is a generated world and its ground truth. It is read-only after
// Generate and safe for concurrent readers.
type World struct {
	cfg Config

	topicCenter []float32 // Topics×Dim
	topicWeight []float64
	wItem       []float32 // FeatureDim×(Dim+1)
	wUser       []float32 // FeatureDim×(Dim+1)

	userTopic  []int32
	userLatent []float32 // Users×Dim
	userBias   []float32
	userFeat   []float32 // Users×FeatureDim
	userShare  []float64 // share of the log

	authorTopic []int32
	authorPop   []float64
	authorRisky []bool

	itemAuthor  []int32
	itemTopic   []int32
	itemLatent  []float32 // Items×Dim
	itemQuality []float32
	itemRisk    []float64
	itemCreated []int64   // Unix seconds
	itemFeat    []float32 // Items×FeatureDim

	byCreated    []int32 // items by creation time
	authorItems  csr     // per author, by creation time
	topicItems   csr     // per topic, by creation time
	topicAuthors csr
	topicAlias   []alias // per topic, authors by popularity
	authorAlias  alias   // all authors by popularity
	popular      alias   // items by p_a·exp(q_i)

	follows csr // initial follow graph: per user, authors
	events  []Interaction
}

// csr holds lists of int32 per key: list k is items[start[k]:start[k+1]].
type csr struct {
	start []int32
	items []int32
}

func (c *csr) list(k int) []int32 { return c.items[c.start[k]:c.start[k+1]] }

// buildCSR groups 0..n-1 by key(i) and sorts each group with less.
func buildCSR(keys int, n int, key func(int) int, sortBy func(a, b int32) int) csr {
	c := csr{start: make([]int32, keys+1), items: make([]int32, n)}
	for i := 0; i < n; i++ {
		c.start[key(i)+1]++
	}
	for k := 0; k < keys; k++ {
		c.start[k+1] += c.start[k]
	}
	pos := slices.Clone(c.start[:keys])
	for i := 0; i < n; i++ {
		k := key(i)
		c.items[pos[k]] = int32(i)
		pos[k]++
	}
	if sortBy != nil {
		for k := 0; k < keys; k++ {
			slices.SortFunc(c.list(k), sortBy)
		}
	}
	return c
}

const blockSize = 1024

// parallel runs fn over blocks 0..n-1 on workers goroutines.
func parallel(workers, n int, fn func(b int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				b := int(next.Add(1) - 1)
				if b >= n {
					return
				}
				fn(b)
			}
		}()
	}
	wg.Wait()
}

func blocks(n int) int { return (n + blockSize - 1) / blockSize }

// Generate builds the world cfg describes. It panics on an invalid Config;
// use NewWorld to get an error instead.
func Generate(cfg Config) *World {
	w, err := NewWorld(cfg)
	if err != nil {
		panic(err)
	}
	return w
}

// NewWorld builds the world cfg describes.
func NewWorld(cfg Config) (*World, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &World{cfg: cfg}
	w.genTopics()
	w.genAuthors()
	w.genItems()
	w.genUsers()
	w.genEvents()
	return w, nil
}

func randomVector(r *rand.Rand, dst []float32, sd float64) {
	for j := range dst {
		dst[j] = float32(sd * r.NormFloat64())
	}
}

func (w *World) genTopics() {
	c := &w.cfg
	r := newRand(c.Seed, tagWorld, 0)
	w.topicCenter = make([]float32, c.Topics*c.Dim)
	w.topicWeight = make([]float64, c.Topics)
	var sum float64
	for k := range c.Topics {
		v := w.topicCenter[k*c.Dim : (k+1)*c.Dim]
		randomVector(r, v, 1)
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		n = math.Sqrt(n)
		for j := range v {
			if n > 0 {
				v[j] = float32(float64(v[j]) / n)
			}
		}
		w.topicWeight[k] = gamma(r, 2)
		sum += w.topicWeight[k]
	}
	for k := range w.topicWeight {
		w.topicWeight[k] /= sum
	}
	w.wItem = make([]float32, c.FeatureDim*(c.Dim+1))
	w.wUser = make([]float32, c.FeatureDim*(c.Dim+1))
	randomVector(r, w.wItem, 1)
	randomVector(r, w.wUser, 1)
}

func drawTopic(r *rand.Rand, weights []float64) int32 {
	x := r.Float64()
	for k, p := range weights {
		if x < p {
			return int32(k)
		}
		x -= p
	}
	return int32(len(weights) - 1)
}

func (w *World) genAuthors() {
	c := &w.cfg
	r := newRand(c.Seed, tagAuthors, 0)
	n := c.Authors
	w.authorTopic = make([]int32, n)
	w.authorPop = make([]float64, n)
	w.authorRisky = make([]bool, n)
	rank := r.Perm(n)
	for a := range n {
		w.authorTopic[a] = drawTopic(r, w.topicWeight)
		w.authorPop[a] = math.Pow(float64(rank[a]+1), -1.1)
		w.authorRisky[a] = r.Float64() < c.RiskyAuthors
	}
	w.authorAlias = newAlias(w.authorPop)
	w.topicAuthors = buildCSR(c.Topics, n, func(a int) int { return int(w.authorTopic[a]) }, nil)
	w.topicAlias = make([]alias, c.Topics)
	for k := range c.Topics {
		as := w.topicAuthors.list(k)
		ws := make([]float64, len(as))
		for j, a := range as {
			ws[j] = w.authorPop[a]
		}
		w.topicAlias[k] = newAlias(ws)
	}
}

// project writes W·[latent; extra] + noise, rounded to 4 decimals, into dst.
func project(dst []float32, wm []float32, latent []float32, extra float32, noise float64, r *rand.Rand) {
	d := len(latent)
	for f := range dst {
		row := wm[f*(d+1) : (f+1)*(d+1)]
		var s float64
		for j, x := range latent {
			s += float64(row[j]) * float64(x)
		}
		s += float64(row[d]) * float64(extra)
		s += noise * r.NormFloat64()
		dst[f] = float32(math.Round(s*1e4) / 1e4)
	}
}

// featureSlot returns row k of the features in flat, or withheld (a
// scratch row of the same width) when the world is id-only and flat is
// nil: the features are drawn all the same, so that every later draw is the
// one of the featured world.
func featureSlot(flat, withheld []float32, k int) []float32 {
	if flat == nil {
		return withheld
	}
	d := len(withheld)
	return flat[k*d : (k+1)*d]
}

func (w *World) genItems() {
	c := &w.cfg
	n := c.Items
	w.itemAuthor = make([]int32, n)
	w.itemTopic = make([]int32, n)
	w.itemLatent = make([]float32, n*c.Dim)
	w.itemQuality = make([]float32, n)
	w.itemRisk = make([]float64, n)
	w.itemCreated = make([]int64, n)
	if !c.IDOnly {
		w.itemFeat = make([]float32, n*c.FeatureDim)
	}
	prod := make([]float64, c.Authors)
	for a, p := range w.authorPop {
		prod[a] = math.Sqrt(p)
	}
	production := newAlias(prod)
	start := c.Start.Unix()
	span := int64(c.Days) * 86400
	latentSD := 0.5 / math.Sqrt(float64(max(c.Dim, 1)))
	parallel(c.Workers, blocks(n), func(b int) {
		r := newRand(c.Seed, tagItems, uint64(b))
		withheld := make([]float32, c.FeatureDim)
		for i := b * blockSize; i < min(n, (b+1)*blockSize); i++ {
			a := production.draw(r)
			w.itemAuthor[i] = int32(a)
			z := w.authorTopic[a]
			if r.Float64() >= 0.85 {
				z = drawTopic(r, w.topicWeight)
			}
			w.itemTopic[i] = z
			lat := w.itemLatent[i*c.Dim : (i+1)*c.Dim]
			center := w.topicCenter[int(z)*c.Dim : (int(z)+1)*c.Dim]
			for j := range lat {
				lat[j] = center[j] + float32(latentSD*r.NormFloat64())
			}
			w.itemQuality[i] = float32(0.5 * r.NormFloat64())
			var risk float64
			if w.authorRisky[a] {
				risk = beta(r, 2, 3)
			} else {
				risk = beta(r, 1, 15)
			}
			w.itemRisk[i] = math.Round(risk*1e4) / 1e4
			if span > 0 {
				w.itemCreated[i] = start - span + r.Int64N(2*span)
			} else {
				w.itemCreated[i] = start
			}
			project(featureSlot(w.itemFeat, withheld, i), w.wItem, lat, w.itemQuality[i], c.FeatureNoise, r)
		}
	})
	byCreated := func(a, b int32) int {
		return cmp.Or(cmp.Compare(w.itemCreated[a], w.itemCreated[b]), cmp.Compare(a, b))
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		w.byCreated = make([]int32, n)
		for i := range w.byCreated {
			w.byCreated[i] = int32(i)
		}
		slices.SortFunc(w.byCreated, byCreated)
	}()
	go func() {
		defer wg.Done()
		w.authorItems = buildCSR(c.Authors, n, func(i int) int { return int(w.itemAuthor[i]) }, byCreated)
	}()
	go func() {
		defer wg.Done()
		w.topicItems = buildCSR(c.Topics, n, func(i int) int { return int(w.itemTopic[i]) }, byCreated)
	}()
	pop := make([]float64, n)
	for i := range pop {
		pop[i] = w.authorPop[w.itemAuthor[i]] * math.Exp(float64(w.itemQuality[i]))
	}
	w.popular = newAlias(pop)
	wg.Wait()
}

// topicPosterior fills p with P(k | u) ∝ π_k·exp(gain·⟨u, c_k⟩).
func (w *World) topicPosterior(u int, gain float64, p []float64) {
	d := w.cfg.Dim
	lat := w.userLatent[u*d : (u+1)*d]
	var sum float64
	for k := range p {
		p[k] = w.topicWeight[k] * math.Exp(gain*float64(vec.Dot(lat, w.topicCenter[k*d:(k+1)*d])))
		sum += p[k]
	}
	for k := range p {
		p[k] /= sum
	}
}

func (w *World) genUsers() {
	c := &w.cfg
	n := c.Users
	w.userTopic = make([]int32, n)
	w.userLatent = make([]float32, n*c.Dim)
	w.userBias = make([]float32, n)
	if !c.IDOnly {
		w.userFeat = make([]float32, n*c.FeatureDim)
	}
	w.userShare = make([]float64, n)
	follows := make([][]int32, blocks(n))
	latentSD := 0.45 / math.Sqrt(float64(max(c.Dim, 1)))
	parallel(c.Workers, blocks(n), func(b int) {
		r := newRand(c.Seed, tagUsers, uint64(b))
		post := make([]float64, c.Topics)
		withheld := make([]float32, c.FeatureDim)
		var fs []int32
		counts := make([]int32, 0, blockSize)
		for u := b * blockSize; u < min(n, (b+1)*blockSize); u++ {
			z := drawTopic(r, w.topicWeight)
			w.userTopic[u] = z
			lat := w.userLatent[u*c.Dim : (u+1)*c.Dim]
			center := w.topicCenter[int(z)*c.Dim : (int(z)+1)*c.Dim]
			for j := range lat {
				lat[j] = center[j] + float32(latentSD*r.NormFloat64())
			}
			w.userBias[u] = float32(0.3 * r.NormFloat64())
			w.userShare[u] = math.Exp(0.8 * r.NormFloat64())
			project(featureSlot(w.userFeat, withheld, u), w.wUser, lat, w.userBias[u], c.FeatureNoise, r)

			// Initial follows.
			want := min(poisson(r, gamma(r, 2)*c.FollowsPerUser/2), c.Authors)
			w.topicPosterior(u, 4, post)
			first := len(fs)
			for tries := 0; len(fs)-first < want && tries < 4*want+8; tries++ {
				var a int32
				if k := drawTopic(r, post); r.Float64() < 0.15 || len(w.topicAuthors.list(int(k))) == 0 {
					a = int32(w.authorAlias.draw(r))
				} else {
					a = w.topicAuthors.list(int(k))[w.topicAlias[k].draw(r)]
				}
				if !slices.Contains(fs[first:], a) {
					fs = append(fs, a)
				}
			}
			slices.Sort(fs[first:])
			counts = append(counts, int32(len(fs)-first))
		}
		follows[b] = append(fs, counts...) // authors, then per-user counts
	})
	var sum float64
	for _, s := range w.userShare {
		sum += s
	}
	for u := range w.userShare {
		w.userShare[u] /= sum
	}
	w.follows.start = make([]int32, n+1)
	for b, fs := range follows {
		users := min(n, (b+1)*blockSize) - b*blockSize
		counts := fs[len(fs)-users:]
		fs = fs[:len(fs)-users]
		w.follows.items = append(w.follows.items, fs...)
		for j, k := range counts {
			u := b*blockSize + j
			w.follows.start[u+1] = w.follows.start[u] + k
		}
	}
}

// sim is one user's state while its log is generated.
type sim struct {
	w       *World
	r       *rand.Rand
	u       int
	follows []int32
	post    []float64 // topic posterior for the Topic source
	mix     [4]float64
}

func (w *World) newSim(u int, r *rand.Rand, post []float64, follows []int32) *sim {
	s := &sim{w: w, r: r, u: u, post: post}
	s.follows = append(follows[:0], w.follows.list(u)...)
	w.topicPosterior(u, 5, post)
	m := w.cfg.Mix
	total := m.Popular + m.Followed + m.Topic + m.Random
	s.mix = [4]float64{m.Popular / total, m.Followed / total, m.Topic / total, m.Random / total}
	return s
}

// existing returns how many items of list (sorted by creation) exist at t.
func (w *World) existing(list []int32, t int64) int {
	return sort.Search(len(list), func(j int) bool { return w.itemCreated[list[j]] > t })
}

// pick draws the item of an impression at t, or -1 when there is none.
func (s *sim) pick(t int64) int {
	w, r := s.w, s.r
	x := r.Float64()
	switch {
	case x < s.mix[0]:
		for range 16 {
			if i := w.popular.draw(r); w.itemCreated[i] <= t {
				return i
			}
		}
	case x < s.mix[0]+s.mix[1]:
		if len(s.follows) > 0 {
			a := s.follows[r.IntN(len(s.follows))]
			list := w.authorItems.list(int(a))
			if n := w.existing(list, t); n > 0 {
				return int(list[n-1-r.IntN(min(n, 10))])
			}
		}
		return s.topicItem(t)
	case x < s.mix[0]+s.mix[1]+s.mix[2]:
		return s.topicItem(t)
	}
	if n := w.existing(w.byCreated, t); n > 0 {
		return int(w.byCreated[r.IntN(n)])
	}
	return -1
}

func (s *sim) topicItem(t int64) int {
	list := s.w.topicItems.list(int(drawTopic(s.r, s.post)))
	if n := s.w.existing(list, t); n > 0 {
		return s.rankerPick(list[:n])
	}
	if n := s.w.existing(s.w.byCreated, t); n > 0 {
		return int(s.w.byCreated[s.r.IntN(n)])
	}
	return -1
}

// rankerPick is the previous recommender of the Topic source: it draws
// TopicCandidates items of list uniformly and returns the one it scores
// best, ClickScale·⟨u, i⟩ + q_i + N(0, RankerNoise²).
func (s *sim) rankerPick(list []int32) int {
	w, r, c := s.w, s.r, &s.w.cfg
	if c.TopicCandidates <= 1 {
		return int(list[r.IntN(len(list))])
	}
	best, top := -1, math.Inf(-1)
	for range c.TopicCandidates {
		i := int(list[r.IntN(len(list))])
		if score := c.Model.ClickScale*w.Affinity(s.u, i) + float64(w.itemQuality[i]) + c.RankerNoise*r.NormFloat64(); score > top {
			best, top = i, score
		}
	}
	return best
}

func (s *sim) following(a int32) int {
	return slices.Index(s.follows, a)
}

// run appends m impressions of the user and what they led to, and returns
// the extended slice. Times strictly increase within a user.
func (s *sim) run(m int, out []Interaction) []Interaction {
	if m <= 0 {
		return out
	}
	w, r, c := s.w, s.r, &s.w.cfg
	start := c.Start.Unix()
	span := max(int64(c.Days)*86400, 1)
	sessions := max(1, int(math.Round(float64(m)/8)))
	starts := make([]int64, sessions)
	for j := range starts {
		starts[j] = start + r.Int64N(span)
	}
	slices.Sort(starts)
	u32 := int32(s.u)
	cur := int64(math.MinInt64)
	emit := func(typ dataset.EventType, item, author int32, gap int) {
		cur += 1 + int64(r.IntN(gap))
		out = append(out, Interaction{Time: cur, User: u32, Item: item, Author: author, Type: typ})
	}
	for j := range m {
		if t := starts[j*sessions/m]; t > cur {
			cur = t
		} else {
			cur += 5 + int64(r.ExpFloat64()*20)
		}
		i := s.pick(cur)
		if i < 0 {
			continue
		}
		out = append(out, Interaction{Time: cur, User: u32, Item: int32(i), Author: -1, Type: dataset.Impression})
		p := w.conditional(s.u, i)
		author := w.itemAuthor[i]
		i32 := int32(i)
		if r.Float64() < p.click {
			emit(dataset.Click, i32, -1, 5)
			if r.Float64() < p.like {
				emit(dataset.Like, i32, -1, 20)
			}
			if r.Float64() < p.comment {
				emit(dataset.Comment, i32, -1, 60)
			}
			if r.Float64() < p.share {
				emit(dataset.Share, i32, -1, 30)
			}
			if s.following(author) < 0 && r.Float64() < p.follow {
				emit(dataset.Follow, i32, author, 10)
				s.follows = append(s.follows, author)
			}
		} else if r.Float64() < p.seeLess {
			emit(dataset.SeeLess, i32, -1, 5)
			if k := s.following(author); k >= 0 && r.Float64() < c.Model.UnfollowOnSeeLess {
				emit(dataset.Unfollow, i32, author, 5)
				s.follows = slices.Delete(s.follows, k, k+1)
			}
		}
	}
	return out
}

func (w *World) genEvents() {
	c := &w.cfg
	n := c.Users
	// A pilot run on a few users estimates log rows per impression, which
	// turns the row budget into impressions.
	ratio := 1.0
	{
		r := newRand(c.Seed, tagPilot, 0)
		post := make([]float64, c.Topics)
		var out []Interaction
		impressions := 0
		for u := range min(n, 300) {
			out = w.newSim(u, r, post, nil).run(30, out)
		}
		for _, e := range out {
			if e.Type == dataset.Impression {
				impressions++
			}
		}
		if impressions > 0 {
			ratio = float64(len(out)) / float64(impressions)
		}
	}
	perBlock := make([][]Interaction, blocks(n))
	parallel(c.Workers, blocks(n), func(b int) {
		r := newRand(c.Seed, tagEvents, uint64(b))
		post := make([]float64, c.Topics)
		var follows []int32
		var out []Interaction
		for u := b * blockSize; u < min(n, (b+1)*blockSize); u++ {
			want := float64(c.Events) * w.userShare[u] / ratio
			m := int(want)
			if r.Float64() < want-float64(m) {
				m++
			}
			s := w.newSim(u, r, post, follows)
			out = s.run(m, out)
			follows = s.follows
		}
		perBlock[b] = out
	})
	total := 0
	for _, p := range perBlock {
		total += len(p)
	}
	w.events = make([]Interaction, 0, total)
	for b := range perBlock {
		w.events = append(w.events, perBlock[b]...)
		perBlock[b] = nil
	}
	sortInteractions(w.events, c.Workers)
}

// sortInteractions orders by (time, user), a total order since a user's
// times strictly increase, sorting halves concurrently.
func sortInteractions(evs []Interaction, workers int) {
	less := func(a, b Interaction) int {
		return cmp.Or(cmp.Compare(a.Time, b.Time), cmp.Compare(a.User, b.User))
	}
	if workers < 2 || len(evs) < 1<<16 {
		slices.SortFunc(evs, less)
		return
	}
	mid := len(evs) / 2
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); slices.SortFunc(evs[:mid], less) }()
	slices.SortFunc(evs[mid:], less)
	wg.Wait()
	merged := make([]Interaction, 0, len(evs))
	a, b := evs[:mid], evs[mid:]
	for len(a) > 0 && len(b) > 0 {
		if less(b[0], a[0]) < 0 {
			merged = append(merged, b[0])
			b = b[1:]
		} else {
			merged = append(merged, a[0])
			a = a[1:]
		}
	}
	merged = append(append(merged, a...), b...)
	copy(evs, merged)
}
