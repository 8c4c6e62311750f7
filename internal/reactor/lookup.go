package reactor

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
)

// DefaultLookupWindow is how many records at the end of a partition TopicLookup reads.
const DefaultLookupWindow = 10_000

// TopicLookup finds a record by key and ce_id on a topic: it reads the last Window records
// of the partition the key maps to (murmur2, as every Pyrite producer partitions keyed
// records). A record written further back than that is not found. It makes a client per
// lookup, so use it only on the rare path (a redelivery after a crash). Safe for concurrent
// use.
type TopicLookup struct {
	opts []kgo.Opt
	// Window is how many records at the end of the partition are read
	// (default DefaultLookupWindow).
	Window int64
}

// NewTopicLookup returns a lookup whose clients take opts (at least kgo.SeedBrokers, and the
// cluster's TLS and SASL options).
func NewTopicLookup(opts ...kgo.Opt) *TopicLookup {
	return &TopicLookup{opts: opts, Window: DefaultLookupWindow}
}

// Written reports whether a record with key and ce_id id is among the last Window records of
// key's partition of topic. Errors (Kafka unavailable, more than 30 s) are transient.
func (l *TopicLookup) Written(ctx context.Context, topic string, key []byte, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(l.opts...)
	if err != nil {
		return false, fmt.Errorf("look up %s on %s: %w", id, topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	tds, err := adm.ListTopics(ctx, topic)
	if err == nil {
		err = tds.Error()
	}
	if err != nil {
		return false, fmt.Errorf("look up %s on %s: %w", id, topic, err)
	}
	n := len(tds[topic].Partitions)
	if n == 0 {
		return false, fmt.Errorf("look up %s on %s: no partitions", id, topic)
	}
	p := int32(kgo.StickyKeyPartitioner(nil).ForTopic(topic).Partition(&kgo.Record{Key: key}, n))
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return false, fmt.Errorf("look up %s on %s[%d]: %w", id, topic, p, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return false, fmt.Errorf("look up %s on %s[%d]: %w", id, topic, p, err)
	}
	start, _ := starts.Lookup(topic, p)
	end, _ := ends.Lookup(topic, p)
	window := l.Window
	if window <= 0 {
		window = DefaultLookupWindow
	}
	from := max(start.Offset, end.Offset-window)
	if end.Offset <= from {
		return false, nil
	}
	rd, err := kgo.NewClient(append(l.opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		topic: {p: kgo.NewOffset().At(from)},
	}))...)
	if err != nil {
		return false, fmt.Errorf("look up %s on %s[%d]: %w", id, topic, p, err)
	}
	defer rd.Close()
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("look up %s on %s[%d] from %d: %w", id, topic, p, from, err)
		}
		if err := fs.Err0(); err != nil {
			return false, fmt.Errorf("look up %s on %s[%d] from %d: %w", id, topic, p, from, err)
		}
		found, last := false, false
		fs.EachRecord(func(r *kgo.Record) {
			if bytes.Equal(r.Key, key) && HeaderValue(r.Headers, bus.HeaderID) == id {
				found = true
			}
			last = last || r.Offset >= end.Offset-1
		})
		if found || last {
			return found, nil
		}
	}
}
