package store_test

import (
	"errors"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// releasedVersion is the highest store migration version a released build has applied
// (0005, the deployment process's stream_version, before the read models' tables moved into
// their domain modules). A database at that version must open: a build that knows fewer
// versions refuses it with ErrSchemaTooNew.
const releasedVersion = 5

// TestReleasedVersionsStayKnown: a database migrated by an earlier build opens, whatever
// migrations moved elsewhere since (their versions stay, as migrations that do nothing).
func TestReleasedVersionsStayKnown(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		s.Close()
		db := rawDB(t, b)
		for v := 1; v <= releasedVersion; v++ {
			if _, err := db.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'released', 0)
				ON CONFLICT (version) DO NOTHING`, v); err != nil {
				t.Fatal(err)
			}
		}
		s2, err := store.Open(t.Context(), b.URL)
		if errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("a database at released version %d is refused: %v", releasedVersion, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		s2.Close()
	})
}
