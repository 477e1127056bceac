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
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// The files WriteDir writes (with ".gz" appended when compressed).
const (
	CatalogFile      = "catalog.jsonl"
	UsersFile        = "users.jsonl"
	FollowsFile      = "follows.jsonl"
	EventsFile       = "events.jsonl"
	TruthFile        = "truth.json"          // topics, weights, model, config
	TruthUsersFile   = "truth_users.jsonl"   // {"id","topic","bias","latent"}
	TruthItemsFile   = "truth_items.jsonl"   // {"id","topic","quality","latent"}
	TruthAuthorsFile = "truth_authors.jsonl" // {"id","topic","popularity","risky"}
	MovieLensFile    = "ratings.csv"         // the log as MovieLens ratings
)

// Format selects the files WriteDirWith writes.
type Format int

const (
	// FormatJSONL is the catalog, users, follow graph and log in the
	// runtime/internal/dataset formats, and the truth files unless
	// WriteOptions.SkipTruth.
	FormatJSONL Format = iota
	// FormatMovieLens is ratings.csv alone (see MovieLensRatings). The
	// truth files are left out: ReadTruth needs the catalog.
	FormatMovieLens
	// FormatBoth is FormatJSONL and ratings.csv.
	FormatBoth
)

// WriteOptions controls WriteDirWith.
type WriteOptions struct {
	// Gzip compresses every file and appends ".gz" to its name. Default false.
	Gzip bool
	// SkipTruth leaves out the truth files. Default false.
	SkipTruth bool
	// Format selects the files; default FormatJSONL.
	Format Format
}

// WriteDir writes the world's catalog, users, follow graph, log and truth
// files into dir, creating it if needed.
func (w *World) WriteDir(dir string) error { return w.WriteDirWith(dir, WriteOptions{}) }

// WriteDirWith is WriteDir with options. Files are written concurrently,
// each streaming from the world's arrays.
func (w *World) WriteDirWith(dir string, opts WriteOptions) error {
	if opts.Format < FormatJSONL || opts.Format > FormatBoth {
		return fmt.Errorf("unknown format %d", opts.Format)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	path := func(name string) string {
		if opts.Gzip {
			name += ".gz"
		}
		return filepath.Join(dir, name)
	}
	var jobs []func() error
	if opts.Format != FormatJSONL {
		jobs = append(jobs, func() error { return w.writeMovieLens(path(MovieLensFile)) })
	}
	if opts.Format != FormatMovieLens {
		jobs = append(jobs,
			func() error { return w.writeEvents(path(EventsFile)) },
			func() error { return w.writeCatalog(path(CatalogFile)) },
			func() error { return w.writeUsers(path(UsersFile)) },
			func() error { return w.writeFollows(path(FollowsFile)) },
		)
	}
	if opts.Format != FormatMovieLens && !opts.SkipTruth {
		jobs = append(jobs,
			func() error { return w.writeTruth(path(TruthFile)) },
			func() error { return w.writeTruthRows(path(TruthItemsFile), w.cfg.Items, w.appendTruthItem) },
			func() error { return w.writeTruthRows(path(TruthUsersFile), w.cfg.Users, w.appendTruthUser) },
			func() error { return w.writeTruthRows(path(TruthAuthorsFile), w.cfg.Authors, w.appendTruthAuthor) },
		)
	}
	errs := make([]error, len(jobs))
	parallel(w.cfg.Workers, len(jobs), func(j int) { errs[j] = jobs[j]() })
	return errors.Join(errs...)
}

func closeWith(err error, close func() error) error {
	if cerr := close(); err == nil {
		err = cerr
	}
	return err
}

func (w *World) writeEvents(path string) (err error) {
	ew, err := dataset.CreateEvents(path)
	if err != nil {
		return err
	}
	defer func() { err = closeWith(err, ew.Close) }()
	for k := range w.events {
		if err := ew.Write(w.Event(k)); err != nil {
			return err
		}
	}
	return nil
}

func (w *World) writeCatalog(path string) (err error) {
	cw, err := dataset.CreateCatalog(path, w.FeatureDim())
	if err != nil {
		return err
	}
	defer func() { err = closeWith(err, cw.Close) }()
	for i := range w.cfg.Items {
		it := dataset.Item{
			ID:            ItemID(i),
			Author:        AuthorID(int(w.itemAuthor[i])),
			Created:       time.Unix(w.itemCreated[i], 0).UTC(),
			Features:      w.ItemFeatures(i),
			IntegrityRisk: w.itemRisk[i],
		}
		if err := cw.Write(it); err != nil {
			return err
		}
	}
	return nil
}

func (w *World) writeUsers(path string) (err error) {
	uw, err := dataset.CreateUsers(path, w.FeatureDim())
	if err != nil {
		return err
	}
	defer func() { err = closeWith(err, uw.Close) }()
	for u := range w.cfg.Users {
		if err := uw.Write(dataset.User{ID: UserID(u), Features: w.UserFeatures(u)}); err != nil {
			return err
		}
	}
	return nil
}

func (w *World) writeFollows(path string) (err error) {
	fw, err := dataset.CreateFollows(path)
	if err != nil {
		return err
	}
	defer func() { err = closeWith(err, fw.Close) }()
	for u := range w.cfg.Users {
		for _, a := range w.follows.list(u) {
			if err := fw.Write(dataset.FollowEdge{User: UserID(u), Author: AuthorID(int(a))}); err != nil {
				return err
			}
		}
	}
	return nil
}

// truth is the content of truth.json.
type truth struct {
	Format       string      `json:"format"`
	Version      int         `json:"version"`
	Config       truthConfig `json:"config"`
	TopicWeights []float64   `json:"topic_weights"`
	TopicCenters [][]float32 `json:"topic_centers"`
	// ItemProjection and UserProjection are FeatureDim rows of Dim+1
	// columns: features = W·[latent; quality or bias] + noise. Empty for
	// an id-only world, which has no features.
	ItemProjection [][]float32 `json:"item_projection"`
	UserProjection [][]float32 `json:"user_projection"`
	Model          Model       `json:"model"`
}

type truthConfig struct {
	Users, Items, Authors, Topics, Dim, FeatureDim, Days, Events int
	Start                                                        time.Time
	Seed                                                         uint64
	FollowsPerUser, RiskyAuthors, FeatureNoise                   float64
	Mix                                                          Mix
	TopicCandidates                                              int
	RankerNoise                                                  float64
	IDOnly                                                       bool `json:",omitempty"`
}

func rows(flat []float32, width int) [][]float32 {
	out := [][]float32{}
	for j := 0; j+width <= len(flat) && width > 0; j += width {
		out = append(out, flat[j:j+width])
	}
	return out
}

func (w *World) writeTruth(path string) error {
	c := w.cfg
	wi, wu := w.featureMatrices()
	if c.IDOnly {
		wi, wu = nil, nil
	}
	t := truth{
		Format: "recpipeline.synth-truth", Version: 1,
		Config: truthConfig{Users: c.Users, Items: c.Items, Authors: c.Authors, Topics: c.Topics, Dim: c.Dim,
			FeatureDim: c.FeatureDim, Days: c.Days, Events: c.Events, Start: c.Start, Seed: c.Seed,
			FollowsPerUser: c.FollowsPerUser, RiskyAuthors: c.RiskyAuthors, FeatureNoise: c.FeatureNoise, Mix: c.Mix,
			TopicCandidates: c.TopicCandidates, RankerNoise: c.RankerNoise, IDOnly: c.IDOnly},
		TopicWeights:   w.topicWeights(),
		TopicCenters:   rows(w.topicCenter, c.Dim),
		ItemProjection: rows(wi, c.Dim+1),
		UserProjection: rows(wu, c.Dim+1),
		Model:          c.Model,
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode truth: %w", err)
	}
	return writeFile(path, func(bw *bufio.Writer) error {
		_, err := bw.Write(append(b, '\n'))
		return err
	})
}

func (w *World) writeTruthRows(path string, n int, row func([]byte, int) []byte) error {
	return writeFile(path, func(bw *bufio.Writer) error {
		var b []byte
		for j := range n {
			b = row(b[:0], j)
			if _, err := bw.Write(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func appendFloats(b []byte, fs []float32) []byte {
	b = append(b, '[')
	for j, f := range fs {
		if j > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(f), 'g', -1, 32)
	}
	return append(b, ']')
}

func (w *World) appendTruthItem(b []byte, i int) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, ItemID(i)...)
	b = append(b, `","topic":`...)
	b = strconv.AppendInt(b, int64(w.itemTopic[i]), 10)
	b = append(b, `,"quality":`...)
	b = strconv.AppendFloat(b, float64(w.itemQuality[i]), 'g', -1, 32)
	b = append(b, `,"latent":`...)
	b = appendFloats(b, w.ItemLatent(i))
	return append(b, "}\n"...)
}

func (w *World) appendTruthUser(b []byte, u int) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, UserID(u)...)
	b = append(b, `","topic":`...)
	b = strconv.AppendInt(b, int64(w.userTopic[u]), 10)
	b = append(b, `,"bias":`...)
	b = strconv.AppendFloat(b, float64(w.userBias[u]), 'g', -1, 32)
	b = append(b, `,"latent":`...)
	b = appendFloats(b, w.UserLatent(u))
	return append(b, "}\n"...)
}

func (w *World) appendTruthAuthor(b []byte, a int) []byte {
	b = append(b, `{"id":"`...)
	b = append(b, AuthorID(a)...)
	b = append(b, `","topic":`...)
	b = strconv.AppendInt(b, int64(w.authorTopic[a]), 10)
	b = append(b, `,"popularity":`...)
	b = strconv.AppendFloat(b, w.authorPop[a], 'g', -1, 64)
	b = append(b, `,"risky":`...)
	b = strconv.AppendBool(b, w.authorRisky[a])
	return append(b, "}\n"...)
}

// writeFile writes path (gzip when it ends in ".gz") with fill.
func writeFile(path string, fill func(*bufio.Writer) error) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", path, err)
	}
	defer func() { err = closeWith(err, f.Close) }()
	out := newCompressor(f, path)
	bw := bufio.NewWriterSize(out, 1<<16)
	if err := fill(bw); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return out.Close()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func newCompressor(w io.Writer, path string) io.WriteCloser {
	if strings.HasSuffix(path, ".gz") {
		return gzip.NewWriter(w)
	}
	return nopWriteCloser{w}
}
