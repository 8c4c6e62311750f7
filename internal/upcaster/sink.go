package upcaster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/pyrite-dev/pyrite/internal/topology"
)

// sinkGuard makes the events topics an idempotent sink in transactional mode: a raw record
// whose upcast is already committed on its events topic is not written again, even when the
// group's committed offset says otherwise.
//
// The offsets and the records commit in one Kafka transaction, so on a real cluster the
// offset is never behind the records. A broker can still lose the offset commit of the last
// transaction alone: the embedded broker (kfake) writes the COMMIT markers, then the group's
// offsets, and a SIGKILL between the two leaves the records committed and their raw offsets
// not. Before processing a raw partition it newly owns, the stage reads the committed tail
// of every partition of the matching events topic (at least two transactions' worth of
// records) and takes, per raw partition, the highest pyrite-upcast-raw-offset there; raw
// records at or below it are skipped, and their offsets commit with the next transaction.
// Only the last transaction can have lost its offsets, so the tail is enough.
type sinkGuard struct {
	events map[string]string // raw topic -> events topic
	window int64             // records read back from the end of each events partition

	mu    sync.Mutex
	marks map[rawPart]int64 // highest raw offset already upcast; absent: not loaded yet
}

type rawPart struct {
	topic     string
	partition int32
}

func newSinkGuard(topo *topology.Topology, maxPoll int) *sinkGuard {
	g := &sinkGuard{events: map[string]string{}, window: 2*int64(maxPoll) + 64, marks: map[rawPart]int64{}}
	events := map[string]string{}
	for _, t := range topo.TopicsWithRole(topology.RoleEvents) {
		events[t.Aggregate] = t.Name
	}
	for _, t := range topo.TopicsWithRole(topology.RoleRaw) {
		g.events[t.Name] = events[t.Aggregate]
	}
	return g
}

// forget drops the marks of partitions no longer owned: a later owner of them loads its own.
// It runs in kgo's rebalance callback and does not block.
func (g *sinkGuard) forget(gone map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for topic, ps := range gone {
		for _, p := range ps {
			delete(g.marks, rawPart{topic, p})
		}
	}
}

// skip removes from fs the records already upcast, loading the marks of partitions it has
// not seen since they were assigned, and returns how many it removed. On an error nothing is
// removed and fs must not be processed.
func (g *sinkGuard) skip(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) (int, error) {
	need := map[string][]rawPart{} // events topic -> raw partitions to load
	g.mu.Lock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		rp := rawPart{p.Topic, p.Partition}
		if _, ok := g.marks[rp]; !ok && len(p.Records) > 0 && g.events[p.Topic] != "" {
			need[g.events[p.Topic]] = append(need[g.events[p.Topic]], rp)
		}
	})
	g.mu.Unlock()
	for events, parts := range need {
		found, err := g.load(ctx, cl, events)
		if err != nil {
			return 0, fmt.Errorf("read back %s: %w", events, err)
		}
		g.mu.Lock()
		for _, rp := range parts {
			g.marks[rp] = -1
			if m, ok := found[rp]; ok {
				g.marks[rp] = m
			}
		}
		g.mu.Unlock()
	}
	skipped := 0
	g.mu.Lock()
	defer g.mu.Unlock()
	filterRecords(fs, func(topic string, partition int32, recs []*kgo.Record) func(*kgo.Record) bool {
		mark, ok := g.marks[rawPart{topic, partition}]
		if !ok || recs[0].Offset > mark {
			return nil
		}
		return func(r *kgo.Record) bool {
			if r.Offset > mark {
				return true
			}
			skipped++
			return false
		}
	})
	return skipped, nil
}

// load reads the committed tail of every partition of the events topic and returns the
// highest raw offset per raw partition found there.
func (g *sinkGuard) load(ctx context.Context, cl *kgo.Client, events string) (map[rawPart]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, events)
	if err != nil {
		return nil, err
	}
	// ListCommittedOffsets is ListOffsets under read_committed: the last stable offsets.
	ends, err := adm.ListCommittedOffsets(ctx, events)
	if err != nil {
		return nil, err
	}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{} // partition -> the last offset below the stable end
	var errs []error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			errs = append(errs, o.Err)
			return
		}
		start, _ := starts.Lookup(events, o.Partition)
		if o.Offset <= start.Offset {
			return
		}
		from[o.Partition] = kgo.NewOffset().At(max(start.Offset, o.Offset-g.window))
		until[o.Partition] = o.Offset - 1
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	found := map[rawPart]int64{}
	if len(from) == 0 {
		return found, nil
	}
	err = readRange(ctx, cl, events, from, until, func(r *kgo.Record) {
		if r.Attrs.IsControl() {
			return
		}
		var topic string
		part, off := int64(-1), int64(-1)
		for _, h := range r.Headers {
			switch h.Key {
			case HeaderRawTopic:
				topic = string(h.Value)
			case HeaderRawPartition:
				part, _ = strconv.ParseInt(string(h.Value), 10, 32)
			case HeaderRawOffset:
				off, _ = strconv.ParseInt(string(h.Value), 10, 64)
			}
		}
		if topic == "" || part < 0 || off < 0 {
			return
		}
		rp := rawPart{topic, int32(part)}
		if m, ok := found[rp]; !ok || off > m {
			found[rp] = off
		}
	})
	return found, err
}

// filterRecords keeps, in each partition of fs with records, those for which the function
// keep returns for that partition answers true; a nil function keeps them all.
func filterRecords(fs kgo.Fetches, keep func(topic string, partition int32, recs []*kgo.Record) func(*kgo.Record) bool) {
	for i := range fs {
		for j := range fs[i].Topics {
			t := &fs[i].Topics[j]
			for k := range t.Partitions {
				p := &t.Partitions[k]
				if len(p.Records) == 0 {
					continue
				}
				f := keep(t.Topic, p.Partition, p.Records)
				if f == nil {
					continue
				}
				kept := p.Records[:0:0]
				for _, r := range p.Records {
					if f(r) {
						kept = append(kept, r)
					}
				}
				p.Records = kept
			}
		}
	}
}

// readRange reads topic's partitions read_committed, each from its offset in from until it
// sees a record (control records included) at or past its offset in until, and hands each
// record to each.
func readRange(ctx context.Context, cl *kgo.Client, topic string, from map[int32]kgo.Offset, until map[int32]int64, each func(*kgo.Record)) error {
	rd, err := kgo.NewClient(readerOpts(cl, topic, from)...)
	if err != nil {
		return err
	}
	defer rd.Close()
	for len(until) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if last, ok := until[r.Partition]; ok && r.Offset >= last {
				delete(until, r.Partition)
			}
			each(r)
		})
	}
	return nil
}

// readerOpts are the options of a read_committed reader of the events partitions from the
// given offsets, on the same cluster (seed brokers, TLS, SASL, dialer) as cl. Control
// records are kept, so that the reader sees where each partition's stable end is.
func readerOpts(cl *kgo.Client, topic string, from map[int32]kgo.Offset) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
	}
	if seeds, ok := cl.OptValue(kgo.SeedBrokers).([]string); ok {
		opts = append(opts, kgo.SeedBrokers(seeds...))
	}
	if t, ok := cl.OptValue(kgo.DialTLSConfig).(*tls.Config); ok && t != nil {
		opts = append(opts, kgo.DialTLSConfig(t))
	}
	if d, ok := cl.OptValue(kgo.Dialer).(func(context.Context, string, string) (net.Conn, error)); ok && d != nil {
		opts = append(opts, kgo.Dialer(d))
	}
	if ms, ok := cl.OptValue(kgo.SASL).([]sasl.Mechanism); ok && len(ms) > 0 {
		opts = append(opts, kgo.SASL(ms...))
	}
	return opts
}

// skipUpcast drops the repeats on the raw topics (dupGuard), then the records already upcast
// (sinkGuard), from fs, retrying with backoff until both succeed; it returns the repeats
// dropped per raw topic, and false when ctx ended first (fs must then not be processed).
func (s *Stage) skipUpcast(ctx context.Context, cl *kgo.Client, fs kgo.Fetches, b *backoff) (map[string]int, bool) {
	for {
		dups, err := s.dups.drop(ctx, cl, fs)
		if err == nil {
			var n int
			if n, err = s.sink.skip(ctx, cl, fs); err == nil {
				if n > 0 {
					s.log.Warn("skipped raw records already on the events topics (their offset commit was lost)", "records", n)
				}
				for topic, d := range dups {
					s.log.Warn("dropped exact repeats of raw records (same key, value, headers and ce_id)", "topic", topic, "records", d)
				}
				return dups, true
			}
		}
		s.setBackoff(err)
		s.log.Warn("read back the raw and events topics before upcasting", "err", err)
		if !b.wait(ctx, s.cfg.MaxBackoff) {
			return nil, false
		}
	}
}
