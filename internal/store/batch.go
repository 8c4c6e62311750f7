package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"
)

// Event is a decoded domain event with its Kafka position, as a projection applies it. The
// store does not import the bus; the runner converts its records to Events.
type Event struct {
	ID               string // ce_id
	Type             string // ce_type, e.g. "WorkEffort:Started"
	AggregateID      string // the record key / ce_subject
	AggregateVersion int64  // ce_aggregateversion; 0 when the header is absent
	Time             time.Time
	Data             map[string]any // the decoded Avro record
	Topic            string
	Partition        int32
	Offset           int64
}

// TopicPartition names a Kafka partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Tx is one ApplyBatch transaction, handed to the apply function. It is not safe for
// concurrent use and is only valid during the ApplyBatch call.
type Tx struct {
	ctx        context.Context
	tx         *sql.Tx
	s          *Store
	projection string
	batch      []Event
	before     []func() error
	after      []func()
	values     map[any]any          // SetValue's
	stmts      map[string]*sql.Stmt // ExecPrepared's, bound to this transaction
}

// Context returns the context of the ApplyBatch call.
func (tx *Tx) Context() context.Context { return tx.ctx }

// Projection returns the name of the projection being applied.
func (tx *Tx) Projection() string { return tx.projection }

// Batch returns every event of the batch (including those skipped as already applied), for
// apply functions that load what the whole batch needs in one query. Do not modify it.
func (tx *Tx) Batch() []Event { return tx.batch }

// Exec runs a statement in the transaction. Placeholders are $1, $2, ... on both backends.
func (tx *Tx) Exec(query string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(tx.ctx, query, args...)
}

// Query runs a query in the transaction. Placeholders are $1, $2, ... on both backends.
func (tx *Tx) Query(query string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(tx.ctx, query, args...)
}

// QueryRow runs a query expected to return at most one row in the transaction.
func (tx *Tx) QueryRow(query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(tx.ctx, query, args...)
}

// BeforeCommit registers fn to run after the last event was applied and before positions are
// written and the transaction commits, in registration order. An error rolls the batch back.
// Apply functions use it to write rows they kept in memory during the batch.
func (tx *Tx) BeforeCommit(fn func() error) { tx.before = append(tx.before, fn) }

// AfterCommit registers fn to run once the transaction has committed. It must not block.
func (tx *Tx) AfterCommit(fn func()) { tx.after = append(tx.after, fn) }

// ApplyBatch applies events to the projection in one database transaction: for each event at
// or above the projection's stored position of its partition it calls apply (events below it
// were applied before and are skipped), runs the BeforeCommit hooks, stores the new positions
// (highest applied offset + 1 per partition) and commits.
//
// Events of one partition must come in offset order. On any error nothing of the batch is
// kept. An apply failure is returned as *ApplyError (see Permanent); a concurrent position
// change as ErrPositionConflict; other errors are database errors, transient.
func (s *Store) ApplyBatch(ctx context.Context, projection string, events []Event, apply func(tx *Tx, ev Event) error) error {
	if len(events) == 0 {
		return nil
	}
	for i, ev := range events {
		if ev.Topic == "" || ev.Partition < 0 || ev.Offset < 0 {
			return &ApplyError{Index: i, Event: ev, Err: fmt.Errorf("%w: needs a topic, partition and offset", ErrInvalidEvent)}
		}
	}
	s.preparePending(ctx)
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: begin: %w", projection, err)
	}
	defer sqlTx.Rollback()
	tx := &Tx{ctx: ctx, tx: sqlTx, s: s, projection: projection, batch: events}

	stored, err := positions(ctx, txQuerier{tx}, projection)
	if err != nil {
		return err
	}
	next := make(map[TopicPartition]int64, 1)
	for i, ev := range events {
		tp := TopicPartition{ev.Topic, ev.Partition}
		from, ok := next[tp]
		if !ok {
			from = stored[tp]
		}
		if ev.Offset < from {
			continue
		}
		if err := apply(tx, ev); err != nil {
			return &ApplyError{Index: i, Event: ev, Err: err}
		}
		next[tp] = ev.Offset + 1
	}
	for _, fn := range tx.before {
		if err := fn(); err != nil {
			return fmt.Errorf("store: %s: %w", projection, err)
		}
	}
	if err := s.storePositions(tx, stored, next); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", projection, err)
	}
	for _, fn := range tx.after {
		fn()
	}
	return nil
}

// storePositions compares-and-sets each partition's position: an UPDATE that expects the
// value read at the start of the batch, or an INSERT that expects no row. Zero rows affected
// means another transaction got there first.
func (s *Store) storePositions(tx *Tx, stored, next map[TopicPartition]int64) error {
	now := s.now().UnixMilli()
	tps := make([]TopicPartition, 0, len(next))
	for tp := range next {
		tps = append(tps, tp)
	}
	// A fixed order keeps two PostgreSQL transactions from deadlocking on position rows.
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	for _, tp := range tps {
		off := next[tp]
		var res sql.Result
		var err error
		if old, ok := stored[tp]; ok {
			res, err = tx.ExecPrepared(`UPDATE projection_positions SET next_offset = $1, updated_at = $2
				WHERE projection = $3 AND topic = $4 AND partition = $5 AND next_offset = $6`,
				off, now, tx.projection, tp.Topic, tp.Partition, old)
		} else {
			res, err = tx.ExecPrepared(`INSERT INTO projection_positions (projection, topic, partition, next_offset, updated_at)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (projection, topic, partition) DO NOTHING`,
				tx.projection, tp.Topic, tp.Partition, off, now)
		}
		if err != nil {
			return fmt.Errorf("store: %s: store position %s[%d]: %w", tx.projection, tp.Topic, tp.Partition, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("store: %s: store position %s[%d]: %w", tx.projection, tp.Topic, tp.Partition, err)
		} else if n != 1 {
			return fmt.Errorf("%w: %s %s[%d]", ErrPositionConflict, tx.projection, tp.Topic, tp.Partition)
		}
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// txQuerier reads through a batch's prepared statements.
type txQuerier struct{ tx *Tx }

func (q txQuerier) QueryContext(_ context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.tx.QueryPrepared(query, args...)
}

func positions(ctx context.Context, q querier, projection string) (map[TopicPartition]int64, error) {
	rows, err := q.QueryContext(ctx, "SELECT topic, partition, next_offset FROM projection_positions WHERE projection = $1", projection)
	if err != nil {
		return nil, fmt.Errorf("store: %s: read positions: %w", projection, err)
	}
	defer rows.Close()
	out := make(map[TopicPartition]int64)
	for rows.Next() {
		var tp TopicPartition
		var off int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &off); err != nil {
			return nil, fmt.Errorf("store: %s: read positions: %w", projection, err)
		}
		out[tp] = off
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: read positions: %w", projection, err)
	}
	return out, nil
}

// Positions returns the projection's stored next offset per partition: where its consumer
// resumes. Partitions never applied are absent (start from the group's reset policy).
func (s *Store) Positions(ctx context.Context, projection string) (map[TopicPartition]int64, error) {
	return positions(ctx, s.read, projection)
}

// Projections returns the names of the projections that have stored positions, sorted.
func (s *Store) Projections(ctx context.Context) ([]string, error) {
	rows, err := s.read.QueryContext(ctx, "SELECT DISTINCT projection FROM projection_positions ORDER BY projection")
	if err != nil {
		return nil, fmt.Errorf("store: list projections: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("store: list projections: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: list projections: %w", err)
	}
	return out, nil
}
