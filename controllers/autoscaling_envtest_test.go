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

package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
)

// rankerAutoscaling sets the second-stage ranker's autoscaling to spec,
// with 2 to 20 replicas.
func rankerAutoscaling(spec servingv1alpha1.AutoscalingSpec) func(*servingv1alpha1.RecPipeline) {
	return func(rp *servingv1alpha1.RecPipeline) {
		spec.MinReplicas, spec.MaxReplicas = 2, 20
		rp.Spec.Ranking.SecondStage.Scaling = &servingv1alpha1.ScalingSpec{Autoscaling: &spec}
	}
}

// TestAPIServerChecksAutoscalingMetrics: the API server refuses request
// rate and custom metric targets that are not positive, metric names and
// selectors the metrics API cannot take, and the request rate asked for
// twice, each naming the field.
func TestAPIServerChecksAutoscalingMetrics(t *testing.T) {
	const path = "spec.ranking.secondStage.scaling.autoscaling"
	metric := func(name, target string) servingv1alpha1.PodsMetricTarget {
		return servingv1alpha1.PodsMetricTarget{Name: name, Target: target}
	}
	metrics := []string{"spec", "ranking", "secondStage", "scaling", "autoscaling", "metrics"}
	runRefusalCases(t, map[string]refusalCase{
		"requests per second of 0": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				RequestsPerSecond: &servingv1alpha1.RequestsPerSecondTarget{Target: 0},
			})),
			want: []string{path + ".requestsPerSecond.target", "greater than or equal to 1"},
		},
		"requests per second without a target": {
			mutate: rawField([]string{"spec", "ranking", "secondStage", "scaling", "autoscaling", "requestsPerSecond"}, map[string]any{}),
			want:   []string{path + ".requestsPerSecond.target", "Required value"},
		},
		"a custom metric target of 0": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("queue_depth", "0")},
			})),
			want: []string{path + ".metrics[0].target", "target must be a positive quantity"},
		},
		"a negative custom metric target": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("queue_depth", "10"), metric("p99", "-500m")},
			})),
			want: []string{path + ".metrics[1].target", "target must be a positive quantity"},
		},
		"a custom metric target that is no quantity": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("queue_depth", "lots")},
			})),
			want: []string{path + ".metrics[0].target", "target must be a positive quantity"},
		},
		"a custom metric target written as a number": {
			mutate: func(u *unstructured.Unstructured) {
				typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{}))(u)
				rawField(metrics, []any{map[string]any{"name": "queue_depth", "target": int64(200)}})(u)
			},
			want: []string{path + ".metrics[0].target", "must be of type string"},
		},
		"a custom metric name with a space": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("queue depth", "10")},
			})),
			want: []string{path + ".metrics[0].name", "should match"},
		},
		"the same custom metric twice": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("queue_depth", "10"), metric("queue_depth", "20")},
			})),
			want: []string{path + ".metrics[1]", "Duplicate value"},
		},
		"an empty metrics list": {
			mutate: func(u *unstructured.Unstructured) {
				typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{}))(u)
				rawField(metrics, []any{})(u)
			},
			want: []string{path + ".metrics", "at least 1 items"},
		},
		"more than four custom metrics": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{metric("a", "1"), metric("b", "1"), metric("c", "1"), metric("d", "1"), metric("e", "1")},
			})),
			want: []string{path + ".metrics", "must have at most 4 items"},
		},
		"a selector value that is no label value": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				Metrics: []servingv1alpha1.PodsMetricTarget{{Name: "queue_depth", Target: "10",
					Selector: &servingv1alpha1.MetricSelector{MatchLabels: map[string]servingv1alpha1.MetricLabelValue{"queue": "rank ing"}}}},
			})),
			want: []string{path + ".metrics[0].selector.matchLabels.queue", "should match"},
		},
		"the request rate both as requestsPerSecond and under metrics": {
			mutate: typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
				RequestsPerSecond: &servingv1alpha1.RequestsPerSecondTarget{Target: 200},
				Metrics:           []servingv1alpha1.PodsMetricTarget{metric(servingv1alpha1.RequestsPerSecondMetric, "100")},
			})),
			want: []string{path, "metrics must not list recpipeline_requests_per_second when requestsPerSecond is set"},
		},
		"bounds still checked beside a request rate": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rankerAutoscaling(servingv1alpha1.AutoscalingSpec{RequestsPerSecond: &servingv1alpha1.RequestsPerSecondTarget{Target: 200}})(rp)
				rp.Spec.Ranking.SecondStage.Scaling.Autoscaling.MinReplicas = 30
			}),
			want: []string{path, "minReplicas must not exceed maxReplicas"},
		},
	})
}

// TestAPIServerRefusesUnknownAutoscalingFields: a field the API does not
// have, such as the HPA's averageUtilization written under
// requestsPerSecond, is refused under the strict field validation kubectl
// uses, naming the field, rather than dropped.
func TestAPIServerRefusesUnknownAutoscalingFields(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(servingv1alpha1.GroupVersion.String())
	u.SetKind("RecPipeline")
	u.SetNamespace(newNamespace(t))
	u.SetName("unknown")
	typedSpec(rankerAutoscaling(servingv1alpha1.AutoscalingSpec{RequestsPerSecond: &servingv1alpha1.RequestsPerSecondTarget{Target: 200}}))(u)
	rawField([]string{"spec", "ranking", "secondStage", "scaling", "autoscaling", "requestsPerSecond", "averageUtilization"}, int64(50))(u)
	err := k8s.Create(context.Background(), u, client.FieldValidation("Strict"))
	if err == nil {
		t.Fatal("the API server accepted an unknown field")
	}
	if want := `unknown field "spec.ranking.secondStage.scaling.autoscaling.requestsPerSecond.averageUtilization"`; !strings.Contains(err.Error(), want) {
		t.Errorf("message does not contain %q:\n%v", want, err)
	}
}

// TestHPAScalesOnRequestRateAndCustomMetrics: a stage autoscaled on the
// request rate and a custom metric gets an HPA with both as Pods metrics
// and no CPU metric; reconciling it again writes nothing, though the API
// server stores the target 1.5 as 1500m; dropping them brings CPU back.
func TestHPAScalesOnRequestRateAndCustomMetrics(t *testing.T) {
	ns := newNamespace(t)
	rp := samplePipeline(ns, "rate")
	rankerAutoscaling(servingv1alpha1.AutoscalingSpec{
		RequestsPerSecond: &servingv1alpha1.RequestsPerSecondTarget{Target: 200},
		Metrics: []servingv1alpha1.PodsMetricTarget{{
			Name: "recpipeline_queue_seconds", Target: "1.5",
			Selector: &servingv1alpha1.MetricSelector{MatchLabels: map[string]servingv1alpha1.MetricLabelValue{"queue": "rank"}},
		}},
	})(rp)
	createPipeline(t, rp)
	waitReconciled(t, ns, "rate")

	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	want := []string{"pods recpipeline_requests_per_second 200", "pods recpipeline_queue_seconds 1500m queue=rank"}
	waitHPAMetrics(t, ns, "rate-ranker-second", hpa, want)
	assertControlledBy(t, hpa, getPipeline(t, ns, "rate"))

	waitQuiet(t)
	version := hpa.ResourceVersion
	start := reconcileCount(ns, "rate")
	updateLabels(t, ns, "rate", map[string]string{"touch": "1"})
	waitReconcileAfter(t, ns, "rate", start)
	getObject(t, ns, "rate-ranker-second", hpa)
	if hpa.ResourceVersion != version {
		t.Errorf("the HPA was written again reconciling an unchanged pipeline: resourceVersion %s, then %s", version, hpa.ResourceVersion)
	}

	updatePipeline(t, ns, "rate", rankerAutoscaling(servingv1alpha1.AutoscalingSpec{}))
	waitHPAMetrics(t, ns, "rate-ranker-second", hpa, []string{"cpu 70"})
}

// waitHPAMetrics waits until the HPA name scales on want (as
// hpaMetricStrings reads them), leaving it in hpa.
func waitHPAMetrics(t *testing.T, ns, name string, hpa *autoscalingv2.HorizontalPodAutoscaler, want []string) {
	t.Helper()
	eventually(t, waitTimeout, "the HPA's metrics", func() error {
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, hpa); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("no HPA %s yet", name)
			}
			return err
		}
		if got := hpaMetricStrings(t, hpa.Spec.Metrics); !slices.Equal(got, want) {
			return fmt.Errorf("metrics %q, want %q", got, want)
		}
		return nil
	})
}
