package deployment_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/store/storetest"
)

func TestProcessState(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			processState(t, storetest.Open(t, b, store.WithMigrations(deployment.Group, deployment.Migrations())))
		})
	}
}

func processState(t *testing.T, s *store.Store) {
	base := time.UnixMilli(1_700_000_000_000).UTC()
	put := func(p *deployment.Process) error {
		return s.Update(t.Context(), "deployment", func(tx *store.Tx) error { return deployment.PutProcess(tx, p) })
	}
	p := deployment.Process{ProcessID: "p-1", WorkEffortID: "we-1", State: "testing", Step: "test",
		CommandID: "c-1", CommandType: "Deployment:RunTests", Deadline: base.Add(time.Minute), StartedAt: base, CorrelationID: "corr"}
	if err := put(&p); err != nil || p.Version != 1 {
		t.Fatalf("insert: version %d, err %v", p.Version, err)
	}
	t.Run("insert of an existing process conflicts", func(t *testing.T) {
		again := p
		again.Version = 0
		if err := put(&again); !errors.Is(err, deployment.ErrConflict) {
			t.Errorf("err %v, want ErrConflict", err)
		}
	})
	t.Run("update with a stale version conflicts", func(t *testing.T) {
		stale := p
		stale.Version = 7
		if err := put(&stale); !errors.Is(err, deployment.ErrConflict) {
			t.Errorf("err %v, want ErrConflict", err)
		}
	})
	t.Run("update and read back", func(t *testing.T) {
		p.State, p.Step, p.Artifact = "building", "build", "img:1"
		if err := put(&p); err != nil || p.Version != 2 {
			t.Fatalf("update: version %d, err %v", p.Version, err)
		}
		got, ok, err := deployment.LoadProcess(t.Context(), s, "p-1")
		if err != nil || !ok {
			t.Fatalf("found %v, err %v", ok, err)
		}
		got.UpdatedAt, p.UpdatedAt = time.Time{}, time.Time{}
		if got != p {
			t.Errorf("got %+v\nwant %+v", got, p)
		}
	})
	t.Run("stream version, unknown as -1", func(t *testing.T) {
		for _, v := range []int64{4, -1, 0} {
			p.StreamVersion = v
			if err := put(&p); err != nil {
				t.Fatal(err)
			}
			got, _, err := deployment.LoadProcess(t.Context(), s, "p-1")
			if err != nil || got.StreamVersion != v {
				t.Errorf("stream version %d read back as %d (%v)", v, got.StreamVersion, err)
			}
		}
	})
	t.Run("due deadlines", func(t *testing.T) {
		for i, d := range []time.Duration{3 * time.Minute, 2 * time.Minute, 0} {
			q := deployment.Process{ProcessID: "q-" + string(rune('a'+i)), WorkEffortID: "we", State: "testing", StartedAt: base}
			if d > 0 {
				q.Deadline = base.Add(d)
			}
			if err := put(&q); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name string
			now  time.Time
			want []string
		}{
			{"none yet", base, nil},
			{"at the deadline", base.Add(time.Minute), []string{"p-1"}},
			{"earliest first, no deadline never", base.Add(time.Hour), []string{"p-1", "q-b", "q-a"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				due, err := deployment.DueProcesses(t.Context(), s, tt.now, 0)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, d := range due {
					got = append(got, d.ProcessID)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("due %v, want %v", got, tt.want)
				}
			})
		}
	})
}
