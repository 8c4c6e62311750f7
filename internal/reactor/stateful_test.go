package reactor_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// A Stateful with Only calls its handle for the declared types only, and still moves its
// position past the others (which the runner hands it undecoded).
func TestStatefulOnly(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := reactor.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	var handled []string
	s := reactor.NewStateful("pm", "pm", st, reactor.NewOutbox(st, "pm", nil, nil, m, nil), nil,
		func(_ context.Context, ev *bus.Event) (reactor.Apply, error) {
			handled = append(handled, ev.Type)
			return func(*store.Tx) error { return nil }, nil
		})
	if s.Wants() != nil {
		t.Error("Wants before Only is not nil: every type should be decoded")
	}
	if err := s.Only("WorkEffort:Completed", "Deployment:*"); err != nil {
		t.Fatal(err)
	}
	if err := s.Only("Deployment:"); !errors.Is(err, bus.ErrInvalidPattern) {
		t.Errorf("Only with an invalid pattern: %v, want ErrInvalidPattern", err)
	}
	const topic = "pyrite.work-effort.events"
	var evs []*bus.Event
	for i, typ := range []string{"WorkEffort:ProgressUpdated", "WorkEffort:Completed", "Deployment:Started", "WorkEffort:ProgressUpdated"} {
		evs = append(evs, &bus.Event{Type: typ, Origin: &bus.Origin{Topic: topic, Partition: 0, Offset: int64(i)}})
	}
	if err := s.Batch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if want := []string{"WorkEffort:Completed", "Deployment:Started"}; !slices.Equal(handled, want) {
		t.Errorf("handled %v, want %v", handled, want)
	}
	pos, err := st.Positions(ctx, "pm")
	if err != nil {
		t.Fatal(err)
	}
	if got := pos[store.TopicPartition{Topic: topic, Partition: 0}]; got != 4 {
		t.Errorf("position %d, want 4 (past the last, unhandled, event)", got)
	}
}
