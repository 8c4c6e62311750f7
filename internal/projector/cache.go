package projector

import (
	"container/list"
	"sync"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
)

// cache is a bounded LRU of work efforts in front of the store. Entries are
// evicted when an event of their aggregate is applied (through a bus
// subscription), so a read after a commit never sees an older state.
//
// A read that missed takes the cache's epoch before asking the store and
// puts its answer back only if no invalidation happened meanwhile: a read
// racing a commit cannot put back a state older than the commit.
type cache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
	epoch uint64
}

type cacheEntry struct {
	id string
	st workeffort.State
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

// get returns the cached state of id, or the epoch to pass to put.
func (c *cache) get(id string) (workeffort.State, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).st, c.epoch, true
	}
	return workeffort.State{}, c.epoch, false
}

// put stores st unless something was invalidated since epoch was read.
func (c *cache) put(id string, st workeffort.State, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 || c.epoch != epoch {
		return
	}
	if e, ok := c.items[id]; ok {
		e.Value.(*cacheEntry).st = st
		c.ll.MoveToFront(e)
		return
	}
	c.items[id] = c.ll.PushFront(&cacheEntry{id: id, st: st})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).id)
	}
}

func (c *cache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if e, ok := c.items[id]; ok {
		c.ll.Remove(e)
		delete(c.items, id)
	}
}

// clear drops every entry (after a rebuild swapped the read model).
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.ll.Init()
	clear(c.items)
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
