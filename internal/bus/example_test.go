package bus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// The CloudEvents Kafka headers of an event, as producers write them and ApplyHeaders reads
// them.
func ExampleEvent_Headers() {
	ev := &bus.Event{
		ID: "5f1c6a2e-0c8b-4a53-9d4e-6f2b1a7c9e10", Type: "WorkEffort:Started", AggregateID: "we-42",
		AggregateType: "WorkEffort", AggregateVersion: 2, Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		Source: "pyrite/ingest", CorrelationID: "c-1", Extensions: map[string]string{"hostname": "box"},
	}
	for _, h := range ev.Headers() {
		fmt.Printf("%s: %s\n", h.Key, h.Value)
	}
	// Output:
	// ce_specversion: 1.0
	// ce_id: 5f1c6a2e-0c8b-4a53-9d4e-6f2b1a7c9e10
	// ce_source: pyrite/ingest
	// ce_type: WorkEffort:Started
	// ce_time: 2025-06-01T12:00:00Z
	// content-type: application/avro
	// ce_subject: we-42
	// ce_aggregatetype: WorkEffort
	// ce_aggregateversion: 2
	// ce_correlationid: c-1
	// ce_hostname: box
}

// The seed's registration style: patterns, priorities, async handlers and retries.
func ExampleBus_On() {
	b := bus.New()
	show := func(name string) bus.Handler {
		return func(_ context.Context, ev *bus.Event) error {
			fmt.Println(name, ev.Type)
			return nil
		}
	}
	_, _ = b.On("WorkEffort:*", show("log"), bus.Options{Name: "log"})
	_, _ = b.On("WorkEffort:Completed", show("projector"), bus.Options{Name: "projector", Priority: 10})
	_, _ = b.On("*:Completed", show("notify"), bus.Options{Name: "notify", Retries: 3})
	res, _ := b.Publish(context.Background(), &bus.Event{Type: "WorkEffort:Completed"})
	fmt.Println(len(res), "handlers")
	// Output:
	// projector WorkEffort:Completed
	// log WorkEffort:Completed
	// notify WorkEffort:Completed
	// 3 handlers
}
