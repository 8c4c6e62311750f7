package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/schemas"
)

// CodecDecoder is the Decoder for Pyrite records: a Confluent-framed Avro value, decoded
// with the codec into the newest local version (schemas/) of its type, and CloudEvents
// headers. It is safe for concurrent use.
//
// The event type comes from the writer schema's subject; a ce_type header that says
// otherwise is an error. A type with no local schema is decoded as written. Missing headers
// are filled from the record where possible: AggregateID from the key, AggregateType from
// the type, Time from the record timestamp. Registry outages are transient errors; every
// other failure is permanent.
type CodecDecoder struct {
	codec   *codec.Codec
	types   Types
	readers map[string]*codec.Schema // subject -> newest local version
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

// Decode implements Decoder.
func (d *CodecDecoder) Decode(ctx context.Context, rec *kgo.Record) (*Event, error) {
	ev, err := d.decode(ctx, rec)
	if err != nil {
		err = fmt.Errorf("decode %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		if !errors.Is(err, codec.ErrRegistryUnavailable) {
			err = Permanent(err)
		}
		return nil, err
	}
	return ev, nil
}

func (d *CodecDecoder) decode(ctx context.Context, rec *kgo.Record) (*Event, error) {
	id, _, err := codec.SplitFrame(rec.Value)
	if err != nil {
		return nil, err
	}
	w, err := d.codec.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	reader := d.readers[w.Subject]
	var data map[string]any
	if _, err := d.codec.Decode(ctx, rec.Value, reader, &data); err != nil {
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
	} else if subject, err := d.types.Subject(typ); err != nil || subject != w.Subject {
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
