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

// Command operator-demo runs the operator against a local kube-apiserver
// and etcd (no cluster, no kubelet), applies the sample RecPipeline and
// prints what the controller made of it: the children, the status and the
// rendered runtime config. It also shows the API server refusing an invalid
// pipeline. With -keep it leaves the API server up and prints a kubeconfig
// for kubectl.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/controllers"
	"github.com/recpipeline/recpipeline/runtime/config"
)

func main() {
	sample := flag.String("sample", "config/samples/serving_v1alpha1_recpipeline.yaml", "RecPipeline manifest to apply.")
	crds := flag.String("crds", "config/crd/bases", "Directory of the CRDs.")
	keep := flag.Bool("keep", false, "Keep the API server and the operator running until interrupted.")
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	if err := run(*sample, *crds, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "operator-demo:", err)
		os.Exit(1)
	}
}

func run(samplePath, crdDir string, keep bool) error {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make demo`, which builds etcd and kube-apiserver first")
	}
	scheme, err := newScheme()
	if err != nil {
		return err
	}

	fmt.Println("Starting etcd and kube-apiserver, installing the RecPipeline CRD")
	env := &envtest.Environment{CRDDirectoryPaths: []string{crdDir}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		return fmt.Errorf("failed to start the API server: %w", err)
	}
	defer func() { _ = env.Stop() }()

	mgr, err := newManager(cfg, scheme)
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = mgr.Start(ctx)
	}()
	// The manager stops before the API server does (deferred before it, so
	// run after it): with the API server gone first, its informers and
	// reconciles log connection errors with stack traces on a normal exit.
	defer func() {
		cancel()
		<-stopped
	}()

	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "recs"}}); err != nil {
		return err
	}
	rp, err := applySample(ctx, c, samplePath)
	if err != nil {
		return err
	}
	if err := waitForReconcile(ctx, c, rp); err != nil {
		return err
	}
	if err := printChildren(ctx, c, rp); err != nil {
		return err
	}
	if err := printStatus(ctx, c, rp); err != nil {
		return err
	}
	if err := showRefusal(ctx, c, rp); err != nil {
		return err
	}
	if keep {
		return keepRunning(ctx, env)
	}
	return nil
}

// newScheme returns a scheme of the built-in kinds and the RecPipeline API.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := servingv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// newManager creates a manager for the API server at cfg, without a metrics
// endpoint, with the RecPipeline controller set up on it.
func newManager(cfg *rest.Config, scheme *runtime.Scheme) (ctrl.Manager, error) {
	cacheOpts, err := controllers.CacheOptions(nil)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Cache: cacheOpts, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return nil, fmt.Errorf("failed to create the manager: %w", err)
	}
	if err := (&controllers.RecPipelineReconciler{
		Client:       mgr.GetClient(),
		Scheme:       mgr.GetScheme(),
		Recorder:     mgr.GetEventRecorder("recpipeline-operator"),
		DefaultImage: "ghcr.io/recpipeline/recserve:latest",
		StatusReader: &controllers.HTTPStatusReader{},
		APIReader:    mgr.GetAPIReader(),
	}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	return mgr, nil
}

// applySample reads the RecPipeline manifest at samplePath and creates it in
// the recs namespace.
func applySample(ctx context.Context, c client.Client, samplePath string) (*servingv1alpha1.RecPipeline, error) {
	raw, err := os.ReadFile(samplePath)
	if err != nil {
		return nil, fmt.Errorf("failed to read the sample: %w", err)
	}
	rp := &servingv1alpha1.RecPipeline{}
	if err := yaml.UnmarshalStrict(raw, rp); err != nil {
		return nil, fmt.Errorf("failed to parse the sample: %w", err)
	}
	rp.Namespace = "recs"
	fmt.Printf("Applying %s as recs/%s\n", samplePath, rp.Name)
	if err := c.Create(ctx, rp.DeepCopy()); err != nil {
		return nil, fmt.Errorf("failed to create the sample: %w", err)
	}
	return rp, nil
}

// waitForReconcile polls rp until the controller has observed its generation,
// for at most 30s, and leaves the latest state in rp.
func waitForReconcile(ctx context.Context, c client.Client, rp *servingv1alpha1.RecPipeline) error {
	key := client.ObjectKeyFromObject(rp)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.Get(ctx, key, rp); err != nil {
			return err
		}
		if rp.Status.ObservedGeneration == rp.Generation {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the controller did not reconcile the sample within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// printChildren lists, kind by kind, the objects that rp controls.
func printChildren(ctx context.Context, c client.Client, rp *servingv1alpha1.RecPipeline) error {
	fmt.Println("\nChildren owned by the pipeline:")
	lists := []client.ObjectList{
		&corev1.ConfigMapList{}, &corev1.ServiceAccountList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{},
		&corev1.ServiceList{}, &appsv1.DeploymentList{}, &autoscalingv2.HorizontalPodAutoscalerList{},
		&policyv1.PodDisruptionBudgetList{},
	}
	for _, list := range lists {
		if err := c.List(ctx, list, client.InNamespace("recs")); err != nil {
			return err
		}
		items, _ := meta.ExtractList(list)
		for _, item := range items {
			obj := item.(client.Object)
			if !metav1.IsControlledBy(obj, rp) {
				continue
			}
			kind := strings.TrimSuffix(fmt.Sprintf("%T", list)[strings.LastIndex(fmt.Sprintf("%T", list), ".")+1:], "List")
			fmt.Printf("  %-24s %s%s\n", kind, obj.GetName(), childDetail(obj))
		}
	}
	return nil
}

// childDetail returns what printChildren shows of obj beyond its kind and
// name: the replicas and the command of a Deployment, nothing otherwise.
func childDetail(obj client.Object) string {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return ""
	}
	replicas := "autoscaled"
	if d.Spec.Replicas != nil {
		replicas = fmt.Sprint(*d.Spec.Replicas)
	}
	return fmt.Sprintf("  replicas=%s  %s", replicas, strings.Join(d.Spec.Template.Spec.Containers[0].Args[:1], " "))
}

// printStatus prints the status of rp and the live part of the runtime config
// it rendered, parsed as the runtime would parse it.
func printStatus(ctx context.Context, c client.Client, rp *servingv1alpha1.RecPipeline) error {
	fmt.Println("\nStatus (no kubelet runs here, so no pod becomes ready):")
	status, _ := yaml.Marshal(rp.Status)
	fmt.Print(indent(string(status)))

	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "recs", Name: controllers.ConfigMapName(rp)}, cm); err != nil {
		return err
	}
	fmt.Printf("\nRendered runtime config (%s, revision %s), live part:\n", controllers.ConfigMapName(rp), rp.Status.ConfigRevision)
	parsed, err := config.Parse([]byte(cm.Data[config.ConfigKey]))
	if err != nil {
		return fmt.Errorf("the runtime would refuse the rendered config: %w", err)
	}
	live, _ := yaml.Marshal(parsed.Live)
	fmt.Print(indent(string(live)))
	return nil
}

// showRefusal creates a copy of rp whose rerank is wider than its second
// stage keeps, and fails unless the API server refuses it.
func showRefusal(ctx context.Context, c client.Client, rp *servingv1alpha1.RecPipeline) error {
	bad := rp.DeepCopy()
	bad.ObjectMeta = metav1.ObjectMeta{Namespace: "recs", Name: "too-wide"}
	bad.Status = servingv1alpha1.RecPipelineStatus{}
	bad.Spec.Rerank.Size = 500
	fmt.Println("\nAn invalid pipeline (rerank.size 500 > secondStage.keep 100) is refused by the API server:")
	if err := c.Create(ctx, bad); err != nil {
		fmt.Println(indent(err.Error()))
		return nil
	}
	return errors.New("the API server accepted an invalid pipeline")
}

// keepRunning writes a kubeconfig for the API server of env and waits until
// ctx is done.
func keepRunning(ctx context.Context, env *envtest.Environment) error {
	kubeconfig := filepath.Join(os.TempDir(), "recpipeline-demo.kubeconfig")
	user, err := env.AddUser(envtest.User{Name: "demo", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	b, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, b, 0o600); err != nil {
		return err
	}
	fmt.Printf("\nThe API server keeps running: KUBECONFIG=%s bin/k8s/kubectl get rp -A\nPress Ctrl-C to stop.\n", kubeconfig)
	<-ctx.Done()
	return nil
}

func indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
