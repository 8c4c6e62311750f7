package devkafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Start checks the data directory dir (see Check), starts the embedded
// broker on it with opts, and closes every hanging transaction with a real
// ABORT marker before returning, so before any client of the caller's
// starts. On an error nothing is left running. The caller closes the
// cluster; a clean Close saves the broker's state for a fast next start.
// clientOpts are how the aborting client connects (TLS, SASL as a superuser
// when the broker authenticates); nil for a plain broker.
func Start(ctx context.Context, dir string, clientOpts []kgo.Opt, opts ...kfake.Opt) (*kfake.Cluster, Report, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, Report{}, fmt.Errorf("data directory: %w", err)
	}
	rep, err := Check(dir)
	if err != nil {
		return nil, rep, err
	}
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.DataDir(dir)}, opts...)...)
	if err != nil {
		return nil, rep, err
	}
	if len(rep.Hanging) > 0 {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ClientID("pyrite-devkafka")}, clientOpts...)...)
		if err == nil {
			err = Abort(ctx, kadm.NewClient(cl), rep.Hanging...)
			cl.Close()
		}
		if err != nil {
			cluster.Close()
			return nil, rep, fmt.Errorf("close hanging transactions: %w", err)
		}
	}
	return cluster, rep, nil
}

// Abort writes an ABORT marker for each transaction to its partition
// (WriteTxnMarkers, the KIP-664 admin path), with the producer ID and epoch
// of its records. Readers with read_committed then skip those records, and
// the marker stays in the log, so every later load of the log agrees. It
// retries transient errors until ctx ends (bounded to a minute).
func Abort(ctx context.Context, adm *kadm.Client, txns ...HangingTxn) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	type pe struct {
		id         int64
		epoch      int16
		coordEpoch int32
	}
	byProducer := map[pe]kadm.TopicsSet{}
	for _, h := range txns {
		k := pe{h.ProducerID, h.ProducerEpoch, h.CoordinatorEpoch}
		ts := byProducer[k]
		ts.Add(h.Topic, h.Partition)
		byProducer[k] = ts
	}
	markers := make([]kadm.TxnMarkers, 0, len(byProducer))
	for k, ts := range byProducer {
		markers = append(markers, kadm.TxnMarkers{ProducerID: k.id, ProducerEpoch: k.epoch, CoordinatorEpoch: k.coordEpoch, Topics: ts})
	}
	for {
		resp, err := adm.WriteTxnMarkers(ctx, markers...)
		if err == nil {
			var errs []error
			resp.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
				if p.Err != nil {
					errs = append(errs, fmt.Errorf("%s[%d] producer %d: %w", p.Topic, p.Partition, p.ProducerID, p.Err))
				}
			})
			if err = errors.Join(errs...); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
