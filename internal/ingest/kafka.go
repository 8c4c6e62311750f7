package ingest

import (
	"time"

	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// Kafka is the ingest Producer on franz-go: one idempotent client (acks=all,
// murmur2 key partitioning) for single events, and a pool of transactional
// clients for batches. Transactional ids are <txnPrefix>-<n>: keep the prefix
// stable per instance so that a restarted instance fences its predecessor's
// unfinished transactions at once instead of leaving them to time out.
type Kafka struct {
	single *kgo.Client
	txns   chan *kgo.Client
	all    []*kgo.Client
}

// NewKafka connects the producers. opts apply to every client (seed brokers,
// ...). With reg set, each client reports kprom metrics under the subsystem
// ingest_kafka, labelled producer="single" or "txn-<n>".
func NewKafka(txnPrefix string, txnClients int, reg prometheus.Registerer, opts ...kgo.Opt) (*Kafka, error) {
	if txnClients <= 0 {
		txnClients = 4
	}
	base := append([]kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 for keyed records, as Kafka's Java client
		// Every record has a caller waiting for its ack, and ProduceSync sends a call's
		// records as soon as they are all buffered when linger is on (without linger the
		// first records of a batch went alone, the rest in further requests): a caller waits
		// for producerLinger only when the topic's partitions are not known yet (its first
		// records). Records still batch while earlier requests are in flight.
		kgo.ProducerLinger(producerLinger),
	}, opts...)
	k := &Kafka{txns: make(chan *kgo.Client, txnClients)}
	withMetrics := func(name string, opts []kgo.Opt) []kgo.Opt {
		if reg == nil {
			return opts
		}
		m := kprom.NewMetrics("pyrite", kprom.Subsystem("ingest_kafka"), kprom.Registerer(reg),
			kprom.WithStaticLabel(prometheus.Labels{"producer": name}))
		return append(slices.Clip(opts), kgo.WithHooks(m))
	}
	single, err := kgo.NewClient(withMetrics("single", base)...)
	if err != nil {
		return nil, fmt.Errorf("ingest producer: %w", err)
	}
	k.single = single
	k.all = append(k.all, single)
	for i := range txnClients {
		cl, err := kgo.NewClient(withMetrics(fmt.Sprintf("txn-%d", i),
			append(slices.Clip(base), kgo.TransactionalID(fmt.Sprintf("%s-%d", txnPrefix, i))))...)
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("ingest transactional producer %d: %w", i, err)
		}
		k.all = append(k.all, cl)
		k.txns <- cl
	}
	return k, nil
}

// ProduceSync writes records with the idempotent producer and waits for acks.
func (k *Kafka) ProduceSync(ctx context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	return k.single.ProduceSync(ctx, rs...)
}

// Transact writes rs in one transaction: all are committed or none.
func (k *Kafka) Transact(ctx context.Context, rs []*kgo.Record) error {
	var cl *kgo.Client
	select {
	case cl = <-k.txns:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { k.txns <- cl }()
	if err := cl.BeginTransaction(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		// Abort with a fresh context: the request's may be what failed.
		actx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		defer cancel()
		aerr := cl.AbortBufferedRecords(actx)
		if eerr := cl.EndTransaction(actx, kgo.TryAbort); eerr != nil {
			aerr = errors.Join(aerr, eerr)
		}
		if aerr != nil {
			return fmt.Errorf("produce in transaction: %w (abort: %v)", err, aerr)
		}
		return fmt.Errorf("produce in transaction: %w", err)
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		actx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		defer cancel()
		_ = cl.EndTransaction(actx, kgo.TryAbort)
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Ping checks that a broker answers.
func (k *Kafka) Ping(ctx context.Context) error { return k.single.Ping(ctx) }

// Flush waits for buffered records of the idempotent producer.
func (k *Kafka) Flush(ctx context.Context) error { return k.single.Flush(ctx) }

// Close closes every client; call after the HTTP server drained.
func (k *Kafka) Close() {
	for _, cl := range k.all {
		cl.Close()
	}
}

const (
	ctxTimeout     = 10 * time.Second
	producerLinger = 5 * time.Millisecond
)
