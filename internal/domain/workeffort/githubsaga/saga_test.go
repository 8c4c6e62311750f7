package githubsaga_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
)

func config(f *fakeGitHub) githubsaga.Config {
	return githubsaga.Config{BaseURL: f.srv.URL + "/", Token: token, Repository: owner + "/" + repo,
		Attempts: 3, Backoff: 10 * time.Millisecond, Timeout: 2 * time.Second,
		SweepInterval: 50 * time.Millisecond, SweepAge: 200 * time.Millisecond}
}

func sagaRun(t *testing.T, e *reactortest.Env, cfg githubsaga.Config) func(ctx context.Context) error {
	t.Helper()
	s, err := githubsaga.New(cfg, e.Deps())
	if err != nil {
		t.Fatal(err)
	}
	return func(ctx context.Context) error {
		return s.Run(ctx, []string{reactortest.WorkEffortEvents}, reactortest.FastRetry(0))
	}
}

func started(e *reactortest.Env, t *testing.T, id, title string) *kgo.Record {
	return e.Record(t, reactortest.WorkEffortEvents, githubsaga.TypeStarted, id, 0, map[string]any{"title": title, "startedAt": time.Now()})
}

func completed(e *reactortest.Env, t *testing.T, id string) *kgo.Record {
	return e.Record(t, reactortest.WorkEffortEvents, githubsaga.TypeCompleted, id, 0, map[string]any{
		"title": "T", "completedAt": time.Now(), "duration": int64(1), "ticketCount": 0, "assigneeEmail": nil})
}

func byAggregate(evs []*bus.Event) map[string][]*bus.Event {
	out := map[string][]*bus.Event{}
	for _, ev := range evs {
		out[ev.AggregateID] = append(out[ev.AggregateID], ev)
	}
	return out
}

// waitEvents waits until the raw topic holds n events of type typ and returns them.
func waitEvents(t *testing.T, e *reactortest.Env, typ string, n int) []*bus.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := reactortest.OfType(e.Events(t, reactortest.WorkEffortRaw), typ)
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events, want %d", len(got), typ, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGitHubSaga(t *testing.T) {
	e := reactortest.New(t)
	f := newFakeGitHub(t)
	f.failCreate["always fails"] = fakeFailure{status: http.StatusServiceUnavailable}
	f.failCreate["refused"] = fakeFailure{status: http.StatusUnprocessableEntity}
	f.failCreate["lost answer"] = fakeFailure{status: http.StatusBadGateway, created: true, times: 1}
	start1 := started(e, t, "we-1", "Ship the API")
	start1.Headers = append(start1.Headers, kgo.RecordHeader{Key: bus.HeaderCorrelationID, Value: []byte("corr-1")})
	e.Produce(t, start1, started(e, t, "we-2", "always fails"), started(e, t, "we-3", "refused"),
		started(e, t, "we-4", "lost answer"), started(e, t, "we-5", "close fails"))
	f.failClose["close fails"] = http.StatusInternalServerError
	e.StartReplays(t)
	reactortest.Start(t, func(ctx context.Context) error {
		return e.Forward(ctx, reactortest.WorkEffortRaw, reactortest.WorkEffortEvents)
	})
	stop := reactortest.Start(t, sagaRun(t, e, config(f)))
	created := byAggregate(waitEvents(t, e, githubsaga.TypeIssueCreated, 3))
	failed := byAggregate(waitEvents(t, e, githubsaga.TypeIssueCreationFailed, 2))
	synced := byAggregate(waitEvents(t, e, githubsaga.TypeNeedsManualSync, 2))

	t.Run("issue created and announced", func(t *testing.T) {
		issues := f.byWorkEffort("we-1")["we-1"]
		evs := created["we-1"]
		if len(issues) != 1 || len(evs) != 1 {
			t.Fatalf("%d issues, %d events", len(issues), len(evs))
		}
		ev, trig := evs[0], reactortest.Header(start1, bus.HeaderID)
		n, _ := reactor.Data(ev.Data).Int("issueNumber")
		u, _ := reactor.Data(ev.Data).String("url")
		if int(n) != issues[0].Number || u != issues[0].HTMLURL || ev.CorrelationID != "corr-1" || ev.CausationID != trig ||
			ev.ID != reactor.EventID(trig, "github/issue-created") || issues[0].Title != "Ship the API" {
			t.Errorf("event %+v data %v for issue %+v", ev, ev.Data, issues[0])
		}
		st, ok, err := githubsaga.LoadIssue(t.Context(), e.Store, "we-1")
		if err != nil || !ok || st.State != githubsaga.IssueOpen || st.Number != issues[0].Number {
			t.Errorf("saga state %+v (found %v, %v)", st, ok, err)
		}
	})
	t.Run("an answer lost after the issue was made does not make a second", func(t *testing.T) {
		if issues := f.byWorkEffort("we-4")["we-4"]; len(issues) != 1 || len(created["we-4"]) != 1 {
			t.Errorf("%d issues and %d events for we-4, want 1 and 1", len(issues), len(created["we-4"]))
		}
	})
	t.Run("retries exhausted, then compensated", func(t *testing.T) {
		ev := failed["we-2"]
		if len(ev) != 1 {
			t.Fatalf("%d failure events for we-2", len(ev))
		}
		if n, _ := reactor.Data(ev[0].Data).Int("attempts"); n != 3 {
			t.Errorf("attempts %d, want 3", n)
		}
		sync := synced["we-2"]
		if len(sync) != 1 || sync[0].CausationID != ev[0].ID {
			t.Fatalf("manual sync events %v", sync)
		}
		d := reactor.Data(sync[0].Data)
		reason, _ := d.String("reason")
		typ, _ := d.String("failedEventType")
		id, _ := d.String("failedEventId")
		if reason != "GitHub issue creation failed" || typ != githubsaga.TypeIssueCreationFailed || id != ev[0].ID {
			t.Errorf("manual sync %v", sync[0].Data)
		}
	})
	t.Run("a refusal is not retried", func(t *testing.T) {
		if n, _ := reactor.Data(failed["we-3"][0].Data).Int("attempts"); n != 1 {
			t.Errorf("attempts %d, want 1", n)
		}
	})

	e.Produce(t, completed(e, t, "we-1"), completed(e, t, "we-2"), completed(e, t, "we-5"), e.Record(t, reactortest.WorkEffortEvents,
		"WorkEffort:ProgressUpdated", "we-6", 0, map[string]any{"oldProgress": 0, "newProgress": 1, "delta": 1, "formatted": "1%"}))
	garbage := &kgo.Record{Topic: reactortest.WorkEffortEvents, Key: []byte("we-7"), Value: []byte("not avro")}
	e.Produce(t, garbage)
	closed := byAggregate(waitEvents(t, e, githubsaga.TypeIssueClosed, 1))
	dlq := e.DLQ(t, githubsaga.Group, 2)
	t.Run("issue closed on completion", func(t *testing.T) {
		issues := f.byWorkEffort("we-1")["we-1"]
		if len(closed["we-1"]) != 1 || issues[0].State != "closed" {
			t.Errorf("closed events %d, issue %+v", len(closed["we-1"]), issues[0])
		}
		if len(closed["we-2"]) != 0 {
			t.Error("closed an issue that was never created")
		}
	})
	t.Run("failures reach the dead-letter topic", func(t *testing.T) {
		got := map[string]string{}
		for _, r := range dlq {
			got[string(r.Key)] = reactortest.Header(r, bus.HeaderDLQReason)
		}
		if got["we-5"] != bus.ReasonPermanent || got["we-7"] != bus.ReasonDecode {
			t.Errorf("dead letters %v, want we-5 permanent (close gave up) and we-7 decode", got)
		}
	})
	stop()

	t.Run("redelivery creates and emits nothing twice", func(t *testing.T) {
		issues, _ := f.count()
		before := e.Count(t, reactortest.WorkEffortRaw)
		// Forget the positions and the group's offsets, as a restore of an old backup would:
		// every event comes again.
		e.ForgetPositions(t, githubsaga.Group)
		e.Rewind(t, githubsaga.Group, reactortest.WorkEffortEvents)
		stop := reactortest.Start(t, sagaRun(t, e, config(f)))
		e.Produce(t, started(e, t, "we-1", "Ship the API"), started(e, t, "we-8", "new one"))
		waitEvents(t, e, githubsaga.TypeIssueCreated, 4)
		e.Stable(t, 300*time.Millisecond, reactortest.WorkEffortRaw)
		stop()
		after, _ := f.count()
		if after != issues+1 {
			t.Errorf("%d issues, want %d (only we-8's)", after, issues+1)
		}
		if n := e.Count(t, reactortest.WorkEffortRaw); n != before+1 {
			t.Errorf("raw topic grew by %d, want 1 (we-8's GitHubIssueCreated)", n-before)
		}
	})
}

// TestGitHubSagaStopMidStream stops the saga during a burst of Started events (each create
// slow), restarts it, and checks that every work effort has exactly one issue and one
// GitHubIssueCreated id.
func TestGitHubSagaStopMidStream(t *testing.T) {
	e := reactortest.New(t)
	f := newFakeGitHub(t)
	f.delay = 5 * time.Millisecond
	var recs []*kgo.Record
	var ids []string
	for i := range 30 {
		id := fmt.Sprintf("we-%d", i)
		ids = append(ids, id)
		recs = append(recs, started(e, t, id, "T "+id))
	}
	e.Produce(t, recs...)
	for _, at := range []int{5, 15, 25} {
		stop := reactortest.Start(t, sagaRun(t, e, config(f)))
		for {
			if n, _ := f.count(); n >= at {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		stop()
	}
	stop := reactortest.Start(t, sagaRun(t, e, config(f)))
	evs := waitEvents(t, e, githubsaga.TypeIssueCreated, 30)
	stop()
	assertOneIssueEach(t, f, evs, ids)
}

func assertOneIssueEach(t *testing.T, f *fakeGitHub, evs []*bus.Event, ids []string) {
	t.Helper()
	issues := f.byWorkEffort(ids...)
	evIDs := map[string]map[string]bool{}
	for _, ev := range evs {
		if evIDs[ev.AggregateID] == nil {
			evIDs[ev.AggregateID] = map[string]bool{}
		}
		evIDs[ev.AggregateID][ev.ID] = true
	}
	for _, id := range ids {
		if len(issues[id]) != 1 || len(evIDs[id]) != 1 {
			t.Errorf("%s: %d issues, %d distinct GitHubIssueCreated ids; want 1 and 1", id, len(issues[id]), len(evIDs[id]))
		}
	}
	if n, c := f.count(); n != len(ids) {
		t.Errorf("%d issues for %d work efforts (%d create calls)", n, len(ids), c)
	}
	if len(evs) != len(ids) {
		t.Logf("%d GitHubIssueCreated records for %d work efforts (repeats carry the same ce_id)", len(evs), len(ids))
	}
}
