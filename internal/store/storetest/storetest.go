// Package storetest runs tests of the store and of the domain modules' read models against
// both backends: a fresh SQLite file always, and a fresh PostgreSQL schema when
// PYRITE_TEST_POSTGRES is set. It is for tests only.
package storetest

import (
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Backend is a database to run a test against.
type Backend struct {
	Name string // "sqlite" or "postgres"
	URL  string // opens the same database again
}

// Backends returns a fresh SQLite database always and a fresh PostgreSQL schema when
// PYRITE_TEST_POSTGRES is set, each removed when t ends.
func Backends(t testing.TB) []Backend {
	t.Helper()
	var bs []Backend
	for _, name := range Names() {
		bs = append(bs, New(t, name))
	}
	return bs
}

// Names are the backends Backends returns.
func Names() []string {
	if os.Getenv("PYRITE_TEST_POSTGRES") != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// New returns a fresh, empty database of the named kind, removed when t ends.
func New(t testing.TB, name string) Backend {
	t.Helper()
	if name == "postgres" {
		return Backend{Name: name, URL: stacktest.PostgresURL(t)}
	}
	return Backend{Name: name, URL: "sqlite://" + filepath.Join(t.TempDir(), "data", "projector.db")}
}

// Open opens b, failing t on an error, and closes it when t ends.
func Open(t testing.TB, b Backend, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), b.URL, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", b.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// RawDB opens b's database directly, for assertions the store's API does not offer.
func RawDB(t testing.TB, b Backend) *sql.DB {
	t.Helper()
	var db *sql.DB
	if b.Name == "postgres" {
		cfg, err := pgx.ParseConfig(b.URL)
		if err != nil {
			t.Fatal(err)
		}
		db = stdlib.OpenDB(*cfg)
	} else {
		var err error
		db, err = sql.Open("sqlite", b.URL[len("sqlite://"):]+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// WaitFor fails t unless cond holds within 10 seconds, polling it every millisecond.
func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
