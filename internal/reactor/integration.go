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

// WorkEffortCompletedV1 is the integration event the integration reactor emits.
const WorkEffortCompletedV1 = "work-effort.completed.v1"

// integrationSource is the seed's source of integration events.
const integrationSource = "pyrite.work-efforts"

const integrationConsumer = "integration/" + WorkEffortCompletedV1

// Integration is the integration reactor: it turns WorkEffort:Completed into the public
// integration event work-effort.completed.v1 on pyrite.integration (the seed's payload:
// workEffortId, title, completedAt, ticketCount), keyed by the work effort ID, with the
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
}

// NewIntegration returns the reactor, emitting with em through prod; lookup finds an event
// written before a crash (a TopicLookup on the same cluster).
func NewIntegration(em *Emitter, prod Producer, st *store.Store, lookup RecordLookup, m *Metrics) *Integration {
	return &Integration{em: em, prod: prod, st: st, lookup: lookup, metrics: m}
}

// Subscribe registers the reactor's handler ("integration-work-effort-completed") on b.
func (i *Integration) Subscribe(b *bus.Bus) error {
	_, err := b.On("WorkEffort:Completed", i.Handle, bus.Options{Name: "integration-work-effort-completed"})
	return err
}

// Handle emits the integration event for one WorkEffort:Completed event.
func (i *Integration) Handle(ctx context.Context, ev *bus.Event) error {
	d := Data(ev.Data)
	title, _ := d.String("title")
	completedAt, ok := d.Time("completedAt")
	if !ok {
		completedAt = ev.Time
	}
	tickets, _ := d.Int("ticketCount")
	ran, err := OnceRecord(ctx, i.st, integrationConsumer, ev, i.lookup, i.prod, func(ctx context.Context) (*kgo.Record, error) {
		return i.em.Record(ctx, CauseOf(ev), Emit{
			Type: WorkEffortCompletedV1, AggregateID: ev.AggregateID, Step: "integration/" + WorkEffortCompletedV1,
			Source: integrationSource,
			Data: map[string]any{
				"workEffortId": ev.AggregateID, "title": title, "completedAt": completedAt, "ticketCount": int32(tickets),
			},
		})
	})
	switch {
	case err != nil:
		i.metrics.effect(integrationConsumer, "emit", "error", 1)
		return fmt.Errorf("integration event for %s: %w", ev.AggregateID, err)
	case !ran:
		i.metrics.effect(integrationConsumer, "emit", "duplicate", 1)
	default:
		i.metrics.effect(integrationConsumer, "emit", "ok", 1)
	}
	return nil
}
