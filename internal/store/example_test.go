package store_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing/fstest"

	"github.com/pyrite-dev/pyrite/internal/store"
)

// A projection of a domain module: its table comes with WithMigrations, its apply function
// folds each event in the batch's transaction, and its positions commit with it.
func ExampleStore_ApplyBatch() {
	dir, err := os.MkdirTemp("", "pyrite-store-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	tables := fstest.MapFS{"0001_counts.sql": {Data: []byte("CREATE TABLE counts (id TEXT NOT NULL PRIMARY KEY, n BIGINT NOT NULL);")}}
	s, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "projector.db"), store.WithMigrations("counts", tables))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	events := []store.Event{
		{Type: "Counter:Bumped", AggregateID: "c-1", Topic: "pyrite.counter.events", Partition: 2, Offset: 40},
		{Type: "Counter:Bumped", AggregateID: "c-1", Topic: "pyrite.counter.events", Partition: 2, Offset: 41},
	}
	apply := func(tx *store.Tx, ev store.Event) error {
		_, err := tx.Exec("INSERT INTO counts (id, n) VALUES ($1, 1) ON CONFLICT (id) DO UPDATE SET n = counts.n + 1", ev.AggregateID)
		return err
	}
	if err := s.ApplyBatch(ctx, "counts", events, apply); err != nil {
		fmt.Println(err)
		return
	}
	// Delivered again (a redelivery after a crash): skipped below the stored position.
	if err := s.ApplyBatch(ctx, "counts", events, apply); err != nil {
		fmt.Println(err)
		return
	}
	var n int
	_ = s.QueryRow(ctx, "SELECT n FROM counts WHERE id = $1", "c-1").Scan(&n)
	pos, _ := s.Positions(ctx, "counts")
	fmt.Println(n)
	fmt.Println(pos)
	// Output:
	// 2
	// map[{pyrite.counter.events 2}:42]
}
