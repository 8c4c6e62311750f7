package reactor_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

func integrationRunner(t *testing.T, e *reactortest.Env) func(ctx context.Context) error {
	t.Helper()
	return integrationRunnerWith(t, e, e.Deps().Producer)
}

func integrationRunnerWith(t *testing.T, e *reactortest.Env, prod reactor.Producer) func(ctx context.Context) error {
	t.Helper()
	d := e.Deps()
	b := bus.New()
	if err := reactor.NewIntegration(d.Emitter, prod, e.Store, reactor.NewTopicLookup(d.KafkaOpts...), e.Metrics, workeffort.Integrations()...).Subscribe(b); err != nil {
		t.Fatal(err)
	}
	r, err := d.BusRunner(reactor.IntegrationGroup, []string{reactortest.WorkEffortEvents}, b, reactortest.FastRetry(3))
	if err != nil {
		t.Fatal(err)
	}
	return r.Run
}

func withCorrelation(r *kgo.Record, corr string) *kgo.Record {
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: bus.HeaderCorrelationID, Value: []byte(corr)})
	return r
}

func TestIntegrationReactor(t *testing.T) {
	e := reactortest.New(t)
	done := completed(e, t, "we-1", "Ship it", nil)
	e.Produce(t,
		e.Record(t, reactortest.WorkEffortEvents, "WorkEffort:Started", "we-1", 0, map[string]any{"title": "Ship it", "startedAt": time.Now()}),
		withCorrelation(done, "corr-1"),
		completed(e, t, "we-2", "No correlation", nil),
	)
	stop := reactortest.Start(t, integrationRunner(t, e))
	e.WaitCount(t, topology.IntegrationTopic, 2)
	e.WaitCommitted(t, reactor.IntegrationGroup, reactortest.WorkEffortEvents)
	stop()

	evs := e.Events(t, topology.IntegrationTopic)
	byKey := map[string]*bus.Event{}
	for _, ev := range evs {
		byKey[ev.AggregateID] = ev
	}
	trigger := reactortest.Header(done, bus.HeaderID)
	ev := byKey["we-1"]
	if ev == nil {
		t.Fatalf("no integration event for we-1 in %v", reactortest.IDs(evs))
	}
	d := reactor.Data(ev.Data)
	title, _ := d.String("title")
	at, _ := d.Time("completedAt")
	tickets, _ := d.Int("ticketCount")
	weID, _ := d.String("workEffortId")
	tests := []struct {
		name      string
		got, want any
	}{
		{"type", ev.Type, workeffort.CompletedV1},
		{"key", string(ev.Origin.Key), "we-1"},
		{"workEffortId", weID, "we-1"},
		{"title", title, "Ship it"},
		{"completedAt", at, time.UnixMilli(1_700_000_000_000).UTC()},
		{"ticketCount", tickets, int64(2)},
		{"correlation id carried over", ev.CorrelationID, "corr-1"},
		{"causation id is the domain event's id", ev.CausationID, trigger},
		{"derived id", ev.ID, reactor.EventID(trigger, "integration/"+workeffort.CompletedV1)},
		{"source", ev.Source, "pyrite.work-efforts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
	t.Run("an event without correlation starts one", func(t *testing.T) {
		ev := byKey["we-2"]
		if ev == nil || ev.CorrelationID != ev.CausationID {
			t.Errorf("we-2: %+v", ev)
		}
	})
	t.Run("redelivery emits nothing twice", func(t *testing.T) {
		e.Rewind(t, reactor.IntegrationGroup, reactortest.WorkEffortEvents)
		stop := reactortest.Start(t, integrationRunner(t, e))
		e.WaitCommitted(t, reactor.IntegrationGroup, reactortest.WorkEffortEvents)
		e.Stable(t, 200*time.Millisecond, topology.IntegrationTopic)
		stop()
		if n := e.Count(t, topology.IntegrationTopic); n != 2 {
			t.Errorf("%d integration events, want 2", n)
		}
	})
}

// TestReplayMarks: after an operator's replay of the notifications group (a mark on
// pyrite.replays, then the group's offsets moved back), the reactor does not fire again for
// the records before the mark, even with its deduplication records gone; it fires for new
// ones.
func TestReplayMarks(t *testing.T) {
	e := reactortest.New(t)
	ms := startMailServer(t)
	e.Produce(t, completed(e, t, "we-1", "One", "a@example.com"), completed(e, t, "we-2", "Two", "b@example.com"),
		completed(e, t, "we-3", "Three", "c@example.com"))
	cfg := ms.config(t)
	e.StartReplays(t)
	stop := reactortest.Start(t, notificationRunner(t, e, cfg))
	ms.waitFor(t, 3)
	e.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
	stop()

	// What `pyrite replay notifications` does: record where the group is, then rewind it.
	var marks []*kgo.Record
	for p, off := range e.CommittedOffsets(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents) {
		marks = append(marks, reactor.Replay{Group: reactor.NotificationsGroup, Topic: reactortest.WorkEffortEvents,
			Partition: p, Until: off, At: time.Now()}.Record())
	}
	e.Produce(t, marks...)
	e.Rewind(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)

	// The deduplication records are gone too (a new store), so only the marks stand between
	// the replay and a second round of emails. The marks are read by a new reader, as after a
	// restart of the program.
	fresh := reactortest.WithStack(t, e.Stack, "sqlite://"+filepath.Join(t.TempDir(), "fresh.db"))
	fresh.StartReplays(t)
	for _, m := range marks {
		rp, _ := reactor.ParseReplay(m.Key, m.Value)
		if got := fresh.Replays.Until(rp.Group, rp.Topic, rp.Partition); got != rp.Until {
			t.Fatalf("mark %s: Until = %d, want %d", m.Key, got, rp.Until)
		}
	}
	stop = reactortest.Start(t, notificationRunner(t, fresh, cfg))
	fresh.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
	e.Produce(t, completed(e, t, "we-4", "Four", "d@example.com"))
	got := ms.waitFor(t, 4)
	fresh.WaitCommitted(t, reactor.NotificationsGroup, reactortest.WorkEffortEvents)
	stop()
	if len(got) != 4 || got[3].to != "d@example.com" {
		t.Errorf("emails to %v, want a, b, c before the replay and d after it", recipients(got))
	}
}

// TestReplaysFollows: a mark written while the reader runs is applied, and a tombstone
// removes it.
func TestReplaysFollows(t *testing.T) {
	e := reactortest.New(t)
	e.StartReplays(t)
	rp := reactor.Replay{Group: "webhooks", Topic: reactortest.WorkEffortEvents, Partition: 2, Until: 42, At: time.Now()}
	e.Produce(t, rp.Record())
	waitUntil(t, func() bool { return e.Replays.Until("webhooks", reactortest.WorkEffortEvents, 2) == 42 })
	ev := &bus.Event{Origin: &bus.Origin{Topic: reactortest.WorkEffortEvents, Partition: 2, Offset: 41}}
	if !e.Replays.Suppressed("webhooks", ev) || e.Replays.Suppressed("notifications", ev) {
		t.Error("offset 41 must be suppressed for webhooks only")
	}
	ev.Origin.Offset = 42
	if e.Replays.Suppressed("webhooks", ev) {
		t.Error("offset 42 (the mark itself) must not be suppressed")
	}
	tomb := rp.Record()
	tomb.Value = nil
	e.Produce(t, tomb)
	waitUntil(t, func() bool { return e.Replays.Until("webhooks", reactortest.WorkEffortEvents, 2) == -1 })
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met before the deadline")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killedAfterWrite writes records, then answers the first write with an error: what the
// reactor sees of a process killed after its integration event reached Kafka and before the
// processed mark committed (the redelivery after the restart finds "began" and no "done").
type killedAfterWrite struct {
	reactor.Producer
	once sync.Once
}

func (k *killedAfterWrite) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	res := k.Producer.ProduceSync(ctx, rs...)
	k.once.Do(func() {
		if res.FirstErr() == nil {
			res = kgo.ProduceResults{{Record: rs[0], Err: errors.New("killed before the processed mark")}}
		}
	})
	return res
}

// TestIntegrationEffectOnceOnTheTopic: the integration event is on pyrite.integration once
// when the reactor wrote it and died before recording it (the pyrite dev crash matrix saw it
// twice), and is written when a crash came after "began" and before the write.
func TestIntegrationEffectOnceOnTheTopic(t *testing.T) {
	t.Run("written, then killed before the mark", func(t *testing.T) {
		e := reactortest.New(t)
		e.Produce(t, completed(e, t, "we-1", "Ship it", nil))
		wantOneIntegrationEvent(t, e, integrationRunnerWith(t, e, &killedAfterWrite{Producer: e.Deps().Producer}))
	})
	t.Run("killed after began, before the write", func(t *testing.T) {
		e := reactortest.New(t)
		done := completed(e, t, "we-2", "Ship it", nil)
		if _, err := e.Store.MarkProcessed(t.Context(), "integration/"+workeffort.CompletedV1+"#began", reactortest.Header(done, bus.HeaderID)); err != nil {
			t.Fatal(err)
		}
		e.Produce(t, done)
		wantOneIntegrationEvent(t, e, integrationRunner(t, e))
	})
}

// wantOneIntegrationEvent runs run until the group committed and pyrite.integration is
// quiet, and wants one event there.
func wantOneIntegrationEvent(t *testing.T, e *reactortest.Env, run func(ctx context.Context) error) {
	t.Helper()
	stop := reactortest.Start(t, run)
	e.WaitCount(t, topology.IntegrationTopic, 1)
	e.WaitCommitted(t, reactor.IntegrationGroup, reactortest.WorkEffortEvents)
	e.Stable(t, 300*time.Millisecond, topology.IntegrationTopic)
	stop()
	if n := e.Count(t, topology.IntegrationTopic); n != 1 {
		t.Errorf("%d integration events, want 1", n)
	}
}
