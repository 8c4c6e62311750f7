package projector

import (
	"container/list"
	"strings"
	"sync"
)

// Cache is a bounded LRU of read models in front of the store, for the query routes of
// domain modules (Reads.Cache), keyed by aggregate and aggregate ID. The projector evicts an
// entry when an event of its aggregate is applied (through a subscription to the applied
// events), and every entry when a rebuild of a projection is swapped in, so a read after a
// commit never sees an older state.
//
// A read that missed takes the cache's epoch (Get) before asking the store and puts its answer
// back (Put) only if no eviction happened meanwhile: a read racing a commit cannot put back a
// state older than the commit. Safe for concurrent use; a nil or zero-sized Cache caches
// nothing.
type Cache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List
	items map[string]*list.Element
	epoch uint64
}

type cacheEntry struct {
	key   string
	model any
}

// NewCache returns a Cache of at most max entries (0 caches nothing).
func NewCache(max int) *Cache {
	return &Cache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func cacheKey(aggregate, id string) string { return aggregate + ":" + id }

// Get returns the cached read model of the aggregate's id, or false and the epoch to pass to
// Put.
func (c *Cache) Get(aggregate, id string) (model any, epoch uint64, ok bool) {
	if c == nil {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[cacheKey(aggregate, id)]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).model, c.epoch, true
	}
	return nil, c.epoch, false
}

// Put stores model unless something was evicted since epoch was read.
func (c *Cache) Put(aggregate, id string, model any, epoch uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.max <= 0 || c.epoch != epoch {
		return
	}
	key := cacheKey(aggregate, id)
	if e, ok := c.items[key]; ok {
		e.Value.(*cacheEntry).model = model
		c.ll.MoveToFront(e)
		return
	}
	c.items[key] = c.ll.PushFront(&cacheEntry{key: key, model: model})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*cacheEntry).key)
	}
}

// evict drops the entry of the aggregate of eventType ("<Aggregate>:<Name>") and id.
func (c *Cache) evict(eventType, id string) {
	aggregate, _, _ := strings.Cut(eventType, ":")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	key := cacheKey(aggregate, id)
	if e, ok := c.items[key]; ok {
		c.ll.Remove(e)
		delete(c.items, key)
	}
}

// clear drops every entry (after a rebuild swapped a read model).
func (c *Cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.ll.Init()
	clear(c.items)
}

func (c *Cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
