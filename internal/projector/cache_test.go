package projector

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

func TestCacheEpochRefusesStalePuts(t *testing.T) {
	c := NewCache(2)
	_, epoch, ok := c.Get("A", "a")
	if ok {
		t.Fatal("empty cache hit")
	}
	c.evict("A:Changed", "a") // a commit lands while the read is in flight
	c.Put("A", "a", 1, epoch)
	if _, _, ok := c.Get("A", "a"); ok {
		t.Fatal("a read older than an eviction was cached")
	}
	_, epoch, _ = c.Get("A", "a")
	for _, id := range []string{"a", "b", "c"} {
		c.Put("A", id, id, epoch)
	}
	if c.len() != 2 {
		t.Fatalf("cache holds %d entries, bound 2", c.len())
	}
	if _, _, ok := c.Get("A", "a"); ok {
		t.Error("the least recently used entry was kept")
	}
}

// TestCacheEvictsByAggregate: an applied event evicts its own aggregate's entry of its id, not
// another aggregate's entry of the same id.
func TestCacheEvictsByAggregate(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := New(st, nil, 10, nil, nil)
	_, epoch, _ := p.Cache().Get("A", "x")
	p.Cache().Put("A", "x", "a's x", epoch)
	p.Cache().Put("B", "x", "b's x", epoch)
	if _, err := p.Bus().Publish(context.Background(), &bus.Event{Type: "B:Changed", AggregateID: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := p.Cache().Get("B", "x"); ok {
		t.Error("B's x survived an applied B event of x")
	}
	if v, _, ok := p.Cache().Get("A", "x"); !ok || v != "a's x" {
		t.Errorf("A's x = %v %v after a B event, want it kept", v, ok)
	}
}

// TestRebuildDropsTheCache: a swapped-in rebuild (from any process) empties
// the read cache, so no read serves a row of the replaced read model.
func TestRebuildDropsTheCache(t *testing.T) {
	ctx := context.Background()
	things := fstest.MapFS{"0001_things.sql": {Data: []byte("CREATE TABLE things (id TEXT NOT NULL PRIMARY KEY);")}}
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "p.db"), store.WithMigrations("things", things))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := New(st, nil, 10, nil, nil)
	p.Register(Projection{Name: "things"})
	_, epoch, _ := p.cache.Get("Thing", "t-1")
	p.cache.Put("Thing", "t-1", 7, epoch)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.WatchGenerations(wctx, 10*time.Millisecond)
	r, err := st.StartRebuild(ctx, store.Rebuildable{Projection: "things", Table: "things", Key: "id",
		Apply: func(string) func(*store.Tx, store.Event) error { return nil }}, store.RebuildOptions{From: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Swap(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.cache.len() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the cache still holds rows of the replaced read model")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
