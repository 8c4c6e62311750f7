package bus

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deadKeys are the keys held behind dead letters, per source partition: for each key and
// failed handler, how many of its dead letters are pending (not redriven or skipped yet). A
// record of a key held for a handler is not delivered to that handler: it is dead-lettered
// for it behind them (ReasonParked), so that a redrive delivers the key's records to it in
// their order, while the key's records still reach the group's other handlers. A dead letter
// that names no handler (decode, rejected) holds the key for every handler (name ""). Only
// the counts live in memory; the records wait in the DLQ.
//
// The worker of a source partition rebuilds its counts from the DLQ when it starts and adds
// its own dead letters; the retry topic's worker releases the holds of each redriven record
// (attempt 0, with HeaderRedrivenFrom) once its delivery is done, and of each skip release
// (HeaderRetryRelease), for the handlers it names, which is how pyrite dlq redrive and skip
// reach a running group.
//
// At most max keys are held per runner; a dead letter of a key not held yet past that bound
// does not hold its key (no HeaderDLQHoldsKey; pyrite_runner_dead_keys_overflow_total counts
// it): later records of that key go on as if it had not failed.
type deadKeys struct {
	mu  sync.Mutex
	max int
	// loading: while a partition's set is rebuilt, the dead letters released meanwhile
	// (<dlq>[<partition>]@<offset>), which the rebuild must not count although it may read
	// them before their markers.
	loading map[tp]map[string]bool
	n       int                              // keys held, over every partition
	keys    map[tp]map[string]map[string]int // partition → key → handler ("" every one) → pending dead letters
}

func newDeadKeys(max int) *deadKeys {
	return &deadKeys{max: max, keys: map[tp]map[string]map[string]int{}, loading: map[tp]map[string]bool{}}
}

// beginLoad starts noting the dead letters released on at, until reset.
func (d *deadKeys) beginLoad(at tp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loading[at] == nil {
		d.loading[at] = map[string]bool{}
	}
}

// held returns the handlers key is held for on at ("" for every handler); nil when free.
// Every record a group reads asks, so a free key costs a map lookup: the key is not copied
// into a string (string(key) in the index expression) and nothing is sorted.
func (d *deadKeys) held(at tp, key []byte) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	hs := d.keys[at][string(key)]
	if len(hs) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(hs))
}

// hold counts one more pending dead letter of key for each of handlers (none: every handler)
// on at; false when the key was not held and the bound is reached (the dead letter then does
// not hold its key).
func (d *deadKeys) hold(at tp, key string, handlers []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ks := d.keys[at]
	if ks[key] == nil {
		if d.n >= d.max {
			return false
		}
		if ks == nil {
			ks = map[string]map[string]int{}
			d.keys[at] = ks
		}
		ks[key] = map[string]int{}
		d.n++
	}
	for _, h := range orEvery(handlers) {
		ks[key][h]++
	}
	return true
}

// orEvery is handlers, or [""] (every handler) when there are none.
func orEvery(handlers []string) []string {
	if len(handlers) == 0 {
		return []string{""}
	}
	return handlers
}

// release counts one pending dead letter of key less for each of handlers (none: every
// handler) on at (redriven or skipped; from names it); false when none was counted.
func (d *deadKeys) release(at tp, key string, handlers []string, from string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if l := d.loading[at]; l != nil && from != "" {
		l[from] = true
	}
	hs := d.keys[at][key]
	released := false
	for _, h := range orEvery(handlers) {
		if hs[h] == 0 {
			continue
		}
		released = true
		if hs[h]--; hs[h] == 0 {
			delete(hs, h)
		}
	}
	if released && len(hs) == 0 {
		delete(d.keys[at], key)
		d.n--
	}
	return released
}

// reset replaces the counts of at with the pending dead letters holds (rebuilt from the DLQ,
// by name; nil forgets the partition), leaving out those released since beginLoad, and
// returns how many keys did not fit under the bound.
func (d *deadKeys) reset(at tp, holds map[string]hold) (over int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	counts := map[string]map[string]int{}
	for name, h := range holds {
		if d.loading[at][name] {
			continue
		}
		if counts[h.key] == nil {
			counts[h.key] = map[string]int{}
		}
		for _, handler := range orEvery(h.handlers) {
			counts[h.key][handler]++
		}
	}
	delete(d.loading, at)
	d.n -= len(d.keys[at])
	ks := map[string]map[string]int{}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if d.n >= d.max {
			over++
			continue
		}
		ks[k] = counts[k]
		d.n++
	}
	d.keys[at] = ks
	return over
}

// count is how many keys are held on at.
func (d *deadKeys) count(at tp) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys[at])
}

// loadHolds rebuilds the held keys of the worker's partition from the group's DLQ, retrying
// until it is read or the worker stops (then false).
func (w *worker) loadHolds() bool {
	delay := w.r.cfg.RetryDelay
	at := tp{w.topic, w.partition}
	w.r.dead.beginLoad(at)
	for {
		holds, err := w.r.readHolds(w.ctx, at)
		if err == nil {
			if over := w.r.dead.reset(at, holds); over > 0 {
				w.r.log.Error("bus: too many keys held behind dead letters; some are not held", "topic", w.topic,
					"partition", w.partition, "not_held", over, "max", w.r.cfg.MaxDeadKeys)
				w.r.cfg.Metrics.deadKeysOverflow(w.r.cfg.Group, over)
			}
			w.setHeld()
			return true
		}
		w.r.log.Error("bus: reading the dead-letter topic failed, retrying", "topic", w.r.cfg.DLQTopic, "err", err)
		if !sleep(w.ctx, delay) {
			return false
		}
		delay = min(2*delay, w.r.cfg.MaxRetryDelay)
	}
}

// setHeld publishes how many keys of the worker's partition are held behind dead letters.
func (w *worker) setHeld() { w.r.setHeld(tp{w.topic, w.partition}) }

// setHeld publishes how many keys of a source partition are held behind dead letters.
func (r *Runner) setHeld(at tp) {
	r.cfg.Metrics.setDeadKeys(r.cfg.Group, at.topic, at.partition, r.dead.count(at))
}

// releaseHold ends the hold of the dead letter from (named as by dlqName) on key for
// handlers (redriven or skipped).
func (r *Runner) releaseHold(at tp, key string, handlers []string, from string) {
	if r.dead.release(at, key, handlers, from) {
		r.setHeld(at)
	}
}

// hold is a pending dead letter holding its key.
type hold struct {
	key      string
	handlers []string // none: every handler
}

// dlqName names a dead letter as redrive and skip records do: <dlq>[<partition>]@<offset>.
func dlqName(topic string, partition int32, offset int64) string {
	return fmt.Sprintf("%s[%d]@%d", topic, partition, offset)
}

// readHolds reads the DLQ (read_committed, to its last stable offsets) and returns, by name,
// the pending dead letters that hold a key of at.
func (r *Runner) readHolds(ctx context.Context, at tp) (map[string]hold, error) {
	ctx, cancel := context.WithTimeout(ctx, produceTimeout)
	defer cancel()
	cl, err := kgo.NewClient(append(slices.Clone(r.opts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(fetchMaxWait))...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, r.cfg.DLQTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", r.cfg.DLQTopic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, r.cfg.DLQTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", r.cfg.DLQTopic, err)
	}
	next, end := map[int32]int64{}, map[int32]int64{}
	parts := map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		if e, ok := ends.Lookup(o.Topic, o.Partition); ok && e.Offset > o.Offset {
			next[o.Partition], end[o.Partition] = o.Offset, e.Offset
			parts[o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	holds := map[string]hold{} // pending dead letters holding a key of at
	if len(parts) > 0 {
		cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{r.cfg.DLQTopic: parts})
	}
	for len(next) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := fs.Err0(); err != nil {
			return nil, err
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if _, ok := next[rec.Partition]; !ok {
				return
			}
			if rec.Offset+1 >= end[rec.Partition] {
				delete(next, rec.Partition)
			} else {
				next[rec.Partition] = rec.Offset + 1
			}
			if rec.Attrs.IsControl() || rec.Offset >= end[rec.Partition] {
				return
			}
			var marks string
			for _, h := range rec.Headers {
				switch h.Key {
				case HeaderDLQRedrivenOffset, HeaderDLQSkippedOffset:
					marks = string(h.Value)
				}
			}
			if marks != "" {
				if n, err := strconv.ParseInt(marks, 10, 64); err == nil {
					delete(holds, dlqName(rec.Topic, rec.Partition, n))
				}
				return
			}
			if string(headerValue(rec.Headers, HeaderDLQHoldsKey)) != "true" || len(rec.Key) == 0 {
				return
			}
			o, ok := parseOrigin(rec.Headers)
			if ok && o.topic == at.topic && o.partition == at.partition {
				holds[dlqName(rec.Topic, rec.Partition, rec.Offset)] = hold{string(rec.Key), splitNames(string(headerValue(rec.Headers, HeaderDLQHandler)))}
			}
		})
	}
	return holds, nil
}

// parseOrigin reads the pyrite-origin-* headers.
func parseOrigin(hs []kgo.RecordHeader) (origin, bool) {
	t := string(headerValue(hs, HeaderOriginTopic))
	p, err := strconv.ParseInt(string(headerValue(hs, HeaderOriginPartition)), 10, 32)
	return origin{topic: t, partition: int32(p)}, t != "" && err == nil
}

// headerValue is the last value of header k in hs (nil when absent).
func headerValue(hs []kgo.RecordHeader, k string) []byte {
	var v []byte
	for _, h := range hs {
		if h.Key == k {
			v = h.Value
		}
	}
	return v
}
