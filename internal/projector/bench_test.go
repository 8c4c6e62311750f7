package projector_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const benchEvents = 20_000

// BenchmarkProjection measures events applied per second by the WorkEffort
// projection into SQLite and PostgreSQL (PYRITE_TEST_POSTGRES), beside a
// bare franz-go consume of the same topic, in the same run. Each iteration
// projects the whole topic into a new, empty store.
func BenchmarkProjection(b *testing.B) {
	s := stacktest.Start(b)
	var recs []*kgo.Record
	now := time.Now().UTC()
	for i := range benchEvents {
		id := fmt.Sprintf("we-%d", i%2000)
		if i < 2000 {
			recs = append(recs, s.Record(b, eventsTopic, "WorkEffort:Created", id, 0,
				map[string]any{"title": "T", "description": nil, "createdAt": now, "assignee": nil}))
			continue
		}
		recs = append(recs, s.Record(b, eventsTopic, "WorkEffort:ProgressUpdated", id, 0,
			map[string]any{"oldProgress": i % 100, "newProgress": i%100 + 1, "delta": 1, "formatted": "x"}))
	}
	s.Produce(b, recs...)

	b.Run("franz-go consume", func(b *testing.B) {
		for range b.N {
			start := time.Now()
			cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(eventsTopic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for n < benchEvents {
				n += len(cl.PollFetches(context.Background()).Records())
			}
			cl.Close()
			b.ReportMetric(float64(benchEvents)/time.Since(start).Seconds(), "events/s")
		}
	})
	stores := []struct {
		name string
		url  func(i int) string
	}{
		{"sqlite", func(i int) string { return filepath.Join(b.TempDir(), fmt.Sprintf("p%d.db", i)) }},
		{"postgres", func(int) string { return stacktest.PostgresURL(b) }},
	}
	for _, st := range stores {
		b.Run("projection "+st.name, func(b *testing.B) {
			for i := range b.N {
				url := st.url(i)
				start := time.Now()
				api, stop := startProjectorOpts(b, s, url, 1000)
				waitPositions(b, api, benchEvents)
				elapsed := time.Since(start)
				stop()
				b.ReportMetric(float64(benchEvents)/elapsed.Seconds(), "events/s")
			}
		})
	}
}
