package stacktest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

var seq atomic.Int64

// Codec returns a codec on the stack's registry.
func (s *Stack) Codec() *codec.Codec {
	if s.codec == nil {
		s.codec = codec.Dial(s.RegistryURL)
	}
	return s.codec
}

// Record encodes data as eventType at its newest registered version into a
// record for topic, keyed by aggregateID, with the CloudEvents headers
// ingest writes (ce_aggregateversion when version > 0).
func (s *Stack) Record(t testing.TB, topic, eventType, aggregateID string, version int64, data map[string]any) *kgo.Record {
	t.Helper()
	subject, err := s.Topology.Subject(eventType)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sch, err := s.Codec().Latest(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	value, err := s.Codec().Encode(sch, data)
	if err != nil {
		t.Fatalf("encode %s: %v", eventType, err)
	}
	id := fmt.Sprintf("evt-%d", seq.Add(1))
	h := []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte(id)},
		{Key: "ce_source", Value: []byte("/stacktest")},
		{Key: "ce_type", Value: []byte(eventType)},
		{Key: "ce_time", Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
		{Key: "ce_subject", Value: []byte(aggregateID)},
		{Key: "content-type", Value: []byte("application/avro")},
	}
	if version > 0 {
		h = append(h, kgo.RecordHeader{Key: "ce_aggregateversion", Value: []byte(strconv.FormatInt(version, 10))})
	}
	return &kgo.Record{Topic: topic, Key: []byte(aggregateID), Value: value, Headers: h}
}

// Produce writes records and waits for their acknowledgement.
func (s *Stack) Produce(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}
