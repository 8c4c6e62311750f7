package workeffort_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

func ExampleApplyEvent() {
	dir, err := os.MkdirTemp("", "pyrite-workeffort-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	rm := workeffort.ReadModel() // its table comes with its migrations
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "projector.db"), store.WithMigrations(rm.Name, rm.Migrations))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	events := []store.Event{
		{Type: workeffort.TypeCreated, AggregateID: "we-1", AggregateVersion: 1, Time: at,
			Data:  map[string]any{"title": "Ship it", "description": nil, "createdAt": at, "assignee": nil},
			Topic: "pyrite.workeffort.events", Partition: 2, Offset: 40},
		{Type: workeffort.TypeProgressUpdated, AggregateID: "we-1", AggregateVersion: 2, Time: at,
			Data:  map[string]any{"oldProgress": 0, "newProgress": 25, "delta": 25, "formatted": "25%"},
			Topic: "pyrite.workeffort.events", Partition: 2, Offset: 41},
	}
	if err := s.ApplyBatch(ctx, workeffort.Projection, events, workeffort.ApplyEvent); err != nil {
		fmt.Println(err)
		return
	}
	we, _, _ := workeffort.Get(ctx, s, "we-1")
	pos, _ := s.Positions(ctx, workeffort.Projection)
	fmt.Println(we.Title, we.Status, we.Progress, we.Version)
	fmt.Println(pos)
	// Output:
	// Ship it planned 25 2
	// map[{pyrite.workeffort.events 2}:42]
}
