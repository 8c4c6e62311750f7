// Package stacktest starts the parts of the Pyrite stack that tests stand
// on: an in-process Kafka (kfake), the dev topology applied to it, the
// project's schema registry over httptest, and every schema in schemas/
// registered in version order. Everything stops when the test ends.
package stacktest

import (
	"context"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/registry"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

// Stack is a running test stack.
type Stack struct {
	Cluster     *kfake.Cluster
	Brokers     []string
	RegistryURL string
	Registry    *registry.Registry
	Topology    *topology.Topology
	Admin       *kadm.Client
	// SchemaIDs maps "<subject>/v<N>" to the registered id.
	SchemaIDs map[string]int
	// Wiring is the seed's domain modules' (WorkEffort, Deployment), as the mains hand it to
	// the upcaster and ingest.
	domain.Wiring

	codec *codec.Codec
}

// Modules are the seed's domain modules (WorkEffort, Deployment), which every stack declares.
func Modules() []domain.Module { return []domain.Module{workeffort.Module(), deployment.Module()} }

// Topology declares profile p's topology for Modules, then opts, as the mains declare theirs
// from their module list: for tests that need the names, not a cluster.
func Topology(t testing.TB, p topology.Profile, opts ...topology.Option) *topology.Topology {
	t.Helper()
	w, err := domain.Wire(Modules())
	if err != nil {
		t.Fatal(err)
	}
	top, err := topology.New(p, append(w.Topology(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// Start brings a stack up and registers cleanups on t. extra are domain modules beside the
// seed's: their aggregates' topics and groups are declared and their schemas registered.
func Start(t testing.TB, extra ...domain.Module) *Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &Stack{Cluster: c, Brokers: c.ListenAddrs(), SchemaIDs: map[string]int{}}
	if s.Wiring, err = domain.Wire(append(Modules(), extra...)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.Admin = kadm.NewClient(cl)
	if s.Topology, err = topology.New(topology.Dev, s.Wiring.Topology()...); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Topology.Ensure(ctx, s.Admin); err != nil {
		t.Fatalf("apply topology: %v", err)
	}
	if s.Registry, err = registry.New(ctx, s.Brokers); err != nil {
		t.Fatalf("schema registry: %v", err)
	}
	t.Cleanup(s.Registry.Close)
	srv := httptest.NewServer(s.Registry.Handler())
	t.Cleanup(srv.Close)
	s.RegistryURL = srv.URL

	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, s.Wiring.Schemas...)
	rc := srclient.CreateSchemaRegistryClient(s.RegistryURL)
	for _, f := range files {
		sch, err := rc.CreateSchema(f.Subject, f.Text, srclient.Avro)
		if err != nil {
			t.Fatalf("register %s: %v", f.Path, err)
		}
		s.SchemaIDs[key(f.Subject, f.Version)] = sch.ID()
	}
	return s
}

// SchemaID returns the id registered for subject version v.
func (s *Stack) SchemaID(subject string, v int) int { return s.SchemaIDs[key(subject, v)] }

func key(subject string, v int) string { return subject + "/v" + strconv.Itoa(v) }

// EndOffsets sums the end offsets of every partition of each topic.
func (s *Stack) EndOffsets(t testing.TB, topics ...string) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := s.Admin.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Topic] += o.Offset
	})
	return out
}

// Consume reads n records of topic from the start with read_committed,
// failing the test if they do not arrive within the deadline.
func (s *Stack) Consume(t testing.TB, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records from %s before the deadline", len(out), n, topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", tp, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// ProcessCPU is the CPU time the process (load generator, stages and the in-process broker
// alike) used so far, user and system: CPU per event is steadier than a rate on a machine
// other work shares.
func ProcessCPU(t testing.TB) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
