package tracing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pyrite-dev/pyrite/internal/tracing"
)

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  tracing.Config
		errs []string
	}{
		{name: "zero is off and valid", cfg: tracing.Config{}},
		{name: "http endpoint", cfg: tracing.Config{Endpoint: "http://collector:4318", SampleRatio: 0.5}},
		{name: "bad endpoint and ratio together", cfg: tracing.Config{Endpoint: "collector:4318", SampleRatio: 2},
			errs: []string{`--otlp-endpoint "collector:4318"`, "--trace-sample-ratio 2"}},
		{name: "negative ratio", cfg: tracing.Config{SampleRatio: -0.1}, errs: []string{"--trace-sample-ratio"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != (len(tt.errs) > 0) {
				t.Fatalf("Validate = %v", err)
			}
			for _, e := range tt.errs {
				if !strings.Contains(err.Error(), e) || !errors.Is(err, tracing.ErrInvalidConfig) {
					t.Errorf("error %q lacks %q or ErrInvalidConfig", err, e)
				}
			}
			if _, err := tracing.New(t.Context(), tt.cfg); (err != nil) != (len(tt.errs) > 0) {
				t.Errorf("New = %v", err)
			}
		})
	}
	t.Run("flags and environment", func(t *testing.T) {
		env := map[string]string{"PYRITE_OTLP_ENDPOINT": "http://env:4318", "PYRITE_TRACE_SAMPLE_RATIO": "0.25"}
		var c tracing.Config
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		c.Bind(fs, "ingest", func(k string) string { return env[k] })
		if c.Endpoint != "http://env:4318" || c.SampleRatio != 0.25 || c.Service != "ingest" {
			t.Errorf("from env: %+v", c)
		}
		if err := fs.Parse([]string{"--otlp-endpoint", "https://flag:4318"}); err != nil {
			t.Fatal(err)
		}
		if c.Endpoint != "https://flag:4318" {
			t.Errorf("the flag did not win: %+v", c)
		}
	})
}

func TestOffChangesNothing(t *testing.T) {
	tr, err := tracing.New(t.Context(), tracing.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Enabled() || tr.KafkaOpts("g") != nil {
		t.Errorf("off: enabled %v, %d kafka options", tr.Enabled(), len(tr.KafkaOpts("g")))
	}
	_, span := tr.Tracer("t").Start(t.Context(), "x")
	if span.SpanContext().IsValid() {
		t.Error("off: a span was recorded")
	}
	span.End()
	if err := tr.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

// spanByName returns the one exported span of that name.
func spanByName(t *testing.T, exp *tracetest.InMemoryExporter, name string) tracetest.SpanStub {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		var names []string
		for _, s := range exp.GetSpans() {
			names = append(names, s.Name)
		}
		t.Fatalf("%d spans named %q; spans: %v", len(found), name, names)
	}
	return found[0]
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestTraceAcrossKafka: a trace continues from a producer's span through the traceparent
// header to the consumer's receive span, and through a record copied from a consumed one.
func TestTraceAcrossKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "raw", "events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // after the clients' cleanups
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(t.Context(), tracing.Config{Service: "test"}, tracing.WithExporter(exp), tracing.WithSyncExport())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	if !tr.Enabled() {
		t.Fatal("not enabled with an exporter")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	client := func(group string, opts ...kgo.Opt) *kgo.Client {
		t.Helper()
		cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.FetchMaxWait(100 * time.Millisecond)}, opts...), tr.KafkaOpts(group)...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	consumeOne := func(cl *kgo.Client) *kgo.Record {
		t.Helper()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("nothing consumed")
			}
			if recs := fs.Records(); len(recs) > 0 {
				return recs[0]
			}
		}
	}

	// ingest: a request span, and a record produced under it.
	reqCtx, req := tr.Tracer("ingest").Start(ctx, "POST /v1/events")
	producer := client("")
	if err := producer.ProduceSync(reqCtx, &kgo.Record{Topic: "raw", Key: []byte("we-1"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	req.End()

	// upcaster: consume raw, copy the record (headers included) to events, with no span in
	// its Context: the header carries the trace on.
	upcaster := client("upcaster", kgo.ConsumeTopics("raw"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	raw := consumeOne(upcaster)
	out := &kgo.Record{Topic: "events", Key: raw.Key, Value: raw.Value, Headers: append([]kgo.RecordHeader(nil), raw.Headers...)}
	if err := producer.ProduceSync(ctx, out).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// projector: consume events.
	proj := client("work-efforts", kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ev := consumeOne(proj)

	publishRaw := spanByName(t, exp, "raw publish")
	receiveRaw := spanByName(t, exp, "raw receive")
	publishEvents := spanByName(t, exp, "events publish")
	receiveEvents := spanByName(t, exp, "events receive")
	reqSpan := spanByName(t, exp, "POST /v1/events")
	traceID := reqSpan.SpanContext.TraceID()
	chain := []struct {
		name   string
		span   tracetest.SpanStub
		parent trace.SpanContext
	}{
		{"raw publish under the request", publishRaw, reqSpan.SpanContext},
		{"raw receive under raw publish", receiveRaw, publishRaw.SpanContext},
		{"events publish under the copied header", publishEvents, publishRaw.SpanContext},
		{"events receive under events publish", receiveEvents, publishEvents.SpanContext},
	}
	for _, c := range chain {
		t.Run(c.name, func(t *testing.T) {
			if c.span.SpanContext.TraceID() != traceID || c.span.Parent.SpanID() != c.parent.SpanID() {
				t.Errorf("trace %s parent %s; want trace %s parent %s",
					c.span.SpanContext.TraceID(), c.span.Parent.SpanID(), traceID, c.parent.SpanID())
			}
		})
	}
	if got, want := header(raw, "traceparent"), "00-"+traceID.String()+"-"+publishRaw.SpanContext.SpanID().String()+"-01"; got != want {
		t.Errorf("raw traceparent %q, want %q", got, want)
	}
	if sc := trace.SpanContextFromContext(ev.Context); sc.TraceID() != traceID {
		t.Errorf("the consumed record's Context is not in the trace: %v", sc)
	}
	if n := strings.Count(strings.Join(headerKeys(ev), ","), "traceparent"); n != 1 {
		t.Errorf("%d traceparent headers on the events record", n)
	}
	if got := tr.Extract(context.Background(), ev); trace.SpanContextFromContext(got).SpanID() != publishEvents.SpanContext.SpanID() {
		t.Error("Extract does not return the header's span context")
	}
}

func headerKeys(r *kgo.Record) []string {
	var ks []string
	for _, h := range r.Headers {
		ks = append(ks, h.Key)
	}
	return ks
}

// TestOTLPExport: spans reach an OTLP/HTTP collector at <endpoint>/v1/traces by Shutdown.
func TestOTLPExport(t *testing.T) {
	var posts atomic.Int64
	var path, ctype atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		path.Store(r.URL.Path)
		ctype.Store(r.Header.Get("Content-Type"))
		posts.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	tr, err := tracing.New(t.Context(), tracing.Config{Endpoint: srv.URL, Service: "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer("t").Start(t.Context(), "work")
	span.End()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if posts.Load() == 0 || path.Load() != "/v1/traces" || ctype.Load() != "application/x-protobuf" {
		t.Errorf("%d posts, last to %v (%v)", posts.Load(), path.Load(), ctype.Load())
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log := tracing.NewLogger(&buf, nil)
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(t.Context(), tracing.Config{}, tracing.WithExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := tr.Tracer("t").Start(t.Context(), "x")
	defer span.End()
	log.With("component", "test").InfoContext(ctx, "applied", "topic", "t")
	log.Debug("not written at info")
	log.Info("no span")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON off a terminal: %v", err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first["trace_id"] != span.SpanContext().TraceID().String() || first["span_id"] != span.SpanContext().SpanID().String() || first["component"] != "test" {
		t.Errorf("with a span: %v", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Errorf("without a span: %v", second)
	}
}
