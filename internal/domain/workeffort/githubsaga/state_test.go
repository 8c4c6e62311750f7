package githubsaga_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

func TestIssueState(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := storetest.Open(t, b)
			if err := githubsaga.Migrate(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := githubsaga.LoadIssue(t.Context(), s, "we-1"); ok || err != nil {
				t.Fatalf("unknown work effort: found %v, err %v", ok, err)
			}
			req := time.UnixMilli(1_700_000_000_123).UTC()
			now := time.UnixMilli(1_700_000_100_000).UTC()
			for _, st := range []githubsaga.Issue{
				{WorkEffortID: "we-1", State: githubsaga.IssueCreating, RequestedAt: req, TriggerEventID: "ev-1"},
				{WorkEffortID: "we-1", State: githubsaga.IssueOpen, Number: 17, URL: "https://x/17", RequestedAt: req, TriggerEventID: "ev-1"},
				{WorkEffortID: "we-1", State: githubsaga.IssueClosed, Number: 17, URL: "https://x/17", RequestedAt: req, TriggerEventID: "ev-1"},
			} {
				if err := s.Update(t.Context(), githubsaga.Group, func(tx *store.Tx) error { return githubsaga.PutIssue(tx, st, now) }); err != nil {
					t.Fatal(err)
				}
				got, ok, err := githubsaga.LoadIssue(t.Context(), s, "we-1")
				want := st
				want.UpdatedAt = now
				if err != nil || !ok || got != want {
					t.Errorf("%s: got %+v (found %v, %v), want %+v", st.State, got, ok, err, want)
				}
			}
			err := s.Update(t.Context(), githubsaga.Group, func(tx *store.Tx) error {
				return githubsaga.PutIssue(tx, githubsaga.Issue{State: githubsaga.IssueOpen}, now)
			})
			if !errors.Is(err, store.ErrInvalidEvent) {
				t.Errorf("a state without a work effort: err %v, want ErrInvalidEvent", err)
			}
		})
	}
}

// TestMigrationKeepsALegacyTable: a database whose github_issues table the store's own
// migration 0002 created (before the state moved into this package) keeps its rows under
// the saga's migration.
func TestMigrationKeepsALegacyTable(t *testing.T) {
	legacy := []string{
		`CREATE TABLE github_issues (
    work_effort_id   TEXT    NOT NULL PRIMARY KEY,
    state            TEXT    NOT NULL,
    issue_number     INTEGER,
    issue_url        TEXT    NOT NULL DEFAULT '',
    requested_at     BIGINT  NOT NULL,
    trigger_event_id TEXT    NOT NULL,
    last_error       TEXT    NOT NULL DEFAULT '',
    updated_at       BIGINT  NOT NULL
)`,
		`INSERT INTO github_issues (work_effort_id, state, issue_number, issue_url, requested_at, trigger_event_id, updated_at)
			VALUES ('we-old', 'open', 7, 'https://x/7', 1700000000000, 'ev-old', 1700000000000)`,
	}
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			storetest.Open(t, b).Close() // the store's own tables only
			db := storetest.RawDB(t, b)
			for _, q := range legacy {
				if _, err := db.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			s := storetest.Open(t, b)
			if err := githubsaga.Migrate(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			g, ok, err := githubsaga.LoadIssue(t.Context(), s, "we-old")
			if err != nil || !ok || g.State != githubsaga.IssueOpen || g.Number != 7 {
				t.Fatalf("legacy row: %+v %v %v", g, ok, err)
			}
		})
	}
}
