package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/pyrite-dev/pyrite/internal/devkafka"
)

const txnListUsage = `
Lists open transactions per partition: every producer whose transactional
records on a partition have no COMMIT or ABORT marker yet, with the offset
its transaction started at (the partition's last stable offset cannot pass
it, so read_committed consumers wait behind it) and its transactional ID.
With TOPIC arguments, only those topics. Uses DescribeProducers and
ListTransactions (Kafka 3.0+, KIP-664), which the embedded broker answers
too. A transaction open far longer than its producer's transaction timeout
is hanging: close it with 'pyrite txn abort'.

Exit code 0 when every partition was read, 1 when some could not be (the
others are still printed), 2 on usage errors.`

const txnAbortUsage = `
Closes one open transaction on one partition with an ABORT marker
(WriteTxnMarkers, as Kafka's kafka-transactions.sh abort does), using the
producer epoch and coordinator epoch DescribeProducers reports. Readers skip
its records; the partition's last stable offset moves on. Abort only a
transaction whose producer is gone: a live producer's commit then fails and
it has to start over.

Exit code 0 when the marker was written, 1 when the producer has no open
transaction there or Kafka refused, 2 on usage errors.`

func txnCommands() []command {
	return []command{
		{name: "list", summary: "list open transactions per partition: producer, epoch, start offset, age, transactional id", run: runTxnList},
		{name: "abort", summary: "close a partition's open transaction with an ABORT marker, by producer id", run: runTxnAbort},
	}
}

// openTxn is one open transaction on one partition.
type openTxn struct {
	Topic            string `json:"topic"`
	Partition        int32  `json:"partition"`
	ProducerID       int64  `json:"producerId"`
	ProducerEpoch    int16  `json:"producerEpoch"`
	CoordinatorEpoch int32  `json:"coordinatorEpoch"`
	StartOffset      int64  `json:"startOffset"`
	LastTimestamp    string `json:"lastTimestamp,omitempty"` // RFC 3339, the producer's last write or the transaction's start
	TransactionalID  string `json:"transactionalId,omitempty"`
	State            string `json:"state,omitempty"` // the coordinator's state of the transactional ID
}

// txnListing is the output of pyrite txn list.
type txnListing struct {
	Transactions []openTxn `json:"transactions"`
	Errors       []string  `json:"errors,omitempty"` // partitions that could not be described
}

func runTxnList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite txn list", "pyrite txn list [TOPIC...] [flags]", txnListUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	topics, err := parseArgs(fs, args, 0, "TOPIC...")
	if err != nil {
		return err
	}
	brokers, err := f.validate()
	if err != nil {
		return err
	}
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	out, err := listOpenTxns(ctx, adm, topics...)
	if err != nil {
		return err
	}
	if f.output == "json" {
		if err := printJSON(stdout, out); err != nil {
			return err
		}
	} else {
		if len(out.Transactions) == 0 {
			fmt.Fprintln(stdout, "no open transactions")
		} else {
			rows := make([][]string, 0, len(out.Transactions))
			for _, t := range out.Transactions {
				rows = append(rows, []string{t.Topic, strconv.Itoa(int(t.Partition)), strconv.FormatInt(t.ProducerID, 10),
					strconv.Itoa(int(t.ProducerEpoch)), strconv.FormatInt(t.StartOffset, 10), cmp.Or(t.LastTimestamp, "-"),
					cmp.Or(t.TransactionalID, "-"), cmp.Or(t.State, "-")})
			}
			if err := printTable(stdout, []string{"TOPIC", "PARTITION", "PRODUCER", "EPOCH", "START", "LAST WRITE", "TRANSACTIONAL ID", "STATE"}, rows); err != nil {
				return err
			}
		}
		for _, e := range out.Errors {
			fmt.Fprintf(stdout, "error: %s\n", e)
		}
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("%w: %d partitions could not be described", errFindings, len(out.Errors))
	}
	return nil
}

// listOpenTxns describes the producers of every partition of topics (all
// topics when none) and keeps those with an open transaction, sorted by
// topic, partition and producer ID.
func listOpenTxns(ctx context.Context, adm *kadm.Client, topics ...string) (txnListing, error) {
	out := txnListing{Transactions: []openTxn{}}
	set := kadm.TopicsSet{}
	for _, t := range topics {
		set[t] = nil
	}
	described, err := adm.DescribeProducers(ctx, set)
	if err != nil && len(described) == 0 {
		return out, fmt.Errorf("describe producers: %w", err)
	}
	if err != nil {
		out.Errors = append(out.Errors, err.Error())
	}
	// The transactional IDs, where the coordinator lists them.
	byPID := map[int64]kadm.ListedTransaction{}
	if listed, err := adm.ListTransactions(ctx, nil, nil); err == nil || len(listed) > 0 {
		listed.Each(func(t kadm.ListedTransaction) { byPID[t.ProducerID] = t })
	}
	for _, p := range described.SortedPartitions() {
		if p.Err != nil {
			out.Errors = append(out.Errors, fmt.Sprintf("%s[%d]: %v", p.Topic, p.Partition, p.Err))
			continue
		}
		for _, d := range p.ActiveProducers.Sorted() {
			if d.CurrentTxnStartOffset < 0 {
				continue // idempotent only, or no open transaction here
			}
			t := openTxn{Topic: d.Topic, Partition: d.Partition, ProducerID: d.ProducerID, ProducerEpoch: d.ProducerEpoch,
				CoordinatorEpoch: d.CoordinatorEpoch, StartOffset: d.CurrentTxnStartOffset}
			if d.LastTimestamp > 0 {
				t.LastTimestamp = time.UnixMilli(d.LastTimestamp).UTC().Format(time.RFC3339)
			}
			if l, ok := byPID[d.ProducerID]; ok {
				t.TransactionalID, t.State = l.TxnID, l.State
			}
			out.Transactions = append(out.Transactions, t)
		}
	}
	return out, nil
}

// txnAborted is the output of pyrite txn abort.
type txnAborted struct {
	Aborted openTxn `json:"aborted"`
}

func runTxnAbort(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		f         opsFlags
		topic     string
		partition int
		pid       int64
	)
	fs := newFlagSet("pyrite txn abort", txnAbortUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	fs.StringVar(&topic, "topic", "", "topic of the partition holding the open transaction (required)")
	fs.IntVar(&partition, "partition", -1, "partition holding the open transaction (required)")
	fs.Int64Var(&pid, "producer-id", -1, "producer ID of the open transaction, as pyrite txn list shows it (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var errs []error
	if topic == "" {
		errs = append(errs, errors.New("--topic is required"))
	}
	if partition < 0 {
		errs = append(errs, errors.New("--partition is required (0 or more)"))
	}
	if pid < 0 {
		errs = append(errs, errors.New("--producer-id is required (0 or more)"))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	open, err := listOpenTxns(ctx, adm, topic)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(open.Transactions, func(t openTxn) bool {
		return t.Partition == int32(partition) && t.ProducerID == pid
	})
	if i < 0 {
		return fmt.Errorf("%w: producer %d has no open transaction on %s[%d] (see pyrite txn list %s)", errFindings, pid, topic, partition, topic)
	}
	t := open.Transactions[i]
	if err := devkafka.Abort(ctx, adm, devkafka.HangingTxn{Topic: t.Topic, Partition: t.Partition,
		ProducerID: t.ProducerID, ProducerEpoch: t.ProducerEpoch, CoordinatorEpoch: t.CoordinatorEpoch}); err != nil {
		return fmt.Errorf("abort producer %d on %s[%d]: %w", pid, topic, partition, err)
	}
	if f.output == "json" {
		return printJSON(stdout, txnAborted{Aborted: t})
	}
	fmt.Fprintf(stdout, "aborted the transaction of producer %d (epoch %d) on %s[%d], started at offset %d\n",
		t.ProducerID, t.ProducerEpoch, t.Topic, t.Partition, t.StartOffset)
	return nil
}
