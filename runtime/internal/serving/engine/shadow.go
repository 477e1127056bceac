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

package engine

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/rank"
)

// shadowStats sums, per ranker stage, how a shadow model's order agreed
// with the served one: on /metrics as histograms, on /v1/status as sums
// the operator averages.
type shadowStats struct {
	overlap, spearman *prometheus.HistogramVec

	mu     sync.Mutex
	counts map[string]*config.ShadowCounts
}

func newShadowStats(reg prometheus.Registerer) *shadowStats {
	f := promauto.With(reg)
	buckets := []float64{-0.5, 0, 0.25, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1}
	return &shadowStats{
		overlap: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_shadow_overlap", Help: "Share of the served ranked list that the stage's shadow model also kept, per compared request.",
			Buckets: buckets,
		}, []string{"stage", "model"}),
		spearman: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_shadow_spearman", Help: "Rank correlation of the items both the served and the shadow model kept, per compared request.",
			Buckets: buckets,
		}, []string{"stage", "model"}),
		counts: map[string]*config.ShadowCounts{},
	}
}

// reporter returns what the stage's shadow reports to; the sums start
// again when the stage's shadow model changes.
func (s *shadowStats) reporter(stage, model string) func(rank.Agreement) {
	s.mu.Lock()
	if c := s.counts[stage]; c == nil || c.Model != model {
		s.counts[stage] = &config.ShadowCounts{Model: model}
	}
	s.mu.Unlock()
	overlap, spearman := s.overlap.WithLabelValues(stage, model), s.spearman.WithLabelValues(stage, model)
	return func(a rank.Agreement) {
		overlap.Observe(a.Overlap)
		spearman.Observe(a.Spearman)
		s.mu.Lock()
		defer s.mu.Unlock()
		if c := s.counts[stage]; c != nil && c.Model == model {
			c.Compared++
			c.Overlap += a.Overlap
			c.Spearman += a.Spearman
		}
	}
}

// keepOnly drops the sums of the stages that l gives no shadow.
func (s *shadowStats) keepOnly(l *config.Live) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.FirstStage.Shadow == nil {
		delete(s.counts, config.StageRankerFirst)
	}
	if l.SecondStage.Shadow == nil {
		delete(s.counts, config.StageRankerSecond)
	}
}

// snapshot copies the sums, for /v1/status; nil without a shadow.
func (s *shadowStats) snapshot() map[string]config.ShadowCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.counts) == 0 {
		return nil
	}
	out := make(map[string]config.ShadowCounts, len(s.counts))
	for stage, c := range s.counts {
		out[stage] = *c
	}
	return out
}

// withShadow wraps a stage's ranker with its shadow, if r names one;
// build makes a ranker of the stage from a model name, naming path in its
// errors. Only the control
// arm's rankers have shadows (compileExperiments drops the arms').
func (e *Engine) withShadow(stage, path string, r config.Ranker, main rank.Ranker, build func(path, model string) (rank.Ranker, error)) (rank.Ranker, error) {
	if r.Shadow == nil {
		return main, nil
	}
	cand, err := build(path, r.Shadow.Model)
	if err != nil {
		return nil, err
	}
	return &rank.Shadow{Main: main, Candidate: cand, Fraction: r.Shadow.Fraction, Report: e.shadow.reporter(stage, r.Shadow.Model)}, nil
}

// ShadowCounts is, by ranker stage with a shadow model, how the shadow
// agreed with the served model; nil without one.
func (e *Engine) ShadowCounts() map[string]config.ShadowCounts {
	return e.shadow.snapshot()
}
