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
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
)

// TestSampleReadsItsDemoData checks that every pvc:// URI of the sample
// pipeline names the claim config/samples/demo-data.yaml makes and a path
// its Job writes (the sample could not become Ready when it named data
// nothing provided).
func TestSampleReadsItsDemoData(t *testing.T) {
	var rp servingv1alpha1.RecPipeline
	readYAML(t, "config/samples/serving_v1alpha1_recpipeline.yaml", &rp)
	uris := []string{rp.Spec.Data.Catalog.URI}
	for _, m := range rp.Spec.Models {
		uris = append(uris, m.URI)
	}
	data := readFile(t, "config/samples/demo-data.yaml")
	for _, uri := range uris {
		rest, ok := strings.CutPrefix(uri, "pvc://explore-data/")
		if !ok {
			t.Errorf("the sample reads %s, not from the claim explore-data that demo-data.yaml fills", uri)
			continue
		}
		// recgen -out /data/world; rectrain -out /data/models writes
		// models/<name>.
		top, _, _ := strings.Cut(rest, "/")
		if !strings.Contains(data, "/data/"+top+",") && !strings.Contains(data, "/data/"+top+"]") {
			t.Errorf("the sample reads %s, which the demo Job does not write", uri)
		}
	}
	if !strings.Contains(data, "name: explore-data\n") || !strings.Contains(data, "claimName: explore-data\n") {
		t.Error("demo-data.yaml does not make and mount the claim explore-data")
	}
}

// TestGitOpsExamplesPointIntoTheRepository checks the Argo CD and Flux
// examples of config/samples/gitops: each document parses, and every path
// they sync exists in this repository (a chart or a kustomization).
func TestGitOpsExamplesPointIntoTheRepository(t *testing.T) {
	files, err := filepath.Glob("config/samples/gitops/*/*.yaml")
	if err != nil || len(files) < 4 {
		t.Fatalf("gitops examples: %v %v", files, err)
	}
	kinds := map[string]int{}
	for _, f := range files {
		for _, doc := range bytes.Split([]byte(readFile(t, f)), []byte("\n---\n")) {
			var obj struct {
				Kind string `json:"kind"`
				Spec struct {
					Source struct{ Path string } `json:"source"`
					Path   string                `json:"path"`
					Chart  struct {
						Spec struct{ Chart string } `json:"spec"`
					} `json:"chart"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kinds[obj.Kind]++
			for _, p := range []string{obj.Spec.Source.Path, obj.Spec.Path, obj.Spec.Chart.Spec.Chart} {
				if p == "" {
					continue
				}
				p = strings.TrimPrefix(p, "./")
				_, chartErr := os.Stat(filepath.Join(p, "Chart.yaml"))
				_, kustErr := os.Stat(filepath.Join(p, "kustomization.yaml"))
				if chartErr != nil && kustErr != nil {
					t.Errorf("%s (%s) syncs %s: no chart or kustomization there", f, obj.Kind, p)
				}
			}
		}
	}
	for _, kind := range []string{"Application", "GitRepository", "HelmRelease", "Kustomization"} {
		if kinds[kind] == 0 {
			t.Errorf("no %s among the gitops examples (%v)", kind, kinds)
		}
	}
}
