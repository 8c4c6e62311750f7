package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// devStack is one `pyrite dev` run inside the test process.
type devStack struct {
	kafka, registry, ingest, projector string
	stop                               func() error
	printed                            []string      // stdout up to the ready line
	logs                               func() string // stderr so far
}

// startDev runs `pyrite dev` on dataDir with free ports and waits for its
// ready line.
func startDev(t *testing.T, dataDir string, extra ...string) *devStack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := []string{"--data-dir", dataDir, "--kafka-addr", freeAddr(t), "--registry-addr", freeAddr(t),
		"--ingest-addr", freeAddr(t), "--projector-addr", freeAddr(t), "--upcaster-addr", freeAddr(t)}
	args = append(args, extra...)
	var stderr strings.Builder
	var mu sync.Mutex
	go func() {
		err := runDev(ctx, args, pw, lockedWriter{&mu, &stderr})
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	s := &devStack{}
	sc := bufio.NewScanner(pr)
	deadline := time.AfterFunc(60*time.Second, cancel)
	defer deadline.Stop()
	for sc.Scan() {
		s.printed = append(s.printed, sc.Text())
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 2 && f[0] == "kafka":
			s.kafka = f[1]
		case len(f) >= 2 && f[0] == "registry":
			s.registry = f[1]
		case len(f) >= 2 && f[0] == "ingest":
			s.ingest = f[1]
		case len(f) >= 2 && f[0] == "projector":
			s.projector = f[1]
		}
		if strings.HasPrefix(sc.Text(), "pyrite dev ready") {
			break
		}
	}
	if s.ingest == "" {
		cancel()
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("pyrite dev did not get ready: %v\n%s", <-done, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	s.logs = func() string {
		mu.Lock()
		defer mu.Unlock()
		return stderr.String()
	}
	s.stop = func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("pyrite dev did not stop within 30s")
		}
	}
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestDevRestartKeepsState: a second `pyrite dev` on the same data directory
// finds every event, schema id and committed offset of the first.
func TestDevRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	first := startDev(t, dir)

	var ids []float64
	type ver struct {
		ID float64 `json:"id"`
	}
	for v := 1; v <= 3; v++ {
		var got ver
		getJSON(t, fmt.Sprintf("%s/subjects/pyrite.workeffort.ProgressUpdated/versions/%d", first.registry, v), &got)
		ids = append(ids, got.ID)
	}
	for i := range 5 {
		body := fmt.Sprintf(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-%d","data":{"oldProgress":0,"newProgress":%d,"delta":%d,"formatted":"%d%%"}}`, i, i*10, i*10, i*10)
		resp, err := http.Post(first.ingest+"/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("post %d: %d %v", i, resp.StatusCode, res)
		}
	}
	// A consumer group commits a position.
	cl, err := kgo.NewClient(kgo.SeedBrokers(first.kafka))
	if err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	commit := kadm.Offsets{}
	commit.Add(kadm.Offset{Topic: "pyrite.work-effort.raw", Partition: 0, At: 2, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "restart-test", commit); err != nil {
		t.Fatal(err)
	}
	endsBefore, err := adm.ListEndOffsets(ctx, "pyrite.work-effort.raw")
	if err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := first.stop(); err != nil {
		t.Fatalf("first run stopped with %v", err)
	}

	second := startDev(t, dir)
	defer func() {
		if err := second.stop(); err != nil {
			t.Errorf("second run stopped with %v", err)
		}
	}()
	for v := 1; v <= 3; v++ {
		var got ver
		getJSON(t, fmt.Sprintf("%s/subjects/pyrite.workeffort.ProgressUpdated/versions/%d", second.registry, v), &got)
		if got.ID != ids[v-1] {
			t.Errorf("version %d has id %v after restart, %v before", v, got.ID, ids[v-1])
		}
	}
	cl, err = kgo.NewClient(kgo.SeedBrokers(second.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm = kadm.NewClient(cl)
	endsAfter, err := adm.ListEndOffsets(ctx, "pyrite.work-effort.raw")
	if err != nil {
		t.Fatal(err)
	}
	var before, after int64
	endsBefore.Each(func(o kadm.ListedOffset) { before += o.Offset })
	endsAfter.Each(func(o kadm.ListedOffset) { after += o.Offset })
	if before < 5 || after != before { // end offsets count transaction markers too
		t.Errorf("raw topic ended at %d before the restart and %d after; want the same, at least 5", before, after)
	}
	fetched, err := adm.FetchOffsets(ctx, "restart-test")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup("pyrite.work-effort.raw", 0); !ok || o.At != 2 {
		t.Errorf("committed offset after restart = %+v (found %v), want 2", o, ok)
	}
	// The events themselves are readable again.
	rc, err := kgo.NewClient(kgo.SeedBrokers(second.kafka), kgo.ConsumeTopics("pyrite.work-effort.raw"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := 0
	for got < 5 && ctx.Err() == nil {
		got += len(rc.PollFetches(ctx).Records())
	}
	if got != 5 {
		t.Errorf("read %d events after restart, want 5", got)
	}
}

func TestDevPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out, errOut strings.Builder
	err = runDev(context.Background(), []string{"--data-dir", t.TempDir(), "--kafka-addr", freeAddr(t),
		"--registry-addr", ln.Addr().String()}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) || !strings.Contains(err.Error(), "--registry-addr") {
		t.Fatalf("error %v does not name the port and the flag", err)
	}
}
