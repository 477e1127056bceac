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
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// funnelStages are the values of the stage label of the frontend's
// per-stage families (recpipeline_stage_duration_seconds): each request
// passes every one.
var funnelStages = []string{"retrieval", "ranker-first", "ranker-second", "rerank"}

// stageMetrics is one scrape of a stage pod's /metrics, as the chart's
// PodMonitor scrapes it: the pod's own address, port http, path /metrics.
type stageMetrics struct {
	pod, ip string
	// answered counts the GET /v1/recommendations answered with 200.
	answered uint64
	// stages counts the observations of recpipeline_stage_duration_seconds
	// by stage label.
	stages map[string]uint64
	// sources counts the observations of recpipeline_source_duration_seconds
	// by source label, over every outcome; outcomes by "source outcome".
	sources, outcomes map[string]uint64
	// revision is the recpipeline_config_revision_info the pod serves.
	revision string
}

// scrapeFrontend scrapes the pipeline's running frontend pod; call it
// before a load phase and pass the result to metricsGrew after it.
func scrapeFrontend(t *testing.T) *stageMetrics {
	t.Helper()
	out := strings.Fields(run(t, kubectl, "-n", "recs", "get", "pods", "-l", "app.kubernetes.io/instance=explore,app.kubernetes.io/component=frontend",
		"--field-selector=status.phase=Running", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}`))
	if len(out) != 2 {
		t.Fatalf("want one running frontend pod, got %q", out)
	}
	m, err := scrapeStage(out[0], out[1])
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// scrapeStage reads pod's /metrics at ip and parses the text exposition
// format.
func scrapeStage(pod, ip string) (*stageMetrics, error) {
	resp, err := httpClient.Get("http://" + ip + ":8080/metrics")
	if err != nil {
		return nil, fmt.Errorf("failed to scrape %s: %w", pod, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to scrape %s: HTTP %d", pod, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("failed to parse the metrics of %s: %w", pod, err)
	}
	m := &stageMetrics{pod: pod, ip: ip, stages: map[string]uint64{}, sources: map[string]uint64{}, outcomes: map[string]uint64{}}
	for _, s := range families["recpipeline_http_request_duration_seconds"].GetMetric() {
		if label(s.GetLabel(), "handler") == "recommendations" && label(s.GetLabel(), "code") == "200" {
			m.answered += s.GetHistogram().GetSampleCount()
		}
	}
	for _, s := range families["recpipeline_stage_duration_seconds"].GetMetric() {
		m.stages[label(s.GetLabel(), "stage")] += s.GetHistogram().GetSampleCount()
	}
	for _, s := range families["recpipeline_source_duration_seconds"].GetMetric() {
		source, n := label(s.GetLabel(), "source"), s.GetHistogram().GetSampleCount()
		m.sources[source] += n
		m.outcomes[source+" "+label(s.GetLabel(), "outcome")] += n
	}
	for _, s := range families["recpipeline_config_revision_info"].GetMetric() {
		if s.GetGauge().GetValue() == 1 {
			m.revision = label(s.GetLabel(), "revision")
		}
	}
	return m, nil
}

// labelPair is a label of a parsed sample.
type labelPair interface {
	GetName() string
	GetValue() string
}

// label is the value of the label called name, "" when absent.
func label[L labelPair](labels []L, name string) string {
	for _, l := range labels {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// metricsGrew scrapes the frontend scraped in before again, after a load
// phase, and checks what its /metrics tells a dashboard: the pod answered
// recommendations in between, and every funnel stage and every retrieval
// source of the pipeline counted at least one observation per answer
// (each answer passes every stage and asks every source, whatever its
// outcome); the pod serves the pipeline's current config revision.
func metricsGrew(t *testing.T, before *stageMetrics) {
	t.Helper()
	after, err := scrapeStage(before.pod, before.ip)
	if err != nil {
		t.Fatalf("%v (was the frontend replaced during the load phase?)", err)
	}
	answered := grown(after.answered, before.answered)
	if answered <= 0 {
		t.Fatalf("%s: recommendations answered with 200 went from %d to %d under load", before.pod, before.answered, after.answered)
	}
	stages := map[string]int64{}
	for _, stage := range funnelStages {
		stages[stage] = grown(after.stages[stage], before.stages[stage])
		if stages[stage] < answered {
			t.Errorf("%s: recpipeline_stage_duration_seconds{stage=%q} grew by %d over %d answers, want at least one per answer", before.pod, stage, stages[stage], answered)
		}
	}
	sources := strings.Fields(run(t, kubectl, "-n", "recs", "get", "rp", "explore", "-o", "jsonpath={.spec.retrieval.sources[*].name}"))
	if len(sources) == 0 {
		t.Fatal("the pipeline names no retrieval source")
	}
	for _, source := range sources {
		if got := grown(after.sources[source], before.sources[source]); got < answered {
			t.Errorf("%s: recpipeline_source_duration_seconds{source=%q} grew by %d over %d answers, want at least one per answer", before.pod, source, got, answered)
		}
	}
	if want := getRP(t).Status.ConfigRevision; after.revision != want {
		t.Errorf("%s: recpipeline_config_revision_info names revision %q, the pipeline's status %q", before.pod, after.revision, want)
	}
	var outcomes []string
	for k, n := range after.outcomes {
		if d := grown(n, before.outcomes[k]); d > 0 {
			outcomes = append(outcomes, fmt.Sprintf("%s +%d", k, d))
		}
	}
	sort.Strings(outcomes)
	t.Logf("%s /metrics over %d answers: stage observations %v; source calls by outcome %v", before.pod, answered, stages, outcomes)
}

// grown is how much a counter grew from before to after; negative when it
// went back (a restarted process).
func grown(after, before uint64) int64 {
	return int64(after) - int64(before)
}
