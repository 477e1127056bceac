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
	"strings"
	"testing"
)

// TestDefaultToolsImageIsTheRelease checks that the training jobs' default
// rectrain image is the recpipeline-tools image of this release, as the
// sample's data Job runs it, and that config/manager (so dist/install.yaml)
// passes that image, as it does the runtime image.
func TestDefaultToolsImageIsTheRelease(t *testing.T) {
	if want := "ghcr.io/recpipeline/recpipeline-tools:" + version; defaultToolsImage() != want {
		t.Errorf("defaultToolsImage() = %q, want %q", defaultToolsImage(), want)
	}
	if !strings.Contains(readFile(t, "config/samples/demo-data.yaml"), "image: "+defaultToolsImage()+"\n") {
		t.Errorf("config/samples/demo-data.yaml does not run %s", defaultToolsImage())
	}
	manager := readFile(t, "config/manager/manager.yaml")
	if want := "--default-tools-image=" + defaultToolsImage(); !strings.Contains(manager, want+"\n") {
		t.Errorf("config/manager/manager.yaml does not pass %s", want)
	}
}
