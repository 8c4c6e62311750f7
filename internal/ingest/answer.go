package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// A batch answer lists every event written; encoding/json spends more on reflecting over
// 500 Results than the rest of the answer costs. writeResults writes the bytes json.Encoder
// writes for a Result or {"events": results} (HTML characters escaped, a final newline), as a
// test checks.

// writeResults answers 201 with the events written: one Result, or {"events": [...]} for a
// batch.
func writeResults(w http.ResponseWriter, results []Result, batch bool) {
	bp := answerPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= maxPooledBody {
			answerPool.Put(bp)
		}
	}()
	b := (*bp)[:0]
	if batch {
		b = append(b, `{"events":[`...)
	}
	for i := range results {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendResult(b, &results[i])
	}
	if batch {
		b = append(b, "]}"...)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b) // the server copies what it does not write at once
	*bp = b
}

var answerPool = sync.Pool{New: func() any { return new([]byte) }}

func appendResult(b []byte, r *Result) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"aggregateId":`...)
	b = appendString(b, r.AggregateID)
	b = append(b, `,"topic":`...)
	b = appendString(b, r.Topic)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"schemaId":`...)
	b = strconv.AppendInt(b, int64(r.SchemaID), 10)
	if r.Version != 0 {
		b = append(b, `,"version":`...)
		b = strconv.AppendInt(b, r.Version, 10)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string as encoding/json writes it: as it is when it is
// printable ASCII with nothing to escape (ids, types, topics), else by encoding/json.
func appendString(b []byte, s string) []byte {
	for i := range len(s) {
		if !asIs[s[i]] {
			enc, _ := json.Marshal(s) // a string always marshals
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// asIs holds the bytes encoding/json writes as they are in a string: printable ASCII but
// the quote, the backslash and the HTML characters it escapes.
var asIs = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()
