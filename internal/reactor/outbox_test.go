package reactor_test

import (
	"testing"

	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// TestOutboxAppendsThroughEventStore: a record the relay writes again (its first write's
// answer lost, so it stayed queued) is a duplicate in the event store: the stream holds it
// once, with version 1. On the direct producer path the same redelivery writes the raw
// record twice.
func TestOutboxAppendsThroughEventStore(t *testing.T) {
	e := reactortest.New(t)
	url, cl := e.Ingest(t)
	em := reactor.NewEmitter(e.Codec(), e.Topology, "pyrite.test")
	rec, err := em.Record(t.Context(), reactor.Cause{ID: "cause-1"}, reactor.Emit{Type: "Deployment:RunTests", AggregateID: "proc-o",
		Data: map[string]any{"workEffortId": "we-o", "processId": "proc-o"}, Step: "test"})
	if err != nil {
		t.Fatal(err)
	}
	src := store.TopicPartition{Partition: -1}
	queue := func(ob *reactor.Outbox) {
		if err := e.Store.Update(t.Context(), "saga", func(tx *store.Tx) error { return ob.Add(tx, src, rec) }); err != nil {
			t.Fatal(err)
		}
	}

	lost := reactor.NewOutbox(e.Store, "saga", e.Producer, reactortest.LostAnswer{A: cl}, e.Metrics, nil)
	queue(lost)
	if err := lost.Flush(t.Context(), store.OutboxFilter{}); err == nil {
		t.Fatal("Flush reported success though the answer was lost")
	}
	if left, _ := e.Store.Outbox(t.Context(), "saga", store.OutboxFilter{}); len(left) != 1 {
		t.Fatalf("%d records queued after the lost answer, want 1", len(left))
	}
	written := e.Count(t, reactortest.DeploymentRaw) // the record and its transaction's commit marker
	ob := reactor.NewOutbox(e.Store, "saga", e.Producer, cl, e.Metrics, nil)
	if err := ob.Flush(t.Context(), store.OutboxFilter{}); err != nil {
		t.Fatal(err)
	}
	if left, _ := e.Store.Outbox(t.Context(), "saga", store.OutboxFilter{}); len(left) != 0 {
		t.Errorf("%d records left after the redelivery", len(left))
	}
	st := reactortest.Stream(t, url, "Deployment", "proc-o")
	if st.Version != 1 || len(st.Events) != 1 || st.Events[0].ID != reactor.HeaderValue(rec.Headers, "ce_id") {
		t.Errorf("stream %+v, want the one event at version 1", st)
	}
	if n := e.Count(t, reactortest.DeploymentRaw); n != written {
		t.Errorf("the redelivery wrote to %s: end offset %d -> %d", reactortest.DeploymentRaw, written, n)
	}
}
