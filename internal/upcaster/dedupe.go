package upcaster

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DuplicateWindow is how many raw offsets back the upcaster looks for an exact repeat.
const DuplicateWindow = 10_000

// dupGuard drops exact repeats on the raw topics: a record with a ce_id whose key, value and
// headers (all of them, in order) equal those of a record at most DuplicateWindow offsets
// earlier on the same raw partition. That is an outside idempotent producer's retry that
// the embedded broker (kfake, which keeps no producer state across a restart) wrote twice
// after a SIGKILL. Records without a ce_id are never dropped: equal ones are distinct events
// (their ce_id is derived from their offsets).
//
// The window of a raw partition is rebuilt from the raw partition itself (the DuplicateWindow
// offsets before the first record fetched) the first time the partition is fetched after an
// assignment, so it holds across restarts and rebalances. It is keyed by offset, so a batch
// read again after an abort finds its own records, not repeats.
type dupGuard struct {
	size int64

	mu    sync.Mutex
	parts map[rawPart]*dupWindow // absent: not loaded since the assignment
}

// newDupGuard returns a guard over the last size offsets; nil (which drops nothing) when
// size is not positive.
func newDupGuard(size int64) *dupGuard {
	if size <= 0 {
		return nil
	}
	return &dupGuard{size: size, parts: map[rawPart]*dupWindow{}}
}

// forget drops the windows of partitions no longer owned. It runs in kgo's rebalance
// callback and does not block.
func (g *dupGuard) forget(gone map[string][]int32) {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for topic, ps := range gone {
		for _, p := range ps {
			delete(g.parts, rawPart{topic, p})
		}
	}
}

// drop removes the repeats from fs, loading the windows of partitions not seen since they
// were assigned, and returns how many it removed per raw topic. On an error nothing is
// removed and fs must not be processed.
func (g *dupGuard) drop(ctx context.Context, cl *kgo.Client, fs kgo.Fetches) (map[string]int, error) {
	if g == nil {
		return nil, nil
	}
	need := map[string]map[int32]int64{} // topic -> partition -> first offset fetched
	g.mu.Lock()
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if _, ok := g.parts[rawPart{p.Topic, p.Partition}]; !ok && len(p.Records) > 0 {
			if need[p.Topic] == nil {
				need[p.Topic] = map[int32]int64{}
			}
			need[p.Topic][p.Partition] = p.Records[0].Offset
		}
	})
	g.mu.Unlock()
	for topic, firsts := range need {
		ws, err := g.load(ctx, cl, topic, firsts)
		if err != nil {
			return nil, fmt.Errorf("read back %s for repeats: %w", topic, err)
		}
		g.mu.Lock()
		for p, w := range ws {
			g.parts[rawPart{topic, p}] = w
		}
		g.mu.Unlock()
	}
	dropped := map[string]int{}
	g.mu.Lock()
	defer g.mu.Unlock()
	filterRecords(fs, func(topic string, partition int32, _ []*kgo.Record) func(*kgo.Record) bool {
		w := g.parts[rawPart{topic, partition}]
		if w == nil {
			return nil
		}
		return func(r *kgo.Record) bool {
			if w.repeat(r) {
				dropped[topic]++
				return false
			}
			return true
		}
	})
	return dropped, nil
}

// load builds the windows of topic's partitions from the records before their first
// fetched offsets (read_committed, as the stage reads them).
func (g *dupGuard) load(ctx context.Context, cl *kgo.Client, topic string, firsts map[int32]int64) (map[int32]*dupWindow, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ws := map[int32]*dupWindow{}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{}
	for p, first := range firsts {
		ws[p] = newDupWindow(g.size)
		start, _ := starts.Lookup(topic, p)
		if start.Err != nil {
			return nil, start.Err
		}
		if at := max(start.Offset, first-g.size); at < first {
			from[p], until[p] = kgo.NewOffset().At(at), first-1
		}
	}
	if len(from) == 0 {
		return ws, nil
	}
	err = readRange(ctx, cl, topic, from, until, func(r *kgo.Record) {
		if r.Offset < firsts[r.Partition] && !r.Attrs.IsControl() {
			ws[r.Partition].repeat(r)
		}
	})
	return ws, err
}

// dupWindow is one raw partition's records with a ce_id over the last size offsets.
type dupWindow struct {
	size  int64
	seeds [2]maphash.Seed
	first map[dupDigest]int64 // digest -> lowest offset seen
	order []dupEntry          // in the order added, so in offset order
	buf   []byte              // what the last digest was taken of, reused
}

// dupDigest is a record's key, value and headers hashed under two secret seeds: 128 bits.
// Two distinct records of a window (10,000 offsets) share one with a chance of about 2^-102,
// and an outside writer cannot aim at one without the seeds, which every process draws
// anew. SHA-256, which it replaced, cost 0.8 us a record on this project's machine, nearly
// all of the window's time; two keyed 64-bit hashes cost a tenth of that.
type dupDigest [2]uint64

type dupEntry struct {
	offset int64
	digest dupDigest
}

func newDupWindow(size int64) *dupWindow {
	return &dupWindow{size: size, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, first: map[dupDigest]int64{}}
}

// repeat reports whether r repeats a record at most size offsets before it, and adds r to
// the window when it does not.
func (w *dupWindow) repeat(r *kgo.Record) bool {
	if !carriesID(r) {
		return false
	}
	for len(w.order) > 0 && w.order[0].offset <= r.Offset-w.size {
		if w.first[w.order[0].digest] == w.order[0].offset {
			delete(w.first, w.order[0].digest)
		}
		w.order = w.order[1:]
	}
	w.buf = frame(w.buf[:0], r)
	d := dupDigest{maphash.Bytes(w.seeds[0], w.buf), maphash.Bytes(w.seeds[1], w.buf)}
	if at, ok := w.first[d]; ok {
		return at < r.Offset
	}
	w.first[d] = r.Offset
	w.order = append(w.order, dupEntry{r.Offset, d})
	return false
}

func carriesID(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == ceID && len(h.Value) > 0 {
			return true
		}
	}
	return false
}

// frame appends r's key, value and headers to buf, each length-prefixed, so that distinct
// records never lay out the same bytes.
func frame(buf []byte, r *kgo.Record) []byte {
	buf = appendPrefixed(buf, r.Key)
	buf = appendPrefixed(buf, r.Value)
	for _, hd := range r.Headers {
		buf = appendPrefixed(buf, hd.Key)
		buf = appendPrefixed(buf, hd.Value)
	}
	return buf
}

// appendPrefixed appends b to buf after its length.
func appendPrefixed[T string | []byte](buf []byte, b T) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(b)))
	return append(buf, b...)
}
