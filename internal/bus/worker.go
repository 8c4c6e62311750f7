package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errInterrupted means a worker stopped (revoke, lost, shutdown) before a record was done.
var errInterrupted = errors.New("bus: interrupted")

// worker processes one assigned partition, in order.
type worker struct {
	r         *Runner
	cl        *kgo.Client
	topic     string
	partition int32
	control   bool // records carry retry/queue control headers

	ctx    context.Context // ends when the worker must stop
	cancel context.CancelFunc
	done   chan struct{}
	wake   chan struct{}
	room   chan struct{} // signalled when take leaves MaxBuffered/2 records or fewer

	mu     sync.Mutex
	buf    []*kgo.Record
	paused bool

	// Keys waiting for a retry (sequenced: source topics with a RetryTopic); only the
	// worker's goroutine touches them.
	parked   map[string]*parkedKey
	held     int         // records in parked
	lastSeen *kgo.Record // the last record taken from buf

	hw atomic.Int64 // the partition's high watermark, as last fetched

	// The partition's mark, kept here until the runner hands it to the client (see
	// handOverMarks).
	markMu sync.Mutex
	marked kgo.EpochOffset
	dirty  bool // marked moved since it was handed over
}

func newWorker(r *Runner, cl *kgo.Client, topic string, partition int32) *worker {
	ctx, cancel := context.WithCancel(r.runCtx)
	return &worker{
		r: r, cl: cl, topic: topic, partition: partition, control: r.control[topic],
		ctx: ctx, cancel: cancel, done: make(chan struct{}), wake: make(chan struct{}, 1), room: make(chan struct{}, 1),
		parked: map[string]*parkedKey{},
	}
}

// push queues fetched records and reports whether the worker now holds MaxBuffered or more
// (see Runner.poll).
func (w *worker) push(recs []*kgo.Record, hw int64) (full bool) {
	w.hw.Store(hw)
	w.mu.Lock()
	w.buf = append(w.buf, recs...)
	full = len(w.buf) >= w.r.cfg.MaxBuffered
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return full
}

// awaitRoom waits until the worker holds MaxBuffered/2 records or fewer, it stops, or ctx
// ends; it reports whether the worker has room (or stopped).
func (w *worker) awaitRoom(ctx context.Context) bool {
	for {
		w.mu.Lock()
		roomy := len(w.buf) <= w.r.cfg.MaxBuffered/2
		w.mu.Unlock()
		if roomy {
			return true
		}
		select {
		case <-w.room:
		case <-w.ctx.Done():
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// pause stops fetching the partition until take drains it to MaxBuffered/2 records.
func (w *worker) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.paused && len(w.buf) > w.r.cfg.MaxBuffered/2 {
		w.paused = true
		w.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.partition}})
		w.r.cfg.Metrics.pause(w.r.cfg.Group, w.topic)
	}
}

// take removes up to n waiting records, resuming the partition once half the buffer drained.
func (w *worker) take(n int) []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := min(n, len(w.buf))
	out := slices.Clone(w.buf[:k])
	w.buf = w.buf[k:]
	if len(w.buf) == 0 {
		w.buf = nil
	}
	if len(w.buf) <= w.r.cfg.MaxBuffered/2 {
		if w.paused {
			w.paused = false
			w.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
		}
		select {
		case w.room <- struct{}{}:
		default:
		}
	}
	return out
}

// next waits for up to n records; nil when the worker must stop.
func (w *worker) next(n int) []*kgo.Record {
	recs, _ := w.nextOrDue(n)
	return recs
}

// nextOrDue waits for up to n records or until a parked key's retry is due (then it returns
// no records and true); false when the worker must stop.
func (w *worker) nextOrDue(n int) ([]*kgo.Record, bool) {
	for {
		if w.ctx.Err() != nil {
			return nil, false
		}
		if recs := w.take(n); len(recs) > 0 {
			return recs, true
		}
		var due <-chan time.Time
		if d, ok := w.nextDue(); ok {
			if d <= 0 {
				return nil, true
			}
			t := time.NewTimer(d)
			defer t.Stop()
			due = t.C
		}
		select {
		case <-w.wake:
		case <-due:
			return nil, true
		case <-w.ctx.Done():
			return nil, false
		}
	}
}

// release undoes a pause and forgets the lag of a stopped worker's partition.
func (w *worker) release() {
	w.mu.Lock()
	if w.paused {
		w.paused = false
		w.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	w.buf = nil
	w.mu.Unlock()
	if w.r.dead != nil && !w.control {
		w.r.dead.reset(tp{w.topic, w.partition}, nil) // the partition's next owner reads them again
	}
	w.r.cfg.Metrics.dropLag(w.r.cfg.Group, w.topic, w.partition)
}

func (w *worker) run() {
	defer close(w.done)
	if w.r.dead != nil && !w.control && !w.loadHolds() {
		return
	}
	for {
		var ok bool
		if w.r.cfg.Batch != nil {
			recs := w.collect()
			ok = recs != nil && w.processBatch(recs)
		} else {
			var recs []*kgo.Record
			recs, ok = w.nextOrDue(pollRecords)
			ok = ok && w.processEvents(recs)
		}
		if !ok {
			return
		}
	}
}

func (w *worker) logAttrs(rec *kgo.Record) []any {
	return []any{"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset}
}

// mark marks rec (and so everything before it in the partition) for commit; while a parked
// record lies at or below it, only the records before the lowest parked one. The mark is the
// worker's until the runner hands it to the client, at least every markEvery and before
// every commit of a revoke or a shutdown (see handOverMarks).
func (w *worker) mark(rec *kgo.Record) {
	eo := kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset + 1} // as MarkCommitRecords
	if floor, ok := w.floor(); ok && floor < eo.Offset {
		eo = kgo.EpochOffset{Epoch: -1, Offset: floor}
	}
	w.markMu.Lock()
	w.marked, w.dirty = eo, true
	w.markMu.Unlock()
	if hw := w.hw.Load(); hw > 0 {
		w.r.cfg.Metrics.setLag(w.r.cfg.Group, w.topic, w.partition, hw-eo.Offset)
	}
}

// takeMark returns the mark not yet handed over, if any.
func (w *worker) takeMark() (kgo.EpochOffset, bool) {
	w.markMu.Lock()
	defer w.markMu.Unlock()
	eo, ok := w.marked, w.dirty
	w.dirty = false
	return eo, ok
}

// produce writes recs synchronously, retrying what failed with backoff until it is written or
// the worker stops (then false).
func (w *worker) produce(recs []*kgo.Record) bool {
	delay := w.r.cfg.RetryDelay
	for {
		ctx, cancel := context.WithTimeout(w.r.hctx, produceTimeout)
		res := w.cl.ProduceSync(ctx, recs...)
		cancel()
		var failed []*kgo.Record
		var firstErr error
		for _, pr := range res {
			if pr.Err != nil {
				failed = append(failed, pr.Record)
				firstErr = cmpOr(firstErr, pr.Err)
			}
		}
		if len(failed) == 0 {
			return true
		}
		w.r.log.Error("bus: write to retry/queue/dead-letter topic failed", "topic", failed[0].Topic,
			"records", len(failed), "source_topic", w.topic, "source_partition", w.partition, "err", firstErr)
		recs = failed
		if !sleep(w.ctx, delay) {
			return false
		}
		delay = min(2*delay, w.r.cfg.MaxRetryDelay)
	}
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// decode decodes rec, retrying transient failures in place; (nil, nil) means the worker
// stopped first.
func (w *worker) decode(rec *kgo.Record) (*Event, error) {
	delay := w.r.cfg.RetryDelay
	for {
		ev, err := w.r.cfg.Decoder.Decode(w.r.hctx, rec)
		if err == nil && ev == nil {
			err = Permanent(errors.New("decoder returned no event"))
		}
		if err == nil {
			return ev, nil
		}
		if IsPermanent(err) {
			return nil, fmt.Errorf("decode %s[%d]@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
		}
		w.r.log.Warn("bus: decode failed, retrying", append(w.logAttrs(rec), "err", err)...)
		if !sleep(w.ctx, delay) || w.r.hctx.Err() != nil {
			return nil, nil
		}
		delay = min(2*delay, w.r.cfg.MaxRetryDelay)
	}
}

func (w *worker) dlq(rec *kgo.Record, o origin, reason string, attempts int, handlers []string, cause error) *kgo.Record {
	w.r.log.Error("bus: dead-lettering record", append(w.logAttrs(rec), "reason", reason,
		"attempts", attempts, "handlers", strings.Join(handlers, ","), "err", cause)...)
	w.r.cfg.Metrics.dlq(w.r.cfg.Group, reason)
	d := dlqRecord(w.r.cfg.DLQTopic, w.r.cfg.Group, rec, o, reason, attempts, handlers, cause, time.Now())
	if w.r.dead != nil && len(rec.Key) > 0 && !w.r.control[o.topic] {
		// The dead letter holds its key (see deadKeys).
		if w.r.dead.hold(tp{o.topic, o.partition}, string(rec.Key), handlers) {
			d.Headers = append(d.Headers, header(HeaderDLQHoldsKey, "true"))
		} else {
			w.r.log.Error("bus: too many keys held behind dead letters; this one is not held",
				append(w.logAttrs(rec), "max", w.r.cfg.MaxDeadKeys)...)
			w.r.cfg.Metrics.deadKeysOverflow(w.r.cfg.Group, 1)
		}
		w.setHeld()
	}
	return d
}

// errBehindDead is the error of a record dead-lettered behind a dead letter of its key.
var errBehindDead = errors.New("behind a dead letter of the same key: redrive or skip it first")

// heldFor returns the handlers a source record's key is held for behind dead letters (""
// for every handler); nil when it is free.
func (w *worker) heldFor(rec *kgo.Record) []string {
	if w.r.dead == nil || w.r.control[rec.Topic] || len(rec.Key) == 0 {
		return nil
	}
	return w.r.dead.held(tp{rec.Topic, rec.Partition}, rec.Key)
}

// behindDead returns the dead letter of a source record whose key a dead letter holds for
// every handler (reason parked), or nil. A key held for some handlers only is delivered to
// the others (see deliver).
func (w *worker) behindDead(rec *kgo.Record) *kgo.Record {
	if !slices.Contains(w.heldFor(rec), "") {
		return nil
	}
	w.r.cfg.Metrics.record(w.r.cfg.Group, rec.Topic, "dlq")
	return w.dlq(rec, originOf(rec), ReasonParked, 0, nil, errBehindDead)
}

// processEvents delivers recs one by one to the bus, after the parked keys whose retry is
// due. A record that caused no writes is marked at once (if no earlier record's writes are
// pending); retry, queue and dead-letter writes are batched, written at least every
// flushAfter, and the records that caused them are marked only once they are written. A
// record whose key is parked waits behind it (see parkedKey). It returns false when the
// worker must stop.
func (w *worker) processEvents(recs []*kgo.Record) bool {
	if !w.serveDue(false) {
		return false
	}
	var (
		outs  []*kgo.Record
		last  *kgo.Record
		since time.Time // when the oldest pending write was queued
	)
	flush := func() bool {
		if len(outs) > 0 && !w.produce(outs) {
			return false
		}
		if last != nil {
			w.mark(last)
		}
		outs, last = nil, nil
		return true
	}
	for _, rec := range recs {
		if w.ctx.Err() != nil {
			break
		}
		if len(outs) > 0 && time.Since(since) >= flushAfter && !flush() {
			return false
		}
		w.lastSeen = rec
		if pk := w.parked[string(rec.Key)]; pk != nil && len(rec.Key) > 0 {
			// Past the bound the partition waits for the key's head (every key waits).
			for len(pk.recs)-1 >= w.r.cfg.MaxParkedPerKey {
				if !flush() || !w.waitDue(pk) || !w.serve(string(rec.Key)) {
					return false
				}
				if w.parked[string(rec.Key)] != pk {
					break
				}
			}
			if w.parked[string(rec.Key)] == pk {
				pk.recs = append(pk.recs, rec)
				w.held++
				w.setParked()
				continue
			}
		}
		if d := w.behindDead(rec); d != nil {
			if len(outs) == 0 {
				since = time.Now()
			}
			outs, last = append(outs, d), rec
			if len(outs) >= flushEvery && !flush() {
				return false
			}
			continue
		}
		o, park, err := w.handleRecord(rec, flush)
		if err != nil {
			break
		}
		if park != nil {
			w.parked[string(rec.Key)] = &parkedKey{recs: []*kgo.Record{rec}, park: *park}
			w.held++
			w.setParked()
		}
		if len(outs) == 0 && len(o) > 0 {
			since = time.Now()
		}
		outs = append(outs, o...)
		last = rec
		if (len(outs) == 0 || len(outs) >= flushEvery) && !flush() {
			return false
		}
		if !w.serveDue(len(outs) > 0) {
			return false
		}
	}
	return flush() && w.ctx.Err() == nil
}

// handleRecord delivers one record and returns the records to write because of it, or
// errInterrupted; a non-nil park asks the caller to park the record's key for a retry.
// flush is called before waiting for a retry record's due time.
func (w *worker) handleRecord(rec *kgo.Record, flush func() bool) ([]*kgo.Record, *park, error) {
	r := w.r
	if !w.control {
		return w.deliver(rec, originOf(rec), 1, nil, r.sourceMode())
	}
	c, err := parseControl(rec.Headers)
	if err != nil {
		r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "dlq")
		return []*kgo.Record{w.dlq(rec, originOf(rec), ReasonDecode, 0, nil, fmt.Errorf("control headers: %w", err))}, nil, nil
	}
	if r.dead != nil && len(rec.Key) > 0 {
		at := tp{c.origin.topic, c.origin.partition}
		switch {
		case hasHeader(rec.Headers, HeaderRetryRelease): // pyrite dlq skip
			r.releaseHold(at, string(rec.Key), c.handlers, string(headerValue(rec.Headers, HeaderRetryRelease)))
			r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "released")
			return nil, nil, nil
		}
	}
	if d := time.Until(c.notBefore); d > 0 {
		if !flush() || !sleep(w.ctx, d) {
			return nil, nil, errInterrupted
		}
	}
	// Deliver to the handlers named (nil: every matching one), async ones included.
	outs, next, err := w.deliver(rec, c.origin, c.attempt+1, c.handlers, asyncInline)
	if err == nil && next == nil && c.attempt == 0 {
		w.redriven(rec, c)
	}
	return outs, next, err
}

// redriven ends the hold of a redriven dead letter (pyrite dlq redrive) once its delivery is
// done: handled, or dead-lettered again (then the new dead letter holds the key). While it
// waits for a retry the key stays held.
func (w *worker) redriven(rec *kgo.Record, c control) {
	if w.r.dead != nil && len(rec.Key) > 0 && hasHeader(rec.Headers, HeaderRedrivenFrom) {
		w.r.releaseHold(tp{c.origin.topic, c.origin.partition}, string(rec.Key), c.handlers,
			string(headerValue(rec.Headers, HeaderRedrivenFrom)))
	}
}

// sourceMode is how async handlers run for a record read from a source topic.
func (r *Runner) sourceMode() asyncMode {
	if r.queueTopic != "" {
		return asyncQueue
	}
	return asyncInline
}

// deliver is delivery number attempt of rec (from o) to the handlers only (nil: all).
func (w *worker) deliver(rec *kgo.Record, o origin, attempt int, only []string, mode asyncMode) ([]*kgo.Record, *park, error) {
	r := w.r
	// Route on ce_type before decoding: a group decodes only the types its handlers match
	// (the integration and deployment groups read every event of their topics but handle
	// a few types). A record without ce_type takes its type from the decoded value.
	if typ := headerValue(rec.Headers, HeaderType); only == nil && len(typ) > 0 && !r.cfg.Bus.wants(string(typ)) {
		r.cfg.Bus.unwanted(string(typ))
		r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "ok")
		return nil, nil, nil
	}
	ev, err := w.decode(rec)
	if err != nil {
		r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "dlq")
		return []*kgo.Record{w.dlq(rec, o, decodeReason(err), attempt, nil, err)}, nil, nil
	}
	if ev == nil {
		return nil, nil, errInterrupted
	}
	ev.Origin = &Origin{
		Topic: o.topic, Partition: o.partition, Offset: o.offset,
		Key: rec.Key, Headers: stripControl(rec.Headers), Timestamp: rec.Timestamp, Attempt: attempt,
	}

	results, err := r.cfg.Bus.deliver(r.hctx, ev, only, w.heldFor(rec), mode)
	if errors.Is(err, ErrDropped) {
		r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "dropped")
		return nil, nil, nil
	}
	var (
		transient, permanent, queued, held []string
		tErr, pErr                         error
	)
	if err != nil { // rejected by a middleware
		if r.hctx.Err() != nil {
			return nil, nil, errInterrupted
		}
		if IsPermanent(err) {
			r.cfg.Metrics.record(r.cfg.Group, rec.Topic, "dlq")
			return []*kgo.Record{w.dlq(rec, o, ReasonRejected, attempt, nil, err)}, nil, nil
		}
		transient, tErr = only, err
		if transient == nil {
			transient = []string{} // every handler
		}
	}
	for _, res := range results {
		switch {
		case res.Held:
			held = append(held, res.Name)
		case res.Deferred:
			queued = append(queued, res.Name)
		case res.Err == nil:
		case IsPermanent(res.Err):
			permanent = append(permanent, res.Name)
			pErr = cmpOr(pErr, fmt.Errorf("%s: %w", res.Name, res.Err))
		default:
			transient = append(transient, res.Name)
			tErr = cmpOr(tErr, fmt.Errorf("%s: %w", res.Name, res.Err))
		}
	}
	if transient != nil && r.hctx.Err() != nil {
		// The failures may be the shutdown's doing: leave the record unmarked, so that it is
		// delivered again (to every handler) after the restart.
		return nil, nil, errInterrupted
	}

	var (
		outs   []*kgo.Record
		parkAt *park
	)
	outcome := "ok"
	if queued != nil {
		outs = append(outs, retryRecord(r.queueTopic, rec, o, 0, queued, time.Now(), nil))
		r.cfg.Metrics.enqueue(r.cfg.Group, "queue")
	}
	if transient != nil {
		switch {
		case r.cfg.RetryTopic == "" || attempt >= r.cfg.MaxAttempts:
			outs = append(outs, w.dlq(rec, o, ReasonExhausted, attempt, transient, tErr))
			outcome = "dlq"
		case len(rec.Key) > 0 && (!w.control || hasHeader(rec.Headers, HeaderRedrivenFrom)):
			// Sequenced: the key waits here, in order, for the retry (see parkedKey); so do
			// the key's next redriven records on the retry topic.
			due := time.Now().Add(r.delay(attempt))
			r.log.Warn("bus: handlers failed, key parked until the retry", append(w.logAttrs(rec), "attempt", attempt,
				"handlers", strings.Join(transient, ","), "due", due, "err", tErr)...)
			parkAt = &park{attempt: attempt, only: splitNames(strings.Join(transient, ",")), due: due}
			r.cfg.Metrics.enqueue(r.cfg.Group, "parked")
			outcome = "retry"
		default:
			due := time.Now().Add(r.delay(attempt))
			r.log.Warn("bus: handlers failed, retrying later", append(w.logAttrs(rec), "attempt", attempt,
				"handlers", strings.Join(transient, ","), "due", due, "err", tErr)...)
			outs = append(outs, retryRecord(r.cfg.RetryTopic, rec, o, attempt, transient, due, tErr))
			r.cfg.Metrics.enqueue(r.cfg.Group, "retry")
			outcome = "retry"
		}
	}
	if permanent != nil {
		outs = append(outs, w.dlq(rec, o, ReasonPermanent, attempt, permanent, pErr))
		outcome = "dlq"
	}
	if held != nil {
		outs = append(outs, w.dlq(rec, o, ReasonParked, 0, held, errBehindDead))
		if outcome == "ok" {
			outcome = "dlq"
		}
	}
	r.cfg.Metrics.record(r.cfg.Group, rec.Topic, outcome)
	return outs, parkAt, nil
}

// collect waits for a batch: up to BatchSize records, gathered for at most BatchWait after
// the first. nil when the worker must stop.
func (w *worker) collect() []*kgo.Record {
	size := w.r.cfg.BatchSize
	recs := w.next(size)
	if recs == nil || len(recs) >= size {
		return recs
	}
	t := time.NewTimer(w.r.cfg.BatchWait)
	defer t.Stop()
	for len(recs) < size {
		select {
		case <-w.wake:
			recs = append(recs, w.take(size-len(recs))...)
		case <-t.C:
			return append(recs, w.take(size-len(recs))...)
		case <-w.ctx.Done():
			return nil
		}
	}
	return recs
}

// processBatch decodes recs and applies them through the BatchHandler; records that cannot
// be decoded or applied go to the dead-letter topic. The last record is marked once all is
// written. It returns false when the worker must stop.
func (w *worker) processBatch(recs []*kgo.Record) bool {
	r := w.r
	var (
		evs    = make([]*Event, 0, len(recs))
		evRecs = make([]*kgo.Record, 0, len(recs))
		outs   []*kgo.Record
	)
	for _, rec := range recs {
		if w.control { // a redriven dead letter: applied like a source record, at its own position
			plain := *rec
			plain.Headers = stripControl(rec.Headers)
			rec = &plain
		}
		if typ := headerValue(rec.Headers, HeaderType); r.cfg.Wants != nil && len(typ) > 0 && !r.cfg.Wants(string(typ)) {
			// Not decoded: the handler sees its type and position only (RunnerConfig.Wants).
			// One allocation for the event and its origin.
			eo := &struct {
				Event
				Origin
			}{Event{Type: string(typ)}, Origin{
				Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
				Key: rec.Key, Headers: rec.Headers, Timestamp: rec.Timestamp, Attempt: 1,
			}}
			eo.Event.Origin = &eo.Origin
			evs = append(evs, &eo.Event)
			evRecs = append(evRecs, rec)
			continue
		}
		ev, err := w.decode(rec)
		if err != nil {
			outs = append(outs, w.dlq(rec, originOf(rec), decodeReason(err), 1, nil, err))
			continue
		}
		if ev == nil {
			return false
		}
		ev.Origin = &Origin{
			Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
			Key: rec.Key, Headers: rec.Headers, Timestamp: rec.Timestamp, Attempt: 1,
		}
		evs, evRecs = append(evs, ev), append(evRecs, rec)
	}
	o, err := w.applyBatch(evs, evRecs)
	if err != nil {
		return false
	}
	outs = append(outs, o...)
	if len(outs) > 0 && !w.produce(outs) {
		return false
	}
	w.mark(recs[len(recs)-1])
	r.cfg.Metrics.recordN(r.cfg.Group, w.topic, "ok", len(recs)-len(outs))
	r.cfg.Metrics.recordN(r.cfg.Group, w.topic, "dlq", len(outs))
	return w.ctx.Err() == nil
}

// applyBatch applies evs, isolating permanent failures; it returns the dead-letter records
// of the events that failed permanently, or errInterrupted.
func (w *worker) applyBatch(evs []*Event, recs []*kgo.Record) ([]*kgo.Record, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	err := w.applyRetrying(evs)
	switch {
	case err == nil:
		return nil, nil
	case errors.Is(err, errInterrupted):
		return nil, err
	case len(evs) == 1:
		return []*kgo.Record{w.dlq(recs[0], originOf(recs[0]), ReasonPermanent, 1, []string{"batch"}, err)}, nil
	}
	w.r.log.Warn("bus: batch failed permanently, applying its events one by one",
		"topic", w.topic, "partition", w.partition, "events", len(evs), "err", err)
	var outs []*kgo.Record
	for i := range evs {
		o, err := w.applyBatch(evs[i:i+1], recs[i:i+1])
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

// applyRetrying calls the BatchHandler until it succeeds or fails permanently, backing off
// after transient failures; errInterrupted when the worker stops first.
func (w *worker) applyRetrying(evs []*Event) error {
	delay := w.r.cfg.RetryDelay
	for {
		err := w.callBatch(evs)
		if err == nil || IsPermanent(err) {
			return err
		}
		if w.r.hctx.Err() != nil {
			return errInterrupted
		}
		first := evs[0].Origin
		w.r.log.Warn("bus: batch failed, retrying", "topic", first.Topic, "partition", first.Partition,
			"offset", first.Offset, "events", len(evs), "err", err)
		if !sleep(w.ctx, delay) {
			return errInterrupted
		}
		delay = min(2*delay, w.r.cfg.MaxRetryDelay)
	}
}

func (w *worker) callBatch(evs []*Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			w.r.log.Error("bus: batch handler panicked", "topic", w.topic, "partition", w.partition,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = Permanent(fmt.Errorf("%w: batch: %v", ErrHandlerPanic, p))
		}
	}()
	return w.r.cfg.Batch(w.r.hctx, evs)
}
