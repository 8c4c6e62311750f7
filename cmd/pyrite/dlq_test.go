package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/schemas"
)

// TestDLQ runs a reactor group whose handler is broken, so its records end in the group's
// dead-letter topic; then fixes the handler and redrives them through the pipeline.
func TestDLQ(t *testing.T) {
	s := stacktest.Start(t)
	const group, dlq = "notifications", "pyrite.notifications.dlq"

	var broken atomic.Bool
	broken.Store(true)
	var freeHandled atomic.Int64
	var mu sync.Mutex
	var handled []*bus.Event
	b := bus.New(bus.WithName(group))
	if _, err := b.On("WorkEffort:*", func(_ context.Context, ev *bus.Event) error {
		if strings.HasPrefix(ev.ID, "sentinel-") {
			return nil
		}
		if strings.HasPrefix(ev.ID, "free-") {
			freeHandled.Add(1)
			return nil
		}
		if broken.Load() {
			return bus.Permanent(errors.New("no template for this event"))
		}
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, ev)
		return nil
	}, bus.Options{Name: "notify"}); err != nil {
		t.Fatal(err)
	}
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := bus.NewCodecDecoder(codec.Dial(s.RegistryURL), s.Topology, files)
	if err != nil {
		t.Fatal(err)
	}
	// Another group reads the same topic and works: a redrive of notifications' dead letters
	// must not reach it.
	var otherHandled, sentinels atomic.Int64
	other := bus.New(bus.WithName("webhooks"))
	if _, err := other.On("WorkEffort:*", func(_ context.Context, ev *bus.Event) error {
		if strings.HasPrefix(ev.ID, "sentinel-") {
			sentinels.Add(1)
		} else {
			otherHandled.Add(1)
		}
		return nil
	}, bus.Options{Name: "hook"}); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []bus.RunnerConfig{
		{Group: group, Topics: []string{weEvents}, RetryTopic: "pyrite.notifications.retry", DLQTopic: dlq, Decoder: dec, Bus: b},
		{Group: "webhooks", Topics: []string{weEvents}, RetryTopic: "pyrite.webhooks.retry", DLQTopic: "pyrite.webhooks.dlq", Decoder: dec, Bus: other},
	} {
		runner, err := bus.NewRunner(cfg, kgo.SeedBrokers(s.Brokers...), kgo.FetchMaxWait(100*time.Millisecond),
			kgo.AutoCommitInterval(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		runDone := make(chan error, 1)
		go func() { runDone <- runner.Run(ctx) }()
		t.Cleanup(func() {
			stop()
			if err := <-runDone; err != nil {
				t.Errorf("runner %s: %v", cfg.Group, err)
			}
		})
	}
	// otherCaughtUp writes a sentinel event for each of keys (after everything already on
	// their partitions) and waits until the webhooks group handled them all.
	otherCaughtUp := func(t *testing.T, keys ...string) {
		t.Helper()
		want := sentinels.Load() + int64(len(keys))
		for _, k := range keys {
			// A key of k's partition, not k: notifications holds k behind its dead letters.
			r := created(t, s, samePartitionKey(t, s, k), time.Now())
			for i := range r.Headers {
				if r.Headers[i].Key == "ce_id" {
					r.Headers[i].Value = []byte("sentinel-" + k + "-" + strconv.FormatInt(want, 10))
				}
			}
			s.Produce(t, r)
		}
		deadline := time.Now().Add(20 * time.Second)
		for sentinels.Load() < want {
			if time.Now().After(deadline) {
				t.Fatalf("webhooks handled %d sentinels, want %d", sentinels.Load(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	good := []*kgo.Record{created(t, s, "we-1", time.Now()), created(t, s, "we-2", time.Now())}
	garbage := &kgo.Record{Topic: weEvents, Key: []byte("we-3"), Value: []byte{0, 0, 0, 0, 99, 1},
		Headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("WorkEffort:Started")}, {Key: "ce_id", Value: []byte("garbage-1")}}}
	s.Produce(t, append(slices.Clone(good), garbage)...)
	waitEnd := func(topic string, n int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for s.EndOffsets(t, topic)[topic] < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s has %d records, want %d", topic, s.EndOffsets(t, topic)[topic], n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitEnd(dlq, 3)

	list := func(t *testing.T, args ...string) []deadLetter {
		t.Helper()
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "list", group, "--output", "json"}, opsArgs(s, args...)...)...)
		if code != 0 {
			t.Fatalf("dlq list: exit %d: %s", code, stderr)
		}
		var out []deadLetter
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		return out
	}
	find := func(ds []deadLetter, key string) *deadLetter {
		for i := range ds {
			if ds[i].Key != nil && *ds[i].Key == key {
				return &ds[i]
			}
		}
		return nil
	}

	t.Run("list", func(t *testing.T) {
		ds := list(t)
		if len(ds) != 3 {
			t.Fatalf("%d dead letters, want 3: %+v", len(ds), ds)
		}
		for _, tc := range []struct{ key, reason, typ string }{
			{"we-1", bus.ReasonPermanent, "WorkEffort:Created"},
			{"we-2", bus.ReasonPermanent, "WorkEffort:Created"},
			{"we-3", bus.ReasonUnknownSchema, "WorkEffort:Started"},
		} {
			d := find(ds, tc.key)
			if d == nil || d.Reason != tc.reason || d.Type != tc.typ || d.Group != group || d.Origin == nil || d.Origin.Topic != weEvents || d.Redriven != nil {
				t.Errorf("%s: %+v", tc.key, d)
			}
		}
		if d := find(ds, "we-1"); d != nil && (d.Handler != "notify" || !strings.Contains(d.Error, "no template") || d.Attempts != 1) {
			t.Errorf("we-1: handler %q, error %q, attempts %d", d.Handler, d.Error, d.Attempts)
		}
		for _, d := range ds {
			if !d.HoldsKey || !d.Parked {
				t.Errorf("%s: holdsKey %v parked %v, want both", *d.Key, d.HoldsKey, d.Parked)
			}
		}
		code, stdout, _ := runCLI(t, append([]string{"dlq", "list", group}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "REASON") || !strings.Contains(stdout, "3 dead letters, 0 redriven, 0 skipped, 3 pending") ||
			!strings.Contains(stdout, "3 keys parked: we-") || !strings.Contains(stdout, "pending, key parked") {
			t.Errorf("table: exit %d\n%s", code, stdout)
		}
	})
	t.Run("show", func(t *testing.T) {
		d := find(list(t), "we-2")
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "show", group, "--at", fmt.Sprintf("%d:%d", d.Partition, d.Offset)}, opsArgs(s)...)...)
		lines := jsonLines(t, stdout)
		if code != 0 || len(lines) != 1 {
			t.Fatalf("exit %d, %d lines: %s\n%s", code, len(lines), stdout, stderr)
		}
		value, _ := lines[0]["value"].(map[string]any)
		dl, _ := lines[0]["deadLetter"].(map[string]any)
		if value["title"] != "Title we-2" || dl["reason"] != bus.ReasonPermanent || lines[0]["topic"] != dlq {
			t.Errorf("line = %v", lines[0])
		}
		code, stdout, _ = runCLI(t, append([]string{"dlq", "show", group}, opsArgs(s)...)...)
		if n := len(jsonLines(t, stdout)); code != 0 || n != 3 {
			t.Errorf("show everything: exit %d, %d lines", code, n)
		}
		code, _, stderr = runCLI(t, append([]string{"dlq", "show", group, "--at", "0:999"}, opsArgs(s)...)...)
		if code != 1 || !strings.Contains(stderr, "do not exist") {
			t.Errorf("--at of nothing: exit %d: %s", code, stderr)
		}
	})
	t.Run("redrive dry run changes nothing", func(t *testing.T) {
		before := s.EndOffsets(t, weEvents, dlq)
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "redrive", group, "--dry-run"}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "3 dead letters would be redriven") {
			t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
		if after := s.EndOffsets(t, weEvents, dlq); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a dry run wrote records: %v -> %v", before, after)
		}
	})
	t.Run("a dead letter holds its key, other keys flow", func(t *testing.T) {
		broken.Store(false) // the fix is deployed, but we-1's Created is still dead
		free := created(t, s, samePartitionKey(t, s, "we-1"), time.Now())
		for i := range free.Headers {
			if free.Headers[i].Key == "ce_id" {
				free.Headers[i].Value = []byte("free-1")
			}
		}
		s.Produce(t, started(t, s, "we-1", time.Now()), free)
		waitEnd(dlq, 4)
		ds := list(t, "--parked", "--key", "we-1")
		if len(ds) != 2 || ds[1].Reason != bus.ReasonParked || ds[1].Type != "WorkEffort:Started" || !ds[1].HoldsKey {
			t.Fatalf("we-1's dead letters %+v, want Created then Started (parked)", ds)
		}
		deadline := time.Now().Add(20 * time.Second)
		for freeHandled.Load() != 1 {
			if time.Now().After(deadline) {
				t.Fatal("another key of the partition was held up")
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(handled) != 0 {
			t.Errorf("handled %d events of held keys", len(handled))
		}
	})
	t.Run("redrive puts fixed records back through the pipeline", func(t *testing.T) {
		otherCaughtUp(t, "we-1", "we-2")
		otherBefore := otherHandled.Load()
		broken.Store(false) // the fix is deployed
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "redrive", group, "--type", "*:Created", "--output", "json"}, opsArgs(s)...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
		var done []redriven
		if err := json.Unmarshal([]byte(stdout), &done); err != nil || len(done) != 2 {
			t.Fatalf("redriven %v (%v), want we-1 and we-2:\n%s", done, err, stdout)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(handled)
			mu.Unlock()
			if n >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the handler got %d redriven events, want 2", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The other group's counts did not change: the records went to notifications alone.
		otherCaughtUp(t, "we-1", "we-2")
		if n := otherHandled.Load(); n != otherBefore {
			t.Errorf("the webhooks group handled %d events after the redrive, %d before", n, otherBefore)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, ev := range handled {
			orig := good[slices.IndexFunc(good, func(r *kgo.Record) bool { return string(r.Key) == ev.AggregateID })]
			if ev.ID != string(headerValue(orig.Headers, "ce_id")) || string(ev.Origin.Key) != string(orig.Key) {
				t.Errorf("event %d: id %q key %q, want those of %s", i, ev.ID, ev.Origin.Key, orig.Key)
			}
			// The original headers come back, in order, with where it was redriven from.
			var kept []kgo.RecordHeader
			from := ""
			for _, h := range ev.Origin.Headers {
				if h.Key == headerRedrivenFrom {
					from = string(h.Value)
					continue
				}
				kept = append(kept, h)
			}
			if fmt.Sprint(kept) != fmt.Sprint(orig.Headers) || !strings.HasPrefix(from, dlq+"[") {
				t.Errorf("event %d headers %v (from %q), want %v", i, kept, from, orig.Headers)
			}
		}
		ds := list(t)
		for _, key := range []string{"we-1", "we-2"} {
			if d := find(ds, key); d == nil || d.Redriven == nil || !strings.HasPrefix(d.Redriven.To, "pyrite.notifications.retry[") {
				t.Errorf("%s not marked redriven: %+v", key, d)
			}
		}
		if d := find(ds, "we-3"); d == nil || d.Redriven != nil {
			t.Errorf("we-3 (filtered out by --type) = %+v", d)
		}
	})
	t.Run("redriving a parked key delivers its records in order and releases it", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "redrive", group, "--key", "we-1"}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "1 dead letters redriven") {
			t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(handled)
			mu.Unlock()
			if n >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the handler got %d events, want we-1's Started too", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		var we1 []string
		for _, ev := range handled {
			if ev.AggregateID == "we-1" {
				we1 = append(we1, ev.Type)
			}
		}
		mu.Unlock()
		if !slices.Equal(we1, []string{"WorkEffort:Created", "WorkEffort:Started"}) {
			t.Errorf("we-1's events arrived as %v", we1)
		}
		if ds := list(t, "--parked"); len(ds) != 1 || *ds[0].Key != "we-3" {
			t.Errorf("parked after the redrive: %+v, want we-3 only", ds)
		}
	})
	t.Run("redriving again skips the marked ones", func(t *testing.T) {
		before := s.EndOffsets(t, weEvents, "pyrite.notifications.retry")
		code, stdout, _ := runCLI(t, append([]string{"dlq", "redrive", group, "--type", "*:Created"}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "0 dead letters redriven") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
		if after := s.EndOffsets(t, weEvents, "pyrite.notifications.retry"); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("records written: %v -> %v", before, after)
		}
		if ds := list(t, "--pending"); len(ds) != 1 || *ds[0].Key != "we-3" {
			t.Errorf("pending = %+v, want we-3 only", ds)
		}
	})
	t.Run("a record that fails again comes back, saying it was redriven", func(t *testing.T) {
		d := find(list(t), "we-3")
		// --at given twice names one dead letter: it is redriven once.
		at := fmt.Sprintf("%d:%d", d.Partition, d.Offset)
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "redrive", group, "--at", at, "--at", at + "," + at}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "1 dead letters redriven") {
			t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
		}
		// The DLQ's end offset counts transaction markers too, so wait on
		// what a read_committed reader shows, not on a record count.
		var again map[string]any
		for deadline := time.Now().Add(20 * time.Second); ; {
			code, stdout, _ = runCLI(t, append([]string{"dlq", "show", group}, opsArgs(s)...)...)
			for _, l := range jsonLines(t, stdout) {
				if h, _ := l["headers"].(map[string]any); h[headerRedrivenFrom] != nil {
					again = l
				}
			}
			if code != 0 || again != nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if code != 0 || again == nil || again["key"] != "we-3" || again["error"] == nil {
			t.Errorf("no new dead letter of we-3 carrying %s:\n%s", headerRedrivenFrom, stdout)
		}
	})
	t.Run("skip releases a key", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "skip", group, "--key", "we-3", "--output", "json"}, opsArgs(s)...)...)
		var out []skippedView
		if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || len(out) != 1 || !out[0].Released { // we-3's first dead letter was redriven
			t.Fatalf("exit %d: %s\n%s", code, stdout, stderr)
		}
		if ds := list(t, "--pending"); len(ds) != 0 {
			t.Errorf("pending after the skip: %+v", ds)
		}
		// we-3's next record reaches the handler; the skipped ones are never redriven.
		s.Produce(t, created(t, s, "we-3", time.Now()))
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			n := len(handled)
			last := handled[n-1]
			mu.Unlock()
			if n == 4 && last.AggregateID == "we-3" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("we-3 still held after the skip: %d events handled", n)
			}
			time.Sleep(50 * time.Millisecond)
		}
		code, stdout, _ = runCLI(t, append([]string{"dlq", "redrive", group}, opsArgs(s)...)...)
		if code != 0 || !strings.Contains(stdout, "0 dead letters redriven") {
			t.Errorf("redrive after the skip: exit %d:\n%s", code, stdout)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"no subcommand", []string{"dlq"}, 2, "needs a command"},
			{"no group", []string{"dlq", "list"}, 2, "missing GROUP"},
			{"undeclared group", []string{"dlq", "list", "nope"}, 2, `"nope" is not a declared group`},
			{"bad --at", []string{"dlq", "show", group, "--at", "x"}, 2, "PARTITION:OFFSET"},
			{"bad --type", []string{"dlq", "redrive", group, "--type", ":"}, 2, "--type"},
			{"redrive --at of nothing", []string{"dlq", "redrive", group, "--at", "2:999"}, 1, "do not exist or were redriven"},
			{"skip without --key or --at", []string{"dlq", "skip", group}, 2, "--key or --at is required"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				args := tt.args
				if len(args) > 2 {
					args = opsArgs(s, args...)
				}
				code, _, stderr := runCLI(t, args...)
				if code != tt.code || !strings.Contains(stderr, tt.stderr) {
					t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.stderr, stderr)
				}
			})
		}
	})
}

// samePartitionKey is a key that Kafka's key hash puts on the same partition of weEvents as
// key.
func samePartitionKey(t *testing.T, s *stacktest.Stack, key string) string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), weEvents)
	if err != nil {
		t.Fatal(err)
	}
	n := len(ends[weEvents])
	p := kgo.StickyKeyPartitioner(nil).ForTopic(weEvents)
	want := p.Partition(&kgo.Record{Key: []byte(key)}, n)
	for i := 0; ; i++ {
		if c := fmt.Sprintf("%s-other-%d", key, i); p.Partition(&kgo.Record{Key: []byte(c)}, n) == want {
			return c
		}
	}
}

func headerValue(hs []kgo.RecordHeader, k string) []byte {
	for _, h := range hs {
		if h.Key == k {
			return h.Value
		}
	}
	return nil
}

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in   string
		want position
		err  bool
	}{
		{in: "0:0", want: position{0, 0}},
		{in: "2:1042", want: position{2, 1042}},
		{in: "2", err: true},
		{in: ":3", err: true},
		{in: "-1:3", err: true},
		{in: "1:-3", err: true},
		{in: "a:b", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePosition(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("parsePosition(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0:0", "2:1042", "1:", "-1:2", "9999999999:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePosition(s)
		if err != nil {
			return
		}
		if p.Partition < 0 || p.Offset < 0 {
			t.Errorf("%q: negative %+v accepted", s, p)
		}
		if back, err := parsePosition(fmt.Sprintf("%d:%d", p.Partition, p.Offset)); err != nil || back != p {
			t.Errorf("%q: %+v does not read back (%v)", s, p, err)
		}
	})
}
