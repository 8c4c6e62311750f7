package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

const (
	rawTopic         = "pyrite.work-effort.raw"
	eventsTopic      = "pyrite.work-effort.events"
	integrationTopic = "pyrite.integration"
)

// size is the matrix's load and faults; `make crash` sets the full form.
type size struct {
	events, aggregates, kills int
}

func envInt(name string, dflt int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return dflt
}

// TestCrashMatrix runs the whole pipeline as `pyrite dev` in a child
// process under load from ingest clients and a Kafka-native producer,
// SIGKILLs it several times, finishes with two clean restarts, and after
// each fault checks every delivery guarantee. It prints the matrix table.
func TestCrashMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: not in -short")
	}
	// make test runs this bounded form (about 40 s on a loaded 2-core machine); make crash
	// the full one.
	sz := size{
		events:     envInt("PYRITE_CRASH_EVENTS", 10000),
		aggregates: envInt("PYRITE_CRASH_AGGREGATES", 200),
		kills:      envInt("PYRITE_CRASH_KILLS", 5),
	}
	dev := newDev(t)
	dev.start(t)
	ld := newLoad(t, dev, sz)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan struct{})
	go func() { ld.run(ctx); close(loadDone) }()

	var rows []Row
	round := 0
	check := func(fault string, restarted time.Time) {
		round++
		row := ld.check(t, dev, round)
		if dev.exited() {
			t.Fatalf("%s: pyrite dev exited on its own; its output ends:\n%s", fault, tail(dev.out.String(), 80))
		}
		row.Fault, row.Recover = fault, time.Since(restarted)
		for _, l := range dev.stageFailures() {
			t.Logf("%s: pyrite dev started a failed stage again: %s", fault, l)
		}
		rows = append(rows, row)
		t.Logf("%s: %+v", fault, row)
	}
	for i := range sz.kills {
		target := int64(sz.events * (i + 1) / (sz.kills + 1))
		waitFor(t, 10*time.Minute, fmt.Sprintf("%d events accepted", target), func() bool { return ld.accepted.Load() >= target })
		// A random moment inside the next stretch of load.
		time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
		dev.kill(t)
		at := time.Now()
		dev.start(t)
		check(fmt.Sprintf("SIGKILL pyrite dev #%d", i+1), at)
	}
	select {
	case <-loadDone:
	case <-time.After(20 * time.Minute):
		t.Fatal("load did not finish")
	}
	check("load finished", time.Now())
	for i := range 2 {
		dev.stop(t)
		at := time.Now()
		dev.start(t)
		check(fmt.Sprintf("clean restart #%d", i+1), at)
	}

	var table bytes.Buffer
	WriteTable(&table, rows)
	fmt.Fprintf(os.Stdout, "\ncrash matrix: %d events over %d aggregates (%d written by a Kafka producer), %d SIGKILLs; pyrite dev RSS at the end %s\n%s",
		ld.accepted.Load(), sz.aggregates, ld.directAccepted.Load(), sz.kills, dev.rss(), table.String())
	for _, r := range rows {
		if r.Failed() {
			t.Errorf("%s failed its checks: %+v", r.Fault, r)
		}
	}
	for _, r := range ld.notes {
		t.Log(r)
	}
}

// dev is `pyrite dev` in a child process, on fixed ports and one data dir.
type dev struct {
	bin, dataDir                       string
	kafka, registry, ingest, projector string
	upcaster                           string
	cmd                                *exec.Cmd
	out                                *lockedBuffer
	failuresSeen                       int // stage failures of this incarnation already logged
}

// stageFailures returns the stage failures pyrite dev's supervisor logged (and recovered
// from by starting the stage again) since the last call, so that the matrix says when one
// happened even though the checks pass.
func (d *dev) stageFailures() []string {
	var all []string
	for _, l := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(l, "stage failed") {
			all = append(all, l)
		}
	}
	added := all[min(d.failuresSeen, len(all)):]
	d.failuresSeen = len(all)
	return added
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return s
}

func newDev(t *testing.T) *dev {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pyrite")
	build := exec.Command("go", "build", "-o", bin, "github.com/pyrite-dev/pyrite/cmd/pyrite")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build pyrite: %v\n%s", err, out)
	}
	dataDir := t.TempDir()
	if dir := os.Getenv("PYRITE_CRASH_LOGDIR"); dir != "" { // kept with the logs
		dataDir = filepath.Join(dir, "data-"+time.Now().Format("150405.000"))
	}
	return &dev{bin: bin, dataDir: dataDir, kafka: freeAddr(t), registry: freeAddr(t),
		ingest: freeAddr(t), projector: freeAddr(t), upcaster: freeAddr(t)}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs pyrite dev and waits for its ready line.
func (d *dev) start(t *testing.T) {
	t.Helper()
	d.out, d.failuresSeen = &lockedBuffer{}, 0
	var out io.Writer = d.out
	if dir := os.Getenv("PYRITE_CRASH_LOGDIR"); dir != "" { // whole logs, kept
		f, err := os.Create(filepath.Join(dir, "pyrite-dev-"+time.Now().Format("150405.000")+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		out = io.MultiWriter(d.out, f)
	}
	d.cmd = exec.Command(d.bin, "dev", "--data-dir", d.dataDir, "--kafka-addr", d.kafka, "--registry-addr", d.registry,
		"--ingest-addr", d.ingest, "--projector-addr", d.projector, "--upcaster-addr", d.upcaster)
	d.cmd.Stderr = out
	stdout, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := d.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			out.Write([]byte(line + "\n"))
			if strings.Contains(line, "aborted a transaction") || strings.Contains(line, "repaired") {
				t.Logf("pyrite dev: %s", line)
			}
			if !sent && strings.HasPrefix(line, "pyrite dev ready") {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("pyrite dev exited before ready:\n%s", d.out.String())
		}
	case <-time.After(3 * time.Minute):
		t.Fatalf("pyrite dev not ready within 3 minutes:\n%s", d.out.String())
	}
}

// exited reports whether the running pyrite dev has exited without the test stopping it (a
// process nobody waited for stays a zombie).
func (d *dev) exited() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	return err != nil || strings.Contains(string(b), "\nState:\tZ")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// rss returns the process's resident set size as /proc reports it.
func (d *dev) rss() string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func (d *dev) kill(t *testing.T) {
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.cmd.Wait()
}

// stop is a clean stop (SIGINT), bounded.
func (d *dev) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pyrite dev clean stop: %v\n%s", err, d.out.String())
		}
	case <-time.After(time.Minute):
		d.cmd.Process.Signal(syscall.SIGKILL)
		<-done
		t.Fatalf("pyrite dev did not stop within a minute of SIGINT:\n%s", d.out.String())
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// load writes the events: each aggregate's events in sequence (Created,
// ProgressUpdated..., and for every fifth aggregate Completed last), an
// event only after the one before it was acknowledged. The aggregates that
// complete have lengths spread from 2 to about twice the others', so that
// their Completed events (and the integration events they cause) land all
// through the load, across the faults, not all at its end. Every tenth
// aggregate is written by a Kafka producer with Confluent framing straight
// to the raw topic; the rest through ingest, retried with the same id until
// accepted.
type load struct {
	dev            *dev
	sz             size
	gate           sync.RWMutex // held for writing while a check runs
	accepted       atomic.Int64
	directAccepted atomic.Int64
	mu             sync.Mutex
	ok             map[string]bool   // accepted event ids
	how            map[string]string // how each was accepted: attempts, earlier answers, the 201's
	completed      map[string]bool   // accepted Completed event ids
	perAgg         int
	notes          []string
	http           *http.Client
}

func newLoad(t *testing.T, d *dev, sz size) *load {
	return &load{dev: d, sz: sz, ok: map[string]bool{}, how: map[string]string{}, completed: map[string]bool{},
		perAgg: max(2, sz.events/sz.aggregates), http: &http.Client{Timeout: 10 * time.Second}}
}

func aggregate(n int) string { return fmt.Sprintf("we-%04d", n) }
func direct(n int) bool      { return n%10 == 9 }
func completes(n int) bool   { return n%5 == 0 }

// length is how many events aggregate n gets.
func (l *load) length(n int) int {
	if !completes(n) {
		return l.perAgg
	}
	return 2 + (n/5*37)%(2*l.perAgg-3)
}

// maxLength is the longest aggregate's length: the load's number of rounds.
func (l *load) maxLength() int { return 2*l.perAgg - 2 }

// eventOf returns the event type and data of an aggregate's seq-th event.
func (l *load) eventOf(n, seq int) (string, map[string]any) {
	switch {
	case seq == 0:
		return "WorkEffort:Created", map[string]any{"title": aggregate(n), "createdAt": time.Now().UnixMilli()}
	case completes(n) && seq == l.length(n)-1:
		return "WorkEffort:Completed", map[string]any{"title": aggregate(n), "completedAt": time.Now().UnixMilli(), "duration": int64(seq), "ticketCount": 1}
	}
	return "WorkEffort:ProgressUpdated", map[string]any{"oldProgress": (seq - 1) % 100, "newProgress": seq % 100, "delta": 1, "formatted": strconv.Itoa(seq)}
}

func (l *load) run(ctx context.Context) {
	const workers = 16
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var aggs []int
			for n := w; n < l.sz.aggregates; n += workers {
				if !direct(n) {
					aggs = append(aggs, n)
				}
			}
			for seq := range l.maxLength() {
				for _, n := range aggs {
					if seq >= l.length(n) {
						continue
					}
					if !l.post(ctx, n, seq) {
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.produceDirect(ctx)
	}()
	wg.Wait()
}

func (l *load) accept(id, typ, how string) {
	l.mu.Lock()
	l.ok[id] = true
	l.how[id] = how
	if typ == "WorkEffort:Completed" {
		l.completed[id] = true
	}
	l.mu.Unlock()
	l.accepted.Add(1)
}

// post sends one event to ingest until it is accepted; false when ctx ends.
func (l *load) post(ctx context.Context, n, seq int) bool {
	typ, data := l.eventOf(n, seq)
	id := EventID(aggregate(n), seq)
	body, _ := json.Marshal(map[string]any{"id": id, "type": typ, "aggregateId": aggregate(n), "data": data})
	var answers []string // earlier answers, for the log of an event found lost
	for ctx.Err() == nil {
		l.gate.RLock()
		at := time.Now()
		code, answer := l.postOnce("http://"+l.dev.ingest+"/v1/events", body)
		l.gate.RUnlock()
		switch code {
		case http.StatusCreated:
			l.accept(id, typ, fmt.Sprintf("earlier answers %v; at %s: %s", answers, at.Format("15:04:05.000"), answer))
			return true
		case http.StatusBadRequest, http.StatusUnprocessableEntity, http.StatusConflict:
			l.mu.Lock()
			l.notes = appendSome(l.notes, fmt.Sprintf("ingest rejected %s with %d", id, code))
			l.mu.Unlock()
			return true
		}
		if len(answers) < 10 {
			answers = append(answers, fmt.Sprintf("at %s: %d %s", at.Format("15:04:05.000"), code, answer))
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	return false
}

// postOnce posts body once: the status (0 when there was no answer) and, for the log, the
// answer (the error, or the replay header and the body).
func (l *load) postOnce(url string, body []byte) (int, string) {
	resp, err := l.http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	return resp.StatusCode, fmt.Sprintf("replayed=%q %s", resp.Header.Get("Idempotent-Replayed"), strings.TrimSpace(string(b)))
}

// produceDirect writes the Kafka producer's aggregates: Confluent-framed
// values with CloudEvents headers, an idempotent producer, each record
// waited for. A record whose produce failed (the broker died under it)
// has an unknown outcome and is not counted as accepted.
func (l *load) produceDirect(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(l.dev.kafka), kgo.DefaultProduceTopic(rawTopic))
	if err != nil {
		return
	}
	defer cl.Close()
	cd := codec.Dial("http://" + l.dev.registry)
	var aggs []int
	for n := range l.sz.aggregates {
		if direct(n) {
			aggs = append(aggs, n)
		}
	}
	subjects := map[string]string{"WorkEffort:Created": "pyrite.workeffort.Created",
		"WorkEffort:ProgressUpdated": "pyrite.workeffort.ProgressUpdated", "WorkEffort:Completed": "pyrite.workeffort.Completed"}
	for seq := range l.maxLength() {
		for _, n := range aggs {
			if seq >= l.length(n) {
				continue
			}
			typ, data := l.eventOf(n, seq)
			id := EventID(aggregate(n), seq)
			for ctx.Err() == nil {
				l.gate.RLock()
				ok, retry := l.produceOnce(ctx, cl, cd, subjects[typ], typ, id, aggregate(n), data)
				l.gate.RUnlock()
				if ok {
					l.accept(id, typ, "direct")
					l.directAccepted.Add(1)
				}
				if !retry {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
}

// produceOnce encodes and writes one record. retry is true when nothing was
// sent (the registry was down); a failed produce is not retried.
func (l *load) produceOnce(ctx context.Context, cl *kgo.Client, cd *codec.Codec, subject, typ, id, agg string, data map[string]any) (ok, retry bool) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sch, err := cd.Latest(ctx, subject)
	if err != nil {
		return false, true
	}
	value, err := cd.Encode(sch, data)
	if err != nil {
		return false, false
	}
	rec := &kgo.Record{Key: []byte(agg), Value: value, Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(id)},
		{Key: "ce_source", Value: []byte("/crashtest")}, {Key: "ce_type", Value: []byte(typ)},
		{Key: "ce_time", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		{Key: "ce_subject", Value: []byte(agg)}, {Key: "content-type", Value: []byte("application/avro")},
	}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		l.mu.Lock()
		l.notes = appendSome(l.notes, fmt.Sprintf("direct produce of %s failed (outcome unknown): %v", id, err))
		l.mu.Unlock()
		return false, false
	}
	return true, false
}
