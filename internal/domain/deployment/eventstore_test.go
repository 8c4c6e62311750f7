package deployment_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// storeBench is a manager whose writers append through a real ingest's event store, with the
// Deployment raw topic forwarded to its events topic (as the upcaster would).
type storeBench struct {
	e   *reactortest.Env
	url string
	cl  *eventstore.Client
}

func newStoreBench(t *testing.T) *storeBench {
	e := migrated(t, reactortest.New(t))
	url, cl := e.Ingest(t)
	reactortest.Start(t, func(ctx context.Context) error {
		return e.Forward(ctx, reactortest.DeploymentRaw, reactortest.DeploymentEvents)
	})
	return &storeBench{e: e, url: url, cl: cl}
}

func (b *storeBench) manager(t *testing.T, app reactor.Appender, cfg deployment.Config) *deployment.Manager {
	t.Helper()
	d := b.e.Deps()
	d.Appender = app
	cfg.SweepInterval, cfg.SweepAge = 50*time.Millisecond, 200*time.Millisecond
	m, err := deployment.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (b *storeBench) run(t *testing.T, m *deployment.Manager) func() {
	return reactortest.Start(t, func(ctx context.Context) error { return m.Run(ctx, topics, reactortest.FastRetry(0)) })
}

// post writes a Deployment event through ingest's POST /v1/events.
func (b *storeBench) post(t *testing.T, typ, pid string, data string) {
	t.Helper()
	body := fmt.Sprintf(`{"type":%q,"aggregateId":%q,"data":%s}`, typ, pid, data)
	resp, err := http.Post(b.url+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("post %s: %s", typ, resp.Status)
	}
}

// stream waits until the process's stream holds at least n events and returns them.
func (b *storeBench) stream(t *testing.T, pid string, n int) []ingest.StreamEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := reactortest.Stream(t, b.url, "Deployment", pid)
		if len(st.Events) >= n {
			return st.Events
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s holds %d events, want %d", pid, len(st.Events), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkStream fails unless evs have versions 1..len(evs) and distinct ids.
func checkStream(t *testing.T, pid string, evs []ingest.StreamEvent) {
	t.Helper()
	ids := map[string]bool{}
	for i, ev := range evs {
		if ev.Version != int64(i+1) || ids[ev.ID] {
			t.Errorf("%s: event %d is %s version %d (id %s, seen before %v)", pid, i, ev.Type, ev.Version, ev.ID, ids[ev.ID])
		}
		ids[ev.ID] = true
	}
}

func types(evs []ingest.StreamEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeploymentThroughEventStore: commands, results and the timeout of one process all
// append through the event store: one stream, versions 1..5, and the manager's stream
// version follows it.
func TestDeploymentThroughEventStore(t *testing.T) {
	b := newStoreBench(t)
	m := b.manager(t, b.cl, deployment.Config{StepTimeout: 3 * time.Second, PollInterval: 20 * time.Millisecond})
	b.run(t, m)
	done := completed(b.e, t, "we-s")
	b.e.Produce(t, done)
	pid := deployment.ProcessID(reactortest.Header(done, bus.HeaderID))
	b.stream(t, pid, 1)
	b.post(t, deployment.TypeTestsPassed, pid, fmt.Sprintf(`{"workEffortId":"we-s","processId":%q}`, pid))
	evs := b.stream(t, pid, 5)
	want := []string{deployment.TypeRunTests, deployment.TypeTestsPassed, deployment.TypeRunBuild, deployment.TypeStepTimedOut, deployment.TypeProcessFailed}
	if got := types(evs); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("stream %v, want %v", got, want)
	}
	checkStream(t, pid, evs)
	waitFor(t, "the manager handled its stream", func() bool {
		p := state(t, b.e, pid)
		return p.State == deployment.StateTimedOut && p.StreamVersion == 5
	})
}

// TestDeploymentTimeoutRacesIngestAppend: while FireDue times processes out, ingest appends
// an event (a result no step waits for) to each process's stream. Every event lands once
// with contiguous versions, the timeout is one transaction (nothing between StepTimedOut
// and ProcessFailed), and the manager handles the whole stream.
func TestDeploymentTimeoutRacesIngestAppend(t *testing.T) {
	b := newStoreBench(t)
	// Deadlines pass at once; only the test fires them (the manager's own poll is an hour).
	m := b.manager(t, b.cl, deployment.Config{StepTimeout: time.Millisecond, PollInterval: time.Hour})
	b.run(t, m)
	const n = 10
	pids := make([]string, n)
	for i := range pids {
		done := completed(b.e, t, fmt.Sprintf("we-r%d", i))
		b.e.Produce(t, done)
		pids[i] = deployment.ProcessID(reactortest.Header(done, bus.HeaderID))
	}
	for _, pid := range pids {
		waitFor(t, pid+" handled its RunTests", func() bool {
			p, ok, _ := deployment.LoadProcess(t.Context(), b.e.Store, pid)
			return ok && p.StreamVersion == 1
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := m.FireDue(t.Context()); err != nil && !errors.Is(err, deployment.ErrStreamMoved) {
			t.Errorf("FireDue: %v", err)
		}
	}()
	for _, pid := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.post(t, deployment.TypeBuildComplete, pid, fmt.Sprintf(`{"workEffortId":"we","processId":%q,"artifact":"late"}`, pid))
		}()
	}
	wg.Wait()
	// Processes whose stream moved under the first poll are timed out by later ones.
	waitFor(t, "every process timed out", func() bool {
		if _, err := m.FireDue(t.Context()); err != nil && !errors.Is(err, deployment.ErrStreamMoved) {
			t.Errorf("FireDue: %v", err)
		}
		for _, pid := range pids {
			if p := state(t, b.e, pid); p.State != deployment.StateTimedOut || p.StreamVersion != 4 {
				return false
			}
		}
		return true
	})
	for _, pid := range pids {
		evs := b.stream(t, pid, 4)
		checkStream(t, pid, evs)
		got := strings.Join(types(evs), ",")
		timeout := deployment.TypeStepTimedOut + "," + deployment.TypeProcessFailed
		if len(evs) != 4 || !strings.HasPrefix(got, deployment.TypeRunTests+",") || !strings.Contains(got, timeout) ||
			!strings.Contains(got, deployment.TypeBuildComplete) {
			t.Errorf("%s: stream %s", pid, got)
		}
	}
}

// TestDeploymentTimeoutWrittenNotStored: a timeout appended but not stored is not written
// twice. The next FireDue's append is a duplicate and stores the state; or the handler,
// reading StepTimedOut from the stream, applies it.
func TestDeploymentTimeoutWrittenNotStored(t *testing.T) {
	b := newStoreBench(t)
	put := func(pid string) {
		p := deployment.Process{ProcessID: pid, WorkEffortID: "we-" + pid, State: deployment.StateTesting, Step: deployment.StepTest,
			CommandID: "cmd-" + pid, CommandType: deployment.TypeRunTests, Deadline: time.Now().Add(-time.Second), StartedAt: time.Now()}
		if err := b.e.Store.Update(t.Context(), deployment.Group, func(tx *store.Tx) error { return deployment.PutProcess(tx, &p) }); err != nil {
			t.Fatal(err)
		}
	}
	cfg := deployment.Config{StepTimeout: time.Minute, PollInterval: time.Hour}
	crashing := b.manager(t, reactortest.LostAnswer{A: b.cl}, cfg)

	t.Run("the next poll stores it", func(t *testing.T) {
		put("p-poll")
		if _, err := crashing.FireDue(t.Context()); err == nil {
			t.Fatal("FireDue succeeded though the append's answer was lost")
		}
		if p := state(t, b.e, "p-poll"); p.State != deployment.StateTesting {
			t.Fatalf("state %s stored though the answer was lost", p.State)
		}
		fired, err := b.manager(t, b.cl, cfg).FireDue(t.Context())
		if err != nil || fired != 1 {
			t.Fatalf("fired %d, %v", fired, err)
		}
		evs := b.stream(t, "p-poll", 2)
		checkStream(t, "p-poll", evs)
		if got := strings.Join(types(evs), ","); got != deployment.TypeStepTimedOut+","+deployment.TypeProcessFailed {
			t.Errorf("stream %s", got)
		}
		if p := state(t, b.e, "p-poll"); p.State != deployment.StateTimedOut {
			t.Errorf("state %s", p.State)
		}
	})
	t.Run("the handler applies it from the stream", func(t *testing.T) {
		put("p-handler")
		if _, err := crashing.FireDue(t.Context()); err == nil {
			t.Fatal("FireDue succeeded though the append's answer was lost")
		}
		// The manager's own polls lose their answers too: only the handler can store it.
		b.run(t, b.manager(t, reactortest.LostAnswer{A: b.cl}, cfg))
		waitFor(t, "p-handler timed out", func() bool { return state(t, b.e, "p-handler").State == deployment.StateTimedOut })
		b.e.Stable(t, 300*time.Millisecond, reactortest.DeploymentRaw)
		evs := b.stream(t, "p-handler", 2)
		checkStream(t, "p-handler", evs)
		if len(evs) != 2 {
			t.Errorf("stream %v", types(evs))
		}
	})
}
