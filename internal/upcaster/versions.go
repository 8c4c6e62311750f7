package upcaster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderAggregateVersion is the event's aggregate version, which the upcaster stamps on every
// event it writes (replacing whatever the raw record said): the number of its aggregate's
// events on the events partition up to and including it. This is where versions become
// authoritative (see internal/eventstore's package comment).
const HeaderAggregateVersion = "ce_aggregateversion"

// versions numbers the events of each aggregate per events partition. A partition's counts
// are loaded from the events partition itself the first time a batch holds records of it
// (after every assignment: revoked partitions are forgotten), and a batch's numbers become
// the counts only when its transaction commits, so an aborted batch numbers the same records
// the same way when they are read again. Memory: one count per aggregate of every owned
// partition.
type versions struct {
	mu      sync.Mutex
	parts   map[rawPartition]*partVersions
	eventOf map[string]string // raw topic -> events topic
	load    func(ctx context.Context, topic string, partition int32) (map[string]int64, error)
}

type rawPartition struct {
	topic     string
	partition int32
}

// partVersions is one partition's counts and the current batch's.
type partVersions struct {
	committed map[string]int64
	pending   map[string]int64
}

// next is the version the next event of key gets.
func (pv *partVersions) next(key []byte) int64 {
	if v, ok := pv.pending[string(key)]; ok {
		return v + 1
	}
	return pv.committed[string(key)] + 1
}

func (pv *partVersions) take(key []byte, v int64) { pv.pending[string(key)] = v }

// prepare returns the counts of every partition of fs with records, loading those not known.
func (vs *versions) prepare(ctx context.Context, fs kgo.Fetches) (map[rawPartition]*partVersions, error) {
	out := map[rawPartition]*partVersions{}
	var err error
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 || err != nil {
			return
		}
		rp := rawPartition{p.Topic, p.Partition}
		vs.mu.Lock()
		pv := vs.parts[rp]
		vs.mu.Unlock()
		if pv == nil {
			events, ok := vs.eventOf[p.Topic]
			if !ok {
				return // not a raw topic of the topology: its records are dead letters
			}
			var counts map[string]int64
			if counts, err = vs.load(ctx, events, p.Partition); err != nil {
				err = fmt.Errorf("versions of %s[%d]: %w", events, p.Partition, err)
				return
			}
			pv = &partVersions{committed: counts, pending: map[string]int64{}}
			vs.mu.Lock()
			vs.parts[rp] = pv
			vs.mu.Unlock()
		}
		out[rp] = pv
	})
	return out, err
}

// end makes a batch's numbers the counts (committed) or drops them.
func (vs *versions) end(batch map[rawPartition]*partVersions, committed bool) {
	for _, pv := range batch {
		if committed {
			for k, v := range pv.pending {
				pv.committed[k] = v
			}
		}
		clear(pv.pending)
	}
}

// forget drops the counts of partitions this instance no longer owns.
func (vs *versions) forget(gone map[string][]int32) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for topic, ps := range gone {
		for _, p := range ps {
			delete(vs.parts, rawPartition{topic, p})
		}
	}
}

// stamp sets rec's HeaderAggregateVersion to v, replacing the one it has.
func stamp(rec *kgo.Record, v int64) {
	val := strconv.AppendInt(nil, v, 10)
	for i := range rec.Headers {
		if rec.Headers[i].Key == HeaderAggregateVersion {
			rec.Headers[i].Value = val
			return
		}
	}
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderAggregateVersion, Value: val})
}

// loadVersions reads an events partition from its start to its last stable offset and
// returns the number of events per key: their versions are their positions. The owner of the
// raw partition is the only writer of the events partition, so nothing is written to it
// meanwhile.
func loadVersions(opts []kgo.Opt) func(ctx context.Context, topic string, partition int32) (map[string]int64, error) {
	return func(ctx context.Context, topic string, partition int32) (map[string]int64, error) {
		cl, err := kgo.NewClient(append(opts,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().AtStart()}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.KeepControlRecords(), // so that the offset read reaches a trailing commit marker
		)...)
		if err != nil {
			return nil, err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
		if err != nil {
			return nil, err
		}
		end, ok := ends.Lookup(topic, partition)
		if !ok || end.Err != nil {
			return nil, fmt.Errorf("last stable offset: %v", end.Err)
		}
		counts := map[string]int64{}
		next := int64(0)
		for next < end.Offset {
			fs := cl.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			for _, fe := range fs.Errors() {
				return nil, fe.Err
			}
			fs.EachRecord(func(r *kgo.Record) {
				next = max(next, r.Offset+1)
				if !r.Attrs.IsControl() && len(r.Key) > 0 {
					counts[string(r.Key)]++
				}
			})
		}
		return counts, nil
	}
}
