package reactor_test

import (
	"fmt"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// BenchmarkOutboxFlush queues one emitted event and flushes it, as a saga's decision does:
// through the idempotent producer straight to the raw topic (the peer) and through ingest's
// event store over HTTP (eventstore.Client), in the same run, on kfake and SQLite.
func BenchmarkOutboxFlush(b *testing.B) {
	e := reactortest.New(b)
	_, cl := e.Ingest(b)
	em := reactor.NewEmitter(e.Codec(), e.Topology, "pyrite.bench")
	for _, bc := range []struct {
		name string
		app  reactor.Appender
	}{{"producer", nil}, {"eventstore", cl}} {
		b.Run(bc.name, func(b *testing.B) {
			consumer := "bench-" + bc.name
			ob := reactor.NewOutbox(e.Store, consumer, e.Producer, bc.app, nil, nil)
			src := store.TopicPartition{Partition: -1}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("proc-%s-%d", bc.name, i%64)
				rec, err := em.Record(b.Context(), reactor.Cause{ID: fmt.Sprintf("%s-%d", bc.name, i)}, reactor.Emit{Type: "Deployment:RunTests",
					AggregateID: id, Data: map[string]any{"workEffortId": "we", "processId": id}, Step: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Store.Update(b.Context(), consumer, func(tx *store.Tx) error { return ob.Add(tx, src, rec) }); err != nil {
					b.Fatal(err)
				}
				if err := ob.Flush(b.Context(), store.OutboxFilter{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
