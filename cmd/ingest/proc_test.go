package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const rawTopic = "pyrite.work-effort.raw"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds ./cmd/ingest once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pyrite-ingest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "ingest")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// proc is one ingest process.
type proc struct {
	cmd  *exec.Cmd
	url  string
	log  *bytes.Buffer
	done chan struct{}
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

// startProc runs ingest on the stack in group at addr and waits for /readyz.
func startProc(t *testing.T, s *stacktest.Stack, group, addr string) *proc {
	t.Helper()
	cmd := exec.Command(binary(t), "--brokers", strings.Join(s.Brokers, ","), "--registry", s.RegistryURL,
		"--addr", addr, "--group", group, "--session-timeout", "6s", "--profile", "dev")
	p := &proc{cmd: cmd, url: "http://" + addr, log: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{w: p.log}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if strings.Contains(p.log.String(), "DATA RACE") { // a binary built with -race
			t.Errorf("ingest %s reported a data race", p.url)
		}
		if t.Failed() {
			t.Logf("ingest %s log (tail):\n%s", p.url, tail(p.log.String(), 3000))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("ingest exited: %s", p.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest %s never ready: %s", p.url, p.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Errorf("ingest %s did not stop on SIGTERM", p.url)
		p.kill()
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitShared waits until the processes agree on a generation in which each owns some
// partitions and every partition is ready at its owner.
func waitShared(t *testing.T, procs ...*proc) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ready, gens, total, ok := map[string]int{}, map[int32]bool{}, 0, true
		for _, p := range procs {
			var st eventstore.Status
			if code := getJSON(p.url+"/v1/eventstore", &st); code != 200 {
				ok = false
				continue
			}
			gens[st.Generation] = true
			total = max(total, len(st.Partitions))
			local := 0
			for _, ps := range st.Partitions {
				if ps.Ready {
					ready[fmt.Sprintf("%s/%d", ps.Topic, ps.Partition)]++
					local++
				}
			}
			ok = ok && local > 0
		}
		for _, n := range ready {
			ok = ok && n == 1
		}
		if ok && total > 0 && len(ready) == total && len(gens) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never shared: %d of %d ready, generations %v", len(ready), total, gens)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func getJSON(url string, v any) int {
	resp, err := client.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(v)
	return resp.StatusCode
}

// answer is one POST's answer.
type answer struct {
	code     int
	replayed bool
	body     map[string]any
}

func post(url, body string) (answer, error) {
	resp, err := client.Post(url+"/v1/events", "application/json", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true"}
	if err := json.NewDecoder(resp.Body).Decode(&a.body); err != nil {
		return a, fmt.Errorf("status %d, body not JSON: %w", resp.StatusCode, err)
	}
	return a, nil
}

func event(id, agg string, expected int64, n int) string {
	return fmt.Sprintf(`{"id":%q,"type":"WorkEffort:ProgressUpdated","aggregateId":%q,"expectedVersion":%d,"data":{"oldProgress":%d,"newProgress":%d,"delta":1,"formatted":"%d%%"}}`,
		id, agg, expected, n%100, n%100+1, n%100+1)
}

// topicRecord is one record of the raw topic, read back at the end.
type topicRecord struct {
	agg       string
	id        string
	version   string
	partition int32
	offset    int64
}

// readTopic reads every committed record of the raw topic.
func readTopic(t *testing.T, s *stacktest.Stack) []topicRecord {
	t.Helper()
	ends := s.EndOffsets(t, rawTopic)[rawTopic]
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(rawTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []topicRecord
	idle := 0
	deadline := time.Now().Add(30 * time.Second)
	for idle < 3 && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			tr := topicRecord{agg: string(r.Key), partition: r.Partition, offset: r.Offset}
			for _, h := range r.Headers {
				switch h.Key {
				case "ce_id":
					tr.id = string(h.Value)
				case "ce_aggregateversion":
					tr.version = string(h.Value)
				}
			}
			out = append(out, tr)
		})
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	if int64(len(out)) > ends {
		t.Fatalf("read %d records, the topic ends at %d", len(out), ends)
	}
	return out
}

// TestRaceAcrossProcessesWithSIGKILL runs three ingest processes and 50 writers racing on 20
// aggregates with expectedVersion, SIGKILLs one process mid-race, and checks the topic: no
// two events of an aggregate share a version, versions are contiguous from 1, every 201 is
// in the topic where its answer said, every 409 wrote nothing, every id is written at most
// once.
func TestRaceAcrossProcessesWithSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process race")
	}
	s := stacktest.Start(t)
	group := "race"
	procs := []*proc{
		startProc(t, s, group, freeAddr(t)),
		startProc(t, s, group, freeAddr(t)),
		startProc(t, s, group, freeAddr(t)),
	}
	waitShared(t, procs...)

	const writers, aggregates = 50, 20
	race := 18 * time.Second
	killAt := 5 * time.Second
	start := time.Now()
	stopAt := start.Add(race)

	type outcome struct {
		id, agg    string
		code       int // 201, 409, or 0 when no definitive answer came
		expected   int64
		version    int64
		partition  int32
		offset     int64
		replayed   bool
		answeredAt time.Duration
		via        string
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
	)
	urls := []string{procs[0].url, procs[1].url, procs[2].url}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for time.Now().Before(stopAt) {
				n++
				agg := fmt.Sprintf("we-race-%d", (w*7+n)%aggregates)
				id := fmt.Sprintf("w%d-n%d", w, n)
				// Read the version from some instance (the writer does not know which are alive).
				var expected int64 = -1
				for try := 0; expected < 0 && time.Now().Before(stopAt); try++ {
					var v struct{ Version int64 }
					if getJSON(urls[(w+n+try)%3]+"/v1/streams/"+agg+"/version", &v) == 200 {
						expected = v.Version
					} else {
						time.Sleep(50 * time.Millisecond)
					}
				}
				if expected < 0 {
					return
				}
				o := outcome{id: id, agg: agg, expected: expected}
				// Post; on 503 or a dead connection, retry the same request elsewhere until a
				// definitive answer (the id makes the retry safe).
				giveUp := time.Now().Add(20 * time.Second)
				for try := 0; time.Now().Before(giveUp); try++ {
					via := urls[(w+n+try)%3]
					a, err := post(via, event(id, agg, expected, n))
					if err == nil && (a.code == 201 || a.code == 409) {
						o.code, o.replayed, o.via = a.code, a.replayed, via
						o.answeredAt = time.Since(start)
						if a.code == 201 {
							o.version = int64(a.body["version"].(float64))
							o.partition = int32(a.body["partition"].(float64))
							o.offset = int64(a.body["offset"].(float64))
						}
						break
					}
					if err == nil && a.code != 503 {
						t.Errorf("post %s via %s: %d %v", id, via, a.code, a.body)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(killAt)
	procs[2].kill()
	t.Logf("SIGKILLed %s at %v", procs[2].url, time.Since(start).Round(time.Millisecond))
	wg.Wait()
	procs[0].stop(t)
	procs[1].stop(t)

	recs := readTopic(t, s)
	byID := map[string]topicRecord{}
	byAgg := map[string][]topicRecord{}
	for _, r := range recs {
		if _, dup := byID[r.id]; dup {
			t.Errorf("id %s written twice", r.id)
		}
		byID[r.id] = r
		byAgg[r.agg] = append(byAgg[r.agg], r)
	}
	for agg, rs := range byAgg {
		for i, r := range rs { // in offset order: one aggregate is one partition
			if r.version != fmt.Sprint(i+1) {
				t.Errorf("%s: event %d at offset %d has version %q, want %d", agg, i, r.offset, r.version, i+1)
			}
		}
	}
	var created, conflicts, unknown, replayed, afterKill int
	known := map[string]bool{}
	for _, o := range outcomes {
		known[o.id] = true
		r, written := byID[o.id]
		switch o.code {
		case 201:
			created++
			if o.replayed {
				replayed++
			}
			if o.answeredAt > killAt+time.Second {
				afterKill++
			}
			if !written {
				t.Errorf("201 for %s (%s v%d at %d@%d) is not in the topic", o.id, o.agg, o.version, o.partition, o.offset)
				continue
			}
			if r.partition != o.partition || r.offset != o.offset || r.agg != o.agg || r.version != fmt.Sprint(o.version) {
				t.Errorf("201 for %s said %s v%d at %d@%d; the topic has %s v%s at %d@%d",
					o.id, o.agg, o.version, o.partition, o.offset, r.agg, r.version, r.partition, r.offset)
			}
			if o.version != o.expected+1 {
				t.Errorf("%s expected version %d and got version %d", o.id, o.expected, o.version)
			}
		case 409:
			conflicts++
			if written {
				t.Errorf("409 for %s, but it is in the topic at %d@%d", o.id, r.partition, r.offset)
			}
		default:
			unknown++
		}
	}
	for id := range byID {
		if !known[id] {
			t.Errorf("the topic has %s, which no writer sent", id)
		}
	}
	t.Logf("%d records; %d created (%d replayed retries, %d after the kill), %d conflicts, %d without an answer",
		len(recs), created, replayed, afterKill, conflicts, unknown)
	if created < 100 || conflicts == 0 || afterKill == 0 {
		t.Errorf("too little happened to prove anything: %d created, %d conflicts, %d after the kill", created, conflicts, afterKill)
	}
	if len(recs) < created || len(recs) > created+unknown {
		t.Errorf("%d records for %d created and %d unknown", len(recs), created, unknown)
	}
}

// TestDuplicateIDsAcrossInstancesAndRestart posts one event id through every instance, then
// restarts all of them (the new processes rebuild the dedupe window from the topic) and posts
// it again, and kills the owner so another instance takes the partition over: it is written
// once, and every answer is the first one.
func TestDuplicateIDsAcrossInstancesAndRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	s := stacktest.Start(t)
	const group = "dups"
	addrs := []string{freeAddr(t), freeAddr(t), freeAddr(t)}
	start := func() []*proc {
		ps := make([]*proc, len(addrs))
		for i, a := range addrs {
			ps[i] = startProc(t, s, group, a)
		}
		waitShared(t, ps...)
		return ps
	}
	procs := start()
	body := event("evt-dup-1", "we-dup", 0, 1)
	first, err := post(procs[0].url, body)
	if err != nil || first.code != 201 || first.replayed {
		t.Fatalf("first post: %+v %v", first, err)
	}
	same := func(t *testing.T, via string) {
		t.Helper()
		a, err := post(via, body)
		if err != nil || a.code != 201 || !a.replayed {
			t.Fatalf("retry via %s: %+v %v", via, a, err)
		}
		for _, k := range []string{"offset", "partition", "version", "id"} {
			if a.body[k] != first.body[k] {
				t.Errorf("retry via %s: %s %v, first %v", via, k, a.body[k], first.body[k])
			}
		}
	}
	t.Run("across instances", func(t *testing.T) {
		for _, p := range procs {
			same(t, p.url)
		}
	})
	t.Run("across a restart of every instance", func(t *testing.T) {
		for _, p := range procs {
			p.stop(t)
		}
		procs = start()
		for _, p := range procs {
			same(t, p.url)
		}
	})
	t.Run("after the owner is killed", func(t *testing.T) {
		var owner int
		var st eventstore.Status
		getJSON(procs[0].url+"/v1/eventstore", &st)
		part := int32(first.body["partition"].(float64))
		for _, ps := range st.Partitions {
			if ps.Topic == rawTopic && ps.Partition == part {
				for i, p := range procs {
					if p.url == ps.Owner {
						owner = i
					}
				}
			}
		}
		procs[owner].kill()
		other := procs[(owner+1)%3]
		deadline := time.Now().Add(30 * time.Second)
		for {
			a, err := post(other.url, body)
			if err == nil && a.code == 201 {
				same(t, other.url)
				break
			}
			if err == nil && a.code != 503 {
				t.Fatalf("after the kill: %+v", a)
			}
			if time.Now().After(deadline) {
				t.Fatalf("the partition never came back: %+v %v", a, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	n := 0
	for _, r := range readTopic(t, s) {
		if r.id == "evt-dup-1" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("evt-dup-1 is in the topic %d times", n)
	}
}
