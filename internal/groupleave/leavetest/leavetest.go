// Package leavetest makes a broker hold a group member's JoinGroup, for tests of shutdown
// while a join is in flight.
package leavetest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Stubborn joins group on topic (which must hold a record) and keeps its assignment without
// ever rejoining: it polls once and never allows a rebalance. The next member to join makes
// the broker wait for it up to its two-minute rebalance timeout, holding that member's
// JoinGroup. It leaves when the test ends. opts go after the defaults: a group whose members
// speak another protocol than kgo's default balancers needs kgo.Balancers.
func Stubborn(t testing.TB, brokers []string, group, topic string, opts ...kgo.Opt) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.WithContext(ctx),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RebalanceTimeout(2 * time.Minute), kgo.SessionTimeout(2 * time.Minute), kgo.HeartbeatInterval(100 * time.Millisecond)},
		opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cl.CloseAllowingRebalance() })
	pctx, pcancel := context.WithTimeout(ctx, 15*time.Second)
	defer pcancel()
	if fs := cl.PollFetches(pctx); fs.NumRecords() == 0 {
		t.Fatalf("the stubborn member of %s got no records of %s: %v", group, topic, fs.Err0())
	}
}

// WaitJoinHeld waits (up to d) until group is rebalancing, that is until a new member's
// JoinGroup is held, and a little more so that the request is surely in flight.
func WaitJoinHeld(t testing.TB, brokers []string, group string, d time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(d)
	for {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err == nil && gs[group].State == "PreparingRebalance" {
			time.Sleep(200 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not start rebalancing within %v (err %v)", group, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
