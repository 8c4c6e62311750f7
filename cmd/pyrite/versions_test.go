package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// TestEveryWriterGetsAVersion races ingest appends with direct franz-go writes (Confluent
// framing, ProgressUpdated v1, no ce_aggregateversion: what a KafkaJS service writes) on the
// same 20 aggregates. Every accepted event must be in its aggregate's stream and in the
// projection, once, with versions 1..N.
func TestEveryWriterGetsAVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("runs pyrite dev")
	}
	dev := startDev(t, t.TempDir())
	defer func() {
		if err := dev.stop(); err != nil {
			t.Errorf("pyrite dev stopped with %v", err)
		}
	}()
	const (
		aggregates = 20
		each       = 15 // per writer and aggregate
		n          = 2 * each
	)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := codec.Dial(dev.registry)
	v1, err := c.Version(ctx, "pyrite.workeffort.ProgressUpdated", 1)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.kafka), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	agg := func(a int) string { return fmt.Sprintf("we-race-%d", a) }
	var wg sync.WaitGroup
	errs := make(chan error, 2*aggregates)
	for a := range aggregates {
		wg.Add(2)
		go func() { // ingest
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf(`{"id":"ingest-%d-%d","type":"WorkEffort:ProgressUpdated","aggregateId":%q,"data":{"oldProgress":0,"newProgress":%d,"delta":%d,"formatted":"x"}}`, a, i, agg(a), i, i)
				resp, err := http.Post(dev.ingest+"/v1/events", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("ingest %s #%d: %d", agg(a), i, resp.StatusCode)
					return
				}
			}
		}()
		go func() { // a Kafka-native service
			defer wg.Done()
			for i := range each {
				value, err := c.Encode(v1, map[string]any{"oldProgress": 0, "newProgress": i})
				if err != nil {
					errs <- err
					return
				}
				rec := &kgo.Record{Topic: "pyrite.work-effort.raw", Key: []byte(agg(a)), Value: value,
					Headers: []kgo.RecordHeader{{Key: "ce_id", Value: fmt.Appendf(nil, "direct-%d-%d", a, i)}}}
				if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	type stream struct {
		Version int64 `json:"version"`
		Events  []struct {
			ID      string `json:"id"`
			Version int64  `json:"version"`
		} `json:"events"`
	}
	// Direct writes reach the store's index through its tail, and everything reaches the
	// projection through the upcaster: wait for both, within one bound.
	deadline := time.Now().Add(45 * time.Second)
	for a := range aggregates {
		var st stream
		for {
			getJSON(t, dev.ingest+"/v1/streams/"+agg(a), &st)
			if len(st.Events) >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		ids := map[string]bool{}
		for i, ev := range st.Events {
			ids[ev.ID] = true
			if ev.Version != int64(i+1) {
				t.Errorf("%s: event %d (%s) has version %d", agg(a), i, ev.ID, ev.Version)
				break
			}
		}
		if st.Version != n || len(st.Events) != n || len(ids) != n {
			t.Errorf("%s: stream at version %d with %d events, %d distinct ids; want %d of each", agg(a), st.Version, len(st.Events), len(ids), n)
		}
		for i := range each {
			for _, id := range []string{fmt.Sprintf("ingest-%d-%d", a, i), fmt.Sprintf("direct-%d-%d", a, i)} {
				if !ids[id] {
					t.Errorf("%s: accepted event %s is not in the stream", agg(a), id)
				}
			}
		}
		// The projection reaches version n (bounded wait) and no event of it was dead-lettered.
		var we struct {
			Version int64 `json:"version"`
		}
		for {
			resp, err := http.Get(fmt.Sprintf("%s/v1/work-efforts/%s?minVersion=%d", dev.projector, agg(a), n))
			if err != nil {
				t.Fatal(err)
			}
			_ = json.NewDecoder(resp.Body).Decode(&we)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || time.Now().After(deadline) {
				break
			}
		}
		if we.Version != n {
			t.Errorf("%s: projection at version %d, want %d", agg(a), we.Version, n)
		}
	}
	for _, g := range []string{"work-efforts", "upcaster"} {
		var out strings.Builder
		if err := dispatch(ctx, "pyrite dlq", dlqCommands(), []string{"list", g, "--brokers", dev.kafka, "--output", "json"}, &out, &out); err != nil {
			t.Fatalf("dlq list %s: %v\n%s", g, err, out.String())
		}
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var d map[string]any
			if json.Unmarshal([]byte(line), &d) == nil && d["reason"] != nil {
				t.Errorf("dead letter in %s: %s", g, line)
			}
		}
	}
}
