package bus

import (
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus collectors of buses and runners. Make one per registry with
// NewMetrics and share it: buses are told apart by their name, runners by their group. A nil
// *Metrics counts nothing.
//
// Labels are bounded: bus and group names, event types (bounded by the schemas), handler
// names, topics, partitions and a fixed set of outcomes and reasons; never IDs or error text.
type Metrics struct {
	busPublished  *prometheus.CounterVec
	busDeliveries *prometheus.CounterVec
	busMiddleware *prometheus.CounterVec
	records       *prometheus.CounterVec
	enqueued      *prometheus.CounterVec
	deadLettered  *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	parkedKeys    *prometheus.GaugeVec
	parkedRecords *prometheus.GaugeVec
	deadKeys      *prometheus.GaugeVec
	deadOverflow  *prometheus.CounterVec
	paused        *prometheus.CounterVec
}

// NewMetrics makes the collectors and registers them on reg (not registered when reg is
// nil). It fails when reg already holds collectors of the same names.
//
//	pyrite_bus_published_total{bus,type}                  events published
//	pyrite_bus_deliveries_total{bus,type,handler,outcome} handler deliveries: ok, transient, permanent
//	pyrite_bus_middleware_total{bus,type,outcome}         events dropped or rejected by middleware
//	pyrite_runner_records_total{group,topic,outcome}      records processed: ok, retry, dlq, dropped, released (a skip release)
//	pyrite_runner_enqueued_total{group,kind}              records written to the retry topic (retry) or queue (queue)
//	pyrite_runner_dlq_total{group,reason}                 records written to the dead-letter topic
//	pyrite_runner_lag{group,topic,partition}              records behind the high watermark
//	pyrite_runner_parked_keys{group,topic,partition}      keys waiting behind a record being retried
//	pyrite_runner_parked_records{group,topic,partition}   records held behind those keys
//	pyrite_runner_dead_keys{group,topic,partition}        keys held behind dead letters (redrive or skip releases them)
//	pyrite_runner_dead_keys_overflow_total{group}         dead letters that could not hold their key (bound reached)
//	pyrite_runner_paused_total{group,topic}               partitions paused for back-pressure (see RunnerConfig.MaxBuffered)
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		busPublished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "bus", Name: "published_total",
			Help: "Events published on a bus, by event type.",
		}, []string{"bus", "type"}),
		busDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "bus", Name: "deliveries_total",
			Help: "Handler deliveries after in-process retries, by outcome (ok, transient, permanent).",
		}, []string{"bus", "type", "handler", "outcome"}),
		busMiddleware: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "bus", Name: "middleware_total",
			Help: "Events a middleware dropped or rejected.",
		}, []string{"bus", "type", "outcome"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "records_total",
			Help: "Records a runner processed, by outcome (ok, retry, dlq, dropped, released).",
		}, []string{"group", "topic", "outcome"}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "enqueued_total",
			Help: "Records a runner wrote for later delivery: retry (transient failure) or queue (async handlers).",
		}, []string{"group", "kind"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "dlq_total",
			Help: "Records a runner wrote to its dead-letter topic, by reason.",
		}, []string{"group", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "lag",
			Help: "Records between a partition's high watermark and the next record to process.",
		}, []string{"group", "topic", "partition"}),
		parkedKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "parked_keys",
			Help: "Keys of a partition waiting, in order, behind a record whose retry is not due yet.",
		}, []string{"group", "topic", "partition"}),
		parkedRecords: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "parked_records",
			Help: "Records of a partition held behind parked keys (their heads included).",
		}, []string{"group", "topic", "partition"}),
		deadKeys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "dead_keys",
			Help: "Keys of a partition held behind dead letters: their later records are dead-lettered (reason parked) until a redrive or skip.",
		}, []string{"group", "topic", "partition"}),
		deadOverflow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "dead_keys_overflow_total",
			Help: "Dead letters that did not hold their key because RunnerConfig.MaxDeadKeys keys were held already.",
		}, []string{"group"}),
		paused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "pyrite", Subsystem: "runner", Name: "paused_total",
			Help: "Partitions paused for back-pressure: their worker held RunnerConfig.MaxBuffered records.",
		}, []string{"group", "topic"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.busPublished, m.busDeliveries, m.busMiddleware,
			m.records, m.enqueued, m.deadLettered, m.lag, m.parkedKeys, m.parkedRecords, m.deadKeys, m.deadOverflow, m.paused} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("bus: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) published(bus, typ string) {
	if m != nil {
		m.busPublished.WithLabelValues(bus, typ).Inc()
	}
}

func (m *Metrics) delivery(bus, typ, handler, outcome string) {
	if m != nil {
		m.busDeliveries.WithLabelValues(bus, typ, handler, outcome).Inc()
	}
}

func (m *Metrics) middleware(bus, typ, outcome string) {
	if m != nil {
		m.busMiddleware.WithLabelValues(bus, typ, outcome).Inc()
	}
}

func (m *Metrics) record(group, topic, outcome string) {
	if m != nil {
		m.records.WithLabelValues(group, topic, outcome).Inc()
	}
}

// recordN counts n records of one outcome with one label lookup.
func (m *Metrics) recordN(group, topic, outcome string, n int) {
	if m != nil && n > 0 {
		m.records.WithLabelValues(group, topic, outcome).Add(float64(n))
	}
}

func (m *Metrics) pause(group, topic string) {
	if m != nil {
		m.paused.WithLabelValues(group, topic).Inc()
	}
}

func (m *Metrics) enqueue(group, kind string) {
	if m != nil {
		m.enqueued.WithLabelValues(group, kind).Inc()
	}
}

func (m *Metrics) dlq(group, reason string) {
	if m != nil {
		m.deadLettered.WithLabelValues(group, reason).Inc()
	}
}

func (m *Metrics) setLag(group, topic string, partition int32, lag int64) {
	if m != nil {
		m.lag.WithLabelValues(group, topic, strconv.Itoa(int(partition))).Set(float64(max(lag, 0)))
	}
}

func (m *Metrics) dropLag(group, topic string, partition int32) {
	if m != nil {
		p := strconv.Itoa(int(partition))
		m.lag.DeleteLabelValues(group, topic, p)
		m.parkedKeys.DeleteLabelValues(group, topic, p)
		m.parkedRecords.DeleteLabelValues(group, topic, p)
		m.deadKeys.DeleteLabelValues(group, topic, p)
	}
}

func (m *Metrics) setParked(group, topic string, partition int32, keys, records int) {
	if m != nil {
		p := strconv.Itoa(int(partition))
		m.parkedKeys.WithLabelValues(group, topic, p).Set(float64(keys))
		m.parkedRecords.WithLabelValues(group, topic, p).Set(float64(records))
	}
}

func (m *Metrics) setDeadKeys(group, topic string, partition int32, keys int) {
	if m != nil {
		m.deadKeys.WithLabelValues(group, topic, strconv.Itoa(int(partition))).Set(float64(keys))
	}
}

func (m *Metrics) deadKeysOverflow(group string, n int) {
	if m != nil {
		m.deadOverflow.WithLabelValues(group).Add(float64(n))
	}
}
