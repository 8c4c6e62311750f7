package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/schemas"
)

// CodecDecoder is the Decoder for Pyrite records: a Confluent-framed Avro value, decoded
// with the codec into the newest local version (schemas/) of its type, and CloudEvents
// headers. It is safe for concurrent use.
//
// The schema id is read as Confluent's default deserializers read it: from the
// __value_schema_id header when the record has one (the value is then a bare Avro body),
// else from the value's prefix. A malformed header is dead-lettered with reason
// "bad-schema-id-header", an id or GUID the registry does not know with "unknown-schema".
//
// The event type comes from the writer schema's subject; a ce_type header that says
// otherwise is an error. A type with no local schema is decoded as written. Missing headers
// are filled from the record where possible: AggregateID from the key, AggregateType from
// the type, Time from the record timestamp. Registry outages are transient errors; every
// other failure is permanent.
type CodecDecoder struct {
	codec    *codec.Codec
	types    Types
	readers  map[string]*codec.Schema // subject -> newest local version
	subjects sync.Map                 // event type -> subject, as types said
}

// Types maps between event types and registry subjects; *topology.Topology
// implements it.
type Types interface {
	EventType(subject string) (string, error)
	Subject(eventType string) (string, error)
}

// NewCodecDecoder returns a decoder that reads every type into the newest version among
// local (e.g. schemas.All()).
func NewCodecDecoder(c *codec.Codec, types Types, local []schemas.File) (*CodecDecoder, error) {
	d := &CodecDecoder{codec: c, types: types, readers: make(map[string]*codec.Schema)}
	for _, f := range local {
		if cur, ok := d.readers[f.Subject]; ok && cur.Version >= f.Version {
			continue
		}
		s, err := codec.NewSchema(0, f.Subject, f.Version, f.Text)
		if err != nil {
			return nil, fmt.Errorf("bus: reader schema %s v%d: %w", f.Subject, f.Version, err)
		}
		d.readers[f.Subject] = s
	}
	return d, nil
}

// subject is types.Subject(typ), remembered: it is asked for every record.
func (d *CodecDecoder) subject(typ string) (string, error) {
	if s, ok := d.subjects.Load(typ); ok {
		return s.(string), nil
	}
	s, err := d.types.Subject(typ)
	if err == nil {
		d.subjects.Store(typ, s)
	}
	return s, err
}

// Decode implements Decoder.
func (d *CodecDecoder) Decode(ctx context.Context, rec *kgo.Record) (*Event, error) {
	ev, err := d.decode(ctx, rec)
	if err != nil {
		err = fmt.Errorf("decode %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		switch {
		case errors.Is(err, codec.ErrRegistryUnavailable):
		case errors.Is(err, codec.ErrBadSchemaIDHeader):
			err = Permanent(&reasonError{ReasonBadSchemaIDHeader, err})
		case errors.Is(err, codec.ErrUnknownSchemaID):
			err = Permanent(&reasonError{ReasonUnknownSchema, err})
		default:
			err = Permanent(err)
		}
		return nil, err
	}
	return ev, nil
}

// Dead-letter reasons of decode failures the CodecDecoder tells apart (otherwise "decode").
const (
	// ReasonBadSchemaIDHeader: the __value_schema_id header is malformed.
	ReasonBadSchemaIDHeader = "bad-schema-id-header"
	// ReasonUnknownSchema: the registry does not know the record's schema id or GUID.
	ReasonUnknownSchema = "unknown-schema"
)

// reasonError is a decode error with its own dead-letter reason.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// decodeReason is the dead-letter reason of a decode error: the one it carries, else
// ReasonDecode.
func decodeReason(err error) string {
	if re := (*reasonError)(nil); errors.As(err, &re) {
		return re.reason
	}
	return ReasonDecode
}

// SchemaIDHeader returns the value of rec's __value_schema_id header (the last one, as
// Confluent's deserializers take it) and whether it has one.
func SchemaIDHeader(rec *kgo.Record) ([]byte, bool) {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == codec.ValueSchemaIDHeader {
			return rec.Headers[i].Value, true
		}
	}
	return nil, false
}

func (d *CodecDecoder) decode(ctx context.Context, rec *kgo.Record) (*Event, error) {
	hdr, ok := SchemaIDHeader(rec)
	value, err := d.codec.Prefixed(ctx, rec.Value, hdr, ok)
	if err != nil {
		return nil, err
	}
	id, _, err := codec.SplitFrame(value)
	if err != nil {
		return nil, err
	}
	w, err := d.codec.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	reader := d.readers[w.Subject]
	var data map[string]any
	if _, err := d.codec.Decode(ctx, value, reader, &data); err != nil {
		return nil, err
	}
	ev := &Event{Data: data, SchemaVersion: w.Version}
	if reader != nil {
		ev.SchemaVersion = reader.Version
	}
	if err := ev.ApplyHeaders(rec.Headers); err != nil {
		return nil, err
	}
	typ := ev.Type
	if typ == "" {
		// Integration subjects do not map back to a type: those need ce_type.
		if typ, err = d.types.EventType(w.Subject); err != nil {
			return nil, err
		}
		ev.Type = typ
	} else if subject, err := d.subject(typ); err != nil || subject != w.Subject {
		return nil, fmt.Errorf("%w: %s says %q but the value is a %s", ErrBadHeader, HeaderType, ev.Type, w.Subject)
	}
	if ev.AggregateID == "" {
		ev.AggregateID = string(rec.Key)
	}
	if agg, _, ok := strings.Cut(typ, ":"); ok && ev.AggregateType == "" {
		ev.AggregateType = agg
	}
	if ev.Time.IsZero() {
		ev.Time = rec.Timestamp
	}
	return ev, nil
}
