package reactor

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Once runs effect for ev unless consumer recorded ev's ce_id in st before, and records it
// after effect succeeded. ran says whether effect ran. An effect error is returned as it is
// (nothing is recorded); a failure to record after the effect is a transient error, so the
// effect may run again on the redelivery: at least once, deduplicated by ce_id. An event
// without ce_id cannot be deduplicated and is handled every time it is delivered.
func Once(ctx context.Context, st *store.Store, consumer string, ev *bus.Event, effect func(ctx context.Context) error) (ran bool, err error) {
	if ev.ID != "" {
		done, err := st.Processed(ctx, consumer, ev.ID)
		if err != nil {
			return false, err
		}
		if done {
			return false, nil
		}
	}
	if err := effect(ctx); err != nil {
		return true, err
	}
	if ev.ID != "" {
		if _, err := st.MarkProcessed(context.WithoutCancel(ctx), consumer, ev.ID); err != nil {
			return true, fmt.Errorf("reactor: %s: record %s as done: %w", consumer, ev.ID, err)
		}
	}
	return true, nil
}

// RecordLookup reports whether a record with key and ce_id id is on topic (TopicLookup).
type RecordLookup interface {
	Written(ctx context.Context, topic string, key []byte, id string) (bool, error)
}

// beganSuffix names the processed_events consumer under which OnceRecord records that it
// began writing a record for an event.
const beganSuffix = "#began"

// OnceRecord writes the Kafka record build returns for ev through prod once per ev's ce_id
// for consumer, even across a crash between the write and its record in st: before writing
// it records "began" (processed_events, consumer "<consumer>#began"); a redelivery that finds
// "began" without "done" asks lookup whether the record (its key and ce_id, which build
// must derive from ev alone) is on its topic and writes it only when it is not. ran says
// whether a record was written. Errors are returned as they are and nothing is marked done,
// so the redelivery decides again. Left open: a record written further back than the lookup
// reads is written again. An event without ce_id is written every time it is delivered.
func OnceRecord(ctx context.Context, st *store.Store, consumer string, ev *bus.Event, lookup RecordLookup, prod Producer,
	build func(ctx context.Context) (*kgo.Record, error)) (ran bool, err error) {
	if ev.ID != "" {
		done, err := st.Processed(ctx, consumer, ev.ID)
		if err != nil || done {
			return false, err
		}
	}
	rec, err := build(ctx)
	if err != nil {
		return false, err
	}
	if ev.ID != "" {
		began, err := st.Processed(ctx, consumer+beganSuffix, ev.ID)
		if err != nil {
			return false, err
		}
		if began {
			id := HeaderValue(rec.Headers, bus.HeaderID)
			on, err := lookup.Written(ctx, rec.Topic, rec.Key, id)
			if err != nil {
				return false, fmt.Errorf("reactor: %s: was %s written before a crash: %w", consumer, id, err)
			}
			if on {
				return false, markDone(ctx, st, consumer, ev.ID)
			}
		} else if _, err := st.MarkProcessed(ctx, consumer+beganSuffix, ev.ID); err != nil {
			return false, fmt.Errorf("reactor: %s: record %s as begun: %w", consumer, ev.ID, err)
		}
	}
	if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return true, err
	}
	if ev.ID == "" {
		return true, nil
	}
	return true, markDone(ctx, st, consumer, ev.ID)
}

func markDone(ctx context.Context, st *store.Store, consumer, id string) error {
	if _, err := st.MarkProcessed(context.WithoutCancel(ctx), consumer, id); err != nil {
		return fmt.Errorf("reactor: %s: record %s as done: %w", consumer, id, err)
	}
	return nil
}
