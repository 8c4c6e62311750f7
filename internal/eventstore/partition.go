package eventstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
)

// HeaderAggregateVersion is the record header carrying an event's aggregate version.
const HeaderAggregateVersion = "ce_aggregateversion"

const (
	fetchBytes   = 1 << 20
	tailWait     = 500 * time.Millisecond
	catchUpWait  = 0 // catch-up and reads never wait on the reader's connection
	retryBackoff = 250 * time.Millisecond
	queueLen     = 4096
	// writerLinger only matters when a transaction's records are produced before the writer
	// knows the topic's partitions (its first transaction): ProduceSync sends the records of
	// a call together as soon as they are all buffered when linger is on, where with no linger
	// the first records went alone and the rest followed in further requests.
	writerLinger = 20 * time.Millisecond
	// tailPause is how long the tail waits after a poll that brought records (see tailLoop).
	tailPause = 100 * time.Millisecond
)

// partition is one raw partition this instance owns or recently owned: its index, its
// transactional writer and the goroutines that keep them.
type partition struct {
	s     *Store
	topic string
	part  int32
	txnID string
	queue chan *appendReq
	txn   chan struct{} // held (a value sent) while a transaction is in flight
	ids   *IDs          // makes the ids of events appended without one, for every index of the partition

	scratch scratch // the writer's, for commit

	mu      sync.Mutex // guards the fields below
	idx     *index
	next    int64 // the index holds the partition's records below next, but for held
	held    held  // fetched records waiting for the outcome of a transaction before them
	marker  int64 // the offset of the writer's last commit marker when next is at it, else -1
	owned   bool  // assigned in the current generation
	ready   bool  // the current run fenced the previous writer and caught up
	tailing bool  // the store's tail keeps the index up with records written by others
	heldGen int32 // the generation owned was last set in; -1 after a loss
	running bool

	cancel context.CancelFunc // stops the current run
	done   chan struct{}      // closed when the current run ends
}

func newPartition(s *Store, topic string, part int32) *partition {
	return &partition{
		s: s, topic: topic, part: part,
		txnID:  fmt.Sprintf("%s-%s-%d", s.cfg.Group, topic, part),
		queue:  make(chan *appendReq, queueLen),
		txn:    make(chan struct{}, 1),
		ids:    newIDs(),
		idx:    newIndex(s.cfg.DedupeWindow, s.cfg.DedupeMax),
		marker: -1,
	}
}

// start runs the partition: acquire (fence, catch up), then write and tail until stop.
func (p *partition) start() {
	ctx, cancel := context.WithCancel(p.s.ctx)
	done := make(chan struct{})
	p.mu.Lock()
	p.cancel, p.done, p.running = cancel, done, true
	p.mu.Unlock()
	go p.run(ctx, done)
}

// stop ends the current run and waits for it; the index stays.
func (p *partition) stop() {
	p.mu.Lock()
	cancel, done := p.cancel, p.done
	p.cancel, p.done = nil, nil
	p.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (p *partition) run(ctx context.Context, done chan struct{}) {
	defer func() {
		p.mu.Lock()
		p.running = false
		p.mu.Unlock()
		p.fail(ErrNotReady) // appends queued for this run
		close(done)
	}()
	for ctx.Err() == nil {
		err := p.incarnation(ctx)
		if ctx.Err() != nil {
			return
		}
		p.s.cfg.Logger.Warn("eventstore partition writer restarts", "topic", p.topic, "partition", p.part, "err", err)
		sleep(ctx, retryBackoff)
	}
}

// fail answers every queued append with err.
func (p *partition) fail(err error) {
	for {
		select {
		case r := <-p.queue:
			r.done <- appendResult{err: err}
		default:
			return
		}
	}
}

// incarnation is one writer's life: a new transactional producer (whose initialisation
// fences every earlier producer of the transactional id and aborts its open transaction),
// the index caught up to the last stable offset seen after that, then the writer and the
// tail until either fails or ctx ends.
func (p *partition) incarnation(ctx context.Context) error {
	start := time.Now()
	prod, err := kgo.NewClient(append(slices.Clip(p.s.base),
		kgo.TransactionalID(p.txnID),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(writerLinger),
	)...)
	if err != nil {
		return fmt.Errorf("writer %s: %w", p.txnID, err)
	}
	defer prod.Close()
	if _, _, err := prod.ProducerID(ctx); err != nil {
		return fmt.Errorf("fence with %s: %w", p.txnID, err)
	}
	p.mu.Lock()
	p.marker = -1 // a new producer: no commit marker of its own yet
	p.mu.Unlock()
	if err := p.catchUp(ctx); err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	p.mu.Lock()
	p.ready = true
	next, streams := p.next, len(p.idx.streams)
	p.mu.Unlock()
	p.s.m.ready.Inc()
	defer func() { // from the moment the writer fails, nothing is answered from this index
		p.mu.Lock()
		p.notReadyLocked()
		p.mu.Unlock()
	}()
	p.s.m.rebuild.Observe(time.Since(start).Seconds())
	p.s.cfg.Logger.Info("eventstore partition ready", "topic", p.topic, "partition", p.part,
		"next", next, "streams", streams, "took", time.Since(start).Round(time.Millisecond))

	p.mu.Lock()
	p.tailing = true // the store's tail reads it from now on
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.tailing = false
		p.mu.Unlock()
	}()
	return p.write(ctx, prod)
}

// catchUp reads the partition from next until it reaches the last stable offset reported by
// the first fetch (which is issued after the fence).
func (p *partition) catchUp(ctx context.Context) error {
	target := int64(-1)
	for {
		p.mu.Lock()
		next, waiting := p.next, p.held.waiting()
		p.mu.Unlock()
		if target >= 0 && next >= target && !waiting {
			return nil
		}
		f, err := p.s.fetch.fetch(ctx, p.topic, p.part, next, catchUpWait, fetchBytes)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if p.outOfRange(err) {
				continue
			}
			p.s.cfg.Logger.Debug("eventstore catch-up fetch", "topic", p.topic, "partition", p.part, "err", err)
			sleep(ctx, retryBackoff)
			continue
		}
		if target < 0 && f.lso >= 0 {
			target = f.lso
		}
		p.applyFetched(f)
		if len(f.records) == 0 && waiting { // an outcome beyond the last stable offset
			sleep(ctx, 10*time.Millisecond)
		}
	}
}

// outOfRange handles a fetch below the log start (records deleted) or past the end (the
// topic was recreated): the index starts again from the log start.
func (p *partition) outOfRange(err error) bool {
	var oor *errOutOfRange
	if !errors.As(err, &oor) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	from := max(oor.logStart, 0)
	p.s.cfg.Logger.Warn("eventstore partition offsets out of range; rebuilding its index from the log start",
		"topic", p.topic, "partition", p.part, "next", p.next, "logStart", oor.logStart, "end", oor.end)
	p.idx = newIndex(p.s.cfg.DedupeWindow, p.s.cfg.DedupeMax)
	p.next, p.marker, p.held = from, -1, held{}
	return true
}

// notReadyLocked stops answering from the index until the next incarnation caught up.
func (p *partition) notReadyLocked() {
	if p.ready {
		p.ready = false
		p.s.m.ready.Dec()
	}
}

// applyFetched adds the fetched records the index does not hold yet (at or above next), in
// offset order: the tail, catch-ups and the writer may fetch overlapping ranges. A
// transactional record is applied only once its transaction's commit marker was read (and
// dropped at its abort marker), and the records after it wait with it, so that versions keep
// offset order: a read_committed answer cannot be trusted to leave aborted records out.
// kfake leaves a transaction out of an answer's aborted transactions when the answer is cut
// by the request's byte limit before its abort marker, and the index then took an aborted
// event for a committed one (ingest answered its retry 201 as a replay, and it was lost).
func (p *partition) applyFetched(f fetched) {
	now := p.s.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range f.records {
		if r.Offset < p.next {
			continue
		}
		p.next = r.Offset + 1
		switch {
		case r.Attrs.IsControl():
			p.held.end(r.ProducerID, len(r.Key) >= 4 && r.Key[3] == 1) // version int16, type int16: 1 commit, 0 abort
		case p.held.waiting() || r.Attrs.IsTransactional():
			p.held.add(r, r.Attrs.IsTransactional())
		default:
			p.applyLocked(p.idx.record(r), now)
			n++
		}
		for _, r := range p.held.ready() {
			p.applyLocked(p.idx.record(r), now)
			n++
		}
	}
	p.next = max(p.next, f.next)
	p.s.m.replayed.Add(float64(n))
}

// held are fetched records from the first transactional record whose outcome is not known
// yet on, in offset order.
type held struct {
	recs []heldRecord
	open map[int64]int // producer id -> its records held with no outcome yet
}

type heldRecord struct {
	rec     *kgo.Record
	pending bool // transactional, its transaction's marker not read yet
}

// add holds r; transactional, it waits for its producer's marker.
func (h *held) add(r *kgo.Record, transactional bool) {
	pending := transactional
	if pending {
		if h.open == nil {
			h.open = map[int64]int{}
		}
		h.open[r.ProducerID]++
	}
	h.recs = append(h.recs, heldRecord{r, pending})
}

// end applies a producer's transaction marker: its held records are committed or dropped.
func (h *held) end(producer int64, commit bool) {
	if h.open[producer] == 0 {
		return
	}
	delete(h.open, producer)
	kept := h.recs[:0]
	for _, hr := range h.recs {
		if hr.pending && hr.rec.ProducerID == producer {
			if !commit {
				continue
			}
			hr.pending = false
		}
		kept = append(kept, hr)
	}
	clear(h.recs[len(kept):])
	h.recs = kept
}

// ready takes the held records before the first one still pending.
func (h *held) ready() []*kgo.Record {
	var out []*kgo.Record
	i := 0
	for ; i < len(h.recs) && !h.recs[i].pending; i++ {
		out = append(out, h.recs[i].rec)
	}
	if i > 0 {
		h.recs = slices.Delete(h.recs, 0, i)
	}
	return out
}

// waiting reports whether records wait for a transaction's outcome.
func (h *held) waiting() bool { return len(h.recs) > 0 }

func (p *partition) applyLocked(r record, now time.Time) int64 {
	if r.key == "" {
		p.s.m.foreign.WithLabelValues("unkeyed").Inc()
		return 0
	}
	v, out := p.idx.apply(r, now)
	switch out {
	case unversioned:
		p.s.m.foreign.WithLabelValues("unversioned").Inc()
	case renumbered:
		p.s.m.foreign.WithLabelValues("renumbered").Inc()
	}
	return v
}

// readPast makes the index hold the partition up to offset last: when nothing precedes recs
// (the writer's just committed records, contiguous from next, or from the slot after the
// commit marker of its previous transaction, which a producer's next transaction always
// follows) they are applied at once; otherwise the partition is read from next, so that
// records others wrote between the writer's decision and its commit take their versions
// first.
//
// decided are what the index takes from each of recs, as the writer decided them (key, id,
// type, ce_aggregateversion, schema id), so that the records need not be read again; their
// offsets and timestamps are taken from recs, which the producer set. When they are applied at
// once, versions (as long as recs) get the version the index gave each, which the answers
// take instead of looking each up by its offset (answer).
func (p *partition) readPast(ctx context.Context, recs []*kgo.Record, decided []record, versions []int64) error {
	first, last := recs[0].Offset, recs[len(recs)-1].Offset
	p.mu.Lock()
	contiguous := last-first == int64(len(recs)-1) && !p.held.waiting() &&
		(p.next == first || (p.marker >= 0 && p.next == p.marker && first == p.marker+1))
	if contiguous {
		now := p.s.now()
		for i, rec := range recs {
			r := decided[i]
			r.offset, r.at = rec.Offset, rec.Timestamp
			versions[i] = p.applyLocked(r, now)
		}
		p.next = last + 1
	}
	p.marker = last + 1 // where this transaction's commit marker goes, unless others wrote
	p.mu.Unlock()
	for !contiguous {
		p.mu.Lock()
		next, waiting := p.next, p.held.waiting()
		p.mu.Unlock()
		if next > last && !waiting {
			return nil
		}
		f, err := p.s.fetch.fetch(ctx, p.topic, p.part, next, catchUpWait, fetchBytes)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("read back to offset %d: %w", last, ctx.Err())
			}
			if p.outOfRange(err) {
				return fmt.Errorf("read back to offset %d: %w", last, err)
			}
			sleep(ctx, retryBackoff/5)
			continue
		}
		p.applyFetched(f)
	}
	return nil
}

// record is what the index takes from r. A known event type is the string the index holds
// already, not a new copy (apply does the same for the aggregate id of a known stream).
func (ix *index) record(r *kgo.Record) record {
	rec := record{offset: r.Offset, at: r.Timestamp, key: string(r.Key)}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderAggregateVersion:
			if v, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && v > 0 {
				rec.version = v
			}
		case "ce_id":
			rec.id = string(h.Value)
		case "ce_type":
			if t, ok := ix.types[string(h.Value)]; ok {
				rec.typ = t
			} else {
				rec.typ = string(h.Value)
			}
		}
	}
	rec.schemaID = frameSchemaID(r)
	return rec
}

// decidedRecord is what the index will take from rec, accepted as version v of key, once it
// is written: what record would read back from it. The id is the append's own string only
// when the store's caller made it (NewID): another may be a piece of a request body, which
// the index, keeping it for the dedupe window, would keep whole. remember copies a type it
// keeps.
func decidedRecord(rec *kgo.Record, key string, v int64, ev Pending) record {
	r := record{key: key, version: v, schemaID: frameSchemaID(rec)}
	for _, h := range rec.Headers {
		switch h.Key {
		case "ce_id":
			r.id, r.fresh = ev.ID, ev.NewID
			if !ev.NewID || string(h.Value) != ev.ID {
				r.id, r.fresh = string(h.Value), false
			}
		case "ce_type":
			if r.typ = ev.Type; string(h.Value) != ev.Type {
				r.typ = string(h.Value)
			}
		}
	}
	return r
}

// frameSchemaID is the schema id of r's value's frame, 0 for a header-framed value (which
// has no prefix id) or one without a frame.
func frameSchemaID(r *kgo.Record) int32 {
	if _, hasHdr := bus.SchemaIDHeader(r); hasHdr {
		return 0
	}
	if id, _, err := codec.SplitFrame(r.Value); err == nil {
		return int32(id)
	}
	return 0
}

// appendReq is one Append waiting for the partition's writer.
type appendReq struct {
	ctx    context.Context
	events []Pending
	done   chan appendResult // buffered: the writer never blocks on it
}

type appendResult struct {
	appended []Appended
	err      error
}

// write takes appends off the queue and commits them, as many as are waiting (up to
// MaxTransaction events) in one transaction. It returns when ctx ends, or with the error of
// a transaction that did not commit: the writer may be fenced or the outcome unknown, so the
// incarnation starts again from a new producer and the topic.
func (p *partition) write(ctx context.Context, prod *kgo.Client) error {
	for {
		var batch []*appendReq
		select {
		case <-ctx.Done():
			return nil
		case r := <-p.queue:
			batch = append(batch, r)
		}
		n := len(batch[0].events)
	more:
		for n < p.s.cfg.MaxTransaction {
			select {
			case r := <-p.queue:
				batch = append(batch, r)
				n += len(r.events)
			default:
				break more
			}
		}
		if err := p.commit(prod, batch); err != nil {
			return err
		}
	}
}

// decision is what the writer decided for one append of a transaction.
type decision struct {
	req      *appendReq
	err      error          // decided: answer with it
	conflict *ConflictError // a version conflict: answered with the stream's version after the commit
	dup      bool           // every id was written before: answered from the index after the commit
	recs     []*kgo.Record  // accepted: these go into the transaction
	decided  []record       // and what the index takes from each, but its offset and time
	versions []int64        // the version the index gave each of recs when the commit applied them at once, else 0
	from, to int            // where recs and decided are in the transaction's
}

// commit decides each append of batch against the index and what this transaction already
// holds, writes the accepted ones in one transaction, and answers every append.
func (p *partition) commit(prod *kgo.Client, batch []*appendReq) error {
	p.txn <- struct{}{}
	defer func() { <-p.txn }()

	p.mu.Lock()
	if !p.owned {
		p.mu.Unlock()
		for _, r := range batch {
			r.done <- appendResult{err: fmt.Errorf("%w: %s[%d] was revoked", ErrNotOwner, p.topic, p.part)}
		}
		p.s.m.appends.WithLabelValues("not_owner").Add(float64(len(batch)))
		return nil
	}
	now := p.s.now()
	sc := &p.scratch
	sc.reset()
	versionOf := func(key string) int64 {
		if v, ok := sc.pendingV[key]; ok {
			return v
		}
		return p.idx.version(key)
	}
	decisions := make([]decision, len(batch))
	recs, decided := sc.recs[:0], sc.decided[:0]
	for i, r := range batch {
		d := &decisions[i]
		d.req = r
		if err := r.ctx.Err(); err != nil {
			d.err = fmt.Errorf("%w: %w", ErrUnavailable, err)
			continue
		}
		d.err, d.dup = p.checkIDs(r.events, now, sc)
		if d.err != nil || d.dup {
			continue
		}
		keys := sc.keysOf(r.events)
		clear(sc.local)
		for j, ev := range r.events {
			key := keys[j]
			cur, ok := sc.local[key]
			if !ok {
				cur = versionOf(key)
			}
			if ev.Expected >= 0 && ev.Expected != cur {
				d.conflict = &ConflictError{Index: j, AggregateID: key, Expected: ev.Expected, Current: cur}
				break
			}
			sc.local[key] = cur + 1
		}
		if d.conflict != nil {
			continue
		}
		d.from = len(recs)
		for j, ev := range r.events {
			key := keys[j]
			v := versionOf(key) + 1
			sc.pendingV[key] = v
			rec := ev.Record
			rec.Partition = p.part
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderAggregateVersion, Value: sc.version(v)})
			if ev.ID != "" {
				sc.pendingIDs[ev.ID] = seen{id: ev.ID, key: key, typ: ev.Type}
			}
			recs = append(recs, rec)
			decided = append(decided, decidedRecord(rec, key, v, ev))
		}
		d.to = len(recs)
	}
	p.mu.Unlock()
	for i := range decisions {
		if d := &decisions[i]; d.to > d.from {
			d.recs, d.decided = recs[d.from:d.to:d.to], decided[d.from:d.to:d.to]
		}
	}
	sc.recs, sc.decided = recs, decided // for the next transaction, which starts after these are answered
	given := sc.versionsGiven(len(recs))

	var txnErr error
	if len(recs) > 0 {
		ctx, cancel := context.WithTimeout(p.s.ctx, p.s.cfg.CommitTimeout)
		start := time.Now()
		txnErr = transact(ctx, prod, recs)
		cancel()
		if txnErr != nil {
			p.s.m.txns.WithLabelValues("failed").Inc()
		} else {
			p.s.m.txns.WithLabelValues("committed").Inc()
			p.s.m.commit.Observe(time.Since(start).Seconds())
			p.s.m.txnEvents.Observe(float64(len(recs)))
		}
	}

	if txnErr == nil && len(recs) > 0 {
		ctx, cancel := context.WithTimeout(p.s.ctx, p.s.cfg.CommitTimeout)
		if err := p.readPast(ctx, recs, decided, given); err != nil {
			// Committed, but the versions are unknown until the index caught up: the
			// appends answer ErrUnavailable (a retry with the same ids is answered from the
			// dedupe window) and the writer starts again from the topic.
			txnErr = fmt.Errorf("committed; %w", err)
		}
		cancel()
	}
	p.mu.Lock()
	if txnErr != nil {
		p.notReadyLocked() // before anyone hears of the failure
	}
	now = p.s.now()
	results := make([]appendResult, len(decisions))
	for i := range decisions {
		if d := &decisions[i]; d.to > d.from {
			d.versions = given[d.from:d.to:d.to]
		}
		results[i] = p.answer(&decisions[i], txnErr, now)
	}
	p.mu.Unlock()
	for i, d := range decisions {
		d.req.done <- results[i]
	}
	if txnErr != nil {
		return fmt.Errorf("transaction of %d events: %w", len(recs), txnErr)
	}
	return nil
}

// checkIDs reports whether every event id of an append was written before (dup), or an
// *IDConflictError when only some were, an id repeats within the append, or an id was
// written for another aggregate or type.
func (p *partition) checkIDs(events []Pending, now time.Time, sc *scratch) (error, bool) {
	found := 0
	clear(sc.mine)
	pendingSeen := func(id string) *seen {
		if s, ok := sc.pendingIDs[id]; ok {
			return &s
		}
		return nil
	}
	for j, ev := range events {
		if ev.ID == "" || ev.NewID {
			continue
		}
		if _, again := sc.mine[ev.ID]; again {
			return &IDConflictError{Index: j, ID: ev.ID, Reason: "repeats an earlier event of the same append"}, false
		}
		sc.mine[ev.ID] = struct{}{}
		s := p.idx.lookup(ev.ID, now)
		if s == nil {
			s = pendingSeen(ev.ID)
		}
		if s == nil {
			continue
		}
		if key := string(ev.Record.Key); s.key != key || s.typ != ev.Type {
			return &IDConflictError{Index: j, ID: ev.ID,
				Reason: fmt.Sprintf("was written for %s %q, not %s %q", s.typ, s.key, ev.Type, key)}, false
		}
		found++
	}
	switch {
	case found == 0:
		return nil, false
	case found < len(events):
		for j, ev := range events {
			if ev.ID == "" || (p.idx.lookup(ev.ID, now) == nil && pendingSeen(ev.ID) == nil) {
				return &IDConflictError{Index: j, ID: ev.ID,
					Reason: "the append mixes events written before with new ones; retry the events written before alone, or the new ones alone"}, false
			}
		}
	}
	return nil, true
}

// scratch is what the writer's commit decides with, kept from one transaction to the next
// so that a transaction of a few thousand events does not build its maps anew (they were
// most of its allocations). Only the partition's writer goroutine uses it.
type scratch struct {
	pendingV   map[string]int64    // aggregate -> version after this transaction's accepted events
	pendingIDs map[string]seen     // ids accepted into this transaction
	local      map[string]int64    // one append's aggregates -> their version as it goes
	mine       map[string]struct{} // one append's ids
	keys       []string            // one append's aggregate ids, as strings
	versions   []byte              // the ce_aggregateversion values of this transaction
	recs       []*kgo.Record       // the records of this transaction
	decided    []record            // what the index takes from each of recs
	given      []int64             // the version the index gave each of recs (readPast), else 0
}

// versionsGiven is sc.given for n records, zeroed.
func (sc *scratch) versionsGiven(n int) []int64 {
	if cap(sc.given) < n {
		sc.given = make([]int64, n)
	}
	sc.given = sc.given[:n]
	clear(sc.given)
	return sc.given
}

// reset empties sc for a new transaction. The versions buffer is not reused: the records
// of the previous transaction still point into it.
func (sc *scratch) reset() {
	if sc.pendingV == nil {
		sc.pendingV, sc.pendingIDs = map[string]int64{}, map[string]seen{}
		sc.local, sc.mine = map[string]int64{}, map[string]struct{}{}
	}
	clear(sc.pendingV)
	clear(sc.pendingIDs)
	clear(sc.recs) // the previous transaction's records belong to their callers again
	clear(sc.decided)
	sc.versions = nil
}

// keysOf returns the aggregate ids of events as strings, one conversion each.
func (sc *scratch) keysOf(events []Pending) []string {
	clear(sc.keys)
	sc.keys = sc.keys[:0]
	for _, ev := range events {
		sc.keys = append(sc.keys, string(ev.Record.Key))
	}
	return sc.keys
}

// version returns v in decimal, a piece of the transaction's versions buffer capped at its
// length (a new buffer is started when the current one is full, and the old one stays with
// the records that point into it).
func (sc *scratch) version(v int64) []byte {
	if cap(sc.versions)-len(sc.versions) < 20 {
		sc.versions = make([]byte, 0, 4096)
	}
	from := len(sc.versions)
	sc.versions = strconv.AppendInt(sc.versions, v, 10)
	return sc.versions[from:len(sc.versions):len(sc.versions)]
}

// answer turns a decision into the append's result, once the transaction (if any) ended.
// Called with p.mu held.
func (p *partition) answer(d *decision, txnErr error, now time.Time) appendResult {
	outcome := func(o string) { p.s.m.appends.WithLabelValues(o).Inc() }
	switch {
	case d.err != nil:
		if errors.Is(d.err, ErrIDConflict) {
			outcome("id_conflict")
		} else {
			outcome("canceled")
		}
		return appendResult{err: d.err}
	case txnErr != nil:
		outcome("unavailable")
		return appendResult{err: fmt.Errorf("%w: %w", ErrUnavailable, txnErr)}
	case d.conflict != nil:
		outcome("conflict")
		c := *d.conflict
		c.Current = max(c.Current, p.idx.version(c.AggregateID))
		return appendResult{err: &c}
	case d.dup:
		out := make([]Appended, len(d.req.events))
		for j, ev := range d.req.events {
			s := p.idx.lookup(ev.ID, now)
			if s == nil { // written in this very transaction, which failed: cannot happen when txnErr == nil
				outcome("unavailable")
				return appendResult{err: fmt.Errorf("%w: the first write of %q is not in the index", ErrUnavailable, ev.ID)}
			}
			out[j] = Appended{ID: s.id, Type: s.typ, AggregateID: s.key, Topic: p.topic, Partition: p.part,
				Offset: s.offset, Version: s.version, SchemaID: int(s.schemaID), Duplicate: true}
		}
		outcome("duplicate")
		return appendResult{appended: out}
	}
	out := make([]Appended, len(d.recs))
	for j, rec := range d.recs {
		ev, key := d.req.events[j], d.decided[j].key
		v := d.versions[j]
		if v == 0 {
			v = p.idx.versionAt(key, rec.Offset) // its position, read back after the commit
		}
		id, _, _ := codec.SplitFrame(rec.Value)
		out[j] = Appended{ID: ev.ID, Type: ev.Type, AggregateID: key, Topic: rec.Topic, Partition: rec.Partition,
			Offset: rec.Offset, Version: v, SchemaID: id}
	}
	outcome("written")
	return appendResult{appended: out}
}

// transact writes recs in one transaction. On error the transaction is left to the next
// producer of the transactional id, whose initialisation aborts it.
func transact(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
