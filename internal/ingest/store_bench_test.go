package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
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

// BenchmarkEventStoreAppends measures appends per second through the event store, with
// expectedVersion and without, through one ingest instance and through three (requests
// spread over the three, so two in three are forwarded to the partition's owner), beside
// plain ingest without the event store (the idempotent producer straight to Kafka), all on
// one test stack in the same run. Each of the 64 clients appends to aggregates of its own,
// tracking their versions, so expectedVersion never conflicts: the figures are the cost of
// the check, the group-committed partition transactions and the forwarding.
func BenchmarkEventStoreAppends(b *testing.B) {
	s := stacktest.Start(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}

	// Plain ingest, as before the event store.
	prod, err := ingest.NewKafka("bench-plain", 4, nil, kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	plain := serveBench(b, ingest.New(codec.Dial(s.RegistryURL), s.Topology, prod, ingest.Config{}, prometheus.NewRegistry()).Handler())
	b.Run("plain ingest without the event store", func(b *testing.B) {
		appendBench(b, client, []string{plain.url}, "plain", false)
	})
	plain.stop()

	one := startBenchInstances(b, s, "bench-one", 1)
	b.Run("event store 1 instance", func(b *testing.B) {
		appendBench(b, client, one.urls, "one", false)
	})
	b.Run("event store 1 instance expectedVersion", func(b *testing.B) {
		appendBench(b, client, one.urls, "one-ev", true)
	})
	one.stop()

	three := startBenchInstances(b, s, "bench-three", 3)
	b.Run("event store 3 instances", func(b *testing.B) {
		appendBench(b, client, three.urls, "three", false)
	})
	b.Run("event store 3 instances expectedVersion", func(b *testing.B) {
		appendBench(b, client, three.urls, "three-ev", true)
	})
	three.stop()
}

var benchRuns atomic.Int64

type benchServer struct {
	url  string
	stop func()
}

func serveBench(b *testing.B, h http.Handler) benchServer {
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = server.Serve(ctx, ln, server.Handler(h, nil, nil), time.Second); close(done) }()
	return benchServer{url: "http://" + ln.Addr().String(), stop: func() { cancel(); <-done }}
}

type benchInstances struct {
	urls []string
	stop func()
}

// startBenchInstances runs n ingest instances in one group and waits until they share the
// partitions.
func startBenchInstances(b *testing.B, s *stacktest.Stack, group string, n int) benchInstances {
	var cancels []context.CancelFunc
	var wg sync.WaitGroup
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology,
				Metrics: prometheus.NewRegistry(), Drain: 5 * time.Second,
				Store: ingest.StoreOptions{Group: group, SessionTimeout: 6 * time.Second}}); err != nil {
				b.Error(err)
			}
		}()
		urls = append(urls, "http://"+ln.Addr().String())
	}
	deadline := time.Now().Add(45 * time.Second)
	for !shared(urls) {
		if time.Now().After(deadline) {
			b.Fatal("instances never shared the partitions")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return benchInstances{urls: urls, stop: func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}}
}

// shared reports whether the instances agree on a generation in which each owns some
// partitions and all are ready.
func shared(urls []string) bool {
	ready, gens, total := 0, map[float64]bool{}, 0
	for _, u := range urls {
		resp, err := http.Get(u + "/v1/eventstore")
		if err != nil {
			return false
		}
		var st struct {
			Generation float64
			Partitions []struct{ Ready bool }
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		gens[st.Generation] = true
		total = max(total, len(st.Partitions))
		mine := 0
		for _, p := range st.Partitions {
			if p.Ready {
				mine++
			}
		}
		if mine == 0 {
			return false
		}
		ready += mine
	}
	return total > 0 && ready == total && len(gens) == 1
}

// appendBench posts b.N ProgressUpdated events from benchClients clients, client c to its own
// aggregates <prefix>-c-k (k cycling over 4), spread over urls in turn; with expected, each
// carries the aggregate's current version. It reports events/s and p50/p99 latency.
func appendBench(b *testing.B, client *http.Client, urls []string, prefix string, expected bool) {
	prefix = fmt.Sprintf("%s-r%d", prefix, benchRuns.Add(1)) // each run starts new streams
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := map[string]int64{}
			var mine []time.Duration
			for n := 0; ; n++ {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				agg := fmt.Sprintf("%s-%d-%d", prefix, c, n%4)
				exp := ""
				if expected {
					exp = fmt.Sprintf(`"expectedVersion":%d,`, versions[agg])
				}
				body := fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":%q,%s"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"x"}}`,
					agg, exp, n%100, n%100+1)
				t0 := time.Now()
				resp, err := client.Post(urls[(c+n)%len(urls)]+"/v1/events", "application/json", strings.NewReader(body))
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				var out struct{ Version int64 }
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: status %d", agg, resp.StatusCode))
					return
				}
				mine = append(mine, time.Since(t0))
				versions[agg] = out.Version
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
