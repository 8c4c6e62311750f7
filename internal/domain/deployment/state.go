package deployment

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// The process manager's state lives in its own table, deployment_processes (migrations/),
// written in the store transactions of its handler and deadline poll (reactor.Stateful).

//go:embed migrations
var files embed.FS

// Migrations are the state's tables, for store.WithMigrations (the module's read model hands
// them to the projector) and Migrate.
func Migrations() fs.FS {
	m, _ := fs.Sub(files, "migrations") // a constant path of the embedded tree
	return m
}

// Migrate creates the state's tables on st if they are missing (the manager's Run does, so it
// runs on a store opened without them).
func Migrate(ctx context.Context, st *store.Store) error { return st.Migrate(ctx, Group, Migrations()) }

// Process is the process manager's state of one process (a row of deployment_processes).
type Process struct {
	ProcessID    string
	WorkEffortID string
	// State is the process manager's (e.g. "testing", "completed", "failed").
	State string
	// Step is the step in progress or the one that failed ("test", "build", "deploy").
	Step string
	// CommandID and CommandType name the command that started Step (ce_id and type).
	CommandID   string
	CommandType string
	Artifact    string
	Environment string
	// Deadline is when Step times out; zero when no step waits.
	Deadline      time.Time
	CorrelationID string
	Reason        string
	// Version counts writes; PutProcess compares and sets it.
	Version int64
	// StreamVersion is the highest aggregate version of the process's own stream (its
	// events, keyed by ProcessID) the manager has handled; -1 when unknown (a row from
	// before it was kept).
	StreamVersion int64
	StartedAt     time.Time
	UpdatedAt     time.Time
}

// ErrConflict means a compare-and-set write found the row changed by someone else (another
// consumer, or a deadline that fired): re-read and decide again.
var ErrConflict = errors.New("deployment: process changed concurrently")

const dpColumns = `process_id, work_effort_id, state, step, command_id, command_type, artifact, environment,
	deadline_at, correlation_id, reason, version, started_at, updated_at, stream_version`

func scanProcess(r interface{ Scan(dest ...any) error }) (Process, error) {
	var (
		p                Process
		deadline, stream sql.NullInt64
		started, updated int64
	)
	if err := r.Scan(&p.ProcessID, &p.WorkEffortID, &p.State, &p.Step, &p.CommandID, &p.CommandType, &p.Artifact,
		&p.Environment, &deadline, &p.CorrelationID, &p.Reason, &p.Version, &started, &updated, &stream); err != nil {
		return Process{}, err
	}
	p.StreamVersion = -1
	if stream.Valid {
		p.StreamVersion = stream.Int64
	}
	if deadline.Valid {
		p.Deadline = time.UnixMilli(deadline.Int64).UTC()
	}
	p.StartedAt, p.UpdatedAt = time.UnixMilli(started).UTC(), time.UnixMilli(updated).UTC()
	return p, nil
}

func oneProcess(r *sql.Row) (Process, bool, error) {
	p, err := scanProcess(r)
	if errors.Is(err, sql.ErrNoRows) {
		return Process{}, false, nil
	}
	if err != nil {
		return Process{}, false, fmt.Errorf("deployment: deployment process: %w", err)
	}
	return p, true, nil
}

// LoadProcess reads a process (committed state only).
func LoadProcess(ctx context.Context, st *store.Store, processID string) (Process, bool, error) {
	return oneProcess(st.QueryRow(ctx, "SELECT "+dpColumns+" FROM deployment_processes WHERE process_id = $1", processID))
}

// PutProcess writes p in tx by compare-and-set: a p.Version of 0 inserts a new process
// (ErrConflict if it exists), any other updates the row only if its version is still
// p.Version (ErrConflict otherwise). On success p.Version and p.UpdatedAt are the new ones.
func PutProcess(tx *store.Tx, p *Process) error {
	if p.ProcessID == "" || p.State == "" {
		return fmt.Errorf("%w: deployment process needs an id and a state", store.ErrInvalidEvent)
	}
	now := tx.Now()
	var deadline, stream any
	if !p.Deadline.IsZero() {
		deadline = p.Deadline.UnixMilli()
	}
	if p.StreamVersion >= 0 {
		stream = p.StreamVersion
	}
	var (
		res sql.Result
		err error
	)
	if p.Version == 0 {
		res, err = tx.Exec(`INSERT INTO deployment_processes (`+dpColumns+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $13, $14) ON CONFLICT (process_id) DO NOTHING`,
			p.ProcessID, p.WorkEffortID, p.State, p.Step, p.CommandID, p.CommandType, p.Artifact, p.Environment,
			deadline, p.CorrelationID, p.Reason, p.StartedAt.UnixMilli(), now.UnixMilli(), stream)
	} else {
		res, err = tx.Exec(`UPDATE deployment_processes SET work_effort_id = $1, state = $2, step = $3, command_id = $4,
				command_type = $5, artifact = $6, environment = $7, deadline_at = $8, correlation_id = $9, reason = $10,
				version = version + 1, updated_at = $11, stream_version = $14
			WHERE process_id = $12 AND version = $13`,
			p.WorkEffortID, p.State, p.Step, p.CommandID, p.CommandType, p.Artifact, p.Environment, deadline,
			p.CorrelationID, p.Reason, now.UnixMilli(), p.ProcessID, p.Version, stream)
	}
	if err != nil {
		return fmt.Errorf("deployment: put deployment process %s: %w", p.ProcessID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deployment: put deployment process %s: %w", p.ProcessID, err)
	}
	if n != 1 {
		return fmt.Errorf("%w: deployment process %s at version %d", ErrConflict, p.ProcessID, p.Version)
	}
	p.Version++
	p.UpdatedAt = now.UTC()
	return nil
}

// DueProcesses returns up to limit processes whose deadline is at or before now,
// earliest first (limit 0 means 100).
func DueProcesses(ctx context.Context, st *store.Store, now time.Time, limit int) ([]Process, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := st.Query(ctx, "SELECT "+dpColumns+` FROM deployment_processes
		WHERE deadline_at IS NOT NULL AND deadline_at <= $1 ORDER BY deadline_at, process_id LIMIT $2`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("deployment: due deployment processes: %w", err)
	}
	defer rows.Close()
	var out []Process
	for rows.Next() {
		p, err := scanProcess(rows)
		if err != nil {
			return nil, fmt.Errorf("deployment: due deployment processes: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("deployment: due deployment processes: %w", err)
	}
	return out, nil
}
