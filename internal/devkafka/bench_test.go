package devkafka_test

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/devkafka"
)

// event returns a record the size of a pipeline event: a work effort id
// key, a Confluent-framed Avro value and the CloudEvents headers.
func event(i int) *kgo.Record {
	id := "we-" + strconv.Itoa(i%2000)
	h := []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("0b6f1d9e-3c1a-4e55-9a43-" + strconv.FormatInt(int64(100000000000+i), 10))},
		{Key: "ce_source", Value: []byte("/ingest")},
		{Key: "ce_type", Value: []byte("WorkEffort:ProgressUpdated")},
		{Key: "ce_time", Value: []byte("2026-12-05T08:00:00.123456Z")},
		{Key: "ce_subject", Value: []byte(id)},
		{Key: "content-type", Value: []byte("application/avro")},
		{Key: "ce_aggregatetype", Value: []byte("WorkEffort")},
		{Key: "ce_aggregateversion", Value: []byte(strconv.Itoa(i / 2000))},
		{Key: "ce_correlationid", Value: []byte("c0ffee00-1234-4abc-8def-000000000001")},
	}
	return &kgo.Record{Topic: "mem", Key: []byte(id), Value: bytes.Repeat([]byte{0x2a}, 40), Headers: h}
}

// memory returns the live heap after a GC and the process's RSS, in bytes.
func memory() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return ms.HeapAlloc, rss
}

func report(b *testing.B, n int, heap0, rss0 uint64) {
	heap1, rss1 := memory()
	per := func(after, before uint64) float64 {
		if after < before {
			return 0
		}
		return float64(after-before) / float64(n) * 1e6 / (1 << 20)
	}
	b.ReportMetric(per(heap1, heap0), "heap-MiB/1M-events")
	b.ReportMetric(per(rss1, rss0), "rss-MiB/1M-events")
}

// BenchmarkBrokerMemory measures what the embedded broker holds per
// million pipeline-sized events it retains, beside the same records merely
// kept in a Go slice ("records", the baseline). "batched" lets the producer
// batch (linger 5ms); "one-per-batch" writes each event as its own batch,
// as ingest does for single-event requests.
func BenchmarkBrokerMemory(b *testing.B) {
	for _, mode := range []struct {
		name    string
		batched bool
	}{{"broker-batched", true}, {"broker-one-per-batch", false}} {
		b.Run(mode.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cluster, _, err := devkafka.Start(ctx, b.TempDir(), nil, kfake.NumBrokers(1))
			if err != nil {
				b.Fatal(err)
			}
			defer cluster.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 1, nil, "mem"); err != nil {
				b.Fatal(err)
			}
			heap0, rss0 := memory()
			b.ResetTimer()
			for i := range b.N {
				if !mode.batched {
					if err := cl.ProduceSync(ctx, event(i)).FirstErr(); err != nil {
						b.Fatal(err)
					}
					continue
				}
				cl.Produce(ctx, event(i), func(_ *kgo.Record, err error) {
					if err != nil {
						b.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			report(b, b.N, heap0, rss0)
		})
	}
	b.Run("records", func(b *testing.B) {
		heap0, rss0 := memory()
		kept := make([]*kgo.Record, 0, b.N)
		for i := range b.N {
			kept = append(kept, event(i))
		}
		b.StopTimer()
		report(b, b.N, heap0, rss0)
		runtime.KeepAlive(kept)
	})
}
