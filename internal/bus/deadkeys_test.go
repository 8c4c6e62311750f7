package bus_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// TestRunnerDeadLetterHoldsKey: a webhook that permanently fails A's Started does not get A's
// Completed (it is dead-lettered behind, reason parked) while B's records flow; a restarted
// runner still holds A (rebuilt from the DLQ); the group's other handler gets every record;; redriving A's dead letters through the retry
// topic delivers Started, Completed and Updated in that order (also when Started's redelivery
// fails transiently once) and releases A; a skip release
// frees a key without delivering anything.
func TestRunnerDeadLetterHoldsKey(t *testing.T) {
	k := newKafka(t)
	rec := func(key, typ, v string) *kgo.Record {
		return &kgo.Record{Topic: srcTopic, Partition: 0, Key: []byte(key), Value: []byte(v),
			Headers: hdrs("ce_specversion", "1.0", "ce_type", typ, "ce_id", key+"-"+v)}
	}
	produce := func(rs ...*kgo.Record) {
		t.Helper()
		if err := k.cl.ProduceSync(t.Context(), rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	var broken, flaky atomic.Bool
	broken.Store(true)
	var hook, audit recorder
	newBus := func() *bus.Bus {
		b := bus.New()
		on(t, b, "*", func(_ context.Context, ev *bus.Event) error {
			if broken.Load() && ev.Data["value"] == "A-started" {
				return bus.Permanent(errors.New("no template"))
			}
			if ev.Data["value"] == "A-started" && flaky.CompareAndSwap(true, false) {
				return errors.New("endpoint flapping") // the redriven Started fails once more
			}
			hook.add(ev)
			return nil
		}, bus.Options{Name: "webhook"})
		// Another handler of the group: the key is held for the failed handler only.
		on(t, b, "*", func(_ context.Context, ev *bus.Event) error { audit.add(ev); return nil }, bus.Options{Name: "audit"})
		return b
	}
	reg := prometheus.NewRegistry()
	m, err := bus.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	produce(rec("A", "WorkEffort:Started", "A-started"), rec("B", "WorkEffort:Started", "B-started"),
		rec("A", "WorkEffort:Completed", "A-completed"), rec("B", "WorkEffort:Completed", "B-completed"))
	stop := k.start(bus.RunnerConfig{Bus: newBus(), RetryTopic: retryTopic, Metrics: m})
	waitFor(t, "B's records", func() bool { return hook.len() == 2 })
	dead := k.read(dlqTopic, 2)
	if got := hook.values(); !slices.Equal(got, []string{"B-started", "B-completed"}) {
		t.Fatalf("delivered %v, want B's records only", got)
	}
	for i, want := range []struct{ value, reason string }{{"A-started", bus.ReasonPermanent}, {"A-completed", bus.ReasonParked}} {
		h := headerMap(dead[i].Headers)
		if string(dead[i].Value) != want.value || h[bus.HeaderDLQReason] != want.reason || h[bus.HeaderDLQHoldsKey] != "true" {
			t.Fatalf("dead letter %d: %s %v, want %s (%s) holding its key", i, dead[i].Value, h, want.value, want.reason)
		}
	}
	waitFor(t, "dead keys gauge", func() bool { return metricSum(t, reg, "pyrite_runner_dead_keys") == 1 })
	if h := headerMap(dead[1].Headers); h[bus.HeaderDLQHandler] != "webhook" {
		t.Errorf("A-completed parked for %q, want webhook only", h[bus.HeaderDLQHandler])
	}
	waitFor(t, "every record to the other handler", func() bool { return audit.len() == 4 })
	waitFor(t, "committed", func() bool { return k.committed()[0] == 4 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// A new runner rebuilds the hold from the DLQ: A's next record is parked too.
	produce(rec("A", "WorkEffort:Updated", "A-updated"), rec("B", "WorkEffort:Updated", "B-updated"))
	k.start(bus.RunnerConfig{Bus: newBus(), RetryTopic: retryTopic})
	waitFor(t, "B's update", func() bool { return hook.len() == 3 })
	dead = k.read(dlqTopic, 3)
	if h := headerMap(dead[2].Headers); string(dead[2].Value) != "A-updated" || h[bus.HeaderDLQReason] != bus.ReasonParked {
		t.Fatalf("after a restart A-updated was not parked: %s %v (delivered %v)", dead[2].Value, h, hook.values())
	}

	// The fix is deployed and A's dead letters are redriven, as pyrite dlq redrive writes them;
	// the first redelivery of Started fails transiently, and Completed waits for its retry.
	broken.Store(false)
	flaky.Store(true)
	var redriven []*kgo.Record
	for i, d := range dead {
		h := headerMap(d.Headers)
		redriven = append(redriven, &kgo.Record{Topic: retryTopic, Key: d.Key, Value: d.Value, Headers: append(
			hdrs("ce_specversion", "1.0", "ce_type", h["ce_type"], "ce_id", h["ce_id"]),
			hdrs(bus.HeaderRedrivenFrom, dlqTopic+"@"+strconv.Itoa(i), bus.HeaderRetryAttempt, "0",
				bus.HeaderRetryHandlers, h[bus.HeaderDLQHandler],
				bus.HeaderRetryNotBefore, time.Now().UTC().Format(time.RFC3339Nano),
				bus.HeaderOriginTopic, h[bus.HeaderOriginTopic], bus.HeaderOriginPartition, h[bus.HeaderOriginPartition],
				bus.HeaderOriginOffset, h[bus.HeaderOriginOffset])...)})
	}
	produce(redriven...)
	waitFor(t, "A's redriven records", func() bool { return hook.len() == 6 })
	// Released: A's next record is delivered, not parked.
	produce(rec("A", "WorkEffort:Archived", "A-archived"))
	waitFor(t, "A's next record", func() bool { return hook.len() == 7 })
	if got := hook.values(); !slices.Equal(got[3:], []string{"A-started", "A-completed", "A-updated", "A-archived"}) {
		t.Fatalf("delivered %v: A's records out of order", got)
	}

	// A skip release frees a key without delivering its dead letter.
	broken.Store(true)
	produce(rec("A", "WorkEffort:Started", "A-started"), rec("A", "WorkEffort:Completed", "A-again"))
	dead = k.read(dlqTopic, 5)
	var releases []*kgo.Record
	for _, d := range dead[3:] {
		h := headerMap(d.Headers)
		releases = append(releases, &kgo.Record{Topic: retryTopic, Key: d.Key, Headers: hdrs(
			bus.HeaderRetryRelease, "skipped", bus.HeaderRetryAttempt, "0", bus.HeaderRetryHandlers, h[bus.HeaderDLQHandler],
			bus.HeaderRetryNotBefore, time.Now().UTC().Format(time.RFC3339Nano),
			bus.HeaderOriginTopic, h[bus.HeaderOriginTopic], bus.HeaderOriginPartition, h[bus.HeaderOriginPartition],
			bus.HeaderOriginOffset, h[bus.HeaderOriginOffset])})
	}
	produce(releases...)
	produce(rec("A", "WorkEffort:Archived", "A-last"))
	waitFor(t, "A's record after the skip", func() bool { return hook.len() == 8 })
	if got := hook.values(); got[7] != "A-last" {
		t.Fatalf("delivered %v, want A-last after the skip", got)
	}
}
