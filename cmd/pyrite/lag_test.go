package main

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestLagCaughtUpAfterTransactions: a group that committed the offset after the last
// record of a transactionally written topic is caught up: lag 0, even though each
// transaction's commit marker takes an offset past it (the end offset counts it; the last
// stable offset is where a read_committed consumer can get to).
func TestLagCaughtUpAfterTransactions(t *testing.T) {
	s := stacktest.Start(t)
	const topic, group = "pyrite.work-effort.raw", "lag-test"
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.TransactionalID("lag-test"), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for range 2 { // two transactions: two commit markers
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(t.Context(), &kgo.Record{Key: []byte("we-1"), Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	// What a read_committed consumer commits once it processed both records: the offset
	// after the last one.
	cons, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var last *kgo.Record
	for n := 0; n < 2; {
		fs := cons.PollFetches(t.Context())
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { last = r; n++ })
	}
	commits := kadm.Offsets{}
	commits.Add(kadm.Offset{Topic: topic, Partition: last.Partition, At: last.Offset + 1, LeaderEpoch: -1})
	if err := s.Admin.CommitAllOffsets(t.Context(), group, commits); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := runCLI(t, append([]string{"lag", group, "--output", "json"}, opsArgs(s)...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got []groupLag
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if len(got) != 1 || got[0].Lag != 0 {
		t.Fatalf("lag of a caught-up group = %+v, want 0", got)
	}
	for _, p := range got[0].Partitions {
		if p.Partition == last.Partition && (p.End != last.Offset+2 || p.Lag != 0) {
			t.Errorf("partition %+v: want end (last stable offset, after the marker) %d and lag 0", p, last.Offset+2)
		}
	}
}
