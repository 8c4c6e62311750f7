package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// batchConns is how many connections post batches in BenchmarkEventStoreBatches, as
// BenchmarkPipeline's ingest-fed variant posts them.
const batchConns = 4

// BenchmarkEventStoreBatches measures POST /v1/events:batch of 500 through the event store
// (one ingest instance owning every partition: versions, the dedupe window, one partition
// transaction per writer) from 4 connections, beside franz-go writing the same records
// (value and CloudEvents headers as ingest writes them, acks=all, batches of 500 from 4
// goroutines): the row "ingest batches" of issue 17, without the rest of the pipeline
// taking the same cores. Each side runs on a fresh stack, so that neither pays for the
// other's records in kfake's heap. Each batch holds the aggregates of one partition, as a
// store batch must.
func BenchmarkEventStoreBatches(b *testing.B) {
	const perBatch, aggregates = 500, 1000
	// direct is the franz-go side's rate in this run, which the store side reports itself
	// against (%-of-franz-go): the row, printed beside its baseline.
	var direct float64
	b.Run("franz-go direct batch 500", func(b *testing.B) {
		e := newIngestBench(b, `{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-0","data":{"oldProgress":0,"newProgress":1,"delta":1,"formatted":"1%"}}`)
		keys := make([][]byte, aggregates)
		for i := range keys {
			keys[i] = fmt.Appendf(nil, "we-%d", i)
		}
		direct = runWith(b, batchConns, perBatch, func(i int) error {
			return e.direct.ProduceSync(context.Background(), e.records(keys, i)...).FirstErr()
		})
	})
	b.Run("event store batch 500", func(b *testing.B) {
		s := stacktest.Start(b)
		td, err := s.Admin.ListTopics(context.Background(), rawTopic)
		if err != nil {
			b.Fatal(err)
		}
		bodies := partitionBatches(rawTopic, len(td[rawTopic].Partitions), aggregates, perBatch, 64)
		inst := startBenchInstances(b, s, "bench-batches", 1)
		defer inst.stop()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: batchConns, MaxConnsPerHost: batchConns,
			WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10}}
		defer client.CloseIdleConnections()
		post := postFunc(client, inst.urls[0])
		rate := runWith(b, batchConns, perBatch, func(i int) error { return post("/v1/events:batch", bodies[i%len(bodies)]) })
		if direct > 0 {
			b.ReportMetric(100*rate/direct, "%-of-franz-go")
		}
	})
}

// partitionBatches returns count bodies of perBatch ProgressUpdated events, each over the
// aggregates (of aggregates) on one partition of topic, the partitions in turn.
func partitionBatches(topic string, partitions, aggregates, perBatch, count int) []string {
	part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	byPart := make([][]string, partitions)
	for a := range aggregates {
		id := fmt.Sprintf("we-%d", a)
		p := part.Partition(&kgo.Record{Key: []byte(id)}, partitions)
		byPart[p] = append(byPart[p], id)
	}
	out := make([]string, count)
	next := make([]int, partitions)
	for j := range out {
		p := j % partitions
		evs := make([]string, perBatch)
		for k := range evs {
			id := byPart[p][next[p]%len(byPart[p])]
			next[p]++
			v := next[p] % 100
			evs[k] = fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":%q,"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`, id, v, v+1, v+1)
		}
		out[j] = `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	return out
}
