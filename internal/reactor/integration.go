package reactor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// IntegrationGroup is the integration reactor's consumer group (topology group).
const IntegrationGroup = "integration"

// IntegrationRule turns one domain event type into one public integration event; a domain
// module declares its rules (domain.Module.Integrations).
type IntegrationRule struct {
	// From is the domain event type ("WorkEffort:Completed").
	From string
	// To is the integration event type ("work-effort.completed.v1"), a registered schema.
	To string
	// Handler names the bus handler ("integration-work-effort-completed").
	Handler string
	// Source is the integration event's ce_source ("pyrite.work-efforts").
	Source string
	// Data returns the integration event's payload for one From event.
	Data func(ev *bus.Event) map[string]any
}

// consumer names the rule's deduplication records ("integration/<To>").
func (r IntegrationRule) consumer() string { return "integration/" + r.To }

// Integration is the integration reactor: for each of its rules it turns the rule's domain
// event into its integration event on pyrite.integration, keyed by the aggregate ID, with the
// correlation id carried over and the causation id set to the domain event's ce_id. Once on
// the topic (OnceRecord): the ce_id is derived from the domain event's, events already
// produced are skipped by their ce_id in the store, and a redelivery after a crash between
// the write and that record looks the event up on pyrite.integration before writing it.
type Integration struct {
	em      *Emitter
	prod    Producer
	st      *store.Store
	lookup  RecordLookup
	metrics *Metrics
	rules   []IntegrationRule
}

// NewIntegration returns the reactor of rules, emitting with em through prod; lookup finds
// an event written before a crash (a TopicLookup on the same cluster).
func NewIntegration(em *Emitter, prod Producer, st *store.Store, lookup RecordLookup, m *Metrics, rules ...IntegrationRule) *Integration {
	return &Integration{em: em, prod: prod, st: st, lookup: lookup, metrics: m, rules: rules}
}

// Subscribe registers one handler per rule (named by the rule) on b.
func (i *Integration) Subscribe(b *bus.Bus) error {
	for _, r := range i.rules {
		if _, err := b.On(r.From, func(ctx context.Context, ev *bus.Event) error { return i.handle(ctx, r, ev) },
			bus.Options{Name: r.Handler}); err != nil {
			return err
		}
	}
	return nil
}

// handle emits r's integration event for one event.
func (i *Integration) handle(ctx context.Context, r IntegrationRule, ev *bus.Event) error {
	consumer := r.consumer()
	ran, err := OnceRecord(ctx, i.st, consumer, ev, i.lookup, i.prod, func(ctx context.Context) (*kgo.Record, error) {
		return i.em.Record(ctx, CauseOf(ev), Emit{
			Type: r.To, AggregateID: ev.AggregateID, Step: consumer, Source: r.Source, Data: r.Data(ev),
		})
	})
	switch {
	case err != nil:
		i.metrics.effect(consumer, "emit", "error", 1)
		return fmt.Errorf("integration event %s for %s: %w", r.To, ev.AggregateID, err)
	case !ran:
		i.metrics.effect(consumer, "emit", "duplicate", 1)
	default:
		i.metrics.effect(consumer, "emit", "ok", 1)
	}
	return nil
}
