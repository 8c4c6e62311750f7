package bus_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// TestRunnerFastWorkerIsNotPaused: a worker that fills up (MaxBuffered) but keeps up is
// waited for, not paused. A paused partition is left out of the fetch in flight, which,
// when the other partitions have nothing new, waits FetchMaxWait before it ends: a resumed
// partition waited that long for each MaxBuffered/2 records (the runner alone on the
// records of BenchmarkRunner in bench/watermill had 200 ms gaps in most runs).
func TestRunnerFastWorkerIsNotPaused(t *testing.T) {
	k := newKafka(t)
	const n = 3000
	want := seq("v", n)
	for i := 0; i < n; i += 500 {
		k.produce(0, "we-0", "WorkEffort:ProgressUpdated", want[i:i+500]...) // partitions 1 and 2 stay empty
	}
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	var rec recorder
	on(t, b, "WorkEffort:*", func(_ context.Context, ev *bus.Event) error { rec.add(ev); return nil }, bus.Options{Name: "count"})
	stop := k.start(bus.RunnerConfig{Bus: b, MaxBuffered: 100, Metrics: m})
	waitFor(t, fmt.Sprint(n, " events"), func() bool { return rec.len() >= n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := rec.values(); !slices.Equal(got, want) {
		t.Fatalf("delivered %d events out of order or twice", len(got))
	}
	if v := metricSum(t, reg, "pyrite_runner_paused_total"); v != 0 {
		t.Fatalf("a worker that keeps up was paused %v times", v)
	}
}

// TestRunnerStuckPartitionIsPaused: a worker that cannot drain has its partition paused, so
// the other partitions of the runner go on (and are not held behind it), and nothing of the
// stuck partition is lost or reordered once it moves again.
func TestRunnerStuckPartitionIsPaused(t *testing.T) {
	k := newKafka(t)
	const n = 1000
	want := map[int32][]string{0: seq("a", n), 1: seq("b", n)}
	for p, vs := range want {
		for i := 0; i < n; i += 500 {
			k.produce(p, fmt.Sprint("we-", p), "WorkEffort:ProgressUpdated", vs[i:i+500]...)
		}
	}
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	b := bus.New()
	var rec recorder
	on(t, b, "WorkEffort:*", func(ctx context.Context, ev *bus.Event) error {
		if ev.Origin.Partition == 0 {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		rec.add(ev)
		return nil
	}, bus.Options{Name: "count"})
	stop := k.start(bus.RunnerConfig{Bus: b, MaxBuffered: 100, Metrics: m})
	defer func() { _ = stop() }()
	waitFor(t, "partition 1 while partition 0 is stuck", func() bool { return rec.len() >= n })
	waitFor(t, "partition 0 paused", func() bool { return metricSum(t, reg, "pyrite_runner_paused_total") >= 1 })
	close(release)
	waitFor(t, "every event", func() bool { return rec.len() >= 2*n })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := map[int32][]string{}
	for _, ev := range rec.all() {
		got[ev.Origin.Partition] = append(got[ev.Origin.Partition], ev.Data["value"].(string))
	}
	for p := range want {
		if !slices.Equal(got[p], want[p]) {
			t.Fatalf("partition %d: %d events out of order or twice", p, len(got[p]))
		}
	}
}
