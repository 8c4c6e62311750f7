package reactor_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
)

func TestParseReplay(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		value   *string
		want    reactor.Replay
		wantErr bool
	}{
		{name: "mark", key: "webhooks/pyrite.work-effort.events/2",
			value: ptr(`{"group":"webhooks","topic":"pyrite.work-effort.events","partition":2,"until":42,"at":"2026-01-02T03:04:05Z"}`),
			want:  reactor.Replay{Group: "webhooks", Topic: "pyrite.work-effort.events", Partition: 2, Until: 42, At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}},
		{name: "topic with slashes stays whole", key: "g/a/b/0", value: ptr(`{"group":"g","topic":"a/b","partition":0,"until":0}`),
			want: reactor.Replay{Group: "g", Topic: "a/b", Partition: 0, Until: 0}},
		{name: "tombstone", key: "g/t/1", want: reactor.Replay{Group: "g", Topic: "t", Partition: 1, Until: -1}},
		{name: "key without partition", key: "g/t", value: ptr(`{}`), wantErr: true},
		{name: "key with negative partition", key: "g/t/-1", value: ptr(`{}`), wantErr: true},
		{name: "empty group", key: "/t/1", value: ptr(`{}`), wantErr: true},
		{name: "not JSON", key: "g/t/1", value: ptr(`until=4`), wantErr: true},
		{name: "until missing", key: "g/t/1", value: ptr(`{"group":"g","topic":"t","partition":1}`), wantErr: true},
		{name: "until negative", key: "g/t/1", value: ptr(`{"group":"g","topic":"t","partition":1,"until":-5}`), wantErr: true},
		{name: "value names another partition", key: "g/t/1", value: ptr(`{"group":"g","topic":"t","partition":2,"until":5}`), wantErr: true},
		{name: "value names another group", key: "g/t/1", value: ptr(`{"group":"h","topic":"t","partition":1,"until":5}`), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v []byte
			if tt.value != nil {
				v = []byte(*tt.value)
			}
			got, err := reactor.ParseReplay([]byte(tt.key), v)
			if tt.wantErr {
				if !errors.Is(err, reactor.ErrBadReplay) {
					t.Errorf("err %v, want ErrBadReplay", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	t.Run("Record round trip", func(t *testing.T) {
		rp := reactor.Replay{Group: "github", Topic: "pyrite.work-effort.events", Partition: 1, Until: 9, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
		r := rp.Record()
		if string(r.Key) != "github/pyrite.work-effort.events/1" || r.Topic != "pyrite.replays" {
			t.Errorf("record %s on %s", r.Key, r.Topic)
		}
		if got, err := reactor.ParseReplay(r.Key, r.Value); err != nil || got != rp {
			t.Errorf("parsed %+v, %v", got, err)
		}
	})
}

func ptr(s string) *string { return &s }

func FuzzParseReplay(f *testing.F) {
	f.Add([]byte("g/t/1"), []byte(`{"group":"g","topic":"t","partition":1,"until":5}`))
	f.Add([]byte("g/t/1"), []byte(nil))
	f.Add([]byte("//"), []byte(`{"until":1e99}`))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		rp, err := reactor.ParseReplay(key, value)
		if err != nil {
			if !errors.Is(err, reactor.ErrBadReplay) {
				t.Fatalf("error %v does not wrap ErrBadReplay", err)
			}
			return
		}
		if reactor.ReplayKey(rp.Group, rp.Topic, rp.Partition) != string(key) {
			t.Fatalf("key %q parsed as %+v", key, rp)
		}
		if value != nil && rp.Until < 0 || rp.Partition < 0 {
			t.Fatalf("accepted %+v", rp)
		}
	})
}

func TestEventID(t *testing.T) {
	a := reactor.EventID("ev-1", "github/issue-created")
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{"same inputs", reactor.EventID("ev-1", "github/issue-created"), true},
		{"other step", reactor.EventID("ev-1", "github/issue-closed"), false},
		{"other cause", reactor.EventID("ev-2", "github/issue-created"), false},
		{"no ambiguity at the boundary", reactor.EventID("ev-1github/", "issue-created"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if (a == tt.other) != tt.same {
				t.Errorf("%s vs %s: same = %v", a, tt.other, !tt.same)
			}
		})
	}
}

func TestData(t *testing.T) {
	s := "x"
	ts := time.UnixMilli(1_700_000_000_000).UTC()
	d := reactor.Data{"plain": "a", "ptr": &s, "nilptr": (*string)(nil), "union": map[string]any{"string": "b"},
		"int32": int32(7), "float": float64(3), "frac": 1.5, "time": ts, "millis": int64(1_700_000_000_000), "null": nil}
	strs := []struct {
		key  string
		want string
		ok   bool
	}{{"plain", "a", true}, {"ptr", "x", true}, {"nilptr", "", false}, {"union", "b", true}, {"null", "", false}, {"absent", "", false}, {"int32", "", false}}
	for _, tt := range strs {
		t.Run("string "+tt.key, func(t *testing.T) {
			if got, ok := d.String(tt.key); got != tt.want || ok != tt.ok {
				t.Errorf("got %q %v", got, ok)
			}
		})
	}
	ints := []struct {
		key  string
		want int64
		ok   bool
	}{{"int32", 7, true}, {"float", 3, true}, {"frac", 0, false}, {"plain", 0, false}}
	for _, tt := range ints {
		t.Run("int "+tt.key, func(t *testing.T) {
			if got, ok := d.Int(tt.key); got != tt.want || ok != tt.ok {
				t.Errorf("got %d %v", got, ok)
			}
		})
	}
	for _, key := range []string{"time", "millis"} {
		t.Run("time "+key, func(t *testing.T) {
			if got, ok := d.Time(key); !ok || !got.Equal(ts) {
				t.Errorf("got %v %v", got, ok)
			}
		})
	}
}

// fakeProducer records what it wrote and fails while failing is set.
type fakeProducer struct {
	failing bool
	wrote   []string
}

func (p *fakeProducer) ProduceSync(_ context.Context, rs ...*kgo.Record) kgo.ProduceResults {
	var out kgo.ProduceResults
	for _, r := range rs {
		var err error
		if p.failing {
			err = errors.New("broker down")
		} else {
			p.wrote = append(p.wrote, reactor.HeaderValue(r.Headers, bus.HeaderID))
		}
		out = append(out, kgo.ProduceResult{Record: r, Err: err})
	}
	return out
}

func TestOutboxRelay(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "o.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	prod := &fakeProducer{failing: true}
	ob := reactor.NewOutbox(st, "saga", prod, nil, nil, nil)
	src := store.TopicPartition{Topic: "t", Partition: 0}
	rec := func(id string) *kgo.Record {
		return &kgo.Record{Topic: "pyrite.work-effort.raw", Key: []byte("k"), Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: bus.HeaderID, Value: []byte(id)}}}
	}
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("e-%d", i)
		ids = append(ids, id)
		if err := st.Update(t.Context(), "saga", func(tx *store.Tx) error { return ob.Add(tx, src, rec(id)) }); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a record without ce_id is refused", func(t *testing.T) {
		err := st.Update(t.Context(), "saga", func(tx *store.Tx) error { return ob.Add(tx, src, &kgo.Record{Topic: "x"}) })
		if !bus.IsPermanent(err) {
			t.Errorf("err %v, want permanent", err)
		}
	})
	t.Run("a failed write keeps the records", func(t *testing.T) {
		if err := ob.Flush(t.Context(), store.OutboxFilter{}); err == nil {
			t.Fatal("Flush succeeded with a failing producer")
		}
		if left, _ := st.Outbox(t.Context(), "saga", store.OutboxFilter{}); len(left) != 3 {
			t.Errorf("%d records left, want 3", len(left))
		}
	})
	t.Run("written in order, then deleted", func(t *testing.T) {
		prod.failing = false
		if err := ob.Flush(t.Context(), store.OutboxFilter{}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(prod.wrote, ids) {
			t.Errorf("wrote %v, want %v", prod.wrote, ids)
		}
		if left, _ := st.Outbox(t.Context(), "saga", store.OutboxFilter{}); len(left) != 0 {
			t.Errorf("%d records left", len(left))
		}
		if err := ob.Flush(t.Context(), store.OutboxFilter{}); err != nil || len(prod.wrote) != 3 {
			t.Errorf("second flush wrote %d, err %v", len(prod.wrote), err)
		}
	})
}

// TestReplaysWithoutTopic: a cluster that never had pyrite.replays holds no marks; the
// reader is ready at once instead of waiting for the topic.
func TestReplaysWithoutTopic(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := reactor.NewReplays(nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, kgo.SeedBrokers(c.ListenAddrs()...)) }()
	wctx, wcancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer wcancel()
	if err := r.Wait(wctx); err != nil {
		t.Errorf("not ready: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
