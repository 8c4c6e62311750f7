package bus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CloudEvents Kafka binding (binary mode) header keys, as fixed by DESIGN.md section 2.
const (
	HeaderSpecVersion      = "ce_specversion"
	HeaderID               = "ce_id"
	HeaderSource           = "ce_source"
	HeaderType             = "ce_type"
	HeaderTime             = "ce_time"
	HeaderSubject          = "ce_subject"
	HeaderContentType      = "content-type"
	HeaderAggregateType    = "ce_aggregatetype"
	HeaderAggregateVersion = "ce_aggregateversion"
	HeaderCorrelationID    = "ce_correlationid"
	HeaderCausationID      = "ce_causationid"
	HeaderUserID           = "ce_userid"
	HeaderTraceParent      = "traceparent"

	// SpecVersion is the only CloudEvents version accepted and written.
	SpecVersion = "1.0"
	// ContentTypeAvro is the content-type of every Pyrite record value.
	ContentTypeAvro = "application/avro"
)

const cePrefix = "ce_"

// reservedAttr reports whether k (without ce_) names an attribute that has an Event field;
// an extension of such a name cannot be written.
func reservedAttr(k string) bool {
	switch k {
	case "specversion", "id", "source", "type", "time", "subject", "aggregatetype",
		"aggregateversion", "correlationid", "causationid", "userid":
		return true
	}
	return false
}

// Event is one event as handlers see it: the seed's DomainEvent envelope plus the Kafka
// record it came from, if any. Handlers must treat an Event, its Data and its Extensions as
// read-only: one value is shared by every handler of a Publish.
type Event struct {
	// ID is unique per event (ce_id); consumers deduplicate on it.
	ID string
	// Type is <Aggregate>:<Name> (e.g. "WorkEffort:ProgressUpdated") or an integration type
	// (e.g. "work-effort.completed.v1"). Patterns match on it.
	Type string
	// AggregateID is the entity the event is about (ce_subject, and the Kafka key).
	AggregateID string
	// AggregateType is the entity's type, e.g. "WorkEffort" (ce_aggregatetype).
	AggregateType string
	// AggregateVersion is the entity's version after the event, 0 when unknown.
	AggregateVersion int64
	// Time is when the event happened (ce_time).
	Time time.Time
	// Source names the producer (ce_source).
	Source string
	// CorrelationID, CausationID and UserID are the seed's metadata.
	CorrelationID string
	CausationID   string
	UserID        string
	// TraceParent is the W3C traceparent the event carries.
	TraceParent string
	// SchemaVersion is the version of the schema Data was decoded into, 0 when not decoded
	// from Avro.
	SchemaVersion int
	// Data is the payload.
	Data map[string]any
	// Extensions are further CloudEvents attributes (other ce_* headers, without the
	// prefix), e.g. what the Enrichment middleware adds ("hostname", "processid").
	Extensions map[string]string
	// Origin is the Kafka record the event came from; nil for events published in process.
	Origin *Origin
}

// Origin is where in Kafka an event was read.
type Origin struct {
	// Topic, Partition and Offset locate the source record. For a redelivery from the retry
	// topic they are those of the original record.
	Topic     string
	Partition int32
	Offset    int64
	// Key, Headers and Timestamp are the record's (Headers without the runner's control
	// headers).
	Key       []byte
	Headers   []kgo.RecordHeader
	Timestamp time.Time
	// Attempt counts deliveries of this record to the handler(s) now running: 1 for the first,
	// 2 for the first redelivery from the retry topic, and so on.
	Attempt int
}

// Clone returns a copy of ev with its own Extensions map and Origin; Data is shared.
func (ev *Event) Clone() *Event {
	if ev == nil {
		return nil
	}
	c := *ev
	if ev.Extensions != nil {
		c.Extensions = maps.Clone(ev.Extensions)
	}
	if ev.Origin != nil {
		o := *ev.Origin
		c.Origin = &o
	}
	return &c
}

// ApplyHeaders sets ev's envelope from CloudEvents Kafka headers. Absent headers leave
// their field as it is; when a key repeats, the last value wins (as Kafka's lastHeader).
// Unknown ce_* headers go to Extensions. Every malformed header (ce_specversion other than
// 1.0, a ce_time that is not RFC 3339, a ce_aggregateversion that is not an integer) is
// reported, joined, each wrapping ErrBadHeader; the other headers are still applied.
func (ev *Event) ApplyHeaders(hs []kgo.RecordHeader) error {
	// The string fields share one copy of the header values they are taken from: one
	// allocation per record rather than one per header (the runner reads every record's).
	n := 0
	for _, h := range hs {
		if takesValue(h.Key) {
			n += len(h.Value)
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, h := range hs {
		if takesValue(h.Key) {
			sb.Write(h.Value)
		}
	}
	values := sb.String()
	var errs []error
	bad := func(key, value string, why string) {
		errs = append(errs, fmt.Errorf("%w: %s %q: %s", ErrBadHeader, key, truncate(value, 64), why))
	}
	at := 0
	for _, h := range hs {
		if !takesValue(h.Key) {
			if h.Key == HeaderSpecVersion && string(h.Value) != SpecVersion {
				bad(h.Key, string(h.Value), "want "+SpecVersion)
			}
			continue
		}
		v := values[at : at+len(h.Value)]
		at += len(h.Value)
		switch h.Key {
		case HeaderID:
			ev.ID = v
		case HeaderSource:
			ev.Source = v
		case HeaderType:
			ev.Type = v
		case HeaderTime:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(h.Key, v, "not RFC 3339")
				continue
			}
			ev.Time = t
		case HeaderSubject:
			ev.AggregateID = v
		case HeaderAggregateType:
			ev.AggregateType = v
		case HeaderAggregateVersion:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				bad(h.Key, v, "not an integer")
				continue
			}
			ev.AggregateVersion = n
		case HeaderCorrelationID:
			ev.CorrelationID = v
		case HeaderCausationID:
			ev.CausationID = v
		case HeaderUserID:
			ev.UserID = v
		case HeaderTraceParent:
			ev.TraceParent = v
		default: // another ce_* attribute
			if ev.Extensions == nil {
				ev.Extensions = make(map[string]string)
			}
			ev.Extensions[h.Key[len(cePrefix):]] = v
		}
	}
	return errors.Join(errs...)
}

// takesValue reports whether ApplyHeaders keeps a header's value as a string: every ce_*
// attribute but ce_specversion (checked, not kept), and traceparent.
func takesValue(key string) bool {
	return key == HeaderTraceParent || (len(key) > len(cePrefix) && strings.HasPrefix(key, cePrefix) && key != HeaderSpecVersion)
}

// Headers returns ev's envelope as CloudEvents Kafka headers (binary mode), in a fixed order:
// the required attributes, content-type application/avro, then the optional ones that are
// set, then Extensions sorted by name. It is the inverse of ApplyHeaders.
func (ev *Event) Headers() []kgo.RecordHeader {
	// Every value is a piece of one buffer, sized up front so that it never moves (a piece
	// is capped at its own length, so an append to one cannot reach the next): one
	// allocation for the values rather than one per header, and one for the headers, of
	// exactly their number. The producer path builds these for every record; counting
	// first, a builder without closures and no sort without extensions took it from 5
	// allocations and 1.2 us to 2 and 0.65 us (BenchmarkDecodeRecord/Event.Headers, same session).
	size := len(SpecVersion) + len(ev.ID) + len(ev.Source) + len(ev.Type) + len(time.RFC3339Nano) + len(ContentTypeAvro) +
		len(ev.AggregateID) + len(ev.AggregateType) + 20 + len(ev.CorrelationID) + len(ev.CausationID) + len(ev.UserID) +
		len(ev.TraceParent)
	n := 5 // specversion, id, source, type, content-type
	for _, set := range [...]bool{!ev.Time.IsZero(), ev.AggregateID != "", ev.AggregateType != "", ev.AggregateVersion != 0,
		ev.CorrelationID != "", ev.CausationID != "", ev.UserID != "", ev.TraceParent != ""} {
		if set {
			n++
		}
	}
	var exts []string
	if len(ev.Extensions) > 0 {
		exts = slices.Sorted(maps.Keys(ev.Extensions))
		exts = slices.DeleteFunc(exts, func(k string) bool {
			return k == "" || reservedAttr(k) // would be read back as the attribute itself
		})
		for _, k := range exts {
			size += len(ev.Extensions[k])
		}
		n += len(exts)
	}
	hb := headerBuilder{buf: make([]byte, 0, size), hs: make([]kgo.RecordHeader, 0, n)}
	hb.add(HeaderSpecVersion, SpecVersion)
	hb.add(HeaderID, ev.ID)
	hb.add(HeaderSource, ev.Source)
	hb.add(HeaderType, ev.Type)
	if !ev.Time.IsZero() {
		from := len(hb.buf)
		hb.buf = ev.Time.UTC().AppendFormat(hb.buf, time.RFC3339Nano)
		hb.piece(HeaderTime, from)
	}
	hb.add(HeaderContentType, ContentTypeAvro)
	hb.opt(HeaderSubject, ev.AggregateID)
	hb.opt(HeaderAggregateType, ev.AggregateType)
	if ev.AggregateVersion != 0 {
		from := len(hb.buf)
		hb.buf = strconv.AppendInt(hb.buf, ev.AggregateVersion, 10)
		hb.piece(HeaderAggregateVersion, from)
	}
	hb.opt(HeaderCorrelationID, ev.CorrelationID)
	hb.opt(HeaderCausationID, ev.CausationID)
	hb.opt(HeaderUserID, ev.UserID)
	hb.opt(HeaderTraceParent, ev.TraceParent)
	for _, k := range exts {
		hb.add(cePrefix+k, ev.Extensions[k])
	}
	return hb.hs
}

// headerBuilder appends headers whose values are pieces of buf (see Event.Headers).
type headerBuilder struct {
	buf []byte
	hs  []kgo.RecordHeader
}

// piece adds the header k whose value is buf from from to its end.
func (hb *headerBuilder) piece(k string, from int) {
	hb.hs = append(hb.hs, kgo.RecordHeader{Key: k, Value: hb.buf[from:len(hb.buf):len(hb.buf)]})
}

func (hb *headerBuilder) add(k, v string) {
	from := len(hb.buf)
	hb.buf = append(hb.buf, v...)
	hb.piece(k, from)
}

// opt adds k unless v is empty.
func (hb *headerBuilder) opt(k, v string) {
	if v != "" {
		hb.add(k, v)
	}
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
