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
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
)

// A refusalCase is an invalid RecPipeline: the sample pipeline as an
// unstructured object, changed by mutate (and named name, when set).
type refusalCase struct {
	name   string
	mutate func(*unstructured.Unstructured)
	// want are substrings of the API server's message.
	want []string
}

// typedSpec sets the object's spec to the sample's, changed by mutate.
func typedSpec(mutate func(*servingv1alpha1.RecPipeline)) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		rp := samplePipeline("", "")
		mutate(rp)
		b, err := json.Marshal(rp.Spec)
		if err != nil {
			panic(err)
		}
		var spec map[string]any
		if err := json.Unmarshal(b, &spec); err != nil {
			panic(err)
		}
		u.Object["spec"] = spec
	}
}

// rawField sets one field to a value the typed API cannot express.
func rawField(path []string, value any) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(u.Object, value, path...); err != nil {
			panic(err)
		}
	}
}

// runRefusalCases checks that the API server itself, through the CRD's
// schema and CEL rules, refuses each case with a message that names the
// field at fault.
func runRefusalCases(t *testing.T, cases map[string]refusalCase) {
	t.Helper()
	ns := newNamespace(t)
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]any{}}
			u.SetAPIVersion(servingv1alpha1.GroupVersion.String())
			u.SetKind("RecPipeline")
			u.SetNamespace(ns)
			u.SetName("invalid")
			if tc.name != "" {
				u.SetName(tc.name)
			}
			typedSpec(func(*servingv1alpha1.RecPipeline) {})(u)
			tc.mutate(u)
			err := k8s.Create(context.Background(), u)
			if err == nil {
				_ = k8s.Delete(context.Background(), u)
				t.Fatalf("the API server accepted the object; want a refusal naming %v", tc.want)
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid or BadRequest refusal, got %v", err)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

// TestAPIServerAcceptsTheSample: the sample every refusal case starts from
// is itself valid, so that each refusal is the case's own.
func TestAPIServerAcceptsTheSample(t *testing.T) {
	rp := samplePipeline(newNamespace(t), "valid")
	rp.UID = ""
	if err := k8s.Create(context.Background(), rp); err != nil {
		t.Fatalf("the sample was refused: %v", err)
	}
}

// TestAPIServerRefusesInvalidSources: the API server refuses what is wrong with
// the candidate sources.
func TestAPIServerRefusesInvalidSources(t *testing.T) {
	runRefusalCases(t, map[string]refusalCase{
		"unknown source type": {
			mutate: rawField([]string{"spec", "retrieval", "sources"}, []any{map[string]any{"name": "x", "type": "Random", "weight": 1.0, "limit": int64(10)}}),
			want:   []string{"spec.retrieval.sources[0].type", `Unsupported value: "Random"`},
		},
		"duplicate source names": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[1].Name = "trending" }),
			want:   []string{"spec.retrieval.sources[3]", "Duplicate value"},
		},
		"source name that is not a DNS label": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[0].Name = "Followed_Recent" }),
			want:   []string{"spec.retrieval.sources[0].name", "should match"},
		},
		"ANN source without a model": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[1].Model = "" }),
			want:   []string{"spec.retrieval.sources[1]", "model is required for the TwoTowerANN and ItemToItemANN source types"},
		},
		"parameter of another source type": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[3].SeedItems = ptr.To[int32](3) }),
			want:   []string{"spec.retrieval.sources[3]", "seedItems applies only to the ItemToItemANN source type"},
		},
		"ef of a source that does not search": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[0].Ef = ptr.To[int32](200) }),
			want:   []string{"spec.retrieval.sources[0]", "ef applies only to the TwoTowerANN and ItemToItemANN source types"},
		},
		"negative source weight": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[0].Weight = -0.5 }),
			want:   []string{"spec.retrieval.sources[0].weight", "should be greater than or equal to 0"},
		},
		"non-positive maxAge": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[0].MaxAge = &metav1.Duration{} }),
			want:   []string{"spec.retrieval.sources[0].maxAge", "maxAge must be positive"},
		},
		"too many sources": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				for i := 0; i < 16; i++ {
					s := rp.Spec.Retrieval.Sources[3]
					s.Name = "extra-" + strings.Repeat("x", i+1)
					rp.Spec.Retrieval.Sources = append(rp.Spec.Retrieval.Sources, s)
				}
			}),
			want: []string{"spec.retrieval.sources", "must have at most 16 items"},
		},
		"no sources": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources = nil }),
			want:   []string{"spec.retrieval.sources", "Required value"},
		},
		"zero candidates": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Candidates = 0 }),
			want:   []string{"spec.retrieval.candidates", "should be greater than or equal to 1"},
		},
	})
}

// TestAPIServerRefusesInvalidModelsAndWeights: the API server refuses what is wrong
// with the models and the event weights.
func TestAPIServerRefusesInvalidModelsAndWeights(t *testing.T) {
	runRefusalCases(t, map[string]refusalCase{
		"duplicate model names": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Models[1].Name = "mtml"
				rp.Spec.Ranking.FirstStage.Model = "mtml"
			}),
			want: []string{"spec.models[2]", "Duplicate value"},
		},
		"model name that is not a DNS label": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Models[2].Name = "MTML.v12"
				rp.Spec.Ranking.SecondStage.Model = "MTML.v12"
			}),
			want: []string{"spec.models[2].name", "should match"},
		},
		"source names a model not in spec.models": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[1].Model = "missing" }),
			want:   []string{"spec.retrieval.sources[].model must name an entry of spec.models"},
		},
		"first stage names a model not in spec.models": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.FirstStage.Model = "missing" }),
			want:   []string{"spec.ranking.firstStage.model must name an entry of spec.models"},
		},
		"second stage names a model not in spec.models": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.SecondStage.Model = "missing" }),
			want:   []string{"spec.ranking.secondStage.model must name an entry of spec.models"},
		},
		"weight out of range": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["see_less"] = -5000 }),
			want:   []string{"spec.ranking.weights", "values must be finite numbers between -1000 and 1000"},
		},
		"weight that is not a number": {
			mutate: rawField([]string{"spec", "ranking", "weights", "like"}, "lots"),
			want:   []string{"spec.ranking.weights.like", "must be of type number"},
		},
		"weight key that is not an event name": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["See Less"] = -1 }),
			want:   []string{"spec.ranking.weights keys must be event names"},
		},
	})
}

// TestAPIServerRefusesInvalidFunnel: the API server refuses what is wrong with the
// funnel sizes and the rerank rules.
func TestAPIServerRefusesInvalidFunnel(t *testing.T) {
	runRefusalCases(t, map[string]refusalCase{
		"first stage keeps more than retrieval yields": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.FirstStage.Keep = 2000 }),
			want:   []string{"spec.ranking.firstStage.keep must not exceed spec.retrieval.candidates"},
		},
		"second stage keeps more than the first": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.SecondStage.Keep = 400 }),
			want:   []string{"spec.ranking.secondStage.keep must not exceed spec.ranking.firstStage.keep"},
		},
		"rerank keeps more than the second stage": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Size = 101 }),
			want:   []string{"spec.rerank.size must not exceed spec.ranking.secondStage.keep"},
		},
		"unknown rule type": {
			mutate: rawField([]string{"spec", "rerank", "rules"}, []any{map[string]any{"type": "Shuffle"}}),
			want:   []string{"spec.rerank.rules[0].type", `Unsupported value: "Shuffle"`},
		},
		"IntegrityDownrank without its factor": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Rules[2].Factor = nil }),
			want:   []string{"spec.rerank.rules[2]", "above and factor are required for the IntegrityDownrank rule"},
		},
		"integrity threshold above one": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Rules[1].MaxRisk = ptr.To(1.5) }),
			want:   []string{"spec.rerank.rules[1].maxRisk", "should be less than or equal to 1"},
		},
		"a network peer that selects nothing": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Network = &servingv1alpha1.NetworkSpec{Clients: []servingv1alpha1.NetworkPeer{{}}}
			}),
			want: []string{"spec.network.clients[0]", "a peer needs a namespaceSelector, a podSelector or both"},
		},
		"new items' risk below zero": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.NewItemRisk = ptr.To(-0.1) }),
			want:   []string{"spec.rerank.newItemRisk", "should be greater than or equal to 0"},
		},
		"an arm's own new items' risk": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Experiments = []servingv1alpha1.ExperimentSpec{{Name: "a", Traffic: 0.1, Rerank: &servingv1alpha1.RerankSpec{Size: 25, NewItemRisk: ptr.To(0.5)}}}
			}),
			want: []string{"spec.experiments[0]", "a new item's risk is the pipeline's"},
		},
	})
}

// TestAPIServerRefusesInvalidDataAndScaling: the API server refuses what is
// wrong with the data, the store, the scaling and the name.
func TestAPIServerRefusesInvalidDataAndScaling(t *testing.T) {
	runRefusalCases(t, map[string]refusalCase{
		"catalog URI with an unsupported scheme": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Data.Catalog.URI = "s3://bucket/catalog" }),
			want:   []string{"spec.data.catalog.uri", "should match"},
		},
		"Redis store without its address": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Data.Store.Type = servingv1alpha1.StoreRedis }),
			want:   []string{"spec.data.store.redis is required when spec.data.store.type is Redis"},
		},
		"Memory store settings on the Redis store": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Store = servingv1alpha1.StoreSpec{
					Type:   servingv1alpha1.StoreRedis,
					Redis:  &servingv1alpha1.RedisStoreSpec{Address: "redis:6379"},
					Memory: &servingv1alpha1.MemoryStoreSpec{ClaimName: "events"},
				}
			}),
			want: []string{"spec.data.store.memory must be unset when spec.data.store.type is Redis"},
		},
		"Memory store claim that is not a name": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Store.Memory = &servingv1alpha1.MemoryStoreSpec{ClaimName: "Events_Log"}
			}),
			want: []string{"spec.data.store.memory.claimName", "should match"},
		},
		"unknown store type": {
			mutate: rawField([]string{"spec", "data", "store", "type"}, "Memcached"),
			want:   []string{"spec.data.store.type", `Unsupported value: "Memcached"`},
		},
		"a scaled frontend on the Memory store": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Frontend = &servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](3)}}
			}),
			want: []string{"spec.frontend.scaling: the Memory store lives in the frontend pod"},
		},
		"replicas together with autoscaling": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.SecondStage.Scaling.Replicas = ptr.To[int32](3) }),
			want:   []string{"spec.ranking.secondStage.scaling", "set either replicas or autoscaling, not both"},
		},
		"minReplicas above maxReplicas": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.SecondStage.Scaling.Autoscaling.MinReplicas = 30
			}),
			want: []string{"spec.ranking.secondStage.scaling.autoscaling", "minReplicas must not exceed maxReplicas"},
		},
		"pipeline name too long for its children": {
			name:   strings.Repeat("a", 41),
			mutate: typedSpec(func(*servingv1alpha1.RecPipeline) {}),
			want:   []string{"metadata.name must be at most 40 characters"},
		},
	})
}

// TestAPIServerChecksExperiments: arms with valid shares are accepted;
// shares over all users, an arm named control and an empty share are
// refused, naming the field.
func TestAPIServerChecksExperiments(t *testing.T) {
	arms := func(xs ...servingv1alpha1.ExperimentSpec) func(*unstructured.Unstructured) {
		return typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Experiments = xs })
	}
	ns := newNamespace(t)
	ok := samplePipeline(ns, "arms")
	ok.Spec.Experiments = []servingv1alpha1.ExperimentSpec{
		{Name: "more-likes", Traffic: 0.5, Weights: map[string]float64{"like": 4}},
		{Name: "less-trending", Traffic: 0.5, Sources: []servingv1alpha1.SourceOverrideSpec{{Name: "trending", Limit: ptr.To[int32](10)}}},
	}
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("the API server refused arms covering all users: %v", err)
	}
	runRefusalCases(t, map[string]refusalCase{
		"arms over all users": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "a", Traffic: 0.6}, servingv1alpha1.ExperimentSpec{Name: "b", Traffic: 0.6}),
			want:   []string{"spec.experiments", "traffic must sum to at most 1"},
		},
		"an arm named control": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "control", Traffic: 0.1}),
			want:   []string{"spec.experiments[0].name", "control names the users in no arm"},
		},
		"an arm with no users": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "a", Traffic: 0}),
			want:   []string{"spec.experiments[0].traffic"},
		},
		"an arm weight out of range": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "a", Traffic: 0.1, Weights: map[string]float64{"like": 5000}}),
			want:   []string{"spec.experiments[0].weights", "between -1000 and 1000"},
		},
		"an arm on an unlisted model": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "a", Traffic: 0.1, SecondStageModel: "mtml-v99"}),
			want:   []string{"spec.experiments[].firstStageModel and secondStageModel must name entries of spec.models"},
		},
		"an arm named like a canary's": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "rollout-canary-x", Traffic: 0.1}),
			want:   []string{"spec.experiments[0].name", "rollout- are the arms of spec.rollout"},
		},
		"an arm named like a trial's": {
			mutate: arms(servingv1alpha1.ExperimentSpec{Name: "tuning-x-trial", Traffic: 0.1}),
			want:   []string{"spec.experiments[0].name", "tuning- are the arms of spec.tuning"},
		},
	})
}

// TestAPIServerChecksTuning: a search over weights is accepted; a path to
// no weight, an empty box, a trial over a quarter of the users and an
// unknown promotion are refused, naming the field.
func TestAPIServerChecksTuning(t *testing.T) {
	tuning := func(mutate func(*servingv1alpha1.TuningSpec)) func(*unstructured.Unstructured) {
		return typedSpec(func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Tuning = tuningSpec(10)
			mutate(rp.Spec.Tuning)
		})
	}
	ns := newNamespace(t)
	ok := samplePipeline(ns, "tuning")
	ok.Spec.Tuning = tuningSpec(10)
	ok.Spec.Tuning.Parameters = append(ok.Spec.Tuning.Parameters, servingv1alpha1.TuningParameter{Path: "retrieval.sources.for-you.weight", Min: 0, Max: 1})
	ok.Spec.Tuning.Promote = servingv1alpha1.TuningPromoteAuto
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("the API server refused a tuning: %v", err)
	}
	runRefusalCases(t, map[string]refusalCase{
		"a path to no weight": {
			mutate: tuning(func(s *servingv1alpha1.TuningSpec) { s.Parameters[0].Path = "ranking.firstStage.keep" }),
			want:   []string{"spec.tuning.parameters[0].path"},
		},
		"an empty box": {
			mutate: tuning(func(s *servingv1alpha1.TuningSpec) { s.Parameters[0].Min = 3; s.Parameters[0].Max = 3 }),
			want:   []string{"spec.tuning.parameters[0]", "min must be below max"},
		},
		"a trial over a quarter of the users": {
			mutate: tuning(func(s *servingv1alpha1.TuningSpec) { s.Traffic = ptr.To(0.4) }),
			want:   []string{"spec.tuning.traffic"},
		},
		"an unknown promotion": {
			mutate: tuning(func(s *servingv1alpha1.TuningSpec) { s.Promote = "Always" }),
			want:   []string{"spec.tuning.promote"},
		},
	})
}

// TestAPIServerChecksRollout: a rollout with steps is accepted; no steps,
// a step over half the users, a guardrail that names no event, a
// confidence below one half and a shadow model that is the stage's own or
// not listed are refused, naming the field.
func TestAPIServerChecksRollout(t *testing.T) {
	rollout := func(r servingv1alpha1.RolloutSpec) func(*unstructured.Unstructured) {
		return typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rollout = &r })
	}
	ns := newNamespace(t)
	ok := samplePipeline(ns, "rollout")
	ok.Spec.Rollout = &servingv1alpha1.RolloutSpec{
		Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.05, Pause: &metav1.Duration{Duration: 5 * time.Minute}}, {Traffic: 0.5}},
		Analysis: servingv1alpha1.RolloutAnalysis{
			MinImpressions: ptr.To[int64](5000), Objective: map[string]float64{"click": 1, "like": 2},
			MaxObjectiveDrop: ptr.To(0.02), Confidence: ptr.To(0.99),
			Guardrails: []servingv1alpha1.Guardrail{{Event: "see_less", MaxIncrease: 0.1}},
		},
	}
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("the API server refused a rollout: %v", err)
	}
	step := []servingv1alpha1.RolloutStep{{Traffic: 0.1}}
	runRefusalCases(t, map[string]refusalCase{
		"no steps": {
			mutate: rollout(servingv1alpha1.RolloutSpec{}),
			want:   []string{"spec.rollout.steps"},
		},
		"steps that shrink": {
			mutate: rollout(servingv1alpha1.RolloutSpec{Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.3}, {Traffic: 0.1}}}),
			want:   []string{"spec.rollout.steps: each step's traffic must be at least the previous step's"},
		},
		"a step over half the users": {
			mutate: rollout(servingv1alpha1.RolloutSpec{Steps: []servingv1alpha1.RolloutStep{{Traffic: 0.8}}}),
			want:   []string{"spec.rollout.steps[0].traffic"},
		},
		"a guardrail on no event": {
			mutate: rollout(servingv1alpha1.RolloutSpec{Steps: step, Analysis: servingv1alpha1.RolloutAnalysis{
				Guardrails: []servingv1alpha1.Guardrail{{Event: "See Less", MaxIncrease: 0.1}},
			}}),
			want: []string{"spec.rollout.analysis.guardrails[0].event"},
		},
		"a shadow of the stage's own model": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.SecondStage.Shadow = &servingv1alpha1.ShadowSpec{Model: "mtml"}
			}),
			want: []string{"spec.ranking.secondStage.shadow.model must name another entry of spec.models"},
		},
		"a shadow of an unlisted model": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Ranking.FirstStage.Shadow = &servingv1alpha1.ShadowSpec{Model: "first-stage-v2"}
			}),
			want: []string{"spec.ranking.firstStage.shadow.model must name another entry of spec.models"},
		},
		"a confidence of a coin": {
			mutate: rollout(servingv1alpha1.RolloutSpec{Steps: step, Analysis: servingv1alpha1.RolloutAnalysis{Confidence: ptr.To(0.3)}}),
			want:   []string{"spec.rollout.analysis.confidence"},
		},
	})
}

// TestAPIServerChecksResources: quantities written as numbers or strings
// are accepted; negative requests, requests above limits, a limit of zero
// and a word that is no quantity are refused, naming the field.
func TestAPIServerChecksResources(t *testing.T) {
	res := func(requests, limits map[string]any) func(*unstructured.Unstructured) {
		return func(u *unstructured.Unstructured) {
			typedSpec(func(*servingv1alpha1.RecPipeline) {})(u)
			r := map[string]any{}
			if requests != nil {
				r["requests"] = requests
			}
			if limits != nil {
				r["limits"] = limits
			}
			if err := unstructured.SetNestedField(u.Object, r, "spec", "ranking", "secondStage", "resources"); err != nil {
				panic(err)
			}
		}
	}
	ns := newNamespace(t)
	ok := samplePipeline(ns, "resources")
	ok.Spec.Retrieval.Resources = &servingv1alpha1.Resources{
		Requests: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceCPU: intstr.FromInt32(2), corev1.ResourceMemory: intstr.FromString("3Gi")},
		Limits:   map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceCPU: intstr.FromString("2500m"), corev1.ResourceMemory: intstr.FromString("3Gi")},
	}
	if err := k8s.Create(context.Background(), ok); err != nil {
		t.Fatalf("the API server refused resources: %v", err)
	}
	runRefusalCases(t, map[string]refusalCase{
		"a negative CPU request": {
			mutate: res(map[string]any{"cpu": "-1"}, nil),
			want:   []string{"spec.ranking.secondStage.resources.requests", "not negative"},
		},
		"a request above its limit": {
			mutate: res(map[string]any{"memory": "8Gi"}, map[string]any{"memory": "4Gi"}),
			want:   []string{"spec.ranking.secondStage.resources", "requests must not exceed limits"},
		},
		"a limit of zero": {
			mutate: res(nil, map[string]any{"cpu": int64(0)}),
			want:   []string{"spec.ranking.secondStage.resources.limits", "positive"},
		},
		"a word that is no quantity": {
			mutate: res(map[string]any{"memory": "lots"}, nil),
			want:   []string{"spec.ranking.secondStage.resources.requests", "quantities"},
		},
		"a negative integer request": {
			mutate: res(map[string]any{"cpu": int64(-2)}, nil),
			want:   []string{"spec.ranking.secondStage.resources.requests", "not negative"},
		},
		"an integer request above a string limit": {
			mutate: res(map[string]any{"cpu": int64(3)}, map[string]any{"cpu": "2500m"}),
			want:   []string{"spec.ranking.secondStage.resources", "requests must not exceed limits"},
		},
	})
}

// withBatchSpec sets the object's spec to the sample's with withBatch's
// precompute, logging and training, changed by mutate.
func withBatchSpec(mutate func(*servingv1alpha1.RecPipeline)) func(*unstructured.Unstructured) {
	return typedSpec(func(rp *servingv1alpha1.RecPipeline) {
		withBatch(rp)
		mutate(rp)
	})
}

// TestAPIServerRefusesInvalidBatch: the API server refuses what is wrong
// with spec.precompute, spec.logging and spec.training, naming the field.
func TestAPIServerRefusesInvalidBatch(t *testing.T) {
	rp := samplePipeline(newNamespace(t), "batch-valid")
	withBatch(rp)
	if err := k8s.Create(context.Background(), rp); err != nil {
		t.Fatalf("the API server refused the batch fields: %v", err)
	}
	runRefusalCases(t, map[string]refusalCase{
		"training without logging": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Logging = nil }),
			want:   []string{"spec.training learns from the frontend's logs: set spec.logging"},
		},
		"precompute for no user": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Precompute.Users = servingv1alpha1.PrecomputeUsers{} }),
			want:   []string{"spec.precompute", "spec.precompute.users needs activeWithin, listURI or both"},
		},
		"precompute for the top users of no window": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Precompute.Users = servingv1alpha1.PrecomputeUsers{Top: ptr.To[int32](10)}
			}),
			want: []string{"spec.precompute.users needs activeWithin, listURI or both"},
		},
		"an unknown serve policy": {
			mutate: func(u *unstructured.Unstructured) {
				withBatchSpec(func(*servingv1alpha1.RecPipeline) {})(u)
				rawField([]string{"spec", "precompute", "serve"}, "Sometimes")(u)
			},
			want: []string{"spec.precompute.serve", `Unsupported value: "Sometimes"`},
		},
		"a users list with a path out of its claim": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Precompute.Users.ListURI = "pvc://explore-lists/../secrets"
			}),
			want: []string{"spec.precompute.users.listURI"},
		},
		"a training output that is no claim": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Training.Output = "s3://models/trained" }),
			want:   []string{"spec.training.output"},
		},
		"a logs claim that is no name": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Logging.ClaimName = "Explore_Logs" }),
			want:   []string{"spec.logging.claimName"},
		},
		"a sample rate above one": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Logging.ServedSampleRate = ptr.To(1.5) }),
			want:   []string{"spec.logging.servedSampleRate"},
		},
		"training resources above their limits": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Training.Resources = &servingv1alpha1.Resources{
					Requests: map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceMemory: intstr.FromString("8Gi")},
					Limits:   map[corev1.ResourceName]intstr.IntOrString{corev1.ResourceMemory: intstr.FromString("4Gi")},
				}
			}),
			want: []string{"spec.training.resources", "requests must not exceed limits"},
		},
		"a training image with a space": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Training.Image = "tools latest" }),
			want:   []string{"spec.training.image"},
		},
		"a Precomputed source without uri or precompute": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Precompute = nil
				rp.Spec.Retrieval.Sources[3] = servingv1alpha1.SourceSpec{Name: "offpeak", Type: servingv1alpha1.SourcePrecomputed, Weight: 0.1, Limit: 50}
			}),
			want: []string{"spec.retrieval.sources[].uri is required for a Precomputed source unless spec.precompute is set"},
		},
		"a list ttl of zero": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Precompute.TTL = &metav1.Duration{} }),
			want:   []string{"spec.precompute.ttl", "must be positive"},
		},
		"a logs claim with a dot, which no volume name may hold": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Logging.ClaimName = "explore.logs" }),
			want:   []string{"spec.logging.claimName"},
		},
		"a time zone that is no IANA name": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Training.TimeZone = ptr.To("Europe/Paris; rm") }),
			want:   []string{"spec.training.timeZone"},
		},
		"an unknown quality gate": {
			mutate: func(u *unstructured.Unstructured) {
				withBatchSpec(func(*servingv1alpha1.RecPipeline) {})(u)
				rawField([]string{"spec", "training", "qualityGate"}, "Maybe")(u)
			},
			want: []string{"spec.training.qualityGate", `Unsupported value: "Maybe"`},
		},
		"a uri on another source type": {
			mutate: withBatchSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Retrieval.Sources[3].URI = "pvc://explore-lists/lists.jsonl"
			}),
			want: []string{"spec.retrieval.sources[3]", "uri applies only to the Precomputed source type"},
		},
	})
	// The precompute runs' lists merged as a source, never served whole.
	merged := samplePipeline(newNamespace(t), "batch-merged")
	withBatch(merged)
	merged.Spec.Precompute.Serve = servingv1alpha1.PrecomputeNever
	merged.Spec.Retrieval.Sources = append(merged.Spec.Retrieval.Sources, servingv1alpha1.SourceSpec{
		Name: "offpeak", Type: servingv1alpha1.SourcePrecomputed, Weight: 0.1, Limit: 50,
	})
	if err := k8s.Create(context.Background(), merged); err != nil {
		t.Errorf("the API server refused a Precomputed source without uri beside spec.precompute: %v", err)
	}
}

// TestAPIServerRefusesUnsafeReferences: images that are no image reference,
// unknown pull policies, path traversal, white space and credentials in
// URIs, and models over plain http are refused, naming the field.
func TestAPIServerRefusesUnsafeReferences(t *testing.T) {
	runRefusalCases(t, map[string]refusalCase{
		"image with a space": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Runtime.Image = "registry.test/recserve:v1 --privileged"
			}),
			want: []string{"spec.runtime.image"},
		},
		"image with a command substitution": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Runtime.Image = "registry.test/$(id)" }),
			want:   []string{"spec.runtime.image"},
		},
		"bogus pull policy": {
			mutate: rawField([]string{"spec", "runtime", "imagePullPolicy"}, "Sometimes"),
			want:   []string{"spec.runtime.imagePullPolicy", `Unsupported value: "Sometimes"`},
		},
		"catalog path climbing out of its claim": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Data.Catalog.URI = "pvc://explore-data/../other/catalog"
			}),
			want: []string{"spec.data.catalog.uri"},
		},
		"newline in a model path": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Models[0].URI = "pvc://explore-models/two-tower\nv7" }),
			want:   []string{"spec.models[0].uri"},
		},
		"model over plain http": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Models[2].URI = "http://models.example/mtml/v12.tar.gz" }),
			want:   []string{"spec.models[2].uri"},
		},
		"credentials in a model URL": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Models[2].URI = "https://user:secret@models.example/mtml/v12.tar.gz"
			}),
			want: []string{"spec.models[2].uri"},
		},
		"file path climbing out": {
			mutate: typedSpec(func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Data.Catalog.URI = "file:///data/../../etc/passwd" }),
			want:   []string{"spec.data.catalog.uri"},
		},
	})
}
