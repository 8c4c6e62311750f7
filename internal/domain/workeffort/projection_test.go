package workeffort_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

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
		if err := s.ApplyBatch(ctx, workeffort.Projection, batch1, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		batch2 = append(batch2, p0.ev("we-a1", workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 30, "newProgress": 55}))
		batch2 = append(batch2, p0.ev("we-a2", workeffort.TypeCompleted, map[string]any{"title": "T", "completedAt": base.Add(time.Hour), "assigneeEmail": "bo@example.com"}))
		batch2 = append(batch2, store.Event{Type: "Deployment:Deployed", AggregateID: "d-1", Topic: "pyrite.deployment.events", Partition: 0, Offset: 7})
		if err := s.ApplyBatch(ctx, workeffort.Projection, batch2, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}

		want := fold(t, append(append([]store.Event{}, batch1...), batch2[:2]...)...)
		for id, w := range want {
			got, ok, err := workeffort.Get(ctx, s, id)
			if err != nil || !ok {
				t.Fatalf("WorkEffort(%s): found %v, err %v", id, ok, err)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("WorkEffort(%s) =\n %+v\nwant\n %+v", id, got, w)
			}
		}
		// The stream numbered we-a0's versions for a whole lifecycle (1-6) of which 3 were sent.
		if got, _, _ := workeffort.Get(ctx, s, "we-a0"); !got.NeedsManualSync || got.Version != 8 || got.Progress != 30 {
			t.Errorf("we-a0 = %+v; want manual sync, version 8, progress 30", got)
		}
		if got, _, _ := workeffort.Get(ctx, s, "we-a2"); got.Status != workeffort.StatusCompleted || got.Assignee != "bo@example.com" {
			t.Errorf("we-a2 = %+v", got)
		}
		if _, ok, err := workeffort.Get(ctx, s, "d-1"); ok || err != nil {
			t.Errorf("non-WorkEffort event made a row (found %v, err %v)", ok, err)
		}
		pos, err := s.Positions(ctx, workeffort.Projection)
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
		if err != nil || !reflect.DeepEqual(names, []string{workeffort.Projection}) {
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
		if err := s.ApplyBatch(ctx, "p", events[:4], workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		// The runner redelivers from an older offset: 0..7, then 2..11, then the whole lot.
		for _, batch := range [][]store.Event{events[:8], events[2:], events} {
			if err := s.ApplyBatch(ctx, "p", batch, workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
		}
		want := fold(t, events...)
		for _, id := range []string{"we-1", "we-2"} {
			got, _, err := workeffort.Get(ctx, s, id)
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
		if err := s.ApplyBatch(ctx, "p", []store.Event{dup}, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := workeffort.Get(ctx, s, "we-1"); got.Progress != 100 || got.Version != 6 {
			t.Errorf("after stale event: progress %d version %d, want 100, 6", got.Progress, got.Version)
		}
		if pos, _ := s.Positions(ctx, "p"); pos[store.TopicPartition{Topic: topic, Partition: 3}] != 13 {
			t.Errorf("stale event did not advance the position: %v", pos)
		}
		// Another event (a new ce_id) with a version the row already has is not a duplicate:
		// it fails permanently (to the dead-letter topic), and nothing changes.
		other := events[3]
		other.ID, other.Offset, other.AggregateVersion = "not-applied-before", 13, 4
		err := s.ApplyBatch(ctx, "p", []store.Event{other}, workeffort.ApplyEvent)
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
				return workeffort.ApplyEvent(tx, ev)
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
			apply:   workeffort.ApplyEvent,
			wantErr: workeffort.ErrInvalidData, wantIndex: 3, permanent: true,
		},
		{
			name: "missing aggregate ID is permanent",
			batch: func(st *stream) []store.Event {
				evs := st.lifecycle("we-1")
				evs[5].AggregateID = ""
				return evs
			},
			apply:   workeffort.ApplyEvent,
			wantErr: store.ErrInvalidEvent, wantIndex: 5, permanent: true,
		},
		{
			name: "missing topic",
			batch: func(st *stream) []store.Event {
				evs := st.lifecycle("we-1")
				evs[2].Topic = ""
				return evs
			},
			apply:   workeffort.ApplyEvent,
			wantErr: store.ErrInvalidEvent, wantIndex: 2, permanent: true,
		},
		{
			name:  "before-commit hook fails",
			batch: func(st *stream) []store.Event { return st.lifecycle("we-1") },
			apply: func(tx *store.Tx, ev store.Event) error {
				if ev.Type == workeffort.TypeCreated {
					tx.BeforeCommit(func() error { return errBoom })
				}
				return workeffort.ApplyEvent(tx, ev)
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
				return workeffort.ApplyEvent(tx, ev)
			},
			wantErr: store.ErrPositionConflict, wantIndex: -1,
		},
	}
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t, b)
					ctx := t.Context()
					proj := "atomic-" + tc.name
					// A committed first batch: we-0, and we-1 created.
					st := newStream(0, 0)
					first := append(st.lifecycle("we-0"), st.ev("we-1", workeffort.TypeCreated, map[string]any{"title": "one", "createdAt": base}))
					st.versions["we-1"] = 0 // the failing batch starts we-1 afresh
					if err := s.ApplyBatch(ctx, proj, first, workeffort.ApplyEvent); err != nil {
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
	page, _, err := workeffort.List(t.Context(), s, "", workeffort.MaxListLimit, "")
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
		if b.Name != "postgres" {
			continue
		}
		for _, existing := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/position exists %v", b.Name, existing), func(t *testing.T) {
				b := storetest.New(t, b.Name)
				s := open(t, b)
				ctx := t.Context()
				st := newStream(0, 0)
				st.noHeader = true
				if existing {
					if err := s.ApplyBatch(ctx, "p", st.lifecycle("we-0"), workeffort.ApplyEvent); err != nil {
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
						return workeffort.ApplyEvent(tx, ev)
					})
				}()
				<-inA
				errB := s.ApplyBatch(ctx, "p", batch, workeffort.ApplyEvent)
				close(releaseA)
				if errB != nil {
					t.Fatalf("consumer B: %v", errB)
				}
				if err := <-errA; !errors.Is(err, store.ErrPositionConflict) {
					t.Fatalf("consumer A error = %v, want ErrPositionConflict", err)
				}
				if got, _, _ := workeffort.Get(ctx, s, "we-1"); got.Version != 6 {
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
		if err := s.ApplyBatch(ctx, workeffort.Projection, batch, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		pages := func(t *testing.T, status string, limit int) (ids []string, n int) {
			t.Helper()
			cursor := ""
			for {
				page, next, err := workeffort.List(ctx, s, status, limit, cursor)
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
			page, next, err := workeffort.List(ctx, s, "", 5, "")
			if err != nil || len(page) != 5 {
				t.Fatal(page, err)
			}
			more := newStream(1, 0)
			if err := s.ApplyBatch(ctx, workeffort.Projection, more.lifecycle("we-000a")[:1], workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			page2, _, err := workeffort.List(ctx, s, "", 5, next)
			if err != nil || len(page2) != 5 || page2[0].ID != "we-005" {
				t.Errorf("second page starts at %v (err %v), want we-005", page2, err)
			}
		})
		t.Run("errors", func(t *testing.T) {
			for _, c := range []struct {
				status, cursor string
				want           error
			}{
				{status: "done", want: workeffort.ErrInvalidStatus},
				{cursor: "not base64!", want: workeffort.ErrInvalidCursor},
				{cursor: "aGVsbG8", want: workeffort.ErrInvalidCursor}, // base64 of "hello"
			} {
				if _, _, err := workeffort.List(ctx, s, c.status, 10, c.cursor); !errors.Is(err, c.want) {
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
		if err := s.ApplyBatch(ctx, workeffort.Projection, evs[:2], workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}

		t.Run("already reached", func(t *testing.T) {
			got, ok, err := workeffort.WaitVersion(ctx, s, "we-1", 2)
			if err != nil || !ok || got.Version != 2 {
				t.Fatalf("WaitVersion = v%d %v %v", got.Version, ok, err)
			}
		})
		t.Run("times out", func(t *testing.T) {
			tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			got, ok, err := workeffort.WaitVersion(tctx, s, "we-1", 3)
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
			if _, ok, err := workeffort.WaitVersion(tctx, s, "nope", 1); ok || !errors.Is(err, store.ErrVersionNotReached) {
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
				got, _, err := workeffort.WaitVersion(wctx, s, "we-1", 5)
				done <- result{got.Version, err}
			}()
			storetest.WaitFor(t, func() bool { return s.Waiters() == 1 })
			// A batch that reaches version 4 only must not release a wait for 5.
			if err := s.ApplyBatch(ctx, workeffort.Projection, evs[2:4], workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-done:
				t.Fatalf("returned at v%d (%v) before version 5 was committed", r.v, r.err)
			case <-time.After(30 * time.Millisecond):
			}
			start := time.Now()
			if err := s.ApplyBatch(ctx, workeffort.Projection, evs[4:], workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil || r.v != 6 {
				t.Fatalf("WaitVersion = v%d, %v; want v6", r.v, r.err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("woke %v after the commit", d)
			}
			if n := s.Waiters(); n != 0 {
				t.Errorf("%d waiters left registered", n)
			}
		})
	})
}

// TestWaitVersionOtherProcess: a commit through another Store (another process) is seen by
// polling.
func TestWaitVersionOtherProcess(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			reader := open(t, b, store.WithPollInterval(10*time.Millisecond))
			writer := open(t, b)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, _, err := workeffort.WaitVersion(ctx, reader, "we-1", 6)
				done <- err
			}()
			storetest.WaitFor(t, func() bool { return reader.Waiters() == 1 })
			st := newStream(0, 0)
			if err := writer.ApplyBatch(ctx, workeffort.Projection, st.lifecycle("we-1"), workeffort.ApplyEvent); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestDuplicateInBatch: an event repeated later in the same batch (same ce_id, new offset) is
// a proven duplicate even though its first application is not committed yet, also after an
// earlier repeat in the batch; a new ce_id with a version already applied in the batch is not.
func TestDuplicateInBatch(t *testing.T) {
	forEach(t, func(t *testing.T, b backend, s *store.Store) {
		ctx := t.Context()
		life := newStream(0, 0).lifecycle("we-1")
		next := int64(0)
		at := func(ev store.Event) store.Event { // ev at the next offset
			ev.Offset = next
			next++
			return ev
		}
		// Created, its repeat, Started, its repeat: the second repeat is checked after the
		// first one made the batch keep its applied ce_ids as a set.
		batch := []store.Event{at(life[0]), at(life[0]), at(life[1]), at(life[1])}
		if err := s.ApplyBatch(ctx, "p", batch, workeffort.ApplyEvent); err != nil {
			t.Fatal(err)
		}
		want := fold(t, life[:2]...)["we-1"]
		if got, _, err := workeffort.Get(ctx, s, "we-1"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("we-1 = %+v, %v; want %+v", got, err, want)
		}
		if pos, _ := s.Positions(ctx, "p"); pos[store.TopicPartition{Topic: topic, Partition: 0}] != next {
			t.Errorf("positions = %v, want %d", pos, next)
		}
		// In one batch: a progress update, then another ce_id with the same version.
		progress := at(life[2])
		other := at(life[2])
		other.ID = "not-applied-before"
		err := s.ApplyBatch(ctx, "p", []store.Event{progress, other}, workeffort.ApplyEvent)
		var ae *store.ApplyError
		if !errors.As(err, &ae) || !ae.Permanent() || ae.Index != 1 || !strings.Contains(err.Error(), "not a duplicate") {
			t.Fatalf("an unproven repeat in the batch applied with %v, want a permanent ApplyError at index 1", err)
		}
	})
}
