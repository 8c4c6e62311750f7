package upcaster_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// TestRawDuplicateIsUpcastOnce: the same raw record twice on a raw partition (key, value,
// every header, ce_id: an outside idempotent producer's retry that kfake wrote twice after a
// SIGKILL) is one event; so is a third copy written after a restart of the upcaster, whose
// window is rebuilt from the raw partition. A record equal but for its ce_id is an event.
func TestRawDuplicateIsUpcastOnce(t *testing.T) {
	e := newEnv(t)
	rec := func(id string) *kgo.Record {
		return &kgo.Record{Topic: rawTopic, Key: []byte("w1"),
			Value:   e.frame(t, progress, 2, workeffort.ProgressUpdatedV2{OldProgress: 1, NewProgress: 2, Delta: 1}),
			Headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte(id)}, {Key: "ce_source", Value: []byte("/svc")}}}
	}
	e.produce(t, rec("id-1"), rec("id-1"), rec("id-2"))
	r := e.start(t, upcaster.Config{}, "", 0)
	rd := e.reader(t, eventsTopic)
	rd.count(t, 20*time.Second, 2)
	time.Sleep(300 * time.Millisecond)
	if got := rd.until(t, time.Second, "nothing more", func([]*kgo.Record) bool { return true }); len(got) != 2 {
		t.Fatalf("%d events from 3 raw records of which 1 repeats, want 2", len(got))
	}
	waitFor(t, 10*time.Second, "the repeat to be counted", func() bool {
		return metricValue(t, r, "pyrite_upcaster_duplicates_total", "topic", rawTopic) == 1
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	e.produce(t, rec("id-1"), rec("id-3"))
	r = e.start(t, upcaster.Config{TransactionalID: "test-restarted"}, "", 0)
	got := rd.count(t, 20*time.Second, 3)
	waitFor(t, 10*time.Second, "the repeat after the restart to be counted", func() bool {
		return metricValue(t, r, "pyrite_upcaster_duplicates_total", "topic", rawTopic) == 1
	})
	time.Sleep(300 * time.Millisecond)
	got = rd.until(t, time.Second, "nothing more", func([]*kgo.Record) bool { return true })
	var ids []string
	for _, g := range got {
		id, _ := header(g, "ce_id")
		ids = append(ids, id)
	}
	if len(ids) != 3 || ids[0] != "id-1" || ids[1] != "id-2" || ids[2] != "id-3" {
		t.Errorf("events with ce_ids %v, want [id-1 id-2 id-3]", ids)
	}
}
