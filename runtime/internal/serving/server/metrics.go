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

package server

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/status"
)

// grpcRequests counts the calls the process's retrieval or ranker stage
// served over gRPC (RegisterStage), which a metrics adapter turns into the
// per-pod request rate the operator's autoscaler can scale on
// (docs/autoscaling.md). It belongs to the process, as the gRPC server
// does, rather than to a Server; every Server registers it, so /metrics
// shows it beside the HTTP series.
var grpcRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "recpipeline_grpc_requests_total",
	Help: "gRPC calls served by a retrieval or ranker stage, by full method name and status code.",
}, []string{"method", "code"})

// countCall counts a served gRPC call of method that ended in *err.
func countCall(method string, err *error) {
	grpcRequests.WithLabelValues(method, status.Code(*err).String()).Inc()
}

// metrics are the server's own series; stages add theirs to the same
// registry.
type metrics struct {
	requests       *prometheus.HistogramVec
	inflight       prometheus.Gauge
	errors         *prometheus.CounterVec
	events         prometheus.Counter
	shed           prometheus.Counter
	configApplied  prometheus.Counter
	configRejected prometheus.Counter
	revision       *prometheus.GaugeVec

	mu      sync.Mutex
	current string
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		requests: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recpipeline_http_request_duration_seconds",
			Help:    "Latency of HTTP requests by handler and status code.",
			Buckets: []float64{.001, .002, .004, .008, .016, .032, .064, .128, .256, .512, 1, 2},
		}, []string{"handler", "code"}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "recpipeline_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_errors_total",
			Help: "Failed requests by kind: deadline, internal, panic.",
		}, []string{"kind"}),
		events: f.NewCounter(prometheus.CounterOpts{
			Name: "recpipeline_events_ingested_total",
			Help: "Events accepted through POST /v1/events.",
		}),
		shed: f.NewCounter(prometheus.CounterOpts{
			Name: "recpipeline_saturated_precomputed_total",
			Help: "Recommendations a saturated frontend answered from a precomputed list instead of queueing the funnel.",
		}),
		configApplied: f.NewCounter(prometheus.CounterOpts{
			Name: "recpipeline_config_applied_total",
			Help: "Config revisions applied.",
		}),
		configRejected: f.NewCounter(prometheus.CounterOpts{
			Name: "recpipeline_config_rejected_total",
			Help: "Config revisions refused; the previous one kept serving.",
		}),
		revision: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recpipeline_config_revision_info",
			Help: "1 for the config revision being served.",
		}, []string{"revision"}),
	}
}

func (m *metrics) setRevision(rev string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.current != "" {
		m.revision.DeleteLabelValues(m.current)
	}
	m.current = rev
	m.revision.WithLabelValues(rev).Set(1)
}

// instrument records latency and status code of a handler.
func (s *Server) instrument(name string, h http.Handler) http.Handler {
	obs := s.metrics.requests.MustCurryWith(prometheus.Labels{"handler": name})
	return promhttp.InstrumentHandlerInFlight(s.metrics.inflight, promhttp.InstrumentHandlerDuration(obs, h))
}

// recover turns a panic in a handler into a 500 and a counted, logged
// error instead of a dead connection.
func (s *Server) recover(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.metrics.errors.WithLabelValues("panic").Inc()
				s.opts.Log.Error("Handler panicked", "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}
