package workeffort

import (
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// Projection is the WorkEffort projection's name and consumer group: its positions are stored
// under it.
const Projection = "work-efforts"

// Table is the projection's table.
const Table = "work_efforts"

const (
	columns = "id, title, description, status, progress, created_at, started_at, completed_at, version, " +
		"github_issue, github_issue_url, github_issue_closed, needs_manual_sync, manual_sync_reason, assignee, updated_at, " +
		"description_null"
	numColumns = 17
	// chunk bounds rows per multi-row statement: 100 rows x 17 columns stays far below
	// SQLite's 32766 and PostgreSQL's 65535 parameters. The rest of a batch's rows go in
	// statements of the power-of-two sizes of store.ChunkSizes, so that the texts recur and
	// are prepared once on SQLite (Tx.ExecPrepared).
	chunk = 100
)

// upsertTail is the ON CONFLICT clause of the multi-row upsert: every column but the key is
// replaced by the folded state.
var upsertTail = func() string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (id) DO UPDATE SET ")
	for i, c := range strings.Split(columns, ", ")[1:] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c + " = excluded." + c)
	}
	return b.String()
}()

// batch holds the work efforts one store batch touches: loaded with one query on the batch's
// first WorkEffort event, folded in memory, written once before commit. It is the Tx's value
// under batchKey{table}.
type batch struct {
	rows  map[string]*State
	dirty map[string]struct{}
	ids   []string // ce_ids applied by this batch, in order, recorded before commit
	// seen is ids as a set, built on the batch's first stale event (rare: redeliveries and
	// redrives), then kept up to date.
	seen map[string]struct{}
}

type batchKey struct{ table string }

// ApplyEvent is the WorkEffort projection's apply function for store.ApplyBatch (under
// Projection). It folds WorkEffort:* events with Apply and ignores other types. Rows of the
// whole batch are read in one query and written once per batch, so a batch costs a few
// statements however many events it holds. The ce_id of every applied event is recorded
// (applied_events, consumer "projection:work_efforts") in the same transaction. An event
// whose ce_aggregateversion is not above the row's version is skipped only when its ce_id was
// applied before (a proven duplicate: a redelivery or a redrive); any other such event, one
// the fold rejects (ErrInvalidData) or one without an aggregate ID fails the batch with a
// permanent *store.ApplyError (store.ErrInvalidEvent naming why), so that it goes to the
// dead-letter topic: nothing is dropped silently.
func ApplyEvent(tx *store.Tx, ev store.Event) error { return apply(tx, ev, Table, true) }

// applyTo is ApplyEvent writing to table instead of work_efforts (a rebuild's shadow): the
// same fold, the same batch loading and writing, without waking WaitVersion (the rows are not
// visible to reads until the swap).
func applyTo(table string) func(tx *store.Tx, ev store.Event) error {
	return func(tx *store.Tx, ev store.Event) error { return apply(tx, ev, table, false) }
}

// Rebuildable is how pyrite projection rebuild rebuilds the projection.
func Rebuildable() store.Rebuildable {
	return store.Rebuildable{Projection: Projection, Table: Table, Key: "id", Apply: applyTo}
}

func apply(tx *store.Tx, ev store.Event, table string, notify bool) error {
	if !isWorkEffort(ev) {
		return nil
	}
	if ev.AggregateID == "" {
		return fmt.Errorf("%w: %s has no aggregate ID", store.ErrInvalidEvent, ev.Type)
	}
	b, err := load(tx, table, notify)
	if err != nil {
		return err
	}
	st, ok := b.rows[ev.AggregateID]
	if !ok {
		n := New(ev.AggregateID)
		st = &n
		b.rows[ev.AggregateID] = st
	}
	next, err := Apply(*st, ev.Type, ev.Data, ev.AggregateVersion, ev.Time)
	if errors.Is(err, ErrStale) {
		return stale(tx, b, table, ev, st.Version)
	}
	if errors.Is(err, ErrInvalidData) {
		return fmt.Errorf("%w: %w", store.ErrInvalidEvent, err)
	}
	if err != nil {
		return err
	}
	*st = next
	b.dirty[ev.AggregateID] = struct{}{}
	if ev.ID != "" {
		b.ids = append(b.ids, ev.ID)
		if b.seen != nil {
			b.seen[ev.ID] = struct{}{}
		}
	}
	return nil
}

// appliedConsumer is the applied_events consumer under which a projection table's applied
// ce_ids are recorded.
func appliedConsumer(table string) string { return "projection:" + table }

// stale decides an event whose version is not above the row's: nil when its ce_id was applied
// before (by this batch or an earlier one), else a permanent error saying why.
func stale(tx *store.Tx, b *batch, table string, ev store.Event, at int64) error {
	if ev.ID != "" {
		if b.seen == nil {
			b.seen = make(map[string]struct{}, len(b.ids))
			for _, id := range b.ids {
				b.seen[id] = struct{}{}
			}
		}
		if _, ok := b.seen[ev.ID]; ok {
			return nil
		}
		seen, err := tx.Applied(appliedConsumer(table), ev.ID)
		if err != nil {
			return err
		}
		if seen {
			return nil
		}
	}
	return fmt.Errorf("%w: %s version %d of %q is not above the projection's version %d, and its ce_id %q was never applied: not a duplicate",
		store.ErrInvalidEvent, ev.Type, ev.AggregateVersion, ev.AggregateID, at, ev.ID)
}

// Model is the projection's read model of ev's aggregate as ApplyEvent has folded it so far in
// this batch (nil when no event of it was applied in the batch); the projector streams it
// with the event.
func Model(tx *store.Tx, ev store.Event) any {
	b, _ := tx.Value(batchKey{Table}).(*batch)
	if b == nil {
		return nil
	}
	if st, ok := b.rows[ev.AggregateID]; ok {
		return *st
	}
	return nil
}

func isWorkEffort(ev store.Event) bool { return strings.HasPrefix(ev.Type, Aggregate+":") }

// waitKey is the store.WaitVersion key of a work effort's row.
func waitKey(id string) string { return Table + "/" + id }

// load returns the batch's work-effort rows of table, loading them on first use with one query
// per chunk of IDs; they are written back before commit, and with notify set their new
// versions wake WaitVersion after it.
func load(tx *store.Tx, table string, notify bool) (*batch, error) {
	if b, ok := tx.Value(batchKey{table}).(*batch); ok {
		return b, nil
	}
	seen := make(map[string]struct{})
	var ids []string
	for _, ev := range tx.Batch() {
		if _, ok := seen[ev.AggregateID]; ok || ev.AggregateID == "" || !isWorkEffort(ev) {
			continue
		}
		seen[ev.AggregateID] = struct{}{}
		ids = append(ids, ev.AggregateID)
	}
	b := &batch{rows: make(map[string]*State, len(ids)), dirty: make(map[string]struct{}, len(ids)), ids: make([]string, 0, len(tx.Batch()))}
	args := make([]any, 0, min(len(ids), chunk))
	start := 0
	for _, n := range store.ChunkSizes(len(ids), chunk) {
		part := ids[start : start+n]
		start += n
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		rows, err := tx.QueryPrepared(tx.MultiRowStatement("SELECT "+columns+" FROM "+table+" WHERE id IN ", 1, n, ""), args...)
		if err != nil {
			return nil, fmt.Errorf("workeffort: load %s: %w", table, err)
		}
		for rows.Next() {
			st, err := scan(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("workeffort: load %s: %w", table, err)
			}
			b.rows[st.ID] = &st
		}
		err = rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("workeffort: load %s: %w", table, err)
		}
	}
	tx.SetValue(batchKey{table}, b)
	tx.BeforeCommit(func() error { return flush(tx, b, table, notify) })
	return b, nil
}

// flush upserts the batch's changed rows into table, in ID order, with multi-row statements,
// and records the batch's applied ce_ids.
func flush(tx *store.Tx, b *batch, table string, notify bool) error {
	ids := make([]string, 0, len(b.dirty))
	for id := range b.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	args := make([]any, 0, min(len(ids), chunk)*numColumns)
	start := 0
	for _, n := range store.ChunkSizes(len(ids), chunk) {
		part := ids[start : start+n]
		start += n
		args = args[:0]
		for _, id := range part {
			args = appendArgs(args, b.rows[id])
		}
		q := tx.MultiRowStatement("INSERT INTO "+table+" ("+columns+") VALUES ", n, numColumns, upsertTail)
		if _, err := tx.ExecPrepared(q, args...); err != nil {
			return fmt.Errorf("workeffort: write %s: %w", table, err)
		}
	}
	if notify {
		for _, id := range ids {
			tx.NotifyAfterCommit(waitKey(id), b.rows[id].Version)
		}
	}
	return tx.MarkAppliedAll(appliedConsumer(table), b.ids)
}

func appendArgs(args []any, s *State) []any {
	var issue any
	if s.GitHubIssue != nil {
		issue = int64(*s.GitHubIssue)
	}
	var desc string
	if s.Description != nil {
		desc = *s.Description
	}
	return append(args, s.ID, s.Title, desc, s.Status, int64(s.Progress),
		millis(s.CreatedAt), millis(s.StartedAt), millis(s.CompletedAt), s.Version,
		issue, s.GitHubIssueURL, boolInt(s.GitHubIssueClosed), boolInt(s.NeedsManualSync), s.ManualSyncReason,
		s.Assignee, millis(s.UpdatedAt), boolInt(s.Description == nil))
}

func millis(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func fromMillis(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.UnixMilli(n.Int64).UTC()
	return &t
}

type scanner interface{ Scan(dest ...any) error }

func scan(sc scanner) (State, error) {
	var s State
	var created, started, completed, updated, issue sql.NullInt64
	var progress, closed, manual, descNull int64
	var desc string
	if err := sc.Scan(&s.ID, &s.Title, &desc, &s.Status, &progress, &created, &started, &completed,
		&s.Version, &issue, &s.GitHubIssueURL, &closed, &manual, &s.ManualSyncReason, &s.Assignee, &updated, &descNull); err != nil {
		return State{}, err
	}
	if descNull == 0 {
		s.Description = &desc
	}
	s.Progress = int(progress)
	s.CreatedAt, s.StartedAt, s.CompletedAt, s.UpdatedAt = fromMillis(created), fromMillis(started), fromMillis(completed), fromMillis(updated)
	if issue.Valid {
		n := int(issue.Int64)
		s.GitHubIssue = &n
	}
	s.GitHubIssueClosed, s.NeedsManualSync = closed != 0, manual != 0
	return s, nil
}
