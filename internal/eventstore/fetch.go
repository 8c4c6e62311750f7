package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fetcher reads one partition at a time, read_committed, with plain Fetch requests to the
// partition's leader: unlike a consumer it says exactly where the next fetch starts (past
// control records and aborted batches) and what the last stable offset was, which is what
// "caught up" means. It is safe for concurrent use.
type fetcher struct {
	cl   *kgo.Client
	adm  *kadm.Client
	dec  kgo.Decompressor
	mu   sync.Mutex
	meta map[string]topicMeta
}

type topicMeta struct {
	id      [16]byte
	leaders []int32
}

func newFetcher(cl *kgo.Client) *fetcher {
	return &fetcher{cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor(), meta: map[string]topicMeta{}}
}

// errOutOfRange means the offset asked for is below the log start or above the end.
type errOutOfRange struct{ logStart, end int64 }

func (e *errOutOfRange) Error() string {
	return fmt.Sprintf("offset out of range (log start %d, end %d)", e.logStart, e.end)
}

// fetched is one fetch's answer.
type fetched struct {
	records []*kgo.Record // control records included
	next    int64         // where the next fetch starts
	lso     int64         // the partition's last stable offset when the broker answered
}

func (f *fetcher) leader(ctx context.Context, topic string, p int32) (topicMeta, int32, error) {
	f.mu.Lock()
	m, ok := f.meta[topic]
	f.mu.Unlock()
	if !ok || int(p) >= len(m.leaders) {
		md, err := f.adm.Metadata(ctx, topic)
		if err != nil {
			return m, -1, err
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			return m, -1, fmt.Errorf("metadata of %s: %v", topic, td.Err)
		}
		m = topicMeta{id: td.ID, leaders: make([]int32, len(td.Partitions))}
		for _, pd := range td.Partitions {
			if int(pd.Partition) < len(m.leaders) {
				m.leaders[pd.Partition] = pd.Leader
			}
		}
		f.mu.Lock()
		f.meta[topic] = m
		f.mu.Unlock()
	}
	if int(p) >= len(m.leaders) {
		return m, -1, fmt.Errorf("%s has no partition %d", topic, p)
	}
	return m, m.leaders[p], nil
}

func (f *fetcher) forget(topic string) {
	f.mu.Lock()
	delete(f.meta, topic)
	f.mu.Unlock()
}

// want is one partition to fetch from an offset.
type want struct {
	topic  string
	part   int32
	offset int64
}

// got is the answer for one wanted partition: records, or an error (an *errOutOfRange for
// an offset below the log start or past the end).
type got struct {
	want
	fetched
	err error
}

// fetch reads topic's partition p from offset, waiting up to wait for records.
func (f *fetcher) fetch(ctx context.Context, topic string, p int32, offset int64, wait time.Duration, maxBytes int32) (fetched, error) {
	_, leader, err := f.leader(ctx, topic, p)
	if err != nil {
		return fetched{}, err
	}
	out, err := f.fetchMany(ctx, leader, []want{{topic, p, offset}}, wait, maxBytes)
	if err != nil {
		return fetched{}, err
	}
	return out[0].fetched, out[0].err
}

// fetchMany reads several partitions led by one broker in one request, waiting up to wait
// for records in any. Errors that a metadata refresh may cure (leader moved) drop the cached
// metadata so the next call looks again.
func (f *fetcher) fetchMany(ctx context.Context, leader int32, ws []want, wait time.Duration, maxBytes int32) ([]got, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(wait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = maxBytes
	req.IsolationLevel = 1 // read_committed
	req.SessionEpoch = -1
	topicAt := map[string]int{}
	for _, w := range ws {
		m, _, err := f.leader(ctx, w.topic, w.part)
		if err != nil {
			return nil, err
		}
		i, ok := topicAt[w.topic]
		if !ok {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = w.topic, m.id
			i = len(req.Topics)
			topicAt[w.topic] = i
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = w.part, w.offset, maxBytes
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	kresp, err := f.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		for _, w := range ws {
			f.forget(w.topic)
		}
		return nil, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	out := make([]got, len(ws))
	for i, w := range ws {
		out[i] = got{want: w, fetched: fetched{next: w.offset, lso: -1}} // no data: it did not move
		part := findPartition(resp, w.topic, f.topicID(w.topic), w.part)
		if part == nil {
			continue
		}
		if err := kerr.ErrorForCode(part.ErrorCode); err != nil {
			if errors.Is(err, kerr.OffsetOutOfRange) {
				out[i].err = &errOutOfRange{logStart: part.LogStartOffset, end: part.HighWatermark}
			} else {
				f.forget(w.topic)
				out[i].err = err
			}
			continue
		}
		// Control records are kept: the index decides transactions by their markers (see
		// partition.applyFetched).
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset: w.offset, IsolationLevel: kgo.ReadCommitted(), Topic: w.topic, Partition: w.part,
			KeepControlRecords: true,
		}, part, f.dec, nil)
		if fp.Err != nil && len(fp.Records) == 0 {
			out[i].err = fp.Err
			continue
		}
		out[i].fetched = fetched{records: fp.Records, next: next, lso: part.LastStableOffset}
	}
	return out, nil
}

func (f *fetcher) topicID(topic string) [16]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.meta[topic].id
}

// findPartition finds a partition's answer by topic name or (v13+) topic id.
func findPartition(resp *kmsg.FetchResponse, topic string, id [16]byte, p int32) *kmsg.FetchResponseTopicPartition {
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		if rt.Topic != topic && (rt.TopicID == [16]byte{} || rt.TopicID != id) {
			continue
		}
		for j := range rt.Partitions {
			if rt.Partitions[j].Partition == p {
				return &rt.Partitions[j]
			}
		}
	}
	return nil
}
