package upcaster

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

func testProcessor(t testing.TB) *processor {
	t.Helper()
	topo := stacktest.Topology(t, topology.Dev)
	p, err := newProcessor(nil, topo, "")
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC) }
	return p
}

func TestPartitioner(t *testing.T) {
	tests := []struct {
		name      string
		partition int32
		n         int
		want      int
	}{
		{name: "same partition", partition: 2, n: 3, want: 2},
		{name: "fewer partitions: modulo", partition: 5, n: 3, want: 2},
		{name: "unset", partition: -1, n: 3, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp := partitioner().ForTopic("pyrite.work-effort.events")
			if !tp.RequiresConsistency(&kgo.Record{}) {
				t.Error("partitioner is not consistent")
			}
			if got := tp.Partition(&kgo.Record{Partition: tt.partition, Key: []byte("k")}, tt.n); got != tt.want {
				t.Errorf("Partition = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name, in string
		n        int
		want     string
	}{
		{name: "short", in: "abc", n: 5, want: "abc"},
		{name: "cut", in: "abcdef", n: 3, want: "abc..."},
		{name: "rune boundary", in: "aé", n: 2, want: "a..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := truncate(tt.in, tt.n); got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
		})
	}
}

func TestParseMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		ok   bool
		want Mode
	}{{"transactional", true, Transactional}, {"at-least-once", true, AtLeastOnce}, {"", false, ""}, {"exactly-once", false, ""}} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMode(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseMode(%q) = %q, %v", tt.in, got, err)
			}
		})
	}
}

func TestNewStageConfig(t *testing.T) {
	topo := stacktest.Topology(t, topology.Dev)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{name: "transactional without id", cfg: Config{}},
		{name: "transactional", cfg: Config{TransactionalID: "x"}, ok: true},
		{name: "at-least-once", cfg: Config{Mode: AtLeastOnce}, ok: true},
		{name: "unknown mode", cfg: Config{Mode: "maybe", TransactionalID: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStage(nil, topo, tt.cfg, nil, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (s.cfg.ConsumerGroup != DefaultConsumerGroup || len(s.raw) != 2) {
				t.Errorf("defaults not applied: %+v, raw topics %v", s.cfg, s.raw)
			}
		})
	}
}

func TestDeadLetterHeaders(t *testing.T) {
	p := testProcessor(t)
	rec := &kgo.Record{Topic: "pyrite.work-effort.raw", Partition: 1, Offset: 42, Key: []byte("k"), Value: []byte{0, 0, 0, 0, 7, 1},
		Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("x")}, {Key: HeaderDLQReason, Value: []byte("old")}, {Key: HeaderOriginOffset, Value: []byte("1")}}}
	o := p.dead(rec, ReasonNoPath, errors.New(strings.Repeat("é", 1000)))
	got := map[string][]string{}
	for _, h := range o.rec.Headers {
		got[h.Key] = append(got[h.Key], string(h.Value))
	}
	want := map[string]string{"ce_id": "x", HeaderDLQReason: ReasonNoPath, HeaderDLQGroup: "upcaster", HeaderDLQAttempts: "1",
		HeaderDLQTime: "2025-01-02T03:04:05Z", HeaderDLQSchemaID: "7", HeaderOriginTopic: "pyrite.work-effort.raw",
		HeaderOriginPartition: "1", HeaderOriginOffset: "42"}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("%s = %q, want [%q]", k, got[k], v)
		}
	}
	if e := got[HeaderDLQError]; len(e) != 1 || len(e[0]) > maxErrorHeader+3 || !strings.HasSuffix(e[0], "...") {
		t.Errorf("error header not truncated: %d bytes", len(e[0]))
	}
	if o.rec.Topic != "pyrite.upcaster.dlq" || o.reason != ReasonNoPath || string(o.rec.Key) != "k" {
		t.Errorf("dead letter %+v", o.rec)
	}
}

// FuzzEventHeaders: whatever headers a raw record carries, the events record has exactly one of
// each CloudEvents header the upcaster guarantees, ce_type and content-type saying what the
// value is, and the upcast headers naming the raw record.
func FuzzEventHeaders(f *testing.F) {
	f.Add("ce_id", "abc", "ce_type", "X:Y", "content-type", "")
	f.Add("ce_time", "", "ce_time", "t", HeaderRawOffset, "9")
	p := testProcessor(f)
	res := upcast.Result{From: upcast.Version{ID: 1, Version: 1}, To: upcast.Version{ID: 3, Version: 3}}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		rec := &kgo.Record{Topic: "pyrite.work-effort.raw", Partition: 0, Offset: 5, Key: []byte("agg"), Timestamp: time.UnixMilli(0),
			Headers: []kgo.RecordHeader{{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}, {Key: k3, Value: []byte(v3)}}}
		var sc scratch
		hs := p.eventHeaders(rec, p.routeOf("pyrite.workeffort.ProgressUpdated"), res, &sc)
		count := map[string]int{}
		val := map[string]string{}
		for _, h := range hs {
			count[h.Key]++
			val[h.Key] = string(h.Value)
		}
		for _, k := range []string{ceSpecVersion, ceID, ceSource, ceType, ceTime, ceSubject, contentType, ceAggregateType, ceCorrelationID,
			HeaderFromVersion, HeaderFromSchemaID, HeaderRawTopic, HeaderRawPartition, HeaderRawOffset} {
			if count[k] != 1 || val[k] == "" {
				t.Fatalf("%s appears %d times (%q) in %v", k, count[k], val[k], hs)
			}
		}
		if val[ceType] != "WorkEffort:ProgressUpdated" || val[contentType] != "application/avro" || val[HeaderRawOffset] != "5" {
			t.Fatalf("headers %v", val)
		}
	})
}

func TestDerivedID(t *testing.T) {
	p := testProcessor(t)
	tests := []struct {
		name string
		rec  kgo.Record
	}{
		{name: "first", rec: kgo.Record{Topic: "pyrite.work-effort.raw", Partition: 0, Offset: 0}},
		{name: "large offset", rec: kgo.Record{Topic: "pyrite.work-effort.raw", Partition: 11, Offset: 1 << 40}},
		{name: "long topic", rec: kgo.Record{Topic: "pyrite." + strings.Repeat("x", 240) + ".raw", Partition: 2, Offset: 7}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(p.appendDerivedID(nil, &tt.rec))
			want := uuid.NewSHA1(p.idSpace, []byte(tt.rec.Topic+"/"+strconv.Itoa(int(tt.rec.Partition))+"/"+strconv.FormatInt(tt.rec.Offset, 10))).String()
			if got != want {
				t.Errorf("derived %s, want %s", got, want)
			}
			if seen[got] {
				t.Errorf("id %s repeated", got)
			}
			seen[got] = true
		})
	}
}
