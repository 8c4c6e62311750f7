package groupleave_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/groupleave"
)

const (
	topic      = "t"
	group      = "g"
	partitions = 6
)

// member is one static member of group, polling until the test ends; owned is what it was
// assigned last.
type member struct {
	cl     *kgo.Client
	leaver *groupleave.Leaver
	mu     sync.Mutex
	owned  map[int32]bool
}

func join(t *testing.T, brokers []string, instance string) *member {
	t.Helper()
	m := &member{leaver: groupleave.New(), owned: map[int32]bool{}}
	set := func(ps map[string][]int32, on bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[topic] {
			if on {
				m.owned[p] = true
			} else {
				delete(m.owned, p)
			}
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), m.leaver.Opt(),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.InstanceID(instance),
		kgo.HeartbeatInterval(100*time.Millisecond), // the session timeout is kgo's default, 45 s
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { set(ps, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { set(ps, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { set(ps, false) }))
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	go func() {
		for {
			if fs := cl.PollFetches(context.Background()); fs.IsClientClosed() {
				return
			}
		}
	}()
	t.Cleanup(cl.Close)
	return m
}

func (m *member) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.owned)
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// TestStaticMemberLeavesOnClose: a static member (kgo.InstanceID) closed through a Leaver
// leaves its group, so the members that stay take its partitions at once. kgo's own Close
// sends no LeaveGroup for a static member (KIP-345: a restart is to find its partitions
// waiting), so without this they wait out its session timeout, 45 s by default: the 1 -> 3
// -> 1 step of the process crash matrix took about 70 s to recover that way.
func TestStaticMemberLeavesOnClose(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	stay := join(t, brokers, "stay")
	waitUntil(t, 15*time.Second, "the first member owns every partition", func() bool { return stay.count() == partitions })
	goes := join(t, brokers, "goes")
	waitUntil(t, 15*time.Second, "both members own partitions", func() bool {
		return goes.count() > 0 && stay.count()+goes.count() == partitions
	})

	if err := goes.leaver.Close(goes.cl, groupleave.DefaultTimeout); err != nil {
		t.Fatalf("leave: %v", err)
	}
	took := waitUntil(t, 20*time.Second, "the member that stays owns every partition again", func() bool { return stay.count() == partitions })
	t.Logf("the member that stays owned every partition %v after the other closed", took.Round(time.Millisecond))

	adm := kadm.NewClient(stay.cl)
	gs, err := adm.DescribeGroups(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range gs[group].Members {
		if m.InstanceID != nil && *m.InstanceID == "goes" {
			t.Errorf("the closed static member is still in the group: %+v", m)
		}
	}
}
