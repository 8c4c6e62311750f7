package projector

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Applied is one event a projection applied, with its read model after it
// (nil when the projection has none for the event).
type Applied struct {
	Event *bus.Event
	Model any
}

// StreamSource is what a Stream reads besides the events published to it:
// the projection's stored positions, its events from Kafka for a client
// that resumes, and an aggregate's current read model.
type StreamSource interface {
	// Positions returns the projection's stored positions: for each
	// partition, the offset after the last event applied.
	Positions(ctx context.Context) (map[store.TopicPartition]int64, error)
	// Replay calls fn with every event at or above from and below to, per
	// partition in offset order; partitions not in to are not read.
	Replay(ctx context.Context, from, to map[store.TopicPartition]int64, fn func(*bus.Event) error) error
	// Load returns the read model of an aggregate as stored now and the
	// aggregate version it holds.
	Load(ctx context.Context, aggregateID string) (model any, version int64, found bool, err error)
}

// StreamConfig tunes a Stream; zero fields take the defaults.
type StreamConfig struct {
	// Buffer is how many messages may wait for one client (default 1024);
	// a client further behind gets a final "overflow" message and is
	// closed, and nobody else waits for it.
	Buffer int
	// Heartbeat is the interval of ": ping" comments on an idle stream
	// (default 15s).
	Heartbeat time.Duration
	// WriteTimeout bounds one write to a client (default 10s); a client that
	// does not read for that long is closed.
	WriteTimeout time.Duration
	// Retry is the reconnection delay the stream asks EventSource clients to
	// use (default 1s).
	Retry time.Duration
	// FlushEvery is the least time between two writes to one client
	// (default 50ms): events applied meanwhile go out together, which costs
	// each message at most that much latency and saves a write per batch
	// per client when there are many.
	FlushEvery time.Duration
	// Replays bounds how many resuming clients read Kafka at once (default
	// 8); the others wait their turn (after a restart, every board
	// reconnects at once).
	Replays int
}

// Stream serves GET /v1/stream: a projection's applied events, each with its
// read model after it, as server-sent events.
//
// Delivery: a message's id encodes, per partition, the Kafka offset up to
// which the client has been sent every event (or filtered it out). A client
// that reconnects with that id in Last-Event-ID is first sent, from Kafka,
// every event between it and the projection's stored positions, then the
// live events, without a gap or a repeat. Live events come from Publish, so
// with several projector instances a stream carries live only the
// partitions its own instance applies.
//
// Publish never blocks on a client: each client has a bounded queue of
// messages shared with every other client, drained by its own goroutine.
// Stream is safe for concurrent use.
type Stream struct {
	name string
	src  StreamSource
	cfg  StreamConfig

	mu      sync.Mutex
	pos     position // after every event published so far
	clients map[*streamClient]struct{}

	closed   context.Context // done once Close is called
	closeAll context.CancelFunc
	replays  chan struct{} // one token per replay reading Kafka

	// frames holds the buffers a client's queued messages are gathered in
	// for one write; clients share them, so an idle client holds none.
	frames sync.Pool

	connected prometheus.Gauge
	overflows prometheus.Counter
}

// NewStream returns the stream of the projection named name, whose stored
// positions are initial when it starts publishing. reg, when set, receives
// pyrite_stream_clients and pyrite_stream_overflows_total.
func NewStream(name string, initial map[store.TopicPartition]int64, src StreamSource, cfg StreamConfig, reg prometheus.Registerer) *Stream {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 1024
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Replays <= 0 {
		cfg.Replays = 8
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 50 * time.Millisecond
	}
	s := &Stream{
		name: name, src: src, cfg: cfg,
		pos: position(initial).merged(nil), clients: map[*streamClient]struct{}{},
		replays: make(chan struct{}, cfg.Replays),
		frames:  sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }},
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pyrite_stream_clients", Help: "Clients connected to GET /v1/stream.",
		}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pyrite_stream_overflows_total", Help: "Stream clients closed because they fell a whole buffer behind.",
		}),
	}
	s.closed, s.closeAll = context.WithCancel(context.Background())
	if reg != nil {
		reg.MustRegister(s.connected, s.overflows)
	}
	return s
}

// Close ends every client's stream (on shutdown, so that they do not hold
// the HTTP drain up) and refuses new ones.
func (s *Stream) Close() { s.closeAll() }

// streamMsg is one applied event, encoded once for every client.
type streamMsg struct {
	tp        store.TopicPartition
	offset    int64
	eventType string
	aggregate string
	pos       position // the stream's position after this event; not modified
	frame     []byte   // "id: <pos>\nevent: applied\ndata: ...\n\n"
	idLen     int      // frame[:idLen] is the id line
}

func newStreamMsg(tp store.TopicPartition, offset int64, a Applied, pos position, body []byte) *streamMsg {
	id := "id: " + pos.String() + "\n"
	frame := make([]byte, 0, len(id)+len(body))
	frame = append(append(frame, id...), body...)
	return &streamMsg{tp: tp, offset: offset, eventType: a.Event.Type, aggregate: a.Event.AggregateID, pos: pos, frame: frame, idLen: len(id)}
}

// Publish hands events applied (committed) by the projection to every
// client. Events of one partition must come in offset order.
func (s *Stream) Publish(evs []Applied) {
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	idle := len(s.clients) == 0
	s.mu.Unlock()
	var bodies [][]byte
	if !idle {
		bodies = make([][]byte, len(evs))
		for i, a := range evs {
			bodies[i] = appliedBody(s.name, a.Event, a.Model)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A client that subscribed since the check above reads the stored
	// positions after these events committed: it needs none of them.
	if len(s.clients) == 0 || bodies == nil {
		for _, a := range evs {
			if o := a.Event.Origin; o != nil {
				s.pos.advance(store.TopicPartition{Topic: o.Topic, Partition: o.Partition}, o.Offset)
			}
		}
		return
	}
	msgs := make([]*streamMsg, 0, len(evs))
	for i, a := range evs {
		o := a.Event.Origin
		if o == nil {
			continue // not from Kafka: no position to resume from
		}
		tp := store.TopicPartition{Topic: o.Topic, Partition: o.Partition}
		if !s.pos.advance(tp, o.Offset) {
			continue // re-applied after a rebalance: already streamed
		}
		msgs = append(msgs, newStreamMsg(tp, o.Offset, a, s.pos.merged(nil), bodies[i]))
	}
	if len(msgs) == 0 {
		return
	}
	for c := range s.clients {
		if !c.push(msgs, s.cfg.Buffer) {
			delete(s.clients, c)
			s.connected.Dec()
			s.overflows.Inc()
		}
	}
}

// streamClient is one connected client's queue.
type streamClient struct {
	mu       sync.Mutex
	queue    []*streamMsg
	overflow bool
	wake     chan struct{} // one slot: something was queued
}

// push queues msgs and reports false when the client is now a whole
// buffer behind (its queue is dropped; it is sent "overflow" and closed).
func (c *streamClient) push(msgs []*streamMsg, limit int) bool {
	c.mu.Lock()
	ok := len(c.queue)+len(msgs) <= limit
	if ok {
		c.queue = append(c.queue, msgs...)
	} else {
		c.overflow, c.queue = true, nil
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return ok
}

// take returns what is queued and whether the client overflowed.
func (c *streamClient) take(buf []*streamMsg) ([]*streamMsg, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	buf = append(buf[:0], c.queue...)
	clear(c.queue)
	c.queue = c.queue[:0]
	return buf, c.overflow
}

func (s *Stream) subscribe() *streamClient {
	c := &streamClient{wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.clients[c] = struct{}{}
	s.mu.Unlock()
	s.connected.Inc()
	return c
}

func (s *Stream) unsubscribe(c *streamClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c]; ok {
		delete(s.clients, c)
		s.connected.Dec()
	}
}

// streamFilter is a client's ?types= and ?aggregate=.
type streamFilter struct {
	types      []string
	aggregates map[string]bool
	verdicts   map[string]bool // event type -> matches types
}

func (f *streamFilter) match(eventType, aggregate string) bool {
	if len(f.aggregates) > 0 && !f.aggregates[aggregate] {
		return false
	}
	if len(f.types) == 0 {
		return true
	}
	v, ok := f.verdicts[eventType]
	if !ok {
		for _, pat := range f.types {
			if v = bus.Match(pat, eventType); v {
				break
			}
		}
		f.verdicts[eventType] = v
	}
	return v
}

// parseFilter reads ?types= (bus patterns, repeated or comma-separated) and
// ?aggregate= (aggregate IDs, repeated).
func parseFilter(q map[string][]string) (*streamFilter, error) {
	f := &streamFilter{verdicts: map[string]bool{}}
	for _, v := range q["types"] {
		for pat := range strings.SplitSeq(v, ",") {
			if err := bus.CheckPattern(pat); err != nil {
				return nil, err
			}
			f.types = append(f.types, pat)
		}
	}
	for _, id := range q["aggregate"] {
		if id == "" {
			continue
		}
		if f.aggregates == nil {
			f.aggregates = map[string]bool{}
		}
		f.aggregates[id] = true
	}
	return f, nil
}

// ServeHTTP streams to one client until it goes, falls a buffer behind,
// or the stream is closed.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		WriteProblem(w, http.StatusBadRequest, "Bad types", err.Error(), "types")
		return
	}
	var from position
	if last := cmp.Or(r.Header.Get("Last-Event-ID"), q.Get("lastEventId")); last != "" {
		if from, err = parsePosition(last); err != nil {
			WriteProblem(w, http.StatusBadRequest, "Bad Last-Event-ID", err.Error(), "Last-Event-ID")
			return
		}
	}
	select {
	case <-s.closed.Done():
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, http.StatusServiceUnavailable, "Shutting down", "the stream is closed", "")
		return
	default:
	}
	// Subscribe before reading the stored positions: an event committed
	// after that read is published after subscribing, so it is queued; one
	// committed before it is below the positions, so it is replayed or was
	// seen.
	c := s.subscribe()
	defer s.unsubscribe(c)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.closed, cancel)() // no goroutine per client
	stored, err := s.src.Positions(ctx)
	if err != nil {
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, http.StatusServiceUnavailable, "Positions unavailable", err.Error(), "")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	cw := &clientWriter{w: w, rc: http.NewResponseController(w), timeout: s.cfg.WriteTimeout}
	cw.deadline()
	cw.printf("retry: %d\n\n", s.cfg.Retry.Milliseconds())

	sent := position(stored).merged(nil)
	replayed := 0
	if from != nil {
		sent = from.merged(nil)
		replayed, err = s.replay(ctx, cw, f, sent, stored)
		if err != nil {
			cw.event("", "error", map[string]string{"detail": "catching up: " + err.Error()})
			cw.flush()
			return
		}
	}
	cw.event(sent.String(), "ready", map[string]any{"resumed": from != nil, "replayed": replayed})
	if cw.flush() != nil {
		return
	}
	s.live(ctx, c, cw, f, sent)
}

// replay sends the events between from (advanced in place) and to, with the
// read model after each when the stored one is that version's.
func (s *Stream) replay(ctx context.Context, cw *clientWriter, f *streamFilter, from, to position) (int, error) {
	type loaded struct {
		model   any
		version int64
	}
	select {
	case s.replays <- struct{}{}:
		defer func() { <-s.replays }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	models := map[string]loaded{}
	n := 0
	err := s.src.Replay(ctx, from.merged(nil), to, func(ev *bus.Event) error {
		o := ev.Origin
		if !from.advance(store.TopicPartition{Topic: o.Topic, Partition: o.Partition}, o.Offset) {
			return nil
		}
		if !f.match(ev.Type, ev.AggregateID) {
			return nil
		}
		m, ok := models[ev.AggregateID]
		if !ok {
			model, version, found, err := s.src.Load(ctx, ev.AggregateID)
			if err != nil {
				return err
			}
			if found {
				m = loaded{model, version}
			}
			models[ev.AggregateID] = m
		}
		var model any
		if m.model != nil && m.version == ev.AggregateVersion {
			model = m.model // otherwise the aggregate moved on; a later message carries it
		}
		cw.deadline()
		cw.raw("id: " + from.String() + "\n")
		cw.bytes(appliedBody(s.name, ev, model))
		n++
		return cw.err
	})
	if err == nil {
		err = cw.flush()
	}
	return n, err
}

// live sends queued messages until the client goes or overflows.
func (s *Stream) live(ctx context.Context, c *streamClient, cw *clientWriter, f *streamFilter, sent position) {
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	gather := time.NewTimer(0)
	defer gather.Stop()
	var buf []*streamMsg
	var flushed time.Time
	// synced is set once a message's stream position covered sent: from then on
	// the stream's positions only grow past what this client was sent.
	synced := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			cw.deadline()
			cw.raw(": ping\n\n")
			if cw.flush() != nil {
				return
			}
			continue
		case <-c.wake:
		}
		if wait := s.cfg.FlushEvery - time.Since(flushed); wait > 0 {
			gather.Reset(wait) // let more of what is being applied join this write
			select {
			case <-ctx.Done():
				return
			case <-gather.C:
			}
		}
		var overflow bool
		buf, overflow = c.take(buf)
		cw.deadline()
		// One write for everything queued: fewer chunks and system calls.
		out := s.frames.Get().(*[]byte)
		for _, m := range buf {
			if synced {
				// The stream's positions cover sent, and everything queued from now
				// on is past them: no dedupe, and the shared frame's id is right.
				if f.match(m.eventType, m.aggregate) {
					*out = append(*out, m.frame...)
				}
				continue
			}
			if !sent.advance(m.tp, m.offset) || !f.match(m.eventType, m.aggregate) {
				continue
			}
			if sent.ahead(m.pos) { // caught up past the live stream on some partition
				*out = append(*out, "id: "+sent.merged(m.pos).String()+"\n"...)
				*out = append(*out, m.frame[m.idLen:]...)
				continue
			}
			*out = append(*out, m.frame...)
			synced = true
		}
		clear(buf)
		wrote := len(*out) > 0
		cw.bytes(*out)
		if cap(*out) <= maxPooledFrame {
			*out = (*out)[:0]
			s.frames.Put(out)
		}
		if overflow {
			cw.event("", "overflow", map[string]any{
				"detail": fmt.Sprintf("more than %d messages waited for this client; reconnect with Last-Event-ID to resume", s.cfg.Buffer),
			})
			cw.flush()
			return
		}
		if wrote {
			if cw.flush() != nil {
				return
			}
			flushed = time.Now()
		}
	}
}

// maxPooledFrame bounds the buffers kept in Stream.frames.
const maxPooledFrame = 1 << 20

// clientWriter writes SSE text to one client, keeping the first error.
type clientWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	err     error
}

// deadline gives the writes up to the next flush the write timeout.
func (cw *clientWriter) deadline() {
	_ = cw.rc.SetWriteDeadline(time.Now().Add(cw.timeout))
}

func (cw *clientWriter) raw(s string) {
	if cw.err == nil {
		_, cw.err = io.WriteString(cw.w, s)
	}
}

func (cw *clientWriter) bytes(b []byte) {
	if cw.err == nil {
		_, cw.err = cw.w.Write(b)
	}
}

func (cw *clientWriter) printf(format string, args ...any) { cw.raw(fmt.Sprintf(format, args...)) }

// event writes one message of an event type with a JSON body; id "" writes none.
func (cw *clientWriter) event(id, name string, v any) {
	b, _ := json.Marshal(v)
	if id != "" {
		cw.raw("id: " + id + "\n")
	}
	cw.raw("event: " + name + "\ndata: " + string(b) + "\n\n")
}

func (cw *clientWriter) flush() error {
	if cw.err == nil {
		cw.err = cw.rc.Flush()
	}
	return cw.err
}

// appliedPayload is the data of an "applied" message.
type appliedPayload struct {
	Projection string          `json:"projection"`
	Event      appliedEvent    `json:"event"`
	ReadModel  any             `json:"readModel,omitempty"`
	Position   appliedPosition `json:"position"`
}

type appliedEvent struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	AggregateID   string         `json:"aggregateId"`
	AggregateType string         `json:"aggregateType,omitempty"`
	Version       int64          `json:"version"`
	Time          time.Time      `json:"time"`
	CorrelationID string         `json:"correlationId,omitempty"`
	CausationID   string         `json:"causationId,omitempty"`
	UserID        string         `json:"userId,omitempty"`
	SchemaVersion int            `json:"schemaVersion,omitempty"`
	Data          map[string]any `json:"data"`
}

type appliedPosition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// appliedBody is the "applied" message of ev (without its id line).
func appliedBody(projection string, ev *bus.Event, model any) []byte {
	p := appliedPayload{
		Projection: projection,
		Event: appliedEvent{
			ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, AggregateType: ev.AggregateType,
			Version: ev.AggregateVersion, Time: ev.Time, CorrelationID: ev.CorrelationID,
			CausationID: ev.CausationID, UserID: ev.UserID, SchemaVersion: ev.SchemaVersion, Data: ev.Data,
		},
		ReadModel: model,
	}
	if o := ev.Origin; o != nil {
		p.Position = appliedPosition{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset}
	}
	b, err := json.Marshal(p)
	if err != nil {
		// Data a JSON encoder refuses (a NaN double): send the event without it.
		p.Event.Data = map[string]any{"error": "data not representable as JSON: " + err.Error()}
		b, _ = json.Marshal(p)
	}
	out := make([]byte, 0, len(b)+24)
	out = append(out, "event: applied\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}
