package reactor

import (
	"context"
	"fmt"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Apply writes what a saga or process manager decided about one event (its state, its
// outbox records) inside the transaction that also stores the event's position.
type Apply func(tx *store.Tx) error

// Handle decides what to do with one event: nil Apply when the event does not concern the
// handler (its position still advances). It may call outside services first (an intent it
// needs durable before such a call goes in its own store.Update), and must then be safe to
// call again for the same event: a crash before the Apply commits delivers the event again.
// A permanent error (bus.Permanent) sends the event to the dead-letter topic; any other
// error retries the batch after a backoff.
type Handle func(ctx context.Context, ev *bus.Event) (Apply, error)

// Stateful is the batch handler of a saga or process manager whose state lives in the store
// with its positions; see the package comment. Use Batch and Positions in a bus.Runner's
// config (Batch mode: a partition waits while an event is retried, so the events of one
// aggregate are handled in order).
type Stateful struct {
	name    string
	group   string
	st      *store.Store
	outbox  *Outbox
	replays *Replays
	handle  Handle
	wants   func(eventType string) bool // nil: every type
}

// NewStateful returns the handler that stores positions and outbox records under name,
// skips what replays suppresses for group (replays may be nil) and decides with handle.
func NewStateful(name, group string, st *store.Store, outbox *Outbox, replays *Replays, handle Handle) *Stateful {
	return &Stateful{name: name, group: group, st: st, outbox: outbox, replays: replays, handle: handle}
}

// Only declares the event types handle decides about, as bus patterns ("WorkEffort:Completed",
// "Deployment:*"); by default every type. The runner (Deps.BatchRunner) then does not decode
// the records of other types, and Batch moves the position past them without calling handle
// (they concern nobody). It returns an error wrapping bus.ErrInvalidPattern for an invalid
// pattern. Call it before the runner is built.
func (s *Stateful) Only(patterns ...string) error {
	wants, err := bus.MatchAny(patterns...)
	if err != nil {
		return fmt.Errorf("reactor: %s: %w", s.name, err)
	}
	s.wants = wants
	return nil
}

// Wants reports whether handle decides about events of eventType (see Only); nil when it
// decides about every type.
func (s *Stateful) Wants() func(eventType string) bool { return s.wants }

// Name is the store name of the handler's positions and outbox.
func (s *Stateful) Name() string { return s.name }

// Batch handles the events of one partition in order. It first writes what the outbox still
// holds for the partition (left by a crash or a failed write), skips events below the
// stored position, and commits each decision with the positions up to its event before the
// next event is looked at; the outbox records a decision queued are written right after its
// commit. Events that concern nobody commit together.
func (s *Stateful) Batch(ctx context.Context, evs []*bus.Event) error {
	if len(evs) == 0 {
		return nil
	}
	src := store.TopicPartition{Topic: evs[0].Origin.Topic, Partition: evs[0].Origin.Partition}
	if err := s.outbox.Flush(ctx, store.OutboxFilter{Source: &src}); err != nil {
		return err
	}
	pos, err := s.st.Positions(ctx, s.name)
	if err != nil {
		return err
	}
	from := pos[src]
	pending := make([]store.Event, 0, len(evs)) // reused after each commit: ApplyBatch keeps none
	commit := func(apply Apply) error {
		if len(pending) == 0 {
			return nil
		}
		last := pending[len(pending)-1].Offset
		err := s.st.ApplyBatch(ctx, s.name, pending, func(tx *store.Tx, e store.Event) error {
			if apply != nil && e.Offset == last {
				return apply(tx)
			}
			return nil
		})
		pending = pending[:0]
		if err != nil {
			return err
		}
		if apply != nil {
			return s.outbox.Flush(ctx, store.OutboxFilter{Source: &src})
		}
		return nil
	}
	for _, ev := range evs {
		if ev.Origin.Offset < from {
			continue
		}
		var apply Apply
		if (s.wants == nil || s.wants(ev.Type)) && !s.replays.Suppressed(s.group, ev) {
			if apply, err = s.handle(ctx, ev); err != nil {
				if cerr := commit(nil); cerr != nil {
					return cerr
				}
				return err
			}
		}
		pending = append(pending, storeEvent(ev))
		if apply != nil {
			if err := commit(apply); err != nil {
				return err
			}
		}
	}
	return commit(nil)
}

// Positions is the runner's Positions: a partition starts after the last event the store
// committed for the handler; one it never committed starts from the group's committed offset
// (or the client's reset policy).
func (s *Stateful) Positions(ctx context.Context, topic string, partition int32) (int64, bool, error) {
	pos, err := s.st.Positions(ctx, s.name)
	if err != nil {
		return 0, false, err
	}
	off, ok := pos[store.TopicPartition{Topic: topic, Partition: partition}]
	return off, ok, nil
}

func storeEvent(ev *bus.Event) store.Event {
	return store.Event{
		ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, AggregateVersion: ev.AggregateVersion,
		Time: ev.Time, Data: ev.Data, Topic: ev.Origin.Topic, Partition: ev.Origin.Partition, Offset: ev.Origin.Offset,
	}
}
