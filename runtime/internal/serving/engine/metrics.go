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
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics of the funnel.
type metrics struct {
	stage      *prometheus.HistogramVec
	candidates *prometheus.HistogramVec
	source     *prometheus.HistogramVec
	fallbacks  *prometheus.CounterVec
	stale      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		stage: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_stage_duration_seconds", Help: "Time spent in each stage of the funnel.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"stage"}),
		candidates: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_stage_candidates", Help: "Candidates leaving each stage of the funnel.",
			Buckets: []float64{0, 10, 25, 50, 100, 200, 300, 500, 1000, 1500, 2000, 5000},
		}, []string{"stage"}),
		source: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "recpipeline_source_duration_seconds", Help: "Latency of each candidate source by outcome (ok, error, timeout).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
		}, []string{"source", "outcome"}),
		fallbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_stage_fallbacks_total", Help: "Requests that went on without a failing ranker stage, or without the user's state when the store failed (stage=\"store\").",
		}, []string{"stage"}),
		stale: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_stage_stale_answers_total", Help: "Requests a ranker stage ranked with another config revision than the frontend's (a config propagating); with experiments, their events count for no arm.",
		}, []string{"stage"}),
	}
}

// SourceDone implements sources.Observer.
func (m *metrics) SourceDone(name string, d time.Duration, _ int, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	case err != nil:
		outcome = "error"
	}
	m.source.WithLabelValues(name, outcome).Observe(d.Seconds())
}
