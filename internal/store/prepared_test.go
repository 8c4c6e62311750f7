package store_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/store"
)

func TestChunkSizes(t *testing.T) {
	tests := []struct {
		n, max int
		want   []int
	}{
		{n: 0, max: 100, want: nil},
		{n: 1, max: 100, want: []int{1}},
		{n: 100, max: 100, want: []int{100}},
		{n: 99, max: 100, want: []int{64, 32, 2, 1}},
		{n: 1000, max: 256, want: []int{256, 256, 256, 128, 64, 32, 8}},
		{n: 250, max: 100, want: []int{100, 100, 32, 16, 2}},
	}
	for _, tt := range tests {
		got := store.ChunkSizes(tt.n, tt.max)
		if !slices.Equal(got, tt.want) {
			t.Errorf("ChunkSizes(%d, %d) = %v, want %v", tt.n, tt.max, got, tt.want)
		}
		sum := 0
		for _, n := range got {
			sum += n
		}
		if sum != tt.n {
			t.Errorf("ChunkSizes(%d, %d) sums to %d", tt.n, tt.max, sum)
		}
	}
}

// A statement run with ExecPrepared and QueryPrepared gives the same results batch after batch
// (on SQLite from the second batch on through a statement prepared before), also after its
// table was dropped and created again, as a rebuild's swap does.
func TestExecPreparedAcrossBatches(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		db := rawDB(t, b)
		create := func() {
			if _, err := db.ExecContext(t.Context(), "CREATE TABLE prep_items (id TEXT PRIMARY KEY, n BIGINT NOT NULL)"); err != nil {
				t.Fatal(err)
			}
		}
		create()
		const insert = "INSERT INTO prep_items (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = prep_items.n + excluded.n"
		const count = "SELECT n FROM prep_items WHERE id = $1"
		offset := int64(0)
		batch := func(want int64) {
			t.Helper()
			ev := event("we-1", "WorkEffort:Created")
			ev.Offset = offset
			offset++
			err := s.ApplyBatch(t.Context(), "prep", []store.Event{ev}, func(tx *store.Tx, ev store.Event) error {
				if _, err := tx.ExecPrepared(insert, "a", 1); err != nil {
					return err
				}
				rows, err := tx.QueryPrepared(count, "a")
				if err != nil {
					return err
				}
				defer rows.Close()
				var n int64
				if !rows.Next() {
					return fmt.Errorf("no row: %v", rows.Err())
				}
				if err := rows.Scan(&n); err != nil {
					return err
				}
				if n != want {
					return fmt.Errorf("n = %d, want %d", n, want)
				}
				return rows.Close()
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			batch(int64(i + 1))
		}
		if _, err := db.ExecContext(t.Context(), "DROP TABLE prep_items"); err != nil {
			t.Fatal(err)
		}
		create()
		batch(1)
		batch(2)
	})
}

// MarkProcessedAll records every ID of a set that takes several statement sizes, and leaves
// IDs recorded before as they are.
func TestMarkProcessedAll(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ids := make([]string, 301)
		for i := range ids {
			ids[i] = fmt.Sprintf("ev-%03d", i)
		}
		for round := range 2 {
			err := s.Update(t.Context(), "test", func(tx *store.Tx) error {
				return tx.MarkProcessedAll("c", ids[:150+151*round])
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range ids {
			if ok, err := s.Processed(t.Context(), "c", id); err != nil || !ok {
				t.Fatalf("Processed(%s) = %v, %v; want true", id, ok, err)
			}
		}
		if ok, err := s.Processed(t.Context(), "c", "ev-999"); err != nil || ok {
			t.Fatalf("Processed(ev-999) = %v, %v; want false", ok, err)
		}
	})
}

// MarkAppliedAll records in applied_events, which Applied reads and Processed does not.
func TestMarkAppliedAll(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ids := []string{"ev-1", "ev-2", "ev-3"}
		for range 2 { // the second time, IDs recorded before are left as they are
			if err := s.Update(t.Context(), "test", func(tx *store.Tx) error { return tx.MarkAppliedAll("projection:t", ids) }); err != nil {
				t.Fatal(err)
			}
		}
		err := s.Update(t.Context(), "test", func(tx *store.Tx) error {
			for _, id := range append(ids, "ev-4") {
				ok, err := tx.Applied("projection:t", id)
				if err != nil {
					return err
				}
				if want := id != "ev-4"; ok != want {
					t.Errorf("Applied(%s) = %v, want %v", id, ok, want)
				}
			}
			if ok, err := tx.Applied("projection:other", "ev-1"); err != nil || ok {
				t.Errorf("Applied under another consumer = %v, %v; want false", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s.Processed(t.Context(), "projection:t", "ev-1"); err != nil || ok {
			t.Errorf("Processed(ev-1) = %v, %v; want false: applied IDs are not processed_events", ok, err)
		}
	})
}

// A database migrated before applied_events existed keeps its projections' applied ce_ids:
// the migration moves them out of processed_events and leaves other consumers' records there.
func TestAppliedEventsMigration(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		s.Close()
		db := rawDB(t, b)
		for _, q := range []string{
			"DROP TABLE applied_events",
			"DELETE FROM schema_migrations WHERE version >= 6",
			"INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ('projection:work_efforts', 'ev-1', 0), ('mailer', 'ev-2', 0)",
		} {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s2 := open(t, b)
		err := s2.Update(t.Context(), "test", func(tx *store.Tx) error {
			if ok, err := tx.Applied("projection:work_efforts", "ev-1"); err != nil || !ok {
				t.Errorf("Applied(ev-1) after the migration = %v, %v; want true", ok, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := s2.Processed(t.Context(), "projection:work_efforts", "ev-1"); err != nil || ok {
			t.Errorf("processed_events still holds the projection's ev-1: %v, %v", ok, err)
		}
		if ok, err := s2.Processed(t.Context(), "mailer", "ev-2"); err != nil || !ok {
			t.Errorf("Processed(mailer, ev-2) = %v, %v; want true", ok, err)
		}
	})
}

// MultiRowStatement numbers its placeholders across rows in the backend's style, and gives
// the same text when asked again.
func TestMultiRowStatement(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		want := "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
		if s.Kind() == store.SQLite {
			want = "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
		}
		err := s.Update(t.Context(), "test", func(tx *store.Tx) error {
			for range 2 {
				if got := tx.MultiRowStatement("INSERT INTO t (a, b) VALUES ", 2, 2, " ON CONFLICT DO NOTHING"); got != want {
					t.Errorf("MultiRowStatement = %q, want %q", got, want)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
