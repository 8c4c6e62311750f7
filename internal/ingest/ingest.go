// Package ingest is the HTTP front door of the write path: it turns JSON
// events into Confluent-framed Avro records on pyrite.<aggregate>.raw, and,
// with an event store (internal/eventstore, as Run wires it), serves the
// streams back.
//
// Guarantees: a request is answered 201 only once the broker acknowledged
// every record. A rejected request writes nothing: events are validated and
// encoded before anything is produced, and a batch is one Kafka transaction,
// committed only when all of it was written. Records are keyed by aggregate
// ID and partitioned with murmur2, so per-aggregate order matches the order
// of acknowledged requests.
//
// With the event store every written event carries its aggregate version
// (ce_aggregateversion, contiguous from 1 per aggregate); expectedVersion is
// honoured (409 naming the current version, nothing written); an event id
// seen within the dedupe window answers the first write's result again
// (header Idempotent-Replayed: true) and writes nothing; a request for a
// partition another instance owns is forwarded to it, once; and a batch must
// keep to one partition (one aggregate always does), since a transaction is
// one partition's. Without it (New), expectedVersion answers 501.
// The Service is safe for concurrent use.
package ingest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Defaults.
const (
	DefaultMaxBody      = 1 << 20 // 1 MiB for a single event
	DefaultMaxBatchBody = 8 << 20 // 8 MiB for a batch
	DefaultMaxBatch     = 1000
	DefaultSource       = "/pyrite/ingest"
)

// Router maps an event type to its raw topic and registry subject, and an aggregate name to
// its declaration. *topology.Topology satisfies it.
type Router interface {
	RawTopic(eventType string) (string, error)
	Subject(eventType string) (string, error)
	Aggregate(name string) (topology.Aggregate, error)
	// Aggregates are the declared aggregates, in declaration order.
	Aggregates() []topology.Aggregate
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
	// OwnerWait is how long a request waits for its partition to settle (the store joining
	// its group, a rebalance moving the partition, its new owner rebuilding it) before it is
	// answered 503 with Retry-After (0: DefaultOwnerWait; negative: no wait). With the
	// event store only.
	OwnerWait time.Duration
	// Folds are the domain modules' folds by aggregate name: GET /v1/streams/{id}/state
	// answers 404 no-fold for an aggregate without one. With the event store only.
	Folds map[string]eventstore.Fold
	// Commands are the domain modules' commands by command type, run by POST /v1/commands.
	// With the event store only.
	Commands map[string]eventstore.Command
}

// DefaultOwnerWait is Config.OwnerWait's default.
const DefaultOwnerWait = 5 * time.Second

// Service serves the ingest API.
type Service struct {
	codec  *codec.Codec
	router Router
	prod   Producer          // events outside the store's topics (system, integration), or all without a store
	store  *eventstore.Store // nil: the plain write path only
	cfg    Config
	now    func() time.Time

	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	events   *prometheus.CounterVec
}

// New returns a Service on the plain write path: records go straight to prod, without
// aggregate versions; expectedVersion answers 501 and there are no stream reads. reg
// receives its metrics.
func New(c *codec.Codec, router Router, prod Producer, cfg Config, reg prometheus.Registerer) *Service {
	return newService(c, router, prod, nil, cfg, reg)
}

// NewWithStore returns a Service that appends aggregate events (those on the store's topics)
// through the event store st and serves the stream reads; other events (system,
// integration) go to prod as on the plain path. reg receives its metrics.
func NewWithStore(c *codec.Codec, router Router, prod Producer, st *eventstore.Store, cfg Config, reg prometheus.Registerer) *Service {
	return newService(c, router, prod, st, cfg, reg)
}

func newService(c *codec.Codec, router Router, prod Producer, st *eventstore.Store, cfg Config, reg prometheus.Registerer) *Service {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBatchBody <= 0 {
		cfg.MaxBatchBody = DefaultMaxBatchBody
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	cfg.Source = cmp.Or(cfg.Source, DefaultSource)
	if cfg.ProduceTimeout <= 0 {
		cfg.ProduceTimeout = 15 * time.Second
	}
	cfg.OwnerWait = cmp.Or(cfg.OwnerWait, DefaultOwnerWait)
	s := &Service{
		codec: c, router: router, prod: prod, store: st, cfg: cfg, now: time.Now,
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
	if s.store != nil {
		mux.Handle("POST "+eventstore.AppendPath, s.route("eventstore/append", s.postAppend))
		mux.Handle("POST "+CommandPath, s.route("commands", s.postCommand))
		mux.Handle("GET /v1/streams/{aggregateId}", s.route("streams", s.getStream))
		mux.Handle("GET /v1/streams/{aggregateId}/version", s.route("streams/version", s.getVersion))
		mux.Handle("GET /v1/streams/{aggregateId}/state", s.route("streams/state", s.getState))
		mux.Handle("GET /v1/eventstore", s.route("eventstore", func(w http.ResponseWriter, _ *http.Request) *Problem {
			writeJSON(w, http.StatusOK, s.store.Status())
			return nil
		}))
	}
	return mux
}

// Ready reports whether Kafka answers and, with a store, whether it joined its group and
// caught up every partition it owns.
func (s *Service) Ready(ctx context.Context) error {
	if s.store != nil {
		if err := s.store.Ready(ctx); err != nil {
			return err
		}
	}
	return s.prod.Ping(ctx)
}

// route serves h, answering the problem it returns, and counts the answer by code.
func (s *Service) route(name string, h func(http.ResponseWriter, *http.Request) *Problem) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		if p := h(sw, r); p != nil {
			writeProblem(sw, p)
		}
		s.requests.WithLabelValues(name, strconv.Itoa(sw.code)).Inc()
	})
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
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
	// Version is the event's aggregate version (the ce_aggregateversion header), with the
	// event store; absent on the plain write path.
	Version int64 `json:"version,omitempty"`
}

func (s *Service) postEvent(w http.ResponseWriter, r *http.Request) *Problem {
	body := newBody()
	defer body.release()
	raw, p := readBody(w, r, s.cfg.MaxBody, body.Buffer)
	if p != nil {
		return p
	}
	ev, p := singleEvent(raw)
	if p != nil {
		return p
	}
	one := []Event{ev}
	if p := authorize(r, one); p != nil {
		return p
	}
	ev = one[0]
	stored := false
	var route eventstore.Route
	if s.store != nil {
		var forwarded bool
		if route, stored, forwarded, p = s.routeEvents(w, r, raw, []Event{ev}); forwarded || p != nil {
			body.forwarded = true // or its forward failed: either way the client may hold raw
			return p
		}
	}
	mem := newRecordMem(r, 1)
	if stored {
		mem.ids = s.store.IDs(route)
	}
	rec := mem.record(0)
	res, p := s.prepare(r.Context(), &ev, -1, rec, mem, stored)
	if p != nil {
		mem.release()
		return p
	}
	if stored {
		results, done, p := s.appendEvents(w, r.Context(), "events", []Event{ev}, []*kgo.Record{rec}, []Result{res})
		if p != nil {
			if done {
				mem.release()
			}
			return p
		}
		writeResults(w, results[:1], false)
		mem.release()
		return nil
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
	s.countEvents([]Event{ev})
	writeResults(w, []Result{res}, false)
	mem.release()
	return nil
}

func (s *Service) postBatch(w http.ResponseWriter, r *http.Request) *Problem {
	body := newBody()
	defer body.release()
	raw, p := readBody(w, r, s.cfg.MaxBatchBody, body.Buffer)
	if p != nil {
		return p
	}
	evsBuf := eventsBuffer()
	defer releaseEvents(evsBuf)
	evs, p := batchOfEvents(raw, s.cfg.MaxBatch, *evsBuf)
	*evsBuf = evs
	if p != nil {
		return p
	}
	if p := authorize(r, evs); p != nil {
		return p
	}
	stored := false
	var route eventstore.Route
	if s.store != nil {
		var forwarded bool
		if route, stored, forwarded, p = s.routeEvents(w, r, raw, evs); forwarded || p != nil {
			body.forwarded = true // or its forward failed: either way the client may hold raw
			return p
		}
	}
	mem := newRecordMem(r, len(evs))
	if stored {
		mem.ids = s.store.IDs(route)
	}
	recs, results := mem.ptrs, mem.results
	var worst *Problem
	for i := range evs {
		rec := mem.record(i)
		res, p := s.prepare(r.Context(), &evs[i], i, rec, mem, stored)
		if p != nil {
			if p.Status != http.StatusUnprocessableEntity {
				mem.release()
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
		mem.release()
		worst.Detail = "one or more events do not fit their schema; nothing was written"
		return worst
	}
	if stored {
		results, done, p := s.appendEvents(w, r.Context(), "events:batch", evs, recs, results)
		if p != nil {
			if done {
				mem.release()
			}
			return p
		}
		writeResults(w, results, true)
		mem.release()
		return nil
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
	}
	s.countEvents(evs)
	writeResults(w, results, true)
	mem.release()
	return nil
}

// prepare validates and encodes one event into rec (from mem, which holds its bytes); stored
// says it goes through the event store. Problems name the fields of the at-th event of a
// batch as fieldPrefix(at) says.
func (s *Service) prepare(ctx context.Context, ev *Event, at int, rec *kgo.Record, mem *recordMem, stored bool) (Result, *Problem) {
	switch {
	case ev.ExpectedVersion == nil || stored:
	case s.store == nil:
		return Result{}, problem(http.StatusNotImplemented, "not-implemented", "expectedVersion is not supported here",
			"optimistic concurrency needs the event store, which this ingest runs without; retry without expectedVersion",
			FieldIssue{Field: fieldPrefix(at) + "expectedVersion", Message: "not supported without the event store"})
	default:
		if _, err := s.router.RawTopic(ev.Type); err == nil { // an unknown type is reported below
			return Result{}, problem(http.StatusUnprocessableEntity, "no-stream", "Not an aggregate stream",
				fmt.Sprintf("%s events are not an aggregate's stream: they have no versions to expect", ev.Type),
				FieldIssue{Field: fieldPrefix(at) + "expectedVersion", Message: "only applies to aggregate events"})
		}
	}
	topic, sch, p := s.lookup(ctx, ev, at, &mem.last)
	if p != nil {
		return Result{}, p
	}
	value, err := mem.encode(s.codec, sch, ev)
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
	id := ev.ID
	if id == "" {
		id = mem.ids.New(mem.common(s.cfg.Source, s.now).at)
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
func (s *Service) lookup(ctx context.Context, ev *Event, at int, last *lookup) (string, *codec.Schema, *Problem) {
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

// headers sets the record's key, its timestamp (ce_time's instant) and the CloudEvents Kafka
// binding (binary mode) headers. Values the records of a request have in common are one copy
// in mem, shared.
func (s *Service) headers(rec *kgo.Record, ev *Event, id string, mem *recordMem) {
	c := mem.common(s.cfg.Source, s.now)
	rec.Timestamp = c.at
	typ := mem.eventType(ev.Type)
	mem.reserve(len(id) + len(ev.AggregateID) + len(ev.Metadata.CorrelationID) + len(ev.Metadata.CausationID) +
		len(ev.Metadata.UserID) + len(ev.principal) + traceparentLen)
	subject := mem.copy(ev.AggregateID)
	rec.Key = subject
	idBytes := mem.copy(id)
	h := rec.Headers[:7]
	h[0] = kgo.RecordHeader{Key: "ce_specversion", Value: c.specVersion}
	h[1] = kgo.RecordHeader{Key: "ce_id", Value: idBytes}
	h[2] = kgo.RecordHeader{Key: "ce_source", Value: c.source}
	h[3] = kgo.RecordHeader{Key: "ce_type", Value: typ}
	h[4] = kgo.RecordHeader{Key: "ce_time", Value: c.time}
	h[5] = kgo.RecordHeader{Key: "ce_subject", Value: subject}
	h[6] = kgo.RecordHeader{Key: "content-type", Value: c.contentType}
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
	if ev.principal != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderPrincipal, Value: mem.copy(ev.principal)})
	}
	rec.Headers = append(h, kgo.RecordHeader{Key: "traceparent", Value: mem.traceparent()})
}

// countEvents adds the events written to the events-by-type counter, one label lookup per
// run of events of one type.
func (s *Service) countEvents(evs []Event) {
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Type == evs[i].Type {
			j++
		}
		// A clone: the type is a piece of the request's body, which a new label would keep.
		s.events.WithLabelValues(strings.Clone(evs[i].Type)).Add(float64(j - i))
		i = j
	}
}

// body is a buffer to read a request body into, handed to a later request when the request
// ends, unless the body was (or may have been) forwarded to another instance: an HTTP
// client may still read a request body after its round trip returned, so such a buffer is
// left to the garbage collector.
type body struct {
	*bytes.Buffer
	forwarded bool
}

func newBody() *body { return &body{Buffer: bodyPool.Get().(*bytes.Buffer)} }

// release hands b to a later request unless it was forwarded.
func (b *body) release() {
	if !b.forwarded && b.Cap() <= maxPooledBody {
		b.Reset()
		bodyPool.Put(b.Buffer)
	}
}

// eventsBuffer returns a slice to read a batch's events into; releaseEvents hands it to a
// later request. The events refer to a copy of the body (strings), never to its buffer, and
// nothing keeps the slice past the request, forwarded or not.
func eventsBuffer() *[]Event { return eventsPool.Get().(*[]Event) }

func releaseEvents(evs *[]Event) {
	clear(*evs)
	*evs = (*evs)[:0]
	eventsPool.Put(evs)
}

var eventsPool = sync.Pool{New: func() any { return new([]Event) }}

// maxPooledBody is the largest body buffer kept for reuse.
const maxPooledBody = 4 << 20

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
