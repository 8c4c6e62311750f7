package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Deduplication for at-least-once consumers (reactors, sagas), keyed by consumer name and
// event ID (ce_id). Typical use: skip the event when Processed says so, do the side effect,
// then MarkProcessed; or, when the effect is itself a database write, do both in one
// transaction with Tx.MarkProcessed.

const markProcessedSQL = `INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ($1, $2, $3)
	ON CONFLICT (consumer, event_id) DO NOTHING`

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func markProcessed(ctx context.Context, e execer, now time.Time, consumer, eventID string) (bool, error) {
	res, err := e.ExecContext(ctx, markProcessedSQL, consumer, eventID, now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("store: mark %s processed by %s: %w", eventID, consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: mark %s processed by %s: %w", eventID, consumer, err)
	}
	return n == 1, nil
}

// MarkProcessed records that consumer handled eventID. first is false when it was recorded
// before (a redelivery).
func (s *Store) MarkProcessed(ctx context.Context, consumer, eventID string) (first bool, err error) {
	return markProcessed(ctx, s.write, s.now(), consumer, eventID)
}

// MarkProcessed records eventID for consumer in the batch's transaction, so the record and the
// batch's other writes commit together. first is false when it was recorded before.
func (tx *Tx) MarkProcessed(consumer, eventID string) (first bool, err error) {
	return markProcessed(tx.ctx, tx.tx, tx.s.now(), consumer, eventID)
}

// Processed reports whether consumer has recorded eventID.
func (s *Store) Processed(ctx context.Context, consumer, eventID string) (bool, error) {
	var one int
	err := s.read.QueryRowContext(ctx, "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2", consumer, eventID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: processed %s by %s: %w", eventID, consumer, err)
	}
	return true, nil
}

// PruneProcessed forgets consumer's records made before before, returning how many were
// removed. Prune only past the point where redelivery can happen (the topic's retention).
func (s *Store) PruneProcessed(ctx context.Context, consumer string, before time.Time) (int64, error) {
	res, err := s.write.ExecContext(ctx, "DELETE FROM processed_events WHERE consumer = $1 AND processed_at < $2", consumer, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("store: prune processed events of %s: %w", consumer, err)
	}
	return res.RowsAffected()
}
