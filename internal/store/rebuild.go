package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Rebuilding a projection (pyrite projection rebuild) happens beside the live read model:
//
//   - StartRebuild creates shadow tables with the live tables' columns and constraints
//     (<table>_rebuild), and seeds the shadow's positions (stored in projection_positions
//     under "rebuild:<projection>") with the offsets the rebuild starts from.
//   - Rebuild.Apply folds batches of events into the shadow tables with the projection's own
//     fold, storing the shadow's positions in the same transaction, exactly as ApplyBatch does
//     for the live model. Queries keep reading the live tables meanwhile; the live projector
//     keeps applying to them.
//   - Rebuild.Swap replaces the live tables by the shadow tables in one transaction, only when
//     the shadow has applied at least as far as the live projection on every partition (else
//     *BehindError: consume further and try again). It drops the live tables, renames the
//     shadow tables in their place, recreates the live tables' secondary indexes under their
//     own names, moves the shadow's positions over the live positions and counts a new
//     generation. A live projector that consumes on keeps working: its next batch reads the
//     new positions (never behind its own) and skips what the shadow already applied; a batch
//     that was in flight across the swap fails the positions compare-and-set with
//     ErrPositionConflict and is rolled back, as after a rebalance.
//   - Rebuild.Abort drops the shadow tables and positions.
//
// The swap takes the writer lock: on SQLite readers go on reading the old tables until it
// commits (WAL); on PostgreSQL it holds an ACCESS EXCLUSIVE lock on the live tables for the
// time it takes to rename and recreate the secondary indexes, during which reads wait.
// Processes that cache rows of the read model should drop their cache when Generation
// changes.

// Rebuild errors. Callers branch with errors.Is.
var (
	// ErrNotRebuildable means the Rebuildable handed to StartRebuild lacks a projection,
	// a table, a key or an apply function.
	ErrNotRebuildable = errors.New("store: projection cannot be rebuilt")
	// ErrRebuildInProgress means a rebuild of the projection was started and neither swapped
	// nor aborted: it is still running elsewhere, or it was interrupted. RebuildOptions.Restart
	// drops it and starts over.
	ErrRebuildInProgress = errors.New("store: a rebuild of the projection is in progress")
	// ErrRebuildGone means the rebuild was aborted or restarted by someone else: its shadow
	// tables are not this Rebuild's any more.
	ErrRebuildGone = errors.New("store: the rebuild was aborted or restarted elsewhere")
	// ErrRebuildBehind is wrapped by *BehindError.
	ErrRebuildBehind = errors.New("store: the rebuild is behind the live projection")
)

// Behind is one partition on which the shadow has not yet applied what the live projection
// has: Shadow and Live are their next offsets.
type Behind struct {
	Shadow, Live int64
}

// BehindError is returned by Swap when the live projection has applied further than the
// shadow on some partitions; nothing was changed. Apply the missing events and swap again.
type BehindError struct {
	Projection string
	Partitions map[TopicPartition]Behind
}

func (e *BehindError) Error() string {
	tps := slices.SortedFunc(maps.Keys(e.Partitions), compareTP)
	parts := make([]string, 0, len(tps))
	for _, tp := range tps {
		b := e.Partitions[tp]
		parts = append(parts, fmt.Sprintf("%s[%d] at %d, live at %d", tp.Topic, tp.Partition, b.Shadow, b.Live))
	}
	return fmt.Sprintf("store: rebuild of %s is behind the live projection: %s", e.Projection, strings.Join(parts, "; "))
}

func (e *BehindError) Unwrap() error { return ErrRebuildBehind }

func compareTP(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition - b.Partition)
}

// Rebuildable says how to rebuild one projection; its domain module declares it.
type Rebuildable struct {
	// Projection is the projection's name (its positions are stored under it).
	Projection string
	// Table is the live table and Key its primary key column. A rebuild fills a shadow table
	// with the same columns, constraints and secondary indexes.
	Table, Key string
	// Apply returns the projection's apply function writing to table instead of Table (the
	// same fold; it must not wake WaitVersion, as the shadow's rows are not read until the
	// swap).
	Apply func(table string) func(tx *Tx, ev Event) error
}

const (
	shadowSuffix  = "_rebuild"
	rebuildPrefix = "rebuild:"
)

// RebuildOptions configures StartRebuild.
type RebuildOptions struct {
	// Restart drops the shadow tables of an earlier rebuild that was neither swapped nor
	// aborted, instead of failing with ErrRebuildInProgress. If that rebuild is still running
	// elsewhere, its next Apply or Swap fails (ErrRebuildGone or a position conflict).
	Restart bool
	// From describes where the rebuild starts, for people (recorded with the rebuild).
	From string
	// Start is the first offset to apply per partition. It is stored as the shadow's
	// position, so events below it are skipped and a partition with no event from there on
	// is caught up at it. Partitions absent start at the first event applied.
	Start map[TopicPartition]int64
}

// Rebuild is a rebuild in progress of one projection; see StartRebuild. Its methods may be
// called from one goroutine at a time.
type Rebuild struct {
	s          *Store
	projection string
	spec       Rebuildable
	shadow     string // shadow table
	positions  string // projection name of the shadow's positions
	started    int64  // started_at, the rebuild's token
	apply      func(*Tx, Event) error
}

// StartRebuild creates an empty shadow table for spec's projection and seeds its positions
// with o.Start. It fails with ErrNotRebuildable when spec is incomplete and with
// ErrRebuildInProgress when an earlier rebuild was neither swapped nor aborted (unless
// o.Restart).
func (s *Store) StartRebuild(ctx context.Context, spec Rebuildable, o RebuildOptions) (*Rebuild, error) {
	projection := spec.Projection
	if projection == "" || spec.Table == "" || spec.Key == "" || spec.Apply == nil {
		return nil, fmt.Errorf("%w: %q needs a projection, a table, a key and an apply function", ErrNotRebuildable, projection)
	}
	r := &Rebuild{
		s: s, projection: projection, spec: spec,
		shadow: spec.Table + shadowSuffix, positions: rebuildPrefix + projection,
		apply: spec.Apply(spec.Table + shadowSuffix),
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: start rebuild of %s: %w", projection, err)
	}
	defer tx.Rollback()
	fail := func(err error) (*Rebuild, error) {
		return nil, fmt.Errorf("store: start rebuild of %s: %w", projection, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO projection_rebuilds (projection) VALUES ($1) ON CONFLICT (projection) DO NOTHING", projection); err != nil {
		return fail(err)
	}
	var started sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT started_at FROM projection_rebuilds WHERE projection = $1"+s.forUpdate(), projection).Scan(&started); err != nil {
		return fail(err)
	}
	if started.Valid && !o.Restart {
		return nil, fmt.Errorf("%w: %s, started %s; restart it to drop it and start over",
			ErrRebuildInProgress, projection, time.UnixMilli(started.Int64).UTC().Format(time.RFC3339))
	}
	if _, err := tx.ExecContext(ctx, "DROP TABLE IF EXISTS "+r.shadow); err != nil {
		return fail(err)
	}
	if err := s.createShadow(ctx, tx, spec, r.shadow); err != nil {
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM projection_positions WHERE projection = $1", r.positions); err != nil {
		return fail(err)
	}
	now := s.now().UnixMilli()
	if started.Valid && started.Int64 >= now {
		now = started.Int64 + 1 // a restart gets a new token even within the same millisecond
	}
	for _, tp := range slices.SortedFunc(maps.Keys(o.Start), compareTP) {
		if off := o.Start[tp]; off < 0 {
			return fail(fmt.Errorf("start offset %d of %s[%d] is negative", off, tp.Topic, tp.Partition))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO projection_positions (projection, topic, partition, next_offset, updated_at)
			VALUES ($1, $2, $3, $4, $5)`, r.positions, tp.Topic, tp.Partition, o.Start[tp], now); err != nil {
			return fail(err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE projection_rebuilds SET started_at = $1, from_spec = $2 WHERE projection = $3", now, o.From, projection); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	r.started = now
	return r, nil
}

// forUpdate locks the selected rows on PostgreSQL; SQLite's writer transaction holds the
// database lock already.
func (s *Store) forUpdate() string {
	if s.kind == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// createShadow creates shadow with the live table's columns, defaults and constraints.
func (s *Store) createShadow(ctx context.Context, tx *sql.Tx, spec Rebuildable, shadow string) error {
	if s.kind == Postgres {
		if _, err := tx.ExecContext(ctx, "CREATE TABLE "+shadow+" (LIKE "+spec.Table+
			" INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED INCLUDING IDENTITY)"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "ALTER TABLE "+shadow+" ADD PRIMARY KEY ("+spec.Key+")")
		return err
	}
	var ddl string
	if err := tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1", spec.Table).Scan(&ddl); err != nil {
		return fmt.Errorf("read the definition of %s: %w", spec.Table, err)
	}
	renamed, err := renameCreateTable(ddl, spec.Table, shadow)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, renamed)
	return err
}

// renameCreateTable rewrites "CREATE TABLE <from> (...)", as SQLite keeps it, to create to.
func renameCreateTable(ddl, from, to string) (string, error) {
	const prefix = "CREATE TABLE "
	if len(ddl) < len(prefix) || !strings.EqualFold(ddl[:len(prefix)], prefix) {
		return "", fmt.Errorf("unexpected definition of %s: %.40q", from, ddl)
	}
	rest := strings.TrimLeft(ddl[len(prefix):], " \t\n")
	for _, name := range []string{from, `"` + from + `"`, "`" + from + "`", "[" + from + "]"} {
		if after, ok := strings.CutPrefix(rest, name); ok && len(after) > 0 && strings.ContainsRune(" \t\n(", rune(after[0])) {
			return prefix + to + after, nil
		}
	}
	return "", fmt.Errorf("unexpected definition of %s: %.40q", from, ddl)
}

// Projection returns the name of the projection being rebuilt.
func (r *Rebuild) Projection() string { return r.projection }

// Apply applies events to the shadow tables in one transaction with the shadow's positions,
// with ApplyBatch's rules: events below the shadow's position are skipped, events of one
// partition come in offset order, an apply failure is an *ApplyError (see Permanent) and
// nothing of the batch is kept on any error.
func (r *Rebuild) Apply(ctx context.Context, events []Event) error {
	return r.s.ApplyBatch(ctx, r.positions, events, r.apply)
}

// Positions returns the shadow's next offset per partition.
func (r *Rebuild) Positions(ctx context.Context) (map[TopicPartition]int64, error) {
	return r.s.Positions(ctx, r.positions)
}

// Swap replaces the live read model by the shadow in one transaction; see the comment at the
// top of this file. It returns a *BehindError (nothing changed) when the live projection has
// applied further on some partition, and ErrRebuildGone when the rebuild was aborted or
// restarted elsewhere. After a successful Swap the Rebuild is finished.
func (r *Rebuild) Swap(ctx context.Context) error {
	s := r.s
	fail := func(err error) error { return fmt.Errorf("store: swap rebuild of %s: %w", r.projection, err) }
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	if s.kind == Postgres {
		// Wait for batches in flight on the live tables, and hold off new ones until commit.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE "+r.spec.Table+" IN ACCESS EXCLUSIVE MODE"); err != nil {
			return fail(err)
		}
	}
	if err := r.stillOurs(ctx, tx); err != nil {
		return err
	}
	live, err := lockedPositions(ctx, tx, r.projection, s.forUpdate())
	if err != nil {
		return fail(err)
	}
	shadow, err := lockedPositions(ctx, tx, r.positions, s.forUpdate())
	if err != nil {
		return fail(err)
	}
	// Only the topics the rebuild reads are compared and replaced: the live projection's
	// positions on other topics (its retry topic, which carries redriven dead letters) stay.
	rebuilt := map[string]bool{}
	for tp := range shadow {
		rebuilt[tp.Topic] = true
	}
	behind := map[TopicPartition]Behind{}
	for tp, l := range live {
		if sh := shadow[tp]; rebuilt[tp.Topic] && sh < l {
			behind[tp] = Behind{Shadow: sh, Live: l}
		}
	}
	if len(behind) > 0 {
		return &BehindError{Projection: r.projection, Partitions: behind}
	}
	indexes, err := s.secondaryIndexes(ctx, tx, r.spec.Table)
	if err != nil {
		return fail(err)
	}
	pkey := ""
	if s.kind == Postgres {
		if err := tx.QueryRowContext(ctx, "SELECT conname FROM pg_constraint WHERE conrelid = $1::text::regclass AND contype = 'p'", r.spec.Table).Scan(&pkey); err != nil {
			return fail(fmt.Errorf("primary key of %s: %w", r.spec.Table, err))
		}
	}
	stmts := []string{"DROP TABLE " + r.spec.Table, "ALTER TABLE " + r.shadow + " RENAME TO " + r.spec.Table}
	if pkey != "" {
		stmts = append(stmts, "ALTER INDEX "+r.shadow+"_pkey RENAME TO "+pkey)
	}
	stmts = append(stmts, indexes...)
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fail(fmt.Errorf("%s: %w", q, err))
		}
	}
	now := s.now().UnixMilli()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DELETE FROM projection_positions WHERE projection = $1 AND topic IN (SELECT DISTINCT topic FROM projection_positions WHERE projection = $2)", []any{r.projection, r.positions}},
		{"UPDATE projection_positions SET projection = $1, updated_at = $2 WHERE projection = $3", []any{r.projection, now, r.positions}},
		{"UPDATE projection_rebuilds SET generation = generation + 1, started_at = NULL, swapped_at = $1 WHERE projection = $2", []any{now, r.projection}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fail(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return nil
}

// stillOurs checks that the rebuild row still carries this rebuild's token.
func (r *Rebuild) stillOurs(ctx context.Context, tx *sql.Tx) error {
	var started sql.NullInt64
	err := tx.QueryRowContext(ctx, "SELECT started_at FROM projection_rebuilds WHERE projection = $1"+r.s.forUpdate(), r.projection).Scan(&started)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store: rebuild of %s: %w", r.projection, err)
	}
	if !started.Valid || started.Int64 != r.started {
		return fmt.Errorf("%w: %s", ErrRebuildGone, r.projection)
	}
	return nil
}

func lockedPositions(ctx context.Context, tx *sql.Tx, projection, lock string) (map[TopicPartition]int64, error) {
	rows, err := tx.QueryContext(ctx, "SELECT topic, partition, next_offset FROM projection_positions WHERE projection = $1"+lock, projection)
	if err != nil {
		return nil, fmt.Errorf("positions of %s: %w", projection, err)
	}
	defer rows.Close()
	out := map[TopicPartition]int64{}
	for rows.Next() {
		var tp TopicPartition
		var off int64
		if err := rows.Scan(&tp.Topic, &tp.Partition, &off); err != nil {
			return nil, fmt.Errorf("positions of %s: %w", projection, err)
		}
		out[tp] = off
	}
	return out, rows.Err()
}

// secondaryIndexes returns the statements that create table's indexes other than those of
// its constraints, as the database keeps them (they name the table, so they recreate the
// same indexes on the table renamed in its place).
func (s *Store) secondaryIndexes(ctx context.Context, tx *sql.Tx, table string) ([]string, error) {
	q := "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL ORDER BY name"
	if s.kind == Postgres {
		q = `SELECT i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename = $1
			AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname AND c.conrelid = $2::text::regclass)
			ORDER BY i.indexname`
	}
	args := []any{table}
	if s.kind == Postgres {
		args = append(args, table)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("indexes of %s: %w", table, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var def string
		if err := rows.Scan(&def); err != nil {
			return nil, fmt.Errorf("indexes of %s: %w", table, err)
		}
		out = append(out, def)
	}
	return out, rows.Err()
}

// Abort drops the shadow tables and positions; the live read model is untouched. It returns
// ErrRebuildGone when the rebuild was swapped, aborted or restarted already.
func (r *Rebuild) Abort(ctx context.Context) error {
	tx, err := r.s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: abort rebuild of %s: %w", r.projection, err)
	}
	defer tx.Rollback()
	if err := r.stillOurs(ctx, tx); err != nil {
		return err
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"DROP TABLE IF EXISTS " + r.shadow, nil},
		{"DELETE FROM projection_positions WHERE projection = $1", []any{r.positions}},
		{"UPDATE projection_rebuilds SET started_at = NULL WHERE projection = $1", []any{r.projection}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("store: abort rebuild of %s: %w", r.projection, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: abort rebuild of %s: %w", r.projection, err)
	}
	return nil
}

// Generation returns how many rebuilds of projection were swapped in (0 if none). A process
// that caches rows of the read model drops its cache when it changes.
func (s *Store) Generation(ctx context.Context, projection string) (int64, error) {
	var g int64
	err := s.read.QueryRowContext(ctx, "SELECT generation FROM projection_rebuilds WHERE projection = $1", projection).Scan(&g)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: generation of %s: %w", projection, err)
	}
	return g, nil
}
