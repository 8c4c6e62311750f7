package ingest_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

func progressEvent(agg, id string, expected int64, from, to int) string {
	exp := ""
	if expected >= 0 {
		exp = fmt.Sprintf(`"expectedVersion":%d,`, expected)
	}
	idf := ""
	if id != "" {
		idf = fmt.Sprintf(`"id":%q,`, id)
	}
	return fmt.Sprintf(`{%s"type":"WorkEffort:ProgressUpdated","aggregateId":%q,%s"data":{"oldProgress":%d,"newProgress":%d,"delta":%d,"formatted":"%d%%"}}`,
		idf, agg, exp, from, to, to-from, to)
}

func TestExpectedVersion(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	for _, step := range []struct {
		name     string
		body     string
		status   int
		version  float64 // of a 201
		current  float64 // of a 409
		conflict string  // field named by a 409
	}{
		{"first event expects an empty stream", progressEvent("we-x", "", 0, 0, 10), 201, 1, 0, ""},
		{"a stale expectation conflicts", progressEvent("we-x", "", 0, 0, 10), 409, 0, 1, "expectedVersion"},
		{"an expectation ahead conflicts", progressEvent("we-x", "", 7, 0, 10), 409, 0, 1, "expectedVersion"},
		{"the current version appends", progressEvent("we-x", "", 1, 10, 20), 201, 2, 0, ""},
		{"no expectation appends", progressEvent("we-x", "", -1, 20, 30), 201, 3, 0, ""},
	} {
		t.Run(step.name, func(t *testing.T) {
			before := h.stack.EndOffsets(t, rawTopic)[rawTopic]
			code, _, body := h.post(t, "/v1/events", "application/json", step.body)
			if code != step.status {
				t.Fatalf("status %d, want %d: %v", code, step.status, body)
			}
			after := h.stack.EndOffsets(t, rawTopic)[rawTopic]
			switch code {
			case 201:
				if body["version"] != step.version {
					t.Errorf("version %v, want %v", body["version"], step.version)
				}
			case 409:
				if body["currentVersion"] != step.current || body["aggregateId"] != "we-x" {
					t.Errorf("problem %v", body)
				}
				errs, _ := body["errors"].([]any)
				if len(errs) != 1 || errs[0].(map[string]any)["field"] != step.conflict {
					t.Errorf("errors %v", body["errors"])
				}
				if after != before {
					t.Errorf("a 409 wrote: end offsets %d -> %d", before, after)
				}
			}
		})
	}
	// The versions are in the records.
	recs := h.stack.Consume(t, rawTopic, 3)
	for i, r := range recs {
		for _, hd := range r.Headers {
			if hd.Key == "ce_aggregateversion" && string(hd.Value) != fmt.Sprint(i+1) {
				t.Errorf("record %d has ce_aggregateversion %s", i, hd.Value)
			}
		}
	}
}

func TestDuplicateIDWritesOnce(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	body := progressEvent("we-d", "evt-once", 0, 0, 10)
	code, _, first := h.post(t, "/v1/events", "application/json", body)
	if code != 201 {
		t.Fatalf("first: %d %v", code, first)
	}
	before := h.stack.EndOffsets(t, rawTopic)[rawTopic]
	for _, tc := range []struct{ name, body string }{
		{"same request again", body},
		{"retry with a now stale expectation", body},
		{"retry without the expectation", progressEvent("we-d", "evt-once", -1, 0, 10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, hdr, again := h.post(t, "/v1/events", "application/json", tc.body)
			if code != 201 || hdr.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("retry: %d %q %v", code, hdr.Get("Idempotent-Replayed"), again)
			}
			for _, k := range []string{"id", "offset", "partition", "version", "schemaId", "topic"} {
				if again[k] != first[k] {
					t.Errorf("%s: %v, first answer %v", k, again[k], first[k])
				}
			}
		})
	}
	t.Run("id reused for another aggregate", func(t *testing.T) {
		code, _, p := h.post(t, "/v1/events", "application/json", progressEvent(keyOn(eventstorePartition(t, first)), "evt-once", -1, 0, 10))
		if code != 409 || p["type"] != "urn:pyrite:problem:id-conflict" {
			t.Fatalf("%d %v", code, p)
		}
	})
	t.Run("batch mixing old and new ids", func(t *testing.T) {
		code, _, p := h.post(t, "/v1/events:batch", "application/json",
			`{"events":[`+body+`,`+progressEvent("we-d", "evt-new", -1, 10, 20)+`]}`)
		if code != 409 {
			t.Fatalf("%d %v", code, p)
		}
	})
	if after := h.stack.EndOffsets(t, rawTopic)[rawTopic]; after != before {
		t.Errorf("retries wrote: end offsets %d -> %d", before, after)
	}
}

// An event posted without an id gets one made by ingest (the store does not look it up,
// NewID); a retry quoting that id is still answered from the dedupe window.
func TestMadeIDIsDeduplicated(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	code, _, first := h.post(t, "/v1/events", "application/json", progressEvent("we-m", "", -1, 0, 10))
	if code != 201 {
		t.Fatalf("first: %d %v", code, first)
	}
	id, _ := first["id"].(string)
	if id == "" {
		t.Fatalf("no id in %v", first)
	}
	before := h.stack.EndOffsets(t, rawTopic)[rawTopic]
	code, hdr, again := h.post(t, "/v1/events", "application/json", progressEvent("we-m", id, -1, 0, 10))
	if code != 201 || hdr.Get("Idempotent-Replayed") != "true" || again["offset"] != first["offset"] || again["version"] != first["version"] {
		t.Fatalf("retry with the made id: %d %q %v, first %v", code, hdr.Get("Idempotent-Replayed"), again, first)
	}
	if after := h.stack.EndOffsets(t, rawTopic)[rawTopic]; after != before {
		t.Errorf("the retry wrote: end offsets %d -> %d", before, after)
	}
}

// Ids ingest made (counted by the partition's index, see eventstore.IDs) are still found
// after the partition's writer moved to a new instance, which rebuilds the index from the
// topic: a retry of a batch quoting them is answered from the dedupe window, and writes
// nothing.
func TestMadeIDsDeduplicatedAfterRestart(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup()
	first, stop := startIngestStop(t, s, s.Brokers, s.RegistryURL, group, ingest.Config{})
	waitOwned(t, first)
	h := &harness{stack: s, url: first}
	batch := `{"events":[` + progressEvent("we-r", "", -1, 0, 10) + "," + progressEvent("we-r", "", -1, 10, 20) + "]}"
	code, _, written := h.post(t, "/v1/events:batch", "application/json", batch)
	if code != 201 {
		t.Fatalf("first: %d %v", code, written)
	}
	evs, _ := written["events"].([]any)
	if len(evs) != 2 {
		t.Fatalf("answer %v", written)
	}
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.(map[string]any)["id"].(string))
	}
	stop()

	second, stop2 := startIngestStop(t, s, s.Brokers, s.RegistryURL, group, ingest.Config{})
	defer stop2()
	waitOwned(t, second)
	h.url = second
	before := s.EndOffsets(t, rawTopic)[rawTopic]
	retry := `{"events":[` + progressEvent("we-r", ids[0], -1, 0, 10) + "," + progressEvent("we-r", ids[1], -1, 10, 20) + "]}"
	code, hdr, again := h.post(t, "/v1/events:batch", "application/json", retry)
	if code != 201 || hdr.Get("Idempotent-Replayed") != "true" || fmt.Sprint(again) != fmt.Sprint(written) {
		t.Fatalf("retry after the restart: %d %q %v, first %v", code, hdr.Get("Idempotent-Replayed"), again, written)
	}
	if after := s.EndOffsets(t, rawTopic)[rawTopic]; after != before {
		t.Errorf("the retry wrote: end offsets %d -> %d", before, after)
	}
}

func eventstorePartition(t *testing.T, answer map[string]any) int32 {
	t.Helper()
	p, ok := answer["partition"].(float64)
	if !ok {
		t.Fatalf("answer has no partition: %v", answer)
	}
	return int32(p)
}

func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: not JSON (%d): %s", url, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

func TestStreamReads(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	for _, body := range []string{
		`{"type":"WorkEffort:Created","aggregateId":"we-s","expectedVersion":0,"data":{"title":"Ship","description":"d","createdAt":"2026-11-26T10:00:00Z","assignee":"ada@example.com"},"metadata":{"correlationId":"c-1","userId":"ada"}}`,
		`{"type":"WorkEffort:Started","aggregateId":"we-s","data":{"title":"Ship","startedAt":"2026-11-26T11:00:00Z"}}`,
		`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-s","schemaVersion":1,"data":{"oldProgress":10,"newProgress":60}}`,
	} {
		if code, _, b := h.post(t, "/v1/events", "application/json", body); code != 201 {
			t.Fatalf("%d %v", code, b)
		}
	}
	code, st := getJSON(t, h.url+"/v1/streams/we-s")
	if code != 200 || st["version"] != 3.0 || st["aggregateType"] != "WorkEffort" {
		t.Fatalf("%d %v", code, st)
	}
	evs := st["events"].([]any)
	if len(evs) != 3 {
		t.Fatalf("%d events", len(evs))
	}
	types := []string{"WorkEffort:Created", "WorkEffort:Started", "WorkEffort:ProgressUpdated"}
	for i, e := range evs {
		ev := e.(map[string]any)
		if ev["version"] != float64(i+1) || ev["type"] != types[i] {
			t.Errorf("event %d: %v", i, ev)
		}
	}
	created := evs[0].(map[string]any)
	if md := created["metadata"].(map[string]any); md["correlationId"] != "c-1" || md["userId"] != "ada" {
		t.Errorf("metadata %v", md)
	}
	if d := created["data"].(map[string]any); d["title"] != "Ship" || !sameTime(d["createdAt"], "2026-11-26T10:00:00Z") {
		t.Errorf("created data %v", d)
	}
	// Written at v1, read at the newest version through the upcaster's chain.
	pu := evs[2].(map[string]any)
	wantNewest := float64(h.stack.SchemaID("pyrite.workeffort.ProgressUpdated", 3))
	if pu["schemaId"] != wantNewest || pu["schemaVersion"] != 3.0 || pu["writtenSchemaId"] != float64(h.stack.SchemaID("pyrite.workeffort.ProgressUpdated", 1)) {
		t.Errorf("progress event schemas: %v", pu)
	}
	if d := pu["data"].(map[string]any); d["delta"] != 50.0 || d["formatted"] != "60%" || d["newProgress"] != 60.0 {
		t.Errorf("upcast data %v", d)
	}

	for _, tc := range []struct {
		name, path string
		status     int
		check      func(t *testing.T, body map[string]any)
	}{
		{"from a version", "/v1/streams/we-s?fromVersion=2", 200, func(t *testing.T, b map[string]any) {
			if evs := b["events"].([]any); len(evs) != 2 || evs[0].(map[string]any)["version"] != 2.0 {
				t.Errorf("%v", b)
			}
		}},
		{"past the end", "/v1/streams/we-s?fromVersion=9", 200, func(t *testing.T, b map[string]any) {
			if evs := b["events"].([]any); len(evs) != 0 || b["version"] != 3.0 {
				t.Errorf("%v", b)
			}
		}},
		{"version", "/v1/streams/we-s/version", 200, func(t *testing.T, b map[string]any) {
			if b["version"] != 3.0 {
				t.Errorf("%v", b)
			}
		}},
		{"state folds the stream", "/v1/streams/we-s/state", 200, func(t *testing.T, b map[string]any) {
			if b["title"] != "Ship" || b["status"] != "in-progress" || b["progress"] != 60.0 || b["version"] != 3.0 ||
				!sameTime(b["startedAt"], "2026-11-26T11:00:00Z") || b["assignee"] != "ada@example.com" {
				t.Errorf("%v", b)
			}
		}},
		{"unknown stream has version 0", "/v1/streams/nobody/version", 200, func(t *testing.T, b map[string]any) {
			if b["version"] != 0.0 {
				t.Errorf("%v", b)
			}
		}},
		{"unknown stream has no state", "/v1/streams/nobody/state", 404, nil},
		{"deployment stream", "/v1/streams/we-s?aggregateType=Deployment", 200, func(t *testing.T, b map[string]any) {
			if b["version"] != 0.0 || b["aggregateType"] != "Deployment" {
				t.Errorf("%v", b)
			}
		}},
		{"no fold for deployments", "/v1/streams/we-s/state?aggregateType=Deployment", 404, nil},
		{"unknown aggregate type", "/v1/streams/we-s?aggregateType=Nope", 404, nil},
		{"bad fromVersion", "/v1/streams/we-s?fromVersion=0", 400, nil},
		{"escaped id", "/v1/streams/" + strings.ReplaceAll("a/b", "/", "%2F") + "/version", 200, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := getJSON(t, h.url+tc.path)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, body)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

// TestForwarding runs two instances: each answers for every aggregate, forwarding to the
// owner, and versions stay contiguous whichever instance a request reaches.
func TestForwarding(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup()
	a := startIngest(t, s, s.Brokers, s.RegistryURL, group, ingest.Config{})
	b := startIngest(t, s, s.Brokers, s.RegistryURL, group, ingest.Config{})
	waitShared(t, a, b)
	urls := []string{a, b}
	var aggs []string // two on each partition, so that each instance owns some
	for p := range int32(3) {
		for i := 0; len(aggs) < int(2*(p+1)); i++ {
			if k := fmt.Sprintf("we-f%d", i); eventstore.Partition([]byte(k), 3) == p {
				aggs = append(aggs, k)
			}
		}
	}
	for i := range 30 {
		agg := aggs[i%6]
		version := int64(i / 6)
		resp, err := http.Post(urls[i%2]+"/v1/events", "application/json", strings.NewReader(progressEvent(agg, "", version, 0, 10)))
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 201 || body["version"] != float64(version+1) {
			t.Fatalf("post %d via %s: %d %v", i, urls[i%2], resp.StatusCode, body)
		}
	}
	for _, agg := range aggs {
		for _, u := range urls {
			code, body := getJSON(t, fmt.Sprintf("%s/v1/streams/%s", u, agg))
			if code != 200 || len(body["events"].([]any)) != 5 {
				t.Fatalf("read via %s: %d %v", u, code, body)
			}
		}
	}
	forwarded := 0
	for _, u := range urls {
		if _, metrics := get(t, u+"/metrics"); strings.Contains(metrics, `pyrite_eventstore_forwards_total{outcome="answered"}`) {
			forwarded++
		}
	}
	if forwarded != 2 { // every instance read every stream, so each forwarded the others'
		t.Errorf("%d of 2 instances forwarded", forwarded)
	}
}

// waitShared waits until every instance owns some partitions and all are ready.
func waitShared(t *testing.T, urls ...string) { waitOwnedEach(t, 1, urls...) }

func sameTime(v any, want string) bool {
	s, _ := v.(string)
	a, err1 := time.Parse(time.RFC3339Nano, s)
	b, err2 := time.Parse(time.RFC3339Nano, want)
	return err1 == nil && err2 == nil && a.Equal(b)
}

// TestEventsOutsideStreams: system events are not streams: they take the plain path and no
// expectedVersion, and cannot share a batch with aggregate events.
func TestEventsOutsideStreams(t *testing.T) {
	h := newHarness(t, "", nil, ingest.Config{})
	const sys = `{"type":"System:CacheInvalidated","aggregateId":"cache","data":{"key":"k","reason":"r"}}`
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"system event", "/v1/events", sys, 201},
		{"system batch", "/v1/events:batch", `{"events":[` + sys + `,` + sys + `]}`, 201},
		{"system event with expectedVersion", "/v1/events", strings.Replace(sys, `"data"`, `"expectedVersion":0,"data"`, 1), 422},
		{"batch mixing system and aggregate events", "/v1/events:batch", `{"events":[` + sys + `,` + progressEvent("we-m", "", -1, 0, 1) + `]}`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, _, b := h.post(t, tc.path, "application/json", tc.body); code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, b)
			}
		})
	}
}

// TestPlainPathRefusesExpectedVersion: without the event store, expectedVersion is 501.
func TestPlainPathRefusesExpectedVersion(t *testing.T) {
	s := stacktest.Start(t)
	svc := ingest.New(codec.Dial(s.RegistryURL), s.Topology, &instantProducer{}, ingest.Config{}, prometheus.NewRegistry())
	req := httptest.NewRequest(http.MethodPost, "/v1/events", strings.NewReader(progressEvent("we-p", "", 0, 0, 1)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotImplemented || !strings.Contains(rec.Body.String(), "expectedVersion") {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	svc.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/streams/we-p", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("stream read without a store: %d", rec.Code)
	}
}
