package ingest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
)

// appendPending encodes a ProgressUpdated of aggregate agg with ce_id id.
func appendPending(t *testing.T, h *harness, agg, id string, expected int64, from, to int) eventstore.Pending {
	t.Helper()
	rec := h.stack.Record(t, rawTopic, "WorkEffort:ProgressUpdated", agg, 0,
		map[string]any{"oldProgress": from, "newProgress": to, "delta": to - from, "formatted": "x"})
	return eventstore.Pending{Record: rec, ID: id, Type: "WorkEffort:ProgressUpdated", Expected: expected}
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestClientAppendsThroughIngest runs eventstore.Client against a real ingest (ingest.Run
// with its event store): versions, duplicates by ce_id, conflicts and refusals.
func TestClientAppendsThroughIngest(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	reg := prometheus.NewRegistry()
	cl, err := eventstore.NewClient(eventstore.ClientConfig{URL: h.url}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := cl.Append(ctx, []eventstore.Pending{
		appendPending(t, h, "we-c", "c-1", 0, 0, 10),
		appendPending(t, h, "we-c", "c-2", 1, 10, 20),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].Version != 1 || first[1].Version != 2 || first[0].Duplicate || first[1].Offset != first[0].Offset+1 {
		t.Fatalf("first append: %+v", first)
	}
	before := h.stack.EndOffsets(t, rawTopic)[rawTopic]

	t.Run("a repeated ce_id is a duplicate", func(t *testing.T) {
		again, err := cl.Append(ctx, []eventstore.Pending{
			appendPending(t, h, "we-c", "c-1", 0, 0, 10),
			appendPending(t, h, "we-c", "c-2", 1, 10, 20),
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range again {
			if !again[i].Duplicate || again[i].Offset != first[i].Offset || again[i].Version != first[i].Version {
				t.Errorf("event %d: %+v, first %+v", i, again[i], first[i])
			}
		}
		if after := h.stack.EndOffsets(t, rawTopic)[rawTopic]; after != before {
			t.Errorf("a duplicate wrote: end offsets %d -> %d", before, after)
		}
	})
	t.Run("a stale expected version conflicts", func(t *testing.T) {
		_, err := cl.Append(ctx, []eventstore.Pending{appendPending(t, h, "we-c", "c-3", 1, 20, 30)})
		var ce *eventstore.ConflictError
		if !errors.As(err, &ce) || ce.Current != 2 || ce.Expected != 1 || ce.AggregateID != "we-c" {
			t.Fatalf("%v (%#v)", err, ce)
		}
	})
	t.Run("a value of another type is refused", func(t *testing.T) {
		p := appendPending(t, h, "we-c", "c-4", -1, 20, 30)
		p.Type = "WorkEffort:Started"
		_, err := cl.Append(ctx, []eventstore.Pending{p})
		if !errors.Is(err, eventstore.ErrRefused) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("an unframed value is refused", func(t *testing.T) {
		p := appendPending(t, h, "we-c", "c-5", -1, 20, 30)
		p.Record.Value = []byte("not avro")
		_, err := cl.Append(ctx, []eventstore.Pending{p})
		if !errors.Is(err, eventstore.ErrRefused) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("the record keeps the headers and gets its version", func(t *testing.T) {
		recs := h.stack.Consume(t, rawTopic, 2)
		for i, r := range recs {
			if got := headerOf(r, "ce_aggregateversion"); got != []string{"1", "2"}[i] {
				t.Errorf("record %d: ce_aggregateversion %q", i, got)
			}
			if headerOf(r, "ce_source") != "/stacktest" || headerOf(r, "ce_id") != []string{"c-1", "c-2"}[i] {
				t.Errorf("record %d headers %v", i, r.Headers)
			}
		}
	})
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pyrite_eventstore_client_appends_total Appends sent to ingest's event store, by outcome (written, duplicate, conflict, refused, unavailable).
# TYPE pyrite_eventstore_client_appends_total counter
pyrite_eventstore_client_appends_total{outcome="conflict"} 1
pyrite_eventstore_client_appends_total{outcome="duplicate"} 1
pyrite_eventstore_client_appends_total{outcome="refused"} 2
pyrite_eventstore_client_appends_total{outcome="written"} 1
`), "pyrite_eventstore_client_appends_total"); err != nil {
		t.Error(err)
	}

	t.Run("transient failures are retried", func(t *testing.T) {
		target, _ := url.Parse(h.url)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var calls atomic.Int32
		flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "not yet", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer flaky.Close()
		fc, err := eventstore.NewClient(eventstore.ClientConfig{URL: flaky.URL, Backoff: time.Millisecond}, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		res, err := fc.Append(ctx, []eventstore.Pending{appendPending(t, h, "we-c", "c-6", 2, 20, 30)})
		if err != nil || res[0].Version != 3 || calls.Load() != 3 {
			t.Fatalf("%+v %v after %d calls", res, err, calls.Load())
		}
	})
	t.Run("retries give up as unavailable", func(t *testing.T) {
		down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		defer down.Close()
		dc, err := eventstore.NewClient(eventstore.ClientConfig{URL: down.URL, Attempts: 3, Backoff: time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = dc.Append(ctx, []eventstore.Pending{appendPending(t, h, "we-c", "c-7", -1, 20, 30)})
		if !errors.Is(err, eventstore.ErrUnavailable) || !eventstore.Transient(err) {
			t.Fatalf("%v", err)
		}
	})
}
