package watermill

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/schemas"
)

const (
	// records is how many records each side consumes or produces per iteration: enough that
	// a group's start-up is a small part of the time even for the fastest side.
	records    = 200000
	partitions = 3 // the dev topology's
	subject    = "pyrite.workeffort.ProgressUpdated"
	eventType  = "WorkEffort:ProgressUpdated"
	aggregates = 1000
)

// fixture is one fresh in-process stack (kfake, the project's registry, every schema
// registered) with the newest ProgressUpdated schema resolved.
type fixture struct {
	s     *stacktest.Stack
	codec *codec.Codec
	sch   *codec.Schema
	keys  [][]byte
}

func newFixture(b *testing.B) *fixture {
	b.Helper()
	s := stacktest.Start(b)
	f := &fixture{s: s, codec: s.Codec()}
	var err error
	if f.sch, err = f.codec.Latest(context.Background(), subject); err != nil {
		b.Fatal(err)
	}
	for i := range aggregates {
		f.keys = append(f.keys, fmt.Appendf(nil, "we-%d", i))
	}
	return f
}

// topic creates a topic of the dev topology's partition count.
func (f *fixture) topic(b *testing.B, name string) string {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := f.s.Admin.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		b.Fatal(err)
	}
	return name
}

// data is the i-th event's payload.
func data(i int) map[string]any {
	return map[string]any{"oldProgress": i % 100, "newProgress": i%100 + 1, "delta": 1, "formatted": strconv.Itoa(i%100+1) + "%"}
}

// event is the i-th event with the headers ingest writes.
func (f *fixture) event(i int) *bus.Event {
	key := string(f.keys[i%aggregates])
	return &bus.Event{ID: "evt-" + strconv.Itoa(i), Type: eventType, AggregateID: key, AggregateType: "WorkEffort",
		AggregateVersion: int64(i/aggregates + 1), Time: time.Now().UTC(), Source: "/pyrite/ingest"}
}

// record is the i-th event as a Pyrite record: Confluent-framed Avro and CloudEvents headers.
func (f *fixture) record(b *testing.B, topic string, i int) *kgo.Record {
	value, err := f.codec.Encode(f.sch, data(i))
	if err != nil {
		b.Fatal(err)
	}
	ev := f.event(i)
	return &kgo.Record{Topic: topic, Key: f.keys[i%aggregates], Value: value, Headers: ev.Headers()}
}

// settle collects the garbage the side before left, so that every side starts from a
// collected heap: without it the next side's allocations swept and marked the previous
// side's garbage (200,000 records and their buffers), and Pyrite's producer, always measured
// after franz-go's, swung from 2.5 to 6.0 us of CPU per message between runs (2.4 to 3.6
// with it, 4 runs of each binary alternating twice).
func settle() { runtime.GC() }

// rate is n events over d, per second.
func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// BenchmarkRunner consumes the same pre-produced Pyrite records (Confluent-framed Avro
// ProgressUpdated values with CloudEvents headers, 3 partitions) on one in-process broker
// three times, each in its own consumer group, and decodes each value, hands it to one
// handler and commits:
//   - pyrite: internal/bus's Runner with the CodecDecoder and a Bus with one handler;
//   - watermill: watermill-kafka's subscriber (Sarama consumer group) with Watermill's default
//     settings but the oldest offset, one goroutine per partition reading its channel; the
//     handler decodes the Avro body with hamba/avro into a map (the schema parsed once) and
//     acks;
//   - franz-go: a plain group consumer with no decoding, committing after each poll: the
//     ceiling.
//
// Each rate runs from the group's first delivered record to its last, so joining the group
// is left out on every side. It reports pyrite's rate, Watermill's, the ceiling, pyrite's
// multiple of Watermill and its share of the ceiling, and each side's CPU per message (the
// process's, over the same span; x-watermill-cpu is Watermill's over pyrite's).
func BenchmarkRunner(b *testing.B) {
	f := newFixture(b)
	topic := f.topic(b, "bench.runner")
	f.topic(b, "bench.runner.dlq")
	produced := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.s.Brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]*kgo.Record, 0, 5000)
	for i := range records {
		batch = append(batch, f.record(b, topic, i))
		if len(batch) == cap(batch) {
			if err := cl.ProduceSync(context.Background(), batch...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	cl.Close()
	b.Logf("produced %d records in %v", records, time.Since(produced))

	var pyrite, wm, ceiling []result
	b.ResetTimer()
	for i := range b.N {
		ceiling = append(ceiling, consumeFranz(b, f, topic, fmt.Sprintf("franz-%d", i)))
		settle()
		pyrite = append(pyrite, consumePyrite(b, f, topic, fmt.Sprintf("pyrite-%d", i)))
		settle()
		wm = append(wm, consumeWatermill(b, f, topic, fmt.Sprintf("watermill-%d", i)))
		settle()
	}
	b.StopTimer()
	report(b, pyrite, wm, ceiling)
}

// result is one side's run: messages per second, and the process's CPU time per message
// over the same span (user and system, the in-process broker's included), which holds up
// better than a rate when other work shares the machine.
type result struct{ rate, cpu float64 }

// report reports each side's mean rate and CPU per message, pyrite's multiple of
// Watermill's rate and of its CPU per message, and pyrite's share of the ceiling.
func report(b *testing.B, pyrite, wm, ceiling []result) {
	p, w, c := means(pyrite), means(wm), means(ceiling)
	b.ReportMetric(p.rate, "pyrite-msg/s")
	b.ReportMetric(w.rate, "watermill-msg/s")
	b.ReportMetric(c.rate, "franz-go-msg/s")
	b.ReportMetric(p.rate/w.rate, "x-watermill")
	b.ReportMetric(100*p.rate/c.rate, "%-of-franz-go")
	b.ReportMetric(p.cpu, "pyrite-cpu-us/msg")
	b.ReportMetric(w.cpu, "watermill-cpu-us/msg")
	b.ReportMetric(c.cpu, "franz-go-cpu-us/msg")
	b.ReportMetric(w.cpu/p.cpu, "x-watermill-cpu")
}

func means(rs []result) result {
	var m result
	for _, r := range rs {
		m.rate += r.rate / float64(len(rs))
		m.cpu += r.cpu / float64(len(rs))
	}
	return m
}

// clock times a run from its first delivery to its last.
type clock struct {
	n        atomic.Int64
	first    atomic.Int64 // unix nanos of the first delivery
	cpuFirst atomic.Int64 // the process's CPU time at the first delivery
	done     chan struct{}
	last     time.Time
	cpuLast  time.Duration
	want     int64
	b        *testing.B
}

func newClock(b *testing.B, want int) *clock {
	return &clock{done: make(chan struct{}), want: int64(want), b: b}
}

func (c *clock) tick() {
	n := c.n.Add(1)
	if n == 1 {
		c.cpuFirst.Store(int64(stacktest.ProcessCPU(c.b)))
		c.first.Store(time.Now().UnixNano())
	}
	if n == c.want {
		c.last = time.Now()
		c.cpuLast = stacktest.ProcessCPU(c.b)
		close(c.done)
	}
}

func (c *clock) wait(b *testing.B, what string) result {
	b.Helper()
	select {
	case <-c.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: %d of %d records after 5 minutes", what, c.n.Load(), c.want)
	}
	return result{rate: rate(int(c.want-1), c.last.Sub(time.Unix(0, c.first.Load()))),
		cpu: float64((c.cpuLast - time.Duration(c.cpuFirst.Load())).Microseconds()) / float64(c.want-1)}
}

func consumeFranz(b *testing.B, f *fixture, topic, group string) result {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.s.Brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	c := newClock(b, records)
	ctx := context.Background()
	for c.n.Load() < records {
		fs := cl.PollRecords(ctx, 5000)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		fs.EachRecord(func(*kgo.Record) { c.tick() })
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return c.wait(b, "franz-go")
}

func consumePyrite(b *testing.B, f *fixture, topic, group string) result {
	b.Helper()
	files, err := schemas.All()
	if err != nil {
		b.Fatal(err)
	}
	dec, err := bus.NewCodecDecoder(f.codec, f.s.Topology, files)
	if err != nil {
		b.Fatal(err)
	}
	c := newClock(b, records)
	bs := bus.New(bus.WithLogSize(0))
	if _, err := bs.On(eventType, func(context.Context, *bus.Event) error { c.tick(); return nil }, bus.Options{Name: "count"}); err != nil {
		b.Fatal(err)
	}
	r, err := bus.NewRunner(bus.RunnerConfig{Group: group, Topics: []string{topic}, DLQTopic: topic + ".dlq", Decoder: dec, Bus: bs},
		kgo.SeedBrokers(f.s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	got := c.wait(b, "pyrite")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return got
}

func consumeWatermill(b *testing.B, f *fixture, topic, group string) result {
	b.Helper()
	schema, err := avro.Parse(f.sch.Text)
	if err != nil {
		b.Fatal(err)
	}
	cfg := kafka.DefaultSaramaSubscriberConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{Brokers: f.s.Brokers, Unmarshaler: kafka.DefaultMarshaler{},
		OverwriteSaramaConfig: cfg, ConsumerGroup: group}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	c := newClock(b, records)
	var failed atomic.Value
	var wg sync.WaitGroup
	for range partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for msg := range msgs {
				var v map[string]any
				if err := avro.Unmarshal(schema, msg.Payload[5:], &v); err != nil { // past the Confluent frame
					failed.CompareAndSwap(nil, err)
					msg.Nack()
					continue
				}
				handle(v)
				msg.Ack()
				c.tick()
			}
		}()
	}
	got := c.wait(b, "watermill")
	cancel()
	if err := sub.Close(); err != nil {
		b.Fatal(err)
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return got
}

// handle is the one handler on the Watermill side; it reads a field as a handler would.
func handle(v map[string]any) {
	if _, ok := v["newProgress"]; !ok {
		panic("no newProgress")
	}
}

// BenchmarkProducer encodes and produces the same events three ways, each on a fresh
// in-process broker, from 16 goroutines in synchronous batches of 100 (each call waits for
// the broker's acknowledgement of its batch):
//   - pyrite: the codec's Encode (Confluent framing) plus CloudEvents headers, written with
//     ingest's idempotent producer (acks=all, murmur2 keys);
//   - watermill: hamba/avro's Marshal with the Confluent frame, headers as metadata,
//     published with watermill-kafka's publisher (Watermill's default Sarama settings);
//   - franz-go: the pre-encoded records with ProduceSync (acks=all): the ceiling.
//
// It reports each rate, pyrite's multiple of Watermill and its share of the ceiling, and
// each side's CPU per message as BenchmarkRunner does.
func BenchmarkProducer(b *testing.B) {
	var pyrite, wm, ceiling []result
	for range b.N {
		ceiling = append(ceiling, produceFranz(b))
		settle()
		pyrite = append(pyrite, producePyrite(b))
		settle()
		wm = append(wm, produceWatermill(b))
		settle()
	}
	report(b, pyrite, wm, ceiling)
}

const (
	producers = 16
	perCall   = 100
)

// produceLoad calls produce from producers goroutines with batches [from, from+perCall)
// until records events were sent, and returns events per second.
func produceLoad(b *testing.B, produce func(from int) error) result {
	b.Helper()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	cpu0 := stacktest.ProcessCPU(b)
	start := time.Now()
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				from := int(next.Add(perCall)) - perCall
				if from >= records {
					return
				}
				if err := produce(from); err != nil {
					failed.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	cpu := stacktest.ProcessCPU(b) - cpu0
	return result{rate: rate(records, elapsed), cpu: float64(cpu.Microseconds()) / records}
}

func produceFranz(b *testing.B) result {
	f := newFixture(b)
	topic := f.topic(b, "bench.produce")
	recs := make([]*kgo.Record, records)
	for i := range recs {
		recs[i] = f.record(b, topic, i)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.s.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	return produceLoad(b, func(from int) error {
		return cl.ProduceSync(context.Background(), recs[from:from+perCall]...).FirstErr()
	})
}

func producePyrite(b *testing.B) result {
	f := newFixture(b)
	topic := f.topic(b, "bench.produce")
	prod, err := ingest.NewKafka("bench-producer", 1, nil, kgo.SeedBrokers(f.s.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	return produceLoad(b, func(from int) error {
		recs := make([]*kgo.Record, perCall)
		for j := range recs {
			i := from + j
			value, err := f.codec.Encode(f.sch, data(i))
			if err != nil {
				return err
			}
			recs[j] = &kgo.Record{Topic: topic, Key: f.keys[i%aggregates], Value: value, Headers: f.event(i).Headers()}
		}
		return prod.ProduceSync(context.Background(), recs...).FirstErr()
	})
}

func produceWatermill(b *testing.B) result {
	f := newFixture(b)
	topic := f.topic(b, "bench.produce")
	schema, err := avro.Parse(f.sch.Text)
	if err != nil {
		b.Fatal(err)
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: f.s.Brokers, Marshaler: kafka.DefaultMarshaler{}}, watermill.NopLogger{})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	frame := []byte{0, 0, 0, 0, byte(f.sch.ID)} // Confluent's magic byte and schema id (ids here are < 256)
	if f.sch.ID > 255 {
		b.Fatalf("schema id %d needs a wider frame", f.sch.ID)
	}
	return produceLoad(b, func(from int) error {
		msgs := make([]*message.Message, perCall)
		for j := range msgs {
			i := from + j
			body, err := avro.Marshal(schema, data(i))
			if err != nil {
				return err
			}
			msg := message.NewMessage(watermill.NewUUID(), append(frame[:len(frame):len(frame)], body...))
			for _, h := range f.event(i).Headers() {
				msg.Metadata.Set(h.Key, string(h.Value))
			}
			msgs[j] = msg
		}
		return pub.Publish(topic, msgs...)
	})
}
