package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A stage that fails after pyrite dev is ready is started again on the same address, and
// the supervisor keeps running; the failure is logged with the stage's name and error.
func TestSupervisorRestartsAFailedStage(t *testing.T) {
	var logs strings.Builder
	s := newSupervisor(slog.New(slog.NewTextHandler(lockedWriter{mu: &sync.Mutex{}, w: &logs}, nil)))
	s.minBackoff = 10 * time.Millisecond
	s.ready.Store(true)
	ln, err := server.Listen("127.0.0.1:0", "test-addr")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()

	var starts atomic.Int32
	st := func(ctx context.Context, ln net.Listener) error {
		n := starts.Add(1)
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintf(w, "incarnation %d", n) })
		if n == 1 { // the first incarnation fails at once, as the upcaster on a refused end of transaction
			ln.Close()
			return errors.New("end transaction: broker said no")
		}
		return server.Serve(ctx, ln, h, time.Second)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx, "upcaster", ln, st) }()

	deadline := time.Now().Add(10 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if body != "incarnation 2" {
		t.Fatalf("after the failure the address answered %q, want the second incarnation", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after ctx ended, want nil", err)
	}
	if !strings.Contains(logs.String(), "stage=upcaster") || !strings.Contains(logs.String(), "broker said no") {
		t.Errorf("the failure was not logged with its stage and error:\n%s", logs.String())
	}
}

// Before the pipeline is ready, a failing stage stops pyrite dev with its error: that is a
// configuration to fix, not a fault to ride out.
func TestSupervisorStopsOnAFailureBeforeReady(t *testing.T) {
	s := newSupervisor(slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := server.Listen("127.0.0.1:0", "test-addr")
	if err != nil {
		t.Fatal(err)
	}
	var starts atomic.Int32
	err = s.run(context.Background(), "upcaster", ln, func(_ context.Context, ln net.Listener) error {
		starts.Add(1)
		ln.Close()
		return errors.New("refusing to start: no path to the newest")
	})
	if err == nil || !strings.Contains(err.Error(), "upcaster: refusing to start") {
		t.Fatalf("run returned %v, want the stage's error named", err)
	}
	if starts.Load() != 1 {
		t.Errorf("the stage started %d times, want 1", starts.Load())
	}
}

// A stage that returns nil while ctx is live has stopped early: it is restarted too.
func TestSupervisorRestartsAStageThatStoppedEarly(t *testing.T) {
	s := newSupervisor(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.minBackoff = time.Millisecond
	s.ready.Store(true)
	ln, err := server.Listen("127.0.0.1:0", "test-addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var starts atomic.Int32
	err = s.run(ctx, "projector", ln, func(_ context.Context, ln net.Listener) error {
		ln.Close()
		if starts.Add(1) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil || starts.Load() != 3 {
		t.Fatalf("run returned %v after %d starts, want nil after 3", err, starts.Load())
	}
}

// A second producer taking the upcaster's transactional id fences the upcaster of a running
// pyrite dev: its next transaction fails. The upcaster starts again (fencing the intruder in
// turn) and the events posted after the fence reach the projection; pyrite dev keeps running.
// Before the supervisor, that one failure stopped every stage and the broker.
func TestDevRidesOutAFencedUpcaster(t *testing.T) {
	dev := startDev(t, t.TempDir())
	defer func() {
		if err := dev.stop(); err != nil {
			t.Errorf("pyrite dev stopped with %v\n%s", err, dev.logs())
		}
	}()
	post := func(progress int) {
		t.Helper()
		body := fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-fenced","data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`, progress-1, progress, progress)
		resp, err := http.Post(dev.ingest+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("post progress %d: %d\n%s", progress, resp.StatusCode, dev.logs())
		}
	}
	waitVersion := func(v int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			resp, err := http.Get(fmt.Sprintf("%s/v1/work-efforts/we-fenced?minVersion=%d", dev.projector, v))
			if err == nil {
				var st struct{ Version int }
				_ = json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && st.Version >= v {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("version %d of we-fenced never reached the projection\n%s", v, dev.logs())
	}
	post(1)
	waitVersion(1)

	intruder, err := kgo.NewClient(kgo.SeedBrokers(dev.kafka), kgo.TransactionalID(topology.UpcasterIDPrefix+"-dev"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := intruder.ProducerID(ctx); err != nil { // InitProducerID: a new epoch fences the upcaster
		t.Fatal(err)
	}
	intruder.Close()

	post(2)
	post(3)
	waitVersion(3)
	if !strings.Contains(dev.logs(), "stage failed; starting it again") || !strings.Contains(dev.logs(), `"stage":"upcaster"`) {
		t.Errorf("the fenced upcaster's restart was not logged:\n%s", dev.logs())
	}
}
