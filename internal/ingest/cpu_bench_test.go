package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// instantProducer acknowledges every record at once, so that a benchmark measures the
// handler's own work (parsing, validation, encoding, headers, answer) without Kafka.
type instantProducer struct{ offset atomic.Int64 }

func (p *instantProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	out := make(kgo.ProduceResults, len(rs))
	for i, r := range rs {
		r.Offset = p.offset.Add(1)
		out[i] = kgo.ProduceResult{Record: r}
	}
	return out
}

func (p *instantProducer) Transact(_ context.Context, rs []*kgo.Record) error {
	for _, r := range rs {
		r.Offset = p.offset.Add(1)
	}
	return nil
}

func (p *instantProducer) Ping(context.Context) error { return nil }

// BenchmarkHandlerCPU measures the CPU the handler spends per event, single and in batches of
// 500, with the producer taken out (see BenchmarkIngest for the figures with Kafka). The
// peer in the same run is encoding/json validating the same body, the least work any JSON
// front door does per byte.
func BenchmarkHandlerCPU(b *testing.B) {
	s := stacktest.Start(b)
	svc := ingest.New(codec.Dial(s.RegistryURL), s.Topology, &instantProducer{}, ingest.Config{MaxBatch: 1000}, prometheus.NewRegistry())
	h := svc.Handler()
	event := func(i int) string {
		return fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-%d","data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`, i%1000, i%100, i%100+1, i%100+1)
	}
	evs := make([]string, 500)
	for j := range evs {
		evs[j] = event(j)
	}
	batch := `{"events":[` + strings.Join(evs, ",") + `]}`
	tokens, err := httpauth.NewTokens([]httpauth.Token{{Token: opsToken, Principal: "ops", Types: []string{"Deployment:*", "WorkEffort:*"}}})
	if err != nil {
		b.Fatal(err)
	}
	authed := tokens.Require("/v1/", h)
	serveWith := func(b *testing.B, h http.Handler, token, path, body string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	serve := func(b *testing.B, path, body string) { serveWith(b, h, "", path, body) }
	serve(b, "/v1/events", evs[0]) // warm the schema cache

	b.Run("single", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			serve(b, "/v1/events", evs[i%len(evs)])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
	b.Run("batch 500", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serve(b, "/v1/events:batch", batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/event")
	})
	// With an --auth-file token: the bearer lookup, the scope check of every event and the
	// principal's headers, beside the unauthenticated runs above.
	b.Run("single with token", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			serveWith(b, authed, opsToken, "/v1/events", evs[i%len(evs)])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
	})
	b.Run("batch 500 with token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			serveWith(b, authed, opsToken, "/v1/events:batch", batch)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/event")
	})
	b.Run("peer json.Valid batch 500", func(b *testing.B) {
		body := []byte(batch)
		for b.Loop() {
			if !json.Valid(body) {
				b.Fatal("invalid")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*500), "ns/event")
	})
}
