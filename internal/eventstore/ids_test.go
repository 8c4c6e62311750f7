package eventstore

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestIDs(t *testing.T) {
	for name, m := range map[string]*IDs{"partition": newIDs(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			seen := map[string]bool{}
			before := time.Now().UnixMilli()
			var last uuid.UUID
			var lastCounter uint32
			for i := range 10000 {
				id := m.New(time.Now())
				u, err := uuid.Parse(id)
				if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || len(id) != 36 || id != strings.ToLower(id) {
					t.Fatalf("id %q: version %v variant %v err %v", id, u.Version(), u.Variant(), err)
				}
				if seen[id] {
					t.Fatalf("id %q twice", id)
				}
				seen[id] = true
				// The first 48 bits are the Unix time in milliseconds: within the test's span,
				// and never earlier than the id before.
				ms := int64(u[0])<<40 | int64(u[1])<<32 | int64(u[2])<<24 | int64(u[3])<<16 | int64(u[4])<<8 | int64(u[5])
				if ms < before || ms > time.Now().UnixMilli() || bytes.Compare(u[:6], last[:6]) < 0 {
					t.Fatalf("id %q: time %d ms, not in [%d, now] or earlier than the id before %s", id, ms, before, last)
				}
				c, ok := idCounter(id)
				if !ok {
					t.Fatalf("id %q: no counter", id)
				}
				if m != nil && i > 0 && c != lastCounter+1 {
					t.Fatalf("id %q: counter %d after %d", id, c, lastCounter)
				}
				// The bits between the version and the counter are random: two ids of one
				// partition never share them in practice.
				if i > 0 && bytes.Equal(u[6:12], last[6:12]) {
					t.Fatalf("ids %s and %s share their random bits", last, id)
				}
				last, lastCounter = u, c
			}
		})
	}
	t.Run("counter of other ids", func(t *testing.T) {
		for id, want := range map[string]bool{
			"0192f4c1-2b3c-7d4e-8f50-6172839405a6": true,
			"0192F4C1-2B3C-7D4E-8F50-6172839405A6": false, // New writes lower case
			"x-1":                                  false, "": false,
			"0192f4c1-2b3c-7d4e-8f50-6172839405ag":  false,
			"0192f4c1+2b3c+7d4e+8f50+6172839405a6":  false,
			"0192f4c1-2b3c-7d4e-8f50-6172839405a6x": false,
		} {
			if _, ok := idCounter(id); ok != want {
				t.Errorf("idCounter(%q) ok = %v, want %v", id, ok, want)
			}
		}
		if c, _ := idCounter("0192f4c1-2b3c-7d4e-8f50-6172839405a6"); c != 0x839405a6 {
			t.Errorf("counter %x", c)
		}
	})
}

// TestIndexCountedIDs checks the ids the partition made (fresh, with a counter) against the
// window's rules for any other id: found while remembered, first write wins, forgotten by
// count and by time, and an id that only shares a counter (an outside writer's, another
// partition's, one written again after its counter wrapped) found whole through the map.
func TestIndexCountedIDs(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	fresh := func(off int64, id string, age time.Duration) record {
		return record{key: "a", offset: off, id: id, typ: "T", at: now.Add(-age), fresh: true}
	}
	// idWith is an id in New's form with counter c and the given random bits.
	idWith := func(random uint16, c uint32) string {
		return fmt.Sprintf("0192f4c1-2b3c-7%03x-8f50-6172%08x", random&0xfff, c)
	}
	t.Run("window by count", func(t *testing.T) {
		ix := newIndex(time.Hour, 3)
		m := newIDs()
		var ids []string
		for i := range 6 {
			ids = append(ids, m.New(time.Now()))
			ix.apply(fresh(int64(i), ids[i], 0), now)
		}
		for i, id := range ids {
			s := ix.lookup(id, now)
			if want := i >= 3; (s != nil) != want {
				t.Errorf("id %d remembered %v, want %v", i, s != nil, want)
			} else if s != nil && (!s.counted || s.offset != int64(i)) {
				t.Errorf("id %d: %+v", i, s)
			}
		}
		if len(ix.ids) != 0 || len(ix.counted) != 3 {
			t.Errorf("%d ids in the map, %d counted, want 0 and 3", len(ix.ids), len(ix.counted))
		}
		// A later write of a remembered id (a retry that quotes it): the first write wins.
		ix.apply(record{key: "a", offset: 6, id: ids[5], typ: "T", at: now}, now)
		if s := ix.lookup(ids[5], now); s == nil || s.offset != 5 {
			t.Errorf("after a second write: %+v", s)
		}
	})
	t.Run("window by time", func(t *testing.T) {
		ix := newIndex(time.Hour, 100)
		m := newIDs()
		old, edge := m.New(time.Now()), m.New(time.Now())
		ix.apply(fresh(0, old, 2*time.Hour), now)
		ix.apply(fresh(1, edge, 59*time.Minute), now)
		if ix.lookup(old, now) != nil || ix.lookup(edge, now) == nil {
			t.Error("the window by time does not hold for counted ids")
		}
		ix.apply(fresh(2, m.New(time.Now()), 0), now.Add(2*time.Minute)) // prunes edge
		if ix.lookup(edge, now.Add(2*time.Minute)) != nil {
			t.Error("a counted id is remembered past the window")
		}
	})
	t.Run("same counter, another id", func(t *testing.T) {
		ix := newIndex(time.Hour, 100)
		ix.apply(fresh(0, idWith(1, 7), 0), now)
		if ix.lookup(idWith(2, 7), now) != nil {
			t.Error("an id found by its counter alone")
		}
		// An outside writer's id of the same counter is remembered through the map.
		ix.apply(record{key: "b", offset: 1, id: idWith(2, 7), typ: "T", at: now}, now)
		// A fresh id whose counter's place is taken (the counter wrapped) too.
		ix.apply(fresh(2, idWith(3, 7), 0), now)
		for off, id := range []string{idWith(1, 7), idWith(2, 7), idWith(3, 7)} {
			if s := ix.lookup(id, now); s == nil || s.offset != int64(off) {
				t.Errorf("lookup %s: %+v, want offset %d", id, s, off)
			}
		}
		if len(ix.ids) != 2 || len(ix.counted) != 1 {
			t.Errorf("%d ids in the map, %d counted, want 2 and 1", len(ix.ids), len(ix.counted))
		}
	})
	t.Run("counters out of reach", func(t *testing.T) {
		ix := newIndex(time.Hour, 4)
		// Counters applied out of order (transactions commit in another order than their
		// ids were made), one before the slice's start, one far past its end (ids made and
		// never written in between), and one across the counter's wrap.
		order := []uint32{1 << 31, 1<<31 + 2, 1<<31 + 1, 1<<31 - 1, 1<<31 + 5000, 1<<31 + 3}
		for i, c := range order {
			ix.apply(fresh(int64(i), idWith(0, c), 0), now)
		}
		for i, c := range order {
			s := ix.lookup(idWith(0, c), now)
			if want := i >= len(order)-4; (s != nil) != want {
				t.Errorf("counter %d remembered %v, want %v", c, s != nil, want)
			}
		}
		if len(ix.ids) != 2 {
			t.Errorf("%d ids in the map, want 2 (the one before the start, the one past the reach)", len(ix.ids))
		}
		wrap := newIndex(time.Hour, 100)
		for i, c := range []uint32{1<<32 - 2, 1<<32 - 1, 0, 1} {
			wrap.apply(fresh(int64(i), idWith(0, c), 0), now)
		}
		if len(wrap.ids) != 0 || len(wrap.counted) != 4 || wrap.lookup(idWith(0, 0), now) == nil {
			t.Errorf("across the wrap: %d ids in the map, %d counted", len(wrap.ids), len(wrap.counted))
		}
	})
	t.Run("slice cut as ids go", func(t *testing.T) {
		ix := newIndex(time.Hour, 1000)
		m := newIDs()
		for i := range 100_000 {
			ix.apply(fresh(int64(i), m.New(time.Now()), 0), now)
		}
		if len(ix.counted) != 1000 || cap(ix.counted) > 4*1000+idBlock {
			t.Errorf("counted: len %d cap %d for a window of 1000", len(ix.counted), cap(ix.counted))
		}
	})
}
