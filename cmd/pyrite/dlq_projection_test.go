package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestDLQRedriveIntoProjection: a redrive into the work-efforts projection reaches that group
// alone (its retry topic; nothing is written to the events topic) and is effectively once:
// an event the projection applied before is skipped as a duplicate, a stale one is
// dead-lettered again, and the read model's version does not move.
func TestDLQRedriveIntoProjection(t *testing.T) {
	s := stacktest.Start(t)
	const group, dlq, retry = "work-efforts", "pyrite.work-efforts.dlq", "pyrite.work-efforts.retry"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- projector.Run(ctx, ln, projector.Options{
			Brokers: s.Brokers, Registry: s.RegistryURL, Store: filepath.Join(t.TempDir(), "p.db"), Topology: s.Topology,
			ReadModels: s.ReadModels, Metrics: prometheus.NewRegistry(), CacheSize: -1, BatchWait: 10 * time.Millisecond,
			KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("projector: %v", err)
		}
	})
	get := func() workeffort.State {
		resp, err := http.Get(base + "/v1/work-efforts/we-r")
		if err != nil {
			return workeffort.State{}
		}
		defer resp.Body.Close()
		var st workeffort.State
		_ = json.NewDecoder(resp.Body).Decode(&st)
		return st
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st := started(t, s, "we-r", time.Now())
	s.Produce(t, created(t, s, "we-r", time.Now()), st)
	waitFor("we-r at version 2", func() bool { return get().Version == 2 })

	// A dead letter of the Started the projection applied (as an old one an operator finds),
	// and a stale event (version 2 again, a new ce_id) that the projection dead-letters.
	applied := s.Consume(t, weEvents, 2)[1]
	letter := &kgo.Record{Topic: dlq, Key: applied.Key, Value: applied.Value, Headers: append(append([]kgo.RecordHeader(nil), applied.Headers...),
		kgo.RecordHeader{Key: bus.HeaderOriginTopic, Value: []byte(applied.Topic)},
		kgo.RecordHeader{Key: bus.HeaderOriginPartition, Value: []byte(strconv.Itoa(int(applied.Partition)))},
		kgo.RecordHeader{Key: bus.HeaderOriginOffset, Value: []byte(strconv.FormatInt(applied.Offset, 10))},
		kgo.RecordHeader{Key: bus.HeaderDLQReason, Value: []byte(bus.ReasonPermanent)},
		kgo.RecordHeader{Key: bus.HeaderDLQGroup, Value: []byte(group)})}
	stale := started(t, s, "we-r", time.Now())
	s.Produce(t, letter, stale)
	waitFor("the stale event dead-lettered", func() bool { return s.EndOffsets(t, dlq)[dlq] >= 2 })

	before := s.EndOffsets(t, weEvents, retry)
	code, stdout, stderr := runCLI(t, append([]string{"dlq", "redrive", group}, opsArgs(s)...)...)
	if code != 0 || !strings.Contains(stdout, "2 dead letters redriven") {
		t.Fatalf("exit %d:\n%s\n%s", code, stdout, stderr)
	}
	after := s.EndOffsets(t, weEvents, retry)
	if after[weEvents] != before[weEvents] || after[retry]-before[retry] < 2 {
		t.Errorf("redrive wrote %v -> %v: want the retry topic only", before, after)
	}
	// The stale event comes back as a dead letter; the applied one is a duplicate and does not.
	list := func() []deadLetter {
		code, stdout, stderr := runCLI(t, append([]string{"dlq", "list", group, "--output", "json"}, opsArgs(s)...)...)
		var out []deadLetter
		if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil {
			t.Fatalf("dlq list: exit %d: %s %s", code, stdout, stderr)
		}
		return out
	}
	waitFor("the stale event dead-lettered again", func() bool { return len(list()) >= 3 })
	time.Sleep(500 * time.Millisecond)
	ds := list()
	var pending []deadLetter
	for _, d := range ds {
		if d.Redriven == nil && d.Skipped == nil {
			pending = append(pending, d)
		}
	}
	if len(ds) != 3 || len(pending) != 1 || !strings.Contains(pending[0].Error, headerOf(stale, "ce_id")) {
		t.Errorf("dead letters after the redrive: %+v, want the two redriven and the stale event again", ds)
	}
	if got := get(); got.Version != 2 {
		t.Errorf("we-r at version %d after the redrive, want 2", got.Version)
	}
}

func headerOf(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
