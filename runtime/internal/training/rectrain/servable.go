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
	"os"
	"path/filepath"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
)

// ConfigFile is the recserve config that WriteServing writes beside the
// artifacts.
const ConfigFile = "config.json"

// WriteCatalog writes d's items as dir/catalog.jsonl, the catalog recserve
// loads, for a log that came without one (LoadMovieLens): each item with
// its features and risk (none and 0 there), its creation time (its first
// appearance in the log) and its own ID as its author, since such a log
// names no authors.
func (d *Data) WriteCatalog(dir string) error {
	w, err := dataset.CreateCatalog(filepath.Join(dir, CatalogFile), d.ItemDim)
	if err != nil {
		return fmt.Errorf("failed to create the catalog: %w", err)
	}
	for i, id := range d.ItemIDs {
		it := dataset.Item{
			ID: id, Author: id, Created: time.Unix(d.ItemCreated[i], 0).UTC(),
			Features: d.Item(int32(i)), IntegrityRisk: float64(d.ItemRisk[i]),
		}
		if it.Features == nil {
			it.Features = []float32{}
		}
		if err := w.Write(it); err != nil {
			_ = w.Close()
			return fmt.Errorf("failed to write the catalog: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("failed to write the catalog: %w", err)
	}
	return nil
}

// ServingConfig returns a recserve config (--stage=all, Memory store) that
// serves the three artifacts under modelsDir with the catalog at
// catalogDir, both absolute paths: the funnel of hack/demo/config.json
// with the teacher's weights (those recserve accepts: every head's), the
// popular source's window the length of the held-out part of the log (at
// least a day), and the clock at the log's time (config.ClockEvent), so
// that a log from years ago is served as of its own last event.
func (d *Data) ServingConfig(catalogDir, modelsDir string, weights map[string]float64) (*config.Config, error) {
	window := max(24*time.Hour, time.Duration(d.End-d.Split)*time.Second).Round(time.Hour)
	src := func(name, typ string, weight float64, limit int) config.Source {
		return config.Source{Name: name, Type: typ, Weight: weight, Limit: limit, Timeout: config.Duration(50 * time.Millisecond)}
	}
	followed := src("followed-recent", config.SourceFollowedAuthorsRecent, 0.25, 400)
	followed.MaxAge = config.Duration(window)
	forYou := src("for-you", config.SourceTwoTowerANN, 0.45, 800)
	forYou.Model = "two-tower"
	moreLike := src("more-like-this", config.SourceItemToItemANN, 0.2, 400)
	moreLike.Model, moreLike.SeedItems = "two-tower", 20
	trending := src("trending", config.SourcePopular, 0.1, 200)
	trending.Window = config.Duration(window)
	model := func(name string) config.Model {
		return config.Model{Name: name, URI: "file://" + filepath.Join(modelsDir, name)}
	}
	c := &config.Config{
		Version:  config.SchemaVersion,
		Pipeline: "local/rectrain",
		Deploy: config.Deploy{
			Catalog: "file://" + catalogDir,
			Store:   config.Store{Type: "Memory"},
			Models:  []config.Model{model("two-tower"), model("first-stage"), model("mtml")},
		},
		Live: config.Live{
			Retrieval:   config.Retrieval{Candidates: 1500, Sources: []config.Source{followed, forYou, moreLike, trending}},
			FirstStage:  config.Ranker{Model: "first-stage", Keep: 300},
			SecondStage: config.Ranker{Model: "mtml", Keep: 200},
			Weights:     weights,
			Rerank: config.Rerank{Size: 100, Rules: []config.Rule{
				{Type: config.RuleAuthorDiversity, MinGap: 3},
				{Type: config.RuleIntegrityFilter, MaxRisk: 0.9},
				{Type: config.RuleIntegrityDownrank, Above: 0.5, Factor: 0.3},
			}},
			Clock: config.Clock{Type: config.ClockEvent},
		},
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("failed to build the serving config: %w", err)
	}
	return c, nil
}

// WriteServing writes the serving config (ServingConfig) to dir/config.json,
// and the catalog to dir when the log came without one (catalogDir "").
func (res *Result) WriteServing(dir, catalogDir string) error {
	d := res.data
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("failed to resolve %s: %w", dir, err)
	}
	if catalogDir == "" {
		if err := d.WriteCatalog(abs); err != nil {
			return err
		}
		catalogDir = abs
	} else if catalogDir, err = filepath.Abs(catalogDir); err != nil {
		return fmt.Errorf("failed to resolve %s: %w", catalogDir, err)
	}
	weights := map[string]float64{}
	for h, name := range Heads {
		if w := res.weights[h]; w != 0 {
			weights[name] = w
		}
	}
	if res.retrievalW != 0 {
		weights[rank.RetrievalWeight] = res.retrievalW
	}
	c, err := d.ServingConfig(catalogDir, abs, weights)
	if err != nil {
		return err
	}
	b, err := config.Marshal(c)
	if err != nil {
		return fmt.Errorf("failed to encode the serving config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(abs, ConfigFile), b, 0o644); err != nil {
		return fmt.Errorf("failed to write the serving config: %w", err)
	}
	return nil
}
