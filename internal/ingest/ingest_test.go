package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const rawTopic = "pyrite.work-effort.raw"

type harness struct {
	stack *stacktest.Stack
	codec *codec.Codec
	url   string
}

// newHarness runs ingest (ingest.Run, event store included) on the test stack, or on the
// given registry and brokers, and waits until its store owns every partition (unless
// brokers are given: a dead Kafka never gets there).
func newHarness(t *testing.T, registryURL string, brokers []string, cfg ingest.Config) *harness {
	t.Helper()
	s := stacktest.Start(t)
	wait := brokers == nil && registryURL == ""
	if registryURL == "" {
		registryURL = s.RegistryURL
	}
	if brokers == nil {
		brokers = s.Brokers
	}
	url := startIngest(t, s, brokers, registryURL, uniqueGroup(), cfg)
	if wait {
		waitOwned(t, url)
	}
	return &harness{stack: s, codec: codec.Dial(s.RegistryURL), url: url}
}

var groupSeq atomic.Int64

func uniqueGroup() string {
	return fmt.Sprintf("ingest-test-%d-%d", time.Now().UnixNano()%1e6, groupSeq.Add(1))
}

// startIngest runs ingest.Run on a new listener until the test ends and returns its URL.
func startIngest(t *testing.T, s *stacktest.Stack, brokers []string, registryURL, group string, cfg ingest.Config) string {
	t.Helper()
	url, stop := startIngestStop(t, s, brokers, registryURL, group, cfg)
	t.Cleanup(stop)
	return url
}

// startIngestStop is startIngest with a stop func (which the caller must call) in place of
// the cleanup.
func startIngestStop(t *testing.T, s *stacktest.Stack, brokers []string, registryURL, group string, cfg ingest.Config) (string, func()) {
	t.Helper()
	if cfg.Folds == nil {
		cfg.Folds, cfg.Commands = s.Folds, s.Commands
	}
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain,
			Brokers: brokers, Registry: registryURL, Topology: s.Topology, Metrics: prometheus.NewRegistry(),
			Drain: 5 * time.Second, Config: cfg, Store: ingest.StoreOptions{Group: group, SessionTimeout: 6 * time.Second},
		})
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ingest.Run: %v", err)
			}
		})
	}
	return "http://" + ln.Addr().String(), stop
}

// waitOwned waits until the instances at urls agree on one generation in which every
// partition is owned by one of them and ready there, and each owns at least minEach.
func waitOwned(t *testing.T, urls ...string) { waitOwnedEach(t, 0, urls...) }

func waitOwnedEach(t *testing.T, minEach int, urls ...string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ready, total, gens, ok := map[string]int{}, 0, map[int32]bool{}, true
		for _, u := range urls {
			resp, err := http.Get(u + "/v1/eventstore")
			if err != nil {
				ok = false
				continue
			}
			var st eventstore.Status
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			gens[st.Generation] = true
			total = max(total, len(st.Partitions))
			local := 0
			for _, p := range st.Partitions {
				if p.Ready {
					ready[fmt.Sprintf("%s/%d", p.Topic, p.Partition)]++
					local++
				}
			}
			ok = ok && local >= minEach
		}
		for _, n := range ready {
			ok = ok && n == 1
		}
		if ok && total > 0 && len(ready) == total && len(gens) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions never all owned and ready: %d of %d, generations %v", len(ready), total, gens)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *harness) post(t *testing.T, path, contentType, body string) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Post(h.url+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("answer is not JSON (%d): %s", resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, out
}

const created = `{"type":"WorkEffort:Created","aggregateId":"we-1","data":{"title":"Ship it","description":null,"createdAt":"2026-11-26T10:00:00Z","assignee":"ada@example.com"},"metadata":{"correlationId":"corr-1","userId":"ada"}}`

func TestPostEventWritesRecord(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	code, _, body := h.post(t, "/v1/events", "application/json", created)
	if code != http.StatusCreated {
		t.Fatalf("status %d, body %v", code, body)
	}
	for _, k := range []string{"id", "type", "aggregateId", "topic", "partition", "offset", "schemaId"} {
		if _, ok := body[k]; !ok {
			t.Errorf("answer lacks %q: %v", k, body)
		}
	}
	if body["topic"] != rawTopic || body["aggregateId"] != "we-1" || body["type"] != "WorkEffort:Created" {
		t.Errorf("answer = %v", body)
	}
	wantID := h.stack.SchemaID("pyrite.workeffort.Created", 1)
	if int(body["schemaId"].(float64)) != wantID {
		t.Errorf("schemaId %v, want %d", body["schemaId"], wantID)
	}

	recs := h.stack.Consume(t, rawTopic, 1)
	r := recs[0]
	if string(r.Key) != "we-1" || r.Partition != int32(body["partition"].(float64)) || r.Offset != int64(body["offset"].(float64)) {
		t.Errorf("record key %q at %d@%d, answer said %v", r.Key, r.Partition, r.Offset, body)
	}
	hdr := map[string]string{}
	for _, kv := range r.Headers {
		hdr[kv.Key] = string(kv.Value)
	}
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": body["id"].(string), "ce_type": "WorkEffort:Created",
		"ce_subject": "we-1", "content-type": "application/avro", "ce_aggregatetype": "WorkEffort",
		"ce_correlationid": "corr-1", "ce_userid": "ada", "ce_source": ingest.DefaultSource,
	}
	for k, v := range want {
		if hdr[k] != v {
			t.Errorf("header %s = %q, want %q", k, hdr[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, hdr["ce_time"]); err != nil {
		t.Errorf("ce_time %q: %v", hdr["ce_time"], err)
	}
	if len(hdr["traceparent"]) != 55 {
		t.Errorf("traceparent %q", hdr["traceparent"])
	}
	var v map[string]any
	w, err := h.codec.Decode(context.Background(), r.Value, nil, &v)
	if err != nil {
		t.Fatal(err)
	}
	if w.ID != wantID || v["title"] != "Ship it" {
		t.Errorf("decoded with schema %d: %v", w.ID, v)
	}
	if ts, ok := v["createdAt"].(time.Time); !ok || !ts.Equal(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("createdAt = %#v", v["createdAt"])
	}
}

func TestPostEventOptions(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	t.Run("given id and old schema version", func(t *testing.T) {
		code, _, body := h.post(t, "/v1/events", "application/json",
			`{"id":"evt-42","type":"WorkEffort:ProgressUpdated","aggregateId":"we-2","schemaVersion":1,"data":{"oldProgress":10,"newProgress":40}}`)
		if code != http.StatusCreated {
			t.Fatalf("status %d: %v", code, body)
		}
		if body["id"] != "evt-42" || int(body["schemaId"].(float64)) != h.stack.SchemaID("pyrite.workeffort.ProgressUpdated", 1) {
			t.Errorf("answer %v", body)
		}
	})
	t.Run("epoch millis timestamp", func(t *testing.T) {
		code, _, body := h.post(t, "/v1/events", "application/json",
			`{"type":"WorkEffort:Created","aggregateId":"we-3","data":{"title":"x","description":"d","createdAt":1764151200000,"assignee":null}}`)
		if code != http.StatusCreated {
			t.Fatalf("status %d: %v", code, body)
		}
	})
	t.Run("caller traceparent kept", func(t *testing.T) {
		const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/events", strings.NewReader(
			`{"type":"System:CacheInvalidated","aggregateId":"cache","data":{"key":"k","reason":"r"}}`))
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		req.Header.Set("traceparent", tp)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status %d", resp.StatusCode)
		}
		r := h.stack.Consume(t, "pyrite.system", 1)[0]
		for _, kv := range r.Headers {
			if kv.Key == "traceparent" && string(kv.Value) != tp {
				t.Errorf("traceparent %q, want %q", kv.Value, tp)
			}
		}
	})
}

// TestRejections checks every error answer of DESIGN.md section 5 and that
// nothing reached Kafka for any of them.
func TestRejections(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{MaxBody: 2048})
	topics := []string{rawTopic, "pyrite.deployment.raw", "pyrite.system", "pyrite.integration"}
	before := h.stack.EndOffsets(t, topics...)
	big := `{"type":"WorkEffort:Created","aggregateId":"we","data":{"title":"` + strings.Repeat("x", 4096) + `"}}`
	cases := []struct {
		name, path, ctype, body string
		status                  int
		fields                  []string // fields the problem must name
	}{
		{"malformed JSON", "/v1/events", "application/json", `{"type":`, 400, nil},
		{"missing fields", "/v1/events", "application/json", `{"data":{}}`, 400, []string{"type", "aggregateId"}},
		{"unknown top-level field", "/v1/events", "application/json", `{"type":"WorkEffort:Created","aggregateId":"a","data":{},"extra":1}`, 400, []string{"extra"}},
		{"data not an object", "/v1/events", "application/json", `{"type":"WorkEffort:Created","aggregateId":"a","data":[1]}`, 400, []string{"data"}},
		{"body too large", "/v1/events", "application/json", big, 413, nil},
		{"not JSON", "/v1/events", "text/plain", created, 415, nil},
		{"no content type", "/v1/events", "", created, 415, nil},
		{"unknown type", "/v1/events", "application/json", `{"type":"WorkEffort:Exploded","aggregateId":"a","data":{}}`, 422, []string{"type"}},
		{"unknown aggregate", "/v1/events", "application/json", `{"type":"Nope:Created","aggregateId":"a","data":{}}`, 422, []string{"type"}},
		{"unknown schema version", "/v1/events", "application/json", `{"type":"WorkEffort:Created","aggregateId":"a","schemaVersion":9,"data":{}}`, 422, []string{"schemaVersion"}},
		{"data does not fit", "/v1/events", "application/json",
			`{"type":"WorkEffort:Created","aggregateId":"a","data":{"title":5,"createdAt":"yesterday","colour":"red"}}`, 422,
			[]string{"data.title", "data.createdAt", "data.colour"}},
		{"expectedVersion ahead of the stream", "/v1/events", "application/json",
			`{"type":"WorkEffort:Created","aggregateId":"a","expectedVersion":3,"data":{"title":"t","createdAt":1}}`, 409, []string{"expectedVersion"}},
		{"expectedVersion in a batch", "/v1/events:batch", "application/json",
			`{"events":[{"type":"WorkEffort:Created","aggregateId":"a","expectedVersion":0,"data":{"title":"t","createdAt":1}},` +
				`{"type":"WorkEffort:Started","aggregateId":"a","expectedVersion":0,"data":{"title":"t","startedAt":1}}]}`, 409, []string{"events[1].expectedVersion"}},
		{"batch spanning partitions", "/v1/events:batch", "application/json",
			`{"events":[` + strings.Replace(created, `"we-1"`, `"`+keyOn(0)+`"`, 1) + `,` + strings.Replace(created, `"we-1"`, `"`+keyOn(1)+`"`, 1) + `]}`,
			422, []string{"events[1].aggregateId"}},
		{"batch with one bad event", "/v1/events:batch", "application/json",
			`{"events":[` + created + `,{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-1","data":{"oldProgress":"ten","newProgress":20}}]}`, 422,
			[]string{"events[1].data.oldProgress"}},
		{"batch with malformed event", "/v1/events:batch", "application/json", `{"events":[` + created + `,{"type":"WorkEffort:Created"}]}`, 400,
			[]string{"events[1].aggregateId", "events[1].data"}},
		{"empty batch", "/v1/events:batch", "application/json", `{"events":[]}`, 400, []string{"events"}},
		{"batch not an object", "/v1/events:batch", "application/json", `[1,2]`, 400, []string{"events"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(h.url+tc.path, tc.ctype, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			var p ingest.Problem
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if p.Status != tc.status || p.Type == "" || p.Title == "" {
				t.Errorf("problem %+v", p)
			}
			named := map[string]bool{}
			for _, e := range p.Errors {
				named[e.Field] = true
				if e.Message == "" {
					t.Errorf("field %s has no message", e.Field)
				}
			}
			for _, f := range tc.fields {
				if !named[f] {
					t.Errorf("problem does not name %q: %+v", f, p.Errors)
				}
			}
		})
	}
	after := h.stack.EndOffsets(t, topics...)
	for _, tp := range topics {
		if after[tp] != before[tp] {
			t.Errorf("%s end offsets moved from %d to %d: a rejected request wrote", tp, before[tp], after[tp])
		}
	}
}

func TestBatchIsOneTransaction(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	var evs []string
	for i := range 50 {
		evs = append(evs, `{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-b","data":{"oldProgress":`+itoa(i)+`,"newProgress":`+itoa(i+1)+`,"delta":1,"formatted":"x"}}`)
	}
	code, _, body := h.post(t, "/v1/events:batch", "application/json", `{"events":[`+strings.Join(evs, ",")+`]}`)
	if code != http.StatusCreated {
		t.Fatalf("status %d: %v", code, body)
	}
	results := body["events"].([]any)
	if len(results) != 50 {
		t.Fatalf("%d results", len(results))
	}
	recs := h.stack.Consume(t, rawTopic, 50)
	for i, r := range recs {
		var v map[string]any
		if _, err := h.codec.Decode(context.Background(), r.Value, nil, &v); err != nil {
			t.Fatal(err)
		}
		if v["oldProgress"] != i { // one aggregate: one partition, in order
			t.Fatalf("record %d has oldProgress %v", i, v["oldProgress"])
		}
		res := results[i].(map[string]any)
		if int64(res["offset"].(float64)) != r.Offset {
			t.Errorf("result %d offset %v, record at %d", i, res["offset"], r.Offset)
		}
	}
}

func TestUnavailable(t *testing.T) {
	t.Run("registry down", func(t *testing.T) {
		h := newHarness(t, "http://"+stacktest.DeadAddr(t), nil, ingest.Config{})
		code, hdr, body := h.post(t, "/v1/events", "application/json", created)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q: %v", code, hdr.Get("Retry-After"), body)
		}
		if n := h.stack.EndOffsets(t, rawTopic)[rawTopic]; n != 0 {
			t.Errorf("%d records written", n)
		}
	})
	t.Run("kafka down", func(t *testing.T) {
		h := newHarness(t, "", []string{stacktest.DeadAddr(t)}, ingest.Config{ProduceTimeout: time.Second, OwnerWait: 300 * time.Millisecond})
		code, hdr, body := h.post(t, "/v1/events", "application/json", created)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
			t.Fatalf("status %d, Retry-After %q: %v", code, hdr.Get("Retry-After"), body)
		}
		code, _, body = h.post(t, "/v1/events:batch", "application/json", `{"events":[`+created+`]}`)
		if code != http.StatusServiceUnavailable {
			t.Fatalf("batch status %d: %v", code, body)
		}
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(bytes.TrimSpace(b)) }

// keyOn returns an aggregate id that murmur2 puts on partition p of the dev topology's 3.
func keyOn(p int32) string {
	for i := 0; ; i++ {
		if k := fmt.Sprintf("we-p%d", i); eventstore.Partition([]byte(k), 3) == p {
			return k
		}
	}
}
