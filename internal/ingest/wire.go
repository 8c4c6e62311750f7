package ingest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
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
	randomPerEvent = 16 + 24
)

// recordMem is the memory of the records of one request, allocated in blocks rather than
// per record: the records and their header slices at once, keys, values and header values
// in chunks shared by consecutive records, and random bytes (event ids, trace ids) from one
// crypto/rand read. Each record's slices are capped, so no append reaches into another's.
// It also remembers the routing of the previous event. It is used by one goroutine.
type recordMem struct {
	recs  []kgo.Record
	hdrs  []kgo.RecordHeader
	buf   []byte
	chunk int // size of a new buf
	rnd   []byte
	rndN  int    // size of a new rnd
	trace []byte // the caller's valid traceparent, shared by the records; nil if none

	last lookup // the routing of the request's previous event
}

// newRecordMem returns the memory for n records written for r.
func newRecordMem(r *http.Request, n int) *recordMem {
	m := &recordMem{
		recs:  make([]kgo.Record, n),
		hdrs:  make([]kgo.RecordHeader, n*maxHeaders),
		chunk: min(max(n*256, 512), 64<<10),
		rndN:  n * randomPerEvent,
	}
	if tp := r.Header.Get("traceparent"); validTraceparent(tp) {
		m.trace = []byte(tp)
	}
	return m
}

// record returns the i-th record, with room for its headers.
func (m *recordMem) record(i int) *kgo.Record {
	rec := &m.recs[i]
	rec.Headers = m.hdrs[i*maxHeaders : i*maxHeaders : (i+1)*maxHeaders]
	return rec
}

// reserve makes room for n more bytes in the current chunk, starting a new one if needed.
func (m *recordMem) reserve(n int) {
	if cap(m.buf)-len(m.buf) < n {
		m.buf = make([]byte, 0, max(n, m.chunk))
	}
}

// since returns the bytes appended to buf from start on, capped.
func (m *recordMem) since(start int) []byte { return m.buf[start:len(m.buf):len(m.buf)] }

func (m *recordMem) copy(s string) []byte {
	start := len(m.buf)
	m.buf = append(m.buf, s...)
	return m.since(start)
}

// timestamp formats t as ce_time: RFC 3339 in UTC with up to nanoseconds.
func (m *recordMem) timestamp(t time.Time) []byte {
	start := len(m.buf)
	m.buf = t.UTC().AppendFormat(m.buf, time.RFC3339Nano)
	return m.since(start)
}

// encode returns v framed and encoded with sch.
func (m *recordMem) encode(c *codec.Codec, sch *codec.Schema, v map[string]any) ([]byte, error) {
	m.reserve(512)
	start := len(m.buf)
	var err error
	m.buf, err = c.AppendEncode(m.buf, sch, v)
	if err != nil {
		return nil, err
	}
	return m.since(start), nil // a grown buf holds a copy of the old one: start still holds
}

// Read fills p with random bytes, for uuid.NewRandomFromReader.
func (m *recordMem) Read(p []byte) (int, error) {
	if len(m.rnd) < len(p) {
		m.rnd = make([]byte, max(len(p), m.rndN))
		_, _ = rand.Read(m.rnd) // crypto/rand.Read does not fail
	}
	n := copy(p, m.rnd)
	m.rnd = m.rnd[n:]
	return n, nil
}

// newID returns a random (version 4) UUID for an event that came without an id.
func (m *recordMem) newID() string {
	u, err := uuid.NewRandomFromReader(m)
	if err != nil { // Read does not fail
		return uuid.NewString()
	}
	return u.String()
}

// traceparent returns the caller's traceparent, or starts a new sampled trace.
func (m *recordMem) traceparent() []byte {
	if m.trace != nil {
		return m.trace
	}
	var ids [24]byte
	_, _ = m.Read(ids[:])
	start := len(m.buf)
	m.buf = append(m.buf, "00-"...)
	m.buf = hex.AppendEncode(m.buf, ids[:16])
	m.buf = append(m.buf, '-')
	m.buf = hex.AppendEncode(m.buf, ids[16:])
	m.buf = append(m.buf, "-01"...)
	return m.since(start)
}
