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

// Package softlimit sets the Go runtime's soft memory limit of a process
// from a flag or from its container's memory limit, and its collector's
// target percent (GOGC) from a flag.
package softlimit

import (
	"fmt"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Set sets the Go runtime's soft memory limit to flag (a Kubernetes
// quantity such as 4Gi), or when flag is empty to 90% of the cgroup's
// memory limit, and returns the limit in effect: math.MaxInt64 for none
// (no flag and no container limit). GOMEMLIMIT, when set, wins. Without a
// limit the collector lets the heap reach twice what is live, which a
// container's limit does not leave room for.
func Set(flag string) (int64, error) {
	opts := []memlimit.Option{memlimit.WithProvider(memlimit.FromCgroup)}
	if flag != "" {
		q, err := resource.ParseQuantity(flag)
		if err != nil || q.Sign() <= 0 {
			return 0, fmt.Errorf("memory limit %q: want a positive quantity such as 4Gi", flag)
		}
		opts = []memlimit.Option{memlimit.WithProvider(memlimit.Limit(uint64(q.Value()))), memlimit.WithRatio(1)}
	}
	limit, err := memlimit.Set(opts...)
	if err != nil {
		return 0, fmt.Errorf("failed to set the memory limit: %w", err)
	}
	return limit, nil
}

// GCPercent sets the collector's target percent (as GOGC does: the heap
// may grow this percent past what the last collection found live) to
// percent, unless GOGC is set, which wins, and returns the percent in
// effect. A process whose live heap is mostly large slabs without pointers
// (catalog features, embeddings, an ANN index), which a collection marks
// without scanning, can collect far more often than the default 100 for
// little CPU and keep its memory near what is live.
func GCPercent(percent int) (int, error) {
	if s := os.Getenv("GOGC"); s != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old, nil
	}
	if percent < 1 {
		return 0, fmt.Errorf("GC percent %d: want a positive percent", percent)
	}
	debug.SetGCPercent(percent)
	return percent, nil
}
