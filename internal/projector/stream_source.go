package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// projectionSource is a StreamSource over a projection's store and its
// Kafka topics.
type projectionSource struct {
	st   *store.Store
	proj Projection
	dec  bus.Decoder
	opts []kgo.Opt // brokers and client settings for the replay consumer
}

// NewStreamSource returns the StreamSource of proj: positions and read
// models from st, replayed events read from Kafka with a consumer made from
// opts (read_committed) and decoded by dec.
func NewStreamSource(st *store.Store, proj Projection, dec bus.Decoder, opts ...kgo.Opt) StreamSource {
	return &projectionSource{st: st, proj: proj, dec: dec, opts: opts}
}

func (s *projectionSource) Positions(ctx context.Context) (map[store.TopicPartition]int64, error) {
	return s.st.Positions(ctx, s.proj.Name)
}

func (s *projectionSource) Load(ctx context.Context, aggregateID string) (any, int64, bool, error) {
	if s.proj.Load == nil {
		return nil, 0, false, nil
	}
	return s.proj.Load(ctx, s.st, aggregateID)
}

// Replay reads each partition from its offset in from up to the last
// offset below to (the last event applied, so a data record even on a
// transactional topic), then stops. A record that does not decode is
// skipped: the projection dead-lettered it and never applied it.
func (s *projectionSource) Replay(ctx context.Context, from, to map[store.TopicPartition]int64, fn func(*bus.Event) error) error {
	parts := map[string]map[int32]kgo.Offset{}
	last := map[store.TopicPartition]int64{}
	for tp, end := range to {
		start := from[tp]
		if start >= end {
			continue
		}
		if parts[tp.Topic] == nil {
			parts[tp.Topic] = map[int32]kgo.Offset{}
		}
		parts[tp.Topic][tp.Partition] = kgo.NewOffset().At(start)
		last[tp] = end - 1
	}
	if len(last) == 0 {
		return nil
	}
	opts := append(append([]kgo.Opt(nil), s.opts...), kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("replay client: %w", err)
	}
	defer cl.Close()
	for len(last) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(topic string, partition int32, err error) {
			ferr = errors.Join(ferr, fmt.Errorf("replay %s[%d]: %w", topic, partition, err))
		})
		if ferr != nil {
			return ferr
		}
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			tp := store.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
			end, ok := last[tp]
			if !ok || rec.Offset > end {
				continue
			}
			if rec.Offset == end {
				delete(last, tp)
			}
			ev, err := s.dec.Decode(ctx, rec)
			if err != nil {
				continue
			}
			ev.Origin = &bus.Origin{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Key: rec.Key, Headers: rec.Headers, Timestamp: rec.Timestamp, Attempt: 1}
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
	return nil
}
