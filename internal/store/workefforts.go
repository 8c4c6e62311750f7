package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

// WorkEffortProjection is the name the WorkEffort projection's positions are stored under.
const WorkEffortProjection = "work-efforts"

// List limits.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

const (
	weColumns = "id, title, description, status, progress, created_at, started_at, completed_at, version, " +
		"github_issue, github_issue_url, github_issue_closed, needs_manual_sync, manual_sync_reason, assignee, updated_at, " +
		"description_null"
	weNumColumns = 17
	// weChunk bounds rows per multi-row statement: 100 rows x 16 columns stays far below
	// SQLite's 32766 and PostgreSQL's 65535 parameters.
	weChunk = 100
)

// weUpsertTail is the ON CONFLICT clause of the multi-row upsert: every column but the key is
// replaced by the folded state.
var weUpsertTail = func() string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (id) DO UPDATE SET ")
	for i, c := range strings.Split(weColumns, ", ")[1:] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c + " = excluded." + c)
	}
	return b.String()
}()

// weBatch holds the work efforts one batch touches: loaded with one query on the batch's first
// WorkEffort event, folded in memory, written once before commit.
type weBatch struct {
	rows  map[string]*workeffort.State
	dirty map[string]struct{}
	ids   map[string]struct{} // ce_ids applied by this batch, recorded before commit
}

// ApplyWorkEffort is the WorkEffort projection's apply function for ApplyBatch (store it
// under WorkEffortProjection). It folds WorkEffort:* events with workeffort.Apply and ignores
// other types. Rows of the whole batch are read in one query and written once per batch, so
// a batch costs a few statements however many events it holds. The ce_id of every applied
// event is recorded (processed_events, consumer "projection:<table>") in the same
// transaction. An event whose ce_aggregateversion is not above the row's version is skipped
// only when its ce_id was applied before (a proven duplicate: a redelivery or a redrive);
// any other such event, one the fold rejects (workeffort.ErrInvalidData) or one without an
// aggregate ID fails the batch with a permanent *ApplyError (ErrInvalidEvent naming why), so
// that it goes to the dead-letter topic: nothing is dropped silently.
func ApplyWorkEffort(tx *Tx, ev Event) error { return applyWorkEffort(tx, ev, "work_efforts", true) }

// applyWorkEffortTo is ApplyWorkEffort writing to table instead of work_efforts (a rebuild's
// shadow): the same fold, the same batch loading and writing, without waking WaitVersion
// (the rows are not visible to reads until the swap).
func applyWorkEffortTo(table string) func(tx *Tx, ev Event) error {
	return func(tx *Tx, ev Event) error { return applyWorkEffort(tx, ev, table, false) }
}

func applyWorkEffort(tx *Tx, ev Event, table string, notify bool) error {
	if !isWorkEffort(ev) {
		return nil
	}
	if ev.AggregateID == "" {
		return fmt.Errorf("%w: %s has no aggregate ID", ErrInvalidEvent, ev.Type)
	}
	b, err := tx.workEfforts(table, notify)
	if err != nil {
		return err
	}
	st, ok := b.rows[ev.AggregateID]
	if !ok {
		n := workeffort.New(ev.AggregateID)
		st = &n
		b.rows[ev.AggregateID] = st
	}
	next, err := workeffort.Apply(*st, ev.Type, ev.Data, ev.AggregateVersion, ev.Time)
	if errors.Is(err, workeffort.ErrStale) {
		return tx.staleWorkEffort(b, table, ev, st.Version)
	}
	if err != nil {
		return err
	}
	*st = next
	b.dirty[ev.AggregateID] = struct{}{}
	if ev.ID != "" {
		b.ids[ev.ID] = struct{}{}
	}
	return nil
}

// appliedConsumer is the processed_events consumer under which a projection table's applied
// ce_ids are recorded.
func appliedConsumer(table string) string { return "projection:" + table }

// staleWorkEffort decides an event whose version is not above the row's: nil when its ce_id
// was applied before (by this batch or an earlier one), else a permanent error saying why.
func (tx *Tx) staleWorkEffort(b *weBatch, table string, ev Event, at int64) error {
	if ev.ID != "" {
		if _, ok := b.ids[ev.ID]; ok {
			return nil
		}
		var one int
		err := tx.QueryRow("SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2", appliedConsumer(table), ev.ID).Scan(&one)
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: look up applied event %s: %w", ev.ID, err)
		}
	}
	return fmt.Errorf("%w: %s version %d of %q is not above the projection's version %d, and its ce_id %q was never applied: not a duplicate",
		ErrInvalidEvent, ev.Type, ev.AggregateVersion, ev.AggregateID, at, ev.ID)
}

// WorkEffort returns the state of id as ApplyWorkEffort has folded it so far in this batch,
// and false when no WorkEffort event of id was applied in it yet. The projector streams it
// as the read model after each event.
func (tx *Tx) WorkEffort(id string) (workeffort.State, bool) {
	if tx.we == nil {
		return workeffort.State{}, false
	}
	st, ok := tx.we.rows[id]
	if !ok {
		return workeffort.State{}, false
	}
	return *st, true
}

func isWorkEffort(ev Event) bool { return strings.HasPrefix(ev.Type, "WorkEffort:") }

// workEfforts returns the batch's work-effort rows of table, loading them on first use with
// one query per chunk of IDs; they are written back before commit, and with notify set
// their new versions wake WaitVersion after it.
func (tx *Tx) workEfforts(table string, notify bool) (*weBatch, error) {
	if tx.we != nil {
		return tx.we, nil
	}
	seen := make(map[string]struct{})
	var ids []string
	for _, ev := range tx.batch {
		if _, ok := seen[ev.AggregateID]; ok || ev.AggregateID == "" || !isWorkEffort(ev) {
			continue
		}
		seen[ev.AggregateID] = struct{}{}
		ids = append(ids, ev.AggregateID)
	}
	b := &weBatch{rows: make(map[string]*workeffort.State, len(ids)), dirty: make(map[string]struct{}, len(ids)), ids: map[string]struct{}{}}
	for start := 0; start < len(ids); start += weChunk {
		chunk := ids[start:min(start+weChunk, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := tx.Query("SELECT "+weColumns+" FROM "+table+" WHERE id IN ("+tx.s.placeholders(1, len(chunk))+")", args...)
		if err != nil {
			return nil, fmt.Errorf("store: load %s: %w", table, err)
		}
		for rows.Next() {
			st, err := scanWorkEffort(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("store: load %s: %w", table, err)
			}
			b.rows[st.ID] = &st
		}
		err = rows.Close()
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("store: load %s: %w", table, err)
		}
	}
	tx.we = b
	tx.BeforeCommit(func() error { return tx.flushWorkEfforts(b, table) })
	if notify {
		tx.AfterCommit(func() {
			for id := range b.dirty {
				tx.s.watch.notify(id, b.rows[id].Version)
			}
		})
	}
	return b, nil
}

// flushWorkEfforts upserts the batch's changed rows into table, in ID order, with multi-row
// statements.
func (tx *Tx) flushWorkEfforts(b *weBatch, table string) error {
	ids := make([]string, 0, len(b.dirty))
	for id := range b.dirty {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	args := make([]any, 0, min(len(ids), weChunk)*weNumColumns)
	for start := 0; start < len(ids); start += weChunk {
		chunk := ids[start:min(start+weChunk, len(ids))]
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (" + weColumns + ") VALUES ")
		args = args[:0]
		for i, id := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(" + tx.s.placeholders(i*weNumColumns+1, weNumColumns) + ")")
			args = appendWorkEffortArgs(args, b.rows[id])
		}
		q.WriteString(weUpsertTail)
		if _, err := tx.Exec(q.String(), args...); err != nil {
			return fmt.Errorf("store: write %s: %w", table, err)
		}
	}
	return tx.recordApplied(b, table)
}

// recordApplied inserts the batch's applied ce_ids, with multi-row statements.
func (tx *Tx) recordApplied(b *weBatch, table string) error {
	ids := make([]string, 0, len(b.ids))
	for id := range b.ids {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	consumer, now := appliedConsumer(table), tx.s.now().UnixMilli()
	const chunk = 300
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		var q strings.Builder
		q.WriteString("INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ")
		args := make([]any, 0, 3*len(part))
		for i, id := range part {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(" + tx.s.placeholders(3*i+1, 3) + ")")
			args = append(args, consumer, id, now)
		}
		q.WriteString(" ON CONFLICT (consumer, event_id) DO NOTHING")
		if _, err := tx.Exec(q.String(), args...); err != nil {
			return fmt.Errorf("store: record applied events of %s: %w", table, err)
		}
	}
	return nil
}

// placeholders returns n parameter placeholders for arguments from, from+1, ...: "$from, ..."
// for PostgreSQL, "?, ..." for SQLite, where each "$N" is a named parameter that SQLite looks
// up by a linear scan when preparing and binding (quadratic in a 1600-parameter statement),
// while "?" is positional.
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

func appendWorkEffortArgs(args []any, s *workeffort.State) []any {
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

func scanWorkEffort(sc scanner) (workeffort.State, error) {
	var s workeffort.State
	var created, started, completed, updated, issue sql.NullInt64
	var progress, closed, manual, descNull int64
	var desc string
	if err := sc.Scan(&s.ID, &s.Title, &desc, &s.Status, &progress, &created, &started, &completed,
		&s.Version, &issue, &s.GitHubIssueURL, &closed, &manual, &s.ManualSyncReason, &s.Assignee, &updated, &descNull); err != nil {
		return workeffort.State{}, err
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

// WorkEffort returns the committed state of one work effort; found is false when no event of
// it has been applied.
func (s *Store) WorkEffort(ctx context.Context, id string) (st workeffort.State, found bool, err error) {
	st, err = scanWorkEffort(s.read.QueryRowContext(ctx, "SELECT "+weColumns+" FROM work_efforts WHERE id = $1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return workeffort.State{}, false, nil
	}
	if err != nil {
		return workeffort.State{}, false, fmt.Errorf("store: work effort %q: %w", id, err)
	}
	return st, true, nil
}

// ListWorkEfforts returns up to limit work efforts in ID order, optionally only those with the
// given status ("" for all), starting after cursor ("" for the first page). next is the cursor
// of the following page, "" on the last page. limit <= 0 means DefaultListLimit; above
// MaxListLimit it is capped. An unknown status fails with ErrInvalidStatus, a cursor not made
// by this function with ErrInvalidCursor. Pages are keyset-paginated: rows inserted or changed
// between calls neither shift nor repeat the rows of later pages.
func (s *Store) ListWorkEfforts(ctx context.Context, status string, limit int, cursor string) (page []workeffort.State, next string, err error) {
	switch status {
	case "", workeffort.StatusPlanned, workeffort.StatusInProgress, workeffort.StatusCompleted:
	default:
		return nil, "", fmt.Errorf("%w: %q (want planned, in-progress or completed)", ErrInvalidStatus, status)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit <= 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	var where []string
	var args []any
	if status != "" {
		args = append(args, status)
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	if cursor != "" {
		args = append(args, after)
		where = append(where, "id > $"+strconv.Itoa(len(args)))
	}
	q := "SELECT " + weColumns + " FROM work_efforts"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit+1)
	q += " ORDER BY id LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list work efforts: %w", err)
	}
	defer rows.Close()
	page = make([]workeffort.State, 0, min(limit, 64))
	for rows.Next() {
		st, err := scanWorkEffort(rows)
		if err != nil {
			return nil, "", fmt.Errorf("store: list work efforts: %w", err)
		}
		page = append(page, st)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list work efforts: %w", err)
	}
	if len(page) > limit {
		page = page[:limit]
		next = encodeCursor(page[limit-1].ID)
	}
	return page, next, nil
}

const cursorPrefix = "we1:"

func encodeCursor(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + lastID))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return "", fmt.Errorf("%w: %q", ErrInvalidCursor, c)
	}
	return string(b[len(cursorPrefix):]), nil
}

// WaitVersion returns the work effort once its committed version is at least minVersion
// (at once if it already is; minVersion <= 0 does not wait). A commit in this process wakes
// it without polling; commits by other processes are seen within the poll interval (see
// WithPollInterval). When ctx ends first it returns the last state read (found tells whether
// it exists) and an error wrapping ErrVersionNotReached and ctx.Err(): bound the wait with a
// context deadline.
func (s *Store) WaitVersion(ctx context.Context, id string, minVersion int64) (st workeffort.State, found bool, err error) {
	if minVersion <= 0 {
		return s.WorkEffort(ctx, id)
	}
	w := s.watch.add(id, minVersion)
	defer s.watch.remove(id, w)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		cur, ok, err := s.WorkEffort(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return st, found, fmt.Errorf("%w: %q version %d: %w", ErrVersionNotReached, id, minVersion, ctx.Err())
			}
			return cur, ok, err
		}
		st, found = cur, ok
		if ok && st.Version >= minVersion {
			return st, true, nil
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
			return st, found, fmt.Errorf("%w: %q version %d: %w", ErrVersionNotReached, id, minVersion, ctx.Err())
		}
	}
}
