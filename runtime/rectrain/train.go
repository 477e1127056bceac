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
// over positive engagements), the MTML ranker (per-head binary cross-entropy
// on impressions) and the first-stage two-tower model distilled from the
// MTML's weighted value. It writes them as runtime/model artifacts and
// evaluates them on a time-based split of the log.
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
	"time"

	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/rectrain/nn"
)

// Options controls Train. Zero fields take the defaults noted beside them.
type Options struct {
	Epochs int    // passes over the training examples per model; default 3
	Seed   uint64 // seeds initialisation and shuffling; 0 is a valid seed
	// Dim is the retrieval embedding width; default 32.
	Dim int
	// TowerHidden is the hidden width of the retrieval towers; default 128.
	TowerHidden int
	// FirstStageDim and FirstStageHidden size the distilled first stage;
	// defaults 16 and 64.
	FirstStageDim, FirstStageHidden int
	// Hidden are the MTML bottom's hidden widths (relu); default 256, 128.
	Hidden []int
	// Batch is the minibatch size; default 512.
	Batch int
	// LR is Adam's learning rate; default 1e-3 (3e-3 for the towers).
	LR float64
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
	// schedule (the models one after the other, Epochs each) are done; 0
	// runs to the end.
	StopAfter int
}

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
	def(&o.Batch, 512)
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
	// weights is the teacher's value weights in Heads order.
	weights []float64
	data    *Data
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
	res := &Result{data: d, Loss: map[string]float64{}}
	for _, h := range Heads {
		res.weights = append(res.weights, o.Weights[h])
	}
	sch, err := newSchedule(d, o, res)
	if err != nil {
		return nil, err
	}
	if res.TwoTower, err = newTwoTower(d, o.TowerHidden, o.Dim, o.Seed*7+1); err != nil {
		return nil, err
	}
	if err := trainRetrieval(d, o, res, sch); err != nil {
		return nil, err
	}
	if res.MTML, err = newMTML(d, o.Hidden, o.Seed*7+3); err != nil {
		return nil, err
	}
	if err := trainMTML(d, o, res, sch); err != nil {
		return nil, err
	}
	if res.FirstStage, err = newTwoTower(d, o.FirstStageHidden, o.FirstStageDim, o.Seed*7+5); err != nil {
		return nil, err
	}
	if err := trainDistill(d, o, res, sch); err != nil {
		return nil, err
	}
	res.Eval = evaluate(d, res, o)
	return res, nil
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
	ub, ib, rb, dub, dib, target []float64
	tu, ti, tb, th               nn.Tape
	gu, gi                       *nn.Grads
	grads                        [][]float64
	loss                         float64
}

func newTowerShards(t *TwoTower) [shards]*towerShard {
	var out [shards]*towerShard
	for s := range out {
		sh := &towerShard{gu: t.User.NewGrads(), gi: t.Item.NewGrads()}
		sh.grads = append(sh.gu.Slices(), sh.gi.Slices()...)
		out[s] = sh
	}
	return out
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
	params := append(tt.User.Params(), tt.Item.Params()...)
	opt := nn.NewAdam(params, 3*o.LR)
	first, err := sch.begin(stage, params, opt, pcg)
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
	m := newMeter(o, stages[stage], len(pos)/bs*bs, first)
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
				for j, k := range batch[lo:hi] {
					im := &d.Imps[k]
					d.userRow(w.ub[j*uw:(j+1)*uw], im.User, d.Pool(int(k)))
					d.itemRow(w.ib[j*iw:(j+1)*iw], im.Item)
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
				tt.User.Backward(&w.tu, rowsOf(du, lo, hi), w.gu, false)
				tt.Item.Backward(&w.ti, rowsOf(di, lo, hi), w.gi, false)
			})
			for _, w := range sh[1:] {
				sumInto(sh[0].grads, w.grads)
			}
			opt.Step(sh[0].grads)
			m.step(bs, loss)
		}
		res.Loss[stages[stage]] = m.endEpoch()
		if err := sch.end(stage, ep, opt, pcg); err != nil {
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
}

// trainMTML fits the ranker on every training impression.
func trainMTML(d *Data, o Options, res *Result, sch *schedule) error {
	const stage = 1
	m := res.MTML
	idx := make([]int32, d.TrainN)
	pcg := rand.NewPCG(o.Seed, 0x6d746d6c)
	r := rand.New(pcg)
	params := append(m.Bottom.Params(), m.HeadLayer.Params()...)
	opt := nn.NewAdam(params, o.LR)
	first, err := sch.begin(stage, params, opt, pcg)
	if err != nil {
		return err
	}
	var sh [shards]*mtmlShard
	for s := range sh {
		w := &mtmlShard{gb: m.Bottom.NewGrads(), gh: m.HeadLayer.NewGrads()}
		w.grads = append(w.gb.Slices(), w.gh.Slices()...)
		sh[s] = w
	}
	w := m.Spec.Width()
	nh := len(Heads)
	mt := newMeter(o, stages[stage], len(idx), first)
	for ep := first; ep < o.Epochs; ep++ {
		mt.startEpoch(ep)
		identity(idx)
		shuffled(r, idx)
		for s := 0; s < len(idx); s += o.Batch {
			batch := idx[s:min(s+o.Batch, len(idx))]
			n := len(batch)
			inShards(n, func(s, lo, hi int) {
				sw := sh[s]
				rows := hi - lo
				var x, dz blas64.General
				sw.xb, x = matrix(sw.xb, rows, w)
				sw.yb = slices.Grow(sw.yb[:0], rows*nh)[:rows*nh]
				sw.dzb, dz = matrix(sw.dzb, rows, nh)
				for j, k := range batch[lo:hi] {
					im := &d.Imps[k]
					d.rankRow(sw.xb[j*w:(j+1)*w], im.User, d.Pool(int(k)), im.Item, im.T, im.Followed)
					for h := range nh {
						sw.yb[j*nh+h] = float64(im.Labels >> h & 1)
					}
				}
				z := m.HeadLayer.Forward(m.Bottom.Forward(x, &sw.tb), &sw.th)
				sw.loss = nn.BCEWithLogits(z.Data, sw.yb, dz.Data, 1/float64(n))
				sw.gb.Zero()
				sw.gh.Zero()
				dh := m.HeadLayer.Backward(&sw.th, dz, sw.gh, true)
				m.Bottom.Backward(&sw.tb, dh, sw.gb, false)
			})
			loss := sh[0].loss
			for _, sw := range sh[1:] {
				sumInto(sh[0].grads, sw.grads)
				loss += sw.loss
			}
			opt.Step(sh[0].grads)
			mt.step(n, loss)
		}
		res.Loss[stages[stage]] = mt.endEpoch()
		if err := sch.end(stage, ep, opt, pcg); err != nil {
			return err
		}
	}
	return nil
}

// teacher computes the MTML's value Σ w·P for each row of x (n×width) into
// out, and the probabilities into probs (n×len(Heads)) when not nil.
func (res *Result) teacher(x blas64.General, tb, th *nn.Tape, out, probs []float64) {
	z := res.MTML.HeadLayer.Forward(res.MTML.Bottom.Forward(x, tb), th)
	nh := len(Heads)
	for r := 0; r < x.Rows; r++ {
		var v float64
		for h := range nh {
			p := nn.Sigmoid(z.Data[r*nh+h])
			if probs != nil {
				probs[r*nh+h] = p
			}
			v += res.weights[h] * p
		}
		out[r] = v
	}
}

// trainDistill fits the first stage to the teacher's value. Each training
// impression gives two pairs: its user with the item shown, and the same
// user (same state) with an item drawn uniformly from the catalog, so the
// student also learns to rank items the log never showed.
func trainDistill(d *Data, o Options, res *Result, sch *schedule) error {
	const stage = 2
	fs := res.FirstStage
	n := 2 * d.TrainN
	idx := make([]int32, n)
	pcg := rand.NewPCG(o.Seed, 0x64697374696c6c)
	r := rand.New(pcg)
	// The random partner of every impression is fixed up front so that the
	// pairs do not depend on the batch order; a resumed run draws them
	// again from the same seed before restoring the generator.
	partner := make([]int32, d.TrainN)
	for k := range partner {
		partner[k] = int32(r.IntN(len(d.ItemIDs)))
	}
	params := append(fs.User.Params(), fs.Item.Params()...)
	opt := nn.NewAdam(params, 3*o.LR)
	first, err := sch.begin(stage, params, opt, pcg)
	if err != nil {
		return err
	}
	sh := newTowerShards(fs)
	uw, iw, rw := fs.UserSpec.Width(), fs.ItemSpec.Width(), res.MTML.Spec.Width()
	m := newMeter(o, stages[stage], n, first)
	for ep := first; ep < o.Epochs; ep++ {
		m.startEpoch(ep)
		identity(idx)
		shuffled(r, idx)
		for s := 0; s < n; s += o.Batch {
			batch := idx[s:min(s+o.Batch, n)]
			bn := len(batch)
			inShards(bn, func(s, lo, hi int) {
				w := sh[s]
				rows := hi - lo
				var ux, ix, rx, du, di blas64.General
				w.ub, ux = matrix(w.ub, rows, uw)
				w.ib, ix = matrix(w.ib, rows, iw)
				w.rb, rx = matrix(w.rb, rows, rw)
				w.dub, du = matrix(w.dub, rows, fs.User.Out())
				w.dib, di = matrix(w.dib, rows, fs.Item.Out())
				w.target = slices.Grow(w.target[:0], rows)[:rows]
				for j, e := range batch[lo:hi] {
					k := int(e) % d.TrainN
					im := &d.Imps[k]
					item, followed := im.Item, im.Followed
					if int(e) >= d.TrainN {
						item = partner[k]
						_, followed = d.SplitFollows[followKey(im.User, d.ItemAuthor[item])]
					}
					pool := d.Pool(k)
					d.userRow(w.ub[j*uw:(j+1)*uw], im.User, pool)
					d.itemRow(w.ib[j*iw:(j+1)*iw], item)
					d.rankRow(w.rb[j*rw:(j+1)*rw], im.User, pool, item, im.T, followed)
				}
				res.teacher(rx, &w.tb, &w.th, w.target, nil)
				ue := fs.User.Forward(ux, &w.tu)
				ie := fs.Item.Forward(ix, &w.ti)
				w.loss = nn.DotMSE(ue, ie, w.target, du, di, 1/float64(bn))
				w.gu.Zero()
				w.gi.Zero()
				fs.User.Backward(&w.tu, du, w.gu, false)
				fs.Item.Backward(&w.ti, di, w.gi, false)
			})
			loss := sh[0].loss
			for _, w := range sh[1:] {
				sumInto(sh[0].grads, w.grads)
				loss += w.loss
			}
			opt.Step(sh[0].grads)
			m.step(bn, loss)
		}
		res.Loss[stages[stage]] = m.endEpoch()
		if err := sch.end(stage, ep, opt, pcg); err != nil {
			return err
		}
	}
	return nil
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
	if err := res.TwoTower.Save(dirJoin(dir, "two-tower"), "two-tower", version, meta(map[string]string{
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
	if err := res.FirstStage.Save(dirJoin(dir, "first-stage"), "first-stage", version, meta(map[string]string{
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
	return res.MTML.Save(dirJoin(dir, "mtml"), "mtml", version, meta(mm))
}
