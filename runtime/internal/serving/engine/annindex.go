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

package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
	"github.com/recpipeline/recpipeline/runtime/internal/model"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/ann"
)

// IndexFile is the file, in a model artifact's directory, that holds the
// HNSW index of the model's item embeddings over a catalog, as WriteIndexes
// (`recserve index`) writes it. Open loads it instead of building the index
// when it was built over the same embeddings with the same options.
const IndexFile = "ann.index"

// annModels names, in the order of first mention, the models that an ANN
// source of cfg or of its arms searches.
func annModels(cfg *config.Config) []string {
	var names []string
	for _, l := range cfg.Live.Lives() {
		for _, s := range l.Retrieval.Sources {
			if isANN(s) && !slices.Contains(names, s.Model) {
				names = append(names, s.Model)
			}
		}
	}
	return names
}

// modelDir returns the local directory of the model that cfg names name:
// false when its URI is an archive or remote.
func modelDir(cfg *config.Config, name string) (dir, uri string, ok bool) {
	for _, m := range cfg.Deploy.Models {
		if m.Name != name {
			continue
		}
		loc, err := fetch.Parse(m.URI)
		if err != nil || loc.URL != nil {
			return "", m.URI, false
		}
		fi, err := os.Stat(loc.Path)
		return loc.Path, m.URI, err == nil && fi.IsDir()
	}
	return "", "", false
}

// loadIndex returns the index saved in the directory of model name, with the
// items it lacks (those published live since it was written) added, or nil
// if there is none or it does not fit flat, the model's embeddings, which is
// logged: the caller then builds the index. It never fails the start.
func (e *Engine) loadIndex(ctx context.Context, cfg *config.Config, name string, dim int, flat []float32, opts ann.Options) *ann.Index {
	dir, _, ok := modelDir(cfg, name)
	if !ok {
		return nil
	}
	path := filepath.Join(dir, IndexFile)
	t0 := time.Now()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.log.Warn("Ignored the saved ANN index; building it", "model", name, "path", path, "reason", err)
		return nil
	}
	defer func() { _ = f.Close() }()
	idx, err := ann.Load(f, dim, ann.InnerProduct, opts, nil, flat)
	if err != nil {
		e.log.Warn("Ignored the saved ANN index; building it", "model", name, "path", path, "reason", err)
		return nil
	}
	saved, n := idx.Len(), len(flat)/dim
	if saved < n {
		ids := make([]uint32, n-saved)
		for i := range ids {
			ids[i] = uint32(saved + i)
		}
		if err := idx.Build(ctx, ids, flat[saved*dim:], runtime.GOMAXPROCS(0)); err != nil {
			e.log.Warn("Ignored the saved ANN index; building it", "model", name, "path", path, "reason", err)
			return nil
		}
	}
	e.log.Info("Loaded the ANN index", "model", name, "path", path, "items", idx.Len(), "added", n-saved, "seconds", time.Since(t0).Seconds())
	return idx
}

// WrittenIndex is an index file that WriteIndexes wrote.
type WrittenIndex struct {
	Model string
	Path  string
	Items int
	Bytes int64
}

// WriteIndexes loads cfg's catalog and models as Open does on the retrieval
// stage, builds the HNSW index of every model an ANN source of cfg or of its
// arms searches, and writes each to IndexFile in the model's directory,
// replacing any there atomically. Each such model must be a local
// directory. Open loads the file as long as the catalog, the model and
// opts.ANN stay the same. No store is opened (opts.Stage and StateDir are
// ignored): the index covers the catalog, and Open adds the items published
// live since.
func WriteIndexes(ctx context.Context, cfg *config.Config, opts Options) ([]WrittenIndex, error) {
	names := annModels(cfg)
	if len(names) == 0 {
		return nil, errors.New("no ANN source of the config searches a model: there is no index to write")
	}
	dirs := map[string]string{}
	for _, name := range names {
		dir, uri, ok := modelDir(cfg, name)
		if !ok {
			return nil, fmt.Errorf("model %s at %q is not a local directory: the index is written beside the model, so give the directory it is unpacked in as a path or file:// URI", name, fetch.Redact(uri))
		}
		dirs[name] = dir
	}
	opts.Stage, opts.StateDir, opts.buildOnly = config.StageRetrieval, "", true
	e, err := Open(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = e.Close() }()
	var out []WrittenIndex
	for _, name := range names {
		idx := e.indexes[name]
		if idx == nil {
			return out, fmt.Errorf("model %s is not a TwoTower model: an ANN source cannot search it", name)
		}
		path := filepath.Join(dirs[name], IndexFile)
		size, err := writeIndex(path, idx)
		if err != nil {
			return out, err
		}
		e.log.Info("Wrote the ANN index", "model", name, "path", path, "items", idx.Len(), "bytes", size)
		out = append(out, WrittenIndex{Model: name, Path: path, Items: idx.Len(), Bytes: size})
	}
	return out, nil
}

// writeIndex saves idx to path atomically (model.WriteFileAtomic) and
// returns the file's size.
func writeIndex(path string, idx *ann.Index) (int64, error) {
	if err := model.WriteFileAtomic(filepath.Dir(path), filepath.Base(path), idx.Save); err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("failed to write the index file: %w", err)
	}
	return fi.Size(), nil
}
