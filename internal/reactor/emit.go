package reactor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// idSpace is the UUID namespace of derived event ids (a fixed random UUID: never change it,
// or redeliveries after an upgrade get new ids).
var idSpace = uuid.UUID{0x0b, 0x7e, 0x4f, 0x0e, 0x5a, 0x3c, 0x4c, 0x55, 0x9a, 0x43, 0x6f, 0x0c, 0x2a, 0x7d, 0x9e, 0x11} // 0b7e4f0e-5a3c-4c55-9a43-6f0c2a7d9e11

// EventID derives the ce_id of the event that causeID caused at step: a name-based (SHA-1,
// version 5) UUID, the same for the same inputs on every run.
func EventID(causeID, step string) string {
	return uuid.NewSHA1(idSpace, []byte(causeID+"\x00"+step)).String()
}

// Cause is what an emitted event inherits from the event (or decision) that caused it.
type Cause struct {
	// ID is the cause's ce_id: the emitted event's causation id and the seed of its ce_id.
	ID string
	// CorrelationID is carried over unchanged.
	CorrelationID string
	UserID        string
	TraceParent   string
}

// CauseOf returns ev as a cause. An event without a correlation id starts a correlation:
// its own id becomes the correlation id of what it causes.
func CauseOf(ev *bus.Event) Cause {
	c := Cause{ID: ev.ID, CorrelationID: ev.CorrelationID, UserID: ev.UserID, TraceParent: ev.TraceParent}
	if c.CorrelationID == "" {
		c.CorrelationID = ev.ID
	}
	return c
}

// Emit is one event to write.
type Emit struct {
	// Type is a domain type ("WorkEffort:GitHubIssueCreated", written to the aggregate's raw
	// topic at the newest schema version) or an integration type ("work-effort.completed.v1",
	// written to pyrite.integration at the schema version its name ends with).
	Type string
	// AggregateID is the Kafka key and ce_subject.
	AggregateID string
	// Data is the record, as codec.Encode takes it.
	Data map[string]any
	// Step tells apart the events one cause emits; the ce_id is EventID(cause.ID, Step).
	Step string
	// Source overrides the emitter's ce_source.
	Source string
}

// Emitter encodes events for Kafka. It is safe for concurrent use.
type Emitter struct {
	codec  *codec.Codec
	topo   *topology.Topology
	source string
	now    func() time.Time
}

// NewEmitter returns an Emitter that encodes with c, routes with topo and writes source as
// ce_source (e.g. "pyrite.projector").
func NewEmitter(c *codec.Codec, topo *topology.Topology, source string) *Emitter {
	return &Emitter{codec: c, topo: topo, source: source, now: time.Now}
}

// Record encodes e, caused by cause, into a Kafka record. Errors: a schema registry outage is
// transient; anything else (an unroutable type, data that does not fit the schema) is marked
// bus.Permanent.
func (em *Emitter) Record(ctx context.Context, cause Cause, e Emit) (*kgo.Record, error) {
	if cause.ID == "" || e.Step == "" {
		return nil, bus.Permanent(fmt.Errorf("reactor: emit %s: cause id and step are required", e.Type))
	}
	topic, err := em.topo.RawTopic(e.Type)
	if err != nil {
		return nil, bus.Permanent(fmt.Errorf("reactor: emit %s: %w", e.Type, err))
	}
	subject, err := em.topo.Subject(e.Type)
	if err != nil {
		return nil, bus.Permanent(fmt.Errorf("reactor: emit %s: %w", e.Type, err))
	}
	var sch *codec.Schema
	if _, v, ierr := topology.IntegrationSubject(e.Type); ierr == nil {
		sch, err = em.codec.Version(ctx, subject, v)
	} else {
		sch, err = em.codec.Latest(ctx, subject)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("reactor: emit %s: schema %s: %w", e.Type, subject, err))
	}
	value, err := em.codec.Encode(sch, e.Data)
	if err != nil {
		return nil, bus.Permanent(fmt.Errorf("reactor: emit %s: %w", e.Type, err))
	}
	ev := bus.Event{
		ID: EventID(cause.ID, e.Step), Type: e.Type, AggregateID: e.AggregateID, Time: em.now(),
		Source: cmpOr(e.Source, em.source), CorrelationID: cause.CorrelationID, CausationID: cause.ID,
		UserID: cause.UserID, TraceParent: cause.TraceParent,
	}
	if agg, _, ok := strings.Cut(e.Type, ":"); ok {
		ev.AggregateType = agg
	}
	return &kgo.Record{Topic: topic, Key: []byte(e.AggregateID), Value: value, Headers: ev.Headers()}, nil
}

func classify(err error) error {
	if errors.Is(err, codec.ErrRegistryUnavailable) {
		return err
	}
	return bus.Permanent(err)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// HeaderValue returns the last value of header key, "" when absent.
func HeaderValue(hs []kgo.RecordHeader, key string) string {
	v := ""
	for _, h := range hs {
		if h.Key == key {
			v = string(h.Value)
		}
	}
	return v
}
