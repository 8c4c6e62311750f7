package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

const (
	srcTopic   = "pyrite.work-effort.events"
	retryTopic = "pyrite.test.retry"
	queueTopic = "pyrite.test.queue"
	dlqTopic   = "pyrite.test.dlq"
	group      = "test"
	partitions = 3
)

// testDecoder reads the test records: headers as CloudEvents, the value as Data["value"];
// the value "undecodable" fails permanently.
type testDecoder struct{}

func (testDecoder) Decode(_ context.Context, rec *kgo.Record) (*bus.Event, error) {
	if string(rec.Value) == "undecodable" {
		return nil, bus.Permanent(errors.New("cannot decode"))
	}
	ev := &bus.Event{Data: map[string]any{"value": string(rec.Value)}, AggregateID: string(rec.Key)}
	if err := ev.ApplyHeaders(rec.Headers); err != nil {
		return nil, bus.Permanent(err)
	}
	return ev, nil
}

type kafka struct {
	t     *testing.T
	addrs []string
	cl    *kgo.Client // producer with manual partitioning
	adm   *kadm.Client
}

func newKafka(t *testing.T) *kafka {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, srcTopic, retryTopic, queueTopic, dlqTopic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &kafka{t: t, addrs: c.ListenAddrs(), cl: cl, adm: kadm.NewClient(cl)}
}

// produce writes one event per value to a partition, keyed key, with ce_type typ and ce_id
// "<key>-<value>".
func (k *kafka) produce(partition int32, key, typ string, values ...string) {
	k.t.Helper()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{
			Topic: srcTopic, Partition: partition, Key: []byte(key), Value: []byte(v),
			Headers: hdrs("ce_specversion", "1.0", "ce_type", typ, "ce_id", key+"-"+v),
		})
	}
	if err := k.cl.ProduceSync(k.t.Context(), recs...).FirstErr(); err != nil {
		k.t.Fatal(err)
	}
}

// read returns every record of topic, waiting until there are at least n (and a little
// longer, to catch extras).
func (k *kafka) read(topic string, n int) []*kgo.Record {
	k.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.addrs...), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		k.t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	deadline := time.Now().Add(15 * time.Second)
	settle := time.Time{}
	for time.Now().Before(deadline) {
		if len(out) >= n {
			if settle.IsZero() {
				settle = time.Now().Add(300 * time.Millisecond)
			} else if time.Now().After(settle) {
				break
			}
		}
		ctx, cancel := context.WithTimeout(k.t.Context(), 100*time.Millisecond)
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
		cancel()
	}
	if len(out) < n {
		k.t.Fatalf("%s has %d records, want %d", topic, len(out), n)
	}
	return out
}

// committed returns the group's committed offsets of the source topic (-1: none).
func (k *kafka) committed() map[int32]int64 {
	k.t.Helper()
	resp, err := k.adm.FetchOffsets(k.t.Context(), group)
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[int32]int64{}
	for p := range int32(partitions) {
		out[p] = -1
		if o, ok := resp.Lookup(srcTopic, p); ok {
			out[p] = o.At
		}
	}
	return out
}

// start runs a Runner with cfg (test defaults filled in) until the test ends or stop is
// called; stop returns Run's error.
func (k *kafka) start(cfg bus.RunnerConfig) (stop func() error) {
	k.t.Helper()
	cfg.Group = cmpOr(cfg.Group, group)
	if cfg.Topics == nil {
		cfg.Topics = []string{srcTopic}
	}
	cfg.DLQTopic = cmpOr(cfg.DLQTopic, dlqTopic)
	if cfg.Decoder == nil {
		cfg.Decoder = testDecoder{}
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 20 * time.Millisecond
	}
	r, err := bus.NewRunner(cfg,
		kgo.SeedBrokers(k.addrs...),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.HeartbeatInterval(100*time.Millisecond),
		kgo.AutoCommitInterval(100*time.Millisecond),
	)
	if err != nil {
		k.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				runErr = errors.New("Run did not return within 20s of cancel")
			}
		})
		return runErr
	}
	k.t.Cleanup(func() {
		if err := stop(); err != nil {
			k.t.Errorf("Run: %v", err)
		}
	})
	return stop
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// waitFor polls cond until it holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder is a concurrency-safe log of handler calls.
type recorder struct {
	mu     sync.Mutex
	events []*bus.Event
}

func (r *recorder) add(ev *bus.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) all() []*bus.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) values() []string {
	var out []string
	for _, ev := range r.all() {
		out = append(out, ev.Data["value"].(string))
	}
	return out
}

func headerMap(hs []kgo.RecordHeader) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

func seq(prefix string, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

func TestRunnerKeepsOrderPerPartitionAndCommits(t *testing.T) {
	k := newKafka(t)
	for p := range int32(partitions) {
		k.produce(p, "we-"+strconv.Itoa(int(p)), "WorkEffort:ProgressUpdated", seq(fmt.Sprintf("p%d-", p), 40)...)
	}
	b := bus.New()
	var rec recorder
	on(t, b, "WorkEffort:*", func(_ context.Context, ev *bus.Event) error { rec.add(ev); return nil }, bus.Options{Name: "projector"})
	stop := k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic})
	waitFor(t, "120 events", func() bool { return rec.len() >= 120 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byPartition := map[int32][]string{}
	for _, ev := range rec.all() {
		o := ev.Origin
		if o == nil || o.Topic != srcTopic || o.Attempt != 1 || string(o.Key) != ev.AggregateID ||
			ev.ID != ev.AggregateID+"-"+ev.Data["value"].(string) {
			t.Fatalf("event %+v origin %+v", ev, o)
		}
		if want := int64(len(byPartition[o.Partition])); o.Offset != want {
			t.Fatalf("partition %d: offset %d delivered in position %d", o.Partition, o.Offset, want)
		}
		byPartition[o.Partition] = append(byPartition[o.Partition], ev.Data["value"].(string))
	}
	for p := range int32(partitions) {
		if want := seq(fmt.Sprintf("p%d-", p), 40); !slices.Equal(byPartition[p], want) {
			t.Fatalf("partition %d delivered %v, want %v", p, byPartition[p], want)
		}
	}
	if got, want := k.committed(), map[int32]int64{0: 40, 1: 40, 2: 40}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
}

func TestRunnerDeadLetters(t *testing.T) {
	poison := "poison"
	tests := []struct {
		name        string
		cfg         bus.RunnerConfig
		handler     func(calls int) error // for the poison record
		middleware  bus.Middleware
		value       string
		wantReason  string
		wantAttempt string
		wantHandler string
		wantCalls   int
		// The poison record's dead letter holds its key (a Bus with a RetryTopic): "after",
		// of the same key, is dead-lettered behind it (reason parked), not delivered.
		holdsKey bool
	}{
		{
			name: "permanent failure", handler: func(int) error { return bus.Permanent(errors.New("bad data")) },
			value: poison, wantReason: bus.ReasonPermanent, wantAttempt: "1", wantHandler: "h", wantCalls: 1,
		},
		{
			name:    "transient failure until attempts run out",
			cfg:     bus.RunnerConfig{RetryTopic: retryTopic, MaxAttempts: 3},
			handler: func(int) error { return errors.New("always down") },
			value:   poison, wantReason: bus.ReasonExhausted, wantAttempt: "3", wantHandler: "h", wantCalls: 3,
			holdsKey: true,
		},
		{
			name:    "transient failure without a retry topic",
			handler: func(int) error { return errors.New("down") },
			value:   poison, wantReason: bus.ReasonExhausted, wantAttempt: "1", wantHandler: "h", wantCalls: 1,
		},
		{
			name: "undecodable", handler: func(int) error { return nil },
			value: "undecodable", wantReason: bus.ReasonDecode, wantAttempt: "1", wantCalls: 0,
		},
		{
			name: "rejected by middleware", handler: func(int) error { return nil },
			middleware: bus.Validation(func(ev *bus.Event) error {
				return errorIf(ev.Data["value"] == poison, "poison is not allowed")
			}),
			value: poison, wantReason: bus.ReasonRejected, wantAttempt: "1", wantCalls: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKafka(t)
			k.produce(1, "we-1", "WorkEffort:Started", "before", tc.value, "after")
			b := bus.New()
			if tc.middleware != nil {
				b.Use(tc.middleware)
			}
			var rec recorder
			var mu sync.Mutex
			calls := 0
			on(t, b, "WorkEffort:*", func(_ context.Context, ev *bus.Event) error {
				if ev.Data["value"] == tc.value {
					mu.Lock()
					calls++
					n := calls
					mu.Unlock()
					return tc.handler(n)
				}
				rec.add(ev)
				return nil
			}, bus.Options{Name: "h"})
			reg := prometheus.NewRegistry()
			m, err := bus.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			cfg := tc.cfg
			cfg.Bus, cfg.Metrics = b, m
			stop := k.start(cfg)

			wantDead, wantDelivered := 1, []string{"before", "after"}
			if tc.holdsKey {
				wantDead, wantDelivered = 2, []string{"before"}
			}
			dead := k.read(dlqTopic, wantDead)
			if len(dead) != wantDead {
				t.Fatalf("%d dead letters, want %d", len(dead), wantDead)
			}
			waitFor(t, "the record after the poison one", func() bool { return rec.len() == len(wantDelivered) })
			if tc.holdsKey {
				h := headerMap(dead[1].Headers)
				if string(dead[1].Value) != "after" || h[bus.HeaderDLQReason] != bus.ReasonParked || h[bus.HeaderDLQHoldsKey] != "true" {
					t.Errorf("second dead letter %s %v, want after, parked, holding the key", dead[1].Value, h)
				}
				if headerMap(dead[0].Headers)[bus.HeaderDLQHoldsKey] != "true" {
					t.Errorf("the poison dead letter does not hold its key")
				}
				waitFor(t, "committed", func() bool { return k.committed()[1] == 3 })
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := rec.values(); !slices.Equal(got, wantDelivered) {
				t.Fatalf("delivered %v, want %v", got, wantDelivered)
			}
			if calls != tc.wantCalls {
				t.Fatalf("poison handler called %d times, want %d", calls, tc.wantCalls)
			}
			d := dead[0]
			h := headerMap(d.Headers)
			want := map[string]string{
				bus.HeaderDLQReason: tc.wantReason, bus.HeaderDLQAttempts: tc.wantAttempt,
				bus.HeaderDLQHandler: tc.wantHandler, bus.HeaderDLQGroup: group,
				bus.HeaderOriginTopic: srcTopic, bus.HeaderOriginPartition: "1", bus.HeaderOriginOffset: "1",
				"ce_id": "we-1-" + tc.value, "ce_type": "WorkEffort:Started",
			}
			for key, v := range want {
				if h[key] != v {
					t.Errorf("dead letter header %s = %q, want %q", key, h[key], v)
				}
			}
			if h[bus.HeaderDLQError] == "" || h[bus.HeaderDLQTime] == "" {
				t.Errorf("dead letter lacks error or time: %v", h)
			}
			for key := range h {
				if key == bus.HeaderRetryAttempt || key == bus.HeaderRetryHandlers {
					t.Errorf("dead letter carries retry header %s", key)
				}
			}
			if string(d.Key) != "we-1" || string(d.Value) != tc.value {
				t.Errorf("dead letter key %q value %q", d.Key, d.Value)
			}
			if got := k.committed()[1]; got != 3 {
				t.Errorf("committed offset %d, want 3", got)
			}
			if got := metricValue(t, reg, "pyrite_runner_dlq_total", map[string]string{"group": group, "reason": tc.wantReason}); got != 1 {
				t.Errorf("pyrite_runner_dlq_total = %v", got)
			}
			if got := metricValue(t, reg, "pyrite_runner_records_total", map[string]string{"group": group, "topic": srcTopic, "outcome": "ok"}); got != float64(len(wantDelivered)) {
				t.Errorf("pyrite_runner_records_total ok = %v", got)
			}
			if got := metricValue(t, reg, "pyrite_runner_lag", map[string]string{"group": group, "topic": srcTopic, "partition": "1"}); got != 0 {
				t.Errorf("pyrite_runner_lag = %v after stop (want the series dropped)", got)
			}
		})
	}
}

func TestRunnerRetrySucceeds(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "we-0", "WorkEffort:Completed", "flaky", "next")
	b := bus.New()
	var flaky, steady recorder
	var times []time.Time
	on(t, b, "WorkEffort:Completed", func(_ context.Context, ev *bus.Event) error {
		if ev.Data["value"] != "flaky" {
			return nil
		}
		flaky.add(ev)
		times = append(times, time.Now())
		if flaky.len() < 3 {
			return errors.New("webhook endpoint down")
		}
		return nil
	}, bus.Options{Name: "webhook"})
	on(t, b, "*", func(_ context.Context, ev *bus.Event) error { steady.add(ev); return nil }, bus.Options{Name: "audit"})
	const delay = 150 * time.Millisecond
	stop := k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, RetryDelay: delay, MaxAttempts: 5})
	waitFor(t, "third delivery", func() bool { return flaky.len() == 3 })
	waitFor(t, "next delivered", func() bool { return steady.len() == 2 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i, ev := range flaky.all() {
		if ev.Origin.Attempt != i+1 || ev.Origin.Topic != srcTopic || ev.Origin.Offset != 0 || ev.ID != "we-0-flaky" {
			t.Fatalf("delivery %d: origin %+v id %s", i+1, ev.Origin, ev.ID)
		}
	}
	if gap := times[1].Sub(times[0]); gap < delay {
		t.Fatalf("first redelivery after %v, want at least %v", gap, delay)
	}
	if gap := times[2].Sub(times[1]); gap < 2*delay {
		t.Fatalf("second redelivery after %v, want at least %v", gap, 2*delay)
	}
	// Only the failing handler got the redeliveries; "next", of the same key, waited for
	// them (the key was parked) and then went to every handler.
	if got := steady.values(); !slices.Equal(got, []string{"flaky", "next"}) {
		t.Fatalf("audit handler saw %v", got)
	}
	if got := steady.all()[1].Origin.Attempt; got != 1 {
		t.Fatalf("next delivered as attempt %d", got)
	}
	// Retries of a source record wait in the worker, not in the retry topic.
	if n := len(k.read(retryTopic, 0)); n != 0 {
		t.Fatalf("%d retry records, want none", n)
	}
	if n := len(k.read(dlqTopic, 0)); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
}

func TestRunnerAsyncHandlersRunFromQueue(t *testing.T) {
	k := newKafka(t)
	k.produce(2, "we-2", "WorkEffort:Completed", "done")
	b := bus.New()
	var email, sync recorder
	on(t, b, "WorkEffort:Completed", func(_ context.Context, ev *bus.Event) error {
		email.add(ev)
		if email.len() == 1 {
			return errors.New("smtp down")
		}
		return nil
	}, bus.Options{Name: "email", Async: true})
	on(t, b, "WorkEffort:Completed", func(_ context.Context, ev *bus.Event) error { sync.add(ev); return nil }, bus.Options{Name: "projector"})
	k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, QueueTopic: queueTopic})
	waitFor(t, "the async handler's retry", func() bool { return email.len() == 2 })
	queued := k.read(queueTopic, 1)
	h := headerMap(queued[0].Headers)
	if len(queued) != 1 || h[bus.HeaderRetryAttempt] != "0" || h[bus.HeaderRetryHandlers] != "email" || h[bus.HeaderOriginOffset] != "0" {
		t.Fatalf("queue holds %d records, first with headers %v", len(queued), h)
	}
	retried := k.read(retryTopic, 1)
	if h := headerMap(retried[0].Headers); len(retried) != 1 || h[bus.HeaderRetryAttempt] != "1" || h[bus.HeaderRetryHandlers] != "email" {
		t.Fatalf("retry topic holds %d records, first with headers %v", len(retried), h)
	}
	if got := email.all(); got[0].Origin.Attempt != 1 || got[1].Origin.Attempt != 2 || got[1].Origin.Topic != srcTopic {
		t.Fatalf("async deliveries %+v %+v", got[0].Origin, got[1].Origin)
	}
	if sync.len() != 1 {
		t.Fatalf("sync handler ran %d times", sync.len())
	}
}

func TestRunnerCommitsOnlyAfterHandlers(t *testing.T) {
	tests := []struct {
		name string
		// honorCtx: the blocked handler returns when its context ends; otherwise it
		// finishes when released, within the grace period.
		honorCtx      bool
		wantCommitted int64
	}{
		{"handler canceled by shutdown", true, 2},
		{"handler finishes within grace", false, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := newKafka(t)
			k.produce(0, "we-0", "WorkEffort:Started", "a", "b", "block", "d")
			b := bus.New()
			entered := make(chan struct{})
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })
			var done recorder
			on(t, b, "*", func(ctx context.Context, ev *bus.Event) error {
				if ev.Data["value"] == "block" {
					close(entered)
					if tc.honorCtx {
						<-ctx.Done()
						return ctx.Err()
					}
					<-release
				}
				done.add(ev)
				return nil
			}, bus.Options{})
			grace := 300 * time.Millisecond
			if !tc.honorCtx {
				grace = 10 * time.Second
			}
			stop := k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, HandlerGrace: grace})
			<-entered
			waitFor(t, "the records before the blocked one to be committed", func() bool { return k.committed()[0] == 2 })
			stopped := make(chan error, 1)
			go func() { stopped <- stop() }()
			if !tc.honorCtx {
				select {
				case err := <-stopped:
					t.Fatalf("Run returned (%v) while a handler was in flight", err)
				case <-time.After(200 * time.Millisecond):
				}
				if got := k.committed()[0]; got != 2 {
					t.Fatalf("committed %d while the handler of offset 2 runs", got)
				}
				releaseOnce.Do(func() { close(release) })
			}
			if err := <-stopped; err != nil {
				t.Fatal(err)
			}
			if got := k.committed()[0]; got != tc.wantCommitted {
				t.Fatalf("committed %d, want %d", got, tc.wantCommitted)
			}
			if got := done.values(); slices.Contains(got, "d") {
				t.Fatalf("record after the one in hand was handled during shutdown: %v", got)
			}
		})
	}
}

// Two members share the group: partitions move from the first to the second while records
// flow, and every record is handled exactly once.
func TestRunnerRebalanceLosesAndDuplicatesNothing(t *testing.T) {
	k := newKafka(t)
	const perPartition = 150
	for p := range int32(partitions) {
		k.produce(p, "we-"+strconv.Itoa(int(p)), "WorkEffort:ProgressUpdated", seq(fmt.Sprintf("p%d-", p), perPartition)...)
	}
	var mu sync.Mutex
	seen := map[string][]string{} // value -> members that handled it
	member := func(name string) *bus.Bus {
		b := bus.New()
		on(t, b, "*", func(_ context.Context, ev *bus.Event) error {
			time.Sleep(2 * time.Millisecond) // slow enough that the second member joins mid-stream
			mu.Lock()
			seen[ev.Data["value"].(string)] = append(seen[ev.Data["value"].(string)], name)
			mu.Unlock()
			return nil
		}, bus.Options{})
		return b
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	k.start(bus.RunnerConfig{Bus: member("A"), RetryTopic: retryTopic})
	waitFor(t, "member A to start", func() bool { return count() >= 30 })
	k.start(bus.RunnerConfig{Bus: member("B"), RetryTopic: retryTopic})
	waitFor(t, "every record", func() bool { return count() == partitions*perPartition })
	time.Sleep(300 * time.Millisecond) // room for duplicates to show up
	mu.Lock()
	defer mu.Unlock()
	byMember := map[string]int{}
	for v, ms := range seen {
		if len(ms) != 1 {
			t.Errorf("%s handled %d times (by %v)", v, len(ms), ms)
		}
		byMember[ms[0]]++
	}
	if byMember["A"] == 0 || byMember["B"] == 0 {
		t.Fatalf("records per member %v: the rebalance did not move partitions", byMember)
	}
}

// A revoke waits for the record in hand: the new owner starts after it, not with it.
func TestRunnerRevokeWaitsForInFlightHandler(t *testing.T) {
	k := newKafka(t)
	for p := range int32(partitions) {
		k.produce(p, "we-"+strconv.Itoa(int(p)), "WorkEffort:Started", fmt.Sprintf("p%d-first", p), fmt.Sprintf("p%d-second", p))
	}
	release := make(chan struct{})
	var inFlight sync.WaitGroup
	inFlight.Add(partitions)
	var mu sync.Mutex
	seen := map[string][]string{}
	handle := func(name string, block bool) bus.Handler {
		return func(_ context.Context, ev *bus.Event) error {
			v := ev.Data["value"].(string)
			if block && len(v) > 6 && v[3:] == "first" {
				inFlight.Done()
				<-release
			}
			mu.Lock()
			seen[v] = append(seen[v], name)
			mu.Unlock()
			return nil
		}
	}
	a, b := bus.New(), bus.New()
	on(t, a, "*", handle("A", true), bus.Options{})
	on(t, b, "*", handle("B", false), bus.Options{})
	k.start(bus.RunnerConfig{Bus: a, RetryTopic: retryTopic})
	inFlight.Wait() // A holds the first record of every partition
	k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic})
	waitFor(t, "B to join the group", func() bool {
		gs, err := k.adm.DescribeGroups(t.Context(), group)
		return err == nil && len(gs[group].Members) == 2
	})
	time.Sleep(300 * time.Millisecond) // the rebalance now waits for A's revoke, which waits for A's handlers
	mu.Lock()
	early := len(seen)
	mu.Unlock()
	if early != 0 {
		t.Fatalf("records handled while A's revoke should be blocked: %v", seen)
	}
	close(release)
	waitFor(t, "every record", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) == 2*partitions
	})
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for v, ms := range seen {
		if len(ms) != 1 {
			t.Errorf("%s handled by %v", v, ms)
		}
		if v[3:] == "first" && ms[0] != "A" {
			t.Errorf("%s, in A's hands at the revoke, was handled by %v", v, ms)
		}
	}
}

func TestRunnerBatch(t *testing.T) {
	k := newKafka(t)
	values := seq("v", 30)
	values[13] = "poison"
	values[20] = "undecodable"
	k.produce(0, "we-0", "WorkEffort:ProgressUpdated", values...)
	var mu sync.Mutex
	var applied []string
	var batches []int
	transientOnce := true
	handler := func(_ context.Context, evs []*bus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			if ev.Data["value"] == "poison" {
				return bus.Permanent(errors.New("violates a constraint"))
			}
		}
		if transientOnce {
			transientOnce = false
			return errors.New("database busy")
		}
		batches = append(batches, len(evs))
		for _, ev := range evs {
			applied = append(applied, ev.Data["value"].(string))
		}
		return nil
	}
	k.start(bus.RunnerConfig{Batch: handler, BatchSize: 8, BatchWait: 20 * time.Millisecond})
	dead := k.read(dlqTopic, 2)
	waitFor(t, "28 applied events", func() bool { mu.Lock(); defer mu.Unlock(); return len(applied) == 28 })
	waitFor(t, "the commit", func() bool { return k.committed()[0] == 30 })
	mu.Lock()
	defer mu.Unlock()
	want := slices.DeleteFunc(slices.Clone(values), func(v string) bool { return v == "poison" || v == "undecodable" })
	if !slices.Equal(applied, want) {
		t.Fatalf("applied %v\nwant %v", applied, want)
	}
	for _, n := range batches {
		if n > 8 {
			t.Fatalf("batch of %d events, max 8", n)
		}
	}
	reasons := []string{}
	for _, d := range dead {
		h := headerMap(d.Headers)
		reasons = append(reasons, h[bus.HeaderDLQReason]+":"+string(d.Value)+":"+h[bus.HeaderDLQHandler])
	}
	if want := []string{"permanent:poison:batch", "decode:undecodable:"}; !slices.Equal(reasons, want) {
		t.Fatalf("dead letters %v, want %v", reasons, want)
	}
}

func TestRunnerPositions(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "we-0", "WorkEffort:Started", seq("a", 10)...)
	k.produce(1, "we-1", "WorkEffort:Started", seq("b", 3)...)
	var mu sync.Mutex
	var got []string
	var asked []string
	k.start(bus.RunnerConfig{
		Batch: func(_ context.Context, evs []*bus.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				got = append(got, ev.Data["value"].(string))
			}
			return nil
		},
		Positions: func(_ context.Context, topic string, p int32) (int64, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, fmt.Sprintf("%s[%d]", topic, p))
			return 7, p == 0, nil
		},
	})
	waitFor(t, "6 events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 6 })
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(got)
	if want := []string{"a007", "a008", "a009", "b000", "b001", "b002"}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v", got, want)
	}
	slices.Sort(asked)
	if want := []string{srcTopic + "[0]", srcTopic + "[1]", srcTopic + "[2]"}; !slices.Equal(asked, want) {
		t.Fatalf("positions asked for %v", asked)
	}
}

func TestRunnerConfigValidate(t *testing.T) {
	ok := bus.RunnerConfig{Group: "g", Topics: []string{"t"}, DLQTopic: "d", Decoder: testDecoder{}, Bus: bus.New()}
	tests := []struct {
		name   string
		change func(*bus.RunnerConfig)
		want   []string
	}{
		{"valid", func(*bus.RunnerConfig) {}, nil},
		{"empty", func(c *bus.RunnerConfig) { *c = bus.RunnerConfig{} },
			[]string{"Group", "Topics is empty", "DLQTopic is empty", "Decoder", "exactly one of Bus and Batch"}},
		{"both handlers", func(c *bus.RunnerConfig) { c.Batch = func(context.Context, []*bus.Event) error { return nil } },
			[]string{"exactly one of Bus and Batch"}},
		{"dlq is a source", func(c *bus.RunnerConfig) { c.DLQTopic = "t" }, []string{"also a source topic"}},
		{"dlq is the retry topic", func(c *bus.RunnerConfig) { c.RetryTopic = "d" }, []string{"also the retry or queue topic"}},
		{"duplicate topic", func(c *bus.RunnerConfig) { c.Topics = []string{"t", "t", ""} }, []string{"listed twice", "empty name"}},
		{"negative", func(c *bus.RunnerConfig) { c.MaxAttempts = -1; c.RetryDelay = -time.Second },
			[]string{"must not be negative", "durations"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.change(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, bus.ErrInvalidConfig) {
				t.Fatalf("Validate: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := bus.NewRunner(c); !errors.Is(err, bus.ErrInvalidConfig) {
				t.Errorf("NewRunner: %v", err)
			}
		})
	}
}

func TestRunnerRunsOnce(t *testing.T) {
	r, err := bus.NewRunner(bus.RunnerConfig{Group: "g", Topics: []string{"t"}, DLQTopic: "d", Decoder: testDecoder{}, Bus: bus.New()},
		kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_ = r.Run(ctx)
	if err := r.Run(ctx); !errors.Is(err, bus.ErrRunnerStarted) {
		t.Fatalf("second Run: %v", err)
	}
}

// countingDecoder counts the records it decodes.
type countingDecoder struct {
	testDecoder
	mu    sync.Mutex
	types []string
}

func (d *countingDecoder) Decode(ctx context.Context, rec *kgo.Record) (*bus.Event, error) {
	d.mu.Lock()
	for _, h := range rec.Headers {
		if h.Key == bus.HeaderType {
			d.types = append(d.types, string(h.Value))
		}
	}
	d.mu.Unlock()
	return d.testDecoder.Decode(ctx, rec)
}

func (d *countingDecoder) decoded() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.types)
}

// A Bus runner routes on ce_type before decoding: a record whose type no handler matches is
// not decoded (even an undecodable one: it is no dead letter of this group), and is marked
// and counted as published; records without ce_type, and every record of a bus with a
// middleware (which may change the type) or a debug log, are still decoded.
func TestRunnerRoutesOnTypeBeforeDecoding(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "d-1", "Deployment:Started", "undecodable", "d2")
	k.produce(0, "we-1", "WorkEffort:Started", "w1")
	b := bus.New(bus.WithLogSize(0))
	var rec recorder
	on(t, b, "WorkEffort:*", func(_ context.Context, ev *bus.Event) error { rec.add(ev); return nil }, bus.Options{Name: "we"})
	dec := &countingDecoder{}
	stop := k.start(bus.RunnerConfig{Bus: b, Decoder: dec})
	waitFor(t, "the WorkEffort event", func() bool { return rec.len() == 1 })
	waitFor(t, "commits past every record", func() bool { return k.committed()[0] == 3 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := dec.decoded(); !slices.Equal(got, []string{"WorkEffort:Started"}) {
		t.Errorf("decoded %v, want only the WorkEffort record", got)
	}
	if st := b.Stats(); st.Published != 3 || st.Delivered != 1 || st.Errors != 0 {
		t.Errorf("stats = %+v, want 3 published, 1 delivered", st)
	}

	// With a middleware, or a debug log, every record is decoded again.
	for name, mk := range map[string]func() *bus.Bus{
		"middleware": func() *bus.Bus {
			b := bus.New(bus.WithLogSize(0))
			b.Use(func(_ context.Context, ev *bus.Event) (*bus.Event, error) { return ev, nil })
			return b
		},
		"log": func() *bus.Bus { return bus.New() },
	} {
		t.Run(name, func(t *testing.T) {
			b := mk()
			on(t, b, "WorkEffort:*", func(context.Context, *bus.Event) error { return nil }, bus.Options{Name: "we"})
			dec := &countingDecoder{}
			stop := k.start(bus.RunnerConfig{Bus: b, Decoder: dec, Group: "all-" + name})
			waitFor(t, "three decodes", func() bool { return len(dec.decoded()) == 3 })
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A record whose dead letter is not written yet is not committed, even when a parked key's
// retry is served right after it: here the dead-letter topic takes no record of more than
// 100 bytes, so the dead letter of "bad" (offset 1) is never written, and the commit must
// stay at 1 although the parked record before it ("flaky", offset 0) was retried and
// handled in between.
func TestRunnerDoesNotCommitPastAnUnwrittenDeadLetter(t *testing.T) {
	k := newKafka(t)
	const smallDLQ = "pyrite.test.small-dlq"
	limit := "100"
	if _, err := k.adm.CreateTopic(t.Context(), partitions, 1, map[string]*string{"max.message.bytes": &limit}, smallDLQ); err != nil {
		t.Fatal(err)
	}
	k.produce(0, "a", "WorkEffort:Started", "flaky")
	k.produce(0, "b", "WorkEffort:Started", "bad", "after")
	b := bus.New()
	var flakyOnce sync.Once
	handledFlaky := make(chan struct{})
	on(t, b, "*", func(_ context.Context, ev *bus.Event) error {
		switch ev.Data["value"] {
		case "flaky":
			failed := false
			flakyOnce.Do(func() { failed = true })
			if failed {
				return errors.New("transient")
			}
			close(handledFlaky)
		case "bad":
			time.Sleep(100 * time.Millisecond) // past flaky's retry delay: it is due right after
			return bus.Permanent(errors.New("bad"))
		}
		return nil
	}, bus.Options{})
	k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, DLQTopic: smallDLQ,
		RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 20 * time.Millisecond, HandlerGrace: 100 * time.Millisecond})
	select {
	case <-handledFlaky:
	case <-time.After(15 * time.Second):
		t.Fatal("the parked record was not retried")
	}
	time.Sleep(time.Second) // some ten autocommits
	if got := k.committed()[0]; got > 1 {
		t.Fatalf("committed %d: past offset 1, whose dead letter was never written", got)
	}
}

// A filter added with UseFilter cannot change types, so a Bus runner keeps routing on
// ce_type: records no handler matches are neither decoded nor shown to the filter, and the
// filter still drops what it rejects among the rest.
func TestRunnerFilterKeepsRoutingOnType(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "d-1", "Deployment:Started", "undecodable", "d2")
	k.produce(0, "we-1", "WorkEffort:Started", "w1", "drop-me", "w3")
	b := bus.New(bus.WithLogSize(0))
	var filtered []string
	var mu sync.Mutex
	b.UseFilter(func(ev *bus.Event) bool {
		mu.Lock()
		defer mu.Unlock()
		filtered = append(filtered, ev.Type)
		return ev.Data["value"] != "drop-me"
	})
	var rec recorder
	on(t, b, "WorkEffort:*", func(_ context.Context, ev *bus.Event) error { rec.add(ev); return nil }, bus.Options{Name: "we"})
	dec := &countingDecoder{}
	stop := k.start(bus.RunnerConfig{Bus: b, Decoder: dec})
	waitFor(t, "two handled events", func() bool { return rec.len() == 2 })
	waitFor(t, "commits past every record", func() bool { return k.committed()[0] == 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := dec.decoded(); !slices.Equal(got, []string{"WorkEffort:Started", "WorkEffort:Started", "WorkEffort:Started"}) {
		t.Errorf("decoded %v, want only the WorkEffort records", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(filtered) != 3 {
		t.Errorf("the filter saw %v, want the 3 WorkEffort events", filtered)
	}
	if st := b.Stats(); rec.len() != 2 || st.Published != 5 || st.Dropped != 1 || st.Delivered != 2 {
		t.Errorf("handled %d, stats = %+v; want 2 handled, 5 published, 1 dropped, 2 delivered", rec.len(), st)
	}
}

// With Wants, a batch runner does not decode the records whose ce_type Wants rejects: the
// handler gets them in order with their type and position only, so it can move past them.
func TestRunnerBatchRoutesOnType(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "we-1", "WorkEffort:ProgressUpdated", "undecodable", "p2")
	k.produce(0, "we-1", "WorkEffort:Completed", "c1")
	k.produce(0, "we-1", "WorkEffort:ProgressUpdated", "p3")
	var mu sync.Mutex
	var got []string
	handler := func(_ context.Context, evs []*bus.Event) error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			got = append(got, fmt.Sprintf("%s@%d:%v", ev.Type, ev.Origin.Offset, ev.Data["value"]))
		}
		return nil
	}
	wants, err := bus.MatchAny("WorkEffort:Completed", "Deployment:*")
	if err != nil {
		t.Fatal(err)
	}
	dec := &countingDecoder{}
	stop := k.start(bus.RunnerConfig{Batch: handler, Wants: wants, Decoder: dec, BatchWait: 20 * time.Millisecond})
	waitFor(t, "four events", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 })
	waitFor(t, "the commit past every record", func() bool { return k.committed()[0] == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"WorkEffort:ProgressUpdated@0:<nil>", "WorkEffort:ProgressUpdated@1:<nil>", "WorkEffort:Completed@2:c1", "WorkEffort:ProgressUpdated@3:<nil>"}
	if !slices.Equal(got, want) {
		t.Errorf("handled %v\nwant %v", got, want)
	}
	if d := dec.decoded(); !slices.Equal(d, []string{"WorkEffort:Completed"}) {
		t.Errorf("decoded %v, want only the Completed record", d)
	}
}

func TestMatchAny(t *testing.T) {
	m, err := bus.MatchAny("WorkEffort:Completed", "Deployment:*")
	if err != nil {
		t.Fatal(err)
	}
	for typ, want := range map[string]bool{
		"WorkEffort:Completed": true, "Deployment:Started": true, "WorkEffort:Started": false,
		"Deployment": false, "Deployment:A:B": false, "": false,
	} {
		if m(typ) != want {
			t.Errorf("%q: %v, want %v", typ, !want, want)
		}
	}
	if _, err := bus.MatchAny("WorkEffort:", "*"); !errors.Is(err, bus.ErrInvalidPattern) {
		t.Errorf("invalid pattern: %v, want ErrInvalidPattern", err)
	}
}
