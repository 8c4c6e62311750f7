package projector_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestGroupsRecordTheirReaders: once the projector runs, pyrite.readers holds, for the
// projection and each reactor group, the newest local version of every type it decodes,
// with the instance that recorded it.
func TestGroupsRecordTheirReaders(t *testing.T) {
	s := stacktest.Start(t)
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- projector.Run(ctx, ln, projector.Options{
			Brokers: s.Brokers, Registry: s.RegistryURL, Store: filepath.Join(t.TempDir(), "p.db"), Topology: s.Topology,
			ReadModels: s.ReadModels, Metrics: prometheus.NewRegistry(), InstanceID: "proj-1",
			Reactors: projector.Reactors{Integrations: workeffort.Integrations(), Domain: []reactor.Spec{deployment.Reactor(deployment.Config{})}},
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projector.Run: %v", err)
		}
	}()
	want := map[string]int{ // group -> version of ProgressUpdated it must have recorded
		"work-efforts": 3, "integration": 3, "deployment": 3,
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		set, err := readers.Load(t.Context(), kgo.SeedBrokers(s.Brokers...))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		deploymentTypes := 0
		for _, r := range set.All() {
			if r.Instance != "proj-1" || r.Schema == "" {
				t.Fatalf("reader %+v lacks its instance or schema", r)
			}
			if r.Type == "WorkEffort:ProgressUpdated" {
				got[r.Group] = r.Version
			}
			if r.Group == "deployment" && r.Subject != "" && strings.HasPrefix(r.Type, "Deployment:") {
				deploymentTypes++
			}
		}
		if len(got) == len(want) && got["work-efforts"] == 3 && got["integration"] == 3 && got["deployment"] == 3 && deploymentTypes > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("recorded ProgressUpdated readers %v (deployment types %d), want %v and the deployment group's Deployment types", got, deploymentTypes, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
