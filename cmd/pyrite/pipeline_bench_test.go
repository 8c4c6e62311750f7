package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// pipelineEvents is how many events one iteration carries (PYRITE_BENCH_EVENTS overrides
// it), over pipelineAggregates aggregates.
const (
	pipelineEvents     = 200000
	pipelineAggregates = 1000
	pipelineBatch      = 500 // events per POST /v1/events:batch, as the measurement
	pipelineConns      = 4   // connections posting batches
	pipelineWaiters    = 16  // goroutines waiting for the aggregates' last versions
)

// BenchmarkPipeline runs the stages of `pyrite dev` in one process, wired as runDev wires
// them (ingest with its event store, the upcaster exactly once, the projector with its
// SQLite projection and the integration and deployment groups), on a fresh in-process stack
// (kfake in memory, where pyrite dev keeps its log on disk; the project's registry) per
// iteration, with ProgressUpdated events over 1000 aggregates:
//   - raw: the events are first written to the raw topic by franz-go with the value and
//     CloudEvents headers ingest writes; then the stages start. Rate: from the upcaster's
//     first transaction committed on the events topic to the last event the projection
//     applied.
//   - ingest: the stages run, and the events are posted as /v1/events:batch of 500 over 4
//     connections. Rates: ingest's (first request to last answer) and end to end (first
//     request to the last event applied).
//
// Beside them, in the same iteration and on the same broker: the ceiling, franz-go producing
// the same records to the raw topic (acks=all, batches of 500 from 4 goroutines) and a
// franz-go group consumer reading them back (no decoding, committing every poll); ceiling
// is the rate of the two one after the other. It also reports the process's peak RSS above
// its level before the records existed, per million events (the broker's copy of the raw
// and events topics included: kfake runs in this process).
func BenchmarkPipeline(b *testing.B) {
	n := pipelineEvents
	if s := os.Getenv("PYRITE_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < pipelineAggregates {
			b.Fatalf("PYRITE_BENCH_EVENTS=%q: want a number >= %d", s, pipelineAggregates)
		}
	}
	n -= n % pipelineBatch
	for _, fed := range []string{"raw", "ingest"} {
		b.Run(fed, func(b *testing.B) {
			var m pipelineMetrics
			for range b.N {
				m.add(runPipeline(b, fed, n))
			}
			m.report(b, float64(b.N))
		})
	}
}

type pipelineMetrics struct {
	rate, ingest, produce, consume, ceiling, rssPerM float64
	// cpuPerEvent is the process's CPU time (user and system: the stages, the in-process
	// broker and the load alike) over the span the rate is measured on, per event: it holds
	// up better than the rate when other work shares the machine.
	cpuPerEvent float64
}

func (m *pipelineMetrics) add(o pipelineMetrics) {
	m.rate += o.rate
	m.ingest += o.ingest
	m.produce += o.produce
	m.consume += o.consume
	m.ceiling += o.ceiling
	m.rssPerM += o.rssPerM
	m.cpuPerEvent += o.cpuPerEvent
}

func (m *pipelineMetrics) report(b *testing.B, runs float64) {
	b.ReportMetric(m.rate/runs, "events/s")
	b.ReportMetric(m.ceiling/runs, "ceiling-events/s")
	b.ReportMetric(100*m.rate/m.ceiling, "%-of-ceiling")
	b.ReportMetric(m.produce/runs, "franz-go-produce/s")
	b.ReportMetric(m.consume/runs, "franz-go-consume/s")
	if m.ingest > 0 {
		b.ReportMetric(m.ingest/runs, "ingest-events/s")
		b.ReportMetric(100*m.ingest/m.produce, "ingest-%-of-franz-go")
	}
	b.ReportMetric(m.rssPerM/runs, "MB-RSS/M-events")
	b.ReportMetric(m.cpuPerEvent/runs, "cpu-us/event")
	b.ReportMetric(0, "ns/op") // the iteration's time is set-up and both sides: not a rate
}

func runPipeline(b *testing.B, fed string, n int) pipelineMetrics {
	b.StopTimer()
	defer b.StartTimer()
	s := stacktest.Start(b)
	agg, err := s.Topology.Aggregate("WorkEffort")
	if err != nil {
		b.Fatal(err)
	}
	raw := agg.RawTopic()
	td, err := s.Admin.ListTopics(context.Background(), raw)
	if err != nil {
		b.Fatal(err)
	}
	partitions := len(td[raw].Partitions)
	rss := newRSSWatch()
	defer rss.stop()

	// The records ingest writes: the newest ProgressUpdated value and the CloudEvents headers
	// with the aggregate version (the event store's count per aggregate).
	ctx := context.Background()
	sch, err := s.Codec().Latest(ctx, "pyrite.workeffort.ProgressUpdated")
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, n)
	for i := range recs {
		v := i % 100
		value, err := s.Codec().Encode(sch, map[string]any{"oldProgress": v, "newProgress": v + 1, "delta": 1, "formatted": strconv.Itoa(v+1) + "%"})
		if err != nil {
			b.Fatal(err)
		}
		id := "we-" + strconv.Itoa(i%pipelineAggregates)
		// Ids as ingest makes them for events posted without one (UUIDv7, time-ordered).
		ev := bus.Event{ID: uuid.Must(uuid.NewV7()).String(), Type: "WorkEffort:ProgressUpdated", AggregateID: id, AggregateType: "WorkEffort",
			AggregateVersion: int64(i/pipelineAggregates + 1), Time: time.Now().UTC(), Source: "/pyrite/ingest"}
		recs[i] = &kgo.Record{Topic: raw, Key: []byte(id), Value: value, Headers: ev.Headers()}
	}

	var m pipelineMetrics
	// The ceiling: franz-go writes the records (to raw, for the raw-fed variant; to a topic of
	// their own otherwise) and reads them back.
	target := raw
	if fed != "raw" {
		target = "bench.ceiling"
		if _, err := s.Admin.CreateTopic(ctx, int32(partitions), 1, nil, target); err != nil {
			b.Fatal(err)
		}
		for _, r := range recs {
			r.Topic = target
		}
	}
	produced := time.Now()
	produceBatches(b, s.Brokers, recs)
	m.produce = float64(n) / time.Since(produced).Seconds()
	m.consume = consumeAll(b, s.Brokers, target, n)
	m.ceiling = float64(n) / (float64(n)/m.produce + float64(n)/m.consume)
	runtime.GC() // the ceiling's garbage is not the stages' to collect

	// The stages, as runDev wires them.
	mods, err := modules.Wire()
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(runCtx)
	ingestLn, projLn, upLn := listen(b), listen(b), listen(b)
	ingestURL, projURL := "http://"+ingestLn.Addr().String(), "http://"+projLn.Addr().String()
	g.Go(func() error {
		return named("ingest", ingest.Run(gctx, ingestLn, ingest.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			TxnPrefix: "pyrite-ingest-dev", Topology: s.Topology, Chain: mods.Chain, Metrics: prometheus.NewRegistry(),
			Config: ingest.Config{Folds: mods.Folds, Commands: mods.Commands}}))
	})
	g.Go(func() error {
		return named("upcaster", upcaster.Run(gctx, upLn, upcaster.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			Topology: s.Topology, Chain: mods.Chain, Metrics: prometheus.NewRegistry(), Config: upcaster.Config{TransactionalID: "pyrite-upcaster-dev"},
			KafkaOpts: []kgo.Opt{kgo.InstanceID("pyrite-dev-upcaster")}}))
	})
	g.Go(func() error {
		return named("projector", projector.Run(gctx, projLn, projector.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			Store: b.TempDir() + "/projector.db", Topology: s.Topology, Metrics: prometheus.NewRegistry(), InstanceID: "pyrite-dev-projector",
			Schemas: mods.Schemas, ReadModels: mods.ReadModels,
			Reactors: projector.Reactors{Integrations: mods.Integrations, Domain: modules.Dev().Specs(), EventStore: eventstore.ClientConfig{URL: ingestURL}}}))
	})
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			b.Error(err)
		}
	}()
	if err := waitReady(gctx, ingestURL, "http://"+upLn.Addr().String(), projURL); err != nil {
		b.Fatal(err)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pipelineConns, MaxConnsPerHost: pipelineConns,
		WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10}}
	defer client.CloseIdleConnections()
	waiters := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pipelineWaiters, MaxConnsPerHost: pipelineWaiters}}
	defer waiters.CloseIdleConnections()
	// Every aggregate's last version.
	last := map[string]int64{}
	for a := range pipelineAggregates {
		last["we-"+strconv.Itoa(a)] = int64(n / pipelineAggregates)
	}
	var bodies [][]byte
	if fed == "ingest" {
		bodies, last = batchBodies(raw, partitions, n)
	}
	b.StartTimer()
	start, cpu0 := time.Now(), stacktest.ProcessCPU(b)
	var stopProfile func()
	if fed == "ingest" {
		stopProfile = profileSpan(b, fed)
		var next atomic.Int64
		var pg errgroup.Group
		for range pipelineConns {
			pg.Go(func() error {
				for i := int(next.Add(1)) - 1; i < len(bodies); i = int(next.Add(1)) - 1 {
					if err := post(client, ingestURL+"/v1/events:batch", bodies[i]); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := pg.Wait(); err != nil {
			b.Fatal(err)
		}
		m.ingest = float64(n) / time.Since(start).Seconds()
	} else {
		// Raw-fed: the clock starts when the upcaster's first transaction is committed to the
		// events topic, the stages' groups joined. (It started at the first event the
		// projection applied until the upcaster was seen to have upcast a quarter to a third
		// of the records by then: that flattered the rate by up to half.) The first
		// transaction's own upcasting, up to MaxPollRecords events, is before the clock.
		waitCommitted(b, s.Admin, agg.EventsTopic())
		start, cpu0 = time.Now(), stacktest.ProcessCPU(b)
		stopProfile = profileSpan(b, fed)
	}
	// The end: every aggregate's last version applied, each waited for by a long-polling GET
	// (?minVersion) from one of pipelineWaiters goroutines. (One goroutine asking the 1000
	// aggregates in turn read the end 40-50 ms late, up to 2% of the rate, in the time the
	// aggregates after the last-applied one took to answer one by one.)
	var next atomic.Int64
	var wg errgroup.Group
	ids := slices.Collect(maps.Keys(last))
	for range pipelineWaiters {
		wg.Go(func() error {
			for i := int(next.Add(1)) - 1; i < len(ids); i = int(next.Add(1)) - 1 {
				if err := waitVersion(waiters, projURL, ids[i], last[ids[i]]); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := wg.Wait(); err != nil {
		b.Fatal(err)
	}
	m.rate = float64(n) / time.Since(start).Seconds()
	stopProfile()
	m.cpuPerEvent = float64((stacktest.ProcessCPU(b) - cpu0).Microseconds()) / float64(n)
	b.StopTimer()
	m.rssPerM = float64(rss.peak()-rss.base) / (1 << 20) / (float64(n) / 1e6)
	return m
}

// waitCommitted returns once topic holds a record read_committed consumers see: its last
// stable offsets move only when a transaction ends.
func waitCommitted(b *testing.B, adm *kadm.Client, topic string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		ends, err := adm.ListCommittedOffsets(ctx, topic)
		if err == nil && ends.Error() == nil {
			var n int64
			ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
			if n > 0 {
				return
			}
		}
		select {
		case <-ctx.Done():
			b.Fatalf("no committed record on %s: %v", topic, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func listen(b *testing.B) net.Listener {
	b.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

// produceBatches writes recs in synchronous batches of pipelineBatch from pipelineConns
// goroutines, acks=all, keys partitioned as ingest partitions them.
func produceBatches(b *testing.B, brokers []string, recs []*kgo.Record) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var next atomic.Int64
	var g errgroup.Group
	for range pipelineConns {
		g.Go(func() error {
			for from := int(next.Add(pipelineBatch)) - pipelineBatch; from < len(recs); from = int(next.Add(pipelineBatch)) - pipelineBatch {
				if err := cl.ProduceSync(context.Background(), recs[from:min(from+pipelineBatch, len(recs))]...).FirstErr(); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

// consumeAll reads n records of topic in a consumer group of its own, committing after
// every poll, and returns records per second from the first poll's answer to the last.
func consumeAll(b *testing.B, brokers []string, topic string, n int) float64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bench-ceiling"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var start time.Time
	for got := 0; got < n; {
		fs := cl.PollRecords(ctx, 10000)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		got += fs.NumRecords()
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// batchBodies is n events as /v1/events:batch bodies of pipelineBatch, each batch of the
// aggregates of one partition (ingest writes a batch as one transaction of one partition's
// writer), and each aggregate's number of events (its last version).
func batchBodies(topic string, partitions, n int) ([][]byte, map[string]int64) {
	part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	byPart := make([][]string, partitions)
	for a := range pipelineAggregates {
		id := "we-" + strconv.Itoa(a)
		p := part.Partition(&kgo.Record{Key: []byte(id)}, partitions)
		byPart[p] = append(byPart[p], id)
	}
	counts := map[string]int64{}
	var out [][]byte
	var buf bytes.Buffer
	next := make([]int, partitions)
	for j := 0; j*pipelineBatch < n; j++ {
		ids := byPart[j%partitions]
		buf.Reset()
		buf.WriteString(`{"events":[`)
		for k := range min(pipelineBatch, n-j*pipelineBatch) {
			if k > 0 {
				buf.WriteByte(',')
			}
			id := ids[next[j%partitions]%len(ids)]
			next[j%partitions]++
			counts[id]++
			v := int(counts[id]) % 100
			fmt.Fprintf(&buf, `{"type":"WorkEffort:ProgressUpdated","aggregateId":%q,"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`,
				id, v, v+1, v+1)
		}
		buf.WriteString(`]}`)
		out = append(out, bytes.Clone(buf.Bytes()))
	}
	return out, counts
}

func post(client *http.Client, url string, body []byte) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("ingest answered %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// waitVersion waits until the projection has applied version v of id.
func waitVersion(client *http.Client, projURL, id string, v int64) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := client.Get(fmt.Sprintf("%s/v1/work-efforts/%s?minVersion=%d", projURL, id, v))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("version %d of %s not applied after 5 minutes (last: %v)", v, id, err)
		}
		time.Sleep(10 * time.Millisecond) // not found yet, or the wait bound passed
	}
}

// rssWatch samples the process's resident set every 20ms.
type rssWatch struct {
	base int64
	max  atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup
}

func newRSSWatch() *rssWatch {
	debug.FreeOSMemory() // what earlier iterations left is not this one's
	w := &rssWatch{base: readRSS(), done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if r := readRSS(); r > w.max.Load() {
				w.max.Store(r)
			}
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) peak() int64 { return max(w.max.Load(), readRSS()) }

func (w *rssWatch) stop() {
	close(w.done)
	w.wg.Wait()
}

// readRSS is VmRSS from /proc/self/status in bytes (0 where there is none).
func readRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// profileSpan starts a CPU profile of the measured span, to $PYRITE_BENCH_CPUPROFILE-<fed>
// when that is set (go test's -cpuprofile covers the set-up and the ceiling as well); the
// returned function ends it. With more than one iteration the last one's profile is kept.
func profileSpan(b *testing.B, fed string) func() {
	path := os.Getenv("PYRITE_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path + "-" + fed)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}
