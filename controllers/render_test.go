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
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	servingv1alpha1 "github.com/recpipeline/recpipeline/api/v1alpha1"
	"github.com/recpipeline/recpipeline/runtime/config"
)

// update rewrites the golden files: go test ./controllers/ -run TestRender -update
var update = flag.Bool("update", false, "rewrite golden files")

// renderCases are the pipelines whose rendered config is kept as a golden
// file under testdata/render/<name>.json.
var renderCases = map[string]func(*servingv1alpha1.RecPipeline){
	"sample": nil,
	"redis-password-default-prefix": func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Data.Store = servingv1alpha1.StoreSpec{
			Type: servingv1alpha1.StoreRedis,
			Redis: &servingv1alpha1.RedisStoreSpec{
				Address:           "redis.data.svc:6379",
				DB:                3,
				PasswordSecretRef: &servingv1alpha1.SecretKeyRef{Name: "redis-auth", Key: "password"},
			},
		}
	},
	"precomputed-on-pvc": func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Retrieval.Sources = append(rp.Spec.Retrieval.Sources, servingv1alpha1.SourceSpec{
			Name: "editors-picks", Type: servingv1alpha1.SourcePrecomputed, Weight: 0.05, Limit: 100,
			URI: "pvc://explore-lists/editors/2026-11/",
		})
	},
	"experiments": func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.ExperimentSalt = "2026-12"
		rp.Spec.Experiments = []servingv1alpha1.ExperimentSpec{
			{Name: "more-likes", Traffic: 0.1, Weights: map[string]float64{"like": 4}},
			{
				Name: "less-trending", Traffic: 0.05,
				Sources: []servingv1alpha1.SourceOverrideSpec{{Name: "trending", Weight: ptr.To(0.02), Limit: ptr.To[int32](50)}},
				Rerank:  &servingv1alpha1.RerankSpec{Size: 20, Rules: []servingv1alpha1.RuleSpec{{Type: servingv1alpha1.RuleAuthorDiversity, MinGap: ptr.To[int32](2)}}},
			},
		}
	},
	"new-item-risk": func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Rerank.NewItemRisk = ptr.To(0.35)
	},
	"precompute-logging": func(rp *servingv1alpha1.RecPipeline) {
		withBatch(rp)
	},
	"source-ef": func(rp *servingv1alpha1.RecPipeline) {
		rp.Spec.Retrieval.Sources[1].Ef = ptr.To[int32](400)
	},
	"source-timeouts": func(rp *servingv1alpha1.RecPipeline) {
		// for-you keeps the default; trending sets its own.
		rp.Spec.Retrieval.Sources[3].Timeout = &metav1.Duration{Duration: 200 * time.Millisecond}
	},
}

func renderCase(t *testing.T, name string) *Rendered {
	t.Helper()
	rp := samplePipeline("explore", "feed")
	if mutate := renderCases[name]; mutate != nil {
		mutate(rp)
	}
	r, err := renderConfig(rp)
	if err != nil {
		t.Fatalf("failed to render %s: %v", name, err)
	}
	return r
}

func TestRenderGolden(t *testing.T) {
	for name := range renderCases {
		t.Run(name, func(t *testing.T) {
			r := renderCase(t, name)
			path := filepath.Join("testdata", "render", name+".json")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, r.Bytes, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("failed to read golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(r.Bytes, want) {
				t.Errorf("rendered config differs from %s (run with -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, r.Bytes, want)
			}
		})
	}
}

// The golden files can be regenerated; these assertions hold whatever they
// contain.
func TestRenderDetails(t *testing.T) {
	tests := map[string]struct {
		name  string
		check func(t *testing.T, c *config.Config)
	}{
		"pvc URIs point where the pods mount the claims": {
			name: "sample",
			check: func(t *testing.T, c *config.Config) {
				if want := "file:///var/lib/recpipeline/volumes/explore-data/catalog"; c.Deploy.Catalog != want {
					t.Errorf("catalog = %q, want %q", c.Deploy.Catalog, want)
				}
				want := []config.Model{
					{Name: "two-tower", URI: "file:///var/lib/recpipeline/volumes/explore-models/two-tower/v7"},
					{Name: "first-stage", URI: "file:///var/lib/recpipeline/volumes/explore-models/first-stage/v7"},
					{Name: "mtml", URI: "https://models.example/mtml/v12.tar.gz"},
				}
				if !reflect.DeepEqual(c.Deploy.Models, want) {
					t.Errorf("models = %+v, want %+v", c.Deploy.Models, want)
				}
			},
		},
		"every stage but the frontend has a gRPC endpoint": {
			name: "sample",
			check: func(t *testing.T, c *config.Config) {
				want := map[string]string{
					config.StageRetrieval:    "feed-retrieval.explore.svc:9090",
					config.StageRankerFirst:  "feed-ranker-first.explore.svc:9090",
					config.StageRankerSecond: "feed-ranker-second.explore.svc:9090",
				}
				if !reflect.DeepEqual(c.Deploy.Endpoints, want) {
					t.Errorf("endpoints = %v, want %v", c.Deploy.Endpoints, want)
				}
				if c.Pipeline != "explore/feed" {
					t.Errorf("pipeline = %q, want explore/feed", c.Pipeline)
				}
			},
		},
		"redis password is read from the env and the key prefix defaults to the pipeline": {
			name: "redis-password-default-prefix",
			check: func(t *testing.T, c *config.Config) {
				want := config.Store{Type: "Redis", Redis: &config.RedisStore{
					Address: "redis.data.svc:6379", DB: 3, KeyPrefix: "explore/feed/", PasswordEnv: config.RedisPasswordEnv,
				}}
				if !reflect.DeepEqual(c.Deploy.Store, want) {
					t.Errorf("store = %+v (redis %+v), want redis %+v", c.Deploy.Store, c.Deploy.Store.Redis, want.Redis)
				}
			},
		},
		"precomputed lists on a claim are read from the mount": {
			name: "precomputed-on-pvc",
			check: func(t *testing.T, c *config.Config) {
				s := c.Live.Retrieval.Sources[len(c.Live.Retrieval.Sources)-1]
				if want := "file:///var/lib/recpipeline/volumes/explore-lists/editors/2026-11"; s.Type != "Precomputed" || s.URI != want {
					t.Errorf("source %s (%s) uri = %q, want %q", s.Name, s.Type, s.URI, want)
				}
			},
		},
		"source timeout is 50ms unless set": {
			name: "source-timeouts",
			check: func(t *testing.T, c *config.Config) {
				got := map[string]time.Duration{}
				for _, s := range c.Live.Retrieval.Sources {
					got[s.Name] = time.Duration(s.Timeout)
				}
				if got["for-you"] != 50*time.Millisecond {
					t.Errorf("default timeout = %s, want 50ms", got["for-you"])
				}
				if got["trending"] != 200*time.Millisecond {
					t.Errorf("explicit timeout = %s, want 200ms", got["trending"])
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tc.check(t, renderCase(t, tc.name).Config)
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	for name := range renderCases {
		t.Run(name, func(t *testing.T) {
			first := renderCase(t, name)
			for i := 0; i < 20; i++ { // map order differs between runs
				again := renderCase(t, name)
				if !bytes.Equal(first.Bytes, again.Bytes) || first.Revision != again.Revision || first.DeployRevision != again.DeployRevision {
					t.Fatalf("render %d differs: revision %s/%s, deploy revision %s/%s", i, first.Revision, again.Revision, first.DeployRevision, again.DeployRevision)
				}
			}
		})
	}
}

// renderBeforeAfter renders the sample, and the sample changed by mutate.
func renderBeforeAfter(t *testing.T, mutate func(*servingv1alpha1.RecPipeline)) (before, after *Rendered) {
	t.Helper()
	before, err := renderConfig(samplePipeline("explore", "feed"))
	if err != nil {
		t.Fatal(err)
	}
	rp := samplePipeline("explore", "feed")
	mutate(rp)
	if after, err = renderConfig(rp); err != nil {
		t.Fatal(err)
	}
	return before, after
}

func TestRenderRevisions(t *testing.T) {
	tests := map[string]struct {
		mutate          func(*servingv1alpha1.RecPipeline)
		wantDeployRolls bool
	}{
		"weights change only the live config": {
			mutate:          func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 3 },
			wantDeployRolls: false,
		},
		"source weights change only the live config": {
			mutate:          func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Retrieval.Sources[0].Weight = 0.3 },
			wantDeployRolls: false,
		},
		"rerank size changes only the live config": {
			mutate:          func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Rerank.Size = 20 },
			wantDeployRolls: false,
		},
		"model URI change rolls the pods": {
			mutate: func(rp *servingv1alpha1.RecPipeline) {
				rp.Spec.Models[2].URI = "https://models.example/mtml/v13.tar.gz"
			},
			wantDeployRolls: true,
		},
		"catalog change rolls the pods": {
			mutate:          func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Data.Catalog.URI = "pvc://explore-data/catalog-v2" },
			wantDeployRolls: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			before, after := renderBeforeAfter(t, tc.mutate)
			if after.Revision == before.Revision {
				t.Errorf("revision did not change: %s", after.Revision)
			}
			if rolls := after.DeployRevision != before.DeployRevision; rolls != tc.wantDeployRolls {
				t.Errorf("deploy revision changed = %v (%s -> %s), want %v", rolls, before.DeployRevision, after.DeployRevision, tc.wantDeployRolls)
			}
			if after.Config.DeployRevision != after.DeployRevision {
				t.Errorf("config carries deploy revision %s, rendered %s", after.Config.DeployRevision, after.DeployRevision)
			}
		})
	}
}

func TestRenderedConfigParses(t *testing.T) {
	for name := range renderCases {
		t.Run(name, func(t *testing.T) {
			r := renderCase(t, name)
			parsed, err := config.Parse(r.Bytes)
			if err != nil {
				t.Fatalf("the runtime refuses the rendered config: %v", err)
			}
			if !reflect.DeepEqual(parsed, r.Config) {
				t.Errorf("parsed config differs from the rendered one:\n%+v\n%+v", parsed, r.Config)
			}
			again, err := config.Marshal(parsed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, r.Bytes) || config.Revision(again) != r.Revision {
				t.Errorf("re-encoding the parsed config changes its bytes or revision")
			}
		})
	}
}

func TestRenderRefusesWhatTheRuntimeRefuses(t *testing.T) {
	rp := samplePipeline("explore", "feed")
	rp.Spec.Ranking.SecondStage.Model = "no-such-model"
	if _, err := renderConfig(rp); err == nil {
		t.Fatal("rendered a config naming an undeclared model")
	}
}

// stageRollCases change what some stages load; want names the stages whose
// revision must change, every other stage's must not.
var stageRollCases = map[string]struct {
	mutate func(*servingv1alpha1.RecPipeline)
	want   []string
}{
	"second-stage model URI": {
		mutate: func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Models[2].URI = "https://models.example/mtml/v13.tar.gz"
		},
		want: []string{config.StageRankerSecond},
	},
	"first-stage model URI": {
		mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Models[1].URI = "pvc://explore-models/first-stage/v8" },
		want:   []string{config.StageRankerFirst},
	},
	"switch the second stage to another listed model": {
		mutate: func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-v13", URI: "https://models.example/mtml/v13.tar.gz"})
			rp.Spec.Ranking.SecondStage.Model = "mtml-v13"
		},
		want: []string{config.StageRankerSecond},
	},
	"an experiment on another listed second-stage model": {
		mutate: func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-v13", URI: "https://models.example/mtml/v13.tar.gz"})
			rp.Spec.Experiments = []servingv1alpha1.ExperimentSpec{{Name: "v13", Traffic: 0.1, SecondStageModel: "mtml-v13"}}
		},
		want: []string{config.StageRankerSecond},
	},
	"list a model nothing uses yet": {
		mutate: func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Models = append(rp.Spec.Models, servingv1alpha1.ModelSpec{Name: "mtml-v13", URI: "https://models.example/mtml/v13.tar.gz"})
		},
		want: nil,
	},
	// The retrieval stage indexes it; the second stage's two_tower_score
	// reads it.
	"retrieval model URI": {
		mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Models[0].URI = "pvc://explore-models/two-tower/v8" },
		want:   []string{config.StageRetrieval, config.StageRankerSecond},
	},
	"store": {
		mutate: func(rp *servingv1alpha1.RecPipeline) {
			rp.Spec.Data.Store = servingv1alpha1.StoreSpec{Type: servingv1alpha1.StoreRedis, Redis: &servingv1alpha1.RedisStoreSpec{Address: "redis.recs.svc:6379"}}
		},
		want: []string{config.StageFrontend},
	},
	"catalog": {
		mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Data.Catalog.URI = "pvc://explore-data/catalog-v2" },
		want:   config.SplitStages(),
	},
	"weights": {
		mutate: func(rp *servingv1alpha1.RecPipeline) { rp.Spec.Ranking.Weights["like"] = 3 },
		want:   nil,
	},
}

func TestRenderStageRevisions(t *testing.T) {
	for name, tc := range stageRollCases {
		t.Run(name, func(t *testing.T) {
			before, after := renderBeforeAfter(t, tc.mutate)
			for _, stage := range config.SplitStages() {
				b, a := before.StageRevisions[stage], after.StageRevisions[stage]
				if b == "" || a == "" {
					t.Fatalf("stage %s has no revision", stage)
				}
				if rolls, want := a != b, slices.Contains(tc.want, stage); rolls != want {
					t.Errorf("stage %s rolls = %v, want %v", stage, rolls, want)
				}
				if got, _ := after.Config.StageRevision(stage); got != a {
					t.Errorf("stage %s: rendered revision %s, the runtime computes %s", stage, a, got)
				}
			}
		})
	}
}

func TestRenderFreshness(t *testing.T) {
	rp := samplePipeline("ns", "fresh")
	rp.Spec.Ranking.Freshness = &servingv1alpha1.FreshnessSpec{MaxAge: metav1.Duration{Duration: 2 * time.Hour}}
	r, err := renderConfig(rp)
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Config.Live.Freshness; f == nil || time.Duration(f.MaxAge) != 2*time.Hour || f.Slots != 1 {
		t.Errorf("live.freshness %+v, want 2h and the default of 1 slot", f)
	}
}
