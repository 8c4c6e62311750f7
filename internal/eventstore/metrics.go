package eventstore

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	appends   *prometheus.CounterVec
	txns      *prometheus.CounterVec
	txnEvents prometheus.Histogram
	commit    prometheus.Histogram
	rebuild   prometheus.Histogram
	replayed  prometheus.Counter
	foreign   *prometheus.CounterVec
	owned     prometheus.Gauge
	ready     prometheus.Gauge
	forwards  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_eventstore_appends_total",
			Help: "Appends decided by this instance's partition writers, by outcome (written, duplicate, conflict, id_conflict, not_owner, unavailable, canceled).",
		}, []string{"outcome"}),
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_eventstore_transactions_total",
			Help: "Partition writer transactions, by outcome (committed, failed).",
		}, []string{"outcome"}),
		txnEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pyrite_eventstore_transaction_events",
			Help:    "Events written per partition transaction (appends of concurrent requests share one).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pyrite_eventstore_transaction_seconds",
			Help:    "Time from beginning a partition transaction to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		rebuild: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pyrite_eventstore_acquire_seconds",
			Help:    "Time from being assigned a partition to answering for it: fencing the previous writer and catching the index up.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pyrite_eventstore_index_records_total",
			Help: "Records read back from the raw topics into partition indexes (rebuilds and tailing).",
		}),
		foreign: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_eventstore_foreign_records_total",
			Help: "Raw records whose version is not the one a store writer decided, by kind: unversioned (no ce_aggregateversion: an outside writer), renumbered (a header version other than the record's position: a store append raced by an outside writer), unkeyed (no aggregate id: no stream).",
		}, []string{"kind"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pyrite_eventstore_partitions_owned",
			Help: "Raw partitions this instance owns in the current generation.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pyrite_eventstore_partitions_ready",
			Help: "Owned raw partitions that are fenced and caught up, so appends and reads are served.",
		}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_eventstore_forwards_total",
			Help: "Requests forwarded to the owner of their partition, by outcome (answered, unreachable).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.appends, m.txns, m.txnEvents, m.commit, m.rebuild, m.replayed, m.foreign, m.owned, m.ready, m.forwards)
	}
	return m
}
