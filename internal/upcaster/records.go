package upcaster

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// Headers the upcaster adds to every record it writes to an events topic. Any header of these
// names on the raw record is replaced.
const (
	// HeaderFromVersion is the schema version the raw record was written with, decimal.
	HeaderFromVersion = "pyrite-upcast-from-version"
	// HeaderFromSchemaID is the raw record's schema ID, decimal.
	HeaderFromSchemaID = "pyrite-upcast-from-schema-id"
	// HeaderRawTopic, HeaderRawPartition and HeaderRawOffset locate the raw record.
	HeaderRawTopic     = "pyrite-upcast-raw-topic"
	HeaderRawPartition = "pyrite-upcast-raw-partition"
	HeaderRawOffset    = "pyrite-upcast-raw-offset"
)

// Headers on a dead-lettered record, beside its original key, value and headers. The names are
// those of internal/bus's runners, so one tool reads every dead-letter topic.
const (
	HeaderDLQReason   = bus.HeaderDLQReason   // one of the Reason* values
	HeaderDLQError    = bus.HeaderDLQError    // the failure, for people (at most 1 KiB)
	HeaderDLQGroup    = bus.HeaderDLQGroup    // "upcaster"
	HeaderDLQTime     = bus.HeaderDLQTime     // RFC 3339, UTC
	HeaderDLQAttempts = bus.HeaderDLQAttempts // always "1": poison is not retried
	// HeaderDLQSchemaID is the schema ID in the raw value's frame, decimal; absent when the
	// value is not framed.
	HeaderDLQSchemaID     = "pyrite-dlq-schema-id"
	HeaderOriginTopic     = bus.HeaderOriginTopic
	HeaderOriginPartition = bus.HeaderOriginPartition
	HeaderOriginOffset    = bus.HeaderOriginOffset
)

// Dead-letter reasons: the HeaderDLQReason value and the reason label of
// pyrite_upcaster_dlq_total.
const (
	// ReasonNotFramed: the value is not in the Confluent wire format.
	ReasonNotFramed = "not-framed"
	// ReasonUnknownSchema: the registry does not know the value's schema ID or the GUID in
	// its __value_schema_id header.
	ReasonUnknownSchema = "unknown-schema"
	// ReasonBadSchemaIDHeader: the __value_schema_id header is neither 0x01 and a 16-byte
	// GUID nor 0x00 and a 4-byte ID.
	ReasonBadSchemaIDHeader = "bad-schema-id-header"
	// ReasonUnsupportedSchema: the schema is not an Avro record the codec handles.
	ReasonUnsupportedSchema = "unsupported-schema"
	// ReasonUnroutable: the topology does not route the value's type to this raw topic (a
	// system or integration event, an undeclared aggregate, another aggregate's event, or a
	// schema not registered under its record's full name).
	ReasonUnroutable = "unroutable"
	// ReasonInvalidData: the body does not fit its schema.
	ReasonInvalidData = "invalid-data"
	// ReasonNoPath: a version step has no function and does not resolve.
	ReasonNoPath = "no-path"
	// ReasonUpcastFailed: an upcaster function failed on the value.
	ReasonUpcastFailed = "upcast-failed"
)

// reasons lists every dead-letter reason.
var reasons = []string{ReasonNotFramed, ReasonUnknownSchema, ReasonBadSchemaIDHeader, ReasonUnsupportedSchema, ReasonUnroutable,
	ReasonInvalidData, ReasonNoPath, ReasonUpcastFailed}

// DefaultSource is the ce_source given to records that arrive without one.
const DefaultSource = "/pyrite/upcaster"

const maxErrorHeader = 1024

// processor turns one raw record into its events record or its dead letter. It is safe for
// concurrent use by goroutines with a scratch each.
type processor struct {
	up       *upcast.Upcaster
	topo     *topology.Topology
	dlqTopic string
	group    string
	source   []byte
	idSpace  uuid.UUID // namespace of derived ce_id values
	now      func() time.Time
	routes   sync.Map // subject -> *route
}

// route is where a subject's events go, with the header values they carry.
type route struct {
	err         error // the topology does not route the subject
	rawTopic    string
	eventsTopic string
	eventType   string
	// Header values shared by every record of the subject (never written).
	typeHeader, aggHeader, rawTopicHeader []byte
	aggregate                             string
}

func newProcessor(up *upcast.Upcaster, topo *topology.Topology, source string) (*processor, error) {
	dlq, err := topo.DLQTopic(Group)
	if err != nil {
		return nil, err
	}
	if source == "" {
		source = DefaultSource
	}
	return &processor{
		up: up, topo: topo, dlqTopic: dlq, group: Group, source: []byte(source),
		idSpace: uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/pyrite-dev/pyrite/upcaster")),
		now:     time.Now,
	}, nil
}

// routeOf returns the route of subject, from the topology the first time and from a cache
// after that.
func (p *processor) routeOf(subject string) *route {
	if r, ok := p.routes.Load(subject); ok {
		return r.(*route)
	}
	r := &route{}
	agg, err := p.topo.AggregateOfSubject(subject)
	if err == nil {
		r.eventType, err = p.topo.EventType(subject)
	}
	if err != nil {
		r.err = err
	} else {
		r.rawTopic, r.eventsTopic, r.aggregate = agg.RawTopic(), agg.EventsTopic(), agg.Name
		r.typeHeader, r.aggHeader, r.rawTopicHeader = []byte(r.eventType), []byte(agg.Name), []byte(r.rawTopic)
	}
	v, _ := p.routes.LoadOrStore(subject, r)
	return v.(*route)
}

// scratch holds the memory of one batch's output records: their values, header values,
// headers and the records themselves are carved from a few growing slices instead of being
// allocated one by one. Reset it only once every record of the previous batch is done
// (flushed or aborted): they point into it. A scratch is used by one goroutine at a time.
type scratch struct {
	vals []byte
	hdrs []kgo.RecordHeader
	// Records come from fixed-size chunks, never from a slice that grows: growing copies the
	// records, which the producer writes to concurrently.
	chunks [][]kgo.Record
	chunk  int // the chunk records are taken from
}

const recordChunk = 512

func (sc *scratch) reset() {
	sc.vals, sc.hdrs = sc.vals[:0], sc.hdrs[:0]
	for i := range sc.chunks {
		sc.chunks[i] = sc.chunks[i][:0]
	}
	sc.chunk = 0
}

// carve returns vals[start:] capped, so later appends to vals cannot reach into it. If an
// append moved vals, slices carved before keep pointing at the old array, which stays valid.
func (sc *scratch) carve(start int) []byte { return sc.vals[start:len(sc.vals):len(sc.vals)] }

func (sc *scratch) record(r kgo.Record) *kgo.Record {
	if sc.chunk == len(sc.chunks) {
		sc.chunks = append(sc.chunks, make([]kgo.Record, 0, recordChunk))
	}
	c := &sc.chunks[sc.chunk]
	*c = append(*c, r)
	out := &(*c)[len(*c)-1]
	if len(*c) == cap(*c) {
		sc.chunk++
	}
	return out
}

// outcome is what became of one raw record.
type outcome struct {
	rec       *kgo.Record // for the events topic, or the dead letter
	reason    string      // dead-letter reason, "" for an event
	eventType string
	from, to  int
}

// process upcasts rec into memory from sc. The returned error is transient (the registry
// could not be asked, or failed in a way that is not about this record); every permanent
// failure is a dead letter in the outcome.
func (p *processor) process(ctx context.Context, rec *kgo.Record, sc *scratch) (outcome, error) {
	// A value framed by a __value_schema_id header (Confluent's header mode) is read in the
	// prefix framing from here on: the events record carries the id in its value and no
	// header, so no header ever points at the raw record's (older) schema.
	hdr, hasHdr := bus.SchemaIDHeader(rec)
	value, err := p.up.Prefixed(ctx, rec.Value, hdr, hasHdr)
	if err != nil {
		switch {
		case errors.Is(err, codec.ErrBadSchemaIDHeader):
			return p.dead(rec, ReasonBadSchemaIDHeader, err), nil
		case errors.Is(err, codec.ErrUnknownSchemaID):
			return p.dead(rec, ReasonUnknownSchema, err), nil
		}
		return outcome{}, fmt.Errorf("schema id header of %s: %w", where(rec), err)
	}
	w, err := p.up.WriterOf(ctx, value)
	if err != nil {
		switch {
		case errors.Is(err, upcast.ErrNotFramed):
			return p.dead(rec, ReasonNotFramed, err), nil
		case errors.Is(err, codec.ErrUnknownSchemaID):
			return p.dead(rec, ReasonUnknownSchema, err), nil
		case errors.Is(err, codec.ErrUnsupportedSchema):
			return p.dead(rec, ReasonUnsupportedSchema, err), nil
		case errors.Is(err, codec.ErrUnknownSubject):
			return p.dead(rec, ReasonUnroutable, err), nil
		}
		return outcome{}, fmt.Errorf("schema of %s: %w", where(rec), err)
	}
	rt := p.routeOf(w.Subject)
	switch {
	case rt.err != nil:
		return p.dead(rec, ReasonUnroutable, rt.err), nil
	case rt.rawTopic != rec.Topic:
		return p.dead(rec, ReasonUnroutable, fmt.Errorf("subject %s is an event of aggregate %s, whose raw topic is %s", w.Subject, rt.aggregate, rt.rawTopic)), nil
	}
	start := len(sc.vals)
	res, err := p.up.Upcast(ctx, rt.eventType, w, value, sc.vals)
	if err != nil {
		switch {
		case errors.Is(err, upcast.ErrStepFailed):
			return p.dead(rec, ReasonUpcastFailed, err), nil
		case errors.Is(err, upcast.ErrNoPath):
			return p.dead(rec, ReasonNoPath, err), nil
		case errors.Is(err, codec.ErrInvalidData):
			return p.dead(rec, ReasonInvalidData, err), nil
		case errors.Is(err, codec.ErrUnknownSubject):
			return p.dead(rec, ReasonUnroutable, err), nil
		}
		return outcome{}, fmt.Errorf("upcast %s: %w", where(rec), err)
	}
	value = res.Value // the (prefix-framed) raw value itself when the version did not change
	if res.To != res.From {
		sc.vals = res.Value
		value = sc.carve(start)
	}
	out := sc.record(kgo.Record{
		Topic:     rt.eventsTopic,
		Key:       rec.Key,
		Value:     value,
		Headers:   p.eventHeaders(rec, rt, res, sc),
		Timestamp: rec.Timestamp,
		Partition: rec.Partition,
	})
	return outcome{rec: out, eventType: rt.eventType, from: res.From.Version, to: res.To.Version}, nil
}

func where(r *kgo.Record) string { return fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset) }

// CloudEvents headers the upcaster derives when a raw record lacks them (or has them empty).
const (
	ceSpecVersion   = "ce_specversion"
	ceID            = "ce_id"
	ceSource        = "ce_source"
	ceType          = "ce_type"
	ceTime          = "ce_time"
	ceSubject       = "ce_subject"
	ceAggregateType = "ce_aggregatetype"
	ceCorrelationID = "ce_correlationid"
	contentType     = "content-type"
)

// Bits of the CloudEvents headers a raw record has.
const (
	hasSpecVersion = 1 << iota
	hasID
	hasSource
	hasTime
	hasSubject
	hasAggregateType
	hasCorrelationID
)

var (
	specVersion1 = []byte("1.0")
	avroContent  = []byte("application/avro")
)

// eventHeaders keeps rec's headers, derives missing CloudEvents headers, sets ce_type and
// content-type to what the value is, and adds the upcast headers; values and headers are
// carved from sc.
func (p *processor) eventHeaders(rec *kgo.Record, rt *route, res upcast.Result, sc *scratch) []kgo.RecordHeader {
	sc.hdrs = slices.Grow(sc.hdrs, len(rec.Headers)+14)
	first := len(sc.hdrs)
	var have int
	var id []byte
	for _, h := range rec.Headers {
		bit := 0
		switch h.Key {
		case HeaderFromVersion, HeaderFromSchemaID, HeaderRawTopic, HeaderRawPartition, HeaderRawOffset, ceType, contentType:
			continue // replaced below
		case codec.ValueSchemaIDHeader:
			continue // dropped: the events value carries its id in the prefix
		case ceSpecVersion:
			bit = hasSpecVersion
		case ceID:
			bit = hasID
		case ceSource:
			bit = hasSource
		case ceTime:
			bit = hasTime
		case ceSubject:
			bit = hasSubject
		case ceAggregateType:
			bit = hasAggregateType
		case ceCorrelationID:
			bit = hasCorrelationID
		}
		if bit != 0 {
			if len(h.Value) == 0 || have&bit != 0 {
				continue // derived below; a repeated header is dropped
			}
			have |= bit
			if bit == hasID {
				id = h.Value
			}
		}
		sc.hdrs = append(sc.hdrs, h)
	}
	add := func(k string, v []byte) { sc.hdrs = append(sc.hdrs, kgo.RecordHeader{Key: k, Value: v}) }
	if have&hasSpecVersion == 0 {
		add(ceSpecVersion, specVersion1)
	}
	if have&hasID == 0 {
		start := len(sc.vals)
		sc.vals = p.appendDerivedID(sc.vals, rec)
		id = sc.carve(start)
		add(ceID, id)
	}
	if have&hasSource == 0 {
		add(ceSource, p.source)
	}
	add(ceType, rt.typeHeader)
	if have&hasTime == 0 {
		start := len(sc.vals)
		sc.vals = rec.Timestamp.UTC().AppendFormat(sc.vals, time.RFC3339Nano)
		add(ceTime, sc.carve(start))
	}
	if have&hasSubject == 0 && len(rec.Key) > 0 {
		add(ceSubject, rec.Key)
	}
	add(contentType, avroContent)
	if have&hasAggregateType == 0 {
		add(ceAggregateType, rt.aggHeader)
	}
	if have&hasCorrelationID == 0 {
		add(ceCorrelationID, id)
	}
	num := func(k string, n int64) {
		start := len(sc.vals)
		sc.vals = strconv.AppendInt(sc.vals, n, 10)
		add(k, sc.carve(start))
	}
	num(HeaderFromVersion, int64(res.From.Version))
	num(HeaderFromSchemaID, int64(res.From.ID))
	add(HeaderRawTopic, rt.rawTopicHeader) // rt.rawTopic == rec.Topic
	num(HeaderRawPartition, int64(rec.Partition))
	num(HeaderRawOffset, rec.Offset)
	return sc.hdrs[first:len(sc.hdrs):len(sc.hdrs)]
}

// appendDerivedID appends the ce_id of a record that has none: the UUID version 5 (SHA-1) of
// "<topic>/<partition>/<offset>" in the upcaster's namespace, as uuid.NewSHA1 computes it, so
// a record upcast twice (after an aborted transaction) gets the same id.
func (p *processor) appendDerivedID(dst []byte, rec *kgo.Record) []byte {
	var in [160]byte
	b := append(in[:0], p.idSpace[:]...)
	b = append(b, rec.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(rec.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, rec.Offset, 10)
	sum := sha1.Sum(b)
	sum[6] = (sum[6] & 0x0f) | 0x50 // version 5
	sum[8] = (sum[8] & 0x3f) | 0x80 // RFC 4122 variant
	const hexdigits = "0123456789abcdef"
	for i := range 16 {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexdigits[sum[i]>>4], hexdigits[sum[i]&0xf])
	}
	return dst
}

// dead is rec as a dead letter: its key, value and headers, plus why and where from.
func (p *processor) dead(rec *kgo.Record, reason string, cause error) outcome {
	hs := make([]kgo.RecordHeader, 0, len(rec.Headers)+10)
	for _, h := range rec.Headers {
		if !strings.HasPrefix(h.Key, "pyrite-dlq-") && !strings.HasPrefix(h.Key, "pyrite-origin-") {
			hs = append(hs, h)
		}
	}
	add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDLQReason, reason)
	add(HeaderDLQError, truncate(cause.Error(), maxErrorHeader))
	add(HeaderDLQGroup, p.group)
	add(HeaderDLQTime, p.now().UTC().Format(time.RFC3339Nano))
	add(HeaderDLQAttempts, "1")
	if _, hasHdr := bus.SchemaIDHeader(rec); !hasHdr {
		if id, _, err := codec.SplitFrame(rec.Value); err == nil {
			add(HeaderDLQSchemaID, strconv.Itoa(id))
		}
	}
	add(HeaderOriginTopic, rec.Topic)
	add(HeaderOriginPartition, strconv.Itoa(int(rec.Partition)))
	add(HeaderOriginOffset, strconv.FormatInt(rec.Offset, 10))
	return outcome{
		rec:    &kgo.Record{Topic: p.dlqTopic, Key: rec.Key, Value: rec.Value, Headers: hs, Timestamp: rec.Timestamp, Partition: rec.Partition},
		reason: reason,
	}
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// partitioner writes every record to its raw record's partition number (modulo the target
// topic's partition count): an events topic has as many partitions as its raw topic, so each
// aggregate keeps its partition and its order, whatever partitioner the raw producer used.
func partitioner() kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, n int) int {
			if r.Partition < 0 {
				return 0
			}
			return int(r.Partition) % n
		}
	})
}
