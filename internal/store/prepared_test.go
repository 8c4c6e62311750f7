package store_test

import (
	"fmt"
	"slices"
	"strings"
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

// MarkAppliedRuns records runs of applied ce_ids (long ones as a row each, short ones as a
// row per ID), which Applied finds by the event's aggregate (in the run that holds its
// version, else in any run of the aggregate) and Processed does not; a run recorded again
// under the same key adds to its row, IDs of any characters come back as they were, and IDs
// recorded one by one before runs existed (applied_events) are still found.
func TestMarkAppliedRuns(t *testing.T) {
	if store.MinAppliedRun != 4 {
		t.Fatalf("MinAppliedRun = %d: the cases below make runs of 4 IDs and single IDs", store.MinAppliedRun)
	}
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		const odd = "we\"ird\n\x00id" // a quote, a newline and a NUL inside an ID
		batches := [][]store.AppliedRun{
			{
				{AggregateID: "a", FirstVersion: 1, IDs: []string{"ev-1", "ev-2", "ev-3", "ev-4"}},
				{AggregateID: "b", FirstVersion: 1, IDs: []string{odd, "ev-x", "ev-y", "ev-z"}},
				{AggregateID: "c", FirstVersion: 1},
				{AggregateID: "e", FirstVersion: 1, IDs: []string{"ev-e1"}},
			},
			{
				{AggregateID: "a", FirstVersion: 5, IDs: []string{"ev-5", "ev-6", "ev-7", "ev-8"}},
				{AggregateID: "a", FirstVersion: 1, IDs: []string{"ev-9", "ev-10", "ev-11", "ev-12"}},
			},
		}
		for _, runs := range batches {
			if err := s.Update(t.Context(), "test", func(tx *store.Tx) error { return tx.MarkAppliedRuns("projection:t", runs) }); err != nil {
				t.Fatal(err)
			}
		}
		db := rawDB(t, b)
		if _, err := db.ExecContext(t.Context(), "INSERT INTO applied_events (consumer, event_id) VALUES ('projection:t', 'ev-old')"); err != nil {
			t.Fatal(err)
		}
		for table, want := range map[string]int{"applied_event_runs": 3, "applied_events": 2} {
			// Runs a@1 (added to), a@5, b@1; ev-e1 and ev-old one by one; nothing for c.
			var rows int
			if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&rows); err != nil || rows != want {
				t.Errorf("%s holds %d rows (%v), want %d", table, rows, err, want)
			}
		}
		ev := func(agg, id string, v int64) store.Event {
			return store.Event{AggregateID: agg, ID: id, AggregateVersion: v}
		}
		cases := []struct {
			ev   store.Event
			want bool
		}{
			{ev("a", "ev-1", 1), true},
			{ev("a", "ev-4", 4), true},
			{ev("a", "ev-6", 6), true},
			{ev("a", "ev-2", 7), true},    // not in the run of its version: found in the others
			{ev("a", "ev-10", 10), true},  // added to a@1 by the second batch
			{ev("a", "ev-13", 13), false}, // never applied
			{ev("b", "ev-1", 1), false},   // applied to another aggregate
			{ev("b", odd, 1), true},       // read back as written
			{ev("b", "ev-x", 2), true},    // after the odd one
			{ev("b", `ev-x"`, 2), false},  // a prefix of a quoted ID is not the ID
			{ev("e", "ev-e1", 1), true},   // a run too short to be a row
			{ev("a", "ev-old", 2), true},  // recorded in applied_events before runs
		}
		err := s.Update(t.Context(), "test", func(tx *store.Tx) error {
			for _, c := range cases {
				if ok, err := tx.Applied("projection:t", c.ev); err != nil || ok != c.want {
					t.Errorf("Applied(%s %q at %d) = %v, %v; want %v", c.ev.AggregateID, c.ev.ID, c.ev.AggregateVersion, ok, err, c.want)
				}
			}
			if ok, err := tx.Applied("projection:other", ev("a", "ev-1", 1)); err != nil || ok {
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
		// A row that is not quoted IDs is an error, not "not applied".
		if _, err := db.ExecContext(t.Context(), "INSERT INTO applied_event_runs (consumer, aggregate_id, first_version, event_ids) VALUES ('projection:t', 'd', 1, 'ev-1')"); err != nil {
			t.Fatal(err)
		}
		err = s.Update(t.Context(), "test", func(tx *store.Tx) error {
			_, err := tx.Applied("projection:t", ev("d", "ev-1", 1))
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "not a sequence of quoted IDs") {
			t.Errorf("Applied over a damaged row: %v, want the damage named", err)
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
			"DROP TABLE applied_event_runs",
			"DELETE FROM schema_migrations WHERE version >= 6",
			"INSERT INTO processed_events (consumer, event_id, processed_at) VALUES ('projection:work_efforts', 'ev-1', 0), ('mailer', 'ev-2', 0)",
		} {
			if _, err := db.ExecContext(t.Context(), q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		s2 := open(t, b)
		err := s2.Update(t.Context(), "test", func(tx *store.Tx) error {
			if ok, err := tx.Applied("projection:work_efforts", store.Event{ID: "ev-1", AggregateID: "we-1", AggregateVersion: 1}); err != nil || !ok {
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
