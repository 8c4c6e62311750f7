package eventstore

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Event is one event of a stream as Read returns it: upcast to the newest schema version of
// its type and decoded.
type Event struct {
	ID          string
	Type        string
	AggregateID string
	Version     int64
	// Time is the ce_time header, or the record's timestamp when it has none.
	Time      time.Time
	Topic     string
	Partition int32
	Offset    int64
	// WrittenSchemaID is the schema the event was written with; Schema is the one Data is at.
	WrittenSchemaID int
	Schema          *codec.Schema
	Data            map[string]any // as codec.Decode decodes a record
	CorrelationID   string
	CausationID     string
	UserID          string
}

// Stream is the events of one aggregate from a version on.
type Stream struct {
	AggregateID string
	Topic       string
	Partition   int32
	// Version is the stream's version when it was read: that of its last event, 0 for none.
	Version int64
	Events  []Event
}

// Read returns the events of aggregateID on topic from version fromVersion (1 for all) up to
// the stream's version when Read was called, in order, each upcast with the upcaster's chain
// to the newest version of its type and decoded. Every event answered 201 before the call is
// included. The partition must be local and ready (ErrNotOwner, ErrNotReady otherwise);
// decoding errors wrap codec's and upcast's sentinels (codec.ErrRegistryUnavailable is
// transient). ctx bounds the wait for records that are committed but not yet readable.
func (s *Store) Read(ctx context.Context, topic, aggregateID string, fromVersion int64) (Stream, error) {
	p, err := s.local(topic, []byte(aggregateID))
	if err != nil {
		return Stream{}, err
	}
	p.mu.Lock()
	st := p.idx.streams[aggregateID]
	out := Stream{AggregateID: aggregateID, Topic: topic, Partition: p.part, Version: st.version()}
	first, offsets := st.from(max(fromVersion, 1))
	p.mu.Unlock()
	recs, err := s.readOffsets(ctx, topic, p.part, offsets)
	if err != nil {
		return out, err
	}
	out.Events = make([]Event, len(recs))
	for i, rec := range recs {
		v := first + int64(i)
		if out.Events[i], err = s.decode(ctx, rec, v); err != nil {
			return out, fmt.Errorf("%s version %d at %s[%d]@%d: %w", aggregateID, v, topic, p.part, rec.Offset, err)
		}
	}
	return out, nil
}

// readOffsets fetches the records at offsets (ascending) of one partition.
func (s *Store) readOffsets(ctx context.Context, topic string, part int32, offsets []int64) ([]*kgo.Record, error) {
	out := make([]*kgo.Record, len(offsets))
	i := 0
	for i < len(offsets) {
		f, err := s.fetch.fetch(ctx, topic, part, offsets[i], catchUpWait, fetchBytes)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: reading %s[%d]@%d: %w", ErrUnavailable, topic, part, offsets[i], ctx.Err())
			}
			sleep(ctx, retryBackoff)
			continue
		}
		for _, r := range f.records {
			if i < len(offsets) && offsets[i] < r.Offset {
				break
			}
			if i < len(offsets) && offsets[i] == r.Offset {
				out[i] = r
				i++
			}
		}
		if i < len(offsets) && offsets[i] < f.next {
			return nil, fmt.Errorf("%w: %s[%d]@%d is in the index but not readable (read_committed)", ErrUnavailable, topic, part, offsets[i])
		}
		if len(f.records) == 0 { // committed, not yet stable (the markers are on their way)
			sleep(ctx, 10*time.Millisecond)
		}
	}
	return out, nil
}

// decode upcasts and decodes one record of a stream.
func (s *Store) decode(ctx context.Context, rec *kgo.Record, version int64) (Event, error) {
	ev := Event{AggregateID: string(rec.Key), Version: version, Topic: rec.Topic, Partition: rec.Partition,
		Offset: rec.Offset, Time: rec.Timestamp}
	for _, h := range rec.Headers {
		switch h.Key {
		case "ce_id":
			ev.ID = string(h.Value)
		case "ce_type":
			ev.Type = string(h.Value)
		case "ce_time":
			if t, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
				ev.Time = t
			}
		case "ce_correlationid":
			ev.CorrelationID = string(h.Value)
		case "ce_causationid":
			ev.CausationID = string(h.Value)
		case "ce_userid":
			ev.UserID = string(h.Value)
		}
	}
	// A value framed by the __value_schema_id header (Confluent's header mode) is read in
	// the prefix framing: the header wins.
	hdr, hasHdr := bus.SchemaIDHeader(rec)
	value, err := s.up.Prefixed(ctx, rec.Value, hdr, hasHdr)
	if err != nil {
		return ev, err
	}
	w, err := s.up.WriterOf(ctx, value)
	if err != nil {
		return ev, err
	}
	ev.WrittenSchemaID = w.ID
	if ev.Type == "" {
		if ev.Type, err = s.types.EventType(w.Subject); err != nil {
			return ev, err
		}
	}
	res, err := s.up.Upcast(ctx, ev.Type, w, value, nil)
	if err != nil {
		return ev, err
	}
	data := map[string]any{}
	if ev.Schema, err = s.codec.Decode(ctx, res.Value, nil, &data); err != nil {
		return ev, err
	}
	ev.Data = data
	return ev, nil
}
