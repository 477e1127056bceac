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

// gcPercent reads the collector's target percent without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestGCPercent checks that the flag's percent becomes the collector's,
// that a non-positive one is refused and changes nothing, and that GOGC,
// when set, wins.
func TestGCPercent(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set for the test process")
	}
	old := gcPercent()
	t.Cleanup(func() { debug.SetGCPercent(old) })

	if got, err := GCPercent(25); err != nil || got != 25 || gcPercent() != 25 {
		t.Errorf("GCPercent(25) = %d, %v; collector at %d; want 25", got, err, gcPercent())
	}
	if _, err := GCPercent(0); err == nil || !strings.Contains(err.Error(), "0") {
		t.Errorf("GCPercent(0) = %v, want an error naming it", err)
	}
	if p := gcPercent(); p != 25 {
		t.Errorf("GCPercent(0) changed the collector's percent to %d", p)
	}

	t.Setenv("GOGC", "80") // as if the process had started with it
	debug.SetGCPercent(80)
	if got, err := GCPercent(25); err != nil || got != 80 || gcPercent() != 80 {
		t.Errorf("with GOGC=80, GCPercent(25) = %d, %v; collector at %d; want 80 kept", got, err, gcPercent())
	}
}
