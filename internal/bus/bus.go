package bus

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Handler handles one event. It returns nil when done, an error marked with Permanent when
// retrying cannot help, and any other error for a transient failure. It must not modify ev.
type Handler func(ctx context.Context, ev *Event) error

// Middleware sees each published event before the handlers, in the order the middlewares
// were added. It returns the event to pass on (ev itself, changed or not, or a new one), nil
// to cancel the event (Publish then returns ErrDropped), or an error to reject it (Publish
// returns the error; a Runner dead-letters the record if the error is permanent and retries
// it otherwise). A middleware may change ev in place: Publish hands the pipeline a copy of the
// caller's event (Data is shared and must not be changed).
type Middleware func(ctx context.Context, ev *Event) (*Event, error)

// Options tune one subscription; the zero value is a synchronous handler of priority 0
// without retries.
type Options struct {
	// Name identifies the handler in results, metrics, logs and the Runner's retry and
	// dead-letter headers, so it must be unique on the bus and stable across restarts. Empty
	// means "<pattern>#<n>", n counting the unnamed subscriptions of that pattern.
	Name string
	// Priority orders handlers: higher first; equal priorities run in subscription order.
	Priority int
	// Async handlers do not hold up Publish. On a plain Bus they run on their own goroutine
	// (see Wait); in a Runner with a queue topic they are enqueued durably and run from
	// there, so their failures are retried and dead-lettered like any other.
	Async bool
	// Retries is how many times a failing handler is called again in process (so it is
	// called at most Retries+1 times per delivery). Permanent errors are not retried.
	Retries int
	// Backoff is the wait before the first in-process retry, doubled before each next one
	// and capped by the bus's maximum (WithMaxBackoff). Default 100ms, as in the seed.
	Backoff time.Duration
}

// Result is what one handler did with one published event.
type Result struct {
	// Name and Pattern identify the subscription.
	Name    string
	Pattern string
	// Async is the subscription's Async option.
	Async bool
	// Deferred means the handler did not run within Publish: it runs on its own goroutine,
	// or from a Runner's queue topic. Attempts and Err are then zero.
	Deferred bool
	// Held means the handler did not run: a Runner holds the event's key for it behind a
	// dead letter (the event is dead-lettered for it, reason parked).
	Held bool
	// Attempts is how many times the handler was called.
	Attempts int
	// Err is the last call's error, nil on success.
	Err error
}

// Stats are a bus's counters since it was made, as in the seed's getMetrics.
type Stats struct {
	// Published counts events handed to Publish (and events a Runner delivered).
	Published uint64
	// Delivered counts handler calls that ended in success (after retries).
	Delivered uint64
	// Errors counts handler deliveries that failed after their retries, plus events a
	// middleware rejected.
	Errors uint64
	// Dropped counts events a middleware cancelled.
	Dropped uint64
	// ErrorRate is Errors / Published, 0 before the first event.
	ErrorRate float64
}

// LogEntry is one published event in the bus's debug log.
type LogEntry struct {
	// Time is when the event was published.
	Time time.Time
	// Event is a copy of the event as published, before middleware.
	Event *Event
}

// Defaults of a Bus.
const (
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	DefaultLogSize    = 1000
	maxNameLen        = 200
)

// Option configures a Bus.
type Option func(*Bus)

// WithName names the bus in metrics (label "bus"); default "default". Buses that share a
// Metrics should have different names.
func WithName(name string) Option { return func(b *Bus) { b.name = name } }

// WithMetrics counts the bus's events and deliveries in m.
func WithMetrics(m *Metrics) Option { return func(b *Bus) { b.metrics = m } }

// WithLogger sets where failures of async handlers and handler panics are logged; default
// nowhere.
func WithLogger(l *slog.Logger) Option {
	return func(b *Bus) {
		if l != nil {
			b.log = l
		}
	}
}

// WithMaxBackoff caps the in-process retry backoff; default DefaultMaxBackoff.
// Non-positive values keep the default.
func WithMaxBackoff(d time.Duration) Option {
	return func(b *Bus) {
		if d > 0 {
			b.maxBackoff = d
		}
	}
}

// WithLogSize sets how many recent events Log keeps; default DefaultLogSize, 0 keeps none.
func WithLogSize(n int) Option { return func(b *Bus) { b.ring = make([]LogEntry, max(n, 0)) } }

type subscription struct {
	name     string
	pat      pattern
	h        Handler
	priority int
	async    bool
	retries  int
	backoff  time.Duration
}

// Bus dispatches events to subscribed handlers. The zero value is not usable; call New.
type Bus struct {
	name       string
	log        *slog.Logger
	metrics    *Metrics
	maxBackoff time.Duration

	mu     sync.RWMutex
	subs   []*subscription // copy on write; priority descending, then subscription order
	byName map[string]*subscription
	mws    []Middleware // copy on write
	// opaque counts the middlewares of mws added by Use, which may change or replace an
	// event; those of UseFilter only pass it on or drop it.
	opaque  int
	unnamed map[string]int

	published, delivered, errs, dropped atomic.Uint64

	asyncMu   sync.Mutex
	asyncN    int
	asyncIdle chan struct{} // closed when asyncN drops to 0

	ringMu   sync.Mutex
	ring     []LogEntry
	ringNext int
	ringLen  int
}

// New returns an empty bus.
func New(opts ...Option) *Bus {
	b := &Bus{
		name:       "default",
		log:        slog.New(slog.DiscardHandler),
		maxBackoff: DefaultMaxBackoff,
		byName:     make(map[string]*subscription),
		unnamed:    make(map[string]int),
		ring:       make([]LogEntry, DefaultLogSize),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// On subscribes h to the events whose type matches pattern (see Match) and returns a
// function that unsubscribes it (safe to call more than once). It fails for an invalid
// pattern or name, a nil handler, or a name already subscribed.
func (b *Bus) On(pattern string, h Handler, opts Options) (unsubscribe func(), err error) {
	p, err := parsePattern(pattern)
	if err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("bus: nil handler for %q", pattern)
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	name := opts.Name
	if name == "" {
		b.unnamed[pattern]++
		name = pattern + "#" + strconv.Itoa(b.unnamed[pattern])
	}
	if err := validName(name); err != nil {
		return nil, err
	}
	if _, dup := b.byName[name]; dup {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateName, name)
	}
	s := &subscription{
		name: name, pat: p, h: h, priority: opts.Priority, async: opts.Async,
		retries: max(opts.Retries, 0), backoff: opts.Backoff,
	}
	i, _ := slices.BinarySearchFunc(b.subs, s.priority, func(e *subscription, prio int) int {
		if e.priority >= prio {
			return -1 // insert after every subscription of the same or a higher priority
		}
		return 1
	})
	b.subs = slices.Insert(slices.Clone(b.subs), i, s)
	b.byName[name] = s
	return func() { b.remove(s) }, nil
}

func validName(name string) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidName, maxNameLen)
	}
	for _, r := range name {
		if r == ',' || unicode.IsControl(r) {
			return fmt.Errorf("%w: %q holds %q", ErrInvalidName, name, r)
		}
	}
	return nil
}

// Off unsubscribes the handler called name and reports whether there was one.
func (b *Bus) Off(name string) bool {
	b.mu.RLock()
	s := b.byName[name]
	b.mu.RUnlock()
	return s != nil && b.remove(s)
}

func (b *Bus) remove(s *subscription) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byName[s.name] != s {
		return false
	}
	delete(b.byName, s.name)
	b.subs = slices.DeleteFunc(slices.Clone(b.subs), func(e *subscription) bool { return e == s })
	return true
}

// Use appends mw to the middleware pipeline.
func (b *Bus) Use(mw Middleware) {
	if mw == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mws = append(slices.Clone(b.mws), mw)
	b.opaque++
}

// UseFilter appends to the middleware pipeline a middleware that drops every event for which
// keep returns false (Publish returns ErrDropped), like Use(Filter(keep)). keep must not
// change the event. Unlike a middleware added with Use, such a filter cannot change an event's
// type, so a Runner still routes on the ce_type header: a record of a type no handler matches
// is not decoded, and not shown to keep (it is counted as published and ok, as a record no
// handler wants).
func (b *Bus) UseFilter(keep func(*Event) bool) {
	if keep == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.mws = append(slices.Clone(b.mws), Filter(keep))
}

// Publish runs ev through the middleware pipeline and then every handler whose pattern
// matches the (possibly changed) event type, synchronous ones in priority order, and returns
// one Result per matching handler in that order. A handler's failure does not stop the
// others; failures are reported in the Results, not as Publish's error. Publish's error is
// ErrInvalidEvent for a nil or typeless event, ErrDropped when a middleware cancelled the
// event, or the error a middleware rejected it with; no handler runs then.
//
// Async handlers are started on their own goroutines with a context that is not canceled
// with ctx; their failures are counted and logged, and Wait waits for them. ev is not
// modified.
func (b *Bus) Publish(ctx context.Context, ev *Event) ([]Result, error) {
	return b.deliver(ctx, ev, nil, nil, asyncGo)
}

// wants reports whether publishing an event of type typ could do more than count it: a
// subscription matches typ, a middleware added with Use might change the type, or the debug
// log keeps events. A Runner does not decode the records of a type its bus does not want (it routes
// on the ce_type header).
func (b *Bus) wants(typ string) bool {
	if len(b.ring) > 0 { // set by New only
		return true
	}
	b.mu.RLock()
	subs, opaque := b.subs, b.opaque
	b.mu.RUnlock()
	if opaque > 0 {
		return true
	}
	for _, s := range subs {
		if s.pat.match(typ) {
			return true
		}
	}
	return false
}

// unwanted counts an event that a Runner did not decode because no handler wanted it, as
// Publish would have counted it.
func (b *Bus) unwanted(typ string) {
	b.published.Add(1)
	b.metrics.published(b.name, typ)
}

// asyncMode says what deliver does with async subscriptions.
type asyncMode int

const (
	asyncGo     asyncMode = iota // run on a goroutine (plain bus)
	asyncQueue                   // do not run; the caller enqueues them (Result.Deferred)
	asyncInline                  // run like synchronous ones (redelivery from a queue)
)

// deliver is Publish with three knobs for the Runner: only, when non-nil, restricts delivery
// to the named handlers; the held handlers are not run (Result.Held); mode says how async
// handlers are treated.
func (b *Bus) deliver(ctx context.Context, ev *Event, only, held []string, mode asyncMode) ([]Result, error) {
	if ev == nil || ev.Type == "" {
		return nil, fmt.Errorf("%w: nil event or empty type", ErrInvalidEvent)
	}
	b.published.Add(1)
	b.metrics.published(b.name, ev.Type)
	b.record(ev)

	b.mu.RLock()
	subs, mws, opaque := b.subs, b.mws, b.opaque
	b.mu.RUnlock()

	e := ev
	if opaque > 0 || mode == asyncGo && startsAsync(subs, ev.Type) {
		// A middleware may change its event in place, and an async handler may outlive
		// Publish: both get a copy. Filters (UseFilter) change nothing, and synchronous
		// handlers must not change the event: without the others the caller's event is
		// handed on.
		e = ev.Clone()
	}
	for i, mw := range mws {
		out, err := b.callMiddleware(ctx, mw, e)
		if err != nil {
			b.errs.Add(1)
			b.metrics.middleware(b.name, ev.Type, "rejected")
			return nil, fmt.Errorf("bus: middleware %d rejected %s event %s: %w", i, ev.Type, ev.ID, err)
		}
		if out == nil {
			b.dropped.Add(1)
			b.metrics.middleware(b.name, ev.Type, "dropped")
			return nil, ErrDropped
		}
		e = out
	}
	if e.Type == "" {
		b.errs.Add(1)
		return nil, fmt.Errorf("%w: middleware cleared the type of event %s", ErrInvalidEvent, ev.ID)
	}

	var results []Result
	for _, s := range subs {
		if !s.pat.match(e.Type) || (only != nil && !slices.Contains(only, s.name)) {
			continue
		}
		r := Result{Name: s.name, Pattern: s.pat.text, Async: s.async}
		if slices.Contains(held, s.name) {
			r.Held = true
		} else if s.async && mode != asyncInline {
			r.Deferred = true
			if mode == asyncGo {
				b.goAsync(ctx, s, e)
			}
		} else {
			r.Attempts, r.Err = b.run(ctx, s, e)
		}
		results = append(results, r)
	}
	return results, nil
}

// startsAsync reports whether an async subscription of subs matches typ.
func startsAsync(subs []*subscription, typ string) bool {
	for _, s := range subs {
		if s.async && s.pat.match(typ) {
			return true
		}
	}
	return false
}

// run calls s's handler until it succeeds, fails permanently, runs out of retries or ctx
// ends, and counts the outcome.
func (b *Bus) run(ctx context.Context, s *subscription, e *Event) (int, error) {
	delay := s.backoff
	for attempt := 1; ; attempt++ {
		err := b.callHandler(ctx, s, e)
		if err == nil {
			b.delivered.Add(1)
			b.metrics.delivery(b.name, e.Type, s.name, "ok")
			return attempt, nil
		}
		stop := IsPermanent(err) || attempt > s.retries || ctx.Err() != nil
		if !stop && !sleep(ctx, delay) {
			err = fmt.Errorf("%w (retries stopped: %w)", err, context.Cause(ctx))
			stop = true
		}
		if stop {
			b.errs.Add(1)
			outcome := "transient"
			if IsPermanent(err) {
				outcome = "permanent"
			}
			b.metrics.delivery(b.name, e.Type, s.name, outcome)
			return attempt, err
		}
		delay = min(2*delay, b.maxBackoff)
	}
}

func (b *Bus) callHandler(ctx context.Context, s *subscription, e *Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("bus: handler panicked", "bus", b.name, "handler", s.name, "type", e.Type,
				"id", e.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("%w: %s: %v", ErrHandlerPanic, s.name, p))
		}
	}()
	return s.h(ctx, e)
}

func (b *Bus) callMiddleware(ctx context.Context, mw Middleware, e *Event) (out *Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			b.log.Error("bus: middleware panicked", "bus", b.name, "type", e.Type, "id", e.ID,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out, err = nil, Permanent(fmt.Errorf("%w: middleware: %v", ErrHandlerPanic, p))
		}
	}()
	return mw(ctx, e)
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *Bus) goAsync(ctx context.Context, s *subscription, e *Event) {
	b.asyncMu.Lock()
	if b.asyncN == 0 {
		b.asyncIdle = make(chan struct{})
	}
	b.asyncN++
	b.asyncMu.Unlock()
	go func() {
		defer func() {
			b.asyncMu.Lock()
			b.asyncN--
			if b.asyncN == 0 {
				close(b.asyncIdle)
			}
			b.asyncMu.Unlock()
		}()
		attempts, err := b.run(context.WithoutCancel(ctx), s, e)
		if err != nil {
			b.log.Error("bus: async handler failed", "bus", b.name, "handler", s.name, "type", e.Type,
				"id", e.ID, "attempts", attempts, "err", err)
		}
	}()
}

// Wait waits until no async handler started by Publish is running (for tests and
// shutdown), or until ctx ends, and then returns ctx's error.
func (b *Bus) Wait(ctx context.Context) error {
	for {
		b.asyncMu.Lock()
		n, idle := b.asyncN, b.asyncIdle
		b.asyncMu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	s := Stats{
		Published: b.published.Load(),
		Delivered: b.delivered.Load(),
		Errors:    b.errs.Load(),
		Dropped:   b.dropped.Load(),
	}
	if s.Published > 0 {
		s.ErrorRate = float64(s.Errors) / float64(s.Published)
	}
	return s
}

func (b *Bus) record(ev *Event) {
	if len(b.ring) == 0 {
		return
	}
	c := ev.Clone()
	now := time.Now()
	b.ringMu.Lock()
	defer b.ringMu.Unlock()
	b.ring[b.ringNext] = LogEntry{Time: now, Event: c}
	b.ringNext = (b.ringNext + 1) % len(b.ring)
	b.ringLen = min(b.ringLen+1, len(b.ring))
}

// Log returns the last limit published events, oldest first (all it keeps, at most the log
// size, when limit <= 0).
func (b *Bus) Log(limit int) []LogEntry {
	b.ringMu.Lock()
	defer b.ringMu.Unlock()
	n := b.ringLen
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]LogEntry, n)
	if n == 0 {
		return out
	}
	start := (b.ringNext - n + len(b.ring)) % len(b.ring)
	for i := range out {
		out[i] = b.ring[(start+i)%len(b.ring)]
	}
	return out
}
