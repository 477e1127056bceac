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
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/quality"
	"github.com/recpipeline/recpipeline/runtime/internal/quality/qualitytest"
)

// The evaluation itself is tested in package quality; these tests cover
// the command: its flags, its table, its JSON and its gate.

// runEvalCmd runs recbench eval with args and returns stdout and the JSON
// report.
func runEvalCmd(t *testing.T, args ...string) (string, quality.Report, error) {
	t.Helper()
	jsonFile := filepath.Join(t.TempDir(), "eval.json")
	var stdout, stderr strings.Builder
	err := run(context.Background(), append([]string{"eval", "-json", jsonFile}, args...), &stdout, &stderr)
	var rep quality.Report
	if err == nil || strings.Contains(err.Error(), "min-ndcg-ratio") {
		doc, rerr := os.ReadFile(jsonFile)
		if rerr != nil {
			t.Fatalf("no JSON report: %v (error %v)\n%s", rerr, err, stderr.String())
		}
		if jerr := json.Unmarshal(doc, &rep); jerr != nil {
			t.Fatalf("bad JSON report: %v\n%s", jerr, doc)
		}
	}
	return stdout.String(), rep, err
}

func TestEvalPrintsTheTableAndWritesTheJSON(t *testing.T) {
	w := qualitytest.NewWorld(t)
	srv := qualitytest.NewServer(t, qualitytest.Config{Answer: w.PopularAnswer})
	stdout, rep, err := runEvalCmd(t, "-url", srv.URL+"/", "-data", w.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Source != w.Dir || rep.K != 100 || rep.TestFrac != 0.1 || rep.Users != rep.TestUsers || rep.Replayed == nil || rep.Popularity.NDCG10 == 0 {
		t.Errorf("JSON report %+v: want the world, k 100, test-frac 0.1, every test user, the replay counted and figures", rep)
	}
	asked, posted := len(srv.Asked()), len(srv.Events())
	if asked != rep.Users || rep.Replayed != nil && posted != rep.Replayed.Follows+rep.Replayed.Events {
		t.Errorf("server asked for %d users and posted %d events; the report says %d and %+v", asked, posted, rep.Users, rep.Replayed)
	}
	for _, want := range []string{
		fmt.Sprintf("eval: %s, %d test users, test window from ", w.Dir, rep.TestUsers),
		"(the last 10% of the log's time span), k=100, 200 catalog items\n",
		"metric                recserve  popularity      random\n",
		fmt.Sprintf("NDCG@10            %11.4f %11.4f %11.4f\n", rep.Recserve.NDCG10, rep.Popularity.NDCG10, rep.Random.NDCG10),
		"recall@10", "recall@100", "precision@10", "coverage@10",
		"mean list length         100.0       100.0       100.0\n",
		"NDCG@10 recserve/popularity: 1.000\n",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the table has no %q:\n%s", want, stdout)
		}
	}
}

func TestEvalGate(t *testing.T) {
	w := qualitytest.NewWorld(t)
	short := func(string, int, []qualitytest.Event) qualitytest.Reply { return qualitytest.IDs(w.Items[195:]...) }
	for name, tc := range map[string]struct {
		answer  func(string, int, []qualitytest.Event) qualitytest.Reply
		args    []string
		wantErr string
	}{
		"no gate":                            {answer: short},
		"the gate at 0 is off":               {answer: short, args: []string{"-min-ndcg-ratio", "0"}},
		"the gate at 0.5 catches":            {answer: short, args: []string{"-min-ndcg-ratio", "0.5"}, wantErr: "below -min-ndcg-ratio 0.5"},
		"the gate at 1 lets popularity pass": {answer: w.PopularAnswer, args: []string{"-min-ndcg-ratio", "1"}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := qualitytest.NewServer(t, qualitytest.Config{Answer: tc.answer})
			stdout, rep, err := runEvalCmd(t, append([]string{"-url", srv.URL, "-data", w.Dir}, tc.args...)...)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			// The table and the JSON are written whether the gate
			// passes or not.
			if rep.TestUsers == 0 || !strings.Contains(stdout, "NDCG@10 recserve/popularity") {
				t.Errorf("no report: %+v\n%s", rep, stdout)
			}
		})
	}
}

func TestEvalRefusesBadFlagsByName(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no log":           {nil, "give exactly one of -data and -movielens"},
		"two logs":         {[]string{"-data", "d", "-movielens", "m"}, "give exactly one of -data and -movielens"},
		"test-frac":        {[]string{"-data", "d", "-test-frac", "1"}, "-test-frac 1 must be in (0, 1)"},
		"k":                {[]string{"-data", "d", "-k", "-1"}, "-k -1 must be positive"},
		"users":            {[]string{"-data", "d", "-users", "-2"}, "-users -2 must not be negative"},
		"concurrency":      {[]string{"-data", "d", "-concurrency", "300"}, "-concurrency 300 must be between 1 and 256"},
		"batch":            {[]string{"-data", "d", "-batch", "20000"}, "-batch 20000 must be between 1 and 10000"},
		"url":              {[]string{"-data", "d", "-url", "127.0.0.1:8080"}, "-url"},
		"min-ndcg-ratio":   {[]string{"-data", "d", "-min-ndcg-ratio", "-1"}, "-min-ndcg-ratio -1 must not be negative"},
		"a stray argument": {[]string{"-data", "d", "extra"}, `unexpected arguments ["extra"]`},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			err := run(context.Background(), append([]string{"eval"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}
