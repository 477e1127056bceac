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

package softlimit

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// TestSetFromFlag checks that a quantity becomes the runtime's soft limit
// exactly, and that a bad one is refused naming it and changes nothing.
func TestSetFromFlag(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set, and wins over the flag")
	}
	old := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })

	got, err := Set("1400Mi")
	if err != nil {
		t.Fatal(err)
	}
	const want = 1400 << 20
	if got != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("Set(1400Mi) = %d, runtime limit %d; want %d", got, debug.SetMemoryLimit(-1), want)
	}
	for _, bad := range []string{"lots", "-1Gi", "0"} {
		if _, err := Set(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Set(%q) = %v, want an error naming it", bad, err)
		}
		if l := debug.SetMemoryLimit(-1); l != want {
			t.Errorf("Set(%q) changed the limit to %d", bad, l)
		}
	}
}
