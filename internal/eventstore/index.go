package eventstore

import (
	"hash/maphash"
	"slices"
	"strings"
	"time"
)

// stream is one aggregate's events on a partition, in offset order, with versions 1, 2, ...
// Versions are positions (see apply), so the event at offsets[i] is version i+1: only the
// offsets are kept, 8 bytes an event for as long as the index lives.
type stream struct {
	key     string // the aggregate id
	offsets []int64
}

func (s *stream) version() int64 {
	if s == nil {
		return 0
	}
	return int64(len(s.offsets))
}

func (s *stream) lastOffset() int64 {
	if s == nil || len(s.offsets) == 0 {
		return -1
	}
	return s.offsets[len(s.offsets)-1]
}

// from returns the version of the first event at or above version v and a copy of the
// offsets from it on (the event at offsets[i] is version first+i).
func (s *stream) from(v int64) (first int64, offsets []int64) {
	if s == nil {
		return 1, nil
	}
	i := min(max(v-1, 0), int64(len(s.offsets)))
	return i + 1, append([]int64(nil), s.offsets[i:]...)
}

// seen is the first written event under an id, remembered for the dedupe window.
type seen struct {
	id       string
	hash     uint64 // of id: its key in index.ids (unless counted)
	next     int64  // the number of an older remembered id of the same hash, 0 for none
	counted  bool   // found through index.counted, not index.ids
	key      string // aggregate id
	typ      string
	offset   int64
	version  int64
	schemaID int32
	at       time.Time // the record's timestamp
}

// record is what the index takes from one record of the partition.
type record struct {
	key      string
	offset   int64
	version  int64 // the ce_aggregateversion header, 0 when absent or unreadable (not the version)
	id       string
	typ      string
	schemaID int32
	at       time.Time
	fresh    bool // id was made for this very write (Pending.NewID): it cannot be in the window
}

// outcome is what apply did with a record.
type outcome int

const (
	applied     outcome = iota
	unversioned         // applied; it had no ce_aggregateversion header (an outside writer)
	renumbered          // applied; its header named another version than its position
	already             // at or below the stream's last offset: applied before
)

// index is the state of one partition the store rebuilds from the topic: per aggregate the
// versions and offsets of its events, and the ids written within the dedupe window. It is
// a pure function of the partition's records up to next (plus the clock for the window). It
// is not safe for concurrent use: the partition's mutex guards it.
//
// The remembered ids are values in blocks of idBlock, numbered from 1 in the order written
// (numbers oldest to next-1 are live), found through a map from each id's 64-bit hash to the
// number of the newest id with that hash, ids of colliding hashes chained through
// seen.next. Keyed by the strings, growing the map hashed every id again, reading each
// string from memory, and the window was DedupeMax objects of their own for the garbage
// collector to scan: a seventh of the store's CPU in BenchmarkEventStoreBatches
// (BenchmarkIndexApply measures the index alone).
//
// The ids the partition's IDs made for the very write (fresh) are found through their
// counter instead (see IDs): counted[c-base] is the number of the id with counter c,
// in a slice that grows at its end as the counter does and is cut at its start as the
// oldest ids are forgotten. Such an id costs no hash, no map insert and no map delete,
// where each of those was a cache miss in a window of DedupeMax ids.
type index struct {
	streams map[string]*stream
	ids     map[uint64]int64
	counted []int64          // numbers of remembered fresh ids by counter, 0 (or below oldest) for none
	base    uint32           // the counter of counted[0]
	blocks  []*[idBlock]seen // blocks[0] holds the numbers from first*idBlock
	first   int64
	oldest  int64 // the number of the oldest remembered id
	next    int64 // the number the next remembered id takes
	hash    func(id string) uint64
	window  time.Duration
	maxIDs  int
	events  int
	types   map[string]string // interned event types of remembered ids
}

// idBlock is how many remembered ids one allocation holds.
const idBlock = 1024

func newIndex(window time.Duration, maxIDs int) *index {
	seed := maphash.MakeSeed()
	return &index{streams: map[string]*stream{}, ids: map[uint64]int64{}, oldest: 1, next: 1,
		hash:   func(id string) uint64 { return maphash.String(seed, id) },
		window: window, maxIDs: maxIDs, types: map[string]string{}}
}

// at is the remembered id numbered n.
func (ix *index) at(n int64) *seen { return &ix.blocks[n/idBlock-ix.first][n%idBlock] }

// find returns the remembered event under id, whose hash is h, or nil. The pointer is
// good until the id is forgotten (prune, which remember calls).
func (ix *index) find(h uint64, id string) *seen {
	if s := ix.findCounted(id); s != nil {
		return s
	}
	for n := ix.ids[h]; n != 0; {
		s := ix.at(n)
		if s.id == id {
			return s
		}
		n = s.next
	}
	return nil
}

// findCounted returns the remembered fresh id id, or nil.
func (ix *index) findCounted(id string) *seen {
	if len(ix.counted) == 0 {
		return nil // no id to find there (a partition written by others only): no parse
	}
	c, ok := idCounter(id)
	if !ok {
		return nil
	}
	if d := c - ix.base; d < uint32(len(ix.counted)) {
		if n := ix.counted[d]; n >= ix.oldest {
			if s := ix.at(n); s.id == id {
				return s
			}
		}
	}
	return nil
}

// count makes counted hold n under counter c, unless c is before the slice's start, too
// far past its end (counters handed out and never written, a slice the window no longer
// bounds), or its place holds a remembered id (the counter wrapped): the hash map takes
// those.
func (ix *index) count(c uint32, n int64) bool {
	if len(ix.counted) == 0 {
		ix.base = c
	}
	d := int64(int32(c - ix.base))
	switch {
	case d < 0 || d >= int64(2*ix.maxIDs+idBlock):
		return false
	case d < int64(len(ix.counted)):
		if ix.counted[d] >= ix.oldest {
			return false
		}
	default:
		l := len(ix.counted)
		ix.counted = slices.Grow(ix.counted, int(d)+1-l)[:d+1]
		clear(ix.counted[l:])
	}
	ix.counted[d] = n
	return true
}

// remembered is how many ids the window holds.
func (ix *index) remembered() int { return int(ix.next - ix.oldest) }

// version is the aggregate's version: that of its last event, 0 for none.
func (ix *index) version(key string) int64 { return ix.streams[key].version() }

// versionAt returns the version of the aggregate's event at offset, 0 when there is none.
func (ix *index) versionAt(key string, offset int64) int64 {
	st := ix.streams[key]
	if st == nil {
		return 0
	}
	i, ok := slices.BinarySearch(st.offsets, offset)
	if !ok {
		return 0
	}
	return int64(i) + 1
}

// apply adds r to the index. Versions are positions: an event's version is the number of
// its aggregate's records at or below its offset, whoever wrote it and whatever its
// ce_aggregateversion header says (the rule of the package comment). Records must be
// applied in offset order; one at or below the stream's last offset is skipped. It returns the
// version it gave r (0 when skipped).
func (ix *index) apply(r record, now time.Time) (int64, outcome) {
	st := ix.streams[r.key]
	if st != nil && r.offset <= st.lastOffset() {
		return 0, already
	}
	if st != nil {
		r.key = st.key // the stream's copy, not one more per event
	}
	v, out := st.version()+1, applied
	switch {
	case r.version == 0:
		out = unversioned
	case r.version != v:
		out = renumbered
	}
	if st == nil {
		st = &stream{key: r.key}
		ix.streams[r.key] = st
	}
	st.offsets = append(st.offsets, r.offset)
	ix.events++
	if r.id != "" {
		ix.remember(seen{id: r.id, key: r.key, typ: r.typ, offset: r.offset, version: v, schemaID: r.schemaID, at: r.at}, r.fresh, now)
	}
	return v, out
}

// remember keeps s as the first event written under its id, unless the id is known or s is
// already outside the window. A fresh id is not looked for (in a window of up to DedupeMax
// ids that lookup was a third of remembering one), and is kept by its counter when it has
// one (see count).
func (ix *index) remember(s seen, fresh bool, now time.Time) {
	if !fresh {
		s.hash = ix.hash(s.id)
		if ix.find(s.hash, s.id) != nil {
			return
		}
	}
	if ix.maxIDs <= 0 || (ix.window > 0 && s.at.Before(now.Add(-ix.window))) {
		return
	}
	if t, ok := ix.types[s.typ]; ok {
		s.typ = t
	} else {
		s.typ = strings.Clone(s.typ) // not a piece of something larger, such as a request body
		if len(ix.types) < 1024 {
			ix.types[s.typ] = s.typ
		}
	}
	n := ix.next
	if n/idBlock-ix.first == int64(len(ix.blocks)) {
		ix.blocks = append(ix.blocks, new([idBlock]seen))
	}
	if fresh {
		c, ok := idCounter(s.id)
		s.counted = ok && ix.count(c, n)
		if !s.counted {
			s.hash = ix.hash(s.id)
		}
	}
	if !s.counted {
		s.next = ix.ids[s.hash] // lookups meet the newest id of a hash first
		ix.ids[s.hash] = n
	}
	*ix.at(n) = s
	ix.next++
	ix.prune(now)
}

// prune forgets the oldest ids beyond the count limit or outside the window.
func (ix *index) prune(now time.Time) {
	cutoff := now.Add(-ix.window)
	for ix.oldest < ix.next {
		n := ix.oldest
		s := ix.at(n)
		if ix.next-n <= int64(ix.maxIDs) && (ix.window <= 0 || !s.at.Before(cutoff)) {
			break
		}
		// A counted id goes as oldest passes its number. The oldest id is the last of its
		// hash's chain.
		switch {
		case s.counted:
		case ix.ids[s.hash] == n:
			delete(ix.ids, s.hash)
		default:
			for m := ix.ids[s.hash]; m != 0; {
				newer := ix.at(m)
				if newer.next == n {
					newer.next = 0
					break
				}
				m = newer.next
			}
		}
		*s = seen{} // its strings go to the garbage collector
		ix.oldest++
		if ix.oldest%idBlock == 0 { // block 0 is all forgotten
			ix.blocks[0] = nil
			ix.blocks = ix.blocks[1:]
			ix.first++
		}
	}
	for len(ix.counted) > 0 && ix.counted[0] < ix.oldest {
		ix.counted = ix.counted[1:]
		ix.base++
	}
}

// lookup returns the first event written under id within the window, or nil. The pointer
// is good until the next remember.
func (ix *index) lookup(id string, now time.Time) *seen {
	s := ix.find(ix.hash(id), id)
	if s == nil || (ix.window > 0 && s.at.Before(now.Add(-ix.window))) {
		return nil
	}
	return s
}
