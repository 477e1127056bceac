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

package charts

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// The monitoring of the pipelines' stage pods: the PodMonitor and the
// Grafana dashboard the chart ships (values pipelineMonitoring.*), checked
// against what the operator builds (controllers/children.go), what the
// runtime registers (runtime/) and the kustomize example
// (config/prometheus/stage_monitor.yaml).
const (
	dashboardFile   = chartDir + "/files/dashboards/recpipeline.json"
	dashboardKey    = "recpipeline.json"
	runtimeDir      = "../runtime"
	childrenFile    = "../controllers/children.go"
	kustomizeStages = "../config/prometheus/stage_monitor.yaml"

	podMonitorName = release + "-stages"
	dashboardName  = release + "-dashboard"
)

// TestPipelineMonitoringValues checks what pipelineMonitoring renders: the
// PodMonitor and the dashboard ConfigMap each only when enabled, in the
// namespaces and with the labels the values ask for.
func TestPipelineMonitoringValues(t *testing.T) {
	cases := map[string]struct {
		set   []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		"defaults render neither": {
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantKinds(t, objs, map[string]int{"PodMonitor": 0, "ConfigMap": 0})
			},
		},
		"the PodMonitor alone scrapes every namespace": {
			set: []string{"pipelineMonitoring.podMonitor.enabled=true"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantKinds(t, objs, map[string]int{"PodMonitor": 1, "ConfigMap": 0})
				pm := podMonitor(t, objs)
				if pm.GetName() != podMonitorName || pm.GetNamespace() != namespace {
					t.Errorf("PodMonitor %s/%s, want %s/%s", pm.GetNamespace(), pm.GetName(), namespace, podMonitorName)
				}
				sel, _, _ := unstructured.NestedMap(pm.Object, "spec", "namespaceSelector")
				if !reflect.DeepEqual(sel, map[string]any{"any": true}) {
					t.Errorf("namespaceSelector %v, want {any: true}", sel)
				}
				ep := podMetricsEndpoint(t, pm)
				if ep["interval"] != "30s" || ep["scrapeTimeout"] != "10s" {
					t.Errorf("interval %v, scrapeTimeout %v, want 30s and 10s", ep["interval"], ep["scrapeTimeout"])
				}
			},
		},
		"the PodMonitor follows watchNamespaces": {
			set: []string{"pipelineMonitoring.podMonitor.enabled=true", "watchNamespaces={team-a,team-b,team-a}"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantMatchNames(t, podMonitor(t, objs), "team-a", "team-b")
			},
		},
		"listed namespaces win over watchNamespaces; extra labels and intervals": {
			set: []string{
				"pipelineMonitoring.podMonitor.enabled=true", "watchNamespaces={team-a,team-b}",
				"pipelineMonitoring.podMonitor.namespaces={recs}", "pipelineMonitoring.podMonitor.labels.release=prometheus",
				"pipelineMonitoring.podMonitor.interval=15s", "pipelineMonitoring.podMonitor.scrapeTimeout=5s",
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				pm := podMonitor(t, objs)
				wantMatchNames(t, pm, "recs")
				if got := pm.GetLabels()["release"]; got != "prometheus" {
					t.Errorf("PodMonitor label release=%q, want prometheus", got)
				}
				if ep := podMetricsEndpoint(t, pm); ep["interval"] != "15s" || ep["scrapeTimeout"] != "5s" {
					t.Errorf("interval %v, scrapeTimeout %v, want 15s and 5s", ep["interval"], ep["scrapeTimeout"])
				}
			},
		},
		"the dashboard alone: a ConfigMap for the Grafana sidecar": {
			set: []string{"pipelineMonitoring.grafanaDashboard.enabled=true"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantKinds(t, objs, map[string]int{"PodMonitor": 0, "ConfigMap": 1})
				cm := dashboardConfigMap(t, objs)
				if cm.GetNamespace() != namespace || cm.GetLabels()["grafana_dashboard"] != "1" || len(cm.GetAnnotations()) != 0 {
					t.Errorf("ConfigMap in %s, labels %v, annotations %v; want the release namespace, grafana_dashboard=1, none",
						cm.GetNamespace(), cm.GetLabels(), cm.GetAnnotations())
				}
			},
		},
		"the dashboard's namespace, label and annotations": {
			set: []string{
				"pipelineMonitoring.grafanaDashboard.enabled=true", "pipelineMonitoring.grafanaDashboard.namespace=monitoring",
				"pipelineMonitoring.grafanaDashboard.label=dashboards", "pipelineMonitoring.grafanaDashboard.labelValue=recs",
				"pipelineMonitoring.grafanaDashboard.annotations.grafana_folder=RecPipeline",
			},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				cm := dashboardConfigMap(t, objs)
				labels := cm.GetLabels()
				if cm.GetNamespace() != "monitoring" || labels["dashboards"] != "recs" || labels["grafana_dashboard"] != "" {
					t.Errorf("ConfigMap in %s with labels %v, want monitoring, dashboards=recs and no grafana_dashboard", cm.GetNamespace(), labels)
				}
				if got := cm.GetAnnotations()["grafana_folder"]; got != "RecPipeline" {
					t.Errorf("annotation grafana_folder=%q, want RecPipeline", got)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, decode(t, render(t, nil, tc.set...)))
		})
	}
}

// TestDashboardConfigMapHoldsTheFile: the ConfigMap carries the dashboard
// file unchanged, as valid JSON.
func TestDashboardConfigMapHoldsTheFile(t *testing.T) {
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	cm := dashboardConfigMap(t, decode(t, render(t, nil, "pipelineMonitoring.grafanaDashboard.enabled=true")))
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if len(data) != 1 {
		t.Fatalf("data keys %v, want only %s", slices.Sorted(maps.Keys(data)), dashboardKey)
	}
	if data[dashboardKey] != string(want) {
		t.Errorf("data.%s differs from %s:\n%s", dashboardKey, dashboardFile, firstDifference(want, []byte(data[dashboardKey])))
	}
	if !json.Valid([]byte(data[dashboardKey])) {
		t.Errorf("data.%s is not valid JSON", dashboardKey)
	}
}

// TestPodMonitorSelectsStagePods checks the PodMonitor against the stage
// pods the operator builds (controllers/children.go): it selects them by
// labels the operator sets to those values, scrapes the container port the
// operator names for config.HTTPPort at config.MetricsPath, and copies the
// pipeline's and the stage's labels onto the series.
func TestPodMonitorSelectsStagePods(t *testing.T) {
	op := readOperatorPods(t)
	pm := podMonitor(t, decode(t, render(t, nil, "pipelineMonitoring.podMonitor.enabled=true")))

	matchLabels, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	if len(matchLabels) == 0 {
		t.Fatal("the PodMonitor selects pods by no label")
	}
	for k, v := range matchLabels {
		if got, ok := op.fixed[k]; !ok || got != v {
			t.Errorf("selector %s=%s: the operator's stage pods carry %s=%q (set: %v)", k, v, k, got, ok)
		}
	}
	exprs, _, _ := unstructured.NestedSlice(pm.Object, "spec", "selector", "matchExpressions")
	for _, e := range exprs {
		e := e.(map[string]any)
		key, _ := e["key"].(string)
		if e["operator"] != "Exists" || (op.fixed[key] == "" && !op.dynamic[key]) {
			t.Errorf("selector expression %v: the operator's stage pods do not always carry %s", e, key)
		}
	}
	if op.componentKey == "" || !op.dynamic[op.componentKey] {
		t.Fatalf("controllers/children.go: no stage label (labelComponent) set per stage in commonLabels")
	}
	if !slices.ContainsFunc(exprs, func(e any) bool { return e.(map[string]any)["key"] == op.componentKey }) {
		t.Errorf("the selector does not require %s: it would also select pods of no stage", op.componentKey)
	}

	ep := podMetricsEndpoint(t, pm)
	if ep["port"] != op.httpPortName || ep["path"] != config.MetricsPath {
		t.Errorf("scrapes port %v path %v, want the stage pods' HTTP port %q (config.HTTPPort) and %s", ep["port"], ep["path"], op.httpPortName, config.MetricsPath)
	}
	wantRelabel := map[string]string{
		"pipeline":  metaPodLabel(op.instanceKey),
		"component": metaPodLabel(op.componentKey),
	}
	if got := relabelings(t, pm); !reflect.DeepEqual(got, wantRelabel) {
		t.Errorf("relabelings (target ← source) %v, want %v", got, wantRelabel)
	}
}

// TestKustomizePodMonitorMatchesChart: config/prometheus/stage_monitor.yaml
// selects, scrapes and labels as the chart's PodMonitor does, so that the
// dashboard works with either.
func TestKustomizePodMonitorMatchesChart(t *testing.T) {
	data, err := os.ReadFile(kustomizeStages)
	if err != nil {
		t.Fatal(err)
	}
	objs := decode(t, data)
	if len(objs) != 1 || objs[0].GetKind() != "PodMonitor" {
		t.Fatalf("%s: want one PodMonitor", kustomizeStages)
	}
	want := podMonitor(t, decode(t, render(t, nil, "pipelineMonitoring.podMonitor.enabled=true")))
	got := objs[0]
	for _, field := range [][]string{{"spec", "selector"}, {"spec", "namespaceSelector"}} {
		w, _, _ := unstructured.NestedFieldNoCopy(want.Object, field...)
		g, _, _ := unstructured.NestedFieldNoCopy(got.Object, field...)
		if !reflect.DeepEqual(w, g) {
			t.Errorf("%s: %s is %v, the chart's %v", kustomizeStages, strings.Join(field, "."), g, w)
		}
	}
	we, ge := podMetricsEndpoint(t, want), podMetricsEndpoint(t, got)
	for _, k := range []string{"port", "path", "scheme", "relabelings"} {
		if !reflect.DeepEqual(we[k], ge[k]) {
			t.Errorf("%s: podMetricsEndpoints[0].%s is %v, the chart's %v", kustomizeStages, k, ge[k], we[k])
		}
	}
}

// TestDashboard checks the dashboard against the runtime and the
// PodMonitor: every metric its queries name is one the runtime registers
// (read from runtime/*.go), with a suffix its type has; every label they
// match or group by is one of the metric's or one the scrape adds; every
// variable they use is defined; every metric of the runtime is shown; and
// the panels do not overlap.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard needs a uid and a title, got %q %q", d.UID, d.Title)
	}
	metrics := runtimeMetrics(t)
	scrape := scrapeLabels(t)
	for name, m := range metrics {
		for _, l := range m.labels {
			if scrape[l] {
				// Prometheus would rename the metric's own label to
				// exported_<label>.
				t.Errorf("the scrape adds label %s, which %s has itself", l, name)
			}
		}
	}

	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "namespace", "pipeline", "component", "stage"} {
		if !vars[want] {
			t.Errorf("no variable %s", want)
		}
	}
	shown := map[string]bool{}
	check := func(where, expr string) {
		t.Helper()
		names, errs := checkExpr(expr, metrics, scrape, vars)
		for _, err := range errs {
			t.Errorf("%s: %v\n  %s", where, err, expr)
		}
		for _, n := range names {
			shown[n] = true
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			check("variable "+v.Name, v.Definition)
		}
	}
	panels := flatten(d.Panels)
	ids := map[int]string{}
	for i, p := range panels {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		for _, q := range panels[:i] {
			if overlap(p.GridPos, q.GridPos) {
				t.Errorf("panels %q and %q overlap", q.Title, p.Title)
			}
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			check(fmt.Sprintf("panel %q, query %s", p.Title, target.RefID), target.Expr)
		}
	}
	for name := range metrics {
		if !shown[name] {
			t.Errorf("the runtime registers %s, which no panel shows: add it to %s", name, dashboardFile)
		}
	}
}

// dashboard is what TestDashboard reads of a Grafana dashboard.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID      int              `json:"id"`
	Type    string           `json:"type"`
	Title   string           `json:"title"`
	GridPos gridPos          `json:"gridPos"`
	Panels  []dashboardPanel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

type gridPos struct{ X, Y, W, H int }

func flatten(panels []dashboardPanel) []dashboardPanel {
	var out []dashboardPanel
	for _, p := range panels {
		out = append(out, p)
		out = append(out, flatten(p.Panels)...)
	}
	return out
}

func overlap(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

var (
	metricRE   = regexp.MustCompile(`\brecpipeline_\w+`)
	selectorRE = regexp.MustCompile(`\b(recpipeline_\w+)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)\s*"`)
	groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	labelValRE = regexp.MustCompile(`^label_values\((\w+)(?:\{[^}]*\})?,\s*(\w+)\)$`)
	variableRE = regexp.MustCompile(`\$(\w+)`)
)

// checkExpr checks one PromQL expression of the dashboard and returns the
// runtime metrics it reads. The checks are textual, which the dashboard's
// plain expressions allow.
func checkExpr(expr string, metrics map[string]runtimeMetric, scrape, vars map[string]bool) (names []string, errs []error) {
	allowed := maps.Clone(scrape)
	for _, series := range metricRE.FindAllString(expr, -1) {
		name, m, err := seriesOf(series, metrics)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		names = append(names, name)
		for _, l := range m.labels {
			allowed[l] = true
		}
		if strings.HasSuffix(series, "_bucket") {
			allowed["le"] = true
		}
	}
	if len(names) == 0 && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("reads no recpipeline_* metric"))
	}
	for _, sel := range selectorRE.FindAllStringSubmatch(expr, -1) {
		name, m, err := seriesOf(sel[1], metrics)
		if err != nil {
			continue // reported above
		}
		own := maps.Clone(scrape)
		for _, l := range m.labels {
			own[l] = true
		}
		if strings.HasSuffix(sel[1], "_bucket") {
			own["le"] = true
		}
		for _, mt := range matcherRE.FindAllStringSubmatch(sel[2], -1) {
			if !own[mt[1]] {
				errs = append(errs, fmt.Errorf("%s has no label %s (it has %v, the scrape adds %v)", name, mt[1], m.labels, slices.Sorted(maps.Keys(scrape))))
			}
		}
	}
	if lv := labelValRE.FindStringSubmatch(expr); lv != nil && !allowed[lv[2]] {
		errs = append(errs, fmt.Errorf("label_values of %s: no label %s", lv[1], lv[2]))
	}
	for _, g := range groupingRE.FindAllStringSubmatch(expr, -1) {
		for l := range strings.SplitSeq(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" && !allowed[l] {
				errs = append(errs, fmt.Errorf("groups by %s, a label of none of its metrics", l))
			}
		}
	}
	for _, v := range variableRE.FindAllStringSubmatch(expr, -1) {
		if !strings.HasPrefix(v[1], "__") && !vars[v[1]] {
			errs = append(errs, fmt.Errorf("uses $%s, which is not a variable of the dashboard", v[1]))
		}
	}
	return names, errs
}

// seriesOf returns the runtime metric a series name belongs to: the name
// itself for a counter or gauge, or a histogram's _bucket, _sum or _count.
func seriesOf(series string, metrics map[string]runtimeMetric) (string, runtimeMetric, error) {
	if m, ok := metrics[series]; ok {
		if m.kind == "Histogram" || m.kind == "Summary" {
			return "", m, fmt.Errorf("%s is a %s: query its _bucket, _sum or _count", series, m.kind)
		}
		return series, m, nil
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		name, ok := strings.CutSuffix(series, suffix)
		if m, known := metrics[name]; ok && known {
			if m.kind != "Histogram" && (m.kind != "Summary" || suffix == "_bucket") {
				return "", m, fmt.Errorf("%s: %s is a %s, which has no %s series", series, name, m.kind, suffix)
			}
			return name, m, nil
		}
	}
	return "", runtimeMetric{}, fmt.Errorf("%s: the runtime registers no such metric (runtime/**/*.go)", series)
}

// runtimeMetric is a metric the runtime registers: its type and labels.
type runtimeMetric struct {
	kind   string // Counter, Gauge, Histogram or Summary
	labels []string
}

// runtimeMetrics reads the recpipeline_* metrics the runtime registers from
// its Go source: the calls New<Type>[Vec](<opts>{Name: "..."}, []string{labels}).
// Every name a plain search for Name: "recpipeline_…" finds must be among
// them, so that a metric declared another way fails here rather than go
// unchecked.
func runtimeMetrics(t *testing.T) map[string]runtimeMetric {
	t.Helper()
	nameRE := regexp.MustCompile(`Name:\s*"(recpipeline_\w+)"`)
	mentioned := map[string]string{}
	out := map[string]runtimeMetric{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(runtimeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range nameRE.FindAllStringSubmatch(string(src), -1) {
			mentioned[m[1]] = path
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if name, m, ok := metricDefinition(n); ok {
				out[name] = m
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("found no recpipeline_* metric under %s", runtimeDir)
	}
	for name, path := range mentioned {
		if _, ok := out[name]; !ok {
			t.Errorf("%s names %s outside a prometheus New<Type>[Vec] call: the test cannot tell its type and labels", path, name)
		}
	}
	return out
}

// metricDefinition recognises f.NewHistogramVec(prometheus.HistogramOpts{Name: "recpipeline_…"}, []string{…})
// and its Counter, Gauge and Summary siblings, with or without Vec.
func metricDefinition(n ast.Node) (string, runtimeMetric, bool) {
	call, ok := n.(*ast.CallExpr)
	if !ok || len(call.Args) == 0 {
		return "", runtimeMetric{}, false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
		return "", runtimeMetric{}, false
	}
	kind, vec := strings.CutSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec")
	if !slices.Contains([]string{"Counter", "Gauge", "Histogram", "Summary"}, kind) {
		return "", runtimeMetric{}, false
	}
	opts, ok := call.Args[0].(*ast.CompositeLit)
	if !ok {
		return "", runtimeMetric{}, false
	}
	var name string
	for _, e := range opts.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if key, ok := kv.Key.(*ast.Ident); ok && key.Name == "Name" {
				name = stringLit(kv.Value)
			}
		}
	}
	if !strings.HasPrefix(name, "recpipeline_") {
		return "", runtimeMetric{}, false
	}
	m := runtimeMetric{kind: kind}
	if vec && len(call.Args) > 1 {
		if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
			for _, l := range labels.Elts {
				m.labels = append(m.labels, stringLit(l))
			}
		}
	}
	return name, m, true
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return ""
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return ""
	}
	return s
}

// scrapeLabels are the labels a series scraped through the chart's
// PodMonitor carries besides its own: those the Prometheus Operator adds to
// every PodMonitor target, and the relabelings' targets.
func scrapeLabels(t *testing.T) map[string]bool {
	t.Helper()
	labels := map[string]bool{"namespace": true, "pod": true, "container": true, "endpoint": true, "job": true, "instance": true}
	pm := podMonitor(t, decode(t, render(t, nil, "pipelineMonitoring.podMonitor.enabled=true")))
	for target := range relabelings(t, pm) {
		labels[target] = true
	}
	return labels
}

// operatorPods is what readOperatorPods finds out about the stage pods.
type operatorPods struct {
	fixed        map[string]string // labels every stage pod carries with this value
	dynamic      map[string]bool   // labels whose value depends on the pipeline or stage
	instanceKey  string            // the label naming the pipeline
	componentKey string            // the label naming the stage
	httpPortName string            // the container port of config.HTTPPort
}

// readOperatorPods reads controllers/children.go: the labels commonLabels
// puts on a stage's pods (keys and values from its constants) and the name
// of the container port whose number is config.HTTPPort.
func readOperatorPods(t *testing.T) operatorPods {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), childrenFile, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	for _, decl := range f.Decls {
		if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.CONST {
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if s := stringLit(vs.Values[i]); s != "" {
							consts[n.Name] = s
						}
					}
				}
			}
		}
	}
	op := operatorPods{
		fixed: map[string]string{}, dynamic: map[string]bool{},
		instanceKey: consts["labelInstance"], componentKey: consts["labelComponent"],
	}
	value := func(e ast.Expr) (string, bool) {
		if id, ok := e.(*ast.Ident); ok {
			v, ok := consts[id.Name]
			return v, ok
		}
		s := stringLit(e)
		return s, s != ""
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Name.Name != "commonLabels" {
				return true
			}
			ast.Inspect(n.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.KeyValueExpr:
					key, _ := value(n.Key)
					if v, ok := value(n.Value); ok {
						op.fixed[key] = v
					} else {
						op.dynamic[key] = true
					}
				case *ast.IndexExpr: // l[labelComponent] = stage
					if key, ok := value(n.Index); ok {
						op.dynamic[key] = true
					}
				}
				return true
			})
			return false
		case *ast.CallExpr: // ContainerPort().WithName("http").WithContainerPort(config.HTTPPort)
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "WithContainerPort" || len(n.Args) != 1 || exprString(n.Args[0]) != "config.HTTPPort" {
				return true
			}
			if named, ok := sel.X.(*ast.CallExpr); ok && len(named.Args) == 1 {
				if s, ok := named.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "WithName" {
					op.httpPortName = stringLit(named.Args[0])
				}
			}
		}
		return true
	})
	if len(op.fixed) == 0 || op.instanceKey == "" || op.componentKey == "" || op.httpPortName == "" {
		t.Fatalf("%s: could not read the stage pods' labels (commonLabels, labelInstance, labelComponent) or their HTTP port's name: %+v", childrenFile, op)
	}
	return op
}

func exprString(e ast.Expr) string {
	if s, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := s.X.(*ast.Ident); ok {
			return x.Name + "." + s.Sel.Name
		}
	}
	return ""
}

// metaPodLabel is the Kubernetes service discovery's meta label of a pod
// label.
func metaPodLabel(label string) string {
	return "__meta_kubernetes_pod_label_" + regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(label, "_")
}

func podMonitor(t *testing.T, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	pms := find(objs, "PodMonitor")
	if len(pms) != 1 {
		t.Fatalf("want one PodMonitor, got %d", len(pms))
	}
	return pms[0]
}

func podMetricsEndpoint(t *testing.T, pm *unstructured.Unstructured) map[string]any {
	t.Helper()
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(eps) != 1 {
		t.Fatalf("PodMonitor %s: want one podMetricsEndpoint, got %d", pm.GetName(), len(eps))
	}
	return eps[0].(map[string]any)
}

// relabelings returns the PodMonitor's relabelings as target label ←
// source label; each must copy one label.
func relabelings(t *testing.T, pm *unstructured.Unstructured) map[string]string {
	t.Helper()
	rules, _ := podMetricsEndpoint(t, pm)["relabelings"].([]any)
	out := map[string]string{}
	for _, r := range rules {
		r := r.(map[string]any)
		src, _ := r["sourceLabels"].([]any)
		target, _ := r["targetLabel"].(string)
		if len(src) != 1 || target == "" || (r["action"] != nil && r["action"] != "replace") {
			t.Fatalf("relabeling %v: want a replace of one source label into targetLabel", r)
		}
		out[target] = src[0].(string)
	}
	return out
}

func wantMatchNames(t *testing.T, pm *unstructured.Unstructured, want ...string) {
	t.Helper()
	sel, _, _ := unstructured.NestedMap(pm.Object, "spec", "namespaceSelector")
	got, _, _ := unstructured.NestedStringSlice(sel, "matchNames")
	if !slices.Equal(got, want) || sel["any"] != nil {
		t.Errorf("namespaceSelector %v, want matchNames %v", sel, want)
	}
}

func dashboardConfigMap(t *testing.T, objs []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	cms := find(objs, "ConfigMap")
	if len(cms) != 1 || cms[0].GetName() != dashboardName {
		t.Fatalf("want one ConfigMap %s, got %d", dashboardName, len(cms))
	}
	return cms[0]
}
