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

// Package testworld prepares, for the runtime's tests, a small synthetic
// world on disk with the funnel's models trained on it by rectrain.
package testworld

import (
	"os"
	"path/filepath"

	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// World is a world and its models on disk.
type World struct {
	// Dir holds both; the caller removes it.
	Dir string
	// Data is the world's directory (catalog, users, follows, events).
	Data string
	// Models holds two-tower/, first-stage/ and mtml/.
	Models string
	// Truth is the generated world, whose planted model answers what a
	// user would do with an item (its truth files are not written).
	Truth *synth.World
}

// Build writes the world cfg describes into a new temporary directory and
// trains the models for one epoch.
func Build(cfg synth.Config) (*World, error) {
	dir, err := os.MkdirTemp("", "recpipeline-world-")
	if err != nil {
		return nil, err
	}
	w := &World{Dir: dir, Data: filepath.Join(dir, "world"), Models: filepath.Join(dir, "models"), Truth: synth.Generate(cfg)}
	if err := w.Truth.WriteDirWith(w.Data, synth.WriteOptions{SkipTruth: true}); err != nil {
		return nil, err
	}
	d, err := rectrain.LoadDir(w.Data, rectrain.LoadOptions{})
	if err != nil {
		return nil, err
	}
	res, err := rectrain.Train(d, rectrain.Options{Epochs: 1, Seed: 1, EvalUsers: 20})
	if err != nil {
		return nil, err
	}
	if err := res.Save(w.Models, "test"); err != nil {
		return nil, err
	}
	return w, nil
}

// Model is the file URI of one of the trained models.
func (w *World) Model(name string) string { return "file://" + filepath.Join(w.Models, name) }
