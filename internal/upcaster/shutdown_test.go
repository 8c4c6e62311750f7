package upcaster_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/groupleave/leavetest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// TestStopWhileJoinIsHeld: an upcaster stopped while the broker holds its JoinGroup (another
// member of its group does not rejoin, so the broker waits for it up to its two-minute
// rebalance timeout) returns within seconds, not when the join ends.
func TestStopWhileJoinIsHeld(t *testing.T) {
	e := newEnv(t)
	e.produce(t, &kgo.Record{Topic: rawTopic, Key: []byte("we-1"), Value: []byte("not framed")})
	leavetest.Stubborn(t, e.Brokers, upcaster.DefaultConsumerGroup, rawTopic)

	r := e.start(t, upcaster.Config{}, "", 0)
	leavetest.WaitJoinHeld(t, e.Brokers, upcaster.DefaultConsumerGroup, 30*time.Second)

	start := time.Now()
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("the upcaster took %v to stop while its join was held", took)
	}
}
