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

// Package e2e drives a real cluster (hack/local-cluster.sh) the way a user
// does, with helm and kubectl: install the operator from charts/, apply a
// pipeline whose catalog and models sit on a volume, query it through its
// Service, roll out weights, a broken model and a new image under load, and
// remove it all. Run it with `make test-e2e`.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

var (
	kubectl = envOr("KUBECTL", "kubectl")
	helm    = envOr("HELM", "helm")
	tag     = envOr("E2E_IMAGE_TAG", "e2e")
	tag2    = envOr("E2E_IMAGE_TAG2", "e2e2")
	dataDir = envOr("E2E_DATA_DIR", "/var/lib/recpipeline-e2e")
	// clusterDir is hack/local-cluster.sh's directory; the kubelet keeps
	// the pods' volumes under it.
	clusterDir = envOr("RECPIPELINE_CLUSTER_DIR", "/var/lib/recpipeline-cluster")
	chartDir   = "../../charts/recpipeline-operator"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// run runs a command and returns its standard output; it fails the test
// with the output on error.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func applyYAML(t *testing.T, doc string) {
	t.Helper()
	cmd := exec.Command(kubectl, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(doc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s\n%s", err, out, doc)
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}

// rp reads the pipeline's status.
type rpStatus struct {
	Status struct {
		ObservedGeneration int64  `json:"observedGeneration"`
		ConfigRevision     string `json:"configRevision"`
		Conditions         []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
		Stages []struct {
			Name           string `json:"name"`
			Replicas       int32  `json:"replicas"`
			ReadyReplicas  int32  `json:"readyReplicas"`
			ConfigRevision string `json:"configRevision"`
		} `json:"stages"`
	} `json:"status"`
	Metadata struct {
		Generation int64 `json:"generation"`
	} `json:"metadata"`
}

func getRP(t *testing.T) rpStatus {
	t.Helper()
	var s rpStatus
	if err := json.Unmarshal([]byte(run(t, kubectl, "-n", "recs", "get", "rp", "explore", "-o", "json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s rpStatus) condition(typ string) (status, reason, message string) {
	for _, c := range s.Status.Conditions {
		if c.Type == typ {
			return c.Status, c.Reason, c.Message
		}
	}
	return "", "", ""
}

// allServe reports whether every stage's ready pods serve the pipeline's
// current revision.
func (s rpStatus) allServe() error {
	// A status of an earlier generation names the revision that served
	// before the change: every pod may still serve it.
	if s.Status.ObservedGeneration != s.Metadata.Generation {
		return fmt.Errorf("status of generation %d, want %d", s.Status.ObservedGeneration, s.Metadata.Generation)
	}
	if len(s.Status.Stages) != 4 {
		return fmt.Errorf("%d stages in status", len(s.Status.Stages))
	}
	for _, st := range s.Status.Stages {
		if st.ReadyReplicas < 1 || st.ConfigRevision != s.Status.ConfigRevision {
			return fmt.Errorf("stage %s: %d ready, serving %q, want %q", st.Name, st.ReadyReplicas, st.ConfigRevision, s.Status.ConfigRevision)
		}
	}
	return nil
}

type recommendation struct {
	Revision    string `json:"configRevision"`
	Precomputed bool   `json:"precomputed"`
	Items       []struct {
		ID     string  `json:"id"`
		Author string  `json:"author"`
		Risk   float64 `json:"integrityRisk"`
	} `json:"items"`
}

func frontendURL(t *testing.T) string {
	ip := strings.TrimSpace(run(t, kubectl, "-n", "recs", "get", "svc", "explore-frontend", "-o", "jsonpath={.spec.clusterIP}"))
	return "http://" + ip + ":8080"
}

var httpClient = &http.Client{Timeout: 5 * time.Second}

func recommend(url, user string) (*recommendation, error) {
	resp, err := httpClient.Get(url + "/v1/recommendations?user=" + user + "&n=25")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var r recommendation
	return &r, json.NewDecoder(resp.Body).Decode(&r)
}

// load sends requests back to back from a few clients until stopped and
// counts the failures.
type load struct {
	stop     atomic.Bool
	requests atomic.Int64
	failures atomic.Int64
	mu       sync.Mutex
	first    error
	wg       sync.WaitGroup
}

func startLoad(url string) *load {
	l := &load{}
	for w := 0; w < 3; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for i := 0; !l.stop.Load() && i < 100000; i++ {
				_, err := recommend(url, fmt.Sprintf("u%d", (w*37+i)%200))
				l.requests.Add(1)
				if err != nil {
					l.failures.Add(1)
					l.mu.Lock()
					if l.first == nil {
						l.first = err
					}
					l.mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(w)
	}
	return l
}

func (l *load) finish(t *testing.T, what string) {
	t.Helper()
	l.stop.Store(true)
	l.wg.Wait()
	if n := l.failures.Load(); n != 0 {
		t.Errorf("%s: %d of %d requests failed, first: %v", what, n, l.requests.Load(), l.first)
	}
	t.Logf("%s: %d requests, %d failed", what, l.requests.Load(), l.failures.Load())
}

func podRestarts(t *testing.T) map[string]string {
	out := run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount}{"\n"}{end}`)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m
}

func pipeline(weights, mtmlPath, image string) string {
	// A path on the data claim, or a whole pvc:// URI.
	mtmlURI := mtmlPath
	if !strings.HasPrefix(mtmlURI, "pvc://") {
		mtmlURI = "pvc://e2e-data/" + mtmlPath
	}
	return fmt.Sprintf(`apiVersion: serving.recpipeline.dev/v1alpha1
kind: RecPipeline
metadata: {name: explore, namespace: recs}
spec:
  runtime: {image: %q, imagePullPolicy: IfNotPresent}
  events: {writeTokenSecretRef: {name: e2e-events, key: token}}
  data:
    catalog: {uri: "pvc://e2e-data/world"}
    store: {type: Memory}
  models:
    - {name: two-tower, uri: "pvc://e2e-data/models/two-tower"}
    - {name: first-stage, uri: "pvc://e2e-data/models/first-stage"}
    - {name: mtml, uri: %q}
  retrieval:
    candidates: 600
    sources:
      - {name: followed-recent, type: FollowedAuthorsRecent, weight: 0.25, limit: 200, maxAge: 8760h}
      - {name: for-you, type: TwoTowerANN, model: two-tower, weight: 0.45, limit: 300}
      - {name: more-like-this, type: ItemToItemANN, model: two-tower, weight: 0.2, limit: 200, seedItems: 10}
      - {name: trending, type: Popular, weight: 0.1, limit: 100, window: 24h}
    scaling: {replicas: 1}
  ranking:
    firstStage: {model: first-stage, keep: 200, scaling: {replicas: 1}}
    secondStage:
      model: mtml
      keep: 60
      scaling: {replicas: 1}
    weights: %s
    freshness: {maxAge: 1h, slots: 1}
  rerank:
    size: 25
    rules:
      - {type: AuthorDiversity, minGap: 3}
      - {type: IntegrityFilter, maxRisk: 0.3}
      - {type: IntegrityDownrank, above: 0.2, factor: 0.3}
`, image, mtmlURI, weights)
}

// stagePods names the pods of the given stages with their restart counts.
func stagePods(t *testing.T, stages ...string) []string {
	t.Helper()
	var out []string
	for _, stage := range stages {
		pods := run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component="+stage,
			"--field-selector=status.phase=Running",
			"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}`)
		out = append(out, strings.Fields(pods)...)
	}
	return out
}

// impress fetches user's list and posts an impression of each item, as a
// client does when the list is shown; it returns the items shown.
// freshReachesFollower: a followed author's new item heads the follower's
// next page (spec.ranking.freshness), through the split stages.
func freshReachesFollower(t *testing.T, url string) {
	t.Helper()
	post(t, url, `{"events":[{"user":"u9","author":"a5","type":"follow"},{"item":"e2e-fresh-1","author":"a5","type":"new_item"}]}`)
	if r, err := recommend(url, "u9"); err != nil || len(r.Items) == 0 || r.Items[0].ID != "e2e-fresh-1" {
		t.Errorf("u9 follows a5, who just published e2e-fresh-1: the next page is %+v (%v), want it led by e2e-fresh-1", r, err)
	}
}

// eventsToken is the pipeline's events write token (spec.events), in the
// Secret e2e-events.
const eventsToken = "e2e-3f9c2a71"

// postEvents sends a batch of events with token as the bearer token, none
// when empty.
func postEvents(url, token string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return httpClient.Do(req)
}

// outsiderRefused: a caller outside the pipeline (this test, on the
// node) can neither write events without the events token (401, nothing
// recorded) nor call a gRPC stage without the stages' token
// (Unauthenticated).
func outsiderRefused(t *testing.T, url string) {
	t.Helper()
	before, err := recommend(url, "u3")
	if err != nil {
		t.Fatal(err)
	}
	var forged []map[string]string
	for _, it := range before.Items {
		forged = append(forged, map[string]string{"user": "u3", "item": it.ID, "type": "see_less"})
	}
	body, _ := json.Marshal(map[string]any{"events": forged})
	for _, token := range []string{"", "guess"} {
		resp, err := postEvents(url, token, body)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST /v1/events with token %q: HTTP %d, want 401", token, resp.StatusCode)
		}
	}
	if after, err := recommend(url, "u3"); err != nil || len(after.Items) == 0 || after.Items[0].ID != before.Items[0].ID {
		t.Errorf("forged see_less events without the token changed u3's page: %v (%v)", after, err)
	}
	for stage, method := range map[string]string{
		"retrieval":     "/recpipeline.stages.v1.Retrieval/Search",
		"ranker-first":  "/recpipeline.stages.v1.Ranker/Rank",
		"ranker-second": "/recpipeline.stages.v1.Ranker/Rank",
	} {
		ip := strings.TrimSpace(run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component="+stage,
			"--field-selector=status.phase=Running", "-o", "jsonpath={.items[0].status.podIP}"))
		conn, err := grpc.NewClient(ip+":9090", grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		cancel()
		_ = conn.Close()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s %s without the stages' token: %v, want Unauthenticated", stage, method, err)
		}
	}
}

// takenDown: an integrity event with risk 1 takes an item out of every
// list from the next request on.
func takenDown(t *testing.T, url string) {
	t.Helper()
	before, err := recommend(url, "u4")
	if err != nil || len(before.Items) == 0 {
		t.Fatalf("u4's list: %v", err)
	}
	item := before.Items[0].ID
	post(t, url, fmt.Sprintf(`{"events":[{"item":%q,"type":"integrity","risk":1}]}`, item))
	for _, user := range []string{"u4", "u5", "u6"} {
		r, err := recommend(url, user)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range r.Items {
			if it.ID == item {
				t.Errorf("%s was taken down and is still recommended to %s", item, user)
			}
		}
	}
}

// corruptedLogRefused: a bit flipped in the first record of the
// frontend's event log (not a torn tail) makes the restarted container
// refuse to start, saying so in its termination message and in the
// pipeline's Degraded condition, instead of serving with the events after
// it dropped; a new pod (a new, empty state directory) serves again.
func corruptedLogRefused(t *testing.T, url string) {
	t.Helper()
	// Two batches at least, so that the first record is not the log's last.
	impress(t, url, "u11")
	impress(t, url, "u12")
	pod := strings.Fields(run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component=frontend",
		"--field-selector=status.phase=Running", "-o", `jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{"\n"}{end}`))
	if len(pod) != 2 {
		t.Fatalf("want one running frontend pod, got %v", pod)
	}
	log := filepath.Join(clusterDir, "kubelet", "pods", pod[1], "volumes", "kubernetes.io~empty-dir", "state", "events.log")
	f, err := os.OpenFile(log, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Byte 18 is inside the first record's payload (an 8-byte magic, then
	// the record's 8-byte header).
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, 18); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, 18); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	// Kill the container's process: the kubelet restarts it in the same
	// pod, on the same state directory.
	run(t, "pkill", "-KILL", "-f", "--", "--stage=frontend --config-map=explore-config")
	eventually(t, 2*time.Minute, "the restarted frontend refuses its corrupt log", func() error {
		msg := run(t, kubectl, "-n", "recs", "get", "pod", pod[0], "-o",
			"jsonpath={.status.containerStatuses[0].lastState.terminated.message}")
		if !strings.Contains(msg, "event log is corrupt") || !strings.Contains(msg, "record 1") {
			return fmt.Errorf("last termination message %q", msg)
		}
		if st, reason, msg := getRP(t).condition("Degraded"); st != "True" || !strings.Contains(msg, "corrupt") {
			return fmt.Errorf("Degraded %s %s: %s", st, reason, msg)
		}
		return nil
	})
	run(t, kubectl, "-n", "recs", "delete", "pod", pod[0], "--wait=true", "--timeout=1m")
	eventually(t, 3*time.Minute, "a new frontend pod serves", func() error {
		if st, _, msg := getRP(t).condition("Ready"); st != "True" {
			return fmt.Errorf("Ready %s: %s", st, msg)
		}
		_, err := recommend(url, "u7")
		return err
	})
}

// post sends a batch of events, which must be accepted.
func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := postEvents(url, eventsToken, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /v1/events: HTTP %d: %s", resp.StatusCode, b)
	}
}

func impress(t *testing.T, url, user string) map[string]bool {
	t.Helper()
	r, err := recommend(url, user)
	if err != nil || len(r.Items) == 0 {
		t.Fatalf("%s's list: %v (%d items)", user, err, len(r.Items))
	}
	type event struct {
		User string `json:"user"`
		Item string `json:"item"`
		Type string `json:"type"`
	}
	var events []event
	shown := map[string]bool{}
	for _, it := range r.Items {
		events = append(events, event{User: user, Item: it.ID, Type: "impression"})
		shown[it.ID] = true
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	resp, err := postEvents(url, eventsToken, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /v1/events: HTTP %d: %s", resp.StatusCode, b)
	}
	return shown
}

func TestEndToEnd(t *testing.T) {
	if os.Getenv("KUBECONFIG") == "" {
		t.Fatal("KUBECONFIG is not set: run make test-e2e, which starts hack/local-cluster.sh")
	}
	recserve := "ghcr.io/recpipeline/recserve:" + tag

	// The pipeline's data: a small world and models trained on it, on a
	// hostPath volume the pods mount read-only.
	// recgen and rectrain are run as a user runs them.
	_ = os.RemoveAll(dataDir)
	run(t, "go", "run", "../../runtime/cmd/recgen", "-out", filepath.Join(dataDir, "world"),
		"-users", "1000", "-items", "2000", "-events", "40000", "-seed", "5")
	// One epoch on 200 users is about the cluster, not the models' quality
	// (which make bench-quality and the rectrain tests judge): the quality
	// gate may not refuse it.
	run(t, "go", "run", "../../runtime/cmd/rectrain", "-data", filepath.Join(dataDir, "world"),
		"-out", filepath.Join(dataDir, "models"), "-epochs", "1", "-allow-weak")
	run(t, "chmod", "-R", "a+rX", dataDir)

	// The operator, from the chart, with the locally built images.
	start := time.Now()
	run(t, helm, "install", "recpipeline", chartDir, "-n", "recpipeline-system", "--create-namespace", "--wait", "--timeout", "5m",
		"--set", "image.tag="+tag, "--set", "image.pullPolicy=IfNotPresent", "--set", "runtimeImage.tag="+tag, "--set", "toolsImage.tag="+tag)
	t.Logf("helm install: %s", time.Since(start).Round(time.Second))
	defer func() {
		run(t, helm, "uninstall", "recpipeline", "-n", "recpipeline-system", "--wait")
		for _, kind := range []string{"deployments", "serviceaccounts", "services", "roles", "rolebindings"} {
			if out := strings.TrimSpace(run(t, kubectl, "-n", "recpipeline-system", "get", kind, "-l", "app.kubernetes.io/instance=recpipeline", "-o", "name")); out != "" {
				t.Errorf("helm uninstall left %s: %s", kind, out)
			}
		}
		if out := strings.TrimSpace(run(t, kubectl, "get", "clusterroles,clusterrolebindings", "-l", "app.kubernetes.io/instance=recpipeline", "-o", "name")); out != "" {
			t.Errorf("helm uninstall left %s", out)
		}
	}()

	// Leftovers of an interrupted run would hold the volume.
	_, _ = runErr(kubectl, "delete", "namespace", "recs", "--ignore-not-found", "--wait=true", "--timeout=2m")
	_, _ = runErr(kubectl, "delete", "pv", "e2e-data", "e2e-logs", "--ignore-not-found", "--wait=true", "--timeout=1m")
	applyYAML(t, fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: recs}
---
apiVersion: v1
kind: Secret
metadata: {name: e2e-events, namespace: recs}
stringData: {token: %q}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: e2e-data}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  hostPath: {path: %q, type: Directory}
  claimRef: {namespace: recs, name: e2e-data}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: e2e-data, namespace: recs}
spec:
  accessModes: [ReadOnlyMany]
  storageClassName: ""
  volumeName: e2e-data
  resources: {requests: {storage: 1Gi}}
`, eventsToken, dataDir))
	defer func() {
		_, _ = runErr(kubectl, "delete", "namespace", "recs", "--wait=true", "--timeout=2m")
		_, _ = runErr(kubectl, "delete", "pv", "e2e-data", "e2e-logs", "--ignore-not-found")
	}()

	weights := `{click: 1.0, like: 2.0, comment: 4.0, see_less: -8.0}`
	start = time.Now()
	applyYAML(t, pipeline(weights, "models/mtml", recserve))
	run(t, kubectl, "-n", "recs", "wait", "--for=condition=Ready", "rp/explore", "--timeout=5m")
	t.Logf("apply → Ready: %s", time.Since(start).Round(time.Second))
	eventually(t, time.Minute, "every stage serves the revision", func() error { return getRP(t).allServe() })

	url := frontendURL(t)
	var before *recommendation
	// The Service's endpoints follow the pods' readiness within moments.
	eventually(t, time.Minute, "the frontend Service answers", func() (err error) {
		before, err = recommend(url, "u7")
		return err
	})
	if len(before.Items) == 0 {
		t.Fatal("no recommendations")
	}
	for _, user := range []string{"u1", "u7", "u42", "nobody"} {
		r, err := recommend(url, user)
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		last := map[string]int{}
		for i, it := range r.Items {
			if it.Risk > 0.3 {
				t.Errorf("%s: %s has integrity risk %v over 0.3", user, it.ID, it.Risk)
			}
			if j, ok := last[it.Author]; ok && i-j <= 3 {
				t.Errorf("%s: author %s at %d and %d", user, it.Author, j, i)
			}
			last[it.Author] = i
		}
	}

	freshReachesFollower(t, url)
	outsiderRefused(t, url)
	takenDown(t, url)

	// New weights through kubectl apply, under load: every pod serves them
	// within 10 s, no pod restarts, no request fails, the ranking changes.
	restarts := podRestarts(t)
	// The frontend's /metrics, before and after: the per-stage and
	// per-source families the dashboard reads grow under load.
	scraped := scrapeFrontend(t)
	l := startLoad(url)
	oldRev := getRP(t).Status.ConfigRevision
	applyYAML(t, pipeline(`{click: 1.0, like: -50.0, comment: 4.0, see_less: -8.0}`, "models/mtml", recserve))
	took := eventually(t, 10*time.Second, "every pod serves the new weights", func() error {
		s := getRP(t)
		if s.Status.ConfigRevision == oldRev {
			return fmt.Errorf("revision unchanged")
		}
		return s.allServe()
	})
	t.Logf("weights change → every pod serves it: %s", took.Round(10*time.Millisecond))
	l.finish(t, "weights rollout")
	metricsGrew(t, scraped)
	if after := podRestarts(t); fmt.Sprint(after) != fmt.Sprint(restarts) {
		t.Errorf("pods restarted or were replaced on a weights change: %v → %v", restarts, after)
	}
	after, err := recommend(url, "u7")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.Items) == fmt.Sprint(before.Items) {
		t.Errorf("the ranking did not change with the weights")
	}

	// A model that cannot load: the old pods keep serving, status turns
	// Degraded with the runtime's reason; the fix makes it Ready again.
	// Only the second-stage ranker loads that model: the other stages'
	// pods, and with the frontend the users' seen state, stay.
	kept := stagePods(t, "frontend", "retrieval", "ranker-first")
	seen := impress(t, url, "u7")
	l = startLoad(url)
	applyYAML(t, pipeline(`{click: 1.0, like: -50.0, comment: 4.0, see_less: -8.0}`, "models/missing", recserve))
	eventually(t, 3*time.Minute, "Degraded with the reason", func() error {
		status, reason, msg := getRP(t).condition("Degraded")
		if status != "True" || !strings.Contains(msg, "missing") {
			return fmt.Errorf("Degraded %s %s: %s", status, reason, msg)
		}
		return nil
	})
	applyYAML(t, pipeline(`{click: 1.0, like: -50.0, comment: 4.0, see_less: -8.0}`, "models/mtml", recserve))
	eventually(t, 3*time.Minute, "Ready again after the fix", func() error {
		s := getRP(t)
		if st, _, msg := s.condition("Ready"); st != "True" {
			return fmt.Errorf("Ready %s: %s", st, msg)
		}
		return s.allServe()
	})
	l.finish(t, "broken model and its fix")
	if now := stagePods(t, "frontend", "retrieval", "ranker-first"); fmt.Sprint(now) != fmt.Sprint(kept) {
		t.Errorf("a second-stage model change replaced or restarted other stages' pods: %v → %v", kept, now)
	}
	if r, err := recommend(url, "u7"); err != nil {
		t.Error(err)
	} else {
		for _, it := range r.Items {
			if seen[it.ID] {
				t.Errorf("u7 was shown %s again after a model change: the seen state was lost", it.ID)
			}
		}
	}

	// A new image tag: a rolling update with no failed request.
	l = startLoad(url)
	applyYAML(t, pipeline(`{click: 1.0, like: -50.0, comment: 4.0, see_less: -8.0}`, "models/mtml", "ghcr.io/recpipeline/recserve:"+tag2))
	eventually(t, 4*time.Minute, "rolled to the new image", func() error {
		out := run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore", "-o", "jsonpath={.items[*].spec.containers[0].image}")
		for _, img := range strings.Fields(out) {
			if !strings.HasSuffix(img, ":"+tag2) {
				return fmt.Errorf("pods still run %s", img)
			}
		}
		if st, _, _ := getRP(t).condition("Progressing"); st != "False" {
			return fmt.Errorf("still progressing")
		}
		return nil
	})
	l.finish(t, "image rollout")

	canary(t, url, "ghcr.io/recpipeline/recserve:"+tag2)
	// After thousands of requests the frontend's report of its sources
	// decides SourcesHealthy, True or False (on these 2 cores a source
	// misses its 50 ms deadline now and then).
	eventually(t, 2*time.Minute, "SourcesHealthy decided", func() error {
		st, reason, msg := getRP(t).condition("SourcesHealthy")
		if st != "True" && st != "False" {
			return fmt.Errorf("SourcesHealthy %q %s: %s", st, reason, msg)
		}
		t.Logf("SourcesHealthy %s %s: %s", st, reason, msg)
		return nil
	})
	corruptedLogRefused(t, url)
	batchLoop(t, url, "ghcr.io/recpipeline/recserve:"+tag2, `{click: 1.0, like: -50.0, comment: 4.0, see_less: -8.0}`)

	// Scale a stage, then delete the pipeline: the garbage collector takes
	// every child.
	run(t, kubectl, "-n", "recs", "patch", "rp", "explore", "--type=merge", "-p", `{"spec":{"retrieval":{"scaling":{"replicas":2}}}}`)
	eventually(t, 3*time.Minute, "retrieval scaled to 2", func() error {
		out := strings.TrimSpace(run(t, kubectl, "-n", "recs", "get", "deploy", "explore-retrieval", "-o", "jsonpath={.status.readyReplicas}"))
		if out != "2" {
			return fmt.Errorf("ready replicas %q", out)
		}
		return nil
	})
	run(t, kubectl, "-n", "recs", "delete", "rp", "explore", "--wait=true", "--timeout=2m")
	eventually(t, 2*time.Minute, "every child collected", func() error {
		out := strings.TrimSpace(run(t, kubectl, "-n", "recs", "get", "deploy,svc,cm,sa,role,rolebinding,hpa,pdb,secret,cronjob", "-l", "app.kubernetes.io/instance=explore", "-o", "name"))
		if out != "" {
			return fmt.Errorf("left: %s", out)
		}
		return nil
	})

	slowStartNotRestarted(t, recserve)
}

// slowStartNotRestarted: a pipeline whose retrieval stage loads for longer
// than its liveness probe tolerates failures (3 × 5 s) — a 500,000-item
// catalog to embed and index (300,000 became ready in 20–26 s once the
// start got faster, too close to the 20 s this needs) — becomes Ready
// without a restart: /healthz answers from the process's start.
func slowStartNotRestarted(t *testing.T, image string) {
	t.Helper()
	run(t, "go", "run", "../../runtime/cmd/recgen", "-out", filepath.Join(dataDir, "slow-world"),
		"-users", "200", "-items", "500000", "-events", "2000", "-seed", "7", "-no-truth")
	run(t, "chmod", "-R", "a+rX", dataDir)
	slow := strings.NewReplacer("name: explore", "name: slow", "pvc://e2e-data/world", "pvc://e2e-data/slow-world").
		Replace(pipeline(`{click: 1.0, like: 2.0, comment: 4.0, see_less: -8.0}`, "models/mtml", image))
	applyYAML(t, slow)
	defer func() {
		_, _ = runErr(kubectl, "-n", "recs", "delete", "rp", "slow", "--wait=true", "--timeout=2m")
	}()
	run(t, kubectl, "-n", "recs", "wait", "--for=condition=Ready", "rp/slow", "--timeout=5m")
	out := run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=slow,app.kubernetes.io/component=retrieval", "-o",
		`jsonpath={range .items[*]}{.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].state.running.startedAt} {range .status.conditions[?(@.type=="Ready")]}{.lastTransitionTime}{end}{"\n"}{end}`)
	f := strings.Fields(out)
	if len(f) != 3 {
		t.Fatalf("the slow pipeline's retrieval pod: %q", out)
	}
	started, err1 := time.Parse(time.RFC3339, f[1])
	ready, err2 := time.Parse(time.RFC3339, f[2])
	if err1 != nil || err2 != nil {
		t.Fatalf("the slow pipeline's retrieval pod: %q", out)
	}
	took := ready.Sub(started)
	t.Logf("a retrieval stage loading 500,000 items: ready %s after its start, %s restarts", took, f[0])
	if f[0] != "0" {
		t.Errorf("the slowly loading retrieval stage restarted %s times", f[0])
	}
	if took <= 20*time.Second {
		t.Errorf("the retrieval stage was ready %s after its start: not longer than the liveness probe tolerates, so this shows nothing", took)
	}
}

// TestInstallManifest installs the operator from dist/install.yaml (make
// build-installer) with kubectl, as a user without Helm does, waits for
// the manager, and removes it again.
func TestInstallManifest(t *testing.T) {
	manifest := envOr("E2E_INSTALL_MANIFEST", "../../dist/install.yaml")
	if _, err := os.Stat(manifest); err != nil {
		t.Fatalf("%s: %v (make build-installer writes it)", manifest, err)
	}
	// make build-installer RUNTIME_IMG=... names the recserve image the
	// installed manager gives pipelines that name none.
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if want := "--default-runtime-image=ghcr.io/recpipeline/recserve:" + envOr("E2E_IMAGE_TAG", "e2e"); !strings.Contains(string(raw), want) {
		t.Errorf("%s does not pass %s to the manager", manifest, want)
	}
	run(t, kubectl, "apply", "--server-side", "--force-conflicts", "-f", manifest)
	defer func() {
		_, _ = runErr(kubectl, "delete", "-f", manifest, "--ignore-not-found", "--wait=true", "--timeout=2m")
	}()
	run(t, kubectl, "-n", "recpipeline-system", "rollout", "status", "deployment/recpipeline-controller-manager", "--timeout=3m")
	out, _ := runErr(kubectl, "auth", "can-i", "patch", "recpipelines.serving.recpipeline.dev", "--subresource=status",
		"--as=system:serviceaccount:recpipeline-system:recpipeline-controller-manager", "-n", "recs")
	if strings.TrimSpace(out) != "yes" {
		t.Errorf("the installed manager may not write pipeline status: %q", out)
	}
}
