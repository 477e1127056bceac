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
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/model"
)

func artifactChecksums(t *testing.T, r *Result) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if err := r.Save(dir, "test"); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, name := range stages {
		a, err := model.LoadDir(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = a.Manifest.Checksum
	}
	return out
}

// TestResumeGivesTheSameModels trains two epochs per model straight, and
// again stopped and resumed twice: inside the two-tower stage, and inside
// the ranker's. The artifacts must be identical.
func TestResumeGivesTheSameModels(t *testing.T) {
	d, _ := tinyWorld(t)
	o := tinyOptions(5)
	o.Epochs = 2
	straight, err := Train(d, o)
	if err != nil {
		t.Fatal(err)
	}
	want := artifactChecksums(t, straight)

	o.Checkpoint = t.TempDir()
	for _, stop := range []int{1, 3} {
		o.StopAfter = stop
		if _, err := Train(d, o); !errors.Is(err, ErrStopped) {
			t.Fatalf("run stopping after %d epochs returned %v, want ErrStopped", stop, err)
		}
		o.Resume = true
	}
	o.StopAfter = 0
	resumed, err := Train(d, o)
	if err != nil {
		t.Fatal(err)
	}
	for name, sum := range artifactChecksums(t, resumed) {
		if sum != want[name] {
			t.Errorf("%s: resumed run's checksum %s, straight run's %s", name, sum, want[name])
		}
	}
	if resumed.Eval.Recall != straight.Eval.Recall || resumed.Loss["mtml"] != straight.Loss["mtml"] {
		t.Errorf("resumed run: recall %v, mtml loss %v; straight run: %v, %v",
			resumed.Eval.Recall, resumed.Loss["mtml"], straight.Eval.Recall, straight.Loss["mtml"])
	}

	// A resume with other options is refused before any training.
	other := o
	other.Seed = 6
	if _, err := Train(d, other); err == nil {
		t.Errorf("a resume with another seed was accepted")
	}
	// So is a damaged checkpoint.
	p := filepath.Join(o.Checkpoint, CheckpointFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Train(d, o); err == nil {
		t.Errorf("a truncated checkpoint was accepted")
	}
}
