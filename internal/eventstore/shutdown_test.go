package eventstore_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/groupleave/leavetest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestCloseWhileJoinIsHeld: a store closed while the broker holds its JoinGroup (another
// member of its group does not rejoin, so the broker waits for it up to its two-minute
// rebalance timeout) returns within seconds, not when the join ends. Ingest closes its store
// on SIGTERM; among ingest instances the wait is their 10 s rebalance timeout.
func TestCloseWhileJoinIsHeld(t *testing.T) {
	s := stacktest.Start(t)
	group := uniqueGroup(t)
	s.Produce(t, s.Record(t, rawTopic, "WorkEffort:ProgressUpdated", "we-held", 0, progress(0, 1)))
	leavetest.Stubborn(t, s.Brokers, group, rawTopic, kgo.Balancers(eventstore.Balancer("http://127.0.0.1:2")))

	st := openStore(t, s, eventstore.Config{Group: group})
	leavetest.WaitJoinHeld(t, s.Brokers, group, 15*time.Second)

	start := time.Now()
	closed := make(chan struct{})
	go func() { st.Close(); close(closed) }()
	select {
	case <-closed:
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("Close took %v while its join was held", took)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return within 20s while its join was held")
	}
}
