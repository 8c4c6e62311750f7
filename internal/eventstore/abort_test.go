package eventstore_test

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestOpenTransactionOfADeadWriter: a writer killed inside a transaction (one event written,
// not committed), records of an outside producer after it, then a new store: its fence
// aborts the transaction, and a retry of the event is written anew, not answered as a
// duplicate of the aborted record. The outside records are more than one fetch holds, so
// that the catch-up's first answer ends between the aborted record and its abort marker:
// kfake then leaves the transaction out of the answer's aborted transactions, and a reader
// that trusted it took the aborted record for a committed one (the process crash matrix
// lost events that way: ingest answered a retry 201 as a replay of an aborted record).
func TestOpenTransactionOfADeadWriter(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup(t)
	const agg = "we-dead"
	part := eventstore.Partition([]byte(agg), 3)
	ctx := context.Background()

	prev := pending(t, s, "WorkEffort:ProgressUpdated", agg, "dead-0", -1, progress(0, 1))
	prev.Record.Partition = part
	dead, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.TransactionalID(fmt.Sprintf("%s-%s-%d", group, rawTopic, part)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	commit := func(recs ...*kgo.Record) {
		if err := dead.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := dead.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	commit(prev.Record)
	if err := dead.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	open := pending(t, s, "WorkEffort:ProgressUpdated", agg, "dead-1", -1, progress(1, 2))
	open.Record.Partition = part
	commit(open.Record) // and the writer dies

	var outside []*kgo.Record
	for i := range 50 {
		r := s.Record(t, rawTopic, "WorkEffort:ProgressUpdated", fmt.Sprintf("we-out-%d", i), 0, progress(0, 1))
		r.Partition = part
		outside = append(outside, r)
	}
	for range 2000 { // unkeyed, small batches, 1.2 MB in all: past one fetch's bytes
		v := make([]byte, 600)
		rand.Read(v) // incompressible
		outside = append(outside, &kgo.Record{Topic: rawTopic, Partition: part, Value: v})
	}
	plain, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(2048))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, outside...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	st := openStore(t, s, eventstore.Config{Group: group})
	waitReady(t, st)
	retry := pending(t, s, "WorkEffort:ProgressUpdated", agg, "dead-1", -1, progress(1, 2))
	res, err := st.Append(ctx, []eventstore.Pending{retry})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Duplicate || res[0].Version != 2 {
		t.Fatalf("the retry of the aborted event: %+v; want written anew at version 2", res[0])
	}
}
