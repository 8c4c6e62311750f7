package upcaster

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// batcher processes one polled batch with up to len(scratch) goroutines, one partition at a
// time each: a partition's records are processed and produced in offset order by one
// goroutine, so per-partition (and so per-aggregate) order holds while partitions proceed in
// parallel.
type batcher struct {
	proc    *processor
	scratch []scratch
	parts   []partResult
}

// partResult is what became of one partition of a batch.
type partResult struct {
	topic     string
	partition int32
	outs      []outcome
	last      *kgo.Record // last raw record processed, nil if none
	failed    *kgo.Record // first raw record not processed because of err
	err       error       // transient
}

func newBatcher(proc *processor, workers int) *batcher {
	return &batcher{proc: proc, scratch: make([]scratch, max(workers, 1))}
}

// run processes fs, calling produce for every output record in order per partition (from
// several goroutines). With stopAll, the first transient error stops every partition (the
// batch will be aborted); without it, only the failing partition stops. It returns one result
// per partition with records; they stay valid until the next run.
//
// vers holds the aggregate versions of the partitions (see versions): every event of a keyed
// record is stamped with the next version of its key; a nil vers stamps nothing.
func (b *batcher) run(ctx context.Context, fs kgo.Fetches, vers map[rawPartition]*partVersions, stopAll bool, produce func(*kgo.Record)) []partResult {
	var fetched []kgo.FetchTopicPartition
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			fetched = append(fetched, p)
		}
	})
	if cap(b.parts) < len(fetched) {
		b.parts = make([]partResult, len(fetched))
	}
	b.parts = b.parts[:len(fetched)]
	for i := range b.parts {
		b.parts[i] = partResult{topic: fetched[i].Topic, partition: fetched[i].Partition, outs: b.parts[i].outs[:0]}
	}
	var (
		next    atomic.Int64
		stopped atomic.Bool
		wg      sync.WaitGroup
	)
	work := func(sc *scratch) {
		for {
			i := int(next.Add(1) - 1)
			if i >= len(fetched) {
				return
			}
			res := &b.parts[i]
			pv := vers[rawPartition{res.topic, res.partition}]
			for _, rec := range fetched[i].Records {
				if stopAll && stopped.Load() {
					break
				}
				o, err := b.proc.process(ctx, rec, sc)
				if err != nil {
					res.failed, res.err = rec, err
					stopped.Store(true)
					break
				}
				if pv != nil && o.reason == "" && len(rec.Key) > 0 {
					v := pv.next(rec.Key)
					stamp(o.rec, v)
					pv.take(rec.Key, v)
				}
				res.outs = append(res.outs, o)
				res.last = rec
				produce(o.rec)
			}
		}
	}
	workers := min(len(b.scratch), len(fetched))
	for w := range workers {
		sc := &b.scratch[w]
		sc.reset()
		if w == workers-1 {
			work(sc) // the calling goroutine takes a share too
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(sc)
		}()
	}
	wg.Wait()
	return b.parts
}

// firstErr returns the first partition's transient error, or nil.
func firstErr(parts []partResult) error {
	for _, p := range parts {
		if p.err != nil {
			return p.err
		}
	}
	return nil
}
