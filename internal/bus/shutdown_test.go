package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/groupleave/leavetest"
)

// TestRunnerStopsWhileItsJoinIsHeld: a runner asked to stop while the broker holds its
// JoinGroup (another member of the group does not rejoin, so the broker waits for it up to
// its two-minute rebalance timeout) returns within seconds, not when the join ends. CI saw
// a projector miss its minute after SIGTERM this way.
func TestRunnerStopsWhileItsJoinIsHeld(t *testing.T) {
	k := newKafka(t)
	k.produce(0, "a", "WorkEffort:Created", "1")
	leavetest.Stubborn(t, k.addrs, group, srcTopic)

	r, err := bus.NewRunner(bus.RunnerConfig{Group: group, Topics: []string{srcTopic}, DLQTopic: dlqTopic,
		Decoder: testDecoder{}, Bus: bus.New()},
		kgo.SeedBrokers(k.addrs...), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	leavetest.WaitJoinHeld(t, k.addrs, group, 15*time.Second)

	start := time.Now()
	cancel()
	select {
	case <-done: // a final commit error does not matter: the runner never owned a partition
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Run took %v to return after cancel", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel while its join was held")
	}
}
