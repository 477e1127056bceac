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

// Package rectrain trains the funnel's models from an interaction log: the
// two-tower retrieval model (in-batch sampled softmax with log-Q correction
// over positive engagements; its towers share a learned item_id embedding,
// the item's own row on the item side and the mean row of the recently
// engaged items on the user side), the MTML ranker (per-head binary
// cross-entropy on impressions) and the first-stage two-tower model
// distilled from the MTML's weighted value (on the items shown and on items
// like the ones retrieval hands the first stage, labelled by the MTML
// once). It writes them as runtime/internal/model artifacts and evaluates them on a
// time-based split of the log.
//
// Features are computed by replaying the log in time order, so that each
// example sees the state (engagement pool, follow graph, item age) at the
// time of its event; the names and meanings of the feature blocks are the
// contract with the serving runtime (see the Feat constants).
//
// Training is deterministic for a fixed seed: examples are shuffled by a
// seeded generator, each batch is split into two shards at fixed rows whose
// gradients are computed on two goroutines and summed in a fixed order, and
// gonum's BLAS splits large matrix products over every core without
// changing the result. A run can save a checkpoint after every epoch and
// resume from it to the same models.
package rectrain

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
)

// Options controls Train. Zero fields take the defaults noted beside them.
type Options struct {
	Epochs int    // passes over the training examples of the two-tower model and the ranker; default 3
	Seed   uint64 // seeds initialisation and shuffling; 0 is a valid seed
	// Dim is the retrieval embedding width; default 32.
	Dim int
	// TowerHidden is the width of the retrieval towers' two hidden layers;
	// default 128.
	TowerHidden int
	// IDDim is the width of the retrieval model's item_id embedding, read
	// by its item tower and pooled over the engagement pool by its user
	// tower; default 16, negative for none.
	IDDim int
	// FirstStageDim and FirstStageHidden size the distilled first stage;
	// defaults 16 and 64.
	FirstStageDim, FirstStageHidden int
	// FirstStageEpochs is the first stage's passes over its pairs; default
	// 10, fewer on a log with more than FirstStageMaxPairs/10 pairs (see
	// firstStageEpochs). The teacher labels the pairs once, so an epoch
	// costs only the small student.
	FirstStageEpochs int
	// Hidden are the MTML bottom's hidden widths (relu); default 256, 128.
	Hidden []int
	// Negatives is the number of items drawn uniformly from the catalog
	// per training impression that the ranker learns as shown and not
	// engaged with (every label 0; see_less learns nothing from them, as
	// only an item shown can draw it); default 1, negative for none. A log
	// shows each user what an earlier recommender chose, and a log of
	// ratings only what was engaged with (every label of every impression
	// 1): without them the ranker never sees the kind of item retrieval
	// hands it that the user would pass over (funnel NDCG@100 0.0371
	// without, 0.0420 with one, on a 5,000-user ID-only world). They
	// lower the predicted probabilities below the log's rates.
	Negatives int
	// Batch is the minibatch size; default 512.
	Batch int
	// LR is Adam's learning rate; default 1e-3 (3× for the two-tower
	// models' weights; their item_id table learns at LR).
	LR float64
	// IDLR is Adam's learning rate of the item_id tables; default LR, or
	// IDOnlyLR when the catalog has no features. An ID-only model has
	// nothing but its tables to learn, and a row is updated only in the
	// few batches that show its item: at LR it hardly leaves its random
	// start (two-tower recall@100 0.046 at 10×LR against 0.056 at 30×LR on
	// a 5,000-user ID-only world; 0.125 against popularity's 0.042 on the
	// same world with 200 events a user).
	IDLR float64
	// Weights are the event weights of the teacher's value Σ w·P, by head
	// name; default click 1, like 2, comment 4, share 4, see_less −8.
	Weights map[string]float64
	// EvalUsers bounds the users of the first-stage vs teacher evaluation;
	// default 500.
	EvalUsers int
	// Progress receives a line per epoch (redrawn during the epoch when it
	// is a terminal); nil discards them.
	Progress io.Writer
	// Checkpoint is a directory where the training state is saved after
	// every epoch (weights, optimiser state, position in the schedule and
	// the shuffling generator); "" saves none.
	Checkpoint string
	// Resume continues from the checkpoint in Checkpoint, giving the same
	// models as a run that was never interrupted; it starts from the
	// beginning when the directory holds no checkpoint yet.
	Resume bool
	// StopAfter ends the run with ErrStopped once this many epochs of the
	// schedule (the models one after the other: Epochs for the two-tower
	// model and the ranker, then FirstStageEpochs) are done; 0
	// runs to the end.
	StopAfter int
}

// IDOnlyLR is the default learning rate of the item_id tables when the
// catalog has no features (Options.IDLR).
const IDOnlyLR = 0.03

// DefaultWeights are the teacher's default event weights.
func DefaultWeights() map[string]float64 {
	return map[string]float64{"click": 1, "like": 2, "comment": 4, "share": 4, "see_less": -8}
}

func (o Options) withDefaults() Options {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.Epochs, 3)
	def(&o.Dim, 32)
	def(&o.TowerHidden, 128)
	def(&o.FirstStageDim, 16)
	def(&o.FirstStageHidden, 64)
	if o.IDDim == 0 {
		o.IDDim = 16
	}
	def(&o.Batch, 512)
	if o.Negatives == 0 {
		o.Negatives = 1
	}
	o.Negatives = max(o.Negatives, 0)
	def(&o.EvalUsers, 500)
	if len(o.Hidden) == 0 {
		o.Hidden = []int{256, 128}
	}
	if o.LR <= 0 {
		o.LR = 1e-3
	}

	if o.Weights == nil {
		o.Weights = DefaultWeights()
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// Result holds the trained models and their evaluation.
type Result struct {
	TwoTower, FirstStage *TwoTower
	MTML                 *MTML
	Eval                 Report
	// Loss is each model's mean training loss in its last epoch.
	Loss map[string]float64
	// Curve is each model's mean training loss per epoch that this
	// process ran (a resumed run lacks those before the checkpoint).
	Curve map[string][]float64
	// Phases are the run's steps with their time and the resident
	// high-water mark at their end.
	Phases []Phase
	// weights is the teacher's value weights in Heads order.
	weights []float64
	// scores are the trained retrieval model's embeddings, for the
	// ranker's two_tower_score.
	scores *towerScores
	// retrievalW is the weight of two_tower_score in the teacher's value
	// (chooseBlend).
	retrievalW float64
	// net is the trained MTML as the serving runtime runs it, for the
	// teacher's values: forward passes only, millions of them at 1M
	// items (the retrieval weight's choice, the distillation targets, the
	// evaluation), on model's float32 kernel, several times faster than
	// the float64 network training uses.
	net  *model.MTML
	data *Data
}

// Train trains the three models on d's training impressions and evaluates
// them on its test impressions. With Options.StopAfter it may return
// ErrStopped, having saved the checkpoint to resume from.
func Train(d *Data, opts Options) (*Result, error) {
	o := opts.withDefaults()
	for name := range o.Weights {
		if !slices.Contains(Heads, name) {
			return nil, fmt.Errorf("weight for unknown event %q (want one of %v)", name, Heads)
		}
	}
	if d.TrainN == 0 {
		return nil, fmt.Errorf("no training impressions before the split")
	}
	if o.FirstStageEpochs <= 0 {
		o.FirstStageEpochs = firstStageEpochs(d.TrainN)
	}
	if o.IDLR <= 0 {
		o.IDLR = o.LR
		if d.ItemDim == 0 {
			o.IDLR = IDOnlyLR
		}
	}
	res := &Result{data: d, Loss: map[string]float64{}, Curve: map[string][]float64{}}
	for _, h := range Heads {
		res.weights = append(res.weights, o.Weights[h])
	}
	sch, err := newSchedule(d, o, res)
	if err != nil {
		return nil, err
	}
	pt := newPhaseTimer(o.Progress, &res.Phases)
	// The retrieval towers have two hidden layers (recall@100 0.126
	// against 0.119 with one, on a 10,000-user world) and share an item_id
	// embedding: the item tower reads the item's row, the user tower the
	// mean row of its engagement pool.
	ttShape := towerShape{layers: 2, hidden: o.TowerHidden, dim: o.Dim, idDim: max(o.IDDim, 0), idPool: true}
	if res.TwoTower, err = newTwoTower(d, ttShape, o.Seed*7+1); err != nil {
		return nil, err
	}
	if err := trainRetrieval(d, o, res, sch); err != nil {
		return nil, err
	}
	d.forgetUntrained(res.TwoTower.ItemIDs)
	pt.done("two-tower")
	// The ranker starts its own item_id table from the retrieval model's,
	// and reads the retrieval model's score, which the value weighs too
	// (chooseBlend).
	res.scores = newTowerScores(d, res.TwoTower)
	pt.done("two-tower scores")
	if res.MTML, err = newMTML(d, o.Hidden, res.TwoTower.ItemIDs, true, o.Seed*7+3); err != nil {
		return nil, err
	}
	if err := trainMTML(d, o, res, sch); err != nil {
		return nil, err
	}
	d.forgetUntrained(res.MTML.ItemIDs)
	if res.net, err = res.MTML.inference(); err != nil {
		return nil, err
	}
	pt.done("mtml")
	chooseBlend(d, res, o, o.Progress)
	pt.done("retrieval weight")
	// The first stage's item tower adds item_risk: the teacher's value
	// weighs see_less, which the risk drives, by −8. It has no item_id
	// embedding, which learns the distillation pairs by heart (Spearman
	// 0.47 with one, 0.63 without, on a 10,000-user world), unless the
	// catalog has no features (MovieLens), when the IDs are all it has:
	// the item's row, and the user's engagement pool's mean row.
	fsShape := towerShape{layers: 1, hidden: o.FirstStageHidden, dim: o.FirstStageDim, risk: true}
	if d.ItemDim == 0 {
		fsShape.idDim, fsShape.idPool = max(o.IDDim, 0), true
	}
	if res.FirstStage, err = newTwoTower(d, fsShape, o.Seed*7+5); err != nil {
		return nil, err
	}
	if err := trainDistill(d, o, res, sch, pt); err != nil {
		return nil, err
	}
	d.forgetUntrained(res.FirstStage.ItemIDs)
	pt.done("first-stage")
	res.Eval = evaluate(d, res, o)
	pt.done("evaluation")
	return res, nil
}

// FirstStageMaxPairs bounds the distillation pairs the first stage is shown
// in all when its epochs are not set: 10 epochs, or as many as fit. A
// million-item log's 2.4 million pairs an epoch took 4 min 45 s for ten
// epochs on 2 cores, and its loss fell 2.3% from the sixth epoch to the tenth.
const FirstStageMaxPairs = 15_000_000

// firstStageEpochs is the default of Options.FirstStageEpochs for trainN
// training impressions (two pairs each).
func firstStageEpochs(trainN int) int {
	return max(1, min(10, FirstStageMaxPairs/max(1, 2*trainN)))
}

// A batch's gradient work is split into two shards of rows at fixed
// boundaries, run on two goroutines; their gradients are summed shard 0
// first, so the result does not depend on scheduling.
const shards = 2

// inShards calls fn for each shard of n rows, shard 1 on its own goroutine.
func inShards(n int, fn func(s, lo, hi int)) {
	h := n / 2
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		fn(1, h, n)
	}()
	fn(0, 0, h)
	wg.Wait()
}

// inChunks splits 0..n into chunks of chunk, numbered c = lo/chunk, and
// hands them out to shards goroutines; each goroutine makes its own worker
// (its scratch) with newWorker and calls it for every chunk it takes. A
// worker that writes only its chunk's outputs, and draws randomness from c
// alone, gives the same result however the chunks are shared out.
func inChunks(n, chunk int, newWorker func() func(c, lo, hi int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for {
				c := int(next.Add(1) - 1)
				lo := c * chunk
				if lo >= n {
					return
				}
				work(c, lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}

// rowsOf is the view of rows lo..hi of m.
func rowsOf(m blas64.General, lo, hi int) blas64.General {
	return blas64.General{Rows: hi - lo, Cols: m.Cols, Stride: m.Stride, Data: m.Data[lo*m.Stride : hi*m.Stride]}
}

// sumInto adds src to dst, element by element.
func sumInto(dst, src [][]float64) {
	for i, d := range dst {
		for k, v := range src[i] {
			d[k] += v
		}
	}
}

func shuffled(r *rand.Rand, idx []int32) {
	r.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
}

func identity(idx []int32) {
	for k := range idx {
		idx[k] = int32(k)
	}
}

// towerShard is one shard's scratch for a two-tower model.
type towerShard struct {
	ub, ib, dub, dib, target []float64
	// ugb and dugb are the user embeddings repeated for each of an
	// impression's distillation pairs, and their gradients.
	ugb, dugb []float64
	tu, ti    nn.Tape
	gu, gi    *nn.Grads
	// grads are in the order of TwoTower.Params, nil for the item_id
	// table, whose gradient is gathered in a towerStep's rows.
	grads [][]float64
	// dx is the gradient of the item tower's input (for the item_id rows)
	// and items the item of each of the shard's rows.
	dx    blas64.General
	items []int32
	// dxu and pools are the same for the user tower's engagement_id_pool:
	// the input gradient and each row's pooled items.
	dxu   blas64.General
	pools [][]int32
	loss  float64
}

func newTowerShards(t *TwoTower) [shards]*towerShard {
	var out [shards]*towerShard
	for s := range out {
		sh := &towerShard{gu: t.User.NewGrads(), gi: t.Item.NewGrads()}
		sh.grads = append(sh.gu.Slices(), sh.gi.Slices()...)
		if t.ItemIDs != nil {
			sh.grads = append(sh.grads, nil)
		}
		out[s] = sh
	}
	return out
}

// towerStep applies one optimiser step to a two-tower model from its
// shards' gradients, summed shard 0 first.
type towerStep struct {
	t    *TwoTower
	opt  *nn.Adam
	rows []*nn.RowGrads // nil, or the item_id table's at its Params index
}

// newTowerStep returns the optimiser of a two-tower model: Adam at lr for
// the towers, and at rowLR for the item_id table, whose rows get far fewer
// updates than the towers' weights: Adam makes a rare row's first updates
// full-sized steps, so the table takes smaller ones (recall@100 0.0657 at
// a third of the towers' rate against 0.0650 at their rate, on a
// 25,000-user world).
func newTowerStep(t *TwoTower, lr, rowLR float64) *towerStep {
	params := t.Params()
	s := &towerStep{t: t, opt: nn.NewAdam(params, lr)}
	s.opt.RowLR = rowLR
	if t.ItemIDs != nil {
		s.rows = make([]*nn.RowGrads, len(params))
		s.rows[len(params)-1] = t.ItemIDs.NewRowGrads()
	}
	return s
}

func (s *towerStep) step(sh [shards]*towerShard) {
	for _, w := range sh[1:] {
		sumInto(sh[0].grads, w.grads)
	}
	if s.rows == nil {
		s.opt.Step(sh[0].grads)
		return
	}
	g := s.rows[len(s.rows)-1]
	for _, w := range sh {
		s.t.addIDGrads(g, w.dx, w.items)
		if s.t.hasIDPool() {
			s.t.addPoolGrads(g, w.dxu, w.pools)
		}
	}
	s.opt.StepRows(sh[0].grads, s.rows)
	g.Zero()
}

// trainRetrieval fits the two-tower model on the training impressions that
// led to a positive engagement.
func trainRetrieval(d *Data, o Options, res *Result, sch *schedule) error {
	const stage = 0
	tt := res.TwoTower
	var base []int32
	count := make([]float64, len(d.ItemIDs))
	for k := 0; k < d.TrainN; k++ {
		if d.Imps[k].Labels&positiveMask != 0 {
			base = append(base, int32(k))
			count[d.Imps[k].Item]++
		}
	}
	if len(base) < 2 {
		return fmt.Errorf("only %d positive engagements before the split; retrieval needs at least 2", len(base))
	}
	pos := slices.Clone(base)
	logQ := make([]float64, len(count))
	for i, c := range count {
		logQ[i] = math.Log(math.Max(c, 1) / float64(len(pos)))
	}
	pcg := rand.NewPCG(o.Seed, 0x7265747269657665)
	r := rand.New(pcg)
	ts := newTowerStep(tt, 3*o.LR, o.IDLR)
	first, err := sch.begin(stage, tt.Params(), ts.opt, pcg)
	if err != nil {
		return err
	}
	sh := newTowerShards(tt)
	var (
		ueb, ieb, dub, dib, lq, logits []float64
		items                          []int32
	)
	uw, iw := tt.UserSpec.Width(), tt.ItemSpec.Width()
	bs := min(o.Batch, len(pos))
	m := newMeter(o, stage, len(pos)/bs*bs, first)
	for ep := first; ep < o.Epochs; ep++ {
		m.startEpoch(ep)
		// Each epoch shuffles the same starting order, so that the
		// generator's state alone fixes the next epoch's order.
		copy(pos, base)
		shuffled(r, pos)
		for s := 0; s+bs <= len(pos); s += bs {
			batch := pos[s : s+bs]
			var ue, ie, du, di blas64.General
			ueb, ue = matrix(ueb, bs, o.Dim)
			ieb, ie = matrix(ieb, bs, o.Dim)
			dub, du = matrix(dub, bs, o.Dim)
			dib, di = matrix(dib, bs, o.Dim)
			lq = slices.Grow(lq[:0], bs)[:bs]
			items = slices.Grow(items[:0], bs)[:bs]
			inShards(bs, func(s, lo, hi int) {
				w := sh[s]
				var ux, ix blas64.General
				w.ub, ux = matrix(w.ub, hi-lo, uw)
				w.ib, ix = matrix(w.ib, hi-lo, iw)
				w.pools = slices.Grow(w.pools[:0], hi-lo)[:hi-lo]
				for j, k := range batch[lo:hi] {
					im := &d.Imps[k]
					w.pools[j] = d.PoolItems(im.User, im.PoolN)
					tt.userRow(d, w.ub[j*uw:(j+1)*uw], im.User, d.Pool(int(k)), w.pools[j])
					tt.itemRow(d, w.ib[j*iw:(j+1)*iw], im.Item)
					lq[lo+j] = logQ[im.Item]
					items[lo+j] = im.Item
				}
				copy(ue.Data[lo*o.Dim:hi*o.Dim], tt.User.Forward(ux, &w.tu).Data)
				copy(ie.Data[lo*o.Dim:hi*o.Dim], tt.Item.Forward(ix, &w.ti).Data)
			})
			// The softmax couples every row of the batch; it runs whole.
			var loss float64
			loss, logits = nn.InBatchSoftmax(ue, ie, lq, items, du, di, logits)
			inShards(bs, func(s, lo, hi int) {
				w := sh[s]
				w.gu.Zero()
				w.gi.Zero()
				w.dxu = tt.User.Backward(&w.tu, rowsOf(du, lo, hi), w.gu, tt.hasIDPool())
				w.dx = tt.Item.Backward(&w.ti, rowsOf(di, lo, hi), w.gi, tt.ItemIDs != nil)
				w.items = items[lo:hi]
			})
			ts.step(sh)
			m.step(bs, loss)
		}
		res.Loss[stages[stage]] = m.endEpoch()
		res.Curve[stages[stage]] = append(res.Curve[stages[stage]], res.Loss[stages[stage]])
		if err := sch.end(stage, ep, ts.opt, pcg); err != nil {
			return err
		}
	}
	return nil
}

// mtmlShard is one shard's scratch for the ranker.
type mtmlShard struct {
	xb, yb, dzb []float64
	tb, th      nn.Tape
	gb, gh      *nn.Grads
	grads       [][]float64
	loss        float64
	// x and dx are the input and its gradient, items and pools each row's
	// item and pooled items, for the item_id table's gradient.
	x, dx blas64.General
	items []int32
	pools [][]int32
}

// pass runs the ranker forward and backward on the examples lo to hi of
// ex, the first nShown of which are impressions and the rest drawn
// negatives, into the shard's gradients and loss (the mean over all of
// ex's examples).
func (sw *mtmlShard) pass(d *Data, res *Result, ex examples, nShown, lo, hi int) {
	m := res.MTML
	w := m.Spec.Width()
	nh := len(Heads)
	n := len(ex.imp)
	rows := hi - lo
	var x, dz blas64.General
	sw.xb, x = matrix(sw.xb, rows, w)
	sw.yb = slices.Grow(sw.yb[:0], rows*nh)[:rows*nh]
	sw.dzb, dz = matrix(sw.dzb, rows, nh)
	sw.items = slices.Grow(sw.items[:0], rows)[:rows]
	sw.pools = slices.Grow(sw.pools[:0], rows)[:rows]
	for j := range rows {
		k, i := ex.imp[lo+j], ex.item[lo+j]
		im := &d.Imps[k]
		followed, labels := im.Followed, im.Labels
		if i != im.Item {
			_, followed = d.SplitFollows[followKey(im.User, d.ItemAuthor[i])]
			labels = 0
		}
		sw.items[j], sw.pools[j] = i, d.PoolItems(im.User, im.PoolN)
		m.rankRow(d, sw.xb[j*w:(j+1)*w], im.User, d.Pool(int(k)), sw.pools[j], i, im.T, followed, res.scores.at(k, i))
		for h := range nh {
			sw.yb[j*nh+h] = float64(labels >> h & 1)
		}
	}
	z := m.HeadLayer.Forward(m.Bottom.Forward(x, &sw.tb), &sw.th)
	sw.loss = nn.BCEWithLogits(z.Data, sw.yb, dz.Data, 1/float64(n))
	// A drawn negative was never shown: it says nothing of see_less, which
	// only an item shown can draw.
	for j := range rows {
		if lo+j >= nShown {
			dz.Data[j*nh+seeLessHead] = 0
		}
	}
	sw.gb.Zero()
	sw.gh.Zero()
	dh := m.HeadLayer.Backward(&sw.th, dz, sw.gh, true)
	sw.x, sw.dx = x, m.Bottom.Backward(&sw.tb, dh, sw.gb, m.ItemIDs != nil)
}

// trainMTML fits the ranker on every training impression.
func trainMTML(d *Data, o Options, res *Result, sch *schedule) error {
	const stage = 1
	m := res.MTML
	idx := make([]int32, d.TrainN)
	pcg := rand.NewPCG(o.Seed, 0x6d746d6c)
	r := rand.New(pcg)
	params := m.Params()
	opt := nn.NewAdam(params, o.LR)
	opt.RowLR = o.IDLR
	var rows []*nn.RowGrads
	if m.ItemIDs != nil {
		rows = make([]*nn.RowGrads, len(params))
		rows[len(params)-1] = m.ItemIDs.NewRowGrads()
	}
	first, err := sch.begin(stage, params, opt, pcg)
	if err != nil {
		return err
	}
	var sh [shards]*mtmlShard
	for s := range sh {
		w := &mtmlShard{gb: m.Bottom.NewGrads(), gh: m.HeadLayer.NewGrads()}
		w.grads = append(w.gb.Slices(), w.gh.Slices()...)
		if m.ItemIDs != nil {
			w.grads = append(w.grads, nil)
		}
		sh[s] = w
	}
	negatives := negativeItems(d)
	var ex examples
	mt := newMeter(o, stage, len(idx)*(1+o.Negatives), first)
	for ep := first; ep < o.Epochs; ep++ {
		mt.startEpoch(ep)
		identity(idx)
		shuffled(r, idx)
		for s := 0; s < len(idx); s += o.Batch {
			batch := idx[s:min(s+o.Batch, len(idx))]
			ex = ex.of(d, batch, negatives, o.Negatives, r)
			n := len(ex.imp)
			inShards(n, func(s, lo, hi int) {
				sh[s].pass(d, res, ex, len(batch), lo, hi)
			})
			loss := sh[0].loss
			for _, sw := range sh[1:] {
				sumInto(sh[0].grads, sw.grads)
				loss += sw.loss
			}
			if rows != nil {
				g := rows[len(rows)-1]
				for _, sw := range sh {
					m.addIDGrads(g, sw.x, sw.dx, sw.items, sw.pools)
				}
				opt.StepRows(sh[0].grads, rows)
				g.Zero()
			} else {
				opt.Step(sh[0].grads)
			}
			mt.step(n, loss)
		}
		res.Loss[stages[stage]] = mt.endEpoch()
		res.Curve[stages[stage]] = append(res.Curve[stages[stage]], res.Loss[stages[stage]])
		if err := sch.end(stage, ep, opt, pcg); err != nil {
			return err
		}
	}
	return nil
}

// negativeItems are the items the ranker's sampled negatives are drawn
// from: those of training impressions (the others have no trained item_id
// row).
func negativeItems(d *Data) []int32 {
	var out []int32
	for i, ok := range d.trainedItems() {
		if ok {
			out = append(out, int32(i))
		}
	}
	return out
}

// examples are the ranker's rows of one batch: the impression whose user
// state and time each row has, and its item. A row whose item is not the
// impression's is a sampled negative, every label 0.
type examples struct{ imp, item []int32 }

// of fills ex with batch's impressions and, after them, per impressions
// negs items drawn uniformly from items with r. The draws happen here, in
// order, so the batch is the same whatever the goroutines do.
func (ex examples) of(d *Data, batch, items []int32, negs int, r *rand.Rand) examples {
	ex.imp, ex.item = ex.imp[:0], ex.item[:0]
	for _, k := range batch {
		ex.imp, ex.item = append(ex.imp, k), append(ex.item, d.Imps[k].Item)
	}
	for range negs {
		for _, k := range batch {
			i := items[r.IntN(len(items))]
			for i == d.Imps[k].Item && len(items) > 1 {
				i = items[r.IntN(len(items))]
			}
			ex.imp, ex.item = append(ex.imp, k), append(ex.item, i)
		}
	}
	return ex
}

// teacherBuf is a goroutine's scratch for the teacher.
type teacherBuf struct {
	x, p []float32
	ws   model.Workspace
}

// teacher computes the MTML's value Σ w·P for each row of x (n×width) into
// out, and the probabilities into probs (n×len(Heads)) when not nil. It
// runs the trained ranker as recserve does (res.net, float32).
func (res *Result) teacher(x blas64.General, b *teacherBuf, out, probs []float64) {
	nh := len(Heads)
	b.x = slices.Grow(b.x[:0], x.Rows*x.Cols)[:x.Rows*x.Cols]
	b.p = slices.Grow(b.p[:0], x.Rows*nh)[:x.Rows*nh]
	for r := range x.Rows {
		xr, dst := x.Data[r*x.Stride:r*x.Stride+x.Cols], b.x[r*x.Cols:(r+1)*x.Cols]
		for k, v := range xr {
			dst[k] = float32(v)
		}
	}
	res.net.Predict(blas32.General{Rows: x.Rows, Cols: x.Cols, Stride: x.Cols, Data: b.x}, b.p, &b.ws)
	for r := range x.Rows {
		var v float64
		if res.retrievalW != 0 {
			v = res.retrievalW * x.Data[r*x.Stride+x.Cols-1]
		}
		for h := range nh {
			p := float64(b.p[r*nh+h])
			if probs != nil {
				probs[r*nh+h] = p
			}
			v += res.weights[h] * p
		}
		out[r] = v
	}
}

// trainDistill fits the first stage to the teacher's value by squared
// error. Each training impression gives pairs sharing its user state: the
// item shown and its partner (distillPartners), an item like the ones the
// funnel's retrieval hands the first stage. The teacher's values do not
// change during training: they are computed once, before the first epoch.
func trainDistill(d *Data, o Options, res *Result, sch *schedule, pt *phaseTimer) error {
	const stage = 2
	fs := res.FirstStage
	pcg := rand.NewPCG(o.Seed, 0x64697374696c6c)
	r := rand.New(pcg)
	// The partners are fixed up front so that the pairs do not depend on
	// the batch order; a resumed run draws them again from the same seed.
	partners := distillPartners(d, res, o.Seed)
	const g = 2 // pairs per impression
	item := func(imp, p int) int32 {
		if p == 0 {
			return d.Imps[imp].Item
		}
		return partners[imp]
	}
	target := distillTargets(d, res, g, item)
	pt.done("first-stage pairs")
	idx := make([]int32, d.TrainN)
	ts := newTowerStep(fs, 3*o.LR, o.IDLR)
	first, err := sch.begin(stage, fs.Params(), ts.opt, pcg)
	if err != nil {
		return err
	}
	sh := newTowerShards(fs)
	uw, iw := fs.UserSpec.Width(), fs.ItemSpec.Width()
	per := max(1, o.Batch/g) // impressions per batch
	m := newMeter(o, stage, d.TrainN*g, first)
	for ep := first; ep < o.FirstStageEpochs; ep++ {
		m.startEpoch(ep)
		identity(idx)
		shuffled(r, idx)
		for s := 0; s < len(idx); s += per {
			batch := idx[s:min(s+per, len(idx))]
			bn := len(batch) * g
			inShards(len(batch), func(s, lo, hi int) {
				// The pairs of an impression share its user state: the user
				// tower runs once per impression, and its gradient is the
				// sum of the pairs'.
				w := sh[s]
				n := hi - lo
				rows := n * g
				var ux, ix, du, di, ug, dug blas64.General
				w.ub, ux = matrix(w.ub, n, uw)
				w.ib, ix = matrix(w.ib, rows, iw)
				w.dub, du = matrix(w.dub, n, fs.User.Out())
				w.dib, di = matrix(w.dib, rows, fs.Item.Out())
				w.ugb, ug = matrix(w.ugb, rows, fs.User.Out())
				w.dugb, dug = matrix(w.dugb, rows, fs.User.Out())
				w.target = slices.Grow(w.target[:0], rows)[:rows]
				w.items = slices.Grow(w.items[:0], rows)[:rows]
				for j, e := range batch[lo:hi] {
					imp := int(e)
					im := &d.Imps[imp]
					fs.userRow(d, w.ub[j*uw:(j+1)*uw], im.User, d.Pool(imp), d.PoolItems(im.User, im.PoolN))
					for p := range g {
						i := item(imp, p)
						fs.itemRow(d, w.ib[(j*g+p)*iw:(j*g+p+1)*iw], i)
						w.target[j*g+p] = float64(target[imp*g+p])
						w.items[j*g+p] = i
					}
				}
				ue := fs.User.Forward(ux, &w.tu)
				ie := fs.Item.Forward(ix, &w.ti)
				dim := ue.Cols
				for j := range n {
					for p := range g {
						copy(ug.Data[(j*g+p)*dim:(j*g+p+1)*dim], ue.Data[j*ue.Stride:j*ue.Stride+dim])
					}
				}
				w.loss = nn.DotMSE(ug, ie, w.target, dug, di, 1/float64(bn))
				for j := range n {
					dr := du.Data[j*dim : (j+1)*dim]
					copy(dr, dug.Data[j*g*dim:(j*g+1)*dim])
					for p := 1; p < g; p++ {
						for k, v := range dug.Data[(j*g+p)*dim : (j*g+p+1)*dim] {
							dr[k] += v
						}
					}
				}
				w.gu.Zero()
				w.gi.Zero()
				fs.User.Backward(&w.tu, du, w.gu, false)
				w.dx = fs.Item.Backward(&w.ti, di, w.gi, fs.ItemIDs != nil)
			})
			loss := sh[0].loss
			for _, w := range sh[1:] {
				loss += w.loss
			}
			ts.step(sh)
			m.step(bn, loss)
		}
		res.Loss[stages[stage]] = m.endEpoch()
		res.Curve[stages[stage]] = append(res.Curve[stages[stage]], res.Loss[stages[stage]])
		if err := sch.end(stage, ep, ts.opt, pcg); err != nil {
			return err
		}
	}
	return nil
}

// distillTargets returns the teacher's value of every distillation pair,
// pair p of impression imp (item(imp, p), with the impression's user
// state and time) at [imp·g+p], on two goroutines.
func distillTargets(d *Data, res *Result, g int, item func(imp, p int) int32) []float32 {
	out := make([]float32, d.TrainN*g)
	rw := res.MTML.Spec.Width()
	const chunk = 256 // impressions
	inChunks(d.TrainN, chunk, func() func(c, lo, hi int) {
		var tb teacherBuf
		var xb []float64
		vals := make([]float64, chunk*g)
		return func(_, lo, hi int) {
			var x blas64.General
			xb, x = matrix(xb, (hi-lo)*g, rw)
			j := 0
			for imp := lo; imp < hi; imp++ {
				im := &d.Imps[imp]
				for p := range g {
					i, followed := item(imp, p), im.Followed
					if p > 0 {
						_, followed = d.SplitFollows[followKey(im.User, d.ItemAuthor[i])]
					}
					res.MTML.rankRow(d, xb[j*rw:(j+1)*rw], im.User, d.Pool(imp), d.PoolItems(im.User, im.PoolN), i, im.T, followed, res.scores.at(int32(imp), i))
					j++
				}
			}
			res.teacher(x, &tb, vals[:j], nil)
			for q, v := range vals[:j] {
				out[lo*g+q] = float32(v)
			}
		}
	})
	return out
}

// Save writes the three artifacts under dir: two-tower, first-stage and mtml.
func (res *Result) Save(dir, version string) error {
	d := res.data
	meta := func(extra map[string]string) map[string]string {
		m := map[string]string{
			"trainedOn": time.Unix(d.Start, 0).UTC().Format(time.RFC3339) + ".." + time.Unix(d.Split, 0).UTC().Format(time.RFC3339),
			"trainer":   "rectrain",
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	e := res.Eval
	if err := res.TwoTower.Save(d, dirJoin(dir, "two-tower"), "two-tower", version, meta(map[string]string{
		"objective":  "in-batch sampled softmax with log-Q correction over click/like/comment/share",
		"recall@100": f(e.Recall), "recall@100.popular": f(e.RecallPopular),
		"ndcg@100": f(e.Retrieval.NDCG100), "funnel.recall@100": f(e.Funnel.Recall100),
	})); err != nil {
		return err
	}
	wts := ""
	for h, name := range Heads {
		if h > 0 {
			wts += ","
		}
		wts += name + ":" + f(res.weights[h])
	}
	if err := res.FirstStage.Save(d, dirJoin(dir, "first-stage"), "first-stage", version, meta(map[string]string{
		"objective":      "squared error against the mtml teacher's value",
		"teacherWeights": wts, "spearman@300": f(e.Spearman), "kendall@300": f(e.Kendall),
	})); err != nil {
		return err
	}
	mm := map[string]string{"objective": "per-head binary cross-entropy on impressions"}
	for h, name := range Heads {
		mm["auc."+name] = f(e.AUC[h])
		mm["ece."+name] = f(e.ECE[h])
	}
	return res.MTML.Save(res.data, dirJoin(dir, "mtml"), "mtml", version, meta(mm))
}
