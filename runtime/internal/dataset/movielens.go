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

package dataset

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// MovieLensLayout is one of the MovieLens ratings file layouts.
type MovieLensLayout int

const (
	// MovieLensAuto picks the layout from the file name: ".csv" is
	// MovieLensCSV, ".dat" is MovieLensColons, anything else (u.data)
	// MovieLensTab. A trailing ".gz" is ignored.
	MovieLensAuto MovieLensLayout = iota
	// MovieLensTab is u.data: "user<TAB>item<TAB>rating<TAB>timestamp", no header.
	MovieLensTab
	// MovieLensCSV is ratings.csv: the header "userId,movieId,rating,timestamp"
	// then one rating a line.
	MovieLensCSV
	// MovieLensColons is ratings.dat: "user::item::rating::timestamp", no header.
	MovieLensColons
)

// LikeRating is the lowest MovieLens rating that becomes a Like event.
const LikeRating = 4.0

// Rating is one MovieLens rating.
type Rating struct {
	User   string
	Item   string
	Rating float64 // 0.5..5
	Time   time.Time
}

// AppendRatingEvents appends the events a rating maps to: an Impression and a
// Click for every rating (the user saw the movie and chose to watch it), and
// a Like when the rating is at least LikeRating. All carry the rating's time,
// in that order.
func AppendRatingEvents(dst []Event, r Rating) []Event {
	dst = append(dst,
		Event{User: r.User, Item: r.Item, Type: Impression, Time: r.Time},
		Event{User: r.User, Item: r.Item, Type: Click, Time: r.Time})
	if r.Rating >= LikeRating {
		dst = append(dst, Event{User: r.User, Item: r.Item, Type: Like, Time: r.Time})
	}
	return dst
}

// ReadMovieLens reads a MovieLens ratings file (gzip if path ends in ".gz")
// and calls fn with the events of every good rating, in file order. MovieLens
// files are not time-ordered; sort the events (SortEvents) before writing a
// log. An error from fn stops the read and is returned.
func ReadMovieLens(path string, layout MovieLensLayout, opts ReadOptions, fn func(Event) error) (Report, error) {
	rd, closer, err := openFile(path)
	if err != nil {
		return Report{}, err
	}
	defer closer.Close()
	if layout == MovieLensAuto {
		layout = movieLensLayoutOf(path)
	}
	return ScanMovieLens(rd, path, layout, opts, fn)
}

func movieLensLayoutOf(path string) MovieLensLayout {
	switch filepath.Ext(strings.TrimSuffix(path, ".gz")) {
	case ".csv":
		return MovieLensCSV
	case ".dat":
		return MovieLensColons
	default:
		return MovieLensTab
	}
}

// ScanMovieLens is ReadMovieLens over r; name is used in errors and, for
// MovieLensAuto, to pick the layout.
func ScanMovieLens(r io.Reader, name string, layout MovieLensLayout, opts ReadOptions, fn func(Event) error) (Report, error) {
	if layout == MovieLensAuto {
		layout = movieLensLayoutOf(name)
	}
	var sep []byte
	cols := [4]string{"user", "item", "rating", "timestamp"}
	switch layout {
	case MovieLensTab:
		sep = []byte{'\t'}
	case MovieLensColons:
		sep = []byte("::")
	case MovieLensCSV:
		sep = []byte{','}
		cols = [4]string{"userId", "movieId", "rating", "timestamp"}
	default:
		return Report{}, fmt.Errorf("unknown MovieLens layout %d", layout)
	}
	s := newLineScanner(r, name, opts)
	if layout == MovieLensCSV {
		line, err := s.next()
		if err == io.EOF {
			return s.report, &RowError{File: name, Line: 1, Msg: "missing header userId,movieId,rating,timestamp"}
		}
		if err != nil {
			return s.report, err
		}
		if string(line) != "userId,movieId,rating,timestamp" {
			return s.report, s.fatal(errf("", "header is %q, want \"userId,movieId,rating,timestamp\"", truncate(string(line))))
		}
	}
	var evs []Event
	for {
		line, err := s.next()
		if err == io.EOF {
			return s.report, nil
		}
		if err != nil {
			return s.report, err
		}
		rt, fe := parseRating(line, sep, &cols)
		if fe != nil {
			if err := s.bad(fe); err != nil {
				return s.report, err
			}
			continue
		}
		s.report.Rows++
		evs = AppendRatingEvents(evs[:0], rt)
		for _, ev := range evs {
			if err := fn(ev); err != nil {
				return s.report, err
			}
		}
	}
}

func parseRating(line, sep []byte, cols *[4]string) (Rating, *fieldError) {
	var f [4][]byte
	n := 0
	for rest := line; ; n++ {
		i := bytes.Index(rest, sep)
		if n == len(f) {
			return Rating{}, errf("", "more than 4 columns")
		}
		if i < 0 {
			f[n] = rest
			n++
			break
		}
		f[n], rest = rest[:i], rest[i+len(sep):]
	}
	if n != 4 {
		return Rating{}, errf("", "has %d columns, want 4 (%s)", n, strings.Join(cols[:], ", "))
	}
	var r Rating
	r.User, r.Item = string(bytes.TrimSpace(f[0])), string(bytes.TrimSpace(f[1]))
	if fe := checkID(cols[0], r.User); fe != nil {
		return Rating{}, fe
	}
	if fe := checkID(cols[1], r.Item); fe != nil {
		return Rating{}, fe
	}
	v, err := strconv.ParseFloat(string(bytes.TrimSpace(f[2])), 64)
	if err != nil || math.IsNaN(v) || v < 0.5 || v > 5 {
		return Rating{}, errf(cols[2], "%q is not a rating in 0.5..5", truncate(string(f[2])))
	}
	r.Rating = v
	ts, err := strconv.ParseInt(string(bytes.TrimSpace(f[3])), 10, 64)
	if err != nil || ts < 0 || ts > 253402300799 {
		return Rating{}, errf(cols[3], "%q is not a Unix time in seconds", truncate(string(f[3])))
	}
	r.Time = time.Unix(ts, 0).UTC()
	return r, nil
}

// SortEvents orders events by time, keeping the relative order of events
// with equal times, which is what a log must be.
func SortEvents(evs []Event) {
	slices.SortStableFunc(evs, func(a, b Event) int { return a.Time.Compare(b.Time) })
}
