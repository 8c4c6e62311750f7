package githubsaga

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

// The saga's state lives in its own table, github_issues (migrations/), written in the store
// transactions of its handler (reactor.Stateful).

//go:embed migrations
var files embed.FS

// Migrations are the state's tables, for store.WithMigrations and Migrate.
func Migrations() fs.FS {
	m, _ := fs.Sub(files, "migrations") // a constant path of the embedded tree
	return m
}

// Migrate creates the state's tables on st if they are missing (Run does, so the saga runs
// on a store opened without them).
func Migrate(ctx context.Context, st *store.Store) error { return st.Migrate(ctx, Group, Migrations()) }

// Issue states.
const (
	IssueCreating = "creating" // intent recorded; the API call may or may not have happened
	IssueOpen     = "open"
	IssueClosed   = "closed"
	IssueFailed   = "failed" // creation given up; compensated
)

// Issue is the saga's state for one work effort (a row of github_issues).
type Issue struct {
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

const issueColumns = "work_effort_id, state, issue_number, issue_url, requested_at, trigger_event_id, last_error, updated_at"

// LoadIssue reads the saga's state of a work effort (committed state only); false when it
// has none.
func LoadIssue(ctx context.Context, st *store.Store, workEffortID string) (Issue, bool, error) {
	var (
		g        Issue
		num      sql.NullInt64
		req, upd int64
	)
	err := st.QueryRow(ctx, "SELECT "+issueColumns+" FROM github_issues WHERE work_effort_id = $1", workEffortID).
		Scan(&g.WorkEffortID, &g.State, &num, &g.URL, &req, &g.TriggerEventID, &g.LastError, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return Issue{}, false, nil
	}
	if err != nil {
		return Issue{}, false, fmt.Errorf("saga: load the issue state of %s: %w", workEffortID, err)
	}
	g.Number = int(num.Int64)
	g.RequestedAt, g.UpdatedAt = time.UnixMilli(req).UTC(), time.UnixMilli(upd).UTC()
	return g, true, nil
}

// putIssue inserts or replaces the state of g.WorkEffortID in tx; UpdatedAt is set to now.
func putIssue(tx *store.Tx, g Issue, now time.Time) error {
	if g.WorkEffortID == "" || g.State == "" {
		return fmt.Errorf("%w: github issue needs a work effort id and a state", store.ErrInvalidEvent)
	}
	var num any
	if g.Number > 0 {
		num = g.Number
	}
	_, err := tx.Exec(`INSERT INTO github_issues (`+issueColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (work_effort_id) DO UPDATE SET state = excluded.state, issue_number = excluded.issue_number,
			issue_url = excluded.issue_url, requested_at = excluded.requested_at,
			trigger_event_id = excluded.trigger_event_id, last_error = excluded.last_error, updated_at = excluded.updated_at`,
		g.WorkEffortID, g.State, num, g.URL, g.RequestedAt.UnixMilli(), g.TriggerEventID, g.LastError, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("saga: put the issue state of %s: %w", g.WorkEffortID, err)
	}
	return nil
}
