package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestRestartRebuildsVersionsAndIDs closes a store and opens another in the same group: the
// new one rebuilds versions and the dedupe window from the topic.
func TestRestartRebuildsVersionsAndIDs(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup(t)
	st := openStore(t, s, eventstore.Config{Group: group})
	waitReady(t, st)
	var first eventstore.Appended
	for i := range 5 {
		res, err := st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", "we-r", fmt.Sprintf("r-%d", i), int64(i), progress(i, i+1))})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res[0]
		}
	}
	st.Close()

	st2 := openStore(t, s, eventstore.Config{Group: group})
	waitReady(t, st2)
	if v, err := st2.Version(rawTopic, "we-r"); err != nil || v != 5 {
		t.Fatalf("rebuilt version %d, %v", v, err)
	}
	dup, err := st2.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", "we-r", "r-0", 0, progress(0, 1))})
	if err != nil || !dup[0].Duplicate || dup[0].Offset != first.Offset || dup[0].Version != 1 {
		t.Fatalf("retry after restart: %+v, %v", dup, err)
	}
	res, err := st2.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", "we-r", "r-5", 5, progress(5, 6))})
	if err != nil || res[0].Version != 6 {
		t.Fatalf("append after restart: %+v, %v", res, err)
	}
	if n := s.EndOffsets(t, rawTopic)[rawTopic]; n == 0 {
		t.Fatal("nothing written")
	}
}

// TestLostPartitionIsFenced lets another producer take a partition's transactional id (as the
// next owner does): the store's next transaction on it fails and writes nothing, the store
// fences back, catches up with what the other wrote, and goes on from there.
func TestLostPartitionIsFenced(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup(t)
	st := openStore(t, s, eventstore.Config{Group: group})
	waitReady(t, st)
	const agg = "we-fence"
	if _, err := st.Append(ctx(t), []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", agg, "f-1", 0, progress(0, 1))}); err != nil {
		t.Fatal(err)
	}
	route, err := st.Route(rawTopic, []byte(agg))
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionalID(fmt.Sprintf("%s-%s-%d", group, rawTopic, route.Partition)))
	if err != nil {
		t.Fatal(err)
	}
	defer rogue.Close()
	c := ctx(t)
	if _, _, err := rogue.ProducerID(c); err != nil {
		t.Fatal(err)
	}
	rec := s.Record(t, rawTopic, "WorkEffort:ProgressUpdated", agg, 2, progress(1, 2))
	rec.Partition = route.Partition
	if err := rogue.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := rogue.ProduceSync(c, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := rogue.EndTransaction(c, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	before := s.EndOffsets(t, rawTopic)[rawTopic]

	// Its writer is fenced: nothing is written.
	_, err = st.Append(c, []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", agg, "f-2", -1, progress(1, 2))})
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append by the fenced writer: %v", err)
	}
	if after := s.EndOffsets(t, rawTopic)[rawTopic]; after > before+1 { // +1: the abort marker
		t.Fatalf("the fenced writer wrote: end offsets %d -> %d", before, after)
	}
	// It fences back and catches up: the stream is at 2 (the rogue's record).
	var v int64
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, err = st.Version(rawTopic, agg)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || v != 2 {
		t.Fatalf("after fencing back: version %d, %v", v, err)
	}
	res, err := st.Append(c, []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", agg, "f-3", 2, progress(2, 3))})
	if err != nil || res[0].Version != 3 {
		t.Fatalf("append after fencing back: %+v %v", res, err)
	}
	// And the rogue is fenced now.
	if err := rogue.BeginTransaction(); err == nil {
		rec2 := s.Record(t, rawTopic, "WorkEffort:ProgressUpdated", agg, 4, progress(3, 4))
		rec2.Partition = route.Partition
		err = rogue.ProduceSync(c, rec2).FirstErr()
		if err == nil {
			err = rogue.EndTransaction(c, kgo.TryCommit)
		}
		if err == nil {
			t.Fatal("the rogue producer committed after the store fenced it")
		}
	}
	stream, err := st.Read(c, rawTopic, agg, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range stream.Events {
		if ev.Version != int64(i+1) {
			t.Errorf("event %d: version %d", i, ev.Version)
		}
	}
	if len(stream.Events) != 3 {
		t.Errorf("%d events", len(stream.Events))
	}
}

// TestOwnershipIsSharedAndRouted runs two stores in one group: each partition has one ready
// owner, both agree on it, and the other refuses appends for it.
func TestOwnershipIsSharedAndRouted(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup(t)
	a := openStore(t, s, eventstore.Config{Group: group, Advertise: "http://a.test:1"})
	b := openStore(t, s, eventstore.Config{Group: group, Advertise: "http://b.test:2"})
	// Both joined, each owning some.
	deadline := time.Now().Add(30 * time.Second)
	for {
		waitReady(t, a, b)
		sa, sb := a.Status(), b.Status()
		na, nb := 0, 0
		if len(sa.Partitions) != len(sb.Partitions) {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		for i := range sa.Partitions {
			if sa.Partitions[i].Local {
				na++
			}
			if sb.Partitions[i].Local {
				nb++
			}
		}
		if na > 0 && nb > 0 && sa.Generation == sb.Generation {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never shared: %+v %+v", sa, sb)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 40 {
		key := []byte("agg-" + strconv.Itoa(i))
		ra, err := a.Route(rawTopic, key)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := b.Route(rawTopic, key)
		if ra.Owner != rb.Owner || ra.Partition != rb.Partition || ra.Local == rb.Local {
			t.Fatalf("routes disagree: %+v %+v", ra, rb)
		}
		owner, other := a, b
		if rb.Local {
			owner, other = b, a
		}
		if ra.Owner != owner.Self() {
			t.Errorf("route names %q, owner is %q", ra.Owner, owner.Self())
		}
		ev := []eventstore.Pending{pending(t, s, "WorkEffort:ProgressUpdated", string(key), "", 0, progress(0, 1))}
		if _, err := other.Append(context.Background(), ev); !errors.Is(err, eventstore.ErrNotOwner) {
			t.Fatalf("non-owner append: %v", err)
		}
		if _, err := owner.Append(ctx(t), ev); err != nil {
			t.Fatalf("owner append: %v", err)
		}
	}
}
