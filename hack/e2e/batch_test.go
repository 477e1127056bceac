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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// batchSpec is the spec.logging, spec.precompute and spec.training the
// batch step adds to the pipeline: the frontend logs every served list
// to the claim e2e-logs, the precompute and training CronJobs run only
// when a Job is made from them (their schedules fall on 29 February), and
// training runs the operator's default tools image (the chart's
// toolsImage, the images built for the suite).
func batchSpec() string {
	return `  logging: {claimName: e2e-logs, servedSampleRate: 1}
  precompute:
    schedule: "0 3 29 2 *"
    users: {activeWithin: 8760h, top: 2000}
    ttl: 8760h
  training:
    schedule: "0 4 29 2 *"
    output: pvc://e2e-logs/models
    epochs: 1
    qualityGate: Allow
`
}

// batchLoop runs the off-peak precompute and the closed training loop on
// the cluster: with logging, precompute and training in the spec, the
// world's log replayed through the frontend, a precompute run (a Job made
// from the CronJob) stores lists that the frontend then serves, and a
// training run (a Job of the training CronJob) exports the frontend's
// logs, trains on them and writes an artifact that a change of the second
// stage's model then serves.
func batchLoop(t *testing.T, url, image, weights string) {
	recbench := filepath.Join(t.TempDir(), "recbench")
	run(t, "go", "build", "-o", recbench, "../../runtime/cmd/recbench")
	logs := filepath.Join(dataDir, "logs")
	if err := os.MkdirAll(logs, 0o777); err != nil {
		t.Fatal(err)
	}
	// The pods run as a user of their own; the hostPath is theirs to write.
	run(t, "chmod", "0777", logs)
	applyYAML(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-logs}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {path: %q, type: Directory}
  claimRef: {namespace: recs, name: e2e-logs}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: e2e-logs, namespace: recs}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: e2e-logs
  resources: {requests: {storage: 1Gi}}
`, logs))

	oldFrontend := stagePodNames(t, "frontend")
	start := time.Now()
	applyYAML(t, pipeline(weights, "models/mtml", image)+batchSpec())
	eventually(t, 4*time.Minute, "Ready with logging, precompute and training", func() error {
		s := getRP(t)
		if st, _, msg := s.condition("Ready"); st != "True" {
			return fmt.Errorf("Ready %s: %s", st, msg)
		}
		return s.allServe()
	})
	// The frontend's pods roll to mount the logs claim; the old one serves
	// the new config meanwhile.
	run(t, kubectl, "-n", "recs", "rollout", "status", "deployment/explore-frontend", "--timeout=4m")
	// The old pod answers while it drains: events posted to it would be
	// lost with its state. Wait until it is gone from the Service.
	for _, pod := range oldFrontend {
		run(t, kubectl, "-n", "recs", "wait", "--for=delete", "pod/"+pod, "--timeout=2m")
	}
	eventually(t, time.Minute, "the Service reaches the new frontend only", func() error {
		ips := strings.Fields(run(t, kubectl, "-n", "recs", "get", "endpointslices", "-l", "kubernetes.io/service-name=explore-frontend",
			"-o", "jsonpath={.items[*].endpoints[*].addresses[*]}"))
		if len(ips) != 1 {
			return fmt.Errorf("endpoints %v", ips)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // kube-proxy's rules follow the endpoints
	for _, cj := range []string{"explore-precompute", "explore-training"} {
		run(t, kubectl, "-n", "recs", "get", "cronjob", cj)
	}
	t.Logf("batch spec applied → Ready: %s", time.Since(start).Round(time.Second))
	eventually(t, time.Minute, "the frontend answers after its restart", func() error {
		_, err := recommend(url, "u7")
		return err
	})

	// The world's log through the frontend, which logs it.
	start = time.Now()
	t.Log(run(t, recbench, "replay", "-url", url, "-data", filepath.Join(dataDir, "world"), "-token", eventsToken))
	t.Logf("replay: %s", time.Since(start).Round(time.Second))

	precomputeRun(t, url)
	artifact := trainingRun(t)

	// The new second-stage model, from the training run's artifact.
	start = time.Now()
	applyYAML(t, pipeline(weights, artifact, image)+batchSpec())
	eventually(t, 4*time.Minute, "the retrained ranker serves", func() error {
		s := getRP(t)
		if st, _, msg := s.condition("Ready"); st != "True" {
			return fmt.Errorf("Ready %s: %s", st, msg)
		}
		if err := s.allServe(); err != nil {
			return err
		}
		// A replaced pod stays Running while it terminates: every pod
		// that is not leaving must serve the trained version.
		served, err := stageModels("ranker-second")
		if err != nil {
			return err
		}
		if len(served) == 0 {
			return fmt.Errorf("no ready ranker-second pod")
		}
		for pod, models := range served {
			if !strings.Contains(models["mtml"], "@e2e-training") {
				return fmt.Errorf("pod %s serves mtml %q, want the version of the training run e2e-training", pod, models["mtml"])
			}
		}
		return nil
	})
	t.Logf("model change to the trained artifact → served: %s", time.Since(start).Round(time.Second))
	if r, err := recommend(url, "u42"); err != nil || len(r.Items) == 0 {
		t.Errorf("recommendations with the retrained ranker: %v, %d items", err, len(r.Items))
	}
}

// precomputeRun makes a Job of the precompute CronJob and checks that the
// lists it stores answer the users and that the status reports the run.
func precomputeRun(t *testing.T, url string) {
	t.Helper()
	start := time.Now()
	run(t, kubectl, "-n", "recs", "create", "job", "--from=cronjob/explore-precompute", "e2e-precompute")
	waitJob(t, "e2e-precompute", 5*time.Minute)
	t.Logf("precompute Job complete: %s", time.Since(start).Round(time.Second))
	var pc struct {
		Users           int64  `json:"users"`
		Revision        string `json:"revision"`
		LastSuccessTime string `json:"lastSuccessTime"`
	}
	eventually(t, time.Minute, "status.precompute reports the run", func() error {
		out := jsonpath(t, "rp", "explore", ".status.precompute")
		if err := json.Unmarshal([]byte(out), &pc); err != nil {
			return fmt.Errorf("%q: %w", out, err)
		}
		if pc.Users < 500 || pc.Revision == "" {
			return fmt.Errorf("status.precompute %s", out)
		}
		return nil
	})
	t.Logf("status.precompute: %d users, revision %s", pc.Users, pc.Revision)
	precomputed := 0
	for i := range 20 {
		r, err := recommend(url, fmt.Sprintf("u%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Precomputed {
			precomputed++
			if len(r.Items) != 25 {
				t.Errorf("u%d: a precomputed answer of %d items, want 25", i, len(r.Items))
			}
		}
	}
	if precomputed < 10 {
		t.Errorf("%d of the users u0..u19 were answered from a precomputed list, want most of them", precomputed)
	}
}

// trainingRun makes a Job of the training CronJob, waits for it and
// returns the artifact status.training reports, after checking its
// metrics and the Event that carries the snippet.
func trainingRun(t *testing.T) string {
	t.Helper()
	start := time.Now()
	run(t, kubectl, "-n", "recs", "create", "job", "--from=cronjob/explore-training", "e2e-training")
	waitJob(t, "e2e-training", 10*time.Minute)
	t.Logf("training Job complete: %s", time.Since(start).Round(time.Second))
	var tr struct {
		Artifact string            `json:"artifact"`
		Metrics  map[string]string `json:"metrics"`
	}
	eventually(t, time.Minute, "status.training reports the artifact", func() error {
		out := jsonpath(t, "rp", "explore", ".status.training")
		if err := json.Unmarshal([]byte(out), &tr); err != nil {
			return fmt.Errorf("%q: %w", out, err)
		}
		if tr.Artifact != "pvc://e2e-logs/models/e2e-training" || len(tr.Metrics) == 0 {
			return fmt.Errorf("status.training %s", out)
		}
		return nil
	})
	t.Logf("status.training: %s, metrics %v", tr.Artifact, tr.Metrics)
	events := run(t, kubectl, "-n", "recs", "get", "events", "--field-selector=involvedObject.name=explore,reason=TrainingSucceeded", "-o", "jsonpath={.items[*].message}")
	if !strings.Contains(events, tr.Artifact) {
		t.Errorf("no TrainingSucceeded Event names %s: %q", tr.Artifact, events)
	}
	return tr.Artifact + "/mtml"
}

// stagePodNames names the pods of a stage.
func stagePodNames(t *testing.T, stage string) []string {
	t.Helper()
	return strings.Fields(run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component="+stage,
		"-o", "jsonpath={.items[*].metadata.name}"))
}

// waitJob waits for the Job to complete, and fails with its pods' logs
// when it fails or does not complete in time.
func waitJob(t *testing.T, name string, timeout time.Duration) {
	t.Helper()
	var state string
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(time.Second) {
		state = run(t, kubectl, "-n", "recs", "get", "job", name, "-o", `jsonpath={range .status.conditions[?(@.status=="True")]}{.type} {end}`)
		if strings.Contains(state, "Complete") {
			return
		}
		if strings.Contains(state, "Failed") {
			break
		}
	}
	logs, _ := runErr(kubectl, "-n", "recs", "logs", "job/"+name, "--all-containers", "--tail=50")
	t.Fatalf("Job %s did not complete (conditions %q)\n%s", name, state, logs)
}

// stageModels reads the models each ready pod of a stage that is not
// terminating loaded, from its /v1/status, by pod name. It fails rather
// than stops the test: pods come and go while a rollout is polled.
func stageModels(stage string) (map[string]map[string]string, error) {
	var pods struct {
		Items []struct {
			Metadata struct {
				Name              string  `json:"name"`
				DeletionTimestamp *string `json:"deletionTimestamp"`
			} `json:"metadata"`
			Status struct {
				PodIP      string `json:"podIP"`
				Conditions []struct {
					Type, Status string
				} `json:"conditions"`
			} `json:"status"`
		} `json:"items"`
	}
	out, err := runErr(kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component="+stage, "-o", "json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		return nil, err
	}
	models := map[string]map[string]string{}
	for _, p := range pods.Items {
		ready := false
		for _, c := range p.Status.Conditions {
			ready = ready || (c.Type == "Ready" && c.Status == "True")
		}
		if p.Metadata.DeletionTimestamp != nil || !ready || p.Status.PodIP == "" {
			continue
		}
		resp, err := httpClient.Get("http://" + p.Status.PodIP + ":8080/v1/status")
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Metadata.Name, err)
		}
		var st struct {
			Info struct {
				Models map[string]string `json:"models"`
			} `json:"info"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", p.Metadata.Name, err)
		}
		models[p.Metadata.Name] = st.Info.Models
	}
	return models, nil
}
