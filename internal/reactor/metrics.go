package reactor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts side effects. Make one per registry and share it; a nil *Metrics counts
// nothing. Labels are bounded: consumer names, a fixed set of effects and outcomes.
type Metrics struct {
	effects *prometheus.CounterVec
}

// NewMetrics makes the collectors and registers them on reg (not when reg is nil):
//
//	pyrite_reactor_effects_total{consumer,effect,outcome}
//
// effect is e.g. email, webhook, github_create, github_close, emit; outcome is ok, error,
// duplicate (skipped: done before) or replayed (skipped: before a replay mark).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{effects: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "pyrite", Subsystem: "reactor", Name: "effects_total",
		Help: "Side effects of reactors, sagas and process managers, by outcome.",
	}, []string{"consumer", "effect", "outcome"})}
	if reg != nil {
		if err := reg.Register(m.effects); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Count adds n to the effect's outcome.
func (m *Metrics) Count(consumer, effect, outcome string, n int) {
	m.effect(consumer, effect, outcome, n)
}

func (m *Metrics) effect(consumer, effect, outcome string, n int) {
	if m == nil || n <= 0 {
		return
	}
	m.effects.WithLabelValues(consumer, effect, outcome).Add(float64(n))
}
