package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/tracing"
)

// TestTraceContinuesThroughKafka: with tracing on, the record ingest writes
// for a request is sent in a span of the caller's trace.
func TestTraceContinuesThroughKafka(t *testing.T) {
	s := stacktest.Start(t)
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(context.Background(), tracing.Config{Service: "ingest"}, tracing.WithExporter(exp), tracing.WithSyncExport())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology,
			Metrics: prometheus.NewRegistry(), KafkaOpts: tr.KafkaOpts("")})
	}()
	defer func() { cancel(); <-done }()

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	post := func() (int, error) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/events", strings.NewReader(created))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for { // until the instance owns its partitions and accepts
		code, err := post()
		if code == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest never accepted the event: %d %v", code, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		for _, sp := range exp.GetSpans() {
			if sp.SpanContext.TraceID().String() == traceID {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no span in the caller's trace; spans: %d", len(exp.GetSpans()))
}
