package projector

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/store"
)

func TestCacheEpochRefusesStalePuts(t *testing.T) {
	c := newCache(2)
	_, epoch, ok := c.get("a")
	if ok {
		t.Fatal("empty cache hit")
	}
	c.invalidate("a") // a commit lands while the read is in flight
	c.put("a", workeffort.State{ID: "a", Version: 1}, epoch)
	if _, _, ok := c.get("a"); ok {
		t.Fatal("a read older than an invalidation was cached")
	}
	_, epoch, _ = c.get("a")
	for _, id := range []string{"a", "b", "c"} {
		c.put(id, workeffort.State{ID: id}, epoch)
	}
	if c.len() != 2 {
		t.Fatalf("cache holds %d entries, bound 2", c.len())
	}
	if _, _, ok := c.get("a"); ok {
		t.Error("the least recently used entry was kept")
	}
}

// TestRebuildDropsTheCache: a swapped-in rebuild (from any process) empties
// the read cache, so no read serves a row of the replaced read model.
func TestRebuildDropsTheCache(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "p.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p := New(st, nil, 10, nil, nil)
	p.Register(Projection{Name: store.WorkEffortProjection})
	_, epoch, _ := p.cache.get("we-1")
	p.cache.put("we-1", workeffort.State{ID: "we-1", Version: 7}, epoch)

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go p.WatchGenerations(wctx, 10*time.Millisecond)
	r, err := st.StartRebuild(ctx, store.WorkEffortProjection, store.RebuildOptions{From: "test"})
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
