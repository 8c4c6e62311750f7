package main

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

const (
	weRaw     = "pyrite.work-effort.raw"
	weEvents  = "pyrite.work-effort.events"
	depRaw    = "pyrite.deployment.raw"
	depEvents = "pyrite.deployment.events"
	progress  = "pyrite.workeffort.ProgressUpdated"
	runTests  = "pyrite.deployment.RunTests"
)

// loc locates a raw record.
type loc struct {
	topic     string
	partition int32
	offset    int64
}

// workload writes raw records for the exactly-once tests and remembers where every committed
// one landed: ProgressUpdated events of 12 work efforts, each carrying its per-aggregate
// sequence number in newProgress and written at versions 1, 2 and 3 in turn, and RunTests
// commands of 6 deployments. Every fifth batch is also written in a transaction that is
// aborted; none of those may ever reach an events topic.
type workload struct {
	t       *testing.T
	s       *stacktest.Stack
	c       *codec.Codec
	prod    *kgo.Client
	txn     *kgo.Client
	seq     map[string]int
	batches int

	committed map[loc]bool // every committed raw record
	aborted   map[loc]bool
	sentinels map[loc]bool
}

func newWorkload(t *testing.T, s *stacktest.Stack) *workload {
	t.Helper()
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	rc.CachingEnabled(false)
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	txn, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.TransactionalID("workload-"+t.Name()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txn.Close)
	return &workload{t: t, s: s, c: codec.New(rc), prod: prod, txn: txn, seq: map[string]int{},
		committed: map[loc]bool{}, aborted: map[loc]bool{}, sentinels: map[loc]bool{}}
}

func (w *workload) frame(subject string, version int, v any) []byte {
	w.t.Helper()
	s, err := w.c.Version(context.Background(), subject, version)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := w.c.Encode(s, v)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

// progressValue is ProgressUpdated number n of an aggregate at version v.
func (w *workload) progressValue(n, v int) []byte {
	old, cur := int32(n-1), int32(n)
	switch v {
	case 1:
		return w.frame(progress, 1, workeffort.ProgressUpdatedV1{OldProgress: old, NewProgress: cur})
	case 2:
		return w.frame(progress, 2, workeffort.ProgressUpdatedV2{OldProgress: old, NewProgress: cur, Delta: 1})
	}
	return w.frame(progress, 3, workeffort.ProgressUpdatedV3{OldProgress: old, NewProgress: cur, Delta: 1, Formatted: strconv.Itoa(n) + "%"})
}

func (w *workload) records(n int) []*kgo.Record {
	rs := make([]*kgo.Record, 0, n)
	for i := range n {
		if i%3 == 2 {
			key := fmt.Sprintf("dep-%02d", (w.batches+i)%6)
			rs = append(rs, &kgo.Record{Topic: depRaw, Key: []byte(key),
				Value: w.frame(runTests, 1, map[string]any{"workEffortId": key, "processId": strconv.Itoa(i)})})
			continue
		}
		key := fmt.Sprintf("we-%02d", (w.batches*7+i)%12)
		w.seq[key]++
		n := w.seq[key]
		rs = append(rs, &kgo.Record{Topic: weRaw, Key: []byte(key), Value: w.progressValue(n, n%3+1)})
	}
	return rs
}

// batch writes n records and, every fifth batch, an aborted transaction of 5 more.
func (w *workload) batch(n int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w.batches++
	rs := w.records(n)
	if err := w.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
	for _, r := range rs {
		w.committed[loc{r.Topic, r.Partition, r.Offset}] = true
	}
	if w.batches%5 != 0 {
		return
	}
	if err := w.txn.BeginTransaction(); err != nil {
		w.t.Fatal(err)
	}
	var bad []*kgo.Record
	for i := range 5 {
		key := fmt.Sprintf("we-%02d", i)
		// Sequence -1: an aborted record that leaked would break the aggregate's sequence.
		bad = append(bad, &kgo.Record{Topic: weRaw, Key: []byte(key), Value: w.progressValue(-1, 1)})
	}
	if err := w.txn.ProduceSync(ctx, bad...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
	if err := w.txn.EndTransaction(ctx, kgo.TryAbort); err != nil {
		w.t.Fatal(err)
	}
	for _, r := range bad {
		w.aborted[loc{r.Topic, r.Partition, r.Offset}] = true
	}
}

// sentinel writes one record to every partition of both raw topics, after everything else.
// Per-partition order means that once every sentinel is on the events topics, every record
// written before it has been upcast.
func (w *workload) sentinel() {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.s.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		w.t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for _, topic := range []string{weRaw, depRaw} {
		tp, _ := w.s.Topology.Topic(topic)
		for p := range tp.Partitions {
			key := fmt.Sprintf("sentinel-%s-%d", topic, p)
			v := w.frame(runTests, 1, map[string]any{"workEffortId": key, "processId": "sentinel"})
			if topic == weRaw {
				v = w.progressValue(1, 3)
			}
			rs = append(rs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(key), Value: v})
		}
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		w.t.Fatal(err)
	}
	for _, r := range rs {
		w.sentinels[loc{r.Topic, r.Partition, r.Offset}] = true
	}
}

// eventsEnd is the sum of the events topics' end offsets: a progress signal (it counts
// aborted records and transaction markers too).
func (w *workload) eventsEnd() int64 {
	ends := w.s.EndOffsets(w.t, weEvents, depEvents)
	return ends[weEvents] + ends[depEvents]
}

// verify reads both events topics with read_committed until every sentinel arrived, then
// checks that every committed raw record appears exactly once, no aborted one appears, each
// raw partition's records appear in raw offset order, every work effort's ProgressUpdated
// sequence runs 1, 2, ... without gaps or repeats, and every value is at ProgressUpdated v3
// with the delta and formatted the chain computes.
func (w *workload) verify(within time.Duration) {
	t := w.t
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.s.Brokers...), kgo.ConsumeTopics(weEvents, depEvents),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	seen := map[loc]int{}
	lastRaw := map[string]int64{} // "<raw topic>/<partition>" -> last raw offset seen
	sentinels, n := 0, 0
	seq := map[string]int{}
	v3 := w.s.SchemaID(progress, 3)
	for sentinels < len(w.sentinels) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d events and %d of %d sentinels before the deadline", n, sentinels, len(w.sentinels))
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", tp, p, err) })
		for _, r := range fs.Records() {
			n++
			l := rawLoc(t, r)
			seen[l]++
			if seen[l] > 1 {
				t.Errorf("raw record %v appears %d times", l, seen[l])
			}
			if w.aborted[l] {
				t.Errorf("raw record %v from an aborted transaction reached %s", l, r.Topic)
			}
			if w.sentinels[l] {
				sentinels++
				continue
			}
			if !w.committed[l] {
				t.Errorf("event for unknown raw record %v", l)
			}
			if r.Partition != l.partition {
				t.Errorf("raw %v written to %s[%d]: partitions differ", l, r.Topic, r.Partition)
			}
			pk := l.topic + "/" + strconv.Itoa(int(l.partition))
			if prev, ok := lastRaw[pk]; ok && l.offset <= prev {
				t.Errorf("raw %s offset %d after %d: out of order", pk, l.offset, prev)
			}
			lastRaw[pk] = l.offset
			if r.Topic != weEvents {
				continue
			}
			var v workeffort.ProgressUpdatedV3
			id, _, _ := codec.SplitFrame(r.Value)
			if _, err := w.c.Decode(ctx, r.Value, nil, &v); err != nil || id != v3 {
				t.Fatalf("%s@%d: schema %d (want v3 %d), %v", r.Topic, r.Offset, id, v3, err)
			}
			key := string(r.Key)
			if want := seq[key] + 1; int(v.NewProgress) != want {
				t.Errorf("%s: event %d after %d", key, v.NewProgress, seq[key])
			}
			seq[key] = int(v.NewProgress)
			if v.Delta != 1 || v.OldProgress != v.NewProgress-1 || v.Formatted != strconv.Itoa(int(v.NewProgress))+"%" {
				t.Errorf("%s: value %+v", key, v)
			}
		}
	}
	for l := range w.committed {
		if seen[l] == 0 {
			t.Errorf("raw record %v never reached its events topic", l)
		}
	}
	for key, want := range w.seq {
		if seq[key] != want {
			t.Errorf("%s: last event %d, want %d", key, seq[key], want)
		}
	}
	t.Logf("verified %d events for %d committed raw records (%d aborted raw records left out)", n-sentinels, len(w.committed), len(w.aborted))
}

func rawLoc(t *testing.T, r *kgo.Record) loc {
	t.Helper()
	var l loc
	var ok [3]bool
	for _, h := range r.Headers {
		switch h.Key {
		case upcaster.HeaderRawTopic:
			l.topic, ok[0] = string(h.Value), true
		case upcaster.HeaderRawPartition:
			p, err := strconv.Atoi(string(h.Value))
			l.partition, ok[1] = int32(p), err == nil
		case upcaster.HeaderRawOffset:
			o, err := strconv.ParseInt(string(h.Value), 10, 64)
			l.offset, ok[2] = o, err == nil
		}
	}
	if ok != [3]bool{true, true, true} {
		t.Fatalf("%s@%d has no raw location headers", r.Topic, r.Offset)
	}
	return l
}
