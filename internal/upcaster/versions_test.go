package upcaster_test

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// TestVersionsAreStamped: whatever version a raw record claims (none, a stale one, a gap),
// its event carries its position among its key's events, and a new upcaster instance (a
// restart, a new owner) continues the count from the events topic. A dead-lettered raw
// record takes no version.
func TestVersionsAreStamped(t *testing.T) {
	e := newEnv(t)
	rec := func(key string, n int, claimed string) *kgo.Record {
		r := &kgo.Record{Topic: rawTopic, Key: []byte(key),
			Value: e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{OldProgress: int32(n - 1), NewProgress: int32(n)})}
		if claimed != "" {
			r.Headers = []kgo.RecordHeader{{Key: upcaster.HeaderAggregateVersion, Value: []byte(claimed)}}
		}
		return r
	}
	poison := &kgo.Record{Topic: rawTopic, Key: []byte("a"), Value: []byte("not framed")}
	e.produce(t, rec("a", 1, ""), rec("a", 2, "1"), rec("b", 1, "7"), poison, rec("a", 3, "2"))
	run := e.start(t, upcaster.Config{TransactionalID: "versions-test"}, "", 0)
	r := e.reader(t, eventsTopic)
	got := r.count(t, 20*time.Second, 4)
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	e.produce(t, rec("a", 4, ""), rec("b", 2, "1"))
	e.start(t, upcaster.Config{TransactionalID: "versions-test"}, "", 0)
	got = r.count(t, 20*time.Second, 6)

	want := map[string][]string{"a": {"1", "2", "3", "4"}, "b": {"1", "2"}}
	have := map[string][]string{}
	for _, ev := range got {
		v, _ := header(ev, upcaster.HeaderAggregateVersion)
		have[string(ev.Key)] = append(have[string(ev.Key)], v)
	}
	for k, vs := range want {
		if !slices.Equal(have[k], vs) {
			t.Errorf("%s: versions %v, want %v", k, have[k], vs)
		}
	}
	if len(got) != 6 {
		t.Errorf("%d events, want 6", len(got))
	}
}
