package bus

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// parkedKey is a key of a source partition whose record failed transiently (or of a retry
// topic partition whose redriven record did, so that a key's redriven records stay in order): the record (the
// head) waits in the worker for its retry, and the later records of the same key wait behind
// it, in order, while other keys go on. When the head's retry succeeds the records behind it
// are delivered at once, in order (one that fails in turn becomes the head); when the head is
// dead-lettered (permanent failure or last attempt) the in-memory park ends and the records
// behind it are dead-lettered behind it for the handlers it holds the key for (see deadKeys).
//
// Nothing of it is committed: the partition's committed offset stays below the lowest parked
// record, so a crash or a revoke delivers the parked records (and the records of other keys
// handled after them) again. At most RunnerConfig.MaxParkedPerKey records wait per key; a
// further record of the key makes the whole partition wait for the head's retry.
type parkedKey struct {
	recs []*kgo.Record // recs[0] is the head
	park               // the head's retry; attempt 0: the head has not been delivered yet
}

// park is when and to whom a head is delivered again.
type park struct {
	attempt int      // deliveries made
	only    []string // the handlers that failed (nil: every matching one)
	due     time.Time
}

// nextDue is how long until the earliest parked retry is due; false when nothing is parked.
func (w *worker) nextDue() (time.Duration, bool) {
	var first time.Time
	for _, pk := range w.parked {
		if first.IsZero() || pk.due.Before(first) {
			first = pk.due
		}
	}
	if first.IsZero() && len(w.parked) == 0 {
		return 0, false
	}
	return time.Until(first), true
}

// floor is the lowest parked offset; false when nothing is parked.
func (w *worker) floor() (int64, bool) {
	lo, ok := int64(0), false
	for _, pk := range w.parked {
		if off := pk.recs[0].Offset; !ok || off < lo {
			lo, ok = off, true
		}
	}
	return lo, ok
}

// serveDue retries every parked key whose retry is due, then marks what became committable
// unless writes caused by earlier records are pending (the caller marks once they are
// written: a record is committed only after its retry, queue or dead-letter records are).
// It returns false when the worker must stop.
func (w *worker) serveDue(pending bool) bool {
	if len(w.parked) == 0 {
		return true
	}
	now := time.Now()
	served := false
	for key, pk := range w.parked {
		if pk.due.After(now) {
			continue
		}
		if !w.serve(key) {
			return false
		}
		served = true
	}
	if served && !pending && w.lastSeen != nil {
		w.mark(w.lastSeen)
	}
	return true
}

// waitDue waits for pk's retry to be due; false when the worker must stop first.
func (w *worker) waitDue(pk *parkedKey) bool {
	if d := time.Until(pk.due); d > 0 {
		return sleep(w.ctx, d)
	}
	return w.ctx.Err() == nil
}

// serve delivers a parked key's head again and, once it is done, the records behind it, until
// one has to wait for a retry or none is left (the key is then released). Dead letters are
// written before the next record is delivered. It returns false when the worker must stop.
func (w *worker) serve(key string) bool {
	pk := w.parked[key]
	defer w.setParked()
	for len(pk.recs) > 0 {
		head := pk.recs[0]
		if d := w.behindDead(head); d != nil { // an earlier record of the key was dead-lettered
			if !w.produce([]*kgo.Record{d}) {
				return false
			}
			pk.recs[0] = nil
			pk.recs = pk.recs[1:]
			pk.park = park{}
			w.held--
			continue
		}
		var (
			outs []*kgo.Record
			next *park
			err  error
		)
		switch {
		case w.control && pk.attempt == 0: // a retry-topic record behind a parked redriven one
			outs, next, err = w.handleRecord(head, func() bool { return true })
		case w.control:
			var c control
			if c, err = parseControl(head.Headers); err == nil { // it parsed when it was parked
				outs, next, err = w.deliver(head, c.origin, pk.attempt+1, pk.only, asyncInline)
				if err == nil && next == nil {
					w.redriven(head, c)
				}
			}
		case pk.attempt == 0:
			outs, next, err = w.deliver(head, originOf(head), 1, nil, w.r.sourceMode())
		default:
			outs, next, err = w.deliver(head, originOf(head), pk.attempt+1, pk.only, asyncInline)
		}
		if err != nil {
			return false
		}
		if len(outs) > 0 && !w.produce(outs) {
			return false
		}
		if next != nil {
			pk.park = *next
			return true
		}
		pk.recs[0] = nil
		pk.recs = pk.recs[1:]
		pk.park = park{}
		w.held--
	}
	delete(w.parked, key)
	return true
}

// setParked publishes the worker's parked keys and records.
func (w *worker) setParked() {
	w.r.cfg.Metrics.setParked(w.r.cfg.Group, w.topic, w.partition, len(w.parked), w.held)
}
