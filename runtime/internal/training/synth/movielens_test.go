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
	"bufio"
	"compress/gzip"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// pairTruth is what the world's log says of one (user, item) pair.
type pairTruth struct {
	firstClick       int64
	liked, talked    bool
	clicked, seeLess bool
}

// pairsOf summarises the log per (user, item) pair, independently of
// MovieLensRatings.
func pairsOf(w *World) map[[2]string]*pairTruth {
	pairs := map[[2]string]*pairTruth{}
	for _, e := range w.Interactions() {
		if e.Item < 0 {
			continue
		}
		k := [2]string{strconv.Itoa(int(e.User)), strconv.Itoa(int(e.Item))}
		p := pairs[k]
		if p == nil {
			p = &pairTruth{}
			pairs[k] = p
		}
		switch e.Type {
		case dataset.Click:
			if !p.clicked {
				p.clicked, p.firstClick = true, e.Time
			}
		case dataset.Like:
			p.liked = true
		case dataset.Comment, dataset.Share:
			p.talked = true
		case dataset.SeeLess:
			p.seeLess = true
		}
	}
	return pairs
}

// TestMovieLensRoundTrip writes a world's log as ratings.csv, reads it back
// with dataset.ReadMovieLens and checks that it is a real-looking, time
// ordered ratings file holding exactly the world's clicked pairs, with a
// like where the world has one.
func TestMovieLensRoundTrip(t *testing.T) {
	w := Generate(Config{Users: 80, Items: 500, Events: 4000, Seed: 12})
	pairs := pairsOf(w)
	tests := map[string]struct {
		opts      WriteOptions
		file      string
		present   []string
		absent    []string
		rowFormat bool
	}{
		"movielens": {
			opts: WriteOptions{Format: FormatMovieLens}, file: MovieLensFile,
			absent: []string{CatalogFile, UsersFile, FollowsFile, EventsFile, TruthFile, TruthItemsFile}, rowFormat: true,
		},
		"movielens, gzip": {
			opts: WriteOptions{Format: FormatMovieLens, Gzip: true}, file: MovieLensFile + ".gz",
			absent: []string{MovieLensFile, CatalogFile + ".gz", TruthFile + ".gz"}, rowFormat: true,
		},
		"both": {
			opts: WriteOptions{Format: FormatBoth}, file: MovieLensFile,
			present: []string{CatalogFile, UsersFile, FollowsFile, EventsFile, TruthFile, TruthItemsFile},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := w.WriteDirWith(dir, tc.opts); err != nil {
				t.Fatal(err)
			}
			checkWritten(t, dir, tc.present, tc.absent)
			path := filepath.Join(dir, tc.file)
			if tc.rowFormat {
				checkRatingsCSV(t, path)
			}
			clicks, likes := readRatingsBack(t, path, pairs)
			checkRatingCounts(t, w, pairs, clicks, likes)
		})
	}
}

// checkWritten checks that the files present are in dir and the files
// absent are not.
func checkWritten(t *testing.T, dir string, present, absent []string) {
	t.Helper()
	for _, f := range present {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s is missing: %v", f, err)
		}
	}
	for _, f := range absent {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s was written", f)
		}
	}
}

// ratingRow is a row of ratings.csv as MovieLens writes it.
var ratingRow = regexp.MustCompile(`^(0|[1-9][0-9]*),(0|[1-9][0-9]*),[345]\.0,[1-9][0-9]*$`)

// checkRatingsCSV checks that path is a ratings.csv as MovieLens writes it.
func checkRatingsCSV(t *testing.T, path string) {
	t.Helper()
	lines := linesOf(t, path)
	if len(lines) < 2 || lines[0] != "userId,movieId,rating,timestamp" {
		t.Fatalf("ratings file starts %q", lines[:min(len(lines), 2)])
	}
	for k, l := range lines[1:] {
		if !ratingRow.MatchString(l) {
			t.Fatalf("line %d %q is not userId,movieId,rating,timestamp as a MovieLens ratings.csv writes it", k+2, l)
		}
	}
}

// readRatingsBack reads the ratings at path with dataset.ReadMovieLens,
// checks that they are in time order and each a clicked pair of the world,
// rated once at its first click and liked only where the world likes it,
// and returns the clicks and likes read.
func readRatingsBack(t *testing.T, path string, pairs map[[2]string]*pairTruth) (clicks, likes int) {
	t.Helper()
	var last int64
	seen := map[[2]string]bool{}
	rep, err := dataset.ReadMovieLens(path, dataset.MovieLensAuto, dataset.ReadOptions{Strict: true}, func(e dataset.Event) error {
		ts := e.Time.Unix()
		if ts < last {
			t.Fatalf("event %+v is before the previous one at %d", e, last)
		}
		last = ts
		k := [2]string{e.User, e.Item}
		p := pairs[k]
		if p == nil || !p.clicked {
			t.Fatalf("rated pair user %s movie %s was never clicked in the world", e.User, e.Item)
		}
		switch e.Type {
		case dataset.Click:
			clicks++
			if seen[k] {
				t.Fatalf("pair user %s movie %s is rated twice", e.User, e.Item)
			}
			seen[k] = true
			if ts != p.firstClick {
				t.Errorf("pair user %s movie %s rated at %d, first clicked at %d", e.User, e.Item, ts, p.firstClick)
			}
		case dataset.Like:
			likes++
			if !p.liked {
				t.Errorf("pair user %s movie %s reads back as a like the world does not have", e.User, e.Item)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 0 || rep.Rows != clicks {
		t.Errorf("read %d rows, skipped %d, for %d clicks", rep.Rows, rep.Skipped, clicks)
	}
	return clicks, likes
}

// checkRatingCounts checks that the clicks and likes read back are every
// clicked and liked pair of the world, a see_less alone making no row.
func checkRatingCounts(t *testing.T, w *World, pairs map[[2]string]*pairTruth, clicks, likes int) {
	t.Helper()
	var wantClicks, wantLikes, seeLessOnly int
	for _, p := range pairs {
		if p.clicked {
			wantClicks++
		}
		if p.liked {
			wantLikes++
		}
		if p.seeLess && !p.clicked {
			seeLessOnly++
		}
	}
	liked := 0
	for _, r := range w.MovieLensRatings() {
		if r.Rating >= dataset.LikeRating {
			liked++
		}
	}
	if likes != liked {
		t.Errorf("read back %d likes from %d rows rated %v or more", likes, liked, dataset.LikeRating)
	}
	if clicks != wantClicks || likes != wantLikes || seeLessOnly == 0 {
		t.Errorf("read back %d clicked and %d liked pairs, the world has %d and %d (and %d pairs with see_less alone, which must make no row)",
			clicks, likes, wantClicks, wantLikes, seeLessOnly)
	}
	if wantLikes == 0 || wantLikes == wantClicks {
		t.Fatalf("the world has %d liked of %d clicked pairs: too few to tell likes apart", wantLikes, wantClicks)
	}
	t.Logf("%d ratings, like rate %.3f", clicks, float64(likes)/float64(clicks))
}

// TestMovieLensRatings checks each rating against the world's log: 5 for a
// like with a comment or share, 4 for a like alone, 3 without a like.
func TestMovieLensRatings(t *testing.T) {
	w := Generate(Config{Users: 80, Items: 500, Events: 4000, Seed: 13})
	pairs := pairsOf(w)
	rs := w.MovieLensRatings()
	counts := map[float64]int{}
	for k, r := range rs {
		if k > 0 && r.Time < rs[k-1].Time {
			t.Fatalf("rating %d at %d is before rating %d at %d", k, r.Time, k-1, rs[k-1].Time)
		}
		p := pairs[[2]string{strconv.Itoa(int(r.User)), strconv.Itoa(int(r.Item))}]
		want := 3.0
		switch {
		case p.liked && p.talked:
			want = 5
		case p.liked:
			want = 4
		}
		if r.Rating != want {
			t.Fatalf("user %d item %d: rating %v, want %v (liked %v, commented or shared %v)", r.User, r.Item, r.Rating, want, p.liked, p.talked)
		}
		counts[r.Rating]++
	}
	keys := []float64{3, 4, 5}
	for _, v := range keys {
		if counts[v] == 0 {
			t.Errorf("no rating of %v among %d: %v", v, len(rs), counts)
		}
	}
	if got := slices.Sorted(maps.Keys(counts)); !slices.Equal(got, keys) {
		t.Errorf("ratings %v, want only %v", got, keys)
	}
}

// linesOf returns the lines of a file, gunzipped when it ends in ".gz".
func linesOf(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if filepath.Ext(path) == ".gz" {
		z, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		r = z
	}
	var lines []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
