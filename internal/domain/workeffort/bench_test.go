package workeffort_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

// benchBatch is the number of events per ApplyBatch call in the benchmarks.
const benchBatch = 1000

// benchWorkload yields batches of decoded WorkEffort events: batch i carries step i%6 of the
// life cycle (Created, Started, 3 ProgressUpdated, Completed) for 1000 distinct aggregates,
// so every event changes a different row: the costliest shape for a projection.
type benchWorkload struct {
	data   [6]map[string]any
	types  [6]string
	batch  int
	offset int64
	events []store.Event
}

func newBenchWorkload() *benchWorkload {
	w := &benchWorkload{events: make([]store.Event, benchBatch)}
	w.types = [6]string{workeffort.TypeCreated, workeffort.TypeStarted, workeffort.TypeProgressUpdated,
		workeffort.TypeProgressUpdated, workeffort.TypeProgressUpdated, workeffort.TypeCompleted}
	w.data = [6]map[string]any{
		{"title": "Bench", "description": "a work effort", "createdAt": base, "assignee": "ann@example.com"},
		{"title": "Bench", "startedAt": base},
		{"oldProgress": 0, "newProgress": 20, "delta": 20, "formatted": "20%"},
		{"oldProgress": 20, "newProgress": 50, "delta": 30, "formatted": "50%"},
		{"oldProgress": 50, "newProgress": 90, "delta": 40, "formatted": "90%"},
		{"title": "Bench", "completedAt": base, "duration": int64(1), "ticketCount": 1, "assigneeEmail": nil},
	}
	return w
}

func (w *benchWorkload) next() []store.Event {
	step, group := w.batch%6, w.batch/6
	for i := range w.events {
		w.events[i] = store.Event{
			ID: fmt.Sprintf("e%d", w.offset), Type: w.types[step], AggregateID: fmt.Sprintf("we-%d-%d", group, i),
			AggregateVersion: int64(step + 1), Time: base.Add(time.Duration(w.offset) * time.Millisecond),
			Data: w.data[step], Topic: topic, Partition: 0, Offset: w.offset,
		}
		w.offset++
	}
	w.batch++
	return w.events
}

// BenchmarkApply measures events applied per second through ApplyBatch (positions in the same
// transaction) with ApplyWorkEffort, beside two peers in the same run on the same database:
// per-event, the seed projector's shape (read, fold and write the row for every event, in the
// same batched transactions), and raw-insert, one bare INSERT per event (no read, no fold).
// Targets: SQLite >= 30,000 events/s, PostgreSQL >= 20,000 events/s for "projection".
func BenchmarkApply(b *testing.B) {
	peers := []struct {
		name  string
		setup string
		apply func(tx *store.Tx, ev store.Event) error
	}{
		{name: "projection", apply: workeffort.ApplyEvent},
		{name: "per-event", apply: workeffort.ApplyPerEvent},
		{
			name:  "raw-insert",
			setup: "CREATE TABLE bench_raw (event_id TEXT PRIMARY KEY, aggregate_id TEXT NOT NULL, type TEXT NOT NULL, version BIGINT NOT NULL, at BIGINT NOT NULL)",
			apply: func(tx *store.Tx, ev store.Event) error {
				_, err := tx.Exec("INSERT INTO bench_raw (event_id, aggregate_id, type, version, at) VALUES ($1, $2, $3, $4, $5)",
					ev.ID, ev.AggregateID, ev.Type, ev.AggregateVersion, ev.Time.UnixMilli())
				return err
			},
		},
	}
	for _, name := range storetest.Names() {
		b.Run(name, func(b *testing.B) {
			for _, p := range peers {
				b.Run(p.name, func(b *testing.B) {
					be := storetest.New(b, name) // fresh: nothing is skipped as already applied
					s := open(b, be)
					if p.setup != "" {
						if _, err := rawDB(b, be).ExecContext(b.Context(), p.setup); err != nil {
							b.Fatal(err)
						}
					}
					w := newBenchWorkload()
					proj := "bench-" + p.name
					b.ResetTimer()
					start := time.Now()
					for b.Loop() {
						if err := s.ApplyBatch(b.Context(), proj, w.next(), p.apply); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "events/s")
				})
			}
		})
	}
}
