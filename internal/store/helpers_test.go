package store_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// backend is a database to run a test against: a fresh SQLite file, or a fresh schema in the
// PostgreSQL server named by PYRITE_TEST_POSTGRES.
type backend struct {
	name string
	url  string // opens the same database again
}

// backends returns a fresh SQLite database always and a fresh PostgreSQL schema when
// PYRITE_TEST_POSTGRES is set.
func backends(t testing.TB) []backend {
	t.Helper()
	var bs []backend
	for _, name := range backendNames() {
		bs = append(bs, newBackend(t, name))
	}
	return bs
}

func backendNames() []string {
	if os.Getenv("PYRITE_TEST_POSTGRES") != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// newBackend returns a fresh, empty database of the named kind, removed when t ends.
func newBackend(t testing.TB, name string) backend {
	t.Helper()
	if name == "postgres" {
		return backend{name: name, url: stacktest.PostgresURL(t)}
	}
	return backend{name: name, url: "sqlite://" + filepath.Join(t.TempDir(), "data", "projector.db")}
}

func open(t testing.TB, b backend, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), b.url, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", b.name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// forEach runs fn as a named subtest per backend with a freshly opened store.
func forEach(t *testing.T, fn func(t *testing.T, b backend, s *store.Store)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { fn(t, b, open(t, b)) })
	}
}

// rawDB opens the backend's database directly, for assertions the API does not offer.
func rawDB(t testing.TB, b backend) *sql.DB {
	t.Helper()
	var db *sql.DB
	if b.name == "postgres" {
		cfg, err := pgx.ParseConfig(b.url)
		if err != nil {
			t.Fatal(err)
		}
		db = stdlib.OpenDB(*cfg)
	} else {
		var err error
		db, err = sql.Open("sqlite", b.url[len("sqlite://"):]+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { db.Close() })
	return db
}

const topic = "pyrite.workeffort.events"

var base = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// stream builds events with consecutive offsets on one partition.
type stream struct {
	partition int32
	next      int64
	versions  map[string]int64
	noHeader  bool // leave AggregateVersion 0
}

func newStream(partition int32, from int64) *stream {
	return &stream{partition: partition, next: from, versions: map[string]int64{}}
}

func (s *stream) ev(id, typ string, data map[string]any) store.Event {
	s.versions[id]++
	v := s.versions[id]
	ev := store.Event{
		ID: fmt.Sprintf("%s-%d", id, v), Type: typ, AggregateID: id, AggregateVersion: v,
		Time: base.Add(time.Duration(s.next) * time.Second), Data: data,
		Topic: topic, Partition: s.partition, Offset: s.next,
	}
	if s.noHeader {
		ev.AggregateVersion = 0
	}
	s.next++
	return ev
}

// lifecycle is one work effort from Created to Completed (6 events).
func (s *stream) lifecycle(id string) []store.Event {
	return []store.Event{
		s.ev(id, workeffort.TypeCreated, map[string]any{"title": "Title " + id, "description": "about " + id, "createdAt": base, "assignee": "ann@example.com"}),
		s.ev(id, workeffort.TypeStarted, map[string]any{"title": "Title " + id, "startedAt": base.Add(time.Minute)}),
		s.ev(id, workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 0, "newProgress": 30, "delta": 30, "formatted": "30%"}),
		s.ev(id, workeffort.TypeProgressUpdated, map[string]any{"oldProgress": 30, "newProgress": 70, "delta": 40, "formatted": "70%"}),
		s.ev(id, workeffort.TypeGitHubIssueCreated, map[string]any{"issueNumber": 12, "url": "https://example.com/12"}),
		s.ev(id, workeffort.TypeCompleted, map[string]any{"title": "Title " + id, "completedAt": base.Add(time.Hour), "duration": int64(3600000), "ticketCount": 1, "assigneeEmail": nil}),
	}
}

// fold applies events to fresh states with workeffort.Apply, the expected read model.
func fold(t testing.TB, events ...store.Event) map[string]workeffort.State {
	t.Helper()
	out := map[string]workeffort.State{}
	for _, ev := range events {
		s, ok := out[ev.AggregateID]
		if !ok {
			s = workeffort.New(ev.AggregateID)
		}
		s, err := workeffort.Apply(s, ev.Type, ev.Data, ev.AggregateVersion, ev.Time)
		if err != nil {
			t.Fatalf("fold %s: %v", ev.Type, err)
		}
		out[ev.AggregateID] = s
	}
	return out
}
