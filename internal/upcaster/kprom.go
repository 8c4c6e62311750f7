package upcaster

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/plugin/kprom"
)

// kpromMetrics reports the Kafka client's metrics under pyrite_upcaster_kafka_*.
func kpromMetrics(reg prometheus.Registerer) *kprom.Metrics {
	return kprom.NewMetrics("pyrite", kprom.Subsystem("upcaster_kafka"), kprom.Registerer(reg))
}
