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

package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// writeLists writes a precomputed lists file giving user the catalog items
// at ordinals [from, from+n).
func writeLists(t *testing.T, e *Engine, path, user string, from, n int) []string {
	t.Helper()
	items := make([]string, n)
	for i := range items {
		items[i] = e.cat.ID(uint32(from + i))
	}
	b, err := json.Marshal(map[string]any{"user": user, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return items
}

// fromLists returns the ids of the response's items the lists source
// proposed, and fails if any is not in want.
func fromLists(t *testing.T, r *Response, want []string) []string {
	t.Helper()
	var got []string
	for _, it := range r.Items {
		if slices.Contains(it.Sources, "lists") {
			if !slices.Contains(want, it.ID) {
				t.Errorf("item %s is attributed to the lists but is not in them", it.ID)
			}
			got = append(got, it.ID)
		}
	}
	return got
}

// TestPrecomputedListsAreServedAndReloaded runs a funnel whose only source
// is a precomputed lists file, for a user with no history (so that nothing
// is filtered as seen and no backfill is needed): every item served comes
// from the lists; a new version of the file is served after the next check,
// a corrupt one is not, and a config naming lists that do not load is
// refused.
func TestPrecomputedListsAreServedAndReloaded(t *testing.T) {
	cfg := testConfig(world(t))
	e, err := Open(context.Background(), cfg, Options{StateDir: t.TempDir(), PrecomputedRefresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	path := filepath.Join(t.TempDir(), "lists.jsonl")
	const user = "newcomer"
	first := writeLists(t, e, path, user, 100, 40)
	lists := *cfg
	lists.Live.Retrieval = config.Retrieval{Candidates: 40, Sources: []config.Source{{
		Name: "lists", Type: config.SourcePrecomputed, URI: "file://" + path, Weight: 1, Limit: 40, Timeout: config.Duration(time.Second),
	}}}
	lists.Live.FirstStage.Keep, lists.Live.SecondStage.Keep, lists.Live.Rerank.Size = 30, 25, 20
	lists.Live.SecondStage.RetrievalModel = "two-tower"
	if err := e.Apply(&lists, "r1"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	now := time.Now()
	check := func(when string, want []string) {
		t.Helper()
		r := recommend(t, e, user, 20, now)
		if got := fromLists(t, r, want); len(got) == 0 || len(got) != len(r.Items) {
			t.Errorf("%s: %d of %d items come from the lists, want all and at least one", when, len(got), len(r.Items))
		}
	}
	check("first load", first)

	second := writeLists(t, e, path, user, 300, 30)
	e.precomputed.refresh(context.Background())
	check("after a new version", second)

	if err := os.WriteFile(path, []byte("{\"user\": \"newcomer\", \"items\": [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.precomputed.refresh(context.Background())
	check("after a corrupt version", second)

	missing := lists
	missing.Live.Retrieval.Sources = slices.Clone(lists.Live.Retrieval.Sources)
	missing.Live.Retrieval.Sources[0].URI = "file://" + filepath.Join(t.TempDir(), "none.jsonl")
	err = e.Apply(&missing, "r2")
	if err == nil || !strings.Contains(err.Error(), "(lists)") {
		t.Fatalf("Apply of lists that do not exist: %v, want a refusal naming the source", err)
	}
	if got := recommend(t, e, user, 20, now); got.Revision != "r1" {
		t.Errorf("serving revision %s after a refused config, want r1", got.Revision)
	}
}
