package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/schemas"
)

// TestProjectionRebuild rebuilds the WorkEffort read model while a projector applies new
// events to it and serves queries from it.
func TestProjectionRebuild(t *testing.T) {
	s := stacktest.Start(t)
	dbPath := filepath.Join(t.TempDir(), "projector.db")

	// The live projector, without its read cache: every query reads the store.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	projDone := make(chan error, 1)
	go func() {
		projDone <- projector.Run(ctx, ln, projector.Options{
			Brokers: s.Brokers, Registry: s.RegistryURL, Store: dbPath, Topology: s.Topology,
			ReadModels: s.ReadModels, Metrics: prometheus.NewRegistry(), CacheSize: -1, BatchSize: 50, BatchWait: 10 * time.Millisecond,
			KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-projDone; err != nil {
			t.Errorf("projector: %v", err)
		}
	})

	const n = 150
	var recs []*kgo.Record
	for i := range n {
		id := fmt.Sprintf("we-%d", i)
		recs = append(recs, created(t, s, id, time.Now()), started(t, s, id, time.Now()))
	}
	s.Produce(t, recs...)

	get := func(id string) (int, workeffort.State, error) {
		resp, err := http.Get(base + "/v1/work-efforts/" + id)
		if err != nil {
			return 0, workeffort.State{}, err
		}
		defer resp.Body.Close()
		var st workeffort.State
		if resp.StatusCode == http.StatusOK {
			err = json.NewDecoder(resp.Body).Decode(&st)
		}
		return resp.StatusCode, st, err
	}
	waitFor := func(id string, ok func(workeffort.State) bool) {
		t.Helper()
		// Generous: a batch that meets the swap's schema change is retried by the runner
		// with backoff, which on a loaded machine can take tens of seconds.
		deadline := time.Now().Add(90 * time.Second)
		for {
			code, st, err := get(id)
			if err == nil && code == http.StatusOK && ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %d, %+v, %v", id, code, st, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range n {
		waitFor(fmt.Sprintf("we-%d", i), func(st workeffort.State) bool { return st.Version == 2 })
	}

	// The live read model went wrong: a row edited by hand.
	db, err := sql.Open("sqlite", dbPath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE work_efforts SET title = 'corrupted' WHERE id = 'we-7'"); err != nil {
		t.Fatal(err)
	}

	// Queries go on during the rebuild, and so do new events.
	var wg sync.WaitGroup
	queriesDone := make(chan struct{})
	var qmu sync.Mutex
	var failures []string
	titles := map[string]int{}
	wg.Go(func() {
		for {
			select {
			case <-queriesDone:
				return
			default:
			}
			code, st, err := get("we-7")
			qmu.Lock()
			if err != nil || code != http.StatusOK {
				failures = append(failures, fmt.Sprintf("GET we-7: %d %v", code, err))
			} else {
				titles[st.Title]++
			}
			qmu.Unlock()
			resp, err := http.Get(base + "/v1/work-efforts?limit=500")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				qmu.Lock()
				failures = append(failures, fmt.Sprintf("list: %v", err))
				qmu.Unlock()
			}
		}
	})
	produceDone := make(chan struct{})
	wg.Go(func() {
		defer close(produceDone)
		for i := range 20 {
			s.Produce(t, created(t, s, fmt.Sprintf("we-during-%d", i), time.Now()))
			time.Sleep(10 * time.Millisecond)
		}
	})

	code, stdout, stderr := runCLI(t, append([]string{"projection", "rebuild", "work-efforts", "--store", dbPath, "--batch-size", "2"}, opsArgs(s)...)...)
	<-produceDone
	close(queriesDone)
	wg.Wait()
	if code != 0 {
		t.Fatalf("rebuild: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "rebuilt work-efforts from earliest") || !strings.Contains(stdout, "generation 1") {
		t.Errorf("stdout:\n%s", stdout)
	}
	qmu.Lock()
	t.Logf("queries during the rebuild saw titles %v; %s", titles, strings.TrimSpace(stdout))
	if len(failures) > 0 {
		t.Errorf("%d queries failed during the rebuild, e.g. %s", len(failures), failures[0])
	}
	for title := range titles {
		if title != "corrupted" && title != "Title we-7" {
			t.Errorf("a query saw title %q", title)
		}
	}
	if titles["corrupted"] == 0 {
		t.Error("no query ran against the live model before the swap")
	}
	qmu.Unlock()

	// The rebuilt model is live: the hand edit is gone, and the projector goes on applying.
	waitFor("we-7", func(st workeffort.State) bool { return st.Title == "Title we-7" && st.Version == 2 })
	for i := range 20 {
		waitFor(fmt.Sprintf("we-during-%d", i), func(st workeffort.State) bool { return st.Version == 1 })
	}
	s.Produce(t, started(t, s, "we-during-3", time.Now()))
	waitFor("we-during-3", func(st workeffort.State) bool { return st.Status == workeffort.StatusInProgress })

	st, err := store.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if g, err := st.Generation(t.Context(), workeffort.Projection); err != nil || g != 1 {
		t.Errorf("generation %d, %v", g, err)
	}
	if page, _, err := workeffort.List(t.Context(), st, "", workeffort.MaxListLimit, ""); err != nil || len(page) != n+20 {
		t.Errorf("%d work efforts after the rebuild (%v), want %d", len(page), err, n+20)
	}

	t.Run("one rebuild at a time", func(t *testing.T) {
		rb, err := st.StartRebuild(t.Context(), workeffort.Rebuildable(), store.RebuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = rb
		args := append([]string{"projection", "rebuild", "work-efforts", "--store", dbPath}, opsArgs(s)...)
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(stderr, "in progress") || !strings.Contains(stderr, "--restart") {
			t.Errorf("exit %d: %s", code, stderr)
		}
		code, stdout, stderr := runCLI(t, append(args, "--restart", "--from", "-1h")...)
		if code != 0 || !strings.Contains(stdout, "generation 2") {
			t.Errorf("--restart: exit %d\n%s\n%s", code, stdout, stderr)
		}
	})
	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			name   string
			args   []string
			code   int
			stderr string
		}{
			{"no name", []string{"projection", "rebuild"}, 2, "missing NAME"},
			{"unknown projection", []string{"projection", "rebuild", "nope", "--store", dbPath}, 2, `"nope" is not a projection that can be rebuilt`},
			{"bad from", []string{"projection", "rebuild", "work-efforts", "--from", "x", "--batch-size", "0"}, 2, "--batch-size"},
			{"bad store", []string{"projection", "rebuild", "work-efforts", "--store", "mysql://x"}, 1, "unsupported store URL"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				code, _, stderr := runCLI(t, opsArgs(s, tt.args...)...)
				if code != tt.code || !strings.Contains(stderr, tt.stderr) {
					t.Errorf("exit %d, want %d; stderr lacks %q:\n%s", code, tt.code, tt.stderr, stderr)
				}
			})
		}
	})
}

// TestRebuildCatchesUpWithTheLiveProjection: when the live projection applied records the
// rebuild has not read yet, the swap is refused and the rebuild reads on.
func TestRebuildCatchesUpWithTheLiveProjection(t *testing.T) {
	s := stacktest.Start(t)
	ctx := t.Context()
	rm := workeffort.ReadModel()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "projector.db"), store.WithMigrations(rm.Name, rm.Migrations))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	toEvent := func(r *kgo.Record, typ string, version int64) store.Event {
		return store.Event{ID: fmt.Sprint(r.Offset), Type: typ, AggregateID: string(r.Key), AggregateVersion: version,
			Time: r.Timestamp, Data: map[string]any{"title": "Title " + string(r.Key), "createdAt": r.Timestamp},
			Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
	}
	var first []*kgo.Record
	for i := range 6 {
		first = append(first, created(t, s, fmt.Sprintf("we-%d", i), time.Now()))
	}
	junk := &kgo.Record{Topic: weEvents, Key: []byte("junk"), Value: []byte("not avro")}
	s.Produce(t, append(first, junk)...)
	var live []store.Event
	for _, r := range first {
		live = append(live, toEvent(r, "WorkEffort:Created", 1))
	}
	if err := st.ApplyBatch(ctx, workeffort.Projection, live, workeffort.ApplyEvent); err != nil {
		t.Fatal(err)
	}

	top, adm := s.Topology, s.Admin
	_, topics, err := rebuildable(s.Wiring, top, workeffort.Projection)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := startSpec{kind: "earliest"}.resolve(ctx, adm, topics...)
	if err != nil {
		t.Fatal(err)
	}
	seed := map[store.TopicPartition]int64{}
	starts.each(func(tp string, p int32, off int64) { seed[store.TopicPartition{Topic: tp, Partition: p}] = off })
	rb, err := st.StartRebuild(ctx, workeffort.Rebuildable(), store.RebuildOptions{Start: seed})
	if err != nil {
		t.Fatal(err)
	}
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := bus.NewCodecDecoder(codec.Dial(s.RegistryURL), top, files)
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	var more []*kgo.Record
	reb := &rebuilder{rb: rb, dec: dec, batch: 100, timeout: 10 * time.Second, progress: newProgress(io.Discard, "test"),
		beforeSwap: func() {
			attempts++
			if attempts > 1 {
				return
			}
			// Between the rebuild reaching the end and its swap, new records arrive and the
			// live projector applies them.
			for i := range 4 {
				more = append(more, created(t, s, fmt.Sprintf("we-late-%d", i), time.Now()))
			}
			s.Produce(t, more...)
			var evs []store.Event
			for _, r := range more {
				evs = append(evs, toEvent(r, "WorkEffort:Created", 1))
			}
			if err := st.ApplyBatch(ctx, workeffort.Projection, evs, workeffort.ApplyEvent); err != nil {
				t.Error(err)
			}
		}}
	if err := reb.run(ctx, kafkaTarget{seeds: s.Brokers}, adm, starts); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 {
		t.Errorf("%d swap attempts, want 2 (refused, then done)", attempts)
	}
	if reb.applied != 10 || reb.skipped != 1 {
		t.Errorf("applied %d, skipped %d; want 10 and the undecodable one", reb.applied, reb.skipped)
	}
	for _, r := range append(first, more...) {
		if got, ok, err := workeffort.Get(ctx, st, string(r.Key)); err != nil || !ok || got.Title != "Title "+string(r.Key) {
			t.Errorf("%s after the swap: %+v, %v, %v", r.Key, got, ok, err)
		}
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		want        string
	}{
		{"start", 0, 2000, 0, "rebuild x [..............................]   0% 0/2,000 events  0/s  ETA ?"},
		{"half", 1000, 2000, 4 * time.Second, "rebuild x [###############...............]  50% 1,000/2,000 events  250/s  ETA 4s"},
		{"done", 1234567, 1234567, time.Second, "rebuild x [##############################] 100% 1,234,567/1,234,567 events  1,234,567/s  ETA 0s"},
		{"total grew past done", 10, 5, time.Second, "rebuild x [##############################] 100% 10/10 events  10/s  ETA 0s"},
		{"nothing to do", 0, 0, time.Second, "rebuild x [##############################] 100% 0/0 events  0/s  ETA ?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := progressLine("rebuild x", tt.done, tt.total, tt.elapsed); got != tt.want {
				t.Errorf("\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
