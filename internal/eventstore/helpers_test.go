package eventstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

const rawTopic = "pyrite.work-effort.raw"

var groups atomic.Int64

// uniqueGroup names a consumer group no other test uses.
func uniqueGroup(t testing.TB) string {
	return fmt.Sprintf("es-test-%d-%d", time.Now().UnixNano()%1e6, groups.Add(1))
}

func rawTopics(s *stacktest.Stack) []string {
	var out []string
	for _, tp := range s.Topology.TopicsWithRole(topology.RoleRaw) {
		out = append(out, tp.Name)
	}
	return out
}

// openStore starts a store on the stack; cfg's Topics and Advertise default to the raw topics
// and a made-up address.
func openStore(t testing.TB, s *stacktest.Stack, cfg eventstore.Config) *eventstore.Store {
	t.Helper()
	if cfg.Topics == nil {
		cfg.Topics = rawTopics(s)
	}
	if cfg.Advertise == "" {
		cfg.Advertise = "http://127.0.0.1:1"
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 6 * time.Second
	}
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	rc.CachingEnabled(false)
	c := codec.New(rc)
	chain, err := domain.Chain([]domain.Module{workeffort.Module()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := eventstore.New(cfg, c, upcast.New(c, chain, rc, upcast.WithoutValidation()), s.Topology,
		prometheus.NewRegistry(), kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// waitReady waits until every partition of the stores' topics is owned by one of them and
// ready there.
func waitReady(t testing.TB, stores ...*eventstore.Store) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := map[string]int{}
		total := 0
		for _, st := range stores {
			status := st.Status()
			total = max(total, len(status.Partitions))
			for _, p := range status.Partitions {
				if p.Ready {
					ready[fmt.Sprintf("%s/%d", p.Topic, p.Partition)]++
				}
			}
		}
		ok := total > 0 && len(ready) == total
		for _, n := range ready {
			ok = ok && n == 1
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, st := range stores {
				t.Logf("%+v", st.Status())
			}
			t.Fatal("partitions never all ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pending builds one event to append.
func pending(t testing.TB, s *stacktest.Stack, eventType, aggregateID, id string, expected int64, data map[string]any) eventstore.Pending {
	t.Helper()
	rec := s.Record(t, rawTopic, eventType, aggregateID, 0, data)
	for i, h := range rec.Headers {
		if h.Key == "ce_id" {
			rec.Headers[i].Value = []byte(id)
		}
	}
	return eventstore.Pending{Record: rec, ID: id, Type: eventType, Expected: expected}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}
