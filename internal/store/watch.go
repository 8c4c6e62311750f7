package store

import "sync"

// watcher wakes WaitVersion calls when a batch that reaches their version commits in this
// process. notify never blocks: each waiter has a one-slot channel.
type watcher struct {
	mu      sync.Mutex
	waiters map[string]map[*waiter]struct{}
}

type waiter struct {
	min int64
	ch  chan struct{}
}

func newWatcher() *watcher {
	return &watcher{waiters: make(map[string]map[*waiter]struct{})}
}

func (w *watcher) add(id string, min int64) *waiter {
	wt := &waiter{min: min, ch: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.waiters[id]
	if set == nil {
		set = make(map[*waiter]struct{})
		w.waiters[id] = set
	}
	set[wt] = struct{}{}
	return wt
}

func (w *watcher) remove(id string, wt *waiter) {
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.waiters[id]
	delete(set, wt)
	if len(set) == 0 {
		delete(w.waiters, id)
	}
}

// notify wakes the waiters of id whose minimum version is at most version.
func (w *watcher) notify(id string, version int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wt := range w.waiters[id] {
		if version >= wt.min {
			select {
			case wt.ch <- struct{}{}:
			default:
			}
		}
	}
}

// count returns how many waiters there are, for tests.
func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, set := range w.waiters {
		n += len(set)
	}
	return n
}

// Waiters returns how many WaitVersion calls are waiting now (tests wait for one to be
// registered before they commit what wakes it).
func (s *Store) Waiters() int { return s.watch.count() }
