package upcaster_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// seq reads the sequence number the tests put in newProgress.
func seq(t testing.TB, c *codec.Codec, r *kgo.Record) workeffort.ProgressUpdatedV3 {
	t.Helper()
	var v workeffort.ProgressUpdatedV3
	if _, err := c.Decode(context.Background(), r.Value, nil, &v); err != nil {
		t.Fatalf("decode %s[%d]@%d: %v", r.Topic, r.Partition, r.Offset, err)
	}
	return v
}

func TestPoisonGoesToDLQ(t *testing.T) {
	for _, mode := range []upcaster.Mode{upcaster.Transactional, upcaster.AtLeastOnce} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t)
			run := e.start(t, upcaster.Config{Mode: mode}, "", 0)
			good := func(n int) *kgo.Record {
				return &kgo.Record{Topic: rawTopic, Key: []byte("w1"),
					Value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{OldProgress: int32(n - 1), NewProgress: int32(n)})}
			}
			poison := []struct {
				reason string
				value  []byte
				topic  string
			}{
				{reason: upcaster.ReasonNotFramed, value: []byte(`{"oldProgress":1,"newProgress":2}`)},
				{reason: upcaster.ReasonUnknownSchema, value: append(codec.AppendHeader(nil, 987654), 2, 4)},
				{reason: upcaster.ReasonUnroutable, value: e.frame(t, "pyrite.system.CacheInvalidated", 1,
					map[string]any{"key": "k", "reason": "r"})},
				{reason: upcaster.ReasonUnroutable, value: e.frame(t, "pyrite.deployment.RunTests", 1,
					map[string]any{"workEffortId": "w", "processId": "p"})},
				{reason: upcaster.ReasonUpcastFailed, value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{OldProgress: -2147483648, NewProgress: 2147483647})},
				{reason: upcaster.ReasonInvalidData, value: append(e.frame(t, progress, 3, workeffort.ProgressUpdatedV3{Formatted: "x"}), 0xff)},
			}
			var rs []*kgo.Record
			n := 0
			for _, p := range poison {
				n++
				rs = append(rs, good(n), &kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: p.value,
					Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("poison-" + p.reason)}}})
			}
			n++
			rs = append(rs, good(n))
			e.produce(t, rs...)

			events := e.reader(t, eventsTopic).count(t, 20*time.Second, n)
			for i, r := range events {
				if v := seq(t, e.codec, r); v.NewProgress != int32(i+1) || v.Formatted != strconv.Itoa(i+1)+"%" || v.Delta != 1 {
					t.Errorf("event %d = %+v", i, v)
				}
			}
			dead := e.reader(t, dlqTopic).count(t, 10*time.Second, len(poison))
			if len(dead) != len(poison) {
				t.Fatalf("%d dead letters, want %d", len(dead), len(poison))
			}
			for i, d := range dead {
				p := poison[i]
				if got, _ := header(d, upcaster.HeaderDLQReason); got != p.reason {
					t.Errorf("dead letter %d: reason %q, want %q", i, got, p.reason)
				}
				if !bytes.Equal(d.Value, p.value) || string(d.Key) != "w1" {
					t.Errorf("dead letter %d: key %q value %x, want the original", i, d.Key, d.Value)
				}
				if got, _ := header(d, "ce_id"); got != "poison-"+p.reason {
					t.Errorf("dead letter %d lost its headers: ce_id %q", i, got)
				}
				if got, _ := header(d, upcaster.HeaderOriginTopic); got != rawTopic {
					t.Errorf("dead letter %d: origin topic %q", i, got)
				}
				off, _ := header(d, upcaster.HeaderOriginOffset)
				if want := strconv.FormatInt(int64(2*i+1), 10); off != want {
					t.Errorf("dead letter %d: origin offset %s, want %s", i, off, want)
				}
				if _, ok := header(d, upcaster.HeaderOriginPartition); !ok {
					t.Errorf("dead letter %d: no origin partition", i)
				}
				id, hasID := header(d, upcaster.HeaderDLQSchemaID)
				if p.reason == upcaster.ReasonNotFramed {
					if hasID {
						t.Errorf("dead letter %d: schema id %q for an unframed value", i, id)
					}
				} else if fid, _, _ := codec.SplitFrame(p.value); id != strconv.Itoa(fid) {
					t.Errorf("dead letter %d: schema id %q, want %d", i, id, fid)
				}
				if msg, _ := header(d, upcaster.HeaderDLQError); msg == "" {
					t.Errorf("dead letter %d: no error text", i)
				}
			}
			waitFor(t, 5*time.Second, "metrics", func() bool {
				return total(t, run, "pyrite_upcaster_records_total") == float64(n)
			})
			for reason, want := range map[string]float64{upcaster.ReasonNotFramed: 1, upcaster.ReasonUnknownSchema: 1,
				upcaster.ReasonUnroutable: 2, upcaster.ReasonUpcastFailed: 1, upcaster.ReasonInvalidData: 1, upcaster.ReasonNoPath: 0} {
				if got := metricValue(t, run, "pyrite_upcaster_dlq_total", "reason", reason); got != want {
					t.Errorf("dlq_total{reason=%s} = %v, want %v", reason, got, want)
				}
			}
			if got := metricValue(t, run, "pyrite_upcaster_records_total", "from", "1"); got != float64(n) {
				t.Errorf("records_total{from=1} = %v, want %d", got, n)
			}
			if code, body := run.get(t, "/readyz"); code != http.StatusOK {
				t.Errorf("/readyz = %d %s", code, body)
			}
			if code, body := run.get(t, "/metrics"); code != http.StatusOK || !strings.Contains(body, "pyrite_upcaster_lag{") ||
				!strings.Contains(body, "pyrite_upcaster_transaction_seconds_bucket") || !strings.Contains(body, "pyrite_upcaster_kafka_") {
				t.Errorf("/metrics = %d, missing series:\n%s", code, body)
			}
		})
	}
}

func TestHeadersOnEvents(t *testing.T) {
	e := newEnv(t)
	e.start(t, upcaster.Config{}, "", 0)
	withHeaders := &kgo.Record{Topic: rawTopic, Key: []byte("w1"),
		Value: e.frame(t, progress, 2, workeffort.ProgressUpdatedV2{OldProgress: 1, NewProgress: 2, Delta: 1}),
		Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("id-1")},
			{Key: "ce_source", Value: []byte("/svc")}, {Key: "ce_type", Value: []byte("WorkEffort:Wrong")},
			{Key: "ce_time", Value: []byte("2025-01-01T00:00:00Z")}, {Key: "ce_subject", Value: []byte("w1")},
			{Key: "ce_correlationid", Value: []byte("corr")}, {Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
			{Key: "content-type", Value: []byte("avro/binary")}, {Key: upcaster.HeaderFromVersion, Value: []byte("spoofed")},
		}}
	bare := &kgo.Record{Topic: rawTopic, Key: []byte("w2"), Timestamp: time.UnixMilli(1700000000123),
		Value: e.frame(t, progress, 3, workeffort.ProgressUpdatedV3{OldProgress: 1, NewProgress: 2, Delta: 1, Formatted: "2%"})}
	e.produce(t, withHeaders, bare)
	got := e.reader(t, eventsTopic).count(t, 20*time.Second, 2)
	byKey := map[string]*kgo.Record{}
	for _, r := range got {
		byKey[string(r.Key)] = r
	}
	all := func(r *kgo.Record) map[string][]string {
		m := map[string][]string{}
		for _, h := range r.Headers {
			m[h.Key] = append(m[h.Key], string(h.Value))
		}
		return m
	}
	v3 := strconv.Itoa(e.SchemaID(progress, 3))
	tests := []struct {
		name string
		rec  *kgo.Record
		want map[string]string
	}{
		{name: "kept", rec: byKey["w1"], want: map[string]string{
			"ce_specversion": "1.0", "ce_id": "id-1", "ce_source": "/svc", "ce_type": "WorkEffort:ProgressUpdated",
			"ce_time": "2025-01-01T00:00:00Z", "ce_subject": "w1", "ce_correlationid": "corr", "ce_aggregatetype": "WorkEffort",
			"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "content-type": "application/avro",
			upcaster.HeaderFromVersion: "2", upcaster.HeaderFromSchemaID: strconv.Itoa(e.SchemaID(progress, 2)),
			upcaster.HeaderRawTopic: rawTopic, upcaster.HeaderRawOffset: strconv.FormatInt(withHeaders.Offset, 10),
			upcaster.HeaderRawPartition: strconv.Itoa(int(withHeaders.Partition)),
		}},
		{name: "derived", rec: byKey["w2"], want: map[string]string{
			"ce_specversion": "1.0", "ce_source": upcaster.DefaultSource, "ce_type": "WorkEffort:ProgressUpdated",
			"ce_time": "2023-11-14T22:13:20.123Z", "ce_subject": "w2", "ce_aggregatetype": "WorkEffort",
			"content-type": "application/avro", upcaster.HeaderFromVersion: "3", upcaster.HeaderFromSchemaID: v3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rec == nil {
				t.Fatal("record missing")
			}
			hs := all(tt.rec)
			for k, want := range tt.want {
				if got := hs[k]; len(got) != 1 || got[0] != want {
					t.Errorf("%s = %q, want [%q]", k, got, want)
				}
			}
			if id, _, _ := codec.SplitFrame(tt.rec.Value); strconv.Itoa(id) != v3 {
				t.Errorf("value written with schema %d, want %s (v3)", id, v3)
			}
		})
	}
	// A derived ce_id is a UUID fixed by the raw record's position; the correlation id follows it.
	hs := all(byKey["w2"])
	if id := hs["ce_id"]; len(id) != 1 || len(id[0]) != 36 || hs["ce_correlationid"][0] != id[0] {
		t.Errorf("derived ce_id %q, correlation %q", id, hs["ce_correlationid"])
	}
	if byKey["w2"].Timestamp.UnixMilli() != 1700000000123 {
		t.Errorf("timestamp %v not kept", byKey["w2"].Timestamp)
	}
}

// flaky fronts the registry and answers 503 while down is set.
type flaky struct {
	down atomic.Bool
	srv  *httptest.Server
}

func newFlaky(t *testing.T, target string) *flaky {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// progressV4 adds a field with a default: registered while the upcaster runs.
const progressV4 = `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","fields":[
 {"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"},{"name":"delta","type":"int","default":0},
 {"name":"formatted","type":"string","default":""},{"name":"note","type":"string","default":"none"}]}`

func TestRegistryOutageIsNotPoison(t *testing.T) {
	e := newEnv(t)
	f := newFlaky(t, e.RegistryURL)
	run := e.start(t, upcaster.Config{MaxBackoff: 200 * time.Millisecond}, f.srv.URL, time.Hour)
	events := e.reader(t, eventsTopic)
	v1 := func(n int) *kgo.Record {
		return &kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{NewProgress: int32(n)})}
	}
	e.produce(t, v1(1))
	events.count(t, 20*time.Second, 1)
	waitFor(t, 10*time.Second, "ready", func() bool { code, _ := run.get(t, "/readyz"); return code == http.StatusOK })

	// The registry goes away; a new version is registered behind its back and used at once by
	// a producer. The upcaster cannot look the new id up: it must wait, not dead-letter.
	f.down.Store(true)
	sch, err := srclient.NewSchemaRegistryClient(e.RegistryURL).CreateSchema(progress, progressV4, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	v4, err := codec.NewSchema(sch.ID(), progress, 4, progressV4)
	if err != nil {
		t.Fatal(err)
	}
	val, err := e.codec.Encode(v4, map[string]any{"oldProgress": 0, "newProgress": 2, "note": "n"})
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, &kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: val}, v1(3))
	waitFor(t, 10*time.Second, "not ready while the registry is down", func() bool {
		code, body := run.get(t, "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "unavailable")
	})
	waitFor(t, 10*time.Second, "a backoff", func() bool {
		return total(t, run, "pyrite_upcaster_backoffs_total") > 0
	})
	if n := e.EndOffsets(t, dlqTopic)[dlqTopic]; n != 0 {
		t.Fatalf("%d records dead-lettered during the outage", n)
	}

	f.down.Store(false)
	got := events.count(t, 20*time.Second, 3)
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	// The v4 value passes unchanged; the v1 after it is written at v4 as well (the output
	// version never goes down, though the cached newest is still v3 for an hour).
	for i, r := range got[1:] {
		if id, _, _ := codec.SplitFrame(r.Value); id != sch.ID() {
			t.Errorf("event %d written with schema %d, want v4 (%d)", i+1, id, sch.ID())
		}
	}
	if !bytes.Equal(got[1].Value, val) {
		t.Errorf("v4 value changed")
	}
	m := map[string]any{}
	if _, err := e.codec.Decode(context.Background(), got[2].Value, nil, &m); err != nil || m["note"] != "none" || m["formatted"] != "3%" || m["delta"] != 3 {
		t.Errorf("v1 after v4 = %v (%v)", m, err)
	}
	waitFor(t, 10*time.Second, "ready again", func() bool { code, _ := run.get(t, "/readyz"); return code == http.StatusOK })
}

func TestNewVersionAfterRefresh(t *testing.T) {
	e := newEnv(t)
	e.start(t, upcaster.Config{}, "", 100*time.Millisecond)
	events := e.reader(t, eventsTopic)
	v1 := &kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{NewProgress: 7})}
	e.produce(t, v1)
	first := events.count(t, 20*time.Second, 1)[0]
	if id, _, _ := codec.SplitFrame(first.Value); id != e.SchemaID(progress, 3) {
		t.Fatalf("first event written with %d, want v3", id)
	}
	sch, err := srclient.NewSchemaRegistryClient(e.RegistryURL).CreateSchema(progress, progressV4, srclient.Avro)
	if err != nil {
		t.Fatal(err)
	}
	// Within one refresh interval the output version becomes v4 with no restart.
	deadline := time.Now().Add(10 * time.Second)
	for i := 2; ; i++ {
		e.produce(t, &kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{NewProgress: int32(i)})})
		last := events.count(t, 20*time.Second, i)[i-1]
		if id, _, _ := codec.SplitFrame(last.Value); id == sch.ID() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("v4 never became the output version")
		}
	}
}

// total sums every series of a counter family.
func total(t testing.TB, r *running, name string) float64 {
	return metricValue(t, r, name, "", "")
}

// metricValue sums the series of a counter family with label=value (every series when label
// is "").
func metricValue(t testing.TB, r *running, name, label, value string) float64 {
	t.Helper()
	mfs, err := r.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == label && l.GetValue() == value
			}
			if match {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
