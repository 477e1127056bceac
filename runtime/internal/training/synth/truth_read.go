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

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// HasTruth reports whether dir holds the truth files WriteDir writes
// (plain or gzip-compressed).
func HasTruth(dir string) bool {
	_, err := truthPath(dir, TruthFile)
	return err == nil
}

// truthPath returns the path of name in dir, or of name.gz when only that
// exists.
func truthPath(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if _, err := os.Stat(p + ".gz"); err == nil {
		return p + ".gz", nil
	}
	return "", fmt.Errorf("failed to find %s in %s: %w", name, dir, os.ErrNotExist)
}

// ReadTruth reads back the planted truth of a world that WriteDir wrote to
// dir: truth.json (sizes and engagement model), truth_users.jsonl (latent
// vectors and biases), truth_items.jsonl (latent vectors and qualities) and
// the catalog (each item's author, creation time and integrity risk).
//
// The World it returns answers the truth queries exactly as the generated
// one does: Affinity, TrueProbabilities, TrueValue, Oracle and the user and
// item accessors (latent, bias, quality, topic, risk, author, created). It
// holds no log, follow graph, features or sampling tables: Interactions,
// InitialFollows and the feature accessors are empty.
func ReadTruth(dir string) (*World, error) {
	t, err := readTruthFile(dir)
	if err != nil {
		return nil, err
	}
	w := newTruthWorld(t)
	c := t.Config
	if err := readTruthRows(dir, TruthUsersFile, 'u', c.Users, c.Dim, func(k int, r *truthRow) {
		w.userTopic[k], w.userBias[k] = r.Topic, r.Bias
		copy(w.userLatent[k*c.Dim:], r.Latent)
	}); err != nil {
		return nil, err
	}
	if err := readTruthRows(dir, TruthItemsFile, 'i', c.Items, c.Dim, func(k int, r *truthRow) {
		w.itemTopic[k], w.itemQuality[k] = r.Topic, r.Quality
		copy(w.itemLatent[k*c.Dim:], r.Latent)
	}); err != nil {
		return nil, err
	}
	if err := w.readTruthCatalog(dir); err != nil {
		return nil, err
	}
	return w, nil
}

// readTruthFile reads and checks truth.json.
func readTruthFile(dir string) (*truth, error) {
	p, err := truthPath(dir, TruthFile)
	if err != nil {
		return nil, err
	}
	var t truth
	if err := readWhole(p, func(r io.Reader) error { return json.NewDecoder(r).Decode(&t) }); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", p, err)
	}
	if t.Format != "recpipeline.synth-truth" || t.Version != 1 {
		return nil, fmt.Errorf("%s is format %q version %d, want recpipeline.synth-truth version 1", p, t.Format, t.Version)
	}
	c := t.Config
	if c.Users < 0 || c.Items < 0 || c.Dim < 1 || c.Users > 1<<30 || c.Items > 1<<30 {
		return nil, fmt.Errorf("%s: bad sizes: %d users, %d items, dim %d", p, c.Users, c.Items, c.Dim)
	}
	return &t, nil
}

// newTruthWorld returns a World of t's config and model with its user and
// item tables allocated and zero.
func newTruthWorld(t *truth) *World {
	c := t.Config
	w := &World{cfg: Config{Users: c.Users, Items: c.Items, Authors: c.Authors, Topics: c.Topics, Dim: c.Dim,
		FeatureDim: c.FeatureDim, Days: c.Days, Events: c.Events, Start: c.Start, Seed: c.Seed,
		FollowsPerUser: c.FollowsPerUser, RiskyAuthors: c.RiskyAuthors, FeatureNoise: c.FeatureNoise,
		Mix: c.Mix, TopicCandidates: c.TopicCandidates, RankerNoise: c.RankerNoise, IDOnly: c.IDOnly, Model: t.Model, Workers: 1}}
	w.userTopic = make([]int32, c.Users)
	w.userBias = make([]float32, c.Users)
	w.userLatent = make([]float32, c.Users*c.Dim)
	w.itemTopic = make([]int32, c.Items)
	w.itemQuality = make([]float32, c.Items)
	w.itemLatent = make([]float32, c.Items*c.Dim)
	w.itemRisk = make([]float64, c.Items)
	w.itemAuthor = make([]int32, c.Items)
	w.itemCreated = make([]int64, c.Items)
	return w
}

// truthRow is a line of truth_users.jsonl or truth_items.jsonl.
type truthRow struct {
	ID      string    `json:"id"`
	Topic   int32     `json:"topic"`
	Bias    float32   `json:"bias"`
	Quality float32   `json:"quality"`
	Latent  []float32 `json:"latent"`
}

// readTruthRows reads the n rows of the truth file name, whose IDs are
// prefix0..prefix(n-1) and whose latent vectors have dim values, handing
// each to set with its index.
func readTruthRows(dir, name string, prefix byte, n, dim int, set func(k int, r *truthRow)) error {
	p, err := truthPath(dir, name)
	if err != nil {
		return err
	}
	seen := 0
	err = readWhole(p, func(rd io.Reader) error {
		sc := bufio.NewScanner(rd)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for line := 1; sc.Scan(); line++ {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var r truthRow
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				return fmt.Errorf("line %d: %w", line, err)
			}
			k, ok := ParseID(prefix, r.ID)
			if !ok || k >= n {
				return fmt.Errorf("line %d: id %q is not %c0..%c%d", line, r.ID, prefix, prefix, n-1)
			}
			if len(r.Latent) != dim {
				return fmt.Errorf("line %d: %d latent values, want %d", line, len(r.Latent), dim)
			}
			set(k, &r)
			seen++
		}
		return sc.Err()
	})
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", p, err)
	}
	if seen != n {
		return fmt.Errorf("%s has %d rows, want %d", p, seen, n)
	}
	return nil
}

// readTruthCatalog sets each item's integrity risk, author and creation
// time from the catalog in dir.
func (w *World) readTruthCatalog(dir string) error {
	cp, err := truthPath(dir, CatalogFile)
	if err != nil {
		return err
	}
	cat, err := dataset.OpenCatalog(cp, dataset.ReadOptions{Strict: true})
	if err != nil {
		return err
	}
	defer cat.Close()
	for it, err := range cat.All() {
		if err != nil {
			return fmt.Errorf("failed to read the catalog: %w", err)
		}
		i, ok := ParseID('i', it.ID)
		a, aok := ParseID('a', it.Author)
		if !ok || i >= w.cfg.Items || !aok {
			return fmt.Errorf("catalog item %q (author %q) is not one of the world's", it.ID, it.Author)
		}
		w.itemRisk[i], w.itemAuthor[i], w.itemCreated[i] = it.IntegrityRisk, int32(a), it.Created.Unix()
	}
	return nil
}

// readWhole opens path (gunzipping a ".gz" file) and hands it to fn.
func readWhole(path string, fn func(io.Reader) error) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	var r io.Reader = bufio.NewReaderSize(f, 1<<20)
	if filepath.Ext(path) == ".gz" {
		z, err := gzip.NewReader(r)
		if err != nil {
			return err
		}
		defer z.Close()
		r = z
	}
	return fn(r)
}
