package githubsaga_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

// childEnv is set when the test binary runs as the saga process of TestGitHubSagaSIGKILL.
const childEnv = "PYRITE_SAGA_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := runChild(); err != nil {
			fmt.Fprintln(os.Stderr, "saga child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild runs the saga as a program would, from the environment, until SIGTERM.
func runChild() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	brokers := strings.Split(os.Getenv("CHILD_BROKERS"), ",")
	w, err := domain.Wire(stacktest.Modules())
	if err != nil {
		return err
	}
	topo, err := topology.New(topology.Dev, w.Topology()...)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, os.Getenv("CHILD_STORE"))
	if err != nil {
		return err
	}
	defer st.Close()
	local, err := schemas.All()
	if err != nil {
		return err
	}
	cdc := codec.Dial(os.Getenv("CHILD_REGISTRY"))
	dec, err := bus.NewCodecDecoder(cdc, topo, local)
	if err != nil {
		return err
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer prod.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	d := reactor.Deps{Store: st, Topology: topo, Decoder: dec, Emitter: reactor.NewEmitter(cdc, topo, "pyrite.test"),
		Producer: prod, Logger: log, KafkaOpts: []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.InstanceID("saga-child"),
			kgo.FetchMaxWait(50 * time.Millisecond), kgo.AutoCommitInterval(100 * time.Millisecond)}}
	if u := os.Getenv("CHILD_EVENTSTORE"); u != "" {
		cl, err := eventstore.NewClient(eventstore.ClientConfig{URL: u, Backoff: 20 * time.Millisecond}, nil)
		if err != nil {
			return err
		}
		d.Appender = cl
	}
	s, err := githubsaga.New(githubsaga.Config{BaseURL: os.Getenv("CHILD_GITHUB"), Token: token, Repository: owner + "/" + repo,
		Attempts: 3, Backoff: 10 * time.Millisecond, Timeout: 30 * time.Second,
		SweepInterval: 50 * time.Millisecond, SweepAge: 200 * time.Millisecond}, d)
	if err != nil {
		return err
	}
	return s.Run(ctx, []string{reactortest.WorkEffortEvents}, reactortest.FastRetry(0))
}

type child struct {
	cmd  *exec.Cmd
	done chan error
	logs *strings.Builder
}

// startChild runs the saga process; env adds to its environment (CHILD_EVENTSTORE=<ingest
// URL>: it appends through the event store).
func startChild(t *testing.T, e *reactortest.Env, f *fakeGitHub, env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), childEnv+"=1", "CHILD_BROKERS="+strings.Join(e.Brokers, ","),
		"CHILD_REGISTRY="+e.RegistryURL, "CHILD_STORE="+e.StoreURL, "CHILD_GITHUB="+f.srv.URL+"/"), env...)
	c := &child{cmd: cmd, done: make(chan error, 1), logs: &strings.Builder{}}
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-c.done; t.Failed() {
			t.Logf("saga process (%v):\n%s", err, c.logs.String())
		}
		c.done <- nil
	})
	return c
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-c.done
	c.done <- err
}

func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Errorf("saga process exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("saga process did not stop on SIGTERM")
	}
}

// TestGitHubSagaSIGKILL runs the saga as a separate OS process and kills it with SIGKILL:
// first after GitHub created an issue but before the answer arrived (the saga's state says
// only that it meant to create one), then at an arbitrary moment of a burst. After the
// restarts every work effort has exactly one issue and one GitHubIssueCreated id.
func TestGitHubSagaSIGKILL(t *testing.T) {
	e := reactortest.New(t)
	f := newFakeGitHub(t)
	f.hang = "hang-me"
	var ids []string
	var recs []*kgo.Record
	add := func(from, to int) {
		recs = recs[:0]
		for i := from; i < to; i++ {
			id := fmt.Sprintf("we-%d", i)
			title := "T " + id
			if i == 3 {
				title = "hang-me"
			}
			ids = append(ids, id)
			recs = append(recs, started(e, t, id, title))
		}
		e.Produce(t, recs...)
	}
	add(0, 8)

	c := startChild(t, e, f)
	select {
	case <-f.hung:
	case <-time.After(30 * time.Second):
		t.Fatal("the saga never created we-3's issue")
	}
	c.kill(t)
	f.releaseHang()
	st, ok, err := githubsaga.LoadIssue(t.Context(), e.Store, "we-3")
	if err != nil || !ok || st.State != githubsaga.IssueCreating {
		t.Fatalf("we-3 after the kill: %+v (found %v, %v), want the intent only", st, ok, err)
	}
	if n := len(f.byWorkEffort("we-3")["we-3"]); n != 1 {
		t.Fatalf("%d issues for we-3 before the restart", n)
	}

	f.mu.Lock()
	f.delay = 3 * time.Millisecond
	f.mu.Unlock()
	add(8, 40)
	c = startChild(t, e, f)
	waitIssues(t, f, 20)
	c.kill(t)

	c = startChild(t, e, f)
	// Repeats (records whose delete a kill cut off, sent again by the sweep once SweepAge
	// old) count on raw too: wait for every work effort's event, then for the outbox to
	// drain, before asking raw to stay quiet.
	waitEffortsOnRaw(t, e, githubsaga.TypeIssueCreated, ids)
	waitOutboxEmpty(t, e, githubsaga.Group)
	e.Stable(t, 300*time.Millisecond, reactortest.WorkEffortRaw)
	c.stop(t)
	assertOneIssueEach(t, f, reactortest.OfType(e.Events(t, reactortest.WorkEffortRaw), githubsaga.TypeIssueCreated), ids)
	assertRepeatsExact(t, e.Consume(t, reactortest.WorkEffortRaw, int(e.Count(t, reactortest.WorkEffortRaw))))
}

// waitEffortsOnRaw waits until raw holds an event of typ for every work effort of ids.
func waitEffortsOnRaw(t *testing.T, e *reactortest.Env, typ string, ids []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		seen := map[string]bool{}
		for _, ev := range reactortest.OfType(e.Events(t, reactortest.WorkEffortRaw), typ) {
			seen[ev.AggregateID] = true
		}
		missing := 0
		for _, id := range ids {
			if !seen[id] {
				missing++
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d work efforts have no %s on raw", missing, len(ids), typ)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitOutboxEmpty waits until consumer's outbox holds no record.
func waitOutboxEmpty(t *testing.T, e *reactortest.Env, consumer string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs, err := e.Store.Outbox(t.Context(), consumer, store.OutboxFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records still in the %s outbox", len(recs), consumer)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertRepeatsExact checks the direct outbox path's promise: a record written to raw
// again after a crash is an exact repeat (key, value and every header, in order), which the
// upcaster's duplicate guard drops, so the events topic holds it once.
func assertRepeatsExact(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	first := map[string]*kgo.Record{}
	for _, r := range recs {
		id := reactortest.Header(r, bus.HeaderID)
		f, seen := first[id]
		if !seen {
			first[id] = r
			continue
		}
		if !bytes.Equal(f.Key, r.Key) || !bytes.Equal(f.Value, r.Value) || !slices.EqualFunc(f.Headers, r.Headers,
			func(a, b kgo.RecordHeader) bool { return a.Key == b.Key && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("ce_id %s at offsets %d and %d differs: the upcaster would upcast both", id, f.Offset, r.Offset)
		}
	}
}

// TestGitHubSagaSIGKILLThroughEventStore: the saga process appends through ingest's event
// store and is SIGKILLed in a burst, so some GitHubIssueCreated are written again after the
// restart (outbox records whose delete the kill cut off). Each work effort's stream still
// holds exactly one GitHubIssueCreated, at version 1: the repeat was a duplicate in the
// store, where the direct path writes a second record.
func TestGitHubSagaSIGKILLThroughEventStore(t *testing.T) {
	e := reactortest.New(t)
	url, _ := e.Ingest(t)
	f := newFakeGitHub(t)
	f.delay = 3 * time.Millisecond
	var ids []string
	var recs []*kgo.Record
	for i := range 30 {
		id := fmt.Sprintf("we-k%d", i)
		ids = append(ids, id)
		recs = append(recs, started(e, t, id, "T "+id))
	}
	e.Produce(t, recs...)
	c := startChild(t, e, f, "CHILD_EVENTSTORE="+url)
	waitIssues(t, f, 12)
	c.kill(t)
	c = startChild(t, e, f, "CHILD_EVENTSTORE="+url)
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for len(reactortest.Stream(t, url, "WorkEffort", id).Events) == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no GitHubIssueCreated in its stream", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // the sweeper's age: anything left would be written by now
	c.stop(t)
	issues := f.byWorkEffort(ids...)
	for _, id := range ids {
		st := reactortest.Stream(t, url, "WorkEffort", id)
		if len(st.Events) != 1 || st.Events[0].Type != githubsaga.TypeIssueCreated || st.Events[0].Version != 1 || len(issues[id]) != 1 {
			t.Errorf("%s: stream %+v, %d issues; want one GitHubIssueCreated at version 1 and one issue", id, st.Events, len(issues[id]))
		}
	}
}

// waitIssues waits until the fake GitHub holds at least n issues.
func waitIssues(t *testing.T, f *fakeGitHub, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for got, _ := f.count(); got < n; got, _ = f.count() {
		if time.Now().After(deadline) {
			t.Fatalf("%d issues before the deadline, want %d", got, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
