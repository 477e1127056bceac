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
	"container/heap"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"

	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// RecallK is the cut-off of the retrieval recall; NDCGK the shorter
// cut-off also reported. The funnel evaluated keeps, for each user, the
// two-tower model's FunnelCandidates best items, the first stage's
// TeacherTop best of those, and the teacher's RecallK best of these; the
// first stage is compared with the teacher on the teacher's TeacherTop
// best of the retrieved candidates.
const (
	RecallK          = 100
	NDCGK            = 10
	FunnelCandidates = 1500
	TeacherTop       = 300
	// CalibrationBins is the number of equal-width probability bins of the
	// expected calibration error.
	CalibrationBins = 10
)

// Ranked are the metrics of a ranked list per user, averaged over users:
// recall (the fraction of the user's relevant items in the list's first K)
// and NDCG (binary relevance: Σ 1/log2(rank+1) over the hits in the first
// K, divided by its best value for the user's number of relevant items).
//
// As recserve's seen filter does, every list leaves out the items shown to
// the user before the split; a user's relevant items are the distinct
// items of the user's positive engagements (click, like, comment, share) in
// the test window that were not shown to the user before the split, and
// the test users are those with at least one.
type Ranked struct {
	Recall10, Recall100, NDCG10, NDCG100 float64
}

func (r *Ranked) add(list []int32, pos map[int32]bool) {
	r.Recall10 += RecallAt(list, pos, NDCGK)
	r.Recall100 += RecallAt(list, pos, RecallK)
	r.NDCG10 += NDCGAt(list, pos, NDCGK)
	r.NDCG100 += NDCGAt(list, pos, RecallK)
}

func (r Ranked) scale(n int) Ranked {
	f := 1 / float64(max(n, 1))
	return Ranked{r.Recall10 * f, r.Recall100 * f, r.NDCG10 * f, r.NDCG100 * f}
}

// Report is the offline evaluation on the test split. "Popular" figures are
// the baseline's, "Oracle" ones the planted truth's (only when HasOracle:
// the data is a synth world with its truth files).
type Report struct {
	// TestImpressions is the number of impressions at or after the split;
	// TestUsers the number of users with a relevant item there (see
	// Ranked).
	TestImpressions, TestUsers int
	HasOracle                  bool
	// RetrievalUsers is the number of test users the retrieval figures
	// are measured on: every test user up to MaxRetrievalUsers.
	RetrievalUsers int

	// Retrieval is the two-tower model's top RecallK of the whole catalog
	// (exact dot-product search, user state at the split) for each of the
	// RetrievalUsers test users; RetrievalPopular the items with the most
	// training engagements; RetrievalRandom a uniformly random list; RetrievalOracle the catalog
	// ranked by each user's true click probability. Recall and
	// RecallPopular repeat the recall@RecallK.
	Retrieval, RetrievalPopular, RetrievalRandom, RetrievalOracle Ranked
	Recall, RecallPopular                                         float64

	// Funnel is the whole funnel's final RecallK (retrieval, first stage,
	// teacher, see the constants) for FunnelUsers test users;
	// FunnelTwoTower, FunnelPopular, FunnelRandom and FunnelOracle are the
	// two-tower model's, the baselines' and the oracle's lists on the same
	// users.
	Funnel, FunnelTwoTower, FunnelPopular, FunnelRandom, FunnelOracle Ranked
	FunnelUsers                                                       int
	// SecondStageOnly is the teacher's RecallK best of the retrieved
	// candidates, the first stage left out: what the first stage costs.
	SecondStageOnly Ranked

	// AUC is the MTML's ROC AUC per head (Heads order) on test impressions;
	// AUCPopular that of the item's smoothed training rate of the event;
	// AUCOracle that of the true probabilities. Positives counts the
	// positive test impressions per head.
	AUC, AUCPopular, AUCOracle []float64
	Positives                  []int
	// ECE is the MTML's expected calibration error per head over
	// CalibrationBins bins; MeanPredicted its mean probability and
	// Observed the heads' rates on the test impressions. The Popular and
	// Oracle variants are the baseline's and the truth's.
	ECE, ECEPopular, ECEOracle                       []float64
	MeanPredicted, MeanPopular, MeanOracle, Observed []float64

	// Spearman and Kendall are the mean rank correlations (Kendall's
	// tau-b) between the first stage's and the teacher's scores on the
	// teacher's TeacherTop best of the two-tower model's FunnelCandidates
	// candidates, over SpearmanUsers test users.
	Spearman, Kendall float64
	SpearmanUsers     int
}

// Table prints the report as a table.
func (r Report) Table(w io.Writer) {
	fmt.Fprintf(w, "evaluation on %d test impressions, %d test users\n", r.TestImpressions, r.TestUsers)
	fmt.Fprintf(w, "  %-40s %10s %10s %10s %10s\n", "metric", "model", "popular", "random", "oracle")
	or := func(v float64) string {
		if !r.HasOracle {
			return "-"
		}
		return fmt.Sprintf("%.4f", v)
	}
	row := func(name string, m, p float64, rnd, o string) {
		fmt.Fprintf(w, "  %-40s %10.4f %10.4f %10s %10s\n", name, m, p, rnd, o)
	}
	ranked := func(what string, m, p, rnd, o Ranked) {
		f := func(v float64) string { return fmt.Sprintf("%.4f", v) }
		row(fmt.Sprintf("%s recall@%d", what, NDCGK), m.Recall10, p.Recall10, f(rnd.Recall10), or(o.Recall10))
		row(fmt.Sprintf("%s recall@%d", what, RecallK), m.Recall100, p.Recall100, f(rnd.Recall100), or(o.Recall100))
		row(fmt.Sprintf("%s NDCG@%d", what, NDCGK), m.NDCG10, p.NDCG10, f(rnd.NDCG10), or(o.NDCG10))
		row(fmt.Sprintf("%s NDCG@%d", what, RecallK), m.NDCG100, p.NDCG100, f(rnd.NDCG100), or(o.NDCG100))
	}
	twoTower := "two-tower"
	if r.RetrievalUsers < r.TestUsers {
		twoTower = fmt.Sprintf("two-tower (%d users)", r.RetrievalUsers)
	}
	ranked(twoTower, r.Retrieval, r.RetrievalPopular, r.RetrievalRandom, r.RetrievalOracle)
	funnel := fmt.Sprintf("funnel (%d users)", r.FunnelUsers)
	ranked(funnel, r.Funnel, r.FunnelPopular, r.FunnelRandom, r.FunnelOracle)
	row(fmt.Sprintf("no first stage, same users, NDCG@%d", NDCGK), r.SecondStageOnly.NDCG10, r.FunnelPopular.NDCG10, fmt.Sprintf("%.4f", r.FunnelRandom.NDCG10), or(r.FunnelOracle.NDCG10))
	row(fmt.Sprintf("two-tower alone, same users, NDCG@%d", NDCGK), r.FunnelTwoTower.NDCG10, r.FunnelPopular.NDCG10, fmt.Sprintf("%.4f", r.FunnelRandom.NDCG10), or(r.FunnelOracle.NDCG10))
	for h, name := range Heads {
		row(fmt.Sprintf("mtml AUC %s (%d positives)", name, r.Positives[h]), r.AUC[h], r.AUCPopular[h], "-", or(r.AUCOracle[h]))
	}
	for h, name := range Heads {
		row(fmt.Sprintf("mtml ECE %s", name), r.ECE[h], r.ECEPopular[h], "-", or(r.ECEOracle[h]))
		row(fmt.Sprintf("mtml mean P %s (observed %.4f)", name, r.Observed[h]), r.MeanPredicted[h], r.MeanPopular[h], "-", or(r.MeanOracle[h]))
	}
	fmt.Fprintf(w, "  %-40s %10.4f %10s %10s %10s\n", fmt.Sprintf("first-stage Spearman@%d (%d users)", TeacherTop, r.SpearmanUsers), r.Spearman, "-", "-", "-")
	fmt.Fprintf(w, "  %-40s %10.4f %10s %10s %10s\n", fmt.Sprintf("first-stage Kendall@%d (%d users)", TeacherTop, r.SpearmanUsers), r.Kendall, "-", "-", "-")
}

// Weak returns why the models are not worth serving, or nothing: a model
// that does not beat recommending the most popular items to everyone has
// not learnt the log. The two-tower model must beat popularity's
// recall@RecallK on the test users, and the funnel its NDCG@RecallK on the
// funnel's users (the longer cut-off: NDCG@NDCGK of a few hundred users is
// too noisy to decide on). A log with no test user cannot be judged and is
// weak too.
func (r Report) Weak() []string {
	if r.TestUsers == 0 {
		return []string{"no test user: no user has a positive engagement in the held-out window with an item not shown to them before it (a longer log or a larger -test-frac)"}
	}
	var why []string
	if m, p := r.Retrieval.Recall100, r.RetrievalPopular.Recall100; m <= p {
		why = append(why, fmt.Sprintf("two-tower recall@%d %.4f does not beat popularity's %.4f (random %.4f)", RecallK, m, p, r.RetrievalRandom.Recall100))
	}
	if m, p := r.Funnel.NDCG100, r.FunnelPopular.NDCG100; r.FunnelUsers > 0 && m <= p {
		why = append(why, fmt.Sprintf("funnel NDCG@%d %.4f does not beat popularity's %.4f (random %.4f)", RecallK, m, p, r.FunnelRandom.NDCG100))
	}
	return why
}

func dirJoin(dir, name string) string { return filepath.Join(dir, name) }

// embedUsers returns the tower embeddings of users at the split.
func embedUsers(d *Data, t *TwoTower, users []int32) blas64.General {
	return embedMatrix(t.User, t.UserSpec.Width(), len(users), func(j int, dst []float64) {
		u := users[j]
		t.userRow(d, dst, u, d.SplitPools[int(u)*d.ItemDim:(int(u)+1)*d.ItemDim], d.PoolItems(u, d.SplitPoolN[u]))
	})
}

// embedItems returns the tower embeddings of every item.
func embedItems(d *Data, t *TwoTower) blas64.General {
	return embedMatrix(t.Item, t.ItemSpec.Width(), len(d.ItemIDs), func(i int, dst []float64) {
		t.itemRow(d, dst, int32(i))
	})
}

// embedMatrix returns tower's outputs for n inputs (see embedRows) as a
// matrix.
func embedMatrix(tower *nn.MLP, width, n int, row func(j int, dst []float64)) blas64.General {
	out := blas64.General{Rows: n, Cols: tower.Out(), Stride: tower.Out(), Data: make([]float64, n*tower.Out())}
	embedRows(tower, width, n, row, func(j int, y []float64) {
		copy(out.Data[j*out.Stride:(j+1)*out.Stride], y)
	})
	return out
}

// embedChunk is the number of rows a tower forwards at once when embedding
// a catalog: the inputs and every layer's activations of a million items at
// once took gigabytes.
const embedChunk = 4096

// embedRows forwards n inputs through tower, row(j, dst) writing input j,
// in chunks on two goroutines, and hands output j to put (y is shared).
func embedRows(tower *nn.MLP, width, n int, row func(j int, dst []float64), put func(j int, y []float64)) {
	inChunks(n, embedChunk, func() func(c, lo, hi int) {
		var tape nn.Tape
		var xb []float64
		return func(_, lo, hi int) {
			x := matrixOf(&xb, hi-lo, width)
			for j := lo; j < hi; j++ {
				row(j, xb[(j-lo)*width:(j-lo+1)*width])
			}
			y := tower.Forward(x, &tape)
			for r := range hi - lo {
				put(lo+r, y.Data[r*y.Stride:r*y.Stride+y.Cols])
			}
		}
	})
}

// scored is an item and its score; lower index wins ties.
type scored struct {
	item  int32
	score float64
}

func better(a, b scored) bool {
	return a.score > b.score || (a.score == b.score && a.item < b.item)
}

// minHeap keeps the k best items, worst at the root.
type minHeap []scored

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(a, b int) bool { return better(h[b], h[a]) }
func (h minHeap) Swap(a, b int)      { h[a], h[b] = h[b], h[a] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(scored)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topK returns the indexes of the k best scores, best first.
func topK(scores []float64, k int, h *minHeap) []int32 {
	*h = (*h)[:0]
	h.offer(scores, 0, k)
	return h.drain()
}

// offer adds scores (of items offset, offset+1, …) to the heap of the k
// best seen so far.
func (h *minHeap) offer(scores []float64, offset, k int) {
	for i, s := range scores {
		c := scored{int32(offset + i), s}
		if len(*h) < k {
			heap.Push(h, c)
		} else if better(c, (*h)[0]) {
			(*h)[0] = c
			heap.Fix(h, 0)
		}
	}
}

// drain empties the heap into its items, best first.
func (h *minHeap) drain() []int32 {
	out := make([]int32, len(*h))
	for j := len(out) - 1; j >= 0; j-- {
		out[j] = heap.Pop(h).(scored).item
	}
	return out
}

// mat32 is a row-major float32 matrix: embeddings as recserve keeps them.
type mat32 struct {
	Rows, Cols int
	Data       []float32
}

func (m mat32) row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// rows is the view of rows lo..hi of m.
func (m mat32) rows(lo, hi int) mat32 {
	return mat32{Rows: hi - lo, Cols: m.Cols, Data: m.Data[lo*m.Cols : hi*m.Cols]}
}

// mat32Of rounds m to float32.
func mat32Of(m blas64.General) mat32 {
	out := mat32{Rows: m.Rows, Cols: m.Cols, Data: make([]float32, m.Rows*m.Cols)}
	for i := range m.Rows {
		for c, v := range m.Data[i*m.Stride : i*m.Stride+m.Cols] {
			out.Data[i*m.Cols+c] = float32(v)
		}
	}
	return out
}

// Retrieval scores a chunk of retrieveUsers users against a tile of
// retrieveItems items at a time (1 MiB of 64-d items, which stay in cache
// while the chunk's users are scored), keeping each user's best across the
// tiles: scoring 256 users against a whole catalog at once took 2 GB per
// goroutine at a million items.
const (
	retrieveUsers = 32
	retrieveItems = 4096
)

// retrieve returns each user's top k items by exact dot product (float32,
// on the SIMD kernel, as recserve scores), leaving out the items of
// exclude(j) for row j (exclude may be nil), on two goroutines over chunks
// of users.
func retrieve(ue, ie mat32, k int, exclude func(j int) []int32) [][]int32 {
	out := make([][]int32, ue.Rows)
	inChunks(ue.Rows, retrieveUsers, func() func(c, lo, hi int) {
		heaps := make([]minHeap, retrieveUsers)
		buf := make([]float64, retrieveItems)
		return func(_, lo, hi int) {
			n := hi - lo
			for r := range n {
				heaps[r] = heaps[r][:0]
			}
			for first := 0; first < ie.Rows; first += retrieveItems {
				last := min(first+retrieveItems, ie.Rows)
				row := buf[:last-first]
				for r := range n {
					u := ue.row(lo + r)
					for i := first; i < last; i++ {
						row[i-first] = float64(vec.Dot(u, ie.row(i)))
					}
					if exclude != nil {
						for _, i := range exclude(lo + r) {
							if int(i) >= first && int(i) < last {
								row[int(i)-first] = math.Inf(-1)
							}
						}
					}
					heaps[r].offer(row, first, k)
				}
			}
			for r := range n {
				out[lo+r] = heaps[r].drain()
			}
		}
	})
	return out
}

// evaluate measures the models on the test split (see Report): retrieval
// on every test user, the ranker on every test impression, and the funnel
// on the funnel users.
func evaluate(d *Data, res *Result, o Options) Report {
	rep := Report{TestImpressions: len(d.Imps) - d.TrainN}
	truth := oracleWorld(d)
	rep.HasOracle = truth != nil
	ts := newTestSet(d)
	rep.TestUsers = len(ts.users)
	funnelUsers := ts.funnelUsers(o.EvalUsers)
	rep.FunnelUsers = len(funnelUsers)
	var cands [][]int32
	var splitUE blas64.General // the test users' retrieval embeddings at the split
	if len(ts.users) > 0 {
		cands, splitUE = evalRetrieval(&rep, d, res, ts, truth, len(funnelUsers), o.Seed)
	}
	evalRanking(&rep, d, res, truth)
	if len(funnelUsers) > 0 {
		evalFunnel(&rep, d, res, funnelUsers, cands, splitUE, ts.pos)
	}
	return rep
}

// oracleWorld returns the planted world behind d when d holds one that
// knows every item, nil otherwise.
func oracleWorld(d *Data) *synth.World {
	if d.Truth == nil {
		return nil
	}
	for _, k := range d.TruthItem {
		if k < 0 {
			return nil
		}
	}
	return d.Truth
}

// MaxRetrievalUsers bounds the test users the retrieval figures are
// measured on, the first of the test set's random order: an exact search
// of a million items for each of 13,604 test users took longer than
// training the ranker. The report names the sample's size when it is
// smaller than the test set.
const MaxRetrievalUsers = 5000

// evalRetrieval sets the retrieval figures of rep: the two-tower model's
// RecallK best items of the catalog against the popular, random and (with
// truth) oracle lists, over the first MaxRetrievalUsers test users and
// over the first nFunnel of them (the funnel users). It returns the
// two-tower model's FunnelCandidates best items for each funnel user, and
// the test users' retrieval embeddings at the split.
func evalRetrieval(rep *Report, d *Data, res *Result, ts *testSet, truth *synth.World, nFunnel int, seed uint64) ([][]int32, blas64.General) {
	users := ts.users[:min(len(ts.users), max(MaxRetrievalUsers, nFunnel))]
	rep.RetrievalUsers = len(users)
	exclude := func(j int) []int32 { return ts.seen.of(users[j]) }
	popular := popularItems(d, ts)
	ue := embedUsers(d, res.TwoTower, users)
	ue32, ie := mat32Of(ue), res.scores.itemMatrix()
	// The funnel users' candidates are searched once: their RecallK best
	// lead their FunnelCandidates.
	cands := retrieve(ue32.rows(0, nFunnel), ie, FunnelCandidates, exclude)
	top := make([][]int32, 0, len(users))
	for _, c := range cands {
		top = append(top, c[:min(len(c), RecallK)])
	}
	rest := retrieve(ue32.rows(nFunnel, len(users)), ie, RecallK, func(j int) []int32 { return exclude(nFunnel + j) })
	top = append(top, rest...)
	var oracle [][]int32
	if truth != nil {
		oracle = oracleRetrieve(d, truth, users, RecallK, exclude)
	}
	var sum, pop, rnd, orc Ranked
	popList := make([]int32, 0, RecallK)
	rng := rand.New(rand.NewPCG(seed, 0x72616e646f6d))
	for j, u := range users {
		pos := ts.pos[u]
		sum.add(top[j], pos)
		rnd.add(randomList(rng, len(d.ItemIDs), RecallK, func(i int32) bool { return ts.seen.has(u, i) }), pos)
		popList = firstUnseen(popList[:0], popular, ts.seen, u)
		pop.add(popList, pos)
		if oracle != nil {
			orc.add(oracle[j], pos)
		}
		if j == nFunnel-1 {
			rep.FunnelTwoTower, rep.FunnelPopular, rep.FunnelRandom, rep.FunnelOracle = sum.scale(j+1), pop.scale(j+1), rnd.scale(j+1), orc.scale(j+1)
		}
	}
	n := len(users)
	rep.Retrieval, rep.RetrievalPopular, rep.RetrievalRandom, rep.RetrievalOracle = sum.scale(n), pop.scale(n), rnd.scale(n), orc.scale(n)
	rep.Recall, rep.RecallPopular = rep.Retrieval.Recall100, rep.RetrievalPopular.Recall100
	return cands, ue
}

// popularItems returns the items with the most positive training
// engagements, best first: enough of them that every test user's RecallK
// first remain once the items shown to the user are left out.
func popularItems(d *Data, ts *testSet) []int32 {
	trainPos := make([]float64, len(d.ItemIDs))
	for k := 0; k < d.TrainN; k++ {
		if d.Imps[k].Labels&positiveMask != 0 {
			trainPos[d.Imps[k].Item]++
		}
	}
	maxSeen := 0
	for _, u := range ts.users {
		maxSeen = max(maxSeen, len(ts.seen.of(u)))
	}
	var h minHeap
	return topK(trainPos, RecallK+maxSeen, &h)
}

// firstUnseen appends to dst the first items of list, up to RecallK in
// all, that u was not shown before the split.
func firstUnseen(dst, list []int32, seen seenSet, u int32) []int32 {
	for _, i := range list {
		if len(dst) == RecallK {
			break
		}
		if !seen.has(u, i) {
			dst = append(dst, i)
		}
	}
	return dst
}

// evalRanking sets the ranking figures of rep: per head, the AUC and
// calibration of the MTML's probabilities on the test impressions, of the
// popularity baseline's (the item's training rate of the event, smoothed
// towards the global rate) and, with truth, of the true probabilities. A
// test impression of a user the truth does not know turns the oracle off.
func evalRanking(rep *Report, d *Data, res *Result, truth *synth.World) {
	nh := len(Heads)
	n := len(d.Imps) - d.TrainN
	probs := testProbs(d, res)
	var trueProbs [][5]float64
	if truth != nil {
		if trueProbs = trueTestProbs(d, truth); trueProbs == nil {
			rep.HasOracle = false
		}
	}
	rates := newItemRates(d)
	perHead := func() []float64 { return make([]float64, nh) }
	rep.AUC, rep.AUCPopular, rep.AUCOracle, rep.Positives = perHead(), perHead(), perHead(), make([]int, nh)
	rep.ECE, rep.ECEPopular, rep.ECEOracle = perHead(), perHead(), perHead()
	rep.MeanPredicted, rep.MeanPopular, rep.MeanOracle, rep.Observed = perHead(), perHead(), perHead(), perHead()
	score, base, orc := make([]float64, n), make([]float64, n), make([]float64, n)
	labels := make([]bool, n)
	for h := range nh {
		for j := range n {
			im := &d.Imps[d.TrainN+j]
			score[j] = probs[j*nh+h]
			base[j] = rates.rate(h, im.Item)
			labels[j] = im.Labels>>h&1 == 1
			if labels[j] {
				rep.Positives[h]++
			}
			if trueProbs != nil {
				orc[j] = trueProbs[j][h]
			}
		}
		rep.AUC[h], rep.AUCPopular[h] = AUC(score, labels), AUC(base, labels)
		rep.ECE[h], rep.ECEPopular[h] = ECE(score, labels, CalibrationBins), ECE(base, labels, CalibrationBins)
		rep.MeanPredicted[h], rep.MeanPopular[h] = mean(score), mean(base)
		rep.Observed[h] = float64(rep.Positives[h]) / float64(max(n, 1))
		if trueProbs != nil {
			rep.AUCOracle[h], rep.ECEOracle[h], rep.MeanOracle[h] = AUC(orc, labels), ECE(orc, labels, CalibrationBins), mean(orc)
		}
	}
}

// testProbs returns the MTML's probabilities of the test impressions, one
// row of len(Heads) per impression.
func testProbs(d *Data, res *Result) []float64 {
	const batch = 1024
	nh := len(Heads)
	rw := res.MTML.Spec.Width()
	n := len(d.Imps) - d.TrainN
	probs := make([]float64, n*nh)
	var tb teacherBuf
	var xb []float64
	vals := make([]float64, batch)
	for s := 0; s < n; s += batch {
		bn := min(batch, n-s)
		var x blas64.General
		xb, x = matrix(xb, bn, rw)
		for j := range bn {
			k := d.TrainN + s + j
			im := &d.Imps[k]
			res.MTML.rankRow(d, xb[j*rw:(j+1)*rw], im.User, d.Pool(k), d.PoolItems(im.User, im.PoolN), im.Item, im.T, im.Followed, res.scores.at(int32(k), im.Item))
		}
		res.teacher(x, &tb, vals[:bn], probs[s*nh:(s+bn)*nh])
	}
	return probs
}

// trueTestProbs returns the planted probabilities of each test impression
// in Heads order, or nil if the truth does not know one of the users.
func trueTestProbs(d *Data, truth *synth.World) [][5]float64 {
	n := len(d.Imps) - d.TrainN
	trueProbs := make([][5]float64, n)
	for j := range n {
		im := &d.Imps[d.TrainN+j]
		tu, ti := d.TruthUser[im.User], d.TruthItem[im.Item]
		if tu < 0 {
			return nil
		}
		p := truth.TrueProbabilities(int(tu), int(ti))
		trueProbs[j] = [5]float64{p.Click, p.Like, p.Comment, p.Share, p.SeeLess}
	}
	return trueProbs
}

// itemRates are the training counts the popularity baseline of the ranker
// scores an impression by.
type itemRates struct {
	imps   []float64   // impressions per item
	events [][]float64 // per head, impressions with the head's event per item
	global []float64   // per head, impressions with the event
	trainN int
}

// ratePrior is the weight, in impressions, of the global rate in an item's
// smoothed rate.
const ratePrior = 10.0

func newItemRates(d *Data) *itemRates {
	nh := len(Heads)
	r := &itemRates{imps: make([]float64, len(d.ItemIDs)), events: make([][]float64, nh), global: make([]float64, nh), trainN: d.TrainN}
	for h := range r.events {
		r.events[h] = make([]float64, len(d.ItemIDs))
	}
	for k := 0; k < d.TrainN; k++ {
		im := &d.Imps[k]
		r.imps[im.Item]++
		for h := range nh {
			if im.Labels>>h&1 == 1 {
				r.events[h][im.Item]++
				r.global[h]++
			}
		}
	}
	return r
}

// rate is the item's training rate of head h's event, smoothed towards the
// global rate by ratePrior impressions.
func (r *itemRates) rate(h int, item int32) float64 {
	g := r.global[h] / float64(max(r.trainN, 1))
	return (r.events[h][item] + ratePrior*g) / (r.imps[item] + ratePrior)
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

// evalFunnel sets the funnel's figures of rep over the funnel users: for
// each, the teacher scores the user's retrieved candidates cands[j] and the
// first stage's agreement with it is measured; the funnel's list (the
// first stage keeps TeacherTop, the teacher orders them and the first
// RecallK are shown) and the teacher's own RecallK best are judged
// against the user's test positives. splitUE are the users' retrieval
// embeddings at the split, which the teacher's tower score reads.
func evalFunnel(rep *Report, d *Data, res *Result, users []int32, cands [][]int32, splitUE blas64.General, testPos map[int32]map[int32]bool) {
	fu := embedUsers(d, res.FirstStage, users)
	fi := embedItems(d, res.FirstStage)
	// Each user is judged on its own, on two goroutines; the figures are
	// summed in the users' order.
	type judged struct {
		s, k               float64
		funnel, secondOnly []int32
	}
	per := make([]judged, len(users))
	inChunks(len(users), 8, func() func(c, lo, hi int) {
		var t teacherScorer
		return func(_, lo, hi int) {
			for j := lo; j < hi; j++ {
				c := cands[j]
				tv := t.values(d, res, users[j], c, splitUE.Data[j*splitUE.Stride:j*splitUE.Stride+splitUE.Cols])
				fv := firstStageScores(fu.Data[j*fu.Stride:j*fu.Stride+fu.Cols], fi, c)
				per[j].s, per[j].k = rankAgreement(tv, fv)
				per[j].funnel, per[j].secondOnly = funnelLists(c, tv, fv)
			}
		}
	})
	var sp, kt float64
	var funnel, second Ranked
	for j, u := range users {
		sp += per[j].s
		kt += per[j].k
		funnel.add(per[j].funnel, testPos[u])
		second.add(per[j].secondOnly, testPos[u])
	}
	rep.Spearman, rep.Kendall, rep.SpearmanUsers = sp/float64(len(users)), kt/float64(len(users)), len(users)
	rep.Funnel, rep.SecondStageOnly = funnel.scale(len(users)), second.scale(len(users))
}

// teacherScorer scores candidates with the teacher, reusing its buffers
// from one user to the next.
type teacherScorer struct {
	tb teacherBuf
	xb []float64
}

// values returns the teacher's value of each candidate c of user u at the
// split; urow is u's retrieval embedding at the split.
func (t *teacherScorer) values(d *Data, res *Result, u int32, c []int32, urow []float64) []float64 {
	rw := res.MTML.Spec.Width()
	var x blas64.General
	t.xb, x = matrix(t.xb, len(c), rw)
	pool := d.SplitPools[int(u)*d.ItemDim : (int(u)+1)*d.ItemDim]
	for r, i := range c {
		_, fol := d.SplitFollows[followKey(u, d.ItemAuthor[i])]
		res.MTML.rankRow(d, t.xb[r*rw:(r+1)*rw], u, pool, d.PoolItems(u, d.SplitPoolN[u]), i, d.Split, fol, res.scores.of(urow, i))
	}
	tv := make([]float64, len(c))
	res.teacher(x, &t.tb, tv, nil)
	return tv
}

// firstStageScores returns the first stage's score of each candidate c:
// the dot product of the user's embedding urow with the item's row of fi.
func firstStageScores(urow []float64, fi blas64.General, c []int32) []float64 {
	fv := make([]float64, len(c))
	for r, i := range c {
		irow := fi.Data[int(i)*fi.Stride : int(i)*fi.Stride+fi.Cols]
		for k, v := range urow {
			fv[r] += v * irow[k]
		}
	}
	return fv
}

// rankAgreement returns the Spearman and Kendall correlations of the first
// stage's scores fv with the teacher's tv on the teacher's TeacherTop best
// candidates.
func rankAgreement(tv, fv []float64) (spearman, kendall float64) {
	byTeacher := bestOf(tv, TeacherTop, nil)
	ts, ss := make([]float64, len(byTeacher)), make([]float64, len(byTeacher))
	for r, o := range byTeacher {
		ts[r], ss[r] = tv[o], fv[o]
	}
	return Spearman(ts, ss), Kendall(ts, ss)
}

// funnelLists returns the funnel's list of the candidates c (the first
// stage's TeacherTop best, ordered by the teacher, cut at RecallK) and the
// teacher's RecallK best of all of c (no first stage).
func funnelLists(c []int32, tv, fv []float64) (funnel, secondOnly []int32) {
	kept := bestOf(fv, TeacherTop, nil)
	for _, o := range bestOf(tv, RecallK, kept) {
		funnel = append(funnel, c[o])
	}
	for _, o := range bestOf(tv, RecallK, nil) {
		secondOnly = append(secondOnly, c[o])
	}
	return funnel, secondOnly
}

// randomList returns k distinct items of 0..n-1 drawn uniformly from those
// for which skip is false (fewer when there are not enough).
func randomList(r *rand.Rand, n, k int, skip func(int32) bool) []int32 {
	out := make([]int32, 0, k)
	taken := make(map[int32]bool, k)
	for tries := 0; len(out) < k && tries < 20*k; tries++ {
		i := int32(r.IntN(n))
		if !taken[i] && !skip(i) {
			taken[i] = true
			out = append(out, i)
		}
	}
	return out
}

// bestOf returns the positions of the k highest values of v among
// (every position when nil), best first, ties by lower position.
func bestOf(v []float64, k int, among []int) []int {
	order := among
	if order == nil {
		order = make([]int, len(v))
		for r := range order {
			order[r] = r
		}
	} else {
		order = slices.Clone(order)
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmp.Compare(v[b], v[a]), cmp.Compare(a, b)) })
	return order[:min(k, len(order))]
}

// oracleRetrieve ranks the catalog for each user by the true click
// probability σ(ClickScale·⟨u, i⟩ + ClickBias + q_i + β_u), whose order is
// that of ClickScale·⟨u, i⟩ + q_i, by exact search, leaving out the items
// of exclude(j) for users[j] (exclude may be nil). Any positive engagement
// needs a click, so this is also the order of the true probability of one.
func oracleRetrieve(d *Data, w *synth.World, users []int32, k int, exclude func(j int) []int32) [][]int32 {
	dim := w.Config().Dim
	cs := w.Config().Model.ClickScale
	ub, ue := matrix(nil, len(users), dim+1)
	for j, u := range users {
		row := ub[j*(dim+1) : (j+1)*(dim+1)]
		if tu := d.TruthUser[u]; tu >= 0 {
			for c, v := range w.UserLatent(int(tu)) {
				row[c] = cs * float64(v)
			}
		}
		row[dim] = 1
	}
	ib, ie := matrix(nil, len(d.ItemIDs), dim+1)
	for i, ti := range d.TruthItem {
		row := ib[i*(dim+1) : (i+1)*(dim+1)]
		for c, v := range w.ItemLatent(int(ti)) {
			row[c] = float64(v)
		}
		row[dim] = w.ItemQuality(int(ti))
	}
	return retrieve(mat32Of(ue), mat32Of(ie), k, exclude)
}

// seenSet is the items each user was shown before the split: the pairs
// user<<32|item, sorted.
type seenSet []uint64

// shownBefore returns the items shown to each user before the split.
func shownBefore(d *Data) seenSet {
	s := make(seenSet, 0, d.TrainN)
	for k := range d.TrainN {
		im := &d.Imps[k]
		s = append(s, uint64(uint32(im.User))<<32|uint64(uint32(im.Item)))
	}
	slices.Sort(s)
	return slices.Compact(s)
}

func (s seenSet) has(u, i int32) bool {
	_, ok := slices.BinarySearch(s, uint64(uint32(u))<<32|uint64(uint32(i)))
	return ok
}

// of returns the items shown to u before the split, sorted.
func (s seenSet) of(u int32) []int32 {
	lo, _ := slices.BinarySearch(s, uint64(uint32(u))<<32)
	hi, _ := slices.BinarySearch(s, uint64(uint32(u)+1)<<32)
	out := make([]int32, hi-lo)
	for j, p := range s[lo:hi] {
		out[j] = int32(uint32(p))
	}
	return out
}

// RecallAt is the fraction of the relevant items in the first k of list; 0
// when there are none.
func RecallAt(list []int32, relevant map[int32]bool, k int) float64 {
	if len(relevant) == 0 {
		return 0
	}
	hits := 0
	for _, i := range list[:min(k, len(list))] {
		if relevant[i] {
			hits++
		}
	}
	return float64(hits) / float64(len(relevant))
}

// NDCGAt is the normalised discounted cumulative gain of the first k of
// list with binary relevance: Σ 1/log2(r+1) over the relevant items at
// 1-based ranks r ≤ k, divided by that of a list starting with every
// relevant item; 0 when there are none.
func NDCGAt(list []int32, relevant map[int32]bool, k int) float64 {
	var dcg, ideal float64
	for r, i := range list[:min(k, len(list))] {
		if relevant[i] {
			dcg += 1 / math.Log2(float64(r+2))
		}
	}
	for r := range min(k, len(relevant)) {
		ideal += 1 / math.Log2(float64(r+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

// Kendall is Kendall's tau-b of a and b: (concordant − discordant pairs)
// divided by √((pairs − ties in a)(pairs − ties in b)); 0 when either is
// constant.
func Kendall(a, b []float64) float64 {
	var con, dis, tieA, tieB float64
	for i := range a {
		for j := i + 1; j < len(a); j++ {
			da, db := cmp.Compare(a[i], a[j]), cmp.Compare(b[i], b[j])
			switch {
			case da == 0 && db == 0:
				tieA++
				tieB++
			case da == 0:
				tieA++
			case db == 0:
				tieB++
			case da == db:
				con++
			default:
				dis++
			}
		}
	}
	n := float64(len(a)) * float64(len(a)-1) / 2
	den := math.Sqrt((n - tieA) * (n - tieB))
	if den == 0 {
		return 0
	}
	return (con - dis) / den
}

// ECE is the expected calibration error of probabilities p for binary
// labels: the predictions are put in bins equal-width bins of [0, 1] (1 in
// the last), and ECE = Σ_b (n_b/n)·|mean p in b − rate of positives in b|.
// 0 for no predictions.
func ECE(p []float64, labels []bool, bins int) float64 {
	sumP := make([]float64, bins)
	pos := make([]float64, bins)
	cnt := make([]float64, bins)
	for j, v := range p {
		b := min(max(int(v*float64(bins)), 0), bins-1)
		sumP[b] += v
		cnt[b]++
		if labels[j] {
			pos[b]++
		}
	}
	var e float64
	for b := range bins {
		if cnt[b] > 0 {
			e += math.Abs(sumP[b]-pos[b]) / float64(len(p))
		}
	}
	return e
}

// ranks returns the 1-based ranks of v, ties sharing their mean rank.
func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(v[a], v[b]) })
	r := make([]float64, len(v))
	for s := 0; s < len(idx); {
		e := s
		for e+1 < len(idx) && v[idx[e+1]] == v[idx[s]] {
			e++
		}
		mean := float64(s+e)/2 + 1
		for k := s; k <= e; k++ {
			r[idx[k]] = mean
		}
		s = e + 1
	}
	return r
}

// AUC is the area under the ROC curve of scores for binary labels (the
// probability that a random positive outscores a random negative, ties
// counting half); 0.5 when either class is empty.
func AUC(scores []float64, labels []bool) float64 {
	r := ranks(scores)
	var np, nn float64
	var sum float64
	for i, l := range labels {
		if l {
			np++
			sum += r[i]
		} else {
			nn++
		}
	}
	if np == 0 || nn == 0 {
		return 0.5
	}
	return (sum - np*(np+1)/2) / (np * nn)
}

// Spearman is the rank correlation of a and b (Pearson's on their ranks,
// ties sharing their mean rank); 0 when either is constant.
func Spearman(a, b []float64) float64 {
	if len(a) < 2 {
		return 0
	}
	ra, rb := ranks(a), ranks(b)
	var ma, mb float64
	for i := range ra {
		ma += ra[i]
		mb += rb[i]
	}
	ma /= float64(len(ra))
	mb /= float64(len(rb))
	var sab, saa, sbb float64
	for i := range ra {
		x, y := ra[i]-ma, rb[i]-mb
		sab += x * y
		saa += x * x
		sbb += y * y
	}
	if saa == 0 || sbb == 0 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}
