package workeffort

import (
	"database/sql"
	"errors"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// ApplyPerEvent is the benchmarks' naive peer of ApplyEvent, the seed projector's shape: for
// every event, read the row, fold, write the row.
func ApplyPerEvent(tx *store.Tx, ev store.Event) error {
	if !isWorkEffort(ev) {
		return nil
	}
	st, err := scan(tx.QueryRow("SELECT "+columns+" FROM "+Table+" WHERE id = $1", ev.AggregateID))
	if errors.Is(err, sql.ErrNoRows) {
		st, err = New(ev.AggregateID), nil
	}
	if err != nil {
		return err
	}
	next, err := Apply(st, ev.Type, ev.Data, ev.AggregateVersion, ev.Time)
	if errors.Is(err, ErrStale) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = tx.Exec("INSERT INTO "+Table+" ("+columns+") VALUES ("+tx.Placeholders(1, numColumns)+")"+upsertTail,
		appendArgs(nil, &next)...)
	return err
}
