package deployment_test

import (
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

// TestMigrationKeepsALegacyTable: a database whose deployment_processes table the store's own
// migrations created (0002 and 0005, before the state moved into this module) keeps its rows
// under the module's migration.
func TestMigrationKeepsALegacyTable(t *testing.T) {
	legacy := []string{
		`CREATE TABLE deployment_processes (
    process_id      TEXT    NOT NULL PRIMARY KEY,
    work_effort_id  TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    step            TEXT    NOT NULL DEFAULT '',
    command_id      TEXT    NOT NULL DEFAULT '',
    command_type    TEXT    NOT NULL DEFAULT '',
    artifact        TEXT    NOT NULL DEFAULT '',
    environment     TEXT    NOT NULL DEFAULT '',
    deadline_at     BIGINT,
    correlation_id  TEXT    NOT NULL DEFAULT '',
    reason          TEXT    NOT NULL DEFAULT '',
    version         BIGINT  NOT NULL,
    started_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
)`,
		`CREATE INDEX deployment_processes_deadline ON deployment_processes (deadline_at)`,
		`CREATE INDEX deployment_processes_work_effort ON deployment_processes (work_effort_id)`,
		`ALTER TABLE deployment_processes ADD COLUMN stream_version BIGINT`,
		`INSERT INTO deployment_processes (process_id, work_effort_id, state, version, started_at, updated_at)
			VALUES ('p-old', 'we-1', 'testing', 2, 1700000000000, 1700000000000)`,
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
			if err := deployment.Migrate(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			p, ok, err := deployment.LoadProcess(t.Context(), s, "p-old")
			if err != nil || !ok || p.Version != 2 || p.StreamVersion != -1 {
				t.Fatalf("legacy row: %+v %v %v", p, ok, err)
			}
			p.State, p.Deadline = deployment.StateBuilding, time.UnixMilli(1_700_000_060_000)
			if err := s.Update(t.Context(), deployment.Group, func(tx *store.Tx) error { return deployment.PutProcess(tx, &p) }); err != nil {
				t.Fatal(err)
			}
		})
	}
}
