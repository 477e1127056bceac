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
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// small is a world big enough for the statistical checks and fast to build.
func small(seed uint64) Config {
	return Config{Users: 600, Items: 4000, Events: 40000, Seed: seed}
}

func TestDeterministic(t *testing.T) {
	files := []string{CatalogFile, UsersFile, FollowsFile, EventsFile, TruthFile, TruthItemsFile, TruthUsersFile, TruthAuthorsFile}
	write := func(cfg Config) string {
		dir := t.TempDir()
		if err := Generate(cfg).WriteDir(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cfg := Config{Users: 200, Items: 3000, Events: 5000, Seed: 7}
	one := cfg
	one.Workers = 1
	four := cfg
	four.Workers = 4
	a, b := write(one), write(four)
	other := cfg
	other.Seed = 8
	c := write(other)
	for _, f := range files {
		x, _ := os.ReadFile(filepath.Join(a, f))
		y, _ := os.ReadFile(filepath.Join(b, f))
		z, _ := os.ReadFile(filepath.Join(c, f))
		if len(x) == 0 {
			t.Errorf("%s is empty", f)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed (1 and 4 workers)", f)
		}
		if f != TruthFile && bytes.Equal(x, z) {
			t.Errorf("%s is the same for seeds 7 and 8", f)
		}
	}
}

func TestFilesReadBackStrictly(t *testing.T) {
	w := Generate(Config{Users: 100, Items: 1000, Events: 3000, Seed: 1})
	dir := t.TempDir()
	if err := w.WriteDirWith(dir, WriteOptions{Gzip: true}); err != nil {
		t.Fatal(err)
	}
	strict := dataset.ReadOptions{Strict: true}
	count := func(n int, err error) int {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	s := w.Summary()
	cases := map[string]struct{ got, want int }{
		"catalog": {count(readCount(dataset.OpenCatalog(filepath.Join(dir, CatalogFile+".gz"), strict))), s.Items},
		"users":   {count(readCount(dataset.OpenUsers(filepath.Join(dir, UsersFile+".gz"), strict))), s.Users},
		"follows": {count(readCount(dataset.OpenFollows(filepath.Join(dir, FollowsFile+".gz"), strict))), s.Follows},
		"events":  {count(readCount(dataset.OpenEvents(filepath.Join(dir, EventsFile+".gz"), strict))), s.Events},
	}
	for name, c := range cases {
		if c.got != c.want || c.want == 0 {
			t.Errorf("%s: read %d rows, the world has %d", name, c.got, c.want)
		}
	}
}

func readCount[T any](r *dataset.Reader[T], err error) (int, error) {
	if err != nil {
		return 0, err
	}
	defer r.Close()
	rows, err := r.ReadAll()
	return len(rows), err
}

func TestLogVolumeAndOrder(t *testing.T) {
	cfg := small(3)
	w := Generate(cfg)
	n := w.NumEvents()
	if math.Abs(float64(n)-float64(cfg.Events)) > 0.1*float64(cfg.Events) {
		t.Errorf("log has %d rows, asked for about %d", n, cfg.Events)
	}
	evs := w.Interactions()
	for k := 1; k < len(evs); k++ {
		if evs[k].Time < evs[k-1].Time {
			t.Fatalf("row %d is before row %d", k, k-1)
		}
	}
	for _, e := range evs {
		if e.Item >= 0 && w.itemCreated[e.Item] > e.Time {
			t.Fatalf("item %d shown before it was created: %+v", e.Item, e)
		}
	}
}

// rate is a proportion with its standard error.
type rate struct{ hits, n float64 }

func (r rate) p() float64  { return r.hits / r.n }
func (r rate) se() float64 { p := r.p(); return math.Sqrt(p * (1 - p) / r.n) }

// clearlyAbove reports whether a exceeds b by more than 4 standard errors.
func clearlyAbove(a, b rate) bool {
	return a.p()-b.p() > 4*math.Sqrt(a.se()*a.se()+b.se()*b.se())
}

// outcomes pairs each impression with what followed it from the same user
// for the same item.
func outcomes(w *World) (imps []Interaction, got []map[dataset.EventType]bool) {
	type key struct{ u, i int32 }
	last := map[key]int{}
	for _, e := range w.Interactions() {
		k := key{e.User, e.Item}
		if e.Type == dataset.Impression {
			last[k] = len(imps)
			imps = append(imps, e)
			got = append(got, map[dataset.EventType]bool{})
			continue
		}
		if j, ok := last[k]; ok {
			got[j][e.Type] = true
		}
	}
	return imps, got
}

func TestPlantedStructure(t *testing.T) {
	w := Generate(small(11))
	imps, got := outcomes(w)

	t.Run("click rate rises with affinity", func(t *testing.T) {
		low, high := ratesByAffinity(w, imps, got, dataset.Click)
		if low.n < 500 || high.n < 500 {
			t.Fatalf("too few impressions: %v low, %v high", low.n, high.n)
		}
		t.Logf("click rate %.3f (n=%v) at low affinity, %.3f (n=%v) at high", low.p(), low.n, high.p(), high.n)
		if !clearlyAbove(high, rate{low.hits * 3, low.n}) {
			t.Errorf("click rate %.3f at high affinity is not clearly above 3× %.3f at low affinity", high.p(), low.p())
		}
	})

	t.Run("see_less rate rises with integrity risk", func(t *testing.T) {
		safe, risky := ratesByRisk(w, imps, got, dataset.SeeLess)
		t.Logf("see_less rate %.4f (n=%v) on safe items, %.4f (n=%v) on risky", safe.p(), safe.n, risky.p(), risky.n)
		if !clearlyAbove(risky, rate{safe.hits * 2, safe.n}) {
			t.Errorf("see_less rate %.4f on risky items is not clearly above 2× %.4f on safe ones", risky.p(), safe.p())
		}
	})

	t.Run("see_less rate falls with affinity", func(t *testing.T) {
		low, high := ratesByAffinity(w, imps, got, dataset.SeeLess)
		if !clearlyAbove(low, high) {
			t.Errorf("see_less rate %.4f at low affinity is not clearly above %.4f at high affinity", low.p(), high.p())
		}
	})

	t.Run("follow graph follows topics", func(t *testing.T) { checkFollowsFollowTopics(t, w) })
	t.Run("observed rates match the true probabilities", func(t *testing.T) { checkObservedRates(t, w, imps, got) })
	t.Run("features carry the topic", func(t *testing.T) { checkFeaturesCarryTopic(t, w) })
}

// ratesByAffinity returns the rate of et after impressions of low affinity
// (at most 0.2) and of high affinity (over 0.6).
func ratesByAffinity(w *World, imps []Interaction, got []map[dataset.EventType]bool, et dataset.EventType) (low, high rate) {
	for j, e := range imps {
		s := w.Affinity(int(e.User), int(e.Item))
		r := &low
		switch {
		case s > 0.6:
			r = &high
		case s > 0.2:
			continue
		}
		r.n++
		if got[j][et] {
			r.hits++
		}
	}
	return low, high
}

// ratesByRisk returns the rate of et after impressions of safe items
// (integrity risk at most 0.1) and of risky ones (over 0.3).
func ratesByRisk(w *World, imps []Interaction, got []map[dataset.EventType]bool, et dataset.EventType) (safe, risky rate) {
	for j, e := range imps {
		r := &safe
		switch risk := w.ItemRisk(int(e.Item)); {
		case risk > 0.3:
			r = &risky
		case risk > 0.1:
			continue
		}
		r.n++
		if got[j][et] {
			r.hits++
		}
	}
	return safe, risky
}

// checkFollowsFollowTopics checks that users follow authors of their
// topic clearly more often than chance.
func checkFollowsFollowTopics(t *testing.T, w *World) {
	var same rate
	for u := range w.NumUsers() {
		for _, a := range w.InitialFollows(u) {
			same.n++
			if w.AuthorTopic(int(a)) == w.UserTopic(u) {
				same.hits++
			}
		}
	}
	// Without topic preference the share would be Σ_k π_k² (users and
	// authors drawing topics independently).
	var chance float64
	for _, p := range w.topicWeights() {
		chance += p * p
	}
	t.Logf("%.3f of %v follows in the user's topic, chance %.3f", same.p(), same.n, chance)
	if !clearlyAbove(same, rate{2 * chance * same.n, same.n}) {
		t.Errorf("%.3f of follows are of the user's topic, not clearly above 2× chance %.3f", same.p(), chance)
	}
}

// checkObservedRates checks that the count of each event after the
// impressions is within 5 standard deviations of the truth's expectation.
func checkObservedRates(t *testing.T, w *World, imps []Interaction, got []map[dataset.EventType]bool) {
	for _, et := range []dataset.EventType{dataset.Click, dataset.Like, dataset.Comment, dataset.Share, dataset.SeeLess} {
		var want, variance, hits float64
		for j, e := range imps {
			p := w.TrueProbabilities(int(e.User), int(e.Item)).Of(et)
			want += p
			variance += p * (1 - p)
			if got[j][et] {
				hits++
			}
		}
		t.Logf("%s: %v observed, %.0f expected", et, hits, want)
		if math.Abs(hits-want) > 5*math.Sqrt(variance)+5 {
			t.Errorf("%s: %v observed, the truth expects %.0f ± %.0f", et, hits, want, math.Sqrt(variance))
		}
	}
}

// checkFeaturesCarryTopic checks that items of one topic are closer in
// feature space than items of different topics.
func checkFeaturesCarryTopic(t *testing.T, w *World) {
	var sameD, diffD, sameN, diffN float64
	for i := 0; i+1 < 2000; i += 2 {
		d := dist(w.ItemFeatures(i), w.ItemFeatures(i+1))
		if w.ItemTopic(i) == w.ItemTopic(i+1) {
			sameD, sameN = sameD+d, sameN+1
		} else {
			diffD, diffN = diffD+d, diffN+1
		}
	}
	t.Logf("feature distance %.3f within a topic, %.3f across", sameD/sameN, diffD/diffN)
	if sameN < 20 || sameD/sameN > 0.7*diffD/diffN {
		t.Errorf("mean feature distance %.3f within a topic (%v pairs), %.3f across", sameD/sameN, sameN, diffD/diffN)
	}
}

func dist(a, b []float32) float64 {
	var s float64
	for j := range a {
		d := float64(a[j] - b[j])
		s += d * d
	}
	return math.Sqrt(s)
}

func TestOracle(t *testing.T) {
	w := Generate(Config{Users: 50, Items: 2000, Events: 500, Seed: 5})
	o := w.Oracle(DefaultWeights())
	top := o.TopK(3, 20, nil)
	for j := 1; j < len(top); j++ {
		if top[j].Value > top[j-1].Value {
			t.Fatalf("TopK not sorted at %d", j)
		}
	}
	if v := w.TrueValue(3, top[0].Item, DefaultWeights()); v != top[0].Value {
		t.Errorf("TrueValue %v and Oracle.Value %v disagree", v, top[0].Value)
	}
	best := make([]int, len(top))
	for j, s := range top {
		best[j] = s.Item
	}
	reversed := make([]int, len(best))
	for j := range best {
		reversed[j] = best[len(best)-1-j]
	}
	if got := o.NDCG(3, best, nil); math.Abs(got-1) > 1e-12 {
		t.Errorf("NDCG of the oracle's own list = %v, want 1", got)
	}
	if got := o.NDCG(3, reversed, nil); got >= 1 {
		t.Errorf("NDCG of the reversed list = %v, want < 1", got)
	}
	// The oracle prefers the user's topic.
	inTopic := 0
	for _, s := range top {
		if w.ItemTopic(s.Item) == w.UserTopic(3) {
			inTopic++
		}
	}
	if inTopic < len(top)/2 {
		t.Errorf("only %d of the oracle's top %d items are of the user's topic", inTopic, len(top))
	}
}

func TestIDs(t *testing.T) {
	cases := map[string]struct {
		prefix byte
		id     string
		want   int
		ok     bool
	}{
		"user":         {'u', UserID(42), 42, true},
		"item zero":    {'i', ItemID(0), 0, true},
		"author":       {'a', AuthorID(7), 7, true},
		"wrong prefix": {'u', "i3", 0, false},
		"leading zero": {'u', "u03", 0, false},
		"negative":     {'u', "u-3", 0, false},
		"prefix alone": {'u', "u", 0, false},
		"not a number": {'i', "ix", 0, false},
	}
	for name, tc := range cases {
		if got, ok := ParseID(tc.prefix, tc.id); ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("%s: ParseID(%q) = %d, %v", name, tc.id, got, ok)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"negative users":                  {Users: -1},
		"negative mix":                    {Mix: Mix{Popular: -1}},
		"risky above 1":                   {RiskyAuthors: 2},
		"negative feature width":          {FeatureDim: -1},
		"negative feature width, id-only": {FeatureDim: -1, IDOnly: true},
	} {
		if _, err := NewWorld(cfg); err == nil {
			t.Errorf("%s: NewWorld accepted %+v", name, cfg)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Users: 10000, Items: 100000, Seed: 1}
	var events int
	for b.Loop() {
		events = Generate(cfg).NumEvents()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(float64(cfg.Items)/sec, "items/s")
	b.ReportMetric(float64(events)/sec, "events/s")
}

// TestPreviousRecommenderLeansTowardsTaste checks the Topic source's
// exposure: with a previous recommender choosing among TopicCandidates
// items, the items shown have a clearly higher true click logit than the
// uniform draws of TopicCandidates = 1, and clicks are more frequent; a
// noise-free recommender leans further than a noisy one.
func TestPreviousRecommenderLeansTowardsTaste(t *testing.T) {
	logit := func(cfg Config) (mean float64, clicks rate) {
		cfg.Mix = Mix{Topic: 1}
		w := Generate(cfg)
		imps, got := outcomes(w)
		for j, e := range imps {
			mean += w.Config().Model.ClickScale*w.Affinity(int(e.User), int(e.Item)) + w.ItemQuality(int(e.Item))
			clicks.n++
			if got[j][dataset.Click] {
				clicks.hits++
			}
		}
		return mean / float64(len(imps)), clicks
	}
	base := small(21)
	uniform := base
	uniform.TopicCandidates = 1
	noisy := base // the defaults: 10 candidates, noise 1
	exact := base
	exact.RankerNoise = -1
	lu, cu := logit(uniform)
	ln, cn := logit(noisy)
	le, _ := logit(exact)
	t.Logf("mean true click logit of shown items: uniform %.3f, noisy recommender %.3f, exact %.3f; click rate %.3f → %.3f", lu, ln, le, cu.p(), cn.p())
	// The within-topic spread of the logit is about 0.65; the best of 10
	// by a ranker correlating about 0.55 with it gains about 0.5.
	if ln < lu+0.3 {
		t.Errorf("the previous recommender raises the mean click logit from %.3f to %.3f only", lu, ln)
	}
	if le < ln+0.2 {
		t.Errorf("a noise-free recommender gives %.3f, not clearly above the noisy one's %.3f", le, ln)
	}
	if !clearlyAbove(cn, cu) {
		t.Errorf("click rate %.4f with the previous recommender, not clearly above %.4f without", cn.p(), cu.p())
	}
}
