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
// seeded generator and gradients are summed in a fixed order. Matrix
// products of large batches run on every core through gonum's BLAS, whose
// parallel split does not change the result.
package rectrain

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
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
	// Progress receives a line per epoch; nil discards them.
	Progress io.Writer
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
// them on its test impressions.
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
	var err error
	if res.TwoTower, err = trainRetrieval(d, o); err != nil {
		return nil, err
	}
	if res.MTML, err = trainMTML(d, o, res); err != nil {
		return nil, err
	}
	if res.FirstStage, err = trainDistill(d, o, res); err != nil {
		return nil, err
	}
	res.Eval = evaluate(d, res, o)
	return res, nil
}

// progress prints one epoch's line.
func progress(o Options, what string, epoch int, loss float64, n int, began time.Time) {
	el := time.Since(began).Seconds()
	fmt.Fprintf(o.Progress, "%-11s epoch %d/%d  loss %.5f  %8.0f examples/s  %5.1fs\n", what, epoch+1, o.Epochs, loss, float64(n)/math.Max(el, 1e-9), el)
}

func shuffled(r *rand.Rand, idx []int32) {
	r.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
}

// trainRetrieval fits the two-tower model on the training impressions that
// led to a positive engagement.
func trainRetrieval(d *Data, o Options) (*TwoTower, error) {
	tt, err := newTwoTower(d, o.TowerHidden, o.Dim, o.Seed*7+1)
	if err != nil {
		return nil, err
	}
	var pos []int32
	count := make([]float64, len(d.ItemIDs))
	for k := 0; k < d.TrainN; k++ {
		if d.Imps[k].Labels&positiveMask != 0 {
			pos = append(pos, int32(k))
			count[d.Imps[k].Item]++
		}
	}
	if len(pos) < 2 {
		return nil, fmt.Errorf("only %d positive engagements before the split; retrieval needs at least 2", len(pos))
	}
	logQ := make([]float64, len(count))
	for i, c := range count {
		logQ[i] = math.Log(math.Max(c, 1) / float64(len(pos)))
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x7265747269657665))
	params := append(tt.User.Params(), tt.Item.Params()...)
	gu, gi := tt.User.NewGrads(), tt.Item.NewGrads()
	grads := append(gu.Slices(), gi.Slices()...)
	opt := nn.NewAdam(params, 3*o.LR)
	var (
		ub, ib, dub, dib, lq, logits []float64
		items                        []int32
		tu, ti                       nn.Tape
	)
	uw, iw := tt.UserSpec.Width(), tt.ItemSpec.Width()
	bs := min(o.Batch, len(pos))
	for ep := range o.Epochs {
		began := time.Now()
		shuffled(r, pos)
		var total float64
		steps := 0
		for s := 0; s+bs <= len(pos); s += bs {
			batch := pos[s : s+bs]
			var ux, ix, du, di blas64.General
			ub, ux = matrix(ub, bs, uw)
			ib, ix = matrix(ib, bs, iw)
			dub, du = matrix(dub, bs, o.Dim)
			dib, di = matrix(dib, bs, o.Dim)
			lq = lq[:0]
			items = items[:0]
			for j, k := range batch {
				im := &d.Imps[k]
				d.userRow(ub[j*uw:(j+1)*uw], im.User, d.Pool(int(k)))
				d.itemRow(ib[j*iw:(j+1)*iw], im.Item)
				lq = append(lq, logQ[im.Item])
				items = append(items, im.Item)
			}
			ue := tt.User.Forward(ux, &tu)
			ie := tt.Item.Forward(ix, &ti)
			var loss float64
			loss, logits = nn.InBatchSoftmax(ue, ie, lq, items, du, di, logits)
			gu.Zero()
			gi.Zero()
			tt.User.Backward(&tu, du, gu, false)
			tt.Item.Backward(&ti, di, gi, false)
			opt.Step(grads)
			total += loss
			steps++
		}
		progress(o, "two-tower", ep, total/float64(max(steps, 1)), steps*bs, began)
	}
	return tt, nil
}

// trainMTML fits the ranker on every training impression.
func trainMTML(d *Data, o Options, res *Result) (*MTML, error) {
	m, err := newMTML(d, o.Hidden, o.Seed*7+3)
	if err != nil {
		return nil, err
	}
	idx := make([]int32, d.TrainN)
	for k := range idx {
		idx[k] = int32(k)
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x6d746d6c))
	gb, gh := m.Bottom.NewGrads(), m.HeadLayer.NewGrads()
	opt := nn.NewAdam(append(m.Bottom.Params(), m.HeadLayer.Params()...), o.LR)
	grads := append(gb.Slices(), gh.Slices()...)
	var (
		xb, yb, dzb []float64
		tb, th      nn.Tape
	)
	w := m.Spec.Width()
	nh := len(Heads)
	var last float64
	for ep := range o.Epochs {
		began := time.Now()
		shuffled(r, idx)
		var total float64
		steps := 0
		for s := 0; s < len(idx); s += o.Batch {
			batch := idx[s:min(s+o.Batch, len(idx))]
			n := len(batch)
			var x, dz blas64.General
			xb, x = matrix(xb, n, w)
			yb = slices.Grow(yb[:0], n*nh)[:n*nh]
			dzb, dz = matrix(dzb, n, nh)
			for j, k := range batch {
				im := &d.Imps[k]
				d.rankRow(xb[j*w:(j+1)*w], im.User, d.Pool(int(k)), im.Item, im.T, im.Followed)
				for h := range nh {
					yb[j*nh+h] = float64(im.Labels >> h & 1)
				}
			}
			z := m.HeadLayer.Forward(m.Bottom.Forward(x, &tb), &th)
			loss := nn.BCEWithLogits(z.Data, yb, dz.Data, 1/float64(n))
			gb.Zero()
			gh.Zero()
			dh := m.HeadLayer.Backward(&th, dz, gh, true)
			m.Bottom.Backward(&tb, dh, gb, false)
			opt.Step(grads)
			total += loss
			steps++
		}
		last = total / float64(max(steps, 1))
		progress(o, "mtml", ep, last, len(idx), began)
	}
	res.Loss["mtml"] = last
	return m, nil
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
func trainDistill(d *Data, o Options, res *Result) (*TwoTower, error) {
	fs, err := newTwoTower(d, o.FirstStageHidden, o.FirstStageDim, o.Seed*7+5)
	if err != nil {
		return nil, err
	}
	n := 2 * d.TrainN
	idx := make([]int32, n)
	for k := range idx {
		idx[k] = int32(k)
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x64697374696c6c))
	// The random partner of every impression is fixed up front so that the
	// pairs do not depend on the batch order.
	partner := make([]int32, d.TrainN)
	for k := range partner {
		partner[k] = int32(r.IntN(len(d.ItemIDs)))
	}
	params := append(fs.User.Params(), fs.Item.Params()...)
	gu, gi := fs.User.NewGrads(), fs.Item.NewGrads()
	grads := append(gu.Slices(), gi.Slices()...)
	opt := nn.NewAdam(params, 3*o.LR)
	var (
		ub, ib, rb, dub, dib, target []float64
		tu, ti, tb, th               nn.Tape
	)
	uw, iw, rw := fs.UserSpec.Width(), fs.ItemSpec.Width(), res.MTML.Spec.Width()
	var last float64
	for ep := range o.Epochs {
		began := time.Now()
		shuffled(r, idx)
		var total float64
		steps := 0
		for s := 0; s < n; s += o.Batch {
			batch := idx[s:min(s+o.Batch, n)]
			bn := len(batch)
			var ux, ix, rx, du, di blas64.General
			ub, ux = matrix(ub, bn, uw)
			ib, ix = matrix(ib, bn, iw)
			rb, rx = matrix(rb, bn, rw)
			dub, du = matrix(dub, bn, fs.User.Out())
			dib, di = matrix(dib, bn, fs.Item.Out())
			target = slices.Grow(target[:0], bn)[:bn]
			for j, e := range batch {
				k := int(e) % d.TrainN
				im := &d.Imps[k]
				item, followed := im.Item, im.Followed
				if int(e) >= d.TrainN {
					item = partner[k]
					_, followed = d.SplitFollows[followKey(im.User, d.ItemAuthor[item])]
				}
				pool := d.Pool(k)
				d.userRow(ub[j*uw:(j+1)*uw], im.User, pool)
				d.itemRow(ib[j*iw:(j+1)*iw], item)
				d.rankRow(rb[j*rw:(j+1)*rw], im.User, pool, item, im.T, followed)
			}
			res.teacher(rx, &tb, &th, target, nil)
			ue := fs.User.Forward(ux, &tu)
			ie := fs.Item.Forward(ix, &ti)
			loss := nn.DotMSE(ue, ie, target, du, di, 1/float64(bn))
			gu.Zero()
			gi.Zero()
			fs.User.Backward(&tu, du, gu, false)
			fs.Item.Backward(&ti, di, gi, false)
			opt.Step(grads)
			total += loss
			steps++
		}
		last = total / float64(max(steps, 1))
		progress(o, "first-stage", ep, last, n, began)
	}
	res.Loss["first-stage"] = last
	return fs, nil
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
		"teacherWeights": wts, "spearman@300": f(e.Spearman),
	})); err != nil {
		return err
	}
	mm := map[string]string{"objective": "per-head binary cross-entropy on impressions"}
	for h, name := range Heads {
		mm["auc."+name] = f(e.AUC[h])
	}
	return res.MTML.Save(dirJoin(dir, "mtml"), "mtml", version, meta(mm))
}
