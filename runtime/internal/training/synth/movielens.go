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
	"strconv"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// MovieLensRating is one row of the log's MovieLens view (see the package
// comment): a (user, item) pair the user engaged with positively.
type MovieLensRating struct {
	Time   int64   // Unix seconds of the first positive engagement
	User   int32   // index; the userId
	Item   int32   // index; the movieId
	Rating float64 // 3, 4 or 5
}

// The ratings of the MovieLens view.
const (
	ratingEngaged = 3.0                // clicked, not liked
	ratingLiked   = dataset.LikeRating // liked: 4, read back as a like
	ratingLoved   = 5.0                // liked, and commented on or shared
)

// MovieLensRatings returns the log as MovieLens ratings, one per (user,
// item) pair with a click, like, comment or share, in the order of their
// first such engagement (so in time order). A pair is rated 5 when it has a
// like and a comment or share, 4 when it has a like, 3 otherwise; every
// other event is left out.
func (w *World) MovieLensRatings() []MovieLensRating {
	type state struct{ liked, talked bool }
	index := map[uint64]int32{}
	var out []MovieLensRating
	var states []state
	for _, e := range w.events {
		switch e.Type {
		case dataset.Click, dataset.Like, dataset.Comment, dataset.Share:
		default:
			continue
		}
		if e.Item < 0 {
			continue
		}
		key := uint64(uint32(e.User))<<32 | uint64(uint32(e.Item))
		k, ok := index[key]
		if !ok {
			k = int32(len(out))
			index[key] = k
			out = append(out, MovieLensRating{Time: e.Time, User: e.User, Item: e.Item})
			states = append(states, state{})
		}
		switch e.Type {
		case dataset.Like:
			states[k].liked = true
		case dataset.Comment, dataset.Share:
			states[k].talked = true
		}
	}
	for k, s := range states {
		switch {
		case s.liked && s.talked:
			out[k].Rating = ratingLoved
		case s.liked:
			out[k].Rating = ratingLiked
		default:
			out[k].Rating = ratingEngaged
		}
	}
	return out
}

// writeMovieLens writes MovieLensRatings as a MovieLens ratings.csv: the
// header "userId,movieId,rating,timestamp", then one row a line with the
// rating to one decimal, as the real files write it.
func (w *World) writeMovieLens(path string) error {
	return writeFile(path, func(bw *bufio.Writer) error {
		b := []byte("userId,movieId,rating,timestamp\n")
		if _, err := bw.Write(b); err != nil {
			return err
		}
		for _, r := range w.MovieLensRatings() {
			b = strconv.AppendInt(b[:0], int64(r.User), 10)
			b = append(b, ',')
			b = strconv.AppendInt(b, int64(r.Item), 10)
			b = append(b, ',')
			b = strconv.AppendFloat(b, r.Rating, 'f', 1, 64)
			b = append(b, ',')
			b = strconv.AppendInt(b, r.Time, 10)
			b = append(b, '\n')
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}
