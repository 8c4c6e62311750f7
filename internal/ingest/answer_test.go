package ingest

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// The hand-written answer is byte for byte what encoding/json writes.
func TestWriteResultsMatchesEncodingJSON(t *testing.T) {
	odd := []string{"", "plain", `q"uote`, `back\slash`, "<b>&amp;</b>", "a<b", "a>b", "a&b", "tab\tnew\nline", "\x00\x1f\x7f", "héllo", "\u2028\u2029", "\xff\xfe", "emoji 😀"}
	var results []Result
	for i, s := range odd {
		results = append(results, Result{ID: s, Type: "WorkEffort:Created", AggregateID: odd[(i+3)%len(odd)], Topic: s,
			Partition: int32(i - 2), Offset: int64(i) * 1e15, SchemaID: i, Version: int64(i % 3)})
	}
	for _, batch := range []bool{true, false} {
		for n := 1; n <= len(results); n += len(results) - 1 {
			rs := results[:n]
			var want bytes.Buffer
			if batch {
				_ = json.NewEncoder(&want).Encode(map[string]any{"events": rs})
			} else {
				rs = rs[n-1:]
				_ = json.NewEncoder(&want).Encode(rs[0])
			}
			rec := httptest.NewRecorder()
			writeResults(rec, rs, batch)
			if got := rec.Body.String(); got != want.String() {
				t.Errorf("batch %v:\n got %s\nwant %s", batch, got, want.String())
			}
			if rec.Code != 201 || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
			}
		}
	}
}
