package store_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

// backend is a database to run a test against (storetest.Backend).
type backend = storetest.Backend

func backends(t testing.TB) []backend { return storetest.Backends(t) }

func open(t testing.TB, b backend, opts ...store.Option) *store.Store {
	t.Helper()
	return storetest.Open(t, b, opts...)
}

// forEach runs fn as a named subtest per backend with a freshly opened store.
func forEach(t *testing.T, fn func(t *testing.T, b backend, s *store.Store)) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b, open(t, b)) })
	}
}

func rawDB(t testing.TB, b backend) *sql.DB { return storetest.RawDB(t, b) }

var base = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// event is one event of aggregate id at offset 0 of partition 0.
func event(id, typ string) store.Event {
	return store.Event{ID: id + "-1", Type: typ, AggregateID: id, AggregateVersion: 1, Time: base, Topic: "pyrite.a.events"}
}
