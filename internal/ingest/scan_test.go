package ingest

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// generalEvents is what the general path reads from body: the events of a batch (batch) or
// the single event, or nil when it rejects the body.
func generalEvents(body []byte, batch bool, max int) []Event {
	doc, err := codec.ParseJSON(body)
	if err != nil {
		return nil
	}
	if !batch {
		ev, issues := parseEvent(doc, -1)
		if len(issues) > 0 {
			return nil
		}
		return []Event{ev}
	}
	vs, ok := batchEvents(doc)
	if !ok || len(vs) == 0 || len(vs) > max {
		return nil
	}
	evs := make([]Event, len(vs))
	for i, v := range vs {
		var issues []FieldIssue
		if evs[i], issues = parseEvent(v, i); len(issues) > 0 {
			return nil
		}
	}
	return evs
}

// checkScan fails when the scanners accept body and read it otherwise than the general
// path; it reports whether they accepted it.
func checkScan(t *testing.T, body []byte, batch bool) bool {
	t.Helper()
	const max = 4
	var got []Event
	var ok bool
	if batch {
		got, ok = scanBatch(string(body), max, nil)
	} else {
		var ev Event
		ev, ok = scanSingle(string(body))
		got = []Event{ev}
	}
	if !ok {
		return false
	}
	want := generalEvents(body, batch, max)
	if want == nil {
		t.Fatalf("scanned %s, which the general path rejects", body)
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, general path %d", body, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		data, err := codec.ParseJSON([]byte(g.dataText))
		if err != nil || !reflect.DeepEqual(data, any(w.Data)) {
			t.Fatalf("%s: event %d data %q, general path %v", body, i, g.dataText, w.Data)
		}
		g.dataText, w.Data = "", nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: event %d %+v, general path %+v", body, i, g, w)
		}
	}
	return true
}

func TestEventField(t *testing.T) {
	for i, name := range eventFields {
		if eventField(name) != i {
			t.Errorf("eventField(%q) = %d, want %d", name, eventField(name), i)
		}
	}
	for _, k := range []string{"", "Type", "types", "ID"} {
		if eventField(k) != -1 {
			t.Errorf("eventField(%q) = %d", k, eventField(k))
		}
	}
}

func TestScan(t *testing.T) {
	full := `{"id":"e1","type":"WorkEffort:Created","aggregateId":"we-1","schemaVersion":2,"expectedVersion":0,` +
		`"data":{"title":"t","n":{"x":[1]},"s":"é"},"metadata":{"correlationId":"c","causationId":"k","userId":"u"}}`
	plain := `{"type":"A:B","aggregateId":"a","data":{}}`
	scanned := []string{full, plain, " \n" + plain + "\t", `{"data":{"a":1},"aggregateId":"a","type":"T","metadata":{}}`}
	for _, s := range scanned {
		if strings.Contains(s, "[1]") {
			continue // arrays are left to the general path
		}
		if !checkScan(t, []byte(s), false) {
			t.Errorf("%s was not scanned", s)
		}
		if b := `{"events":[` + s + "," + s + `]}`; !checkScan(t, []byte(b), true) {
			t.Errorf("%s was not scanned", b)
		}
	}
	left := []string{
		full, // data holds an array
		`{"type":"A:B","aggregateId":"a","data":{},"id":null}`,
		`{"type":"A:B","aggregateId":"a","data":{},"type":"C"}`,
		`{"type":"A:B","aggregateId":"a","data":{},"x":1}`,
		`{"type":"A\u003aB","aggregateId":"a","data":{}}`,
		`{"type":"","aggregateId":"a","data":{}}`,
		`{"type":"A:B","aggregateId":"a","data":[]}`,
		`{"type":"A:B","aggregateId":"a"}`,
		`{"type":"A:B","aggregateId":"a","data":{},"schemaVersion":0}`,
		`{"type":"A:B","aggregateId":"a","data":{},"schemaVersion":1.0}`,
		`{"type":"A:B","aggregateId":"a","data":{},"expectedVersion":-1}`,
		`{"type":"A:B","aggregateId":"a","data":{},"metadata":{"UserId":"u"}}`,
		`{"type":"A:B","aggregateId":"a","data":{},"metadata":{"userId":null}}`,
		`{"type":"A:B","aggregateId":"` + strings.Repeat("a", 1025) + `","data":{}}`,
		`{"type":"A:B","aggregateId":"a","data":{}} {}`,
	}
	for _, s := range left {
		if checkScan(t, []byte(s), false) {
			t.Errorf("%s was scanned", s)
		}
	}
	for _, b := range []string{`{"events":[]}`, `{"Events":[` + plain + `]}`, `{"events":[` + plain + `],"events":[` + plain + `]}`,
		`{"events":[` + strings.Repeat(plain+",", 4) + plain + `]}`, `{"events":[` + plain + `,]}`, `{"events":null}`} {
		if checkScan(t, []byte(b), true) {
			t.Errorf("%s was scanned", b)
		}
	}
}

// FuzzScan: what the scanners accept, the general path reads the same way.
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		`{"id":"e1","type":"A:B","aggregateId":"a","schemaVersion":2,"expectedVersion":0,"data":{"x":1},"metadata":{"correlationId":"c","causationId":"k","userId":"u"}}`,
		`{"type":"A:B","aggregateId":"a","data":{"b":{"c":"d"}},"metadata":{"userId":"u"}}`,
		`{"events":[{"type":"A:B","aggregateId":"a","data":{}},{"type":"C","aggregateId":"b","data":{"x":true}}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScan(t, body, false)
		checkScan(t, body, true)
	})
}
