package ingest_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/ingest"
)

// TestConcurrentBatchesOnOnePartition posts batches from several connections at once, every
// batch for an aggregate of the same partition, so that the partition's writer takes several
// into one transaction; in every round one batch expects a version its stream is not at.
// That one is answered 409 and writes nothing; the others are answered 201 and are in their
// streams once each, in order, with what was posted (ingest hands a batch's record memory to
// the next request once the store answered: a record reused before it was written would
// show up here as another batch's data).
func TestConcurrentBatchesOnOnePartition(t *testing.T) {
	const writers, rounds, perBatch = 6, 8, 40
	h := newHarness(t, "", nil, ingest.Config{})
	td, err := h.stack.Admin.ListTopics(context.Background(), rawTopic)
	if err != nil {
		t.Fatal(err)
	}
	partitions := len(td[rawTopic].Partitions)
	part := kgo.StickyKeyPartitioner(nil).ForTopic(rawTopic)
	var aggs []string // writers+1 aggregates on partition 0: the last is the conflicting one's
	for i := 0; len(aggs) < writers+1; i++ {
		id := fmt.Sprintf("cb-%d", i)
		if part.Partition(&kgo.Record{Key: []byte(id)}, partitions) == 0 {
			aggs = append(aggs, id)
		}
	}
	formatted := func(w, round, k int) string { return fmt.Sprintf("w%d-r%d-k%d", w, round, k) }
	batch := func(w, round int, expected int64) string {
		evs := make([]string, perBatch)
		for k := range evs {
			exp := ""
			if k == 0 {
				exp = fmt.Sprintf(`"expectedVersion":%d,`, expected)
			}
			evs[k] = fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":%q,%s"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":%q}}`,
				aggs[w], exp, k, k+1, formatted(w, round, k))
		}
		return `{"events":[` + strings.Join(evs, ",") + `]}`
	}
	for round := range rounds {
		var wg sync.WaitGroup
		codes := make([]int, writers+1)
		bodies := make([]map[string]any, writers+1)
		for w := range writers + 1 {
			expected := int64(round * perBatch)
			if w == writers {
				expected = int64(round*perBatch + 1) // its stream stays empty: always a conflict
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[w], _, bodies[w] = h.post(t, "/v1/events:batch", "application/json", batch(w, round, expected))
			}()
		}
		wg.Wait()
		for w, code := range codes {
			switch {
			case w == writers && code != http.StatusConflict:
				t.Fatalf("round %d: the conflicting batch was answered %d: %v", round, code, bodies[w])
			case w == writers:
				if bodies[w]["aggregateId"] != aggs[w] || bodies[w]["currentVersion"] != 0.0 {
					t.Errorf("round %d: conflict %v", round, bodies[w])
				}
			case code != http.StatusCreated:
				t.Fatalf("round %d: batch %d was answered %d: %v", round, w, code, bodies[w])
			default:
				evs, _ := bodies[w]["events"].([]any)
				if len(evs) != perBatch || evs[0].(map[string]any)["version"] != float64(round*perBatch+1) {
					t.Fatalf("round %d: batch %d answered %v", round, w, bodies[w])
				}
			}
		}
	}
	for w, agg := range aggs {
		code, st := getJSON(t, h.url+"/v1/streams/"+agg)
		if code != http.StatusOK {
			t.Fatalf("%s: %d %v", agg, code, st)
		}
		evs, _ := st["events"].([]any)
		if w == writers {
			if len(evs) != 0 {
				t.Errorf("%s: the conflicting batches wrote %d events", agg, len(evs))
			}
			continue
		}
		if len(evs) != rounds*perBatch {
			t.Fatalf("%s: %d events, want %d", agg, len(evs), rounds*perBatch)
		}
		for i, e := range evs {
			ev := e.(map[string]any)
			data, _ := ev["data"].(map[string]any)
			if want := formatted(w, i/perBatch, i%perBatch); ev["version"] != float64(i+1) || data["formatted"] != want {
				t.Fatalf("%s: event %d is version %v, %v; want version %d, %s", agg, i, ev["version"], data["formatted"], i+1, want)
			}
		}
	}
}
