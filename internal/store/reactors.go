package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State of reactors, sagas and process managers (migration 0002): a transactional outbox and
// the GitHub saga's issues (a domain module's process manager keeps its state in tables of
// its own, with Migrate or WithMigrations: the deployment module's). Sagas and process
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

// GitHub saga states.
const (
	IssueCreating = "creating" // intent recorded; the API call may or may not have happened
	IssueOpen     = "open"
	IssueClosed   = "closed"
	IssueFailed   = "failed" // creation given up; compensated
)

// GitHubIssue is the GitHub saga's state for one work effort.
type GitHubIssue struct {
	WorkEffortID string
	State        string // Issue*
	Number       int    // 0 until created
	URL          string
	// RequestedAt is when creation was first attempted: issues created since then are
	// searched for the work effort's marker before creating another.
	RequestedAt time.Time
	// TriggerEventID is the ce_id of the Started event that asked for the issue.
	TriggerEventID string
	LastError      string
	UpdatedAt      time.Time
}

const ghColumns = "work_effort_id, state, issue_number, issue_url, requested_at, trigger_event_id, last_error, updated_at"

type rowScanner interface{ Scan(dest ...any) error }

func scanGitHubIssue(r rowScanner) (GitHubIssue, bool, error) {
	var (
		g        GitHubIssue
		num      sql.NullInt64
		req, upd int64
	)
	err := r.Scan(&g.WorkEffortID, &g.State, &num, &g.URL, &req, &g.TriggerEventID, &g.LastError, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return GitHubIssue{}, false, nil
	}
	if err != nil {
		return GitHubIssue{}, false, fmt.Errorf("store: github issue: %w", err)
	}
	g.Number = int(num.Int64)
	g.RequestedAt, g.UpdatedAt = time.UnixMilli(req).UTC(), time.UnixMilli(upd).UTC()
	return g, true, nil
}

// GitHubIssue reads the saga state of a work effort in the transaction.
func (tx *Tx) GitHubIssue(workEffortID string) (GitHubIssue, bool, error) {
	return scanGitHubIssue(tx.QueryRow("SELECT "+ghColumns+" FROM github_issues WHERE work_effort_id = $1", workEffortID))
}

// GitHubIssue reads the saga state of a work effort (committed state only).
func (s *Store) GitHubIssue(ctx context.Context, workEffortID string) (GitHubIssue, bool, error) {
	return scanGitHubIssue(s.read.QueryRowContext(ctx, "SELECT "+ghColumns+" FROM github_issues WHERE work_effort_id = $1", workEffortID))
}

// PutGitHubIssue inserts or replaces the saga state of g.WorkEffortID; UpdatedAt is set to
// the store's clock.
func (tx *Tx) PutGitHubIssue(g GitHubIssue) error {
	if g.WorkEffortID == "" || g.State == "" {
		return fmt.Errorf("%w: github issue needs a work effort id and a state", ErrInvalidEvent)
	}
	var num any
	if g.Number > 0 {
		num = g.Number
	}
	_, err := tx.Exec(`INSERT INTO github_issues (`+ghColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (work_effort_id) DO UPDATE SET state = excluded.state, issue_number = excluded.issue_number,
			issue_url = excluded.issue_url, requested_at = excluded.requested_at,
			trigger_event_id = excluded.trigger_event_id, last_error = excluded.last_error, updated_at = excluded.updated_at`,
		g.WorkEffortID, g.State, num, g.URL, g.RequestedAt.UnixMilli(), g.TriggerEventID, g.LastError, tx.s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("store: put github issue %s: %w", g.WorkEffortID, err)
	}
	return nil
}
