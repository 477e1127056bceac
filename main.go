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

// Command manager runs the RecPipeline operator.
package main

import (
	"flag"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/controllers"
)

// version is the release this manager belongs to: the tag of the images
// built with it and the chart's appVersion (make images sets it with
// -X main.version; version_test.go keeps the default equal to the chart's).
var version = "0.1.0"

// defaultRuntimeImage is the recserve image of pipelines that name none: the
// one released with this manager.
func defaultRuntimeImage() string { return "ghcr.io/recpipeline/recserve:" + version }

// defaultToolsImage is the image of the training job's rectrain for
// pipelines whose spec.training names none: the recpipeline-tools image
// released with this manager.
func defaultToolsImage() string { return "ghcr.io/recpipeline/recpipeline-tools:" + version }

func main() {
	var (
		metricsAddr     string
		probeAddr       string
		leaderElect     bool
		runtimeImage    string
		toolsImage      string
		watchNamespaces string
		shutdownTimeout time.Duration
		workers         int
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one of several manager replicas reconciles.")
	flag.StringVar(&runtimeImage, "default-runtime-image", defaultRuntimeImage(), "recserve image of pipelines whose spec.runtime.image is empty.")
	flag.StringVar(&toolsImage, "default-tools-image", defaultToolsImage(), "recpipeline-tools image (rectrain) of the training jobs of pipelines whose spec.training.image is empty.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; all namespaces when empty.")
	flag.DurationVar(&shutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "How long in-flight reconciles may take to finish on shutdown.")
	flag.IntVar(&workers, "max-concurrent-reconciles", 4, "How many RecPipelines reconcile at once.")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "Failed to build the scheme")
		os.Exit(1)
	}
	if err := servingv1alpha1.AddToScheme(scheme); err != nil {
		log.Error(err, "Failed to build the scheme")
		os.Exit(1)
	}

	cacheOpts, err := controllers.CacheOptions(splitNamespaces(watchNamespaces))
	if err != nil {
		log.Error(err, "Failed to configure the cache")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "recpipeline-operator.serving.recpipeline.dev",
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &shutdownTimeout,
	})
	if err != nil {
		log.Error(err, "Failed to create the manager")
		os.Exit(1)
	}

	if err := (&controllers.RecPipelineReconciler{
		Client:                  mgr.GetClient(),
		Scheme:                  mgr.GetScheme(),
		Recorder:                mgr.GetEventRecorder("recpipeline-operator"),
		DefaultImage:            runtimeImage,
		DefaultToolsImage:       toolsImage,
		StatusReader:            &controllers.HTTPStatusReader{},
		APIReader:               mgr.GetAPIReader(),
		MaxConcurrentReconciles: workers,
		OperatorNamespace:       ownNamespace(),
	}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Failed to set up the controller")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Failed to add the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Failed to add the readiness check")
		os.Exit(1)
	}

	log.Info("Starting the manager", "defaultRuntimeImage", runtimeImage, "defaultToolsImage", toolsImage, "watchNamespaces", watchNamespaces)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "The manager stopped with an error")
		os.Exit(1)
	}
}

// ownNamespace is the namespace of the manager's pod, from its service
// account's token mount; empty outside a cluster.
func ownNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func splitNamespaces(s string) []string {
	var out []string
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
