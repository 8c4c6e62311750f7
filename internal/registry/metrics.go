package registry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the registry's Prometheus collectors. Labels are bounded: the
// route is the ServeMux pattern (or "unmatched"), the code its class.
type metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	writes    *prometheus.CounterVec
	conflicts prometheus.Counter
	schemas   prometheus.Gauge
	subjects  prometheus.Gauge
	ready     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "http_requests_total",
			Help: "HTTP requests served, by route pattern and status code class (2xx, 4xx, 5xx).",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "store_writes_total",
			Help: "Writes to the store topic by outcome (committed, failed, fenced, conflict).",
		}, []string{"outcome"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "store_conflicts_total",
			Help: "Store records rejected because they conflict with an earlier record for the same id or subject version.",
		}),
		schemas: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "schemas",
			Help: "Schema ids known.",
		}),
		subjects: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "subjects",
			Help: "Subjects known, soft-deleted ones included.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "registry", Name: "ready",
			Help: "1 once the store topic has been read to its end, 0 after Close.",
		}),
	}
	var errs []error
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, c)
	}
	if len(errs) > 0 {
		for _, c := range done {
			reg.Unregister(c)
		}
		return nil, errors.Join(errs...)
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.writes, m.conflicts, m.schemas, m.subjects, m.ready}
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// codeClass maps a status to its class label.
func codeClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	default:
		return "1xx"
	}
}
