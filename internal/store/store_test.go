package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
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
		t.Run(b.name, func(t *testing.T) {
			s := open(t, b)
			st := newStream(0, 0)
			if err := s.ApplyBatch(t.Context(), store.WorkEffortProjection, st.lifecycle("we-1"), store.ApplyWorkEffort); err != nil {
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
				if _, ok, err := s2.WorkEffort(t.Context(), "we-1"); err != nil || !ok {
					t.Errorf("WorkEffort after reopen: found %v, err %v", ok, err)
				}
				s2.Close()
			})
			t.Run("concurrent opens", func(t *testing.T) {
				var wg sync.WaitGroup
				errs := make(chan error, 3)
				for range 3 {
					wg.Go(func() {
						s, err := store.Open(t.Context(), b.url)
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
				_, err := store.Open(t.Context(), b.url)
				if !errors.Is(err, store.ErrSchemaTooNew) {
					t.Errorf("Open error = %v, want ErrSchemaTooNew", err)
				}
			})
		})
	}
}

func TestApplyWorkEffort(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		p0, p1 := newStream(0, 100), newStream(1, 0)
		var batch1, batch2 []store.Event
		// Interleave two partitions; every aggregate lives on one partition.
		for i := range 5 {
			batch1 = append(batch1, p0.lifecycle(fmt.Sprintf("we-a%d", i))[:3]...)
			batch1 = append(batch1, p1.lifecycle(fmt.Sprintf("we-b%d", i))...)
		}
		batch1 = append(batch1, p0.ev("we-a0", "WorkEffort:SomethingNew", map[string]any{"x": 1}))
		batch1 = append(batch1, p0.ev("we-a0", workeffort.TypeNeedsManualSync, map[string]any{"reason": "GitHub issue creation failed", "failedEventType": "x", "markedAt": base}))
		if err := s.ApplyBatch(ctx, store.WorkEffortProjection, batch1, store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}
		batch2 = append(batch2, p0.ev("we-a1", workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 30, "newProgress": 55}))
		batch2 = append(batch2, p0.ev("we-a2", workeffort.TypeCompleted, map[string]any{"title": "T", "completedAt": base.Add(time.Hour), "assigneeEmail": "bo@example.com"}))
		batch2 = append(batch2, store.Event{Type: "Deployment:Deployed", AggregateID: "d-1", Topic: "pyrite.deployment.events", Partition: 0, Offset: 7})
		if err := s.ApplyBatch(ctx, store.WorkEffortProjection, batch2, store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}

		want := fold(t, append(append([]store.Event{}, batch1...), batch2[:2]...)...)
		for id, w := range want {
			got, ok, err := s.WorkEffort(ctx, id)
			if err != nil || !ok {
				t.Fatalf("WorkEffort(%s): found %v, err %v", id, ok, err)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("WorkEffort(%s) =\n %+v\nwant\n %+v", id, got, w)
			}
		}
		// The stream numbered we-a0's versions for a whole lifecycle (1-6) of which 3 were sent.
		if got, _, _ := s.WorkEffort(ctx, "we-a0"); !got.NeedsManualSync || got.Version != 8 || got.Progress != 30 {
			t.Errorf("we-a0 = %+v; want manual sync, version 8, progress 30", got)
		}
		if got, _, _ := s.WorkEffort(ctx, "we-a2"); got.Status != workeffort.StatusCompleted || got.Assignee != "bo@example.com" {
			t.Errorf("we-a2 = %+v", got)
		}
		if _, ok, err := s.WorkEffort(ctx, "d-1"); ok || err != nil {
			t.Errorf("non-WorkEffort event made a row (found %v, err %v)", ok, err)
		}
		pos, err := s.Positions(ctx, store.WorkEffortProjection)
		if err != nil {
			t.Fatal(err)
		}
		wantPos := map[store.TopicPartition]int64{
			{Topic: topic, Partition: 0}:                      p0.next,
			{Topic: topic, Partition: 1}:                      p1.next,
			{Topic: "pyrite.deployment.events", Partition: 0}: 8,
		}
		if !reflect.DeepEqual(pos, wantPos) {
			t.Errorf("Positions = %v, want %v", pos, wantPos)
		}
		names, err := s.Projections(ctx)
		if err != nil || !reflect.DeepEqual(names, []string{store.WorkEffortProjection}) {
			t.Errorf("Projections = %v, %v", names, err)
		}
	})
}

// TestRedelivery applies overlapping batches of events without version headers (versions are
// counted), so any double application would show in the version and the progress.
func TestRedelivery(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		st := newStream(3, 0)
		st.noHeader = true
		events := st.lifecycle("we-1")
		events = append(events, st.lifecycle("we-2")...)
		if err := s.ApplyBatch(ctx, "p", events[:4], store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}
		// The runner redelivers from an older offset: 0..7, then 2..11, then the whole lot.
		for _, batch := range [][]store.Event{events[:8], events[2:], events} {
			if err := s.ApplyBatch(ctx, "p", batch, store.ApplyWorkEffort); err != nil {
				t.Fatal(err)
			}
		}
		want := fold(t, events...)
		for _, id := range []string{"we-1", "we-2"} {
			got, _, err := s.WorkEffort(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != 6 || !reflect.DeepEqual(got, want[id]) {
				t.Errorf("%s = %+v, want %+v", id, got, want[id])
			}
		}
		pos, _ := s.Positions(ctx, "p")
		if got := pos[store.TopicPartition{Topic: topic, Partition: 3}]; got != 12 {
			t.Errorf("position = %d, want 12", got)
		}
		// A redelivered event under a new offset but with its old version header is stale.
		dup := events[3]
		dup.AggregateVersion, dup.Offset = 4, 12
		dup.Data = map[string]any{"newProgress": 1}
		if err := s.ApplyBatch(ctx, "p", []store.Event{dup}, store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.WorkEffort(ctx, "we-1"); got.Progress != 100 || got.Version != 6 {
			t.Errorf("after stale event: progress %d version %d, want 100, 6", got.Progress, got.Version)
		}
		if pos, _ := s.Positions(ctx, "p"); pos[store.TopicPartition{Topic: topic, Partition: 3}] != 13 {
			t.Errorf("stale event did not advance the position: %v", pos)
		}
		// Another event (a new ce_id) with a version the row already has is not a duplicate:
		// it fails permanently (to the dead-letter topic), and nothing changes.
		other := events[3]
		other.ID, other.Offset, other.AggregateVersion = "not-applied-before", 13, 4
		err := s.ApplyBatch(ctx, "p", []store.Event{other}, store.ApplyWorkEffort)
		var ae *store.ApplyError
		if !errors.As(err, &ae) || !ae.Permanent() || !strings.Contains(err.Error(), "not a duplicate") {
			t.Fatalf("an unproven repeat applied with %v, want a permanent ApplyError", err)
		}
		if pos, _ := s.Positions(ctx, "p"); pos[store.TopicPartition{Topic: topic, Partition: 3}] != 13 {
			t.Errorf("a refused event moved the position: %v", pos)
		}
	})
}

// TestApplyBatchAtomic makes a batch fail in several places and checks that neither rows nor
// positions change.
func TestApplyBatchAtomic(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		batch     func(st *stream) []store.Event
		apply     func(tx *store.Tx, ev store.Event) error
		wantErr   error
		wantIndex int // -1: not an ApplyError
		permanent bool
	}{
		{
			name:  "apply fails mid-batch",
			batch: func(st *stream) []store.Event { return append(st.lifecycle("we-1"), st.lifecycle("we-2")...) },
			apply: func(tx *store.Tx, ev store.Event) error {
				if ev.AggregateID == "we-2" && ev.Type == workeffort.TypeStarted {
					return errBoom
				}
				return store.ApplyWorkEffort(tx, ev)
			},
			wantErr: errBoom, wantIndex: 7,
		},
		{
			name: "invalid data is permanent",
			batch: func(st *stream) []store.Event {
				evs := st.lifecycle("we-1")
				evs[3].Data = map[string]any{"newProgress": "lots"}
				return evs
			},
			apply:   store.ApplyWorkEffort,
			wantErr: workeffort.ErrInvalidData, wantIndex: 3, permanent: true,
		},
		{
			name: "missing aggregate ID is permanent",
			batch: func(st *stream) []store.Event {
				evs := st.lifecycle("we-1")
				evs[5].AggregateID = ""
				return evs
			},
			apply:   store.ApplyWorkEffort,
			wantErr: store.ErrInvalidEvent, wantIndex: 5, permanent: true,
		},
		{
			name: "missing topic",
			batch: func(st *stream) []store.Event {
				evs := st.lifecycle("we-1")
				evs[2].Topic = ""
				return evs
			},
			apply:   store.ApplyWorkEffort,
			wantErr: store.ErrInvalidEvent, wantIndex: 2, permanent: true,
		},
		{
			name:  "before-commit hook fails",
			batch: func(st *stream) []store.Event { return st.lifecycle("we-1") },
			apply: func(tx *store.Tx, ev store.Event) error {
				if ev.Type == workeffort.TypeCreated {
					tx.BeforeCommit(func() error { return errBoom })
				}
				return store.ApplyWorkEffort(tx, ev)
			},
			wantErr: errBoom, wantIndex: -1,
		},
		{
			name:  "position moved during the batch",
			batch: func(st *stream) []store.Event { return st.lifecycle("we-1") },
			apply: func(tx *store.Tx, ev store.Event) error {
				if ev.Type == workeffort.TypeCompleted {
					// What a second consumer of the partition would do.
					if _, err := tx.Exec("UPDATE projection_positions SET next_offset = next_offset + 1 WHERE projection = $1", tx.Projection()); err != nil {
						return err
					}
				}
				return store.ApplyWorkEffort(tx, ev)
			},
			wantErr: store.ErrPositionConflict, wantIndex: -1,
		},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t, b)
					ctx := t.Context()
					proj := "atomic-" + tc.name
					// A committed first batch: we-0, and we-1 created.
					st := newStream(0, 0)
					first := append(st.lifecycle("we-0"), st.ev("we-1", workeffort.TypeCreated, map[string]any{"title": "one", "createdAt": base}))
					st.versions["we-1"] = 0 // the failing batch starts we-1 afresh
					if err := s.ApplyBatch(ctx, proj, first, store.ApplyWorkEffort); err != nil {
						t.Fatal(err)
					}
					before := snapshot(t, s, proj)

					err := s.ApplyBatch(ctx, proj, tc.batch(st), tc.apply)
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("ApplyBatch error = %v, want %v", err, tc.wantErr)
					}
					var ae *store.ApplyError
					if isAE := errors.As(err, &ae); isAE != (tc.wantIndex >= 0) {
						t.Fatalf("ApplyError = %v, want one: %v", isAE, tc.wantIndex >= 0)
					} else if isAE && (ae.Index != tc.wantIndex || ae.Permanent() != tc.permanent) {
						t.Errorf("ApplyError index %d permanent %v, want %d %v", ae.Index, ae.Permanent(), tc.wantIndex, tc.permanent)
					}
					if after := snapshot(t, s, proj); !reflect.DeepEqual(after, before) {
						t.Errorf("state changed by a failed batch:\nbefore %v\nafter  %v", before, after)
					}
				})
			}
		})
	}
}

// snapshot is every row and position the store serves for a projection.
func snapshot(t *testing.T, s *store.Store, projection string) string {
	t.Helper()
	page, _, err := s.ListWorkEfforts(t.Context(), "", store.MaxListLimit, "")
	if err != nil {
		t.Fatal(err)
	}
	pos, err := s.Positions(t.Context(), projection)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := json.Marshal(page)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s %v", rows, pos)
}

// TestConcurrentConsumers runs the same batch from two "consumers" whose transactions overlap
// (a zombie after a rebalance): exactly one commits, the other gets ErrPositionConflict.
// Only PostgreSQL allows two overlapping write transactions.
func TestConcurrentConsumers(t *testing.T) {
	if os.Getenv("PYRITE_TEST_POSTGRES") == "" {
		t.Skip("PYRITE_TEST_POSTGRES unset")
	}
	for _, b := range backends(t) {
		if b.name != "postgres" {
			continue
		}
		for _, existing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/position exists %v", b.name, existing), func(t *testing.T) {
				b := newBackend(t, b.name)
				s := open(t, b)
				ctx := t.Context()
				st := newStream(0, 0)
				st.noHeader = true
				if existing {
					if err := s.ApplyBatch(ctx, "p", st.lifecycle("we-0"), store.ApplyWorkEffort); err != nil {
						t.Fatal(err)
					}
				}
				batch := st.lifecycle("we-1")
				inA, releaseA := make(chan struct{}), make(chan struct{})
				var once sync.Once
				errA := make(chan error, 1)
				go func() {
					errA <- s.ApplyBatch(ctx, "p", batch, func(tx *store.Tx, ev store.Event) error {
						once.Do(func() { close(inA); <-releaseA })
						return store.ApplyWorkEffort(tx, ev)
					})
				}()
				<-inA
				errB := s.ApplyBatch(ctx, "p", batch, store.ApplyWorkEffort)
				close(releaseA)
				if errB != nil {
					t.Fatalf("consumer B: %v", errB)
				}
				if err := <-errA; !errors.Is(err, store.ErrPositionConflict) {
					t.Fatalf("consumer A error = %v, want ErrPositionConflict", err)
				}
				if got, _, _ := s.WorkEffort(ctx, "we-1"); got.Version != 6 {
					t.Errorf("version %d, want 6 (applied once)", got.Version)
				}
			})
		}
	}
}

func TestListWorkEfforts(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		st := newStream(0, 0)
		var batch []store.Event
		var all []string
		byStatus := map[string][]string{}
		for i := range 23 {
			id := fmt.Sprintf("we-%03d", i)
			all = append(all, id)
			evs := st.lifecycle(id) // completed
			if i%5 != 0 {
				evs = evs[:i%3+1] // planned, in-progress, in-progress
			}
			batch = append(batch, evs...)
			status := fold(t, evs...)[id].Status
			byStatus[status] = append(byStatus[status], id)
		}
		if err := s.ApplyBatch(ctx, store.WorkEffortProjection, batch, store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}
		pages := func(t *testing.T, status string, limit int) (ids []string, n int) {
			t.Helper()
			cursor := ""
			for {
				page, next, err := s.ListWorkEfforts(ctx, status, limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				n++
				for _, w := range page {
					if status != "" && w.Status != status {
						t.Errorf("status filter %q returned %s with %q", status, w.ID, w.Status)
					}
					ids = append(ids, w.ID)
				}
				if next == "" {
					return ids, n
				}
				if len(page) != limit {
					t.Errorf("page of %d with a next cursor, limit %d", len(page), limit)
				}
				cursor = next
			}
		}
		tests := []struct {
			name      string
			status    string
			limit     int
			want      []string
			wantPages int
		}{
			{name: "all in pages of 10", limit: 10, want: all, wantPages: 3},
			{name: "all in one default page", limit: 0, want: all, wantPages: 1},
			{name: "exact multiple", limit: 23, want: all, wantPages: 1},
			{name: "planned", status: workeffort.StatusPlanned, limit: 2, want: byStatus[workeffort.StatusPlanned], wantPages: (len(byStatus[workeffort.StatusPlanned]) + 1) / 2},
			{name: "in-progress", status: workeffort.StatusInProgress, limit: 4, want: byStatus[workeffort.StatusInProgress], wantPages: (len(byStatus[workeffort.StatusInProgress]) + 3) / 4},
			{name: "completed", status: workeffort.StatusCompleted, limit: 1, want: byStatus[workeffort.StatusCompleted], wantPages: len(byStatus[workeffort.StatusCompleted])},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if len(tc.want) == 0 {
					t.Fatal("fixture has no rows for this case")
				}
				ids, n := pages(t, tc.status, tc.limit)
				if !reflect.DeepEqual(ids, tc.want) || n != tc.wantPages {
					t.Errorf("got %v in %d pages, want %v in %d", ids, n, tc.want, tc.wantPages)
				}
			})
		}
		t.Run("rows added between pages do not shift later pages", func(t *testing.T) {
			page, next, err := s.ListWorkEfforts(ctx, "", 5, "")
			if err != nil || len(page) != 5 {
				t.Fatal(page, err)
			}
			more := newStream(1, 0)
			if err := s.ApplyBatch(ctx, store.WorkEffortProjection, more.lifecycle("we-000a")[:1], store.ApplyWorkEffort); err != nil {
				t.Fatal(err)
			}
			page2, _, err := s.ListWorkEfforts(ctx, "", 5, next)
			if err != nil || len(page2) != 5 || page2[0].ID != "we-005" {
				t.Errorf("second page starts at %v (err %v), want we-005", page2, err)
			}
		})
		t.Run("errors", func(t *testing.T) {
			for _, c := range []struct {
				status, cursor string
				want           error
			}{
				{status: "done", want: store.ErrInvalidStatus},
				{cursor: "not base64!", want: store.ErrInvalidCursor},
				{cursor: "aGVsbG8", want: store.ErrInvalidCursor}, // base64 of "hello"
			} {
				if _, _, err := s.ListWorkEfforts(ctx, c.status, 10, c.cursor); !errors.Is(err, c.want) {
					t.Errorf("List(%q, %q) error = %v, want %v", c.status, c.cursor, err, c.want)
				}
			}
		})
	})
}

func TestWaitVersion(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, _ *store.Store) {
		// A poll interval of an hour: only a local commit can wake a waiter in time.
		s := open(t, b, store.WithPollInterval(time.Hour))
		ctx := t.Context()
		st := newStream(0, 0)
		evs := st.lifecycle("we-1")
		if err := s.ApplyBatch(ctx, store.WorkEffortProjection, evs[:2], store.ApplyWorkEffort); err != nil {
			t.Fatal(err)
		}

		t.Run("already reached", func(t *testing.T) {
			got, ok, err := s.WaitVersion(ctx, "we-1", 2)
			if err != nil || !ok || got.Version != 2 {
				t.Fatalf("WaitVersion = v%d %v %v", got.Version, ok, err)
			}
		})
		t.Run("times out", func(t *testing.T) {
			tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			got, ok, err := s.WaitVersion(tctx, "we-1", 3)
			if !errors.Is(err, store.ErrVersionNotReached) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error = %v, want ErrVersionNotReached and DeadlineExceeded", err)
			}
			if !ok || got.Version != 2 {
				t.Errorf("returned v%d found %v, want the current state v2", got.Version, ok)
			}
		})
		t.Run("unknown id times out not found", func(t *testing.T) {
			tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			if _, ok, err := s.WaitVersion(tctx, "nope", 1); ok || !errors.Is(err, store.ErrVersionNotReached) {
				t.Fatalf("found %v err %v", ok, err)
			}
		})
		t.Run("woken by commit", func(t *testing.T) {
			type result struct {
				v   int64
				err error
			}
			done := make(chan result, 1)
			wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			go func() {
				got, _, err := s.WaitVersion(wctx, "we-1", 5)
				done <- result{got.Version, err}
			}()
			waitFor(t, func() bool { return store.Waiters(s) == 1 })
			// A batch that reaches version 4 only must not release a wait for 5.
			if err := s.ApplyBatch(ctx, store.WorkEffortProjection, evs[2:4], store.ApplyWorkEffort); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				t.Fatalf("returned at v%d (%v) before version 5 was committed", r.v, r.err)
			case <-time.After(30 * time.Millisecond):
			}
			start := time.Now()
			if err := s.ApplyBatch(ctx, store.WorkEffortProjection, evs[4:], store.ApplyWorkEffort); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil || r.v != 6 {
				t.Fatalf("WaitVersion = v%d, %v; want v6", r.v, r.err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("woke %v after the commit", d)
			}
			if n := store.Waiters(s); n != 0 {
				t.Errorf("%d waiters left registered", n)
			}
		})
	})
}

// TestWaitVersionOtherProcess: a commit through another Store (another process) is seen by
// polling.
func TestWaitVersionOtherProcess(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			reader := open(t, b, store.WithPollInterval(10*time.Millisecond))
			writer := open(t, b)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, _, err := reader.WaitVersion(ctx, "we-1", 6)
				done <- err
			}()
			waitFor(t, func() bool { return store.Waiters(reader) == 1 })
			st := newStream(0, 0)
			if err := writer.ApplyBatch(ctx, store.WorkEffortProjection, st.lifecycle("we-1"), store.ApplyWorkEffort); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
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
		st := newStream(0, 0)
		err := s.ApplyBatch(ctx, "reactor", st.lifecycle("we-1")[:1], func(tx *store.Tx, ev store.Event) error {
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

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
