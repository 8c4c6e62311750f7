package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
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
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const benchClients = 64

// BenchmarkIngest measures events per second and latency percentiles of the
// ingest API on the test stack with 64 concurrent keep-alive clients, beside
// franz-go producing the same pre-encoded records (value and headers) straight
// to Kafka (the ceiling ingest can approach) in the same run.
//
// Each sub-benchmark runs on a fresh stack: kfake keeps every record in memory,
// so a sub-benchmark run after others would pay for their heap in garbage
// collection and be slower for that alone.
func BenchmarkIngest(b *testing.B) {
	// The load is made before the clock starts, on both sides, so that the benchmark's own
	// work (formatting JSON, keys) does not take the machine's two cores from what it measures:
	// 1000 aggregates, a body per event for singles, 16 bodies of 500 for batches.
	event := func(i int) string {
		return fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-%d","data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`, i%1000, i%100, i%100+1, i%100+1)
	}
	keys := make([][]byte, 1000)
	singles := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "we-%d", i)
		singles[i] = event(i)
	}
	batches := make([]string, 16)
	for i := range batches {
		evs := make([]string, 500)
		for j := range evs {
			evs[j] = event(i*500 + j)
		}
		batches[i] = `{"events":[` + strings.Join(evs, ",") + `]}`
	}

	b.Run("franz-go direct", func(b *testing.B) {
		e := newIngestBench(b, singles[0])
		run(b, 1, func(i int) error {
			return e.direct.ProduceSync(context.Background(), e.record(keys[i%len(keys)])).FirstErr()
		})
	})
	b.Run("ingest single", func(b *testing.B) {
		e := newIngestBench(b, singles[0])
		run(b, 1, func(i int) error { return e.post("/v1/events", singles[i%len(singles)]) })
	})
	b.Run("franz-go direct batch 500", func(b *testing.B) {
		e := newIngestBench(b, singles[0])
		run(b, 500, func(i int) error {
			return e.direct.ProduceSync(context.Background(), e.records(keys, i)...).FirstErr()
		})
	})
	b.Run("franz-go direct transaction 500", func(b *testing.B) {
		e := newIngestBench(b, singles[0])
		run(b, 500, func(i int) error { return e.prod.Transact(context.Background(), e.records(keys, i)) })
	})
	b.Run("ingest batch 500", func(b *testing.B) {
		e := newIngestBench(b, singles[0])
		run(b, 500, func(i int) error { return e.post("/v1/events:batch", batches[i%len(batches)]) })
	})
}

// ingestBench is one fresh stack with ingest serving on it, and the direct producers.
type ingestBench struct {
	post    func(path, body string) error
	prod    *ingest.Kafka // ingest's producer, also the direct transactional one
	direct  *kgo.Client
	value   []byte
	headers []kgo.RecordHeader
}

func newIngestBench(b *testing.B, sample string) *ingestBench {
	s := stacktest.Start(b)
	prod, err := ingest.NewKafka("bench-ingest", 16, nil, kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(prod.Close)
	svc := ingest.New(codec.Dial(s.RegistryURL), s.Topology, prod, ingest.Config{MaxBatch: 1000}, prometheus.NewRegistry())
	srv := serveBench(b, svc.Handler())
	b.Cleanup(srv.stop)
	url := srv.url
	// Buffers of a batch's size keep the load generator's syscalls, which take the same two
	// cores, to a few per request.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients,
		WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10}}
	b.Cleanup(client.CloseIdleConnections)
	e := &ingestBench{prod: prod}
	e.post = postFunc(client, url)
	if e.direct, err = kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks())); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.direct.Close)
	// The direct records are the ones ingest writes: the value and CloudEvents headers of an
	// event posted through it, read back from Kafka.
	if err := e.post("/v1/events", sample); err != nil {
		b.Fatal(err)
	}
	template := s.Consume(b, rawTopic, 1)[0]
	e.value, e.headers = template.Value, template.Headers
	if len(e.headers) < 8 {
		b.Fatalf("the template record has %d headers", len(e.headers))
	}
	return e
}

func (e *ingestBench) record(key []byte) *kgo.Record {
	return &kgo.Record{Topic: rawTopic, Key: key, Value: e.value, Headers: e.headers}
}

// records returns the i-th batch of 500 direct records.
func (e *ingestBench) records(keys [][]byte, i int) []*kgo.Record {
	rs := make([]*kgo.Record, 500)
	for j := range rs {
		rs[j] = e.record(keys[(i*500+j)%len(keys)])
	}
	return rs
}

// postFunc returns a function posting a body to url+path with client, which wants 201.
func postFunc(client *http.Client, url string) func(path, body string) error {
	return func(path, body string) error {
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
}

// run calls op b.N times from benchClients goroutines and reports events/s
// (perOp events per call) and the p50/p99 latency of one call.
func run(b *testing.B, perOp int, op func(i int) error) { runWith(b, benchClients, perOp, op) }

// runWith is run with clients goroutines.
func runWith(b *testing.B, clients, perOp int, op func(i int) error) (eventsPerSecond float64) {
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	runtime.GC() // what ran before (set-up, the other side of a comparison) is not this run's garbage
	b.ResetTimer()
	cpu0 := stacktest.ProcessCPU(b)
	start := time.Now()
	for range clients {
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
	cpu := stacktest.ProcessCPU(b) - cpu0
	b.StopTimer()
	if err := firstErr.Load(); err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	rate := float64(b.N*perOp) / elapsed.Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*perOp), "cpu-us/event")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	return rate
}
