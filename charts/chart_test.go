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
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const (
	chartDir = "recpipeline-operator"
	// chartCRDDir holds byte-for-byte copies of configCRDDir; the chart's
	// templates/crds.yaml renders them.
	chartCRDDir  = chartDir + "/files/crds"
	configCRDDir = "../config/crd/bases"
	configRole   = "../config/rbac/role.yaml"

	release   = "recpipeline-operator"
	namespace = "recpipeline-system"
	// kubeVersion is the oldest Kubernetes the chart supports (Chart.yaml's
	// kubeVersion). Passed explicitly because a helm built with `go install`
	// assumes v1.20, which the chart refuses.
	kubeVersion = "v1.30.0"
)

// helm returns the absolute path of the helm binary in $HELM. Without it the
// test is skipped, or fails when CI is set so that CI never passes silently.
func helm(t *testing.T) string {
	t.Helper()
	path := os.Getenv("HELM")
	if path == "" {
		const msg = "HELM is not set: run `make test`, or set HELM to the absolute path of a helm v3 binary (the Makefile installs bin/helm-v3.22.0)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if !filepath.IsAbs(path) {
		t.Fatalf("HELM=%q must be an absolute path", path)
	}
	return path
}

// runHelm runs helm with args in this directory and returns its stdout.
func runHelm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helm(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

// render returns `helm template` of the chart with the given values files
// and --set flags.
func render(t *testing.T, valuesFiles []string, set ...string) []byte {
	t.Helper()
	out, err := runHelm(t, renderArgs(valuesFiles, set...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func renderArgs(valuesFiles []string, set ...string) []string {
	args := []string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}
	for _, f := range valuesFiles {
		args = append(args, "--values", f)
	}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return args
}

// decode splits a multi-document YAML stream into objects, skipping empty
// documents.
func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("failed to split the YAML stream: %v", err)
		}
		obj := map[string]any{}
		if err := utilyaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("failed to parse a YAML document: %v\n%s", err, doc)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
}

// find returns the objects of a kind, in rendering order.
func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// TestCRDsMatchConfig fails when the chart's CRDs drift from the ones
// controller-gen writes into config/crd/bases.
func TestCRDsMatchConfig(t *testing.T) {
	const fix = "the chart's CRDs differ from config/crd/bases: run `make chart-crds` (after `make manifests`) and commit charts/" + chartCRDDir
	want, err := filepath.Glob(filepath.Join(configCRDDir, "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRD in %s (err %v)", configCRDDir, err)
	}
	got, err := filepath.Glob(filepath.Join(chartCRDDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(base(want), base(got)) {
		t.Fatalf("%s\nconfig: %v\nchart:  %v", fix, base(want), base(got))
	}
	for _, p := range want {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.ReadFile(filepath.Join(chartCRDDir, filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(src, dst) {
			t.Errorf("%s: %s", filepath.Base(p), fix)
		}
	}
}

// TestRenderedCRDsMatchConfig checks what the chart installs: each CRD of
// config/crd/bases, unchanged but for the release's labels and the
// annotation that keeps it on uninstall.
func TestRenderedCRDsMatchConfig(t *testing.T) {
	crds := find(decode(t, render(t, nil)), "CustomResourceDefinition")
	paths, err := filepath.Glob(filepath.Join(configCRDDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != len(paths) {
		t.Fatalf("the chart renders %d CRDs, config/crd/bases holds %d", len(crds), len(paths))
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want := decode(t, data)[0]
		i := slices.IndexFunc(crds, func(o *unstructured.Unstructured) bool { return o.GetName() == want.GetName() })
		if i < 0 {
			t.Errorf("the chart does not render CRD %s", want.GetName())
			continue
		}
		got := crds[i].DeepCopy()
		if got.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s: want annotation helm.sh/resource-policy=keep so that helm uninstall keeps it, got %v", got.GetName(), got.GetAnnotations())
		}
		if got.GetLabels()["app.kubernetes.io/instance"] != release {
			t.Errorf("CRD %s: want the release's labels, got %v", got.GetName(), got.GetLabels())
		}
		annotations := got.GetAnnotations()
		delete(annotations, "helm.sh/resource-policy")
		got.SetAnnotations(annotations)
		got.SetLabels(want.GetLabels())
		if !reflect.DeepEqual(got.Object, want.Object) {
			t.Errorf("CRD %s: the rendered schema differs from %s; templates/crds.yaml must only add labels and the keep annotation", got.GetName(), p)
		}
	}
}

// TestLint runs `helm lint --strict` with the default values and each value
// set of the golden tests.
func TestLint(t *testing.T) {
	cases := map[string][]string{"defaults": nil}
	values, err := filepath.Glob("testdata/*.values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		cases[strings.TrimSuffix(filepath.Base(v), ".values.yaml")] = []string{"--values", v}
	}
	for name, extra := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"lint", "--strict", chartDir, "--namespace", namespace}, extra...)
			if out, err := runHelm(t, args...); err != nil {
				t.Fatal(err)
			} else if bytes.Contains(out, []byte("[WARNING]")) || bytes.Contains(out, []byte("[ERROR]")) {
				t.Fatalf("helm lint reported problems:\n%s", out)
			}
		})
	}
}

// TestTemplateGolden compares `helm template` for each testdata/<case>.values.yaml
// with testdata/<case>.golden.yaml. Refresh with `go test ./charts/... -update`
// and review the diff. The CRDs appear in the golden files by name only:
// TestRenderedCRDsMatchConfig checks their content, so an API change needs
// `make chart-crds` and no golden update. So does the Grafana dashboard's
// JSON, which TestDashboardConfigMapHoldsTheFile checks.
func TestTemplateGolden(t *testing.T) {
	values, err := filepath.Glob("testdata/*.values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(values) < 3 {
		t.Fatalf("want at least three value sets in testdata/, found %v", values)
	}
	for _, v := range values {
		name := strings.TrimSuffix(filepath.Base(v), ".values.yaml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := withoutBulkyBodies(t, render(t, []string{v}))
			golden := filepath.Join("testdata", name+".golden.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (create it with -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("helm template with %s differs from %s; if the change is intended, run `go test ./charts/... -update` and review the diff\n%s", v, golden, firstDifference(want, got))
			}
		})
	}
}

// withoutBulkyBodies replaces each CustomResourceDefinition of a rendering
// by one comment line naming it, and the data of the Grafana dashboard's
// ConfigMap by a comment naming its file.
func withoutBulkyBodies(t *testing.T, rendered []byte) []byte {
	t.Helper()
	docs := strings.Split(string(rendered), "\n---\n")
	for i, doc := range docs {
		objs := decode(t, []byte(doc))
		if len(objs) != 1 {
			continue
		}
		switch o := objs[0]; {
		case o.GetKind() == "CustomResourceDefinition":
			source, _, _ := strings.Cut(strings.TrimPrefix(doc, "---\n"), "\n")
			docs[i] = fmt.Sprintf("%s\n# CustomResourceDefinition %s, as in config/crd/bases (see TestRenderedCRDsMatchConfig)", source, o.GetName())
		case o.GetKind() == "ConfigMap" && o.GetName() == dashboardName:
			head, _, ok := strings.Cut(doc, "\ndata:\n")
			if !ok {
				t.Fatalf("ConfigMap %s has no data", o.GetName())
			}
			docs[i] = head + "\ndata:\n  # " + dashboardKey + ": " + strings.TrimPrefix(dashboardFile, chartDir+"/") + " (see TestDashboardConfigMapHoldsTheFile)"
		}
	}
	return []byte(strings.Join(docs, "\n---\n"))
}

// firstDifference shows the first line where two texts differ.
func firstDifference(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want: %q\n  got:  %q", i+1, wl, gl)
		}
	}
	return "no line differs"
}

// TestManagerRulesMatchConfig fails when the chart grants the manager other
// permissions than config/rbac/role.yaml, which controller-gen generates
// from the +kubebuilder:rbac markers: as a ClusterRole by default, and as a
// Role in each namespace when watchNamespaces is set.
func TestManagerRulesMatchConfig(t *testing.T) {
	data, err := os.ReadFile(configRole)
	if err != nil {
		t.Fatal(err)
	}
	var want rbacv1.ClusterRole
	if err := utilyaml.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	if len(want.Rules) == 0 {
		t.Fatalf("%s has no rules", configRole)
	}
	const fix = "the manager's rules in charts/recpipeline-operator/templates/_helpers.tpl (recpipeline-operator.managerRules) differ from config/rbac/role.yaml: copy its rules there"

	rulesOf := func(t *testing.T, o *unstructured.Unstructured, into any) []rbacv1.PolicyRule {
		t.Helper()
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if err := utilyaml.Unmarshal(data, into); err != nil {
			t.Fatal(err)
		}
		switch r := into.(type) {
		case *rbacv1.ClusterRole:
			return r.Rules
		case *rbacv1.Role:
			return r.Rules
		}
		return nil
	}

	t.Run("ClusterRole", func(t *testing.T) {
		objs := decode(t, render(t, nil))
		var found bool
		for _, o := range find(objs, "ClusterRole") {
			if o.GetName() != release+"-manager" {
				continue
			}
			found = true
			if got := rulesOf(t, o, &rbacv1.ClusterRole{}); !reflect.DeepEqual(got, want.Rules) {
				t.Errorf("%s\ngot:  %+v\nwant: %+v", fix, got, want.Rules)
			}
		}
		if !found {
			t.Fatalf("no ClusterRole %s-manager in the default rendering", release)
		}
	})

	t.Run("Role per watched namespace", func(t *testing.T) {
		objs := decode(t, render(t, nil, "watchNamespaces={team-a,team-b}"))
		roles := map[string]bool{}
		for _, o := range find(objs, "Role") {
			if o.GetName() != release+"-manager" {
				continue
			}
			roles[o.GetNamespace()] = true
			if got := rulesOf(t, o, &rbacv1.Role{}); !reflect.DeepEqual(got, want.Rules) {
				t.Errorf("Role in %s: %s\ngot:  %+v\nwant: %+v", o.GetNamespace(), fix, got, want.Rules)
			}
		}
		if !roles["team-a"] || !roles["team-b"] || len(roles) != 2 {
			t.Errorf("want a manager Role in team-a and team-b only, got %v", roles)
		}
	})
}

// TestValues checks what users rely on when they set values, beyond the
// golden files: the manager's flags, where its permissions apply, what is
// left out.
func TestValues(t *testing.T) {
	cases := map[string]struct {
		set   []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		"defaults watch every namespace with a ClusterRole, install the CRD, no ServiceMonitor": {
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				args := managerArgs(t, objs)
				for _, want := range []string{"--leader-elect=true", "--default-runtime-image=ghcr.io/recpipeline/recserve:0.1.0", "--default-tools-image=ghcr.io/recpipeline/recpipeline-tools:0.1.0", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"} {
					if !slices.Contains(args, want) {
						t.Errorf("args %v lack %s", args, want)
					}
				}
				if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--watch-namespaces") }) {
					t.Errorf("args %v restrict the namespaces by default", args)
				}
				wantKinds(t, objs, map[string]int{"CustomResourceDefinition": 1, "ClusterRoleBinding": 1, "ServiceMonitor": 0, "Service": 1})
			},
		},
		"watchNamespaces passes the flag and binds Roles instead of a ClusterRole": {
			set: []string{"watchNamespaces={team-a,team-b}"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if args := managerArgs(t, objs); !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
					t.Errorf("args %v lack --watch-namespaces=team-a,team-b", args)
				}
				wantKinds(t, objs, map[string]int{"ClusterRoleBinding": 0})
				for _, o := range find(objs, "RoleBinding") {
					if o.GetName() == release+"-manager" && !slices.Contains([]string{"team-a", "team-b"}, o.GetNamespace()) {
						t.Errorf("manager RoleBinding in unexpected namespace %s", o.GetNamespace())
					}
				}
			},
		},
		"crds.install=false leaves the CRD out": {
			set: []string{"crds.install=false"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				wantKinds(t, objs, map[string]int{"CustomResourceDefinition": 0})
			},
		},
		"leader election off passes --leader-elect=false and drops its Role": {
			set: []string{"leaderElection.enabled=false"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if args := managerArgs(t, objs); !slices.Contains(args, "--leader-elect=false") {
					t.Errorf("args %v lack --leader-elect=false", args)
				}
				for _, o := range find(objs, "Role") {
					if strings.HasSuffix(o.GetName(), "-leader-election") {
						t.Errorf("leader-election Role rendered with leader election off")
					}
				}
			},
		},
		"the kubelet waits longer than the graceful shutdown": {
			set: []string{"gracefulShutdownTimeoutSeconds=90"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if args := managerArgs(t, objs); !slices.Contains(args, "--graceful-shutdown-timeout=90s") {
					t.Errorf("args %v lack --graceful-shutdown-timeout=90s", args)
				}
				grace, _, _ := unstructured.NestedInt64(find(objs, "Deployment")[0].Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
				if grace <= 90 {
					t.Errorf("terminationGracePeriodSeconds = %d, want more than 90", grace)
				}
			},
		},
		"a tools image repository and tag reach the manager": {
			set: []string{"toolsImage.repository=registry.example/tools", "toolsImage.tag=v9"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if args := managerArgs(t, objs); !slices.Contains(args, "--default-tools-image=registry.example/tools:v9") {
					t.Errorf("args %v lack the tools image", args)
				}
			},
		},
		"a runtime image digest wins over the tag": {
			set: []string{"runtimeImage.tag=v9", "runtimeImage.digest=sha256:0123"},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				if args := managerArgs(t, objs); !slices.Contains(args, "--default-runtime-image=ghcr.io/recpipeline/recserve@sha256:0123") {
					t.Errorf("args %v lack the pinned runtime image", args)
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

// TestRefusedValues checks that contradictory values fail with a message
// instead of rendering a broken install.
func TestRefusedValues(t *testing.T) {
	cases := map[string]struct {
		set  []string
		want string
	}{
		"several replicas without leader election": {
			set:  []string{"replicaCount=2", "leaderElection.enabled=false"},
			want: "replicaCount > 1 needs leaderElection.enabled=true",
		},
		"ServiceMonitor without the metrics Service": {
			set:  []string{"metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"},
			want: "metrics.serviceMonitor.enabled needs metrics.service.enabled",
		},
		"an existing ServiceAccount without a name": {
			set:  []string{"serviceAccount.create=false"},
			want: "serviceAccount.name is required",
		},
		"a Grafana dashboard without the sidecar's label": {
			set:  []string{"pipelineMonitoring.grafanaDashboard.enabled=true", "pipelineMonitoring.grafanaDashboard.label="},
			want: "pipelineMonitoring.grafanaDashboard.label is required",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := runHelm(t, renderArgs(nil, tc.set...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("want an error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// managerArgs returns the args of the manager container.
func managerArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	deployments := find(objs, "Deployment")
	if len(deployments) != 1 {
		t.Fatalf("want one Deployment, got %d", len(deployments))
	}
	containers, _, _ := unstructured.NestedSlice(deployments[0].Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		c := c.(map[string]any)
		if c["name"] != "manager" {
			continue
		}
		args, _, _ := unstructured.NestedStringSlice(c, "args")
		return args
	}
	t.Fatal("no manager container")
	return nil
}

// wantKinds checks how many objects of each kind were rendered.
func wantKinds(t *testing.T, objs []*unstructured.Unstructured, want map[string]int) {
	t.Helper()
	for kind, n := range want {
		if got := len(find(objs, kind)); got != n {
			t.Errorf("rendered %d %s, want %d", got, kind, n)
		}
	}
}
