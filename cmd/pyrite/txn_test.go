package main

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestTxnListAbort leaves a transaction open on a partition, finds it with
// pyrite txn list and closes it with pyrite txn abort: afterwards nothing is
// open, and a read_committed consumer reads past it without its records.
func TestTxnListAbort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addr := cluster.ListenAddrs()[0]
	const topic = "txn-test"
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := runCLI(t, "txn", "list", "--brokers", addr, "--output", "json")
	var listed txnListing
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Transactions) != 0 {
		t.Fatalf("before: exit %d, stdout %s, stderr %s; want no open transactions", code, out, stderr)
	}

	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("hanging"), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b"} {
		if err := p.ProduceSync(ctx, &kgo.Record{Partition: 1, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	code, out, stderr = runCLI(t, "txn", "list", topic, "--brokers", addr, "--output", "json")
	if code != 0 || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Transactions) != 1 {
		t.Fatalf("open: exit %d, stdout %s, stderr %s; want one open transaction", code, out, stderr)
	}
	open := listed.Transactions[0]
	if open.Topic != topic || open.Partition != 1 || open.StartOffset != 0 || open.TransactionalID != "hanging" || open.State != "Ongoing" {
		t.Fatalf("open transaction %+v; want %s[1] from offset 0, transactional id hanging, Ongoing", open, topic)
	}
	if code, out, _ = runCLI(t, "txn", "list", "--brokers", addr); code != 0 || !strings.Contains(out, "hanging") {
		t.Fatalf("text listing: exit %d:\n%s", code, out)
	}

	pid := strconv.FormatInt(open.ProducerID, 10)
	if code, _, stderr = runCLI(t, "txn", "abort", "--brokers", addr, "--topic", topic, "--partition", "0", "--producer-id", pid); code != 1 {
		t.Fatalf("abort on a partition without that transaction: exit %d (%s), want 1", code, stderr)
	}
	if code, _, stderr = runCLI(t, "txn", "abort", "--brokers", addr, "--topic", topic); code != 2 {
		t.Fatalf("abort without --partition and --producer-id: exit %d (%s), want 2", code, stderr)
	}
	code, out, stderr = runCLI(t, "txn", "abort", "--brokers", addr, "--topic", topic, "--partition", "1", "--producer-id", pid, "--output", "json")
	var aborted txnAborted
	if code != 0 || json.Unmarshal([]byte(out), &aborted) != nil || aborted.Aborted.ProducerID != open.ProducerID {
		t.Fatalf("abort: exit %d, stdout %s, stderr %s", code, out, stderr)
	}

	// A record after the aborted ones, outside any transaction: a
	// read_committed consumer reaches it (the last stable offset moved on)
	// and sees nothing of the aborted transaction before it.
	plain, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("after")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {1: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for !slices.Contains(got, "after") {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed consumer did not get past the aborted transaction; read %q", got)
		}
		for _, r := range fs.Records() {
			got = append(got, string(r.Value))
		}
	}
	if len(got) != 1 {
		t.Fatalf("read_committed consumer read %q, want only after", got)
	}
}
