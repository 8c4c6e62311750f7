package workeffort_test

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

// backend is a database to run a test against (storetest.Backend).
type backend = storetest.Backend

func backends(t testing.TB) []backend { return storetest.Backends(t) }

func open(t testing.TB, b backend, opts ...store.Option) *store.Store {
	t.Helper()
	return storetest.Open(t, b, append([]store.Option{tables()}, opts...)...)
}

// tables is the read model's migrations, as the projector hands them to store.Open.
func tables() store.Option {
	rm := workeffort.ReadModel()
	return store.WithMigrations(rm.Name, rm.Migrations)
}

// forEach runs fn as a named subtest per backend with a freshly opened store.
func forEach(t *testing.T, fn func(t *testing.T, b backend, s *store.Store)) {
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) { fn(t, b, open(t, b)) })
	}
}

func rawDB(t testing.TB, b backend) *sql.DB { return storetest.RawDB(t, b) }

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
