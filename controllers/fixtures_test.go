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
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
)

// samplePipeline is the pipeline of DESIGN.md: four sources, two rankers,
// three rerank rules.
func samplePipeline(namespace, name string) *servingv1alpha1.RecPipeline {
	return &servingv1alpha1.RecPipeline{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: "6b1f0c2e-0000-4000-8000-000000000001"},
		Spec: servingv1alpha1.RecPipelineSpec{
			Data: servingv1alpha1.DataSpec{
				Catalog: servingv1alpha1.CatalogSpec{URI: "pvc://explore-data/catalog"},
				Store:   servingv1alpha1.StoreSpec{Type: servingv1alpha1.StoreMemory},
			},
			Models: []servingv1alpha1.ModelSpec{
				{Name: "two-tower", URI: "pvc://explore-models/two-tower/v7"},
				{Name: "first-stage", URI: "pvc://explore-models/first-stage/v7"},
				{Name: "mtml", URI: "https://models.example/mtml/v12.tar.gz"},
			},
			Retrieval: servingv1alpha1.RetrievalSpec{
				Candidates: 1500,
				Sources: []servingv1alpha1.SourceSpec{
					{Name: "followed-recent", Type: servingv1alpha1.SourceFollowedAuthorsRecent, Weight: 0.25, Limit: 400, MaxAge: &metav1.Duration{Duration: 72 * time.Hour}},
					{Name: "for-you", Type: servingv1alpha1.SourceTwoTowerANN, Model: "two-tower", Weight: 0.45, Limit: 800},
					{Name: "more-like-this", Type: servingv1alpha1.SourceItemToItemANN, Model: "two-tower", Weight: 0.2, Limit: 400, SeedItems: ptr.To[int32](20)},
					{Name: "trending", Type: servingv1alpha1.SourcePopular, Weight: 0.1, Limit: 200, Window: &metav1.Duration{Duration: 24 * time.Hour}},
				},
				StageSpec: servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](2)}},
			},
			Ranking: servingv1alpha1.RankingSpec{
				FirstStage: servingv1alpha1.RankerSpec{
					Model: "first-stage", Keep: 300,
					StageSpec: servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{Replicas: ptr.To[int32](2)}},
				},
				SecondStage: servingv1alpha1.RankerSpec{
					Model: "mtml", Keep: 100,
					StageSpec: servingv1alpha1.StageSpec{Scaling: &servingv1alpha1.ScalingSpec{
						Autoscaling: &servingv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 20, TargetCPUUtilization: ptr.To[int32](70)},
					}},
				},
				Weights: map[string]float64{"click": 1.0, "like": 2.0, "comment": 4.0, "see_less": -8.0},
			},
			Rerank: servingv1alpha1.RerankSpec{
				Size: 25,
				Rules: []servingv1alpha1.RuleSpec{
					{Type: servingv1alpha1.RuleAuthorDiversity, MinGap: ptr.To[int32](3)},
					{Type: servingv1alpha1.RuleIntegrityFilter, MaxRisk: ptr.To(0.9)},
					{Type: servingv1alpha1.RuleIntegrityDownrank, Above: ptr.To(0.5), Factor: ptr.To(0.3)},
				},
			},
		},
	}
}
