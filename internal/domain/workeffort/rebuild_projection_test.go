package workeffort_test

import (
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// columns returns the column names of table, in order.
func columns(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT * FROM "+table+" LIMIT 0")
	if err != nil {
		t.Fatalf("columns of %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// indexNames returns the names of table's secondary indexes.
func indexNames(t *testing.T, b backend, db *sql.DB, table string) []string {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL ORDER BY name"
	if b.Name == "postgres" {
		q = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 ORDER BY indexname"
	}
	rows, err := db.QueryContext(t.Context(), q, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func tableExists(t *testing.T, db *sql.DB, table string) bool {
	t.Helper()
	_, err := db.ExecContext(t.Context(), "SELECT 1 FROM "+table+" LIMIT 1")
	return err == nil
}

func TestRebuildSwap(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		db := rawDB(t, b)
		st := newStream(0, 0)
		var events []store.Event
		for i := range 4 {
			events = append(events, st.lifecycle(fmt.Sprintf("we-%d", i))...)
		}
		if err := s.ApplyBatch(ctx, workeffort.Projection, events, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		// The live model went wrong (a bug in an old fold, a hand edit): the rebuild fixes it.
		if _, err := db.ExecContext(ctx, "UPDATE work_efforts SET title = 'corrupted' WHERE id = 'we-1'"); err != nil {
			t.Fatal(err)
		}
		liveIndexes := indexNames(t, b, db, "work_efforts")
		if len(liveIndexes) == 0 {
			t.Fatal("the live table has no secondary index to check")
		}

		tp := store.TopicPartition{Topic: topic, Partition: 0}
		r, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{From: "earliest", Start: map[store.TopicPartition]int64{tp: 0}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := columns(t, db, "work_efforts_rebuild"), columns(t, db, "work_efforts"); !reflect.DeepEqual(got, want) {
			t.Fatalf("shadow columns %v, live %v", got, want)
		}
		if pos, err := r.Positions(ctx); err != nil || !reflect.DeepEqual(pos, map[store.TopicPartition]int64{tp: 0}) {
			t.Fatalf("seeded positions %v, %v", pos, err)
		}
		half := len(events) / 2
		if err := r.Apply(ctx, events[:half]); err != nil {
			t.Fatal(err)
		}
		// Reads answer from the live tables while the shadow fills.
		if got, ok, err := workeffort.Get(ctx, s, "we-1"); err != nil || !ok || got.Title != "corrupted" {
			t.Fatalf("during the rebuild WorkEffort(we-1) = %q, %v, %v; want the live row", got.Title, ok, err)
		}
		if page, _, err := workeffort.List(ctx, s, "", 10, ""); err != nil || len(page) != 4 {
			t.Fatalf("during the rebuild List = %d rows, %v", len(page), err)
		}
		// Redelivering an applied event to the shadow changes nothing.
		if err := r.Apply(ctx, append(events[half-3:half:half], events[half:]...)); err != nil {
			t.Fatal(err)
		}
		if err := r.Swap(ctx); err != nil {
			t.Fatal(err)
		}

		want := fold(t, events...)
		for id, w := range want {
			got, ok, err := workeffort.Get(ctx, s, id)
			if err != nil || !ok || !reflect.DeepEqual(got, w) {
				t.Errorf("after the swap WorkEffort(%s) = %+v, %v, %v\nwant %+v", id, got, ok, err, w)
			}
		}
		pos, err := s.Positions(ctx, workeffort.Projection)
		if err != nil || !reflect.DeepEqual(pos, map[store.TopicPartition]int64{tp: st.next}) {
			t.Errorf("live positions after the swap = %v, %v; want %s[0] at %d", pos, err, topic, st.next)
		}
		if names, _ := s.Projections(ctx); !reflect.DeepEqual(names, []string{workeffort.Projection}) {
			t.Errorf("Projections after the swap = %v: the shadow's positions are left", names)
		}
		if tableExists(t, db, "work_efforts_rebuild") {
			t.Error("the shadow table is still there after the swap")
		}
		if got := indexNames(t, b, db, "work_efforts"); !reflect.DeepEqual(got, liveIndexes) {
			t.Errorf("indexes after the swap %v, before %v", got, liveIndexes)
		}
		if g, err := s.Generation(ctx, workeffort.Projection); err != nil || g != 1 {
			t.Errorf("Generation = %d, %v; want 1", g, err)
		}

		t.Run("the live projector goes on without applying twice", func(t *testing.T) {
			more := st.lifecycle("we-9")
			// Its next batch overlaps what the shadow applied (it had the same position).
			batch := append(events[len(events)-2:len(events):len(events)], more...)
			if err := s.ApplyBatch(ctx, workeffort.Projection, batch, workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			want := fold(t, append(slices.Clone(events), more...)...)
			for _, id := range []string{"we-3", "we-9"} {
				if got, _, _ := workeffort.Get(ctx, s, id); !reflect.DeepEqual(got, want[id]) {
					t.Errorf("WorkEffort(%s) = %+v, want %+v", id, got, want[id])
				}
			}
		})
		t.Run("rebuilds again on the swapped tables, or aborts", func(t *testing.T) {
			r2, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			all := append(slices.Clone(events), st.lifecycle("we-10")...)
			if err := r2.Apply(ctx, all); err != nil {
				t.Fatal(err)
			}
			if err := r2.Swap(ctx); err != nil {
				t.Fatal(err)
			}
			if got := indexNames(t, b, db, "work_efforts"); !reflect.DeepEqual(got, liveIndexes) {
				t.Errorf("indexes after the second swap %v, before %v", got, liveIndexes)
			}
			if g, _ := s.Generation(ctx, workeffort.Projection); g != 2 {
				t.Errorf("Generation = %d, want 2", g)
			}
			if _, ok, _ := workeffort.Get(ctx, s, "we-9"); ok {
				t.Error("we-9 is still there: its events were not in the second rebuild")
			}
			r3, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := r3.Apply(ctx, all[:3]); err != nil {
				t.Fatal(err)
			}
			if err := r3.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			if tableExists(t, db, "work_efforts_rebuild") {
				t.Error("Abort left the shadow table")
			}
			if g, _ := s.Generation(ctx, workeffort.Projection); g != 2 {
				t.Errorf("Generation after an abort = %d, want 2", g)
			}
			if got, _, _ := workeffort.Get(ctx, s, "we-10"); got.Status != workeffort.StatusCompleted {
				t.Errorf("Abort touched the live model: we-10 = %+v", got)
			}
		})
	})
}

func TestRebuildBehind(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		st := newStream(2, 10)
		events := append(st.lifecycle("we-a"), st.lifecycle("we-b")...)
		r, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Apply(ctx, events[:4]); err != nil {
			t.Fatal(err)
		}
		// The live projector is further along.
		if err := s.ApplyBatch(ctx, workeffort.Projection, events[:9], workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		err = r.Swap(ctx)
		var be *store.BehindError
		if !errors.As(err, &be) || !errors.Is(err, store.ErrRebuildBehind) {
			t.Fatalf("Swap = %v, want a *BehindError", err)
		}
		tp := store.TopicPartition{Topic: topic, Partition: 2}
		if want := map[store.TopicPartition]store.Behind{tp: {Shadow: 14, Live: 19}}; !reflect.DeepEqual(be.Partitions, want) {
			t.Errorf("behind %v, want %v", be.Partitions, want)
		}
		if pos, _ := s.Positions(ctx, workeffort.Projection); pos[tp] != 19 {
			t.Errorf("a refused swap moved the live positions: %v", pos)
		}
		if g, _ := s.Generation(ctx, workeffort.Projection); g != 0 {
			t.Errorf("a refused swap counted a generation: %d", g)
		}
		if err := r.Apply(ctx, events[4:]); err != nil {
			t.Fatal(err)
		}
		if err := r.Swap(ctx); err != nil {
			t.Fatalf("Swap once caught up: %v", err)
		}
		if pos, _ := s.Positions(ctx, workeffort.Projection); pos[tp] != st.next {
			t.Errorf("positions after the swap %v, want %d", pos, st.next)
		}
		if got, _, _ := workeffort.Get(ctx, s, "we-b"); !reflect.DeepEqual(got, fold(t, events...)["we-b"]) {
			t.Errorf("we-b = %+v", got)
		}
	})
}

func TestRebuildExclusive(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		tests := []struct {
			name string
			run  func(t *testing.T)
		}{
			{"incomplete spec", func(t *testing.T) {
				if _, err := s.StartRebuild(ctx, store.Rebuildable{Projection: "no-such"}, store.RebuildOptions{}); !errors.Is(err, store.ErrNotRebuildable) {
					t.Errorf("StartRebuild = %v, want ErrNotRebuildable", err)
				}
			}},
			{"second start refused, restart takes over", func(t *testing.T) {
				first, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{}); !errors.Is(err, store.ErrRebuildInProgress) {
					t.Fatalf("second StartRebuild = %v, want ErrRebuildInProgress", err)
				}
				second, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{Restart: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := first.Swap(ctx); !errors.Is(err, store.ErrRebuildGone) {
					t.Errorf("Swap of the replaced rebuild = %v, want ErrRebuildGone", err)
				}
				if err := first.Abort(ctx); !errors.Is(err, store.ErrRebuildGone) {
					t.Errorf("Abort of the replaced rebuild = %v, want ErrRebuildGone", err)
				}
				if err := second.Swap(ctx); err != nil {
					t.Fatalf("Swap of the restarted rebuild: %v", err)
				}
				if err := second.Swap(ctx); !errors.Is(err, store.ErrRebuildGone) {
					t.Errorf("a second Swap = %v, want ErrRebuildGone", err)
				}
			}},
			{"negative start offset", func(t *testing.T) {
				_, err := s.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{
					Start: map[store.TopicPartition]int64{{Topic: topic}: -1}})
				if err == nil {
					t.Error("StartRebuild accepted a negative start offset")
				}
			}},
		}
		for _, tt := range tests {
			t.Run(tt.name, tt.run)
		}
	})
}
