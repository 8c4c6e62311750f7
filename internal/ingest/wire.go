package ingest

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	mrand "math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
)

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

func asMaxBytes(err error, target **http.MaxBytesError) bool { return errors.As(err, target) }

// validTraceparent reports whether tp is a W3C traceparent of version 00
// with non-zero trace and parent ids.
func validTraceparent(tp string) bool {
	if len(tp) != traceparentLen || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return false
	}
	trace, parent, flags := tp[3:35], tp[36:52], tp[53:]
	return lowerHex(trace) && lowerHex(parent) && lowerHex(flags) &&
		strings.Trim(trace, "0") != "" && strings.Trim(parent, "0") != ""
}

func lowerHex(s string) bool {
	for i := range len(s) {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

const (
	traceparentLen = len("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	maxHeaders     = 13 // the CloudEvents headers a record can have, ce_aggregateversion included
)

// recordMem is the memory of the records of one request, allocated in blocks rather than
// per record: the records and their header slices at once, keys, values and header values
// in chunks shared by consecutive records. Each record's slices are capped, so no append
// reaches into another's. It also remembers the routing of the previous event and the
// request's ce_time. It is used by one goroutine.
//
// Once the records are acknowledged and answered, release hands the memory to the next
// request: at the rates ingest runs, allocating it afresh for every request makes the
// garbage collector the largest cost of a batch.
type recordMem struct {
	recs    []kgo.Record
	ptrs    []*kgo.Record // the records of a batch as the producer takes them
	results []Result      // and their answers
	hdrs    []kgo.RecordHeader
	buf     []byte
	chunks  [][]byte // every chunk buf has been, for the next request
	used    int      // chunks in use by this request
	chunk   int      // size of a new chunk
	trace   []byte   // the caller's valid traceparent, shared by the records; nil if none
	traceID []byte   // else the trace id the request starts, in hex
	shared  shared   // header values shared by the records
	typ     []byte   // the previous record's ce_type, shared with the next of the same type

	last lookup          // the routing of the request's previous event
	ids  *eventstore.IDs // makes the ids of events posted without one: the partition's for the store
}

var memPool = sync.Pool{New: func() any { return new(recordMem) }}

// newRecordMem returns the memory for n records written for r.
func newRecordMem(r *http.Request, n int) *recordMem {
	m := memPool.Get().(*recordMem)
	if cap(m.recs) < n {
		m.recs = make([]kgo.Record, n)
		m.ptrs = make([]*kgo.Record, n)
		m.results = make([]Result, n)
		m.hdrs = make([]kgo.RecordHeader, n*maxHeaders)
	}
	m.recs, m.ptrs, m.results = m.recs[:n], m.ptrs[:n], m.results[:n]
	m.chunk = min(max(n*256, 512), 64<<10)
	if tp := r.Header.Get("traceparent"); validTraceparent(tp) {
		m.trace = []byte(tp)
	}
	return m
}

// release gives m to a later request. Call it only once nothing refers to its records or
// their bytes any more: after the producer acknowledged them (the client then holds none)
// and the answer was written. Memory of failed writes is left to the garbage collector.
func (m *recordMem) release() {
	clear(m.recs) // a record's fields, Timestamp above all, must start zero
	clear(m.ptrs)
	clear(m.results)
	m.buf, m.used, m.trace, m.traceID, m.shared, m.typ, m.last, m.ids = nil, 0, nil, nil, shared{}, nil, lookup{}, nil
	memPool.Put(m)
}

// record returns the i-th record, with room for its headers.
func (m *recordMem) record(i int) *kgo.Record {
	rec := &m.recs[i]
	rec.Headers = m.hdrs[i*maxHeaders : i*maxHeaders : (i+1)*maxHeaders]
	return rec
}

// reserve makes room for n more bytes in the current chunk, moving to a new one if needed.
func (m *recordMem) reserve(n int) {
	if cap(m.buf)-len(m.buf) >= n {
		return
	}
	size := max(n, m.chunk)
	if m.used < len(m.chunks) && cap(m.chunks[m.used]) >= size {
		m.buf = m.chunks[m.used][:0]
	} else {
		m.buf = make([]byte, 0, size)
		if m.used < len(m.chunks) {
			m.chunks[m.used] = m.buf
		} else {
			m.chunks = append(m.chunks, m.buf)
		}
	}
	m.used++
}

// since returns the bytes appended to buf from start on, capped.
func (m *recordMem) since(start int) []byte { return m.buf[start:len(m.buf):len(m.buf)] }

func (m *recordMem) copy(s string) []byte {
	start := len(m.buf)
	m.buf = append(m.buf, s...)
	return m.since(start)
}

// shared holds the header values every record of a request has, and its instant: the
// request's events are written together, with one ce_time and one record timestamp.
type shared struct {
	specVersion, source, contentType []byte
	time                             []byte // ce_time
	at                               time.Time
}

// common returns the header values every record of the request has, made on first use:
// ce_time is now as RFC 3339 in UTC with up to nanoseconds.
func (m *recordMem) common(source string, now func() time.Time) *shared {
	if m.shared.time == nil {
		m.reserve(len("1.0"+"application/avro"+time.RFC3339Nano) + len(source))
		m.shared.specVersion = m.copy("1.0")
		m.shared.source = m.copy(source)
		m.shared.contentType = m.copy("application/avro")
		m.shared.at = now()
		start := len(m.buf)
		m.buf = m.shared.at.UTC().AppendFormat(m.buf, time.RFC3339Nano)
		m.shared.time = m.since(start)
	}
	return &m.shared
}

// eventType returns typ as a header value, the previous record's when it has the same.
func (m *recordMem) eventType(typ string) []byte {
	if string(m.typ) != typ {
		m.reserve(len(typ))
		m.typ = m.copy(typ)
	}
	return m.typ
}

// encode returns the data of ev framed and encoded with sch.
func (m *recordMem) encode(c *codec.Codec, sch *codec.Schema, ev *Event) ([]byte, error) {
	m.reserve(512)
	start := len(m.buf)
	var err error
	if ev.Data != nil {
		m.buf, err = c.AppendJSON(m.buf, sch, ev.Data)
	} else {
		m.buf, err = c.AppendJSONText(m.buf, sch, ev.dataText)
	}
	if err != nil {
		return nil, err
	}
	return m.since(start), nil // a grown buf holds a copy of the old one: start still holds
}

// random fills p with random bytes from math/rand/v2's generator (ChaCha8, seeded by the
// system), which is unpredictable enough for event and trace ids and costs a fraction of a
// crypto/rand read per event.
func random(p []byte) {
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, mrand.Uint64())
		p = p[8:]
	}
	if len(p) > 0 {
		var last [8]byte
		binary.LittleEndian.PutUint64(last[:], mrand.Uint64())
		copy(p, last[:])
	}
}

// traceparent returns the caller's traceparent, or, when it sent none, one that starts a
// trace for the request: the request's events share a new trace id, each with a parent id
// of its own.
func (m *recordMem) traceparent() []byte {
	if m.trace != nil {
		return m.trace
	}
	if m.traceID == nil {
		var id [16]byte
		random(id[:])
		m.traceID = hex.AppendEncode(make([]byte, 0, 32), id[:])
	}
	var parent [8]byte
	random(parent[:])
	start := len(m.buf)
	m.buf = append(m.buf, "00-"...)
	m.buf = append(m.buf, m.traceID...)
	m.buf = append(m.buf, '-')
	m.buf = hex.AppendEncode(m.buf, parent[:])
	m.buf = append(m.buf, "-01"...)
	return m.since(start)
}
