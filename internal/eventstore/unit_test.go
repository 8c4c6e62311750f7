package eventstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestPartitionMatchesProducers checks Partition against franz-go's key partitioner, which
// ingest and the other writers use, and against Kafka's murmur2 test vectors.
func TestPartitionMatchesProducers(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  string
		hash int32 // Kafka's UtilsTest.testMurmur2
	}{
		{"21", "21", -973932308},
		{"foobar", "foobar", -790332482},
		{"a-little-bit-long-string", "a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", "a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", "abc", 479470107},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := murmur2([]byte(tc.key)); got != tc.hash {
				t.Errorf("murmur2 = %d, want %d", got, tc.hash)
			}
		})
	}
	part := kgo.StickyKeyPartitioner(nil).ForTopic("t")
	for _, n := range []int{1, 3, 12, 50} {
		for i := range 500 {
			key := []byte(fmt.Sprintf("we-%d-%x", i, i*7919))
			if got, want := Partition(key, int32(n)), part.Partition(&kgo.Record{Key: key}, n); int(got) != want {
				t.Fatalf("%s of %d: %d, franz-go %d", key, n, got, want)
			}
		}
	}
}

func TestAssign(t *testing.T) {
	member := func(id string, owned map[string][]int32) planMember {
		return planMember{id: id, meta: memberMeta{Addr: "http://" + id, Owned: owned}, topics: map[string]bool{"a": true, "b": true}}
	}
	topics := map[string]int32{"a": 3, "b": 3}
	for _, tc := range []struct {
		name    string
		members []planMember
		check   func(t *testing.T, owners map[string][]int32)
	}{
		{"one member takes all", []planMember{member("m1", nil)}, func(t *testing.T, o map[string][]int32) {
			for _, tp := range []string{"a", "b"} {
				for p, m := range o[tp] {
					if m != 0 {
						t.Errorf("%s[%d] -> %d", tp, p, m)
					}
				}
			}
		}},
		{"three share evenly", []planMember{member("m1", nil), member("m2", nil), member("m3", nil)}, func(t *testing.T, o map[string][]int32) {
			counts := countOf(o, 3)
			for i, n := range counts {
				if n != 2 {
					t.Errorf("member %d has %d", i, n)
				}
			}
		}},
		{"a joining member takes only what it must", []planMember{
			member("m1", map[string][]int32{"a": {0}, "b": {0, 1}}),
			member("m2", map[string][]int32{"a": {1, 2}, "b": {2}}),
			member("m3", nil),
		}, func(t *testing.T, o map[string][]int32) {
			if c := countOf(o, 3); c[0] != 2 || c[1] != 2 || c[2] != 2 {
				t.Fatalf("counts %v", c)
			}
			// m1 and m2 keep one partition of each topic they held (the spread per topic
			// allows one each), m3 takes what is left.
			if o["a"][0] != 0 || o["b"][0] != 0 || o["a"][1] != 1 || o["b"][2] != 1 {
				t.Errorf("held partitions moved: %v", o)
			}
		}},
		{"double claims go to the first", []planMember{
			member("m1", map[string][]int32{"a": {0}}),
			member("m2", map[string][]int32{"a": {0}}),
		}, func(t *testing.T, o map[string][]int32) {
			if o["a"][0] != 0 {
				t.Errorf("a[0] -> %d", o["a"][0])
			}
			if c := countOf(o, 2); c[0] != 3 || c[1] != 3 {
				t.Errorf("counts %v", c)
			}
		}},
		{"claims of unknown partitions are ignored", []planMember{member("m1", map[string][]int32{"a": {7, -1}, "zz": {0}})}, func(t *testing.T, o map[string][]int32) {
			if len(o) != 2 || countOf(o, 1)[0] != 6 {
				t.Errorf("owners %v", o)
			}
		}},
		{"more members than partitions", []planMember{member("m1", nil), member("m2", nil), member("m3", nil), member("m4", nil),
			member("m5", nil), member("m6", nil), member("m7", nil)}, func(t *testing.T, o map[string][]int32) {
			for i, n := range countOf(o, 7) {
				if n > 1 {
					t.Errorf("member %d has %d", i, n)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := assign(tc.members, topics)
			tc.check(t, o)
			if again := assign(tc.members, topics); fmt.Sprint(again) != fmt.Sprint(o) {
				t.Errorf("not deterministic: %v then %v", o, again)
			}
		})
	}
}

func countOf(o map[string][]int32, n int) []int {
	c := make([]int, n)
	for _, ps := range o {
		for _, m := range ps {
			if m >= 0 {
				c[m]++
			}
		}
	}
	return c
}

// TestBalancerRoundTrip runs the balancer as kgo would: members' join metadata through the
// leader's balance into each member's sync assignment, which carries the whole table.
func TestBalancerRoundTrip(t *testing.T) {
	addrs := []string{"http://m1:1", "http://m2:2", "http://m3:3"}
	var members []kmsg.JoinGroupResponseMember
	for i, a := range addrs {
		b := &balancer{addr: a}
		members = append(members, kmsg.JoinGroupResponseMember{MemberID: fmt.Sprintf("m%d", i),
			ProtocolMetadata: b.JoinGroupMetadata([]string{"a", "b"}, nil, 0)})
	}
	mb, topics, err := (&balancer{}).MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 2 {
		t.Fatalf("topics %v", topics)
	}
	mb.(*memberBalancer).SetBalanceInfo(kgo.BalanceInfo{Generation: 7})
	plan, err := mb.(*memberBalancer).BalanceOrError(map[string]int32{"a": 3, "b": 3})
	if err != nil {
		t.Fatal(err)
	}
	owned := map[string]string{}
	for i, a := range plan.IntoSyncAssignment() {
		var got *table
		b := &balancer{onTable: func(t *table) { got = t }}
		as, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.Generation != 7 {
			t.Fatalf("table %+v", got)
		}
		for topic, ps := range as {
			for _, p := range ps {
				key := fmt.Sprintf("%s/%d", topic, p)
				if owned[key] != "" {
					t.Errorf("%s assigned twice", key)
				}
				owned[key] = addrs[i]
				if o := got.owner(topic, p); o != addrs[i] {
					t.Errorf("%s: table says %q, assignment %q", key, o, addrs[i])
				}
			}
		}
	}
	if len(owned) != 6 {
		t.Errorf("%d partitions assigned", len(owned))
	}
}

func TestIndex(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	rec := func(key string, off, v int64, id string, age time.Duration) record {
		return record{key: key, offset: off, version: v, id: id, typ: "T", at: now.Add(-age)}
	}
	t.Run("versions and offsets", func(t *testing.T) {
		ix := newIndex(time.Hour, 10)
		for _, tc := range []struct {
			r    record
			want outcome
			ver  int64
		}{
			{rec("a", 0, 1, "i0", 0), applied, 1},
			{rec("a", 1, 0, "", 0), unversioned, 2},
			{rec("a", 1, 2, "", 0), already, 2},    // read again
			{rec("a", 3, 2, "", 0), renumbered, 3}, // a store append raced by an outside write
			{rec("a", 4, 9, "", 0), renumbered, 4}, // a header never makes a gap
			{rec("b", 2, 1, "", 0), applied, 1},
		} {
			if _, got := ix.apply(tc.r, now); got != tc.want {
				t.Errorf("apply %+v = %v, want %v", tc.r, got, tc.want)
			}
			if v := ix.version(tc.r.key); v != tc.ver {
				t.Errorf("after %+v: version %d, want %d", tc.r, v, tc.ver)
			}
		}
		// Versions 2, 3, 4 at offsets 1, 3, 4 from version 2; none past the last (version 4).
		for from, want := range map[int64]string{2: "2 [1 3 4]", 1: "1 [0 1 3 4]", 0: "1 [0 1 3 4]", 4: "4 [4]", 5: "5 []", 9: "5 []"} {
			if first, offs := ix.streams["a"].from(from); fmt.Sprint(first, offs) != want {
				t.Errorf("from %d: %d %v, want %s", from, first, offs, want)
			}
		}
		if v := ix.versionAt("a", 3); v != 3 {
			t.Errorf("version at offset 3: %d", v)
		}
		if v := ix.versionAt("a", 2); v != 0 {
			t.Errorf("version at offset 2 (b's): %d", v)
		}
	})
	t.Run("window by count", func(t *testing.T) {
		ix := newIndex(time.Hour, 3)
		for i := range 5 {
			ix.apply(rec("a", int64(i), int64(i+1), fmt.Sprint("id", i), 0), now)
		}
		for i, want := range []bool{false, false, true, true, true} {
			if got := ix.lookup(fmt.Sprint("id", i), now) != nil; got != want {
				t.Errorf("id%d remembered %v, want %v", i, got, want)
			}
		}
	})
	t.Run("window by time", func(t *testing.T) {
		ix := newIndex(time.Hour, 100)
		ix.apply(rec("a", 0, 1, "old", 2*time.Hour), now)
		ix.apply(rec("a", 1, 2, "edge", 59*time.Minute), now)
		if ix.lookup("old", now) != nil {
			t.Error("an id older than the window is remembered")
		}
		if ix.lookup("edge", now) == nil {
			t.Error("an id inside the window is forgotten")
		}
		if ix.lookup("edge", now.Add(2*time.Minute)) != nil {
			t.Error("an id is remembered past the window")
		}
	})
	t.Run("colliding hashes", func(t *testing.T) {
		for _, hashes := range []int{1, 2} { // every id the same hash; two hashes taking turns
			ix := newIndex(time.Hour, 4)
			ix.hash = func(id string) uint64 { return uint64(len(id) % hashes) }
			ids := []string{"a", "bb", "c", "dd", "e", "ff", "g"}
			for i, id := range ids {
				ix.apply(rec("k", int64(2*i), 0, id, 0), now)
				ix.apply(rec("k", int64(2*i+1), 0, id, 0), now) // a later write of the same id
			}
			// The window holds the last 4 ids, each at its first write.
			for i, id := range ids {
				s := ix.lookup(id, now)
				if want := i >= len(ids)-4; (s != nil) != want {
					t.Errorf("%d hashes: %s remembered %v, want %v", hashes, id, s != nil, want)
				} else if s != nil && (s.id != id || s.offset != int64(2*i)) {
					t.Errorf("%d hashes: lookup %s = %s at offset %d, want offset %d", hashes, id, s.id, s.offset, 2*i)
				}
			}
			if n := ix.remembered(); n != 4 {
				t.Errorf("%d hashes: %d ids remembered, want 4", hashes, n)
			}
			if len(ix.ids) != hashes {
				t.Errorf("%d hashes: %d chains", hashes, len(ix.ids))
			}
		}
	})
	t.Run("first write wins", func(t *testing.T) {
		ix := newIndex(time.Hour, 100)
		ix.apply(rec("a", 0, 1, "x", 0), now)
		ix.apply(rec("a", 1, 2, "x", 0), now)
		if s := ix.lookup("x", now); s == nil || s.offset != 0 {
			t.Errorf("lookup %+v", s)
		}
	})
}

func TestAssignSpreadsEachTopic(t *testing.T) {
	m := func(id string, owned map[string][]int32) planMember {
		return planMember{id: id, meta: memberMeta{Addr: id, Owned: owned}, topics: map[string]bool{"a": true, "b": true}}
	}
	// The first member held everything; the second joins: each topic is split, not each
	// member given a topic.
	o := assign([]planMember{m("m1", map[string][]int32{"a": {0, 1, 2}, "b": {0, 1, 2}}), m("m2", nil)}, map[string]int32{"a": 3, "b": 3})
	for _, topic := range []string{"a", "b"} {
		per := map[int32]int{}
		for _, owner := range o[topic] {
			per[owner]++
		}
		if len(per) != 2 {
			t.Errorf("topic %s owned by %v", topic, o[topic])
		}
	}
}

// TestHeld: records after a transactional record wait for its marker; a commit releases them
// in offset order, an abort drops the producer's records only.
func TestHeld(t *testing.T) {
	for _, commit := range []bool{true, false} {
		var h held
		h.add(&kgo.Record{Offset: 0, ProducerID: 1}, true)
		h.add(&kgo.Record{Offset: 1}, false)
		h.add(&kgo.Record{Offset: 2, ProducerID: 2}, true)
		if got := h.ready(); len(got) != 0 || !h.waiting() {
			t.Fatalf("released %d before any marker", len(got))
		}
		h.end(2, true)
		if got := h.ready(); len(got) != 0 {
			t.Fatalf("released %d while producer 1's record before them waits", len(got))
		}
		h.end(1, commit)
		var offs []int64
		for _, r := range h.ready() {
			offs = append(offs, r.Offset)
		}
		want := []int64{1, 2}
		if commit {
			want = []int64{0, 1, 2}
		}
		if !slices.Equal(offs, want) || h.waiting() {
			t.Errorf("commit %v: released %v, want %v (waiting %v)", commit, offs, want, h.waiting())
		}
	}
}

// BenchmarkIndexApply applies 200,000 records with ids as a partition's tail and writer do
// (DefaultDedupeMax bounds the window): ids written by others are looked up, then remembered
// in the hash map; ids the store made for the very write (fresh) are remembered by their
// counter (see IDs).
func BenchmarkIndexApply(b *testing.B) {
	const n = 200_000
	now := time.Now()
	made := newIDs()
	for _, kind := range []string{"ids written by others", "ids the store made"} {
		recs := make([]record, n)
		for i := range recs {
			recs[i] = record{key: fmt.Sprintf("we-%d", i%1000), offset: int64(i), version: int64(i/1000 + 1),
				id: fmt.Sprintf("0193a5f2-7c1e-7d4b-9a3e-%012d", i), typ: "WorkEffort:ProgressUpdated", at: now}
			if kind == "ids the store made" {
				recs[i].id, recs[i].fresh = made.New(now), true
			}
		}
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ix := newIndex(DefaultDedupeWindow, DefaultDedupeMax)
				for _, r := range recs {
					ix.apply(r, now)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
		})
	}
}
