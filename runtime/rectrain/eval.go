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
	"path/filepath"
	"slices"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/recpipeline/recpipeline/runtime/rectrain/nn"
)

// RecallK is the cut-off of the retrieval recall; FunnelCandidates the
// number of retrieved candidates the first stage is compared with the
// teacher on, and TeacherTop how many of the teacher's best of them.
const (
	RecallK          = 100
	FunnelCandidates = 1000
	TeacherTop       = 300
)

// Report is the offline evaluation on the test split.
type Report struct {
	// TestImpressions is the number of impressions at or after the split;
	// TestUsers the number of users with a positive engagement there.
	TestImpressions, TestUsers int
	// Recall is the mean over test users of the fraction of their distinct
	// engaged test items that the two-tower model retrieves in its top
	// RecallK of the whole catalog (exact dot-product search, user state at
	// the split); RecallPopular the same for the items with the most
	// training engagements.
	Recall, RecallPopular float64
	// AUC is the MTML's ROC AUC per head (Heads order) on test impressions;
	// AUCPopular that of the item's smoothed training rate of the event;
	// Positives the number of positive test impressions per head.
	AUC, AUCPopular []float64
	Positives       []int
	// Spearman is the mean rank correlation between the first stage's and
	// the teacher's scores on the teacher's TeacherTop best of the two-tower
	// model's FunnelCandidates candidates, over SpearmanUsers test users.
	Spearman      float64
	SpearmanUsers int
}

// Table prints the report as a table.
func (r Report) Table(w io.Writer) {
	fmt.Fprintf(w, "evaluation on %d test impressions, %d test users\n", r.TestImpressions, r.TestUsers)
	fmt.Fprintf(w, "  %-34s %10s %10s\n", "metric", "model", "popular")
	fmt.Fprintf(w, "  %-34s %10.4f %10.4f\n", fmt.Sprintf("two-tower recall@%d", RecallK), r.Recall, r.RecallPopular)
	for h, name := range Heads {
		fmt.Fprintf(w, "  %-34s %10.4f %10.4f\n", fmt.Sprintf("mtml AUC %s (%d positives)", name, r.Positives[h]), r.AUC[h], r.AUCPopular[h])
	}
	fmt.Fprintf(w, "  %-34s %10.4f %10s\n", fmt.Sprintf("first-stage Spearman@%d (%d users)", TeacherTop, r.SpearmanUsers), r.Spearman, "-")
}

func dirJoin(dir, name string) string { return filepath.Join(dir, name) }

// embedUsers returns the tower embeddings of users at the split.
func embedUsers(d *Data, t *TwoTower, users []int32) blas64.General {
	uw := t.UserSpec.Width()
	buf, x := matrix(nil, len(users), uw)
	for j, u := range users {
		d.userRow(buf[j*uw:(j+1)*uw], u, d.SplitPools[int(u)*d.ItemDim:(int(u)+1)*d.ItemDim])
	}
	var tape nn.Tape
	return copyOf(t.User.Forward(x, &tape))
}

// embedItems returns the tower embeddings of every item.
func embedItems(d *Data, t *TwoTower) blas64.General {
	iw := t.ItemSpec.Width()
	n := len(d.ItemIDs)
	buf, x := matrix(nil, n, iw)
	for i := range n {
		d.itemRow(buf[i*iw:(i+1)*iw], int32(i))
	}
	var tape nn.Tape
	return copyOf(t.Item.Forward(x, &tape))
}

func copyOf(m blas64.General) blas64.General {
	return blas64.General{Rows: m.Rows, Cols: m.Cols, Stride: m.Cols, Data: slices.Clone(m.Data[:m.Rows*m.Stride])}
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

// topK returns the k best-scored items, best first.
func topK(scores []float64, k int, h *minHeap) []int32 {
	*h = (*h)[:0]
	for i, s := range scores {
		c := scored{int32(i), s}
		if len(*h) < k {
			heap.Push(h, c)
		} else if better(c, (*h)[0]) {
			(*h)[0] = c
			heap.Fix(h, 0)
		}
	}
	out := make([]int32, len(*h))
	for j := len(out) - 1; j >= 0; j-- {
		out[j] = heap.Pop(h).(scored).item
	}
	return out
}

// retrieve returns each user's top k items by exact dot product, on two
// goroutines over chunks of users.
func retrieve(ue, ie blas64.General, k int) [][]int32 {
	const chunk = 256
	out := make([][]int32, ue.Rows)
	var wg sync.WaitGroup
	const workers = 2
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h minHeap
			var buf []float64
			for s := w * chunk; s < ue.Rows; s += workers * chunk {
				n := min(chunk, ue.Rows-s)
				var sc blas64.General
				buf, sc = matrix(buf, n, ie.Rows)
				u := blas64.General{Rows: n, Cols: ue.Cols, Stride: ue.Stride, Data: ue.Data[s*ue.Stride:]}
				blas64.Gemm(blas.NoTrans, blas.Trans, 1, u, ie, 0, sc)
				for r := range n {
					out[s+r] = topK(buf[r*ie.Rows:(r+1)*ie.Rows], k, &h)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func evaluate(d *Data, res *Result, o Options) Report {
	rep := Report{TestImpressions: len(d.Imps) - d.TrainN}
	nh := len(Heads)

	// Retrieval.
	testPos := map[int32]map[int32]bool{}
	for k := d.TrainN; k < len(d.Imps); k++ {
		im := &d.Imps[k]
		if im.Labels&positiveMask == 0 {
			continue
		}
		if testPos[im.User] == nil {
			testPos[im.User] = map[int32]bool{}
		}
		testPos[im.User][im.Item] = true
	}
	users := make([]int32, 0, len(testPos))
	for u := range testPos {
		users = append(users, u)
	}
	slices.Sort(users)
	rep.TestUsers = len(users)
	trainPos := make([]float64, len(d.ItemIDs))
	for k := 0; k < d.TrainN; k++ {
		if d.Imps[k].Labels&positiveMask != 0 {
			trainPos[d.Imps[k].Item]++
		}
	}
	var h minHeap
	popular := topK(trainPos, RecallK, &h)
	funnelUsers := users[:min(len(users), o.EvalUsers)]
	var cands [][]int32
	if len(users) > 0 {
		ue := embedUsers(d, res.TwoTower, users)
		ie := embedItems(d, res.TwoTower)
		top := retrieve(ue, ie, max(RecallK, FunnelCandidates))
		var sum, sumPop float64
		for j, u := range users {
			pos := testPos[u]
			hits, hitsPop := 0, 0
			for _, i := range top[j][:min(RecallK, len(top[j]))] {
				if pos[i] {
					hits++
				}
			}
			for _, i := range popular {
				if pos[i] {
					hitsPop++
				}
			}
			sum += float64(hits) / float64(len(pos))
			sumPop += float64(hitsPop) / float64(len(pos))
		}
		rep.Recall, rep.RecallPopular = sum/float64(len(users)), sumPop/float64(len(users))
		cands = top[:len(funnelUsers)]
	}

	// Ranking: per-head AUC on test impressions.
	rw := res.MTML.Spec.Width()
	n := len(d.Imps) - d.TrainN
	probs := make([]float64, n*nh)
	{
		var tb, th nn.Tape
		var xb []float64
		vals := make([]float64, 1024)
		for s := 0; s < n; s += 1024 {
			bn := min(1024, n-s)
			var x blas64.General
			xb, x = matrix(xb, bn, rw)
			for j := range bn {
				k := d.TrainN + s + j
				im := &d.Imps[k]
				d.rankRow(xb[j*rw:(j+1)*rw], im.User, d.Pool(k), im.Item, im.T, im.Followed)
			}
			res.teacher(x, &tb, &th, vals[:bn], probs[s*nh:(s+bn)*nh])
		}
	}
	// The baseline scores an impression by the item's training rate of the
	// event, smoothed towards the global rate.
	imps := make([]float64, len(d.ItemIDs))
	events := make([][]float64, nh)
	global := make([]float64, nh)
	for h := range events {
		events[h] = make([]float64, len(d.ItemIDs))
	}
	for k := 0; k < d.TrainN; k++ {
		im := &d.Imps[k]
		imps[im.Item]++
		for h := range nh {
			if im.Labels>>h&1 == 1 {
				events[h][im.Item]++
				global[h]++
			}
		}
	}
	const prior = 10.0
	rep.AUC, rep.AUCPopular, rep.Positives = make([]float64, nh), make([]float64, nh), make([]int, nh)
	score, base := make([]float64, n), make([]float64, n)
	labels := make([]bool, n)
	for h := range nh {
		g := global[h] / float64(max(d.TrainN, 1))
		for j := range n {
			im := &d.Imps[d.TrainN+j]
			score[j] = probs[j*nh+h]
			base[j] = (events[h][im.Item] + prior*g) / (imps[im.Item] + prior)
			labels[j] = im.Labels>>h&1 == 1
			if labels[j] {
				rep.Positives[h]++
			}
		}
		rep.AUC[h], rep.AUCPopular[h] = AUC(score, labels), AUC(base, labels)
	}

	// First stage against the teacher on the funnel's candidates.
	if len(funnelUsers) > 0 {
		fu := embedUsers(d, res.FirstStage, funnelUsers)
		fi := embedItems(d, res.FirstStage)
		var tb, th nn.Tape
		var xb []float64
		var sum float64
		for j, u := range funnelUsers {
			c := cands[j]
			var x blas64.General
			xb, x = matrix(xb, len(c), rw)
			pool := d.SplitPools[int(u)*d.ItemDim : (int(u)+1)*d.ItemDim]
			for r, i := range c {
				_, fol := d.SplitFollows[followKey(u, d.ItemAuthor[i])]
				d.rankRow(xb[r*rw:(r+1)*rw], u, pool, i, d.Split, fol)
			}
			tv := make([]float64, len(c))
			res.teacher(x, &tb, &th, tv, nil)
			order := make([]int, len(c))
			for r := range order {
				order[r] = r
			}
			slices.SortFunc(order, func(a, b int) int { return cmp.Or(cmp.Compare(tv[b], tv[a]), cmp.Compare(a, b)) })
			order = order[:min(TeacherTop, len(order))]
			ts, ss := make([]float64, len(order)), make([]float64, len(order))
			urow := fu.Data[j*fu.Stride : j*fu.Stride+fu.Cols]
			for r, o := range order {
				ts[r] = tv[o]
				irow := fi.Data[int(c[o])*fi.Stride : int(c[o])*fi.Stride+fi.Cols]
				for k, v := range urow {
					ss[r] += v * irow[k]
				}
			}
			sum += Spearman(ts, ss)
		}
		rep.Spearman, rep.SpearmanUsers = sum/float64(len(funnelUsers)), len(funnelUsers)
	}
	return rep
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
