package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// refParseEvent is how ingest read an event before it parsed bodies in one pass: with
// encoding/json, member by member. parseEvent must give the same event and problems.
func refParseEvent(raw json.RawMessage, prefix string) (Event, json.RawMessage, []FieldIssue) {
	var ev Event
	var data json.RawMessage
	var issues []FieldIssue
	bad := func(field, format string, args ...any) {
		issues = append(issues, FieldIssue{Field: prefix + field, Message: fmt.Sprintf(format, args...)})
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		bad("", "must be a JSON object")
		return ev, nil, issues
	}
	known := map[string]bool{"id": true, "type": true, "aggregateId": true, "schemaVersion": true,
		"expectedVersion": true, "data": true, "metadata": true}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !known[k] {
			bad(k, "unknown field")
		}
	}
	isNull := func(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
	str := func(name string, required bool) string {
		v, ok := obj[name]
		if !ok || isNull(v) {
			if required {
				bad(name, "is required")
			}
			return ""
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			bad(name, "must be a string")
			return ""
		}
		if s == "" {
			bad(name, "must not be empty")
		}
		return s
	}
	ev.ID = str("id", false)
	ev.Type = str("type", true)
	ev.AggregateID = str("aggregateId", true)
	if len(ev.ID) > 256 {
		bad("id", "must be at most 256 characters")
	}
	if len(ev.AggregateID) > 1024 {
		bad("aggregateId", "must be at most 1024 bytes")
	}
	if v, ok := obj["schemaVersion"]; ok && !isNull(v) {
		var n int
		if err := json.Unmarshal(v, &n); err != nil || n < 1 {
			bad("schemaVersion", "must be a positive integer")
		}
		ev.SchemaVersion = n
	}
	if v, ok := obj["expectedVersion"]; ok && !isNull(v) {
		var n int64
		if err := json.Unmarshal(v, &n); err != nil || n < 0 {
			bad("expectedVersion", "must be a non-negative integer")
		} else {
			ev.ExpectedVersion = &n
		}
	}
	if v, ok := obj["data"]; !ok || isNull(v) {
		bad("data", "is required")
	} else if t := bytes.TrimSpace(v); len(t) == 0 || t[0] != '{' {
		bad("data", "must be a JSON object")
	} else {
		data = v
	}
	if v, ok := obj["metadata"]; ok && !isNull(v) {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev.Metadata); err != nil {
			bad("metadata", "must be an object with optional string fields correlationId, causationId, userId")
		}
	}
	return ev, data, issues
}

// refBatchEvents is how ingest read a batch envelope before: json.Unmarshal into a struct.
func refBatchEvents(body []byte) ([]json.RawMessage, bool) {
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &batch); err != nil || batch.Events == nil {
		return nil, false
	}
	return batch.Events, true
}

// compareEvent fails t when parseEvent and refParseEvent disagree on body (valid JSON).
func compareEvent(t *testing.T, body []byte, at int) {
	t.Helper()
	doc, err := codec.ParseJSON(body)
	if err != nil {
		t.Fatalf("ParseJSON: %v", err)
	}
	got, gotIssues := parseEvent(doc, at)
	want, wantData, wantIssues := refParseEvent(body, fieldPrefix(at))
	if !reflect.DeepEqual(gotIssues, wantIssues) {
		t.Fatalf("problems %q\nwant     %q", gotIssues, wantIssues)
	}
	if len(wantIssues) > 0 {
		return // the event is rejected: its fields are not used
	}
	gotData := got.Data
	got.Data = nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("event %+v\nwant  %+v", got, want)
	}
	wantTree, err := codec.ParseJSON(wantData)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(any(gotData), wantTree) {
		t.Fatalf("data %#v\nwant %#v", gotData, wantTree)
	}
}

func TestParseEventMatchesEncodingJSON(t *testing.T) {
	long := strings.Repeat("x", 257)
	tests := []struct{ name, body string }{
		{"full", `{"id":"e1","type":"A:B","aggregateId":"a","schemaVersion":2,"expectedVersion":0,"data":{"x":1},"metadata":{"correlationId":"c","causationId":"k","userId":"u"}}`},
		{"minimal", `{"type":"A:B","aggregateId":"a","data":{}}`},
		{"not an object", `[1]`},
		{"null", `null`},
		{"string", `"x"`},
		{"empty object", `{}`},
		{"unknown fields sorted and once", `{"z":1,"type":"A:B","b":2,"aggregateId":"a","data":{},"z":3,"Type":4}`},
		{"duplicate fields: last wins", `{"type":"X:Y","type":"A:B","aggregateId":"a","aggregateId":"b","data":[1],"data":{"y":2}}`},
		{"null fields are absent", `{"id":null,"type":null,"aggregateId":null,"schemaVersion":null,"expectedVersion":null,"data":null,"metadata":null}`},
		{"wrong kinds", `{"id":1,"type":true,"aggregateId":{},"schemaVersion":"2","expectedVersion":[],"data":"x","metadata":5}`},
		{"empty strings", `{"id":"","type":"","aggregateId":"","data":{}}`},
		{"long id", `{"id":"` + long + `","type":"A:B","aggregateId":"a","data":{}}`},
		{"long aggregate id", `{"type":"A:B","aggregateId":"` + strings.Repeat("y", 1025) + `","data":{}}`},
		{"escaped strings", `{"\u0074ype":"A:\u00e9","aggregateId":"a\"b","data":{}}`},
		{"invalid UTF-8 replaced", "{\"type\":\"A:\xff\",\"aggregateId\":\"a\",\"data\":{}}"},
		{"schema version fraction", `{"type":"A:B","aggregateId":"a","schemaVersion":1.0,"data":{}}`},
		{"schema version exponent", `{"type":"A:B","aggregateId":"a","schemaVersion":1e2,"data":{}}`},
		{"schema version zero", `{"type":"A:B","aggregateId":"a","schemaVersion":0,"data":{}}`},
		{"schema version negative", `{"type":"A:B","aggregateId":"a","schemaVersion":-3,"data":{}}`},
		{"schema version minus zero", `{"type":"A:B","aggregateId":"a","schemaVersion":-0,"data":{}}`},
		{"schema version too big", `{"type":"A:B","aggregateId":"a","schemaVersion":99999999999999999999,"data":{}}`},
		{"schema version max", `{"type":"A:B","aggregateId":"a","schemaVersion":9223372036854775807,"data":{}}`},
		{"expected version negative", `{"type":"A:B","aggregateId":"a","expectedVersion":-1,"data":{}}`},
		{"expected version big", `{"type":"A:B","aggregateId":"a","expectedVersion":9223372036854775807,"data":{}}`},
		{"expected version overflow", `{"type":"A:B","aggregateId":"a","expectedVersion":9223372036854775808,"data":{}}`},
		{"metadata case-insensitive keys", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"CORRELATIONID":"c","CausationId":"k","userid":"u"}}`},
		{"metadata long s folds to s", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"cauſationId":"k"}}`},
		{"metadata kelvin sign is not k", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"userId":"\u212a"}}`},
		{"metadata null values keep earlier ones", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"userId":"u","userId":null}}`},
		{"metadata last value wins", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"userId":"u","USERID":"v"}}`},
		{"metadata unknown key", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"tenant":"t"}}`},
		{"metadata wrong value", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{"userId":1}}`},
		{"metadata array", `{"type":"A:B","aggregateId":"a","data":{},"metadata":["x"]}`},
		{"metadata empty", `{"type":"A:B","aggregateId":"a","data":{},"metadata":{}}`},
		{"everything wrong at once", `{"q":1,"id":"","type":1,"schemaVersion":0,"expectedVersion":-1,"data":1,"metadata":{"x":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.body)) {
				t.Fatal("the case is not valid JSON")
			}
			compareEvent(t, []byte(tt.body), -1)
			compareEvent(t, []byte(tt.body), 7)
		})
	}
}

func TestBatchEventsMatchesEncodingJSON(t *testing.T) {
	tests := []struct{ name, body string }{
		{"events", `{"events":[{"a":1},2,null]}`},
		{"empty", `{"events":[]}`},
		{"missing", `{"other":[1]}`},
		{"null", `{"events":null}`},
		{"not an array", `{"events":{"a":1}}`},
		{"not an object", `[1,2]`},
		{"null body", `null`},
		{"case-insensitive key", `{"EVENTS":[1]}`},
		{"long s folds to s", `{"eventſ":[1]}`},
		{"last key wins", `{"events":[1],"Events":[2,3]}`},
		{"null after a list", `{"events":[1],"events":null}`},
		{"list after null", `{"events":null,"events":[4]}`},
		{"bad kind before a list", `{"events":1,"events":[1]}`},
		{"other members ignored", `{"a":{"b":1},"events":[1],"c":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			compareBatch(t, []byte(tt.body))
		})
	}
}

func compareBatch(t *testing.T, body []byte) {
	t.Helper()
	doc, err := codec.ParseJSON(body)
	if err != nil {
		t.Fatalf("ParseJSON: %v", err)
	}
	got, ok := batchEvents(doc)
	want, wantOK := refBatchEvents(body)
	if ok != wantOK || len(got) != len(want) {
		t.Fatalf("batchEvents = %d events, %v; want %d, %v", len(got), ok, len(want), wantOK)
	}
	for i, raw := range want {
		w, err := codec.ParseJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[i], w) {
			t.Fatalf("event %d = %#v, want %#v", i, got[i], w)
		}
	}
}

// FuzzParseEvent: for any valid JSON, the one-pass reading of an event and of a batch
// envelope agrees with encoding/json's.
func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{
		`{"id":"e1","type":"A:B","aggregateId":"a","schemaVersion":2,"expectedVersion":0,"data":{"x":1},"metadata":{"correlationId":"c","causationId":"k","userId":"u"}}`,
		`{"type":"A:B","aggregateId":"a","data":{},"metadata":{"USERID":"u","userId":null}}`,
		`{"events":[{"type":"A:B"}],"Events":null}`, `{"z":1,"z":2,"data":[]}`, `[1]`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return
		}
		compareEvent(t, body, 3)
		compareBatch(t, body)
	})
}

func TestValidTraceparent(t *testing.T) {
	const ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name, tp string
		want     bool
	}{
		{"valid", ok, true},
		{"empty", "", false},
		{"short", ok[:54], false},
		{"version 01", "01" + ok[2:], false},
		{"upper case", strings.ToUpper(ok), false},
		{"not hex", strings.Replace(ok, "4bf9", "4bg9", 1), false},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + ok[35:], false},
		{"zero parent id", ok[:36] + strings.Repeat("0", 16) + ok[52:], false},
		{"bad separator", strings.Replace(ok, "-00f0", "_00f0", 1), false},
		{"not hex flags", ok[:53] + "0x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := validTraceparent(tt.tp); got != tt.want {
				t.Errorf("validTraceparent(%q) = %v", tt.tp, got)
			}
		})
	}
}

func headerMap(t *testing.T, rec *kgo.Record) (map[string]string, []string) {
	t.Helper()
	m := map[string]string{}
	var keys []string
	for _, h := range rec.Headers {
		if _, dup := m[h.Key]; dup {
			t.Fatalf("header %s twice", h.Key)
		}
		m[h.Key] = string(h.Value)
		keys = append(keys, h.Key)
	}
	return m, keys
}

func TestHeaders(t *testing.T) {
	at := time.Date(2026, 11, 26, 10, 0, 0, 123456789, time.FixedZone("x", 3600))
	s := &Service{cfg: Config{Source: "/src"}, now: func() time.Time { return at }}
	const callerTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	full := Event{Type: "WorkEffort:Created", AggregateID: "we-1",
		Metadata: Metadata{CorrelationID: "corr", CausationID: "cause", UserID: "ada"}}
	bare := Event{Type: "System", AggregateID: "k"}
	tests := []struct {
		name     string
		tp       string
		ev       Event
		id       string
		want     map[string]string
		order    []string
		newTrace bool
	}{
		{
			name: "every header", tp: callerTP, ev: full, id: "id-1",
			want: map[string]string{"ce_specversion": "1.0", "ce_id": "id-1", "ce_source": "/src", "ce_type": "WorkEffort:Created",
				"ce_time": "2026-11-26T09:00:00.123456789Z", "ce_subject": "we-1", "content-type": "application/avro",
				"ce_aggregatetype": "WorkEffort", "ce_correlationid": "corr", "ce_causationid": "cause", "ce_userid": "ada",
				"traceparent": callerTP},
			order: []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type",
				"ce_aggregatetype", "ce_correlationid", "ce_causationid", "ce_userid", "traceparent"},
		},
		{
			name: "defaults", tp: "00-bad", ev: bare, id: "id-2",
			want: map[string]string{"ce_specversion": "1.0", "ce_id": "id-2", "ce_source": "/src", "ce_type": "System",
				"ce_time": "2026-11-26T09:00:00.123456789Z", "ce_subject": "k", "content-type": "application/avro",
				"ce_correlationid": "id-2"},
			order: []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type",
				"ce_correlationid", "traceparent"},
			newTrace: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/events:batch", nil)
			r.Header.Set("traceparent", tt.tp)
			mem := newRecordMem(r, 3)
			var traces []string
			for i := range 3 {
				rec := mem.record(i)
				s.headers(rec, &tt.ev, tt.id, mem)
				got, order := headerMap(t, rec)
				if !reflect.DeepEqual(order, tt.order) {
					t.Errorf("header order %q\nwant         %q", order, tt.order)
				}
				if string(rec.Key) != tt.ev.AggregateID {
					t.Errorf("key %q", rec.Key)
				}
				if !rec.Timestamp.Equal(at) {
					t.Errorf("record timestamp %v, want ce_time's instant %v", rec.Timestamp, at)
				}
				tp := got["traceparent"]
				if !validTraceparent(tp) {
					t.Errorf("traceparent %q is not valid", tp)
				}
				traces = append(traces, tp)
				if tt.newTrace {
					delete(got, "traceparent")
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("headers %q\nwant    %q", got, tt.want)
				}
			}
			// The records' slices are capped: appending to one cannot write into the next.
			first := &mem.recs[0]
			first.Key = append(first.Key, "!!!!"...)
			first.Headers[1].Value = append(first.Headers[1].Value, "!!!!"...)
			for _, h := range mem.recs[1].Headers {
				if strings.Contains(string(h.Value), "!") {
					t.Errorf("appending to record 0 changed record 1's %s to %q", h.Key, h.Value)
				}
			}
			// Without the caller's, the request starts one trace: its events share the trace
			// id, each with a parent id of its own.
			if tt.newTrace && (traces[0][:36] != traces[1][:36] || traces[1][:36] != traces[2][:36] ||
				traces[0][36:52] == traces[1][36:52] || traces[1][36:52] == traces[2][36:52]) {
				t.Errorf("new traces %q", traces)
			}
		})
	}
}
