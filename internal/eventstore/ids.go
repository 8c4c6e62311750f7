package eventstore

import (
	"encoding/binary"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// IDs makes the ids of events appended without one (Pending.NewID) on one partition:
// version 7 UUIDs (RFC 9562): the Unix time in milliseconds, then 42 random bits, then a
// 32-bit counter of the partition's ids (from a random start, wrapping). The partition's
// index remembers such an id, for the dedupe window, in a slice indexed by its counter,
// where a hash map of up to DedupeMax ids per partition cost a cache miss or two per event
// (a quarter of the store's CPU in BenchmarkEventStoreBatches). An id is found by its
// counter and then compared whole, so any id that only looks like one (an outside writer's,
// another partition's) is still found, through the hash map. The random bits keep ids
// unguessable: a caller cannot write, ahead of time, an id the store is about to make.
//
// Ids made later sort later, so that the stores keyed by ce_id downstream (a projection's
// applied ids, a reactor's processed ones: b-trees) add each at the end of their index
// rather than at a random page, as version 4 ids made them.
//
// IDs is safe for concurrent use. A nil *IDs makes ids with 74 random bits.
type IDs struct {
	counter atomic.Uint32
}

func newIDs() *IDs {
	m := new(IDs)
	m.counter.Store(rand.Uint32())
	return m
}

// New returns a new id made at the instant at (its first 48 bits), which the events of a
// request share (their ce_time).
func (m *IDs) New(at time.Time) string {
	var u uuid.UUID
	ms := uint64(at.UnixMilli())
	u[0], u[1], u[2], u[3], u[4], u[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	r := rand.Uint64()
	u[6] = 0x70 | byte(r)&0x0f // version 7
	u[7] = byte(r >> 8)
	u[8] = 0x80 | byte(r>>16)&0x3f // RFC 9562 variant
	u[9], u[10], u[11] = byte(r>>24), byte(r>>32), byte(r>>40)
	var c uint32
	if m != nil {
		c = m.counter.Add(1)
	} else {
		c = rand.Uint32()
	}
	binary.BigEndian.PutUint32(u[12:], c)
	return u.String()
}

// idCounter returns the counter of an id in New's form: the last 8 hex digits of a
// hyphenated UUID (of any id so written, which the caller tells apart by comparing it with
// the one found).
func idCounter(id string) (uint32, bool) {
	if len(id) != 36 || id[23] != '-' {
		return 0, false
	}
	var c uint32
	for i := 28; i < 36; i++ {
		var d byte
		switch ch := id[i]; {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		default:
			return 0, false // New writes lower case only
		}
		c = c<<4 | uint32(d)
	}
	return c, true
}
