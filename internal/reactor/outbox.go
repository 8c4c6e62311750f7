package reactor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Producer writes records synchronously; *kgo.Client implements it. Use an idempotent
// producer (kgo's default) so that retries inside the client never duplicate or reorder.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Appender appends events to their aggregates' streams through the event store, giving
// each its version; an event id written before makes the append a duplicate that writes
// nothing. *eventstore.Client (over ingest's HTTP API) and *eventstore.Store implement it.
type Appender interface {
	Append(ctx context.Context, events []eventstore.Pending) ([]eventstore.Appended, error)
}

// Outbox is the relay of one consumer's transactional outbox (see the package comment).
// Flushes of one Outbox are serialized, so within a process a record is written once per
// queueing and in queue order. Records are deleted after Kafka (or the event store)
// acknowledged them.
type Outbox struct {
	st       *store.Store
	consumer string
	prod     Producer
	app      Appender
	metrics  *Metrics
	log      *slog.Logger
	mu       sync.Mutex
}

// NewOutbox returns the relay of consumer's outbox in st. With app set, records are
// appended through the event store one at a time, in queue order, with their ce_id as the
// event id: a record written again after a crash (or by a sweep racing a flush) is a
// duplicate there, not a second event. Without it they are produced through prod as raw
// records without an aggregate version (the store and the upcaster number them by
// position).
func NewOutbox(st *store.Store, consumer string, prod Producer, app Appender, m *Metrics, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{st: st, consumer: consumer, prod: prod, app: app, metrics: m, log: log}
}

// Add queues recs, caused by an event of source (Partition -1: no event), in tx. A record
// must carry a ce_id header; one whose id is already waiting is not queued again.
func (o *Outbox) Add(tx *store.Tx, source store.TopicPartition, recs ...*kgo.Record) error {
	out := make([]store.OutboxRecord, 0, len(recs))
	for _, r := range recs {
		id := HeaderValue(r.Headers, bus.HeaderID)
		if id == "" {
			return bus.Permanent(fmt.Errorf("reactor: outbox %s: record for %s has no %s header", o.consumer, r.Topic, bus.HeaderID))
		}
		hs := make([]store.Header, len(r.Headers))
		for i, h := range r.Headers {
			hs[i] = store.Header{Key: h.Key, Value: h.Value}
		}
		out = append(out, store.OutboxRecord{EventID: id, Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: hs, Source: source})
	}
	_, err := tx.AddOutbox(o.consumer, out...)
	return err
}

// Flush writes the waiting records f selects to Kafka, oldest first, and deletes those
// acknowledged; it repeats until none are left. An error leaves the rest waiting.
func (o *Outbox) Flush(ctx context.Context, f store.OutboxFilter) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		recs, err := o.st.Outbox(ctx, o.consumer, f)
		if err != nil || len(recs) == 0 {
			return err
		}
		krs := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			hs := make([]kgo.RecordHeader, len(r.Headers))
			for j, h := range r.Headers {
				hs[j] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
			krs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value, Headers: hs}
		}
		var done []int64
		var firstErr error
		if o.app != nil {
			done, firstErr = o.append(ctx, recs, krs)
		} else {
			for i, pr := range o.prod.ProduceSync(ctx, krs...) {
				if pr.Err != nil {
					firstErr = cmpErr(firstErr, pr.Err)
					continue
				}
				done = append(done, recs[i].Seq)
			}
			o.metrics.effect(o.consumer, "emit", "ok", len(done))
		}
		if len(done) > 0 {
			// A failed delete only means the records are written again, with their ids.
			if err := o.st.DeleteOutbox(context.WithoutCancel(ctx), o.consumer, done...); err != nil {
				return err
			}
		}
		if firstErr != nil {
			o.metrics.effect(o.consumer, "emit", "error", len(recs)-len(done))
			return fmt.Errorf("reactor: outbox %s: write: %w", o.consumer, firstErr)
		}
		limit := f.Limit
		if limit <= 0 {
			limit = 500
		}
		if len(recs) < limit {
			return nil
		}
	}
}

// append appends krs (the records of recs) through the event store one at a time, stopping
// at the first failure so that no record overtakes an earlier one; it returns the sequence
// numbers of those written (or found written before).
func (o *Outbox) append(ctx context.Context, recs []store.OutboxRecord, krs []*kgo.Record) ([]int64, error) {
	var done []int64
	for i, kr := range krs {
		res, err := o.app.Append(ctx, []eventstore.Pending{{Record: kr, ID: recs[i].EventID, Type: HeaderValue(kr.Headers, bus.HeaderType), Expected: -1}})
		if err != nil {
			return done, fmt.Errorf("append %s %s: %w", recs[i].EventID, kr.Key, err)
		}
		outcome := "ok"
		if len(res) > 0 && res[0].Duplicate {
			outcome = "duplicate"
		}
		o.metrics.effect(o.consumer, "emit", outcome, 1)
		done = append(done, recs[i].Seq)
	}
	return done, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Sweep flushes, every interval until ctx ends, the records queued more than age ago:
// those left behind by a crash or a failed write whose partition has no new events to
// trigger a flush. age keeps it from racing the flush that follows each commit (another
// instance's, with which it would otherwise write a record twice). Failures are logged.
func (o *Outbox) Sweep(ctx context.Context, interval, age time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := o.Flush(ctx, store.OutboxFilter{Before: time.Now().Add(-age)}); err != nil && !errors.Is(err, context.Canceled) {
			o.log.Error("reactor: outbox sweep failed", "consumer", o.consumer, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
