package store_test

import (
	"testing"
	"testing/fstest"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// TestWithMigrations applies a module's migrations once, in version order, beside the
// store's own; a reopen applies nothing again and a new file is applied on the next open.
func TestWithMigrations(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			files := fstest.MapFS{
				"0001_things.sql": {Data: []byte("CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL);")},
			}
			s := open(t, b, store.WithMigrations("things", files))
			err := s.Update(t.Context(), "test", func(tx *store.Tx) error {
				_, err := tx.Exec("INSERT INTO things (id, n) VALUES ($1, $2)", "a", 1)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			// Reopened: 0001 is not run again (it would fail: the table exists); 0002 is new.
			files["0002_more.sql"] = &fstest.MapFile{Data: []byte("ALTER TABLE things ADD COLUMN label TEXT;")}
			s = open(t, b, store.WithMigrations("things", files))
			var n int64
			var label *string
			if err := s.QueryRow(t.Context(), "SELECT n, label FROM things WHERE id = $1", "a").Scan(&n, &label); err != nil || n != 1 || label != nil {
				t.Fatalf("row after the second migration: %d %v %v", n, label, err)
			}
			// A bad migration fails Open and leaves nothing of its transaction.
			files["0003_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE broken (;")}
			if _, err := store.Open(t.Context(), b.URL, store.WithMigrations("things", files)); err == nil {
				t.Fatal("Open with a broken migration succeeded")
			}
		})
	}
}

// TestMigrate applies a module's migrations on an open store once: again, or at the next Open
// with WithMigrations, they are not run a second time (they would fail: the table exists).
func TestMigrate(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		files := fstest.MapFS{
			"0001_things.sql": {Data: []byte("CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY);")},
		}
		for range 2 {
			if err := s.Migrate(t.Context(), "things", files); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Query(t.Context(), "SELECT id FROM things"); err != nil {
			t.Fatalf("no things table after Migrate: %v", err)
		}
		open(t, b, store.WithMigrations("things", files))
		files["0002_bad.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE broken (;")}
		if err := s.Migrate(t.Context(), "things", files); err == nil {
			t.Fatal("Migrate with a broken migration succeeded")
		}
	})
}
