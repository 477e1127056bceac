//go:build e2e

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

package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// simulation runs recbench simulate against the frontend, in rounds of
// 20 s, until stopped: the world's users request lists and post
// impressions and engagements drawn from the world's planted preferences.
type simulation struct {
	stop     atomic.Bool
	wg       sync.WaitGroup
	mu       sync.Mutex
	rounds   int
	requests int64
	failed   int64
	degraded int64
	errs     []string
}

func startSimulation(t *testing.T, recbench, url string) *simulation {
	sim := &simulation{}
	sim.wg.Add(1)
	go func() {
		defer sim.wg.Done()
		for round := 1; !sim.stop.Load(); round++ {
			// Each round draws other users and events.
			out, err := exec.Command(recbench, "simulate", "-world", filepath.Join(dataDir, "world"), "-url", url,
				"-users", "1000", "-rate", "40", "-duration", "20s", "-time", "log", "-json", "-max-failed", "0",
				"-seed", fmt.Sprint(round), "-token", eventsToken).Output()
			var summary struct {
				Requests int64 `json:"requests"`
				Failed   int64 `json:"failed"`
				Total    struct {
					Degraded int64 `json:"degraded"`
				} `json:"total"`
			}
			_ = json.Unmarshal(out, &summary)
			sim.mu.Lock()
			sim.rounds++
			sim.requests += summary.Requests
			sim.failed += summary.Failed
			sim.degraded += summary.Total.Degraded
			if err != nil {
				msg := err.Error()
				if ee, ok := err.(*exec.ExitError); ok {
					msg += ": " + string(ee.Stderr)
				}
				sim.errs = append(sim.errs, msg)
			}
			sim.mu.Unlock()
		}
	}()
	return sim
}

func (s *simulation) finish(t *testing.T) {
	t.Helper()
	s.stop.Store(true)
	s.wg.Wait()
	t.Logf("simulated users: %d requests in %d rounds, %d failed, %d degraded (a source or a ranker stage failed or was late)", s.requests, s.rounds, s.failed, s.degraded)
	if s.failed != 0 || len(s.errs) > 0 || s.requests == 0 {
		t.Errorf("the simulation failed %d of %d requests: %s", s.failed, s.requests, strings.Join(s.errs, "; "))
	}
}

// jsonpath reads one field of an object in the pipeline's namespace.
func jsonpath(t *testing.T, kind, name, path string) string {
	t.Helper()
	return strings.TrimSpace(run(t, kubectl, "-n", "recs", "get", kind, name, "-o", "jsonpath={"+path+"}"))
}

// servedWeight is an event's weight in the control arm of a config
// ConfigMap, and how many arms the config serves.
func servedWeight(t *testing.T, configMap, event string) (float64, int) {
	t.Helper()
	var c struct {
		Live struct {
			Weights     map[string]float64 `json:"weights"`
			Experiments []json.RawMessage  `json:"experiments"`
		} `json:"live"`
	}
	if err := json.Unmarshal([]byte(jsonpath(t, "configmap", configMap, `.data.config\.json`)), &c); err != nil {
		t.Fatalf("ConfigMap %s: %v", configMap, err)
	}
	return c.Live.Weights[event], len(c.Live.Experiments)
}

// canary drives spec.rollout on the cluster while simulated users use the
// pipeline: a bad change (weights that rank what users dislike first) is
// rolled back on its own, the stable
// config serves everyone again and the spec is left as written; a harmless
// change is stepped and promoted; no simulated request fails.
//
// The harmless change, not a repair, is the one promoted: the simulated
// users never see an item twice (the seen filter) in a 2,000-item world, so
// an arm that shows them what they like uses it up within minutes, and a
// repair's lead shrinks as the simulation runs.
func canary(t *testing.T, url, image string) {
	recbench := filepath.Join(t.TempDir(), "recbench")
	run(t, "go", "build", "-o", recbench, "../../runtime/cmd/recbench")
	// 250 to 500 of the world's 1,000 users per arm. The test's variance
	// is over users: with the 200-user world of earlier runs (50 to 100
	// per arm) the arms' users alone differed by up to 50% for the same
	// ranking, and like -50 (-53%) went unproven for 83,000 impressions;
	// with 1,000 they still differed by 10% in one run, so a canary may
	// trail by 20% before it is held. like -50 alone cost 37% to 70% of
	// the objective from run to run (the tiny world's users use up what
	// they like), close enough to that margin to be promoted once; the bad
	// change also ranks see-less'd items up and comments down, which
	// costs all of it in every run.
	rollout := `  rollout:
    steps: [{traffic: 0.25}, {traffic: 0.5}]
    analysis:
      minImpressions: 2000
      maxObjectiveDrop: 0.2
      guardrails: [{event: see_less, maxIncrease: 0.5}]
`
	good := `{click: 1.0, like: 2.0, comment: 4.0, see_less: -8.0}`
	bad := `{click: 1.0, like: -50.0, comment: -20.0, see_less: 20.0}`
	// A weight of 0 on a head: a new live revision that ranks exactly as
	// the stable one.
	harmless := `{click: 1.0, like: 2.0, comment: 4.0, share: 0.0, see_less: -8.0}`

	// The earlier phases left like -50: repaired at once, without a rollout.
	applyYAML(t, pipeline(good, "models/mtml", image))
	eventually(t, time.Minute, "the repaired weights serve and are stable", func() error {
		if like, _ := servedWeight(t, "explore-config-stable", "like"); like != 2 {
			return fmt.Errorf("the stable config has like %v", like)
		}
		return getRP(t).allServe()
	})
	sim := startSimulation(t, recbench, url)
	defer sim.finish(t)

	applyYAML(t, pipeline(bad, "models/mtml", image)+rollout)
	took := eventually(t, 4*time.Minute, "the bad change rolled back", func() error {
		s := getRP(t)
		phase := jsonpath(t, "rp", "explore", ".status.rollout.phase")
		if st, reason, _ := s.condition("Degraded"); phase != "Aborted" || st != "True" || reason != "RolloutAborted" {
			return fmt.Errorf("rollout %s (%s), Degraded %s %s", phase, jsonpath(t, "rp", "explore", ".status.rollout.decision"), st, reason)
		}
		return nil
	})
	t.Logf("bad change: apply → rolled back in %s: %s", took.Round(time.Second), jsonpath(t, "rp", "explore", ".status.rollout.decision"))
	if like, arms := servedWeight(t, "explore-config", "like"); like != 2 || arms != 0 {
		t.Errorf("after the abort the served config has like %v and %d arms, want the stable 2 for everyone", like, arms)
	}
	if like := jsonpath(t, "rp", "explore", ".spec.ranking.weights.like"); like != "-50" {
		t.Errorf("the operator wrote the spec: like %s", like)
	}
	eventually(t, time.Minute, "every pod serves the stable config", func() error { return getRP(t).allServe() })

	applyYAML(t, pipeline(harmless, "models/mtml", image)+rollout)
	took = eventually(t, 4*time.Minute, "the harmless change promoted", func() error {
		if phase := jsonpath(t, "rp", "explore", ".status.rollout.phase"); phase != "Promoted" {
			return fmt.Errorf("rollout %s: %s", phase, jsonpath(t, "rp", "explore", ".status.rollout.decision"))
		}
		return nil
	})
	t.Logf("harmless change: apply → promoted in %s: %s", took.Round(time.Second), jsonpath(t, "rp", "explore", ".status.rollout.decision"))
	if like, arms := servedWeight(t, "explore-config-stable", "like"); like != 2 || arms != 0 {
		t.Errorf("after the promotion the stable config has like %v and %d arms, want 2 and none", like, arms)
	}
	if stable := jsonpath(t, "configmap", "explore-config-stable", `.data.config\.json`); !strings.Contains(stable, `"share": 0`) {
		t.Errorf("the promoted config is not the harmless change: %s", stable)
	}
	eventually(t, time.Minute, "not degraded once the spec moved on", func() error {
		if st, reason, msg := getRP(t).condition("Degraded"); st != "False" {
			return fmt.Errorf("Degraded %s %s: %s", st, reason, msg)
		}
		return nil
	})

	tune(t, harmless, image)
}

// tune runs a short online search of the like weight (spec.tuning) while
// the simulated users keep using the pipeline: its trials are served as
// arms beside their baselines, end on their counts, and the search
// finishes with a best point; with promote Manual the spec's weights keep
// serving everyone afterwards.
func tune(t *testing.T, weights, image string) {
	tuning := `  tuning:
    parameters: [{path: ranking.weights.like, min: 0, max: 4}]
    traffic: 0.2
    trialDuration: 15s
    minImpressions: 300
    maxTrials: 3
`
	// Without spec.rollout, whose arms would take every user past the
	// experiments; the weights are the stable config's.
	applyYAML(t, pipeline(weights, "models/mtml", image)+tuning)
	took := eventually(t, 4*time.Minute, "the search finished", func() error {
		if phase := jsonpath(t, "rp", "explore", ".status.tuning.phase"); phase != "Finished" {
			return fmt.Errorf("tuning %s: %s", phase, jsonpath(t, "rp", "explore", ".status.tuning.message"))
		}
		return nil
	})
	var trials []struct {
		Name        string             `json:"name"`
		State       string             `json:"state"`
		Parameters  map[string]float64 `json:"parameters"`
		Impressions int64              `json:"impressions"`
		Difference  float64            `json:"difference"`
		StdErr      float64            `json:"stdErr"`
	}
	if err := json.Unmarshal([]byte(jsonpath(t, "rp", "explore", ".status.tuning.trials")), &trials); err != nil {
		t.Fatal(err)
	}
	for _, tr := range trials {
		t.Logf("trial %s: like %.3f, %s, %d impressions, objective %+.4f ± %.4f against its baseline",
			tr.Name, tr.Parameters["ranking.weights.like"], tr.State, tr.Impressions, tr.Difference, tr.StdErr)
		if tr.State != "Done" || tr.Impressions < 300 {
			t.Errorf("trial %s ended %s with %d impressions, want Done with at least 300", tr.Name, tr.State, tr.Impressions)
		}
	}
	best := jsonpath(t, "rp", "explore", ".status.tuning.best.snippet")
	t.Logf("tuning: apply → finished in %s; best point to commit:\n%s", took.Round(time.Second), best)
	if len(trials) != 3 || !strings.Contains(best, "like: ") {
		t.Errorf("%d trials and best %q, want 3 and a like weight", len(trials), best)
	}
	eventually(t, time.Minute, "the trials' arms are gone and the spec's weights serve everyone", func() error {
		if like, arms := servedWeight(t, "explore-config", "like"); like != 2 || arms != 0 {
			return fmt.Errorf("served like %v with %d arms", like, arms)
		}
		return nil
	})
}
