package interop

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// produced is what produce.mjs prints.
type produced struct {
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Hex       string  `json:"hex"`
	Magic     int     `json:"magic"`
	ID        int     `json:"id"`
	Header    *string `json:"header"` // the __value_schema_id header in hex, in header mode
}

// TestUpcasterReadsKafkaJS has KafkaJS, with Confluent's AvroSerializer, write a v1
// ProgressUpdated to pyrite.work-effort.raw with no CloudEvents headers, and checks that the
// upcaster (in this process) writes it to pyrite.work-effort.events at v3 with delta and
// formatted computed by the chain, on the partition Pyrite's own producer would have chosen
// for the key, with the headers it derives.
func TestUpcasterReadsKafkaJS(t *testing.T) {
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (need Node 20 or later), then %s: %v", installHint, err)
	}
	dir, err := filepath.Abs(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("Node package %s is not installed: %s (%v)", p, installHint, err)
		}
	}
	s := stacktest.Start(t)
	runUpcaster(t, s)

	const key, raw, events = "we-kafkajs", "pyrite.work-effort.raw", "pyrite.work-effort.events"
	v1 := s.SchemaID(progressSubject, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "produce.mjs", "produce", strings.Join(s.Brokers, ","), raw,
		progressSubject, strconv.Itoa(v1), key, `{"oldProgress":20,"newProgress":75}`)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REGISTRY_URL="+s.RegistryURL, "KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node produce.mjs: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	var p produced
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("produce.mjs answer %q: %v", out, err)
	}
	if p.Magic != 0 || p.ID != v1 {
		t.Fatalf("KafkaJS wrote magic %d id %d, want 0 and v1's id %d", p.Magic, p.ID, v1)
	}
	tp, _ := s.Topology.Topic(raw)
	if want := kgoPartition(key, int(tp.Partitions)); p.Partition != want {
		t.Errorf("KafkaJS put key %q on partition %d, franz-go's murmur2 on %d", key, p.Partition, want)
	}

	rec := readKey(t, s, events, key)
	c := codec.New(srclient.NewSchemaRegistryClient(s.RegistryURL))
	var v3 workeffort.ProgressUpdatedV3
	w, err := c.Decode(context.Background(), rec.Value, nil, &v3)
	if err != nil {
		t.Fatal(err)
	}
	if w.ID != s.SchemaID(progressSubject, 3) {
		t.Errorf("event written with schema %d, want v3 (%d)", w.ID, s.SchemaID(progressSubject, 3))
	}
	if want := (workeffort.ProgressUpdatedV3{OldProgress: 20, NewProgress: 75, Delta: 55, Formatted: "75%"}); v3 != want {
		t.Errorf("event = %+v, want %+v", v3, want)
	}
	if rec.Partition != p.Partition {
		t.Errorf("event on partition %d, raw record on %d", rec.Partition, p.Partition)
	}
	hs := map[string]string{}
	for _, h := range rec.Headers {
		hs[h.Key] = string(h.Value)
	}
	for k, want := range map[string]string{"ce_type": "WorkEffort:ProgressUpdated", "ce_subject": key, "ce_specversion": "1.0",
		upcaster.HeaderFromVersion: "1", upcaster.HeaderFromSchemaID: strconv.Itoa(v1),
		upcaster.HeaderRawOffset: strconv.FormatInt(p.Offset, 10)} {
		if hs[k] != want {
			t.Errorf("header %s = %q, want %q", k, hs[k], want)
		}
	}
	if len(hs["ce_id"]) != 36 {
		t.Errorf("derived ce_id %q is not a UUID", hs["ce_id"])
	}
}

// runUpcaster runs the upcaster stage in this process until the test ends.
func runUpcaster(t *testing.T, s *stacktest.Stack) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain,
			Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology, Metrics: prometheus.NewRegistry(),
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
			Config: upcaster.Config{TransactionalID: "interop-" + t.Name()},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("upcaster: %v", err)
		}
	})
}

// readKey reads topic with read_committed until the record with key arrives.
func readKey(t *testing.T, s *stacktest.Stack, topic, key string) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no record with key %q on %s within 30s", key, topic)
		}
		for _, r := range fs.Records() {
			if string(r.Key) == key {
				return r
			}
		}
	}
}

// kgoPartition is the partition franz-go's default (murmur2, Kafka's) partitioner picks.
func kgoPartition(key string, n int) int32 {
	tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	return int32(tp.Partition(&kgo.Record{Key: []byte(key)}, n))
}
