package upcaster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

const (
	rawTopic    = "pyrite.work-effort.raw"
	eventsTopic = "pyrite.work-effort.events"
	dlqTopic    = "pyrite.upcaster.dlq"
	progress    = "pyrite.workeffort.ProgressUpdated"
)

// env is a test stack plus a codec on its registry and a producer for the raw topics.
type env struct {
	*stacktest.Stack
	codec *codec.Codec
	prod  *kgo.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := stacktest.Start(t)
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	rc.CachingEnabled(false)
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &env{Stack: s, codec: codec.New(rc), prod: prod}
}

// frame encodes v with subject version ver.
func (e *env) frame(t testing.TB, subject string, ver int, v any) []byte {
	t.Helper()
	s, err := e.codec.Version(context.Background(), subject, ver)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.codec.Encode(s, v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) produce(t testing.TB, rs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// running is an upcaster started in this process with upcaster.Run.
type running struct {
	addr    string
	metrics *prometheus.Registry
	stop    func() error
}

// start runs the upcaster on e with cfg until the test ends (or stop is called).
func (e *env) start(t *testing.T, cfg upcaster.Config, registryURL string, refresh time.Duration) *running {
	t.Helper()
	if registryURL == "" {
		registryURL = e.RegistryURL
	}
	if cfg.TransactionalID == "" && cfg.Mode != upcaster.AtLeastOnce {
		cfg.TransactionalID = "test-" + strings.ReplaceAll(t.Name(), "/", "-")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- upcaster.Run(ctx, ln, upcaster.Options{Chain: e.Chain,
			Brokers: e.Brokers, Registry: registryURL, Topology: e.Topology, Metrics: reg,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LatestRefresh: refresh,
			KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}, Config: cfg,
		})
	}()
	var stopped atomic.Bool
	var result error
	r := &running{addr: "http://" + ln.Addr().String(), metrics: reg, stop: func() error {
		if stopped.Swap(true) {
			return result
		}
		cancel()
		select {
		case result = <-done:
		case <-time.After(30 * time.Second):
			result = fmt.Errorf("upcaster did not stop within 30s")
		}
		return result
	}}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("upcaster: %v", err)
		}
	})
	return r
}

// get fetches path from the upcaster's HTTP server.
func (r *running) get(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(r.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 20ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// reader reads a topic from the start with read_committed, keeping what it has read.
type reader struct {
	cl   *kgo.Client
	recs []*kgo.Record
}

func (e *env) reader(t testing.TB, topic string) *reader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &reader{cl: cl}
}

// until reads until done(all records so far) holds, failing the test after d.
func (r *reader) until(t testing.TB, d time.Duration, what string, done func([]*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !done(r.recs) {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records, then timed out after %v waiting for %s", len(r.recs), d, what)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", tp, p, err) })
		r.recs = append(r.recs, fs.Records()...)
	}
	return r.recs
}

// count reads until n records arrived.
func (r *reader) count(t testing.TB, d time.Duration, n int) []*kgo.Record {
	t.Helper()
	return r.until(t, d, fmt.Sprintf("%d records", n), func(rs []*kgo.Record) bool { return len(rs) >= n })
}

func header(r *kgo.Record, k string) (string, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value), true
		}
	}
	return "", false
}
