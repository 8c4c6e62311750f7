package workeffort_test

import (
	"testing"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// legacyTable is work_efforts as the store's own migrations created it before the read model
// moved into this module (store migrations 0001 and 0004).
var legacyTable = []string{
	`CREATE TABLE work_efforts (
    id                  TEXT    NOT NULL PRIMARY KEY,
    title               TEXT    NOT NULL DEFAULT '',
    description         TEXT    NOT NULL DEFAULT '',
    status              TEXT    NOT NULL,
    progress            INTEGER NOT NULL DEFAULT 0,
    created_at          BIGINT,
    started_at          BIGINT,
    completed_at        BIGINT,
    version             BIGINT  NOT NULL,
    github_issue        INTEGER,
    github_issue_url    TEXT    NOT NULL DEFAULT '',
    github_issue_closed INTEGER NOT NULL DEFAULT 0,
    needs_manual_sync   INTEGER NOT NULL DEFAULT 0,
    manual_sync_reason  TEXT    NOT NULL DEFAULT '',
    assignee            TEXT    NOT NULL DEFAULT '',
    updated_at          BIGINT
)`,
	`CREATE INDEX work_efforts_status_id ON work_efforts (status, id)`,
	`ALTER TABLE work_efforts ADD COLUMN description_null INTEGER NOT NULL DEFAULT 0`,
	`INSERT INTO work_efforts (id, title, status, version) VALUES ('we-old', 'Kept', 'planned', 3)`,
}

// TestMigrationKeepsALegacyTable: a database whose work_efforts table the store created opens
// with the module's migration, keeps its rows and goes on applying.
func TestMigrationKeepsALegacyTable(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			openStoreOnly(t, b).Close() // the store's own tables, without the module's
			db := rawDB(t, b)
			for _, q := range legacyTable {
				if _, err := db.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			s := open(t, b) // with the module's migrations
			if got, ok, err := workeffort.Get(t.Context(), s, "we-old"); err != nil || !ok || got.Title != "Kept" || got.Version != 3 {
				t.Fatalf("legacy row: %+v %v %v", got, ok, err)
			}
			var v int
			if err := db.QueryRowContext(t.Context(), "SELECT MAX(version) FROM module_migrations WHERE module = $1", workeffort.Projection).Scan(&v); err != nil || v != 1 {
				t.Fatalf("module_migrations of %s: %d, %v", workeffort.Projection, v, err)
			}
			st := newStream(0, 0)
			if err := s.ApplyBatch(t.Context(), workeffort.Projection, st.lifecycle("we-new"), workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			if got, ok, err := workeffort.Get(t.Context(), s, "we-new"); err != nil || !ok || got.Status != workeffort.StatusCompleted {
				t.Fatalf("new row: %+v %v %v", got, ok, err)
			}
		})
	}
}

// openStoreOnly opens b with the store's own migrations only.
func openStoreOnly(t *testing.T, b backend) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), b.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
