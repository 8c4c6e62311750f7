package projector_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// BenchmarkEndToEnd paces events into ingest at 2,000 per second and
// measures, for each, the time from ingest's 201 to the read model showing
// it (a ?minVersion read returning), through the upcaster and the
// projector (SQLite). It reports p50 and p99 beside the rate achieved.
func BenchmarkEndToEnd(b *testing.B) {
	const rate, aggregates = 2000, 200
	s := stacktest.Start(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	ingestURL := startComponent(b, ctx, &wg, func(ctx context.Context, ln net.Listener) error {
		return ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, TxnPrefix: "e2e",
			Topology: s.Topology, Metrics: prometheus.NewRegistry()})
	})
	startComponent(b, ctx, &wg, func(ctx context.Context, ln net.Listener) error {
		return upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL,
			Topology: s.Topology, Metrics: prometheus.NewRegistry(), Config: upcaster.Config{TransactionalID: "e2e-upcaster"}})
	})
	projURL, stopProj := startProjectorOpts(b, s, b.TempDir()+"/e2e.db", 0)
	defer func() { stopProj(); cancel(); wg.Wait() }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 512}}
	post := func(id string, v int) error {
		body := fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":%q,"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"x"}}`, id, v%100, v%100+1)
		resp, err := client.Post(ingestURL+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("ingest answered %d", resp.StatusCode)
		}
		return nil
	}
	waitRead := func(id string, v int) error {
		resp, err := client.Get(fmt.Sprintf("%s/v1/work-efforts/%s?minVersion=%d", projURL, id, v))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("read model answered %d", resp.StatusCode)
		}
		return nil
	}
	// Warm up: one event per aggregate, through the whole pipeline.
	for a := range aggregates {
		if err := post(fmt.Sprintf("e2e-%d", a), 0); err != nil {
			b.Fatal(err)
		}
	}
	for a := range aggregates {
		if err := waitRead(fmt.Sprintf("e2e-%d", a), 1); err != nil {
			b.Fatal(err)
		}
	}

	b.ResetTimer()
	var mu sync.Mutex
	var lat []time.Duration
	var errOnce sync.Once
	var firstErr error
	// Each aggregate posts its next event every aggregates/rate seconds,
	// staggered, so the total is rate events per second.
	n := max(b.N, 2*rate) // at least two seconds of load
	perAgg := (n + aggregates - 1) / aggregates
	interval := time.Second * aggregates / rate
	start := time.Now()
	var load sync.WaitGroup
	for a := range aggregates {
		load.Add(1)
		go func() {
			defer load.Done()
			id := fmt.Sprintf("e2e-%d", a)
			next := start.Add(interval * time.Duration(a) / aggregates)
			for k := 2; k <= perAgg+1; k++ {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				if err := post(id, k); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				acked := time.Now()
				if err := waitRead(id, k); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(acked))
				mu.Unlock()
			}
		}()
	}
	load.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// startComponent runs a program's Run function on a free port until ctx
// ends and returns its base URL.
func startComponent(b *testing.B, ctx context.Context, wg *sync.WaitGroup, run func(ctx context.Context, ln net.Listener) error) string {
	b.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		b.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := run(ctx, ln); err != nil {
			b.Errorf("%v", err)
		}
	}()
	return "http://" + ln.Addr().String()
}
