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
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestReleaseNamesOneVersion checks that every place that names the release's
// images agrees with the manager's version: the chart's appVersion (the tag
// helm install uses), make's VERSION (the tag make images gives), the
// manager image and default runtime image of config/manager (so
// dist/install.yaml) and the image of the sample's data Job. A user who
// builds and imports the images and installs with the defaults then never
// pulls a tag that was not built.
func TestReleaseNamesOneVersion(t *testing.T) {
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	readYAML(t, "charts/recpipeline-operator/Chart.yaml", &chart)
	if chart.AppVersion != version {
		t.Errorf("Chart.yaml appVersion %q, manager version %q", chart.AppVersion, version)
	}

	if _, err := exec.LookPath("make"); err == nil {
		cmd := exec.Command("make", "--no-print-directory", "-s", "version")
		// The Makefile's default, not the caller's.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "VERSION=") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("make version: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != version {
			t.Errorf("make version prints %q, manager version %q", got, version)
		}
	}

	var kustomization struct {
		Images []struct {
			Name, NewName, NewTag string
		} `json:"images"`
	}
	readYAML(t, "config/manager/kustomization.yaml", &kustomization)
	if len(kustomization.Images) != 1 || kustomization.Images[0].NewTag != version {
		t.Errorf("config/manager/kustomization.yaml images %+v, want the tag %q", kustomization.Images, version)
	}

	manager := readFile(t, "config/manager/manager.yaml")
	want := "--default-runtime-image=" + defaultRuntimeImage()
	if !strings.Contains(manager, want+"\n") {
		t.Errorf("config/manager/manager.yaml does not pass %s", want)
	}

	tools := regexp.MustCompile(`image: (\S+)`).FindAllStringSubmatch(readFile(t, "config/samples/demo-data.yaml"), -1)
	if len(tools) == 0 {
		t.Fatal("config/samples/demo-data.yaml names no image")
	}
	for _, m := range tools {
		if m[1] != "ghcr.io/recpipeline/recpipeline-tools:"+version {
			t.Errorf("config/samples/demo-data.yaml runs %s, want recpipeline-tools:%s", m[1], version)
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
