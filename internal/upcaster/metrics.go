package upcaster

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the stage's own series (kprom adds the Kafka clients' under
// pyrite_upcaster_kafka_*):
//
//	pyrite_upcaster_records_total{type,from,to}      events written (committed), by type and versions
//	pyrite_upcaster_dlq_total{reason}                raw records dead-lettered (committed)
//	pyrite_upcaster_transaction_seconds{outcome}     one batch, Begin to End (commit or abort);
//	                                                 in at-least-once mode poll to commit (commit or rewind)
//	pyrite_upcaster_lag{topic,partition}             records between the last one processed and the
//	                                                 partition's last stable offset
//	pyrite_upcaster_backoffs_total                   batches abandoned because the registry was unavailable
//	pyrite_upcaster_duplicates_total{topic}          exact repeats dropped on a raw topic (committed; dedupe.go)
type metrics struct {
	records  *prometheus.CounterVec
	dlq      *prometheus.CounterVec
	txn      *prometheus.HistogramVec
	lag      *prometheus.GaugeVec
	backoffs prometheus.Counter
	// duplicates counts exact repeats dropped per raw topic.
	duplicates *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "records_total",
			Help: "Events written to the events topics, by event type and the schema versions read and written.",
		}, []string{"type", "from", "to"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "dlq_total",
			Help: "Raw records written to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		txn: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "transaction_seconds",
			Help:    "Time to process one polled batch and end its transaction (at-least-once mode: until its offsets are committed), by outcome.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"outcome"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "lag",
			Help: "Raw records not yet upcast per assigned partition, as of the last batch.",
		}, []string{"topic", "partition"}),
		backoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "backoffs_total",
			Help: "Batches abandoned (aborted or rewound) because the schema registry was unavailable.",
		}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "upcaster", Name: "duplicates_total",
			Help: "Exact repeats of a raw record (same key, value and headers, with a ce_id, within the last 10,000 offsets of its partition) dropped instead of upcast, by raw topic.",
		}, []string{"topic"}),
	}
	for _, r := range reasons {
		m.dlq.WithLabelValues(r) // every reason shows, at 0, from the start
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.records, m.dlq, m.txn, m.lag, m.backoffs, m.duplicates} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// count adds a committed batch's outcomes, one Add per run of equal labels.
func (m *metrics) count(outs []outcome) {
	for i := 0; i < len(outs); {
		o, n := outs[i], 1
		for i+n < len(outs) && outs[i+n].reason == o.reason && outs[i+n].eventType == o.eventType &&
			outs[i+n].from == o.from && outs[i+n].to == o.to {
			n++
		}
		i += n
		if o.reason != "" {
			m.dlq.WithLabelValues(o.reason).Add(float64(n))
			continue
		}
		m.records.WithLabelValues(o.eventType, strconv.Itoa(o.from), strconv.Itoa(o.to)).Add(float64(n))
	}
}
