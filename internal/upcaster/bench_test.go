package upcaster_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcast"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// benchRecords is the records of one benchmark iteration: one pass of the upcaster and one of
// the ceiling, each on a fresh stack.
const benchRecords = 100000

// BenchmarkUpcaster measures raw-to-events throughput of the upcaster on the test stack
// (in-process kfake, the project's registry) for benchRecords ProgressUpdated v1 records with
// the CloudEvents headers ingest writes, each carried through both of the seed's functions to
// v3, in transactional and at-least-once mode, and in transactional mode without the
// duplicate guard (transactional-no-dedupe: the peer that shows the guard's cost). Each
// run also measures, for the same records on a fresh stack, a plain franz-go group consumer
// that produces every raw value unchanged to the events topic and commits its offsets (no
// decoding: the ceiling), and reports the mode's share of it. Rates run from a group's first
// commit to the commit of the last record, so start-up is left out of both.
func BenchmarkUpcaster(b *testing.B) {
	for _, c := range []struct {
		name   string
		mode   upcaster.Mode
		window int64
	}{
		{string(upcaster.Transactional), upcaster.Transactional, 0},
		{string(upcaster.Transactional) + "-no-dedupe", upcaster.Transactional, -1},
		{string(upcaster.AtLeastOnce), upcaster.AtLeastOnce, 0},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ceiling, rate float64
			for range b.N {
				ceiling += measure(b, benchRecords, false, func(ctx context.Context, s *stacktest.Stack) error { return copyLoop(ctx, s) })
				rate += measure(b, benchRecords, true, func(ctx context.Context, s *stacktest.Stack) error { return runStage(ctx, s, c.mode, c.window) })
			}
			ceiling /= float64(b.N)
			rate /= float64(b.N)
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(ceiling, "ceiling-events/s")
			b.ReportMetric(100*rate/ceiling, "%-of-ceiling")
		})
	}
}

// measure starts a stack and writes n raw records with the timer stopped, then runs consume
// (which joins benchGroup) until the group has committed every record. It returns records per
// second from the group's first commit to its last, so start-up (joining the group, the
// upcaster's chain check) is left out; the timer runs while consume does when timed is set.
func measure(b *testing.B, n int, timed bool, consume func(ctx context.Context, s *stacktest.Stack) error) float64 {
	b.Helper()
	b.StopTimer()
	s := stacktest.Start(b)
	produceRaw(b, s, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	if timed {
		b.StartTimer()
	}
	go func() { done <- consume(ctx, s) }()
	var first int64
	var start time.Time
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		c := committed(b, s)
		if c > 0 && start.IsZero() {
			first, start = c, time.Now()
		}
		if c >= int64(n) {
			break
		}
		select {
		case err := <-done:
			b.Fatalf("consumer stopped early: %v", err)
		case <-tick.C:
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if first >= int64(n) || elapsed <= 0 {
		b.Fatalf("all %d records were committed at once; use more records", n)
	}
	return float64(int64(n)-first) / elapsed.Seconds()
}

func produceRaw(b *testing.B, s *stacktest.Stack, n int) {
	b.Helper()
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	c := codec.New(rc)
	v1, err := c.Version(context.Background(), "pyrite.workeffort.ProgressUpdated", 1)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := range n {
		val, err := c.Encode(v1, workeffort.ProgressUpdatedV1{OldProgress: int32(i % 100), NewProgress: int32(i%100 + 1)})
		if err != nil {
			b.Fatal(err)
		}
		key := fmt.Sprintf("we-%d", i%1000)
		cl.Produce(ctx, &kgo.Record{Topic: rawTopic, Key: []byte(key), Value: val, Headers: ingestHeaders(key)}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// ingestHeaders are the CloudEvents headers ingest gives a raw record.
func ingestHeaders(key string) []kgo.RecordHeader {
	id := uuid.NewString()
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return []kgo.RecordHeader{
		h("ce_specversion", "1.0"), h("ce_id", id), h("ce_source", "/pyrite/ingest"),
		h("ce_type", "WorkEffort:ProgressUpdated"), h("ce_time", time.Now().UTC().Format(time.RFC3339Nano)),
		h("ce_subject", key), h("content-type", "application/avro"), h("ce_aggregatetype", "WorkEffort"),
		h("ce_correlationid", id), h("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
	}
}

// committed sums the offsets every group on the stack committed on the raw topic.
func committed(b *testing.B, s *stacktest.Stack) int64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var sum int64
	offs, err := s.Admin.FetchOffsets(ctx, benchGroup)
	if err != nil {
		return 0
	}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == rawTopic {
			sum += o.At
		}
	})
	return sum
}

const benchGroup = "bench"

func runStage(ctx context.Context, s *stacktest.Stack, mode upcaster.Mode, window int64) error {
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	rc.CachingEnabled(false)
	chain, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		return err
	}
	up := upcast.New(codec.New(rc), chain, rc)
	st, err := upcaster.NewStage(up, s.Topology, upcaster.Config{ConsumerGroup: benchGroup, Mode: mode, TransactionalID: "bench", DuplicateWindow: window},
		nil, slog.New(slog.DiscardHandler), kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		return err
	}
	return st.Run(ctx)
}

// copyLoop is the ceiling: consume raw, produce each value unchanged to the same partition of
// the events topic, flush, commit; no decoding, no transactions.
func copyLoop(ctx context.Context, s *stacktest.Stack) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumerGroup(benchGroup), kgo.ConsumeTopics(rawTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		var promise kgo.FirstErrPromise
		fs.EachRecord(func(r *kgo.Record) {
			cl.Produce(ctx, &kgo.Record{Topic: eventsTopic, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers},
				promise.Promise())
		})
		if err := cl.Flush(ctx); err != nil {
			return nil // shutting down
		}
		if err := promise.Err(); err != nil {
			return err
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}
