package upcaster_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// TestLostOffsetCommitDoesNotDuplicate: the group's committed raw offsets go back to the
// start, as when a broker loses the offset commit of a transaction whose records it kept
// (kfake does, when killed between the two), and the upcaster starts again. Every raw record
// must still be on the events topic once.
func TestLostOffsetCommitDoesNotDuplicate(t *testing.T) {
	e := newEnv(t)
	keys := []string{"w1", "w2", "w3", "w4"}
	batch := func(b, n int) []*kgo.Record {
		var rs []*kgo.Record
		for i := range n {
			rs = append(rs, &kgo.Record{Topic: rawTopic, Key: []byte(keys[i%len(keys)]),
				Headers: []kgo.RecordHeader{{Key: "test-batch", Value: []byte(fmt.Sprint(b))}},
				Value:   e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{OldProgress: int32(i), NewProgress: int32(i + 1)})})
		}
		return rs
	}
	e.produce(t, batch(1, 20)...)
	run := e.start(t, upcaster.Config{}, "", 0)
	e.reader(t, eventsTopic).count(t, 30*time.Second, 20)
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	committed, err := adm.FetchOffsets(ctx, upcaster.DefaultConsumerGroup)
	if err != nil {
		t.Fatal(err)
	}
	rewound := kadm.Offsets{}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.Topic == rawTopic {
			rewound.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: 0, LeaderEpoch: -1})
		}
	})
	if len(rewound) == 0 {
		t.Fatal("the upcaster committed no raw offsets")
	}
	if _, err := adm.CommitOffsets(ctx, upcaster.DefaultConsumerGroup, rewound); err != nil {
		t.Fatal(err)
	}

	e.produce(t, batch(2, 5)...)
	e.start(t, upcaster.Config{}, "", 0)
	second := 0
	recs := e.reader(t, eventsTopic).until(t, 30*time.Second, "the 5 records written after the rewind", func(rs []*kgo.Record) bool {
		second = 0
		for _, r := range rs {
			if b, _ := header(r, "test-batch"); b == "2" {
				second++
			}
		}
		return second == 5
	})
	copies := map[string]int{}
	for _, r := range recs {
		p, _ := header(r, upcaster.HeaderRawPartition)
		o, _ := header(r, upcaster.HeaderRawOffset)
		copies[p+"@"+o]++
	}
	for pos, n := range copies {
		if n != 1 {
			t.Errorf("raw record %s is on the events topic %d times", pos, n)
		}
	}
	if len(recs) != 25 {
		t.Errorf("%d events for 25 raw records", len(recs))
	}
}
