package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const benchClients = 64

// BenchmarkIngest measures events per second and latency percentiles of the
// ingest API on the test stack with 64 concurrent keep-alive clients, beside
// franz-go producing the same pre-encoded records straight to Kafka (the
// ceiling ingest can approach) in the same run.
func BenchmarkIngest(b *testing.B) {
	s := stacktest.Start(b)
	prod, err := ingest.NewKafka("bench-ingest", 16, nil, kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	c := codec.Dial(s.RegistryURL)
	svc := ingest.New(c, s.Topology, prod, ingest.Config{MaxBatch: 1000}, prometheus.NewRegistry())
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = server.Serve(ctx, ln, server.Handler(svc.Handler(), nil, nil), time.Second); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}

	event := func(i int) string {
		return fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-%d","data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`, i%1000, i%100, i%100+1, i%100+1)
	}
	post := func(path, body string) error {
		resp, err := client.Post(url+path, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}

	sch, err := c.Latest(context.Background(), "pyrite.workeffort.ProgressUpdated")
	if err != nil {
		b.Fatal(err)
	}
	direct, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	value, err := c.Encode(sch, map[string]any{"oldProgress": 1, "newProgress": 2, "delta": 1, "formatted": "2%"})
	if err != nil {
		b.Fatal(err)
	}

	b.Run("franz-go direct", func(b *testing.B) {
		run(b, 1, func(i int) error {
			return direct.ProduceSync(context.Background(), &kgo.Record{Topic: rawTopic, Key: fmt.Appendf(nil, "we-%d", i%1000), Value: value}).FirstErr()
		})
	})
	b.Run("ingest single", func(b *testing.B) {
		run(b, 1, func(i int) error { return post("/v1/events", event(i)) })
	})
	b.Run("franz-go direct batch 500", func(b *testing.B) {
		run(b, 500, func(i int) error {
			rs := make([]*kgo.Record, 500)
			for j := range rs {
				rs[j] = &kgo.Record{Topic: rawTopic, Key: fmt.Appendf(nil, "we-%d", (i+j)%1000), Value: value}
			}
			return direct.ProduceSync(context.Background(), rs...).FirstErr()
		})
	})
	txn, err := ingest.NewKafka("bench-direct-txn", 16, nil, kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer txn.Close()
	b.Run("franz-go direct transaction 500", func(b *testing.B) {
		run(b, 500, func(i int) error {
			rs := make([]*kgo.Record, 500)
			for j := range rs {
				rs[j] = &kgo.Record{Topic: rawTopic, Key: fmt.Appendf(nil, "we-%d", (i+j)%1000), Value: value}
			}
			return txn.Transact(context.Background(), rs)
		})
	})
	b.Run("ingest batch 500", func(b *testing.B) {
		run(b, 500, func(i int) error {
			evs := make([]string, 500)
			for j := range evs {
				evs[j] = event(i*500 + j)
			}
			return post("/v1/events:batch", `{"events":[`+strings.Join(evs, ",")+`]}`)
		})
	})
}

// run calls op b.N times from benchClients goroutines and reports events/s
// (perOp events per call) and the p50/p99 latency of one call.
func run(b *testing.B, perOp int, op func(i int) error) {
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	b.ResetTimer()
	start := time.Now()
	for range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N*perOp)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
