package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/store"
)

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		url  string
		kind store.Kind
		err  error
	}{
		{name: "sqlite absolute URL", url: "sqlite://" + filepath.Join(dir, "a", "x.db"), kind: store.SQLite},
		{name: "sqlite opaque URL", url: "sqlite:" + filepath.Join(dir, "y.db"), kind: store.SQLite},
		{name: "plain path", url: filepath.Join(dir, "b", "c", "z.db"), kind: store.SQLite},
		{name: "memory refused", url: "sqlite://:memory:", err: store.ErrUnsupportedURL},
		{name: "file URI refused", url: "file:x.db?mode=memory", err: store.ErrUnsupportedURL},
		{name: "query in path refused", url: "sqlite://" + dir + "/x.db?cache=shared", err: store.ErrUnsupportedURL},
		{name: "empty refused", url: "", err: store.ErrUnsupportedURL},
		{name: "other scheme refused", url: "mysql://localhost/x", err: store.ErrUnsupportedURL},
		{name: "bad postgres URL refused", url: "postgres://host:notaport/db", err: store.ErrUnsupportedURL},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.Open(t.Context(), tc.url)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Open(%q) error = %v, want %v", tc.url, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			defer s.Close()
			if s.Kind() != tc.kind {
				t.Errorf("Kind = %s, want %s", s.Kind(), tc.kind)
			}
		})
	}
}

func TestMigrations(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := open(t, b)
			if err := s.ApplyBatch(t.Context(), "p", []store.Event{event("a-1", "A:Happened")}, noop); err != nil {
				t.Fatal(err)
			}
			s.Close()

			db := rawDB(t, b)
			count := func() (n, max int) {
				t.Helper()
				if err := db.QueryRowContext(t.Context(), "SELECT COUNT(*), MAX(version) FROM schema_migrations").Scan(&n, &max); err != nil {
					t.Fatal(err)
				}
				return n, max
			}
			n1, v1 := count()
			if n1 == 0 || v1 == 0 {
				t.Fatalf("schema_migrations has %d rows, max version %d", n1, v1)
			}

			t.Run("reopen applies nothing and keeps data", func(t *testing.T) {
				s2 := open(t, b)
				if n2, v2 := count(); n2 != n1 || v2 != v1 {
					t.Errorf("after reopen: %d rows (v%d), want %d (v%d)", n2, v2, n1, v1)
				}
				if pos, err := s2.Positions(t.Context(), "p"); err != nil || len(pos) != 1 {
					t.Errorf("positions after reopen: %v, err %v", pos, err)
				}
				s2.Close()
			})
			t.Run("concurrent opens", func(t *testing.T) {
				var wg sync.WaitGroup
				errs := make(chan error, 3)
				for range 3 {
					wg.Go(func() {
						s, err := store.Open(t.Context(), b.URL)
						if err == nil {
							s.Close()
						}
						errs <- err
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Error(err)
					}
				}
				if n, _ := count(); n != n1 {
					t.Errorf("%d migration rows, want %d", n, n1)
				}
			})
			t.Run("newer schema refused", func(t *testing.T) {
				if _, err := db.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
					t.Fatal(err)
				}
				_, err := store.Open(t.Context(), b.URL)
				if !errors.Is(err, store.ErrSchemaTooNew) {
					t.Errorf("Open error = %v, want ErrSchemaTooNew", err)
				}
			})
		})
	}
}

func TestProcessed(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, _ *store.Store) {
		now := base
		s := open(t, b, store.WithClock(func() time.Time { return now }))
		ctx := t.Context()
		steps := []struct {
			name      string
			consumer  string
			id        string
			wantFirst bool
		}{
			{"first", "mailer", "e1", true},
			{"again", "mailer", "e1", false},
			{"other consumer", "webhook", "e1", true},
			{"other event", "mailer", "e2", true},
		}
		for _, step := range steps {
			first, err := s.MarkProcessed(ctx, step.consumer, step.id)
			if err != nil || first != step.wantFirst {
				t.Errorf("%s: MarkProcessed = %v, %v; want %v", step.name, first, err, step.wantFirst)
			}
			now = now.Add(time.Minute)
		}
		if ok, err := s.Processed(ctx, "mailer", "e2"); !ok || err != nil {
			t.Errorf("Processed(mailer, e2) = %v, %v", ok, err)
		}
		if ok, err := s.Processed(ctx, "mailer", "e3"); ok || err != nil {
			t.Errorf("Processed(mailer, e3) = %v, %v", ok, err)
		}
		// In a batch transaction: rolled back with the batch.
		err := s.ApplyBatch(ctx, "reactor", []store.Event{event("a-1", "A:Happened")}, func(tx *store.Tx, ev store.Event) error {
			if first, err := tx.MarkProcessed("mailer", "e3"); err != nil || !first {
				return fmt.Errorf("first %v: %w", first, err)
			}
			return errors.New("side effect failed")
		})
		if err == nil {
			t.Fatal("ApplyBatch succeeded")
		}
		if ok, _ := s.Processed(ctx, "mailer", "e3"); ok {
			t.Error("mark survived a rolled-back batch")
		}
		n, err := s.PruneProcessed(ctx, "mailer", base.Add(90*time.Second))
		if err != nil || n != 1 {
			t.Errorf("PruneProcessed = %d, %v; want 1", n, err)
		}
		if ok, _ := s.Processed(ctx, "mailer", "e1"); ok {
			t.Error("e1 not pruned")
		}
		if ok, _ := s.Processed(ctx, "webhook", "e1"); !ok {
			t.Error("other consumer's record pruned")
		}
	})
}

// noop is an apply function that changes nothing but the positions.
func noop(*store.Tx, store.Event) error { return nil }
