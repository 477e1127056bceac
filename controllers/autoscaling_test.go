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
	"fmt"
	"slices"
	"strings"
	"testing"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// hpaMetricStrings reads an HPA's metrics as one line each:
// "cpu <percent>" or "pods <name> <average value> [<selector>]".
func hpaMetricStrings(t *testing.T, metrics []autoscalingv2.MetricSpec) []string {
	t.Helper()
	out := make([]string, 0, len(metrics))
	for _, m := range metrics {
		switch {
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == "cpu" &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType:
			out = append(out, fmt.Sprintf("cpu %d", ptr.Deref(m.Resource.Target.AverageUtilization, 0)))
		case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods != nil &&
			m.Pods.Target.Type == autoscalingv2.AverageValueMetricType && m.Pods.Target.AverageValue != nil:
			line := fmt.Sprintf("pods %s %s", m.Pods.Metric.Name, m.Pods.Target.AverageValue.String())
			if sel := m.Pods.Metric.Selector; sel != nil {
				keys := make([]string, 0, len(sel.MatchLabels))
				for k, v := range sel.MatchLabels {
					keys = append(keys, k+"="+v)
				}
				slices.Sort(keys)
				line += " " + strings.Join(keys, ",")
			}
			out = append(out, line)
		default:
			t.Fatalf("unexpected metric %+v", m)
		}
	}
	return out
}

// TestDesiredHPAMetrics: the autoscaler scales on CPU when its target is
// set or nothing else is, on the request rate per pod when
// requestsPerSecond is set, and on each listed per-pod metric.
func TestDesiredHPAMetrics(t *testing.T) {
	rps := func(n int32) *servingv1alpha1.RequestsPerSecondTarget {
		return &servingv1alpha1.RequestsPerSecondTarget{Target: n}
	}
	queue := servingv1alpha1.PodsMetricTarget{
		Name: "recpipeline_queue_depth", Target: "500m",
		Selector: &servingv1alpha1.MetricSelector{MatchLabels: map[string]servingv1alpha1.MetricLabelValue{"queue": "rank", "tier": "a"}},
	}
	latency := servingv1alpha1.PodsMetricTarget{Name: "recpipeline_p99_seconds", Target: "0.25"}
	tests := map[string]struct {
		spec servingv1alpha1.AutoscalingSpec
		want []string
	}{
		"nothing but bounds: CPU at 70": {
			want: []string{"cpu 70"},
		},
		"CPU target alone": {
			spec: servingv1alpha1.AutoscalingSpec{TargetCPUUtilization: ptr.To[int32](55)},
			want: []string{"cpu 55"},
		},
		"requests per second alone: no CPU": {
			spec: servingv1alpha1.AutoscalingSpec{RequestsPerSecond: rps(200)},
			want: []string{"pods recpipeline_requests_per_second 200"},
		},
		"a target that is no quantity is left out": {
			spec: servingv1alpha1.AutoscalingSpec{
				RequestsPerSecond: rps(40),
				Metrics:           []servingv1alpha1.PodsMetricTarget{{Name: "broken", Target: "lots"}, latency},
			},
			want: []string{"pods recpipeline_requests_per_second 40", "pods recpipeline_p99_seconds 250m"},
		},
		"requests per second beside an explicit CPU target": {
			spec: servingv1alpha1.AutoscalingSpec{TargetCPUUtilization: ptr.To[int32](80), RequestsPerSecond: rps(150)},
			want: []string{"cpu 80", "pods recpipeline_requests_per_second 150"},
		},
		"custom metrics alone: no CPU, selector kept": {
			spec: servingv1alpha1.AutoscalingSpec{Metrics: []servingv1alpha1.PodsMetricTarget{queue, latency}},
			want: []string{"pods recpipeline_queue_depth 500m queue=rank,tier=a", "pods recpipeline_p99_seconds 250m"},
		},
		"requests per second and a custom metric": {
			spec: servingv1alpha1.AutoscalingSpec{RequestsPerSecond: rps(200), Metrics: []servingv1alpha1.PodsMetricTarget{latency}},
			want: []string{"pods recpipeline_requests_per_second 200", "pods recpipeline_p99_seconds 250m"},
		},
		"all three": {
			spec: servingv1alpha1.AutoscalingSpec{
				TargetCPUUtilization: ptr.To[int32](90), RequestsPerSecond: rps(1000),
				Metrics: []servingv1alpha1.PodsMetricTarget{queue},
			},
			want: []string{"cpu 90", "pods recpipeline_requests_per_second 1k", "pods recpipeline_queue_depth 500m queue=rank,tier=a"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			rp := samplePipeline("ns", "feed")
			spec := tc.spec
			spec.MinReplicas, spec.MaxReplicas = 3, 12
			rp.Spec.Ranking.FirstStage.Scaling = &servingv1alpha1.ScalingSpec{Autoscaling: &spec}
			ac := desiredHPA(rp, config.StageRankerFirst)
			if ac == nil {
				t.Fatal("got no HPA")
			}
			hpa := &autoscalingv2.HorizontalPodAutoscaler{}
			asTyped(t, ac, hpa)
			if hpa.Name != ChildName(rp, config.StageRankerFirst) || hpa.Spec.ScaleTargetRef.Name != hpa.Name ||
				ptr.Deref(hpa.Spec.MinReplicas, 0) != 3 || hpa.Spec.MaxReplicas != 12 {
				t.Errorf("HPA %s: target %+v, replicas %v..%d; want the stage's Deployment, 3..12",
					hpa.Name, hpa.Spec.ScaleTargetRef, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			if got := hpaMetricStrings(t, hpa.Spec.Metrics); !slices.Equal(got, tc.want) {
				t.Errorf("metrics\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
