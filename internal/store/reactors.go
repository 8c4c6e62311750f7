package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// State of reactors, sagas and process managers (migration 0002): a transactional outbox and
// named counters. A saga or process manager keeps its own state in tables of its own, with
// Migrate or WithMigrations (the GitHub saga's, the deployment module's). Sagas and process
// managers write their state with Tx methods inside ApplyBatch, so that state,
// positions and the outbox records they decided on commit together; Update runs the same
// kind of transaction without positions (an intent recorded before a call to an outside
// service, a deadline that fired).

// Update runs fn in one database transaction without positions, for consumer (Tx.Projection
// returns it), and commits unless fn fails. BeforeCommit and AfterCommit hooks run as in
// ApplyBatch. Errors from fn are returned as they are.
func (s *Store) Update(ctx context.Context, consumer string, fn func(tx *Tx) error) error {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: begin: %w", consumer, err)
	}
	defer sqlTx.Rollback()
	tx := &Tx{ctx: ctx, tx: sqlTx, s: s, projection: consumer}
	if err := fn(tx); err != nil {
		return err
	}
	for _, h := range tx.before {
		if err := h(); err != nil {
			return fmt.Errorf("store: %s: %w", consumer, err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", consumer, err)
	}
	for _, h := range tx.after {
		h()
	}
	return nil
}

// Header is one Kafka record header of an outbox record.
type Header struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

// OutboxRecord is one Kafka record waiting in the outbox.
type OutboxRecord struct {
	// Seq orders a consumer's records (assigned by AddOutbox, increasing per consumer).
	Seq int64
	// EventID is the record's ce_id; a consumer's outbox holds an ID at most once.
	EventID string
	Topic   string
	Key     []byte
	Value   []byte
	Headers []Header
	// Source is the partition whose event caused the record; Partition -1 when none did
	// (e.g. a deadline).
	Source TopicPartition
	// CreatedAt is when the record was queued.
	CreatedAt time.Time
}

// OutboxFilter selects outbox records; the zero value selects all of a consumer's.
type OutboxFilter struct {
	// Source, when set, selects records caused by events of that partition.
	Source *TopicPartition
	// Before, when set, selects records queued before it.
	Before time.Time
	// Limit bounds how many are returned (oldest first); 0 means 500.
	Limit int
}

// AddOutbox queues recs for consumer in the transaction and returns their sequence numbers
// (0 for a record whose EventID was queued before and is still waiting: it is not queued
// again). Records commit or roll back with the transaction.
func (tx *Tx) AddOutbox(consumer string, recs ...OutboxRecord) ([]int64, error) {
	seqs := make([]int64, len(recs))
	now := tx.s.now().UnixMilli()
	for i, r := range recs {
		if r.EventID == "" || r.Topic == "" {
			return nil, fmt.Errorf("%w: outbox record needs an event id and a topic", ErrInvalidEvent)
		}
		var seq int64
		if err := tx.QueryRow(`INSERT INTO reactor_counters (name, value) VALUES ($1, 1)
			ON CONFLICT (name) DO UPDATE SET value = reactor_counters.value + 1 RETURNING value`,
			"outbox/"+consumer).Scan(&seq); err != nil {
			return nil, fmt.Errorf("store: outbox of %s: sequence: %w", consumer, err)
		}
		hs, err := json.Marshal(r.Headers)
		if err != nil {
			return nil, fmt.Errorf("store: outbox of %s: headers: %w", consumer, err)
		}
		res, err := tx.Exec(`INSERT INTO outbox (consumer, seq, event_id, topic, record_key, record_value, headers,
				source_topic, source_partition, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (consumer, event_id) DO NOTHING`,
			consumer, seq, r.EventID, r.Topic, b64(r.Key), b64(r.Value), string(hs),
			r.Source.Topic, r.Source.Partition, now)
		if err != nil {
			return nil, fmt.Errorf("store: outbox of %s: add %s: %w", consumer, r.EventID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return nil, fmt.Errorf("store: outbox of %s: add %s: %w", consumer, r.EventID, err)
		} else if n == 1 {
			seqs[i] = seq
		}
	}
	return seqs, nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// Outbox returns consumer's waiting records that match f, in sequence order.
func (s *Store) Outbox(ctx context.Context, consumer string, f OutboxFilter) ([]OutboxRecord, error) {
	q := strings.Builder{}
	q.WriteString(`SELECT seq, event_id, topic, record_key, record_value, headers, source_topic, source_partition, created_at
		FROM outbox WHERE consumer = $1`)
	args := []any{consumer}
	if f.Source != nil {
		args = append(args, f.Source.Topic, f.Source.Partition)
		fmt.Fprintf(&q, " AND source_topic = $%d AND source_partition = $%d", len(args)-1, len(args))
	}
	if !f.Before.IsZero() {
		args = append(args, f.Before.UnixMilli())
		fmt.Fprintf(&q, " AND created_at < $%d", len(args))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 500
	}
	args = append(args, limit)
	fmt.Fprintf(&q, " ORDER BY seq LIMIT $%d", len(args))
	rows, err := s.read.QueryContext(ctx, q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("store: outbox of %s: %w", consumer, err)
	}
	defer rows.Close()
	var out []OutboxRecord
	for rows.Next() {
		var (
			r            OutboxRecord
			key, val, hs string
			created      int64
		)
		if err := rows.Scan(&r.Seq, &r.EventID, &r.Topic, &key, &val, &hs, &r.Source.Topic, &r.Source.Partition, &created); err != nil {
			return nil, fmt.Errorf("store: outbox of %s: %w", consumer, err)
		}
		if r.Key, err = base64.StdEncoding.DecodeString(key); err == nil {
			r.Value, err = base64.StdEncoding.DecodeString(val)
		}
		if err == nil {
			err = json.Unmarshal([]byte(hs), &r.Headers)
		}
		if err != nil {
			return nil, fmt.Errorf("store: outbox of %s: record %d is corrupt: %w", consumer, r.Seq, err)
		}
		r.CreatedAt = time.UnixMilli(created).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: outbox of %s: %w", consumer, err)
	}
	return out, nil
}

// DeleteOutbox removes consumer's records with the given sequence numbers (those that were
// written to Kafka). Unknown numbers are ignored.
func (s *Store) DeleteOutbox(ctx context.Context, consumer string, seqs ...int64) error {
	for len(seqs) > 0 {
		n := min(len(seqs), 200)
		args := []any{consumer}
		for _, seq := range seqs[:n] {
			args = append(args, seq)
		}
		if _, err := s.write.ExecContext(ctx, "DELETE FROM outbox WHERE consumer = $1 AND seq IN ("+s.placeholders(2, n)+")", args...); err != nil {
			return fmt.Errorf("store: outbox of %s: delete: %w", consumer, err)
		}
		seqs = seqs[n:]
	}
	return nil
}
