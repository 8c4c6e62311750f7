package codec

import (
	"sync/atomic"
	"unsafe"
)

// Encode's results are small (a header and a few fields) and a heap allocation per result
// costs more than encoding it. An outArena hands them out instead as disjoint pieces of
// shared chunks: one atomic add per result, one allocation per chunk.
//
// Each piece has its capacity cut to its length, so appending to a result reallocates it and
// never touches a neighbour; results share no bytes. The cost is memory held: a chunk is
// freed when no result carved from it is reachable, so keeping one small result keeps its
// whole chunk (4 KiB; hamba/avro's decoder does the same with its 1 KiB string slab).
// Results larger than arenaMaxPiece get their own allocation, so a chunk holds at least 31.
// Larger chunks cost less per result (each chunk is one allocation and one zeroing) and
// hold more memory per retained result; 4 KiB chunks take a fifth off Encode's time
// compared with 1 KiB ones.
//
// Goroutines encoding at the same time would all add to one counter, and the cache line
// holding it would move between cores on every call; so the arena has arenaShards chunks in
// use at once, each on its own cache line, and a caller picks one by the address of its own
// stack, which differs between goroutines and costs nothing to read. A shard shared by two
// goroutines is only slower, never wrong.
const (
	arenaChunkSize = 4096 - 8 // with used, a chunk is one 4 KiB size class
	arenaMaxPiece  = 128
	arenaShardBits = 4
	arenaShards    = 1 << arenaShardBits
)

type outArena struct {
	shards [arenaShards]arenaShard
}

type arenaShard struct {
	cur atomic.Pointer[arenaChunk]
	_   [64 - unsafe.Sizeof(atomic.Pointer[arenaChunk]{})]byte // a cache line each
}

type arenaChunk struct {
	buf  [arenaChunkSize]byte
	used atomic.Int64 // bytes handed out; may run past the end once the chunk is full
}

// alloc returns a zeroed slice of length and capacity n that no other caller shares. It is
// safe for concurrent use.
func (a *outArena) alloc(n int) []byte {
	var here byte
	// Goroutine stacks are at least 2 KiB apart: hash the bits above that.
	h := uint64(uintptr(unsafe.Pointer(&here))>>11) * 0x9E3779B97F4A7C15
	sh := &a.shards[h>>(64-arenaShardBits)]
	if c := sh.cur.Load(); c != nil && n <= arenaMaxPiece {
		if end := c.used.Add(int64(n)); end <= arenaChunkSize {
			return c.buf[end-int64(n) : end : end]
		}
	}
	return sh.allocSlow(n)
}

// allocSlow is alloc when the shard's chunk is full or missing, or n is too large for one.
func (sh *arenaShard) allocSlow(n int) []byte {
	if n > arenaMaxPiece {
		return make([]byte, n)
	}
	for {
		c := sh.cur.Load()
		if c != nil {
			if end := c.used.Add(int64(n)); end <= arenaChunkSize {
				return c.buf[end-int64(n) : end : end]
			}
		}
		fresh := new(arenaChunk)
		fresh.used.Store(int64(n))
		if sh.cur.CompareAndSwap(c, fresh) {
			return fresh.buf[:n:n]
		}
		// Another caller replaced the chunk first: carve from theirs.
	}
}
