// Package ingest is the HTTP front door of the write path: it turns JSON
// events into Confluent-framed Avro records on pyrite.<aggregate>.raw.
//
// Guarantees: a request is answered 201 only once the broker acknowledged
// every record (acks=all, idempotent producer). A rejected request writes
// nothing: events are validated and encoded before anything is produced, and
// a batch is one Kafka transaction, committed only when all of it was
// written. Records are keyed by aggregate ID and partitioned with murmur2,
// so per-aggregate order matches the order of acknowledged requests.
// The Service is safe for concurrent use.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// Defaults.
const (
	DefaultMaxBody      = 1 << 20 // 1 MiB for a single event
	DefaultMaxBatchBody = 8 << 20 // 8 MiB for a batch
	DefaultMaxBatch     = 1000
	DefaultSource       = "/pyrite/ingest"
)

// Router maps an event type to its raw topic and registry subject.
type Router interface {
	RawTopic(eventType string) (string, error)
	Subject(eventType string) (string, error)
}

// Producer writes records. Single events go through Produce; batches through
// a transaction.
type Producer interface {
	ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults
	Transact(ctx context.Context, rs []*kgo.Record) error
	Ping(ctx context.Context) error
}

// Config holds the optional settings of a Service; zero values take defaults.
type Config struct {
	MaxBody      int64  // bytes accepted for POST /v1/events
	MaxBatchBody int64  // bytes accepted for POST /v1/events:batch
	MaxBatch     int    // events accepted in one batch
	Source       string // ce_source header
	// ProduceTimeout bounds the wait for the broker's acknowledgement; past
	// it the request is answered 503 (the outcome is then unknown: retry
	// with the same id).
	ProduceTimeout time.Duration
}

// Service serves the ingest API.
type Service struct {
	codec  *codec.Codec
	router Router
	prod   Producer
	cfg    Config
	now    func() time.Time

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	events   *prometheus.CounterVec
}

// New returns a Service. reg receives its metrics.
func New(c *codec.Codec, router Router, prod Producer, cfg Config, reg prometheus.Registerer) *Service {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBatchBody <= 0 {
		cfg.MaxBatchBody = DefaultMaxBatchBody
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Source == "" {
		cfg.Source = DefaultSource
	}
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = 15 * time.Second
	}
	s := &Service{
		codec: c, router: router, prod: prod, cfg: cfg, now: time.Now,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_ingest_requests_total",
			Help: "Ingest HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pyrite_ingest_produce_seconds",
			Help:    "Time from produce to broker acknowledgement (or transaction commit), by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pyrite_ingest_events_total",
			Help: "Events written to Kafka, by event type.",
		}, []string{"type"}),
	}
	if reg != nil {
		reg.MustRegister(s.requests, s.latency, s.events)
	}
	return s
}

// Handler returns the API routes.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/events", s.route("events", s.postEvent))
	mux.Handle("POST /v1/events:batch", s.route("events:batch", s.postBatch))
	return mux
}

// Ready reports whether Kafka answers.
func (s *Service) Ready(ctx context.Context) error { return s.prod.Ping(ctx) }

func (s *Service) route(name string, h func(http.ResponseWriter, *http.Request) *Problem) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusCreated
		if p := h(w, r); p != nil {
			code = p.Status
			writeProblem(w, p)
		}
		s.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
	})
}

// Result is what a written event's 201 answer carries.
type Result struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AggregateID string `json:"aggregateId"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	SchemaID    int    `json:"schemaId"`
}

func (s *Service) postEvent(w http.ResponseWriter, r *http.Request) *Problem {
	doc, p := readBody(w, r, s.cfg.MaxBody)
	if p != nil {
		return p
	}
	ev, issues := parseEvent(doc, -1)
	if len(issues) > 0 {
		return problem(http.StatusBadRequest, "malformed", "Malformed event", "the event is missing fields or has fields of the wrong kind", issues...)
	}
	mem := newRecordMem(r, 1)
	rec := mem.record(0)
	res, p := s.prepare(r.Context(), ev, -1, rec, mem)
	if p != nil {
		return p
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	pr := s.prod.ProduceSync(ctx, rec)
	s.latency.WithLabelValues("events").Observe(time.Since(start).Seconds())
	if err := pr.FirstErr(); err != nil {
		return unavailable("Kafka did not acknowledge the event: " + err.Error())
	}
	res.Partition, res.Offset = pr[0].Record.Partition, pr[0].Record.Offset
	s.events.WithLabelValues(ev.Type).Inc()
	writeJSON(w, http.StatusCreated, res)
	return nil
}

func (s *Service) postBatch(w http.ResponseWriter, r *http.Request) *Problem {
	doc, p := readBody(w, r, s.cfg.MaxBatchBody)
	if p != nil {
		return p
	}
	events, ok := batchEvents(doc)
	if !ok {
		return problem(http.StatusBadRequest, "malformed", "Malformed batch", `the body must be {"events": [ ... ]}`,
			FieldIssue{Field: "events", Message: "is required and must be an array of events"})
	}
	if len(events) == 0 {
		return problem(http.StatusBadRequest, "malformed", "Malformed batch", "the batch is empty",
			FieldIssue{Field: "events", Message: "must hold at least one event"})
	}
	if len(events) > s.cfg.MaxBatch {
		return problem(http.StatusRequestEntityTooLarge, "too-large", "Batch too large",
			fmt.Sprintf("a batch holds at most %d events", s.cfg.MaxBatch))
	}
	evs := make([]Event, len(events))
	var issues []FieldIssue
	for i, v := range events {
		var is []FieldIssue
		evs[i], is = parseEvent(v, i)
		issues = append(issues, is...)
	}
	if len(issues) > 0 {
		return problem(http.StatusBadRequest, "malformed", "Malformed batch", "events are missing fields or have fields of the wrong kind", issues...)
	}
	mem := newRecordMem(r, len(evs))
	recs := make([]*kgo.Record, len(evs))
	results := make([]Result, len(evs))
	var worst *Problem
	for i, ev := range evs {
		rec := mem.record(i)
		res, p := s.prepare(r.Context(), ev, i, rec, mem)
		if p != nil {
			if p.Status != http.StatusUnprocessableEntity {
				return p // unavailable, not implemented: the batch cannot go on
			}
			if worst == nil {
				worst = p
			} else {
				worst.Errors = append(worst.Errors, p.Errors...)
			}
			continue
		}
		recs[i], results[i] = rec, res
	}
	if worst != nil {
		worst.Detail = "one or more events do not fit their schema; nothing was written"
		return worst
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ProduceTimeout)
	defer cancel()
	start := time.Now()
	err := s.prod.Transact(ctx, recs)
	s.latency.WithLabelValues("events:batch").Observe(time.Since(start).Seconds())
	if err != nil {
		return unavailable("the batch transaction did not commit; nothing was written: " + err.Error())
	}
	for i, rec := range recs {
		results[i].Partition, results[i].Offset = rec.Partition, rec.Offset
		s.events.WithLabelValues(evs[i].Type).Inc()
	}
	writeJSON(w, http.StatusCreated, map[string]any{"events": results})
	return nil
}

// prepare validates and encodes one event into rec (from mem, which holds its bytes).
// Problems name the fields of the at-th event of a batch as fieldPrefix(at) says.
func (s *Service) prepare(ctx context.Context, ev Event, at int, rec *kgo.Record, mem *recordMem) (Result, *Problem) {
	if ev.ExpectedVersion != nil {
		return Result{}, problem(http.StatusNotImplemented, "not-implemented", "expectedVersion is not supported yet",
			"optimistic concurrency needs the event store, which this version of ingest does not have; retry without expectedVersion",
			FieldIssue{Field: fieldPrefix(at) + "expectedVersion", Message: "not supported yet"})
	}
	topic, sch, p := s.lookup(ctx, ev, at, &mem.last)
	if p != nil {
		return Result{}, p
	}
	val, err := codec.FromJSONValue(sch, ev.Data)
	if err != nil {
		fes := codec.FieldErrors{{Field: "", Message: err.Error()}}
		var fe *codec.FieldErrors
		if errors.As(err, &fe) {
			fes = *fe
		}
		issues := make([]FieldIssue, len(fes))
		for i, fe := range fes {
			f := fieldPrefix(at) + "data"
			if fe.Field != "" {
				f += "." + fe.Field
			}
			issues[i] = FieldIssue{Field: f, Message: fe.Message}
		}
		return Result{}, problem(http.StatusUnprocessableEntity, "invalid-data", "Data does not fit the schema",
			fmt.Sprintf("data does not fit %s version %d", sch.Subject, sch.Version), issues...)
	}
	value, err := mem.encode(s.codec, sch, val)
	if err != nil {
		return Result{}, problem(http.StatusUnprocessableEntity, "invalid-data", "Data does not fit the schema", err.Error(),
			FieldIssue{Field: fieldPrefix(at) + "data", Message: err.Error()})
	}
	id := ev.ID
	if id == "" {
		id = mem.newID()
	}
	rec.Topic, rec.Value = topic, value
	s.headers(rec, ev, id, mem)
	return Result{ID: id, Type: ev.Type, AggregateID: ev.AggregateID, Topic: topic, SchemaID: sch.ID}, nil
}

// lookup is the raw topic and schema of one event type and schema version.
type lookup struct {
	typ     string
	version int
	topic   string
	sch     *codec.Schema
}

// lookup finds the raw topic and schema of ev, reusing last when the previous event of the
// request had the same type and schema version (so a batch is written with one schema),
// and keeping what it found in last.
func (s *Service) lookup(ctx context.Context, ev Event, at int, last *lookup) (string, *codec.Schema, *Problem) {
	if last.sch != nil && last.typ == ev.Type && last.version == ev.SchemaVersion {
		return last.topic, last.sch, nil
	}
	unknownType := func(msg string) *Problem {
		return problem(http.StatusUnprocessableEntity, "unknown-type", "Unknown event type",
			fmt.Sprintf("%q is not a registered event type", ev.Type), FieldIssue{Field: fieldPrefix(at) + "type", Message: msg})
	}
	topic, err := s.router.RawTopic(ev.Type)
	if err != nil {
		return "", nil, unknownType(err.Error())
	}
	subject, err := s.router.Subject(ev.Type)
	if err != nil {
		return "", nil, unknownType(err.Error())
	}
	var sch *codec.Schema
	if ev.SchemaVersion > 0 {
		sch, err = s.codec.Version(ctx, subject, ev.SchemaVersion)
	} else {
		sch, err = s.codec.Latest(ctx, subject)
	}
	switch {
	case errors.Is(err, codec.ErrRegistryUnavailable):
		return "", nil, unavailable("the schema registry is unavailable: " + err.Error())
	case err != nil && ev.SchemaVersion > 0:
		return "", nil, problem(http.StatusUnprocessableEntity, "unknown-schema-version", "Unknown schema version",
			fmt.Sprintf("%s has no schema version %d", ev.Type, ev.SchemaVersion),
			FieldIssue{Field: fieldPrefix(at) + "schemaVersion", Message: err.Error()})
	case err != nil:
		return "", nil, unknownType("no schema is registered under " + subject)
	}
	*last = lookup{typ: ev.Type, version: ev.SchemaVersion, topic: topic, sch: sch}
	return topic, sch, nil
}

// headers sets the record's key and the CloudEvents Kafka binding (binary mode) headers.
func (s *Service) headers(rec *kgo.Record, ev Event, id string, mem *recordMem) {
	mem.reserve(len("1.0"+"application/avro"+time.RFC3339Nano) + len(s.cfg.Source) + len(id) + len(ev.Type) + len(ev.AggregateID) +
		len(ev.Metadata.CorrelationID) + len(ev.Metadata.CausationID) + len(ev.Metadata.UserID) + traceparentLen)
	subject := mem.copy(ev.AggregateID)
	rec.Key = subject
	idBytes := mem.copy(id)
	typ := mem.copy(ev.Type)
	h := append(rec.Headers,
		kgo.RecordHeader{Key: "ce_specversion", Value: mem.copy("1.0")},
		kgo.RecordHeader{Key: "ce_id", Value: idBytes},
		kgo.RecordHeader{Key: "ce_source", Value: mem.copy(s.cfg.Source)},
		kgo.RecordHeader{Key: "ce_type", Value: typ},
		kgo.RecordHeader{Key: "ce_time", Value: mem.timestamp(s.now())},
		kgo.RecordHeader{Key: "ce_subject", Value: subject},
		kgo.RecordHeader{Key: "content-type", Value: mem.copy("application/avro")},
	)
	if agg, _, ok := strings.Cut(ev.Type, ":"); ok {
		h = append(h, kgo.RecordHeader{Key: "ce_aggregatetype", Value: typ[:len(agg):len(agg)]})
	}
	corr := idBytes
	if ev.Metadata.CorrelationID != "" {
		corr = mem.copy(ev.Metadata.CorrelationID)
	}
	h = append(h, kgo.RecordHeader{Key: "ce_correlationid", Value: corr})
	if ev.Metadata.CausationID != "" {
		h = append(h, kgo.RecordHeader{Key: "ce_causationid", Value: mem.copy(ev.Metadata.CausationID)})
	}
	if ev.Metadata.UserID != "" {
		h = append(h, kgo.RecordHeader{Key: "ce_userid", Value: mem.copy(ev.Metadata.UserID)})
	}
	rec.Headers = append(h, kgo.RecordHeader{Key: "traceparent", Value: mem.traceparent()})
}
