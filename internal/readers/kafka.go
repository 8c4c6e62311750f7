package readers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Publish records rs on Topic through cl and returns once every record is acknowledged.
// Nothing is written when any reader is invalid.
func Publish(ctx context.Context, cl *kgo.Client, rs ...Reader) error {
	recs := make([]*kgo.Record, 0, len(rs))
	var errs []error
	for _, r := range rs {
		rec, err := r.Record()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("readers: record on %s: %w", Topic, err)
	}
	return nil
}

// Remove writes the tombstone of group's reader of eventType: checks stop counting it.
func Remove(ctx context.Context, cl *kgo.Client, group, eventType string) error {
	rec := &kgo.Record{Topic: Topic, Key: []byte(Key(group, eventType))}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("readers: remove from %s: %w", Topic, err)
	}
	return nil
}

// Set is the latest recorded reader per group and type. It is safe for concurrent use.
type Set struct {
	mu sync.RWMutex
	m  map[string]Reader
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{m: map[string]Reader{}} }

// apply takes one record of Topic: a reader replaces the key's, a tombstone removes it.
func (s *Set) apply(rec *kgo.Record) error {
	r, ok, err := Parse(rec.Key, rec.Value)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.m[string(rec.Key)] = r
	} else {
		delete(s.m, string(rec.Key))
	}
	return nil
}

// All returns every reader, by group and type.
func (s *Set) All() []Reader {
	s.mu.RLock()
	out := make([]Reader, 0, len(s.m))
	for _, r := range s.m {
		out = append(out, r)
	}
	s.mu.RUnlock()
	sortReaders(out)
	return out
}

// Of returns the readers of subject, by group and type.
func (s *Set) Of(subject string) []Reader {
	var out []Reader
	for _, r := range s.All() {
		if r.Subject == subject {
			out = append(out, r)
		}
	}
	return out
}

// Load reads Topic from its start to the end offsets it has now, with a client made from
// opts (at least kgo.SeedBrokers), and returns the readers recorded. A missing topic holds
// none. Malformed records are returned as errors beside the set, which has the rest.
func Load(ctx context.Context, opts ...kgo.Opt) (*Set, error) {
	s := NewSet()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumeTopics(Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("readers: client: %w", err)
	}
	defer cl.Close()
	ends, err := endOffsets(ctx, kadm.NewClient(cl))
	if err != nil {
		return nil, err
	}
	var bad []error
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("readers: reading %s: %w", Topic, err)
		}
		fs.EachError(func(_ string, p int32, err error) {
			bad = append(bad, fmt.Errorf("readers: fetch %s[%d]: %w", Topic, p, err))
		})
		if len(bad) > 0 {
			return nil, errors.Join(bad...)
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if err := s.apply(rec); err != nil {
				bad = append(bad, fmt.Errorf("%s[%d]@%d: %w", Topic, rec.Partition, rec.Offset, err))
			}
			if end, ok := ends[rec.Partition]; ok && rec.Offset+1 >= end {
				delete(ends, rec.Partition)
			}
		})
	}
	return s, errors.Join(bad...)
}

// Watch reads Topic from its start into s with a client made from opts until ctx ends, and
// returns nil then. Malformed records are passed to skipped (which may be nil) and left out.
func (s *Set) Watch(ctx context.Context, skipped func(error), opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.ConsumeTopics(Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, opts...)...)
	if err != nil {
		return fmt.Errorf("readers: client: %w", err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachRecord(func(rec *kgo.Record) {
			if err := s.apply(rec); err != nil && skipped != nil {
				skipped(fmt.Errorf("%s[%d]@%d: %w", Topic, rec.Partition, rec.Offset, err))
			}
		})
	}
}

// endOffsets lists the non-empty partitions of Topic with their end offsets; empty when
// the topic does not exist.
func endOffsets(ctx context.Context, adm *kadm.Client) (map[int32]int64, error) {
	listed, err := adm.ListEndOffsets(ctx, Topic)
	if err != nil {
		return nil, fmt.Errorf("readers: end offsets of %s: %w", Topic, err)
	}
	out := map[int32]int64{}
	var errs []error
	listed.Each(func(o kadm.ListedOffset) {
		switch {
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
		case o.Err != nil:
			errs = append(errs, o.Err)
		case o.Offset > 0:
			out[o.Partition] = o.Offset
		}
	})
	return out, errors.Join(errs...)
}
