// Package reactortest is the test bench of reactors, sagas and process managers: the
// stacktest stack (kfake, registry, schemas) plus a store, the reactor.Deps that wire them,
// and helpers to run a group, read what it wrote and prove it wrote nothing more.
package reactortest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/schemas"
)

// Topics of the WorkEffort and Deployment aggregates.
const (
	WorkEffortEvents = "pyrite.work-effort.events"
	WorkEffortRaw    = "pyrite.work-effort.raw"
	DeploymentEvents = "pyrite.deployment.events"
	DeploymentRaw    = "pyrite.deployment.raw"
)

// Env is a running bench.
type Env struct {
	*stacktest.Stack
	StoreURL string
	Store    *store.Store
	Producer *kgo.Client
	Decoder  *bus.CodecDecoder
	Replays  *reactor.Replays
	Metrics  *reactor.Metrics
}

// New starts a stack and opens a SQLite store in a temporary directory.
func New(t testing.TB) *Env {
	t.Helper()
	s := stacktest.Start(t)
	return WithStack(t, s, "sqlite://"+filepath.Join(t.TempDir(), "reactors.db"))
}

// WithStack builds a bench on s with the store at storeURL.
func WithStack(t testing.TB, s *stacktest.Stack, storeURL string) *Env {
	t.Helper()
	st, err := store.Open(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	local, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := bus.NewCodecDecoder(s.Codec(), s.Topology, local)
	if err != nil {
		t.Fatal(err)
	}
	m, err := reactor.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Stack: s, StoreURL: storeURL, Store: st, Producer: prod, Decoder: dec,
		Replays: reactor.NewReplays(nil), Metrics: m}
}

// Deps returns the reactor dependencies of the bench; the runners poll fast.
func (e *Env) Deps() reactor.Deps {
	return reactor.Deps{
		Store: e.Store, Topology: e.Topology, Decoder: e.Decoder,
		Emitter:  reactor.NewEmitter(e.Codec(), e.Topology, "pyrite.test"),
		Producer: e.Producer, Replays: e.Replays, Metrics: e.Metrics,
		KafkaOpts: []kgo.Opt{kgo.SeedBrokers(e.Brokers...), kgo.FetchMaxWait(50 * time.Millisecond),
			kgo.AutoCommitInterval(100 * time.Millisecond)},
	}
}

// FastRetry retries quickly: attempts deliveries 20ms apart at first.
func FastRetry(attempts int) reactor.Retry {
	return reactor.Retry{MaxAttempts: attempts, Delay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
}

// Runner is anything with Run(ctx), e.g. *bus.Runner.
type Runner interface {
	Run(ctx context.Context) error
}

// Start runs fns (each until its context ends) and returns a stop function that cancels
// them and waits for them to return (also called when the test ends). A run that returns
// an error other than by cancellation fails the test.
func Start(t testing.TB, fns ...func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { done <- fn(ctx) }()
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range fns {
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("a run did not stop within 30s")
				return
			}
		}
	}
	t.Cleanup(stop)
	return stop
}

// StartReplays runs e.Replays and waits until it read pyrite.replays.
func (e *Env) StartReplays(t testing.TB) {
	t.Helper()
	e.Replays.Idle = 200 * time.Millisecond
	Start(t, func(ctx context.Context) error { return e.Replays.Run(ctx, kgo.SeedBrokers(e.Brokers...)) })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.Replays.Wait(ctx); err != nil {
		t.Fatalf("replays not read: %v", err)
	}
}

// Count returns how many records topic holds (sum of end offsets).
func (e *Env) Count(t testing.TB, topic string) int64 {
	t.Helper()
	return e.EndOffsets(t, topic)[topic]
}

// WaitCount waits until topic holds at least n records.
func (e *Env) WaitCount(t testing.TB, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := e.Count(t, topic)
		if c >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d records, want %d", topic, c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Events decodes every record topic holds.
func (e *Env) Events(t testing.TB, topic string) []*bus.Event {
	t.Helper()
	n := e.Count(t, topic)
	if n == 0 {
		return nil
	}
	recs := e.Consume(t, topic, int(n))
	out := make([]*bus.Event, 0, len(recs))
	for _, r := range recs {
		out = append(out, e.Decode(t, r))
	}
	return out
}

// Decode decodes one record as the runners do.
func (e *Env) Decode(t testing.TB, r *kgo.Record) *bus.Event {
	t.Helper()
	ev, err := e.Decoder.Decode(context.Background(), r)
	if err != nil {
		t.Fatalf("decode %s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
	}
	ev.Origin = &bus.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Headers: r.Headers, Timestamp: r.Timestamp}
	return ev
}

// OfType returns the events of type typ.
func OfType(evs []*bus.Event, typ string) []*bus.Event {
	var out []*bus.Event
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// Forward copies the records of the raw topic from, from offset 0 of each partition on, to
// the events topic to (same key, value, headers and partition), as the upcaster would for
// records already at the newest version; it keeps going until ctx ends. Tests use it to close
// the loop from emitted events back to consumers.
func (e *Env) Forward(ctx context.Context, from, to string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...), kgo.ConsumeTopics(from),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, &kgo.Record{Topic: to, Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers})
		})
		if len(out) > 0 {
			if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil && ctx.Err() == nil {
				return err
			}
		}
	}
}

// Stable waits quiet and fails the test if any of topics got records meanwhile: the
// components wrote nothing more than what the test saw.
func (e *Env) Stable(t testing.TB, quiet time.Duration, topics ...string) {
	t.Helper()
	before := e.EndOffsets(t, topics...)
	time.Sleep(quiet)
	after := e.EndOffsets(t, topics...)
	for _, tp := range topics {
		if after[tp] != before[tp] {
			t.Errorf("%s grew from %d to %d records while it should have been quiet", tp, before[tp], after[tp])
		}
	}
}

// DLQ returns the records of group's dead-letter topic, waiting until there are at least n.
func (e *Env) DLQ(t testing.TB, group string, n int) []*kgo.Record {
	t.Helper()
	topic := "pyrite." + group + ".dlq"
	e.WaitCount(t, topic, int64(n))
	return e.Consume(t, topic, n)
}

// Header returns the value of header key of r.
func Header(r *kgo.Record, key string) string { return reactor.HeaderValue(r.Headers, key) }

// CommittedOffsets returns group's committed offsets of topic, by partition.
func (e *Env) CommittedOffsets(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := e.Admin.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

// IDs returns the ce_ids of evs.
func IDs(evs []*bus.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// Unique reports the first repeated string of ss, "" when none repeats.
func Unique(ss []string) string {
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

// Join is strings.Join for messages.
func Join(ss []string) string { return strings.Join(ss, ",") }

// Rewind moves group's committed offsets of topic back to 0, as a crash that lost the
// commits would (the group must have no members; retried until it has none).
func (e *Env) Rewind(t testing.TB, group, topic string) {
	t.Helper()
	os := kadm.Offsets{}
	for p := range e.Topology.Settings().Partitions {
		os.AddOffset(topic, p, 0, -1)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := e.Admin.CommitOffsets(ctx, group, os)
		cancel()
		if err == nil {
			err = resp.Error()
		}
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rewind %s: %v", group, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitCommitted waits until group committed the end of every partition of topic.
func (e *Env) WaitCommitted(t testing.TB, group, topic string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sum int64
		for _, o := range e.CommittedOffsets(t, group, topic) {
			sum += o
		}
		end := e.Count(t, topic)
		if sum >= end {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s committed %d of the %d records of %s", group, sum, end, topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ForgetPositions deletes the positions the store holds for name (SQLite stores only), so
// that a Stateful handler starts again from the group's committed offsets.
func (e *Env) ForgetPositions(t testing.TB, name string) {
	t.Helper()
	path, ok := strings.CutPrefix(e.StoreURL, "sqlite://")
	if !ok {
		t.Fatalf("ForgetPositions needs a sqlite:// store, not %s", e.StoreURL)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DELETE FROM projection_positions WHERE projection = $1", name); err != nil {
		t.Fatal(err)
	}
}

// Ingest runs ingest (ingest.Run, its event store included) on the bench's stack until the
// test ends, waits until it is ready, and returns its URL and a client of its append
// route: the Appender of Deps when the writers go through the event store.
func (e *Env) Ingest(t testing.TB) (string, *eventstore.Client) {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ln, ingest.Options{Chain: e.Chain,
			Brokers: e.Brokers, Registry: e.RegistryURL, Topology: e.Topology, Metrics: prometheus.NewRegistry(),
			Drain: 5 * time.Second, Store: ingest.StoreOptions{Group: "reactortest-ingest-" + strings.ReplaceAll(t.Name(), "/", "-"),
				SessionTimeout: 6 * time.Second},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest.Run: %v", err)
		}
	})
	deadline := time.Now().Add(45 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest at %s never ready: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cl, err := eventstore.NewClient(eventstore.ClientConfig{URL: url, Backoff: 20 * time.Millisecond}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return url, cl
}

// Stream reads an aggregate's stream from the ingest at url (GET /v1/streams/{id}).
func Stream(t testing.TB, url, aggregateType, id string) ingest.StreamAnswer {
	t.Helper()
	resp, err := http.Get(url + "/v1/streams/" + id + "?aggregateType=" + aggregateType)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st ingest.StreamAnswer
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stream %s: %s, %v", id, resp.Status, err)
	}
	return st
}

// LostAnswer is an Appender that appends through A, then fails: the events are written but
// the caller never hears (a crash, or a connection lost between the write and the answer).
type LostAnswer struct{ A reactor.Appender }

// Append appends through A and returns an error whatever happened.
func (l LostAnswer) Append(ctx context.Context, evs []eventstore.Pending) ([]eventstore.Appended, error) {
	if _, err := l.A.Append(ctx, evs); err != nil {
		return nil, err
	}
	return nil, errors.New("connection reset before the answer")
}
