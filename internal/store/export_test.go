package store

import (
	"database/sql"
	"errors"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

// Waiters returns how many WaitVersion calls are registered, so tests can wait for a waiter
// before committing.
func Waiters(s *Store) int { return s.watch.count() }

// ApplyWorkEffortPerEvent is the benchmarks' naive peer of ApplyWorkEffort, the seed
// projector's shape: for every event, read the row, fold, write the row.
func ApplyWorkEffortPerEvent(tx *Tx, ev Event) error {
	if !isWorkEffort(ev) {
		return nil
	}
	st, err := scanWorkEffort(tx.QueryRow("SELECT "+weColumns+" FROM work_efforts WHERE id = $1", ev.AggregateID))
	if errors.Is(err, sql.ErrNoRows) {
		st, err = workeffort.New(ev.AggregateID), nil
	}
	if err != nil {
		return err
	}
	next, err := workeffort.Apply(st, ev.Type, ev.Data, ev.AggregateVersion, ev.Time)
	if errors.Is(err, workeffort.ErrStale) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = tx.Exec("INSERT INTO work_efforts ("+weColumns+") VALUES ("+tx.s.placeholders(1, weNumColumns)+")"+weUpsertTail,
		appendWorkEffortArgs(nil, &next)...)
	return err
}
