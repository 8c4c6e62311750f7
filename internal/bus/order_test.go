package bus_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// TestRunnerKeepsKeyOrderThroughRetries: a webhook whose first delivery of A's Started fails
// receives A's Started before A's Completed; B, on the same partition, is not held up.
func TestRunnerKeepsKeyOrderThroughRetries(t *testing.T) {
	k := newKafka(t)
	rec := func(key, typ, v string) *kgo.Record {
		return &kgo.Record{Topic: srcTopic, Partition: 0, Key: []byte(key), Value: []byte(v),
			Headers: hdrs("ce_specversion", "1.0", "ce_type", typ, "ce_id", key+"-"+v)}
	}
	if err := k.cl.ProduceSync(t.Context(),
		rec("A", "WorkEffort:Started", "A-started"),
		rec("B", "WorkEffort:Started", "B-started"),
		rec("A", "WorkEffort:Completed", "A-completed"),
		rec("B", "WorkEffort:Completed", "B-completed"),
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	var hook recorder
	failed := false
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	parkedAtRetry := -1.0
	on(t, b, "*", func(_ context.Context, ev *bus.Event) error {
		if ev.Data["value"] == "A-started" {
			if !failed {
				failed = true
				return errors.New("webhook endpoint down")
			}
			parkedAtRetry = metricSum(t, reg, "pyrite_runner_parked_keys")
		}
		hook.add(ev)
		return nil
	}, bus.Options{Name: "webhook"})
	const delay = 400 * time.Millisecond
	k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, RetryDelay: delay, MaxAttempts: 5, Metrics: m})
	waitFor(t, "every event delivered", func() bool { return hook.len() == 4 })
	got := hook.values()
	ia, ic := slices.Index(got, "A-started"), slices.Index(got, "A-completed")
	if ia < 0 || ic < 0 || ia > ic {
		t.Fatalf("webhook received %v: A's Completed before its Started", got)
	}
	// B flowed while A waited for its retry.
	if ib := slices.Index(got, "B-completed"); ib > ia {
		t.Fatalf("webhook received %v: B waited behind A's retry", got)
	}
	// Nothing is parked any more, and the partition's offsets are all committed.
	waitFor(t, "committed", func() bool { return k.committed()[0] == 4 })
	if parkedAtRetry != 1 {
		t.Fatalf("parked keys gauge %v while A's Started was retried, want 1", parkedAtRetry)
	}
	if v := metricSum(t, reg, "pyrite_runner_parked_keys"); v != 0 {
		t.Fatalf("parked keys gauge %v after the retry succeeded", v)
	}
}

// metricSum is the sum of a gauge's or a counter's series in reg (0 when it has none).
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestRunnerParkedKeyBound: past MaxParkedPerKey records behind a parked key, the whole
// partition waits for the key's retry (nothing is dropped, order holds).
func TestRunnerParkedKeyBound(t *testing.T) {
	k := newKafka(t)
	rec := func(key, v string) *kgo.Record {
		return &kgo.Record{Topic: srcTopic, Partition: 1, Key: []byte(key), Value: []byte(v),
			Headers: hdrs("ce_specversion", "1.0", "ce_type", "WorkEffort:Started", "ce_id", key+"-"+v)}
	}
	if err := k.cl.ProduceSync(t.Context(), rec("A", "a1"), rec("A", "a2"), rec("A", "a3"), rec("B", "b1")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	b := bus.New()
	var got recorder
	failed := false
	on(t, b, "*", func(_ context.Context, ev *bus.Event) error {
		if ev.Data["value"] == "a1" && !failed {
			failed = true
			return errors.New("down")
		}
		got.add(ev)
		return nil
	}, bus.Options{Name: "hook"})
	k.start(bus.RunnerConfig{Bus: b, RetryTopic: retryTopic, RetryDelay: 200 * time.Millisecond, MaxParkedPerKey: 1})
	waitFor(t, "every event delivered", func() bool { return got.len() == 4 })
	// a2 waited behind a1 (within the bound); a3 was one too many, so b1 waited as well.
	if v := got.values(); !slices.Equal(v, []string{"a1", "a2", "a3", "b1"}) {
		t.Fatalf("delivered %v, want a1 a2 a3 b1", v)
	}
}
