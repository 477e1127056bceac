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

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
)

// runIndexCmd runs `recserve index` on cfgPath and returns its output.
func runIndexCmd(t *testing.T, cfgPath string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "index", "--config", cfgPath)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// `recserve index` writes the index beside the model, and recserve then
// starts on it without building the index.
func TestIndexCommandThenStart(t *testing.T) {
	f := world(t)
	dir := t.TempDir()
	local := *f
	local.models = filepath.Join(dir, "models")
	if err := os.CopyFS(local.models, os.DirFS(f.models)); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, pipelineConfig(t, &local, defaultWeights()))

	out, err := runIndexCmd(t, cfgPath)
	if err != nil {
		t.Fatalf("recserve index failed: %v\n%s", err, out)
	}
	path := filepath.Join(local.models, "two-tower", engine.IndexFile)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("recserve index wrote no %s: %v\n%s", path, err, out)
	}
	if !strings.Contains(out, "Wrote "+path+": the index of two-tower, 2000 items") {
		t.Errorf("recserve index does not say what it wrote:\n%s", out)
	}

	p := start(t, cfgPath, filepath.Join(dir, "state"))
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"Loaded the ANN index"`) || strings.Contains(logs, "Built the ANN index") {
		t.Errorf("recserve did not start on the saved index; log:\n%s", logs)
	}
	checkFunnel(t, p.url)
}

func TestIndexCommandRefusesARemoteModel(t *testing.T) {
	dir := t.TempDir()
	c, err := config.Parse(pipelineConfig(t, world(t), defaultWeights()))
	if err != nil {
		t.Fatal(err)
	}
	c.Deploy.Models[0].URI = "https://models.example/two-tower.tar.gz"
	if c.DeployRevision, err = config.DeployRevisionOf(&c.Deploy); err != nil {
		t.Fatal(err)
	}
	b, err := config.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.json")
	writeConfig(t, cfgPath, b)
	out, err := runIndexCmd(t, cfgPath)
	if err == nil {
		t.Fatalf("recserve index succeeded on a remote model:\n%s", out)
	}
	if !strings.Contains(out, `recserve: model two-tower at "https://models.example/two-tower.tar.gz" is not a local directory`) {
		t.Errorf("recserve index does not say the model is not a local directory:\n%s", out)
	}
}
