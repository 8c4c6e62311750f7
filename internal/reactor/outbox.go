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
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Producer writes records synchronously; *kgo.Client implements it. Use an idempotent
// producer (kgo's default) so that retries inside the client never duplicate or reorder.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
}

// Outbox is the relay of one consumer's transactional outbox (see the package comment).
// Flushes of one Outbox are serialized, so within a process a record is written once per
// queueing and in queue order. Records are deleted after Kafka acknowledged them.
type Outbox struct {
	st       *store.Store
	consumer string
	prod     Producer
	metrics  *Metrics
	log      *slog.Logger
	mu       sync.Mutex
}

// NewOutbox returns the relay of consumer's outbox in st, writing through prod.
func NewOutbox(st *store.Store, consumer string, prod Producer, m *Metrics, log *slog.Logger) *Outbox {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{st: st, consumer: consumer, prod: prod, metrics: m, log: log}
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
		res := o.prod.ProduceSync(ctx, krs...)
		var done []int64
		var firstErr error
		for i, pr := range res {
			if pr.Err != nil {
				firstErr = cmpErr(firstErr, pr.Err)
				continue
			}
			done = append(done, recs[i].Seq)
		}
		o.metrics.effect(o.consumer, "emit", "ok", len(done))
		if len(done) > 0 {
			// A failed delete only means the records are written again, with their ids.
			if err := o.st.DeleteOutbox(context.WithoutCancel(ctx), o.consumer, done...); err != nil {
				return err
			}
		}
		if firstErr != nil {
			o.metrics.effect(o.consumer, "emit", "error", len(recs)-len(done))
			return fmt.Errorf("reactor: outbox %s: produce: %w", o.consumer, firstErr)
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
