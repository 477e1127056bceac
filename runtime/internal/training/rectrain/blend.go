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
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/blas/blas64"
)

// testSet is what the evaluation judges lists by: each test user's
// relevant items (see Ranked) and the items shown to each user before the
// split, which no list may hold.
type testSet struct {
	seen  seenSet
	pos   map[int32]map[int32]bool
	users []int32 // in a fixed random order (see newTestSet)
}

func newTestSet(d *Data) *testSet {
	ts := &testSet{seen: shownBefore(d), pos: map[int32]map[int32]bool{}}
	for k := d.TrainN; k < len(d.Imps); k++ {
		im := &d.Imps[k]
		if im.Labels&positiveMask == 0 || ts.seen.has(im.User, im.Item) {
			continue
		}
		if ts.pos[im.User] == nil {
			ts.pos[im.User] = map[int32]bool{}
		}
		ts.pos[im.User][im.Item] = true
	}
	for u := range ts.pos {
		ts.users = append(ts.users, u)
	}
	// A fixed random order, so that the blend users and the funnel users
	// (see blendUsers) are two samples of the same population: taken by
	// id they need not be (a world or a log may number its users by
	// sign-up time, cohort or activity).
	slices.Sort(ts.users)
	rand.New(rand.NewPCG(testOrderSeed, 0)).Shuffle(len(ts.users), func(i, j int) {
		ts.users[i], ts.users[j] = ts.users[j], ts.users[i]
	})
	return ts
}

// testOrderSeed fixes the test users' order, so that a log trained twice
// is judged on the same users.
const testOrderSeed = 1

// blendUsers are the test users the value's retrieval weight is chosen on
// (the last half, at most maxBlendUsers: a user's NDCG is mostly 0, so
// the choice needs many), and funnelUsers the users the funnel is
// evaluated on (at most n of the others): the two sets are disjoint, so
// the weight is not chosen on the users it is judged by.
func (ts *testSet) blendUsers() []int32 {
	k := min(maxBlendUsers, len(ts.users)/2)
	return ts.users[len(ts.users)-k:]
}

// maxBlendUsers bounds the users chooseBlend ranks candidates for.
const maxBlendUsers = 3000

func (ts *testSet) funnelUsers(n int) []int32 {
	return ts.users[:min(n, len(ts.users)-len(ts.blendUsers()))]
}

// blendGrid are the retrieval weights tried, in the value's units (the
// teacher's weights, click 1 by default).
var blendGrid = []float64{0, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 1000}

// chooseBlend sets the weight of the retrieval model's score in the
// teacher's value (rank.RetrievalWeight): of blendGrid, the one whose
// value ranks the retrieval model's FunnelCandidates best items best
// (NDCG@NDCGK) for the blend users, or the largest within one standard
// error of it (oneStandardError), so that the value leaves the retrieval
// order only where the ranker's heads are shown to rank better.
// Logged engagements follow what an earlier recommender showed; the
// ranker's probabilities are learnt given the showing, the retrieval
// model from what was engaged with, so the blend takes both. It prints the
// figure of each weight to w.
func chooseBlend(d *Data, res *Result, o Options, w io.Writer) {
	if !res.MTML.TowerScore {
		return
	}
	ts := newTestSet(d)
	users := ts.blendUsers()
	if len(users) == 0 {
		fmt.Fprintf(w, "retrieval weight: no held-out users to choose it on; 0\n")
		return
	}
	ue := embedUsers(d, res.TwoTower, users)
	cands := retrieve(mat32Of(ue), res.scores.itemMatrix(), FunnelCandidates, func(j int) []int32 { return ts.seen.of(users[j]) })
	type scoredList struct{ value, tt []float64 }
	lists := make([]scoredList, len(users))
	rw := res.MTML.Spec.Width()
	// Each user's candidates are valued on their own: the users are shared
	// out to two goroutines (1,500 candidates for each of 3,000 users cost
	// the teacher twice an epoch of the ranker's forward passes).
	inChunks(len(users), 16, func() func(c, lo, hi int) {
		var tb teacherBuf
		var xb []float64
		return func(_, lo, hi int) {
			for j := lo; j < hi; j++ {
				u, c := users[j], cands[j]
				var x blas64.General
				xb, x = matrix(xb, len(c), rw)
				urow := ue.Data[j*ue.Stride : j*ue.Stride+ue.Cols]
				pool := d.SplitPools[int(u)*d.ItemDim : (int(u)+1)*d.ItemDim]
				l := scoredList{value: make([]float64, len(c)), tt: make([]float64, len(c))}
				for r, i := range c {
					_, fol := d.SplitFollows[followKey(u, d.ItemAuthor[i])]
					l.tt[r] = res.scores.of(urow, i)
					res.MTML.rankRow(d, xb[r*rw:(r+1)*rw], u, pool, d.PoolItems(u, d.SplitPoolN[u]), i, d.Split, fol, l.tt[r])
				}
				res.teacher(x, &tb, l.value, nil)
				lists[j] = l
			}
		}
	})
	// figs[g][j] is user j's NDCG@NDCGK at blendGrid[g]: the head of the
	// list, which the feed shows and the funnel is judged by. (With
	// NDCG@RecallK added, the weight that ranks the hundredth item best
	// won, and the served top 10 trailed the retrieval order.)
	figs := make([][]float64, len(blendGrid))
	for g, bw := range blendGrid {
		var r Ranked
		figs[g] = make([]float64, len(lists))
		v := make([]float64, 0, FunnelCandidates)
		for j, l := range lists {
			v = v[:0]
			for k := range l.value {
				v = append(v, l.value[k]+bw*l.tt[k])
			}
			list := make([]int32, 0, RecallK)
			for _, p := range bestOf(v, RecallK, nil) {
				list = append(list, cands[j][p])
			}
			pos := ts.pos[users[j]]
			r.add(list, pos)
			figs[g][j] = NDCGAt(list, pos, NDCGK)
		}
		r = r.scale(len(users))
		fmt.Fprintf(w, "retrieval weight %-5g on %d held-out users: NDCG@%d %.4f, NDCG@%d %.4f\n", bw, len(users), NDCGK, r.NDCG10, RecallK, r.NDCG100)
	}
	best := oneStandardError(figs)
	res.retrievalW = blendGrid[best]
	fmt.Fprintf(w, "retrieval weight chosen: %g\n", blendGrid[best])
}

// oneStandardError picks, of the grid's per-user figures, the best mean,
// or the largest retrieval weight whose mean is within one standard error
// of the paired difference from it: a user's NDCG is mostly 0, so on a few
// thousand users the best of ten weights is mostly the luckiest, and a
// blend that leans on the ranker's heads without evidence makes the funnel
// trail its own retrieval source.
func oneStandardError(figs [][]float64) int {
	best := 0
	for g := range figs {
		if mean(figs[g]) > mean(figs[best]) {
			best = g
		}
	}
	for g := len(figs) - 1; g > best; g-- {
		d := make([]float64, len(figs[g]))
		for j := range d {
			d[j] = figs[best][j] - figs[g][j]
		}
		if m := mean(d); m <= standardError(d) {
			return g
		}
	}
	return best
}

// standardError is the standard error of the mean of v.
func standardError(v []float64) float64 {
	if len(v) < 2 {
		return 0
	}
	m := mean(v)
	ss := 0.0
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return math.Sqrt(ss / float64(len(v)-1) / float64(len(v)))
}
