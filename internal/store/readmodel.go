package store

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What a domain module's projection builds its read model with, beyond Exec and Query: state
// kept for the whole batch (Value, SetValue), multi-row statements (Placeholders), the
// batch's applied ce_ids (MarkProcessedAll) and waking readers that wait for a version
// (Notify, WaitVersion).

// Value returns what SetValue stored under key in this batch, nil if nothing. An apply
// function keeps there what it loads once per batch (the rows the batch touches) and writes
// back in a BeforeCommit hook.
func (tx *Tx) Value(key any) any { return tx.values[key] }

// SetValue stores v under key for the rest of the batch. Use an unexported key type, as with
// context.WithValue.
func (tx *Tx) SetValue(key, v any) {
	if tx.values == nil {
		tx.values = map[any]any{}
	}
	tx.values[key] = v
}

// Now returns the store's clock (WithClock), for columns such as processed_at.
func (tx *Tx) Now() time.Time { return tx.s.now() }

// Placeholders returns n parameter placeholders for arguments from, from+1, ..., for
// multi-row statements: "$from, ..." on PostgreSQL, "?, ..." on SQLite, where each "$N" is a
// named parameter that SQLite looks up by a linear scan when preparing and binding (quadratic
// in a 1600-parameter statement), while "?" is positional. A statement uses one style only.
func (tx *Tx) Placeholders(from, n int) string { return tx.s.placeholders(from, n) }

func (s *Store) placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		if s.kind == SQLite {
			b.WriteByte('?')
			continue
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// MarkProcessedAll records every eventID for consumer in the batch's transaction with
// multi-row statements, in ID order; IDs recorded before are left as they are. The statements
// come in the fixed sizes of ChunkSizes and are prepared once (ExecPrepared).
func (tx *Tx) MarkProcessedAll(consumer string, eventIDs []string) error {
	return tx.recordAll("processed_events", true, consumer, eventIDs)
}

// MarkAppliedAll records that a projection (consumer, e.g. "projection:<table>") applied every
// eventID, in the batch's transaction, as MarkProcessedAll does, but in applied_events: a
// key-only record, about a third of processed_events' cost per ID on SQLite, that
// PruneProcessed does not prune. Applied reads it.
func (tx *Tx) MarkAppliedAll(consumer string, eventIDs []string) error {
	return tx.recordAll("applied_events", false, consumer, eventIDs)
}

// recordAll inserts a (consumer, eventID) row per ID into table, with processed_at when
// stamped.
func (tx *Tx) recordAll(table string, stamped bool, consumer string, eventIDs []string) error {
	ids := append([]string(nil), eventIDs...)
	sort.Strings(ids)
	ids = slices.Compact(ids) // an ID given twice is one row
	// Boxed once: every row shares them.
	var who, now any = consumer, tx.s.now().UnixMilli()
	cols, columns := 2, "consumer, event_id"
	if stamped {
		cols, columns = 3, "consumer, event_id, processed_at"
	}
	const chunk = 256
	args := make([]any, 0, cols*min(len(ids), chunk))
	start := 0
	for _, n := range ChunkSizes(len(ids), chunk) {
		args = args[:0]
		for _, id := range ids[start : start+n] {
			args = append(args, who, id)
			if stamped {
				args = append(args, now)
			}
		}
		start += n
		q := tx.MultiRowStatement("INSERT INTO "+table+" ("+columns+") VALUES ", n, cols, " ON CONFLICT (consumer, event_id) DO NOTHING")
		if _, err := tx.ExecPrepared(q, args...); err != nil {
			return fmt.Errorf("store: record events %s by %s: %w", strings.TrimSuffix(table, "_events"), consumer, err)
		}
	}
	return nil
}

// Processed reports whether consumer has recorded eventID, as the batch's transaction sees it.
func (tx *Tx) Processed(consumer, eventID string) (bool, error) {
	return tx.recorded("processed_events", consumer, eventID)
}

// Applied reports whether MarkAppliedAll recorded eventID for consumer, as the batch's
// transaction sees it.
func (tx *Tx) Applied(consumer, eventID string) (bool, error) {
	return tx.recorded("applied_events", consumer, eventID)
}

func (tx *Tx) recorded(table, consumer, eventID string) (bool, error) {
	rows, err := tx.QueryPrepared("SELECT 1 FROM "+table+" WHERE consumer = $1 AND event_id = $2", consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("store: %s %s by %s: %w", table, eventID, consumer, err)
	}
	defer rows.Close()
	found := rows.Next()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("store: %s %s by %s: %w", table, eventID, consumer, err)
	}
	return found, nil
}

// NotifyAfterCommit wakes, once the batch has committed, the WaitVersion calls of key in this
// process whose version is at most version. Call it for the rows the batch changed in the
// live tables (not in a rebuild's shadow: those are not read until the swap).
func (tx *Tx) NotifyAfterCommit(key string, version int64) {
	tx.AfterCommit(func() { tx.s.watch.notify(key, version) })
}

// WaitVersion calls read until the version it returns is at least minVersion (at once if it
// already is; minVersion <= 0 reads once). A batch of this process that calls
// NotifyAfterCommit for key with such a version wakes it without polling; commits by other
// processes are seen within the poll interval (WithPollInterval). It returns nil once the
// version is reached, read's error when read fails (unless ctx ended), and an error wrapping
// ErrVersionNotReached and ctx.Err() when ctx ends first: bound the wait with a deadline.
// Keys are the read model's own, e.g. "<table>/<id>".
func (s *Store) WaitVersion(ctx context.Context, key string, minVersion int64, read func(ctx context.Context) (version int64, err error)) error {
	if minVersion <= 0 {
		_, err := read(ctx)
		return err
	}
	w := s.watch.add(key, minVersion)
	defer s.watch.remove(key, w)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		v, err := read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: %q version %d: %w", ErrVersionNotReached, key, minVersion, ctx.Err())
			}
			return err
		}
		if v >= minVersion {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(s.poll)
		} else {
			timer.Reset(s.poll)
		}
		select {
		case <-w.ch:
		case <-timer.C:
		case <-ctx.Done():
			return fmt.Errorf("%w: %q version %d: %w", ErrVersionNotReached, key, minVersion, ctx.Err())
		}
	}
}
