package devkafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The data directory layout read here is the embedded broker's:
// <dir>/partitions/<url-escaped topic>-<partition>/<base offset>.dat holds
// Kafka RecordBatches back to back in the wire format (v2, CRC-32C), and
// <base offset>.idx beside it holds one fixed-size entry per batch (its
// leader epoch and whether the batch belongs to a transaction). Only the
// RecordBatch format is Kafka's; of the index Pyrite relies on nothing but
// its entry size, to count entries.
const (
	partitionsDir  = "partitions"
	indexEntrySize = 15
	batchHeader    = 12 // FirstOffset (8) + Length (4)
	attrTxn        = 0x10
	attrControl    = 0x20
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// ErrTorn is returned (wrapped, naming the file) for damage that cannot be
// repaired without losing acknowledged records from the middle of a log.
var ErrTorn = errors.New("torn data")

// HangingTxn is a transaction that wrote records to a partition and has no
// COMMIT or ABORT marker after them: its producer died with it.
type HangingTxn struct {
	Topic         string `json:"topic"`
	Partition     int32  `json:"partition"`
	ProducerID    int64  `json:"producerId"`
	ProducerEpoch int16  `json:"producerEpoch"`
	FirstOffset   int64  `json:"firstOffset"`
	LastOffset    int64  `json:"lastOffset"`
	// CoordinatorEpoch goes into the marker; 0 on the embedded broker.
	CoordinatorEpoch int32 `json:"coordinatorEpoch,omitempty"`
}

func (h HangingTxn) String() string {
	return fmt.Sprintf("%s[%d] producer %d epoch %d, offsets %d-%d", h.Topic, h.Partition, h.ProducerID, h.ProducerEpoch, h.FirstOffset, h.LastOffset)
}

// Report is what Check found in a data directory.
type Report struct {
	// Hanging are the transactions to close with ABORT markers before any
	// client starts.
	Hanging []HangingTxn
	// Repaired says, one line each, what Check changed on disk.
	Repaired []string
	// Partitions and Batches count what was read.
	Partitions, Batches int
}

// segment is one .dat file's parse.
type segment struct {
	path    string
	base    int64
	size    int64
	valid   int64   // bytes of whole, CRC-valid batches from the start
	ends    []int64 // end position of each batch in batches
	tail    bool    // the bytes after valid are one partial or corrupt batch reaching the end of the file
	batches []kmsg.RecordBatch
	idxPath string
	idxSize int64 // -1: no index file
}

// Check reads every partition log under dir (a data directory of the
// embedded broker; a missing or empty one is fine) and returns the
// transactions left hanging by an unclean stop. It repairs, and reports in
// Repaired, the damage a crash or power loss leaves at the end of a log: a
// partial batch at the tail of a partition's last segment (never
// acknowledged as a whole, since the broker writes a batch in one write) is
// cut off, and index entries beyond the segment's batches are dropped. It
// refuses, with an error wrapping ErrTorn that names the file, damage that
// would make the broker silently serve a shorter log: a corrupt or partial
// batch followed by more data (in the same segment or a later one), or an
// index missing the entries of transactional batches (the broker would take
// their records for non-transactional ones and show aborted data).
func Check(dir string) (Report, error) {
	var r Report
	root := filepath.Join(dir, partitionsDir)
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		topic, part, ok := parsePartitionDir(e.Name())
		if !ok {
			continue
		}
		r.Partitions++
		hanging, err := checkPartition(filepath.Join(root, e.Name()), topic, part, &r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.Hanging = append(r.Hanging, hanging...)
	}
	slices.SortFunc(r.Hanging, func(a, b HangingTxn) int {
		return cmpTuple(a.Topic, b.Topic, a.Partition, b.Partition, a.ProducerID, b.ProducerID)
	})
	return r, errors.Join(errs...)
}

func cmpTuple(at, bt string, ap, bp int32, aid, bid int64) int {
	switch {
	case at != bt:
		return strings.Compare(at, bt)
	case ap != bp:
		return int(ap - bp)
	case aid < bid:
		return -1
	case aid > bid:
		return 1
	}
	return 0
}

// parsePartitionDir splits "<escaped topic>-<partition>".
func parsePartitionDir(name string) (string, int32, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return "", 0, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 {
		return "", 0, false
	}
	topic, err := url.PathUnescape(name[:i])
	if err != nil {
		return "", 0, false
	}
	return topic, int32(p), true
}

func checkPartition(pdir, topic string, part int32, r *Report) ([]HangingTxn, error) {
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return nil, err
	}
	var bases []int64
	for _, e := range entries {
		if b, ok := strings.CutSuffix(e.Name(), ".dat"); ok {
			if n, err := strconv.ParseInt(b, 10, 64); err == nil {
				bases = append(bases, n)
			}
		}
	}
	slices.Sort(bases)
	segs := make([]*segment, 0, len(bases))
	for _, base := range bases {
		s, err := readSegment(pdir, base)
		if err != nil {
			return nil, err
		}
		segs = append(segs, s)
	}
	for i, s := range segs {
		last := i == len(segs)-1
		if s.valid < s.size {
			if !s.tail || !last || hasLaterData(segs[i+1:]) {
				return nil, fmt.Errorf("%w: %s: bytes %d-%d are not whole Kafka record batches and more data follows; "+
					"the broker would cut the log there and serve it shorter (move the data directory away to start afresh)",
					ErrTorn, s.path, s.valid, s.size)
			}
			if err := os.Truncate(s.path, s.valid); err != nil {
				return nil, fmt.Errorf("repair %s: %w", s.path, err)
			}
			r.Repaired = append(r.Repaired, fmt.Sprintf("%s: cut %d bytes of a partial record batch at its end (the log of %s[%d] now ends at offset %d)",
				s.path, s.size-s.valid, topic, part, nextOffset(s)))
		}
		if err := checkIndex(s, last, r); err != nil {
			return nil, err
		}
		r.Batches += len(s.batches)
	}
	return hangingTxns(topic, part, segs), nil
}

func hasLaterData(segs []*segment) bool {
	for _, s := range segs {
		if s.size > 0 {
			return true
		}
	}
	return false
}

func nextOffset(s *segment) int64 {
	if len(s.batches) == 0 {
		return s.base
	}
	b := s.batches[len(s.batches)-1]
	return b.FirstOffset + int64(b.LastOffsetDelta) + 1
}

// readSegment parses whole batches from the start of a segment and stops at
// the first partial or corrupt one.
func readSegment(pdir string, base int64) (*segment, error) {
	s := &segment{
		path:    filepath.Join(pdir, strconv.FormatInt(base, 10)+".dat"),
		idxPath: filepath.Join(pdir, strconv.FormatInt(base, 10)+".idx"),
		base:    base,
		idxSize: -1,
	}
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return nil, err
	}
	s.size = int64(len(raw))
	if fi, err := os.Stat(s.idxPath); err == nil {
		s.idxSize = fi.Size()
	}
	pos, next := 0, base
	for pos+batchHeader <= len(raw) {
		length := int(int32(binary.BigEndian.Uint32(raw[pos+8 : pos+12])))
		end := pos + batchHeader + length
		if length < 49 || end > len(raw) { // 49: a v2 batch header after Length
			s.tail = length >= 49 || pos+batchHeader+49 > len(raw)
			break
		}
		b := raw[pos:end]
		if b[16] != 2 || binary.BigEndian.Uint32(b[17:21]) != crc32.Checksum(b[21:], crc32c) {
			s.tail = end == len(raw)
			break
		}
		var rb kmsg.RecordBatch
		// The CRC leaves out the base offset and length: a batch must also start at or
		// after the end of the one before it (compaction leaves gaps), the first at or
		// after the offset the file's name says.
		if err := rb.ReadFrom(b); err != nil || rb.FirstOffset < next || rb.LastOffsetDelta < 0 {
			s.tail = end == len(raw)
			break
		}
		next = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
		s.batches = append(s.batches, rb)
		s.ends = append(s.ends, int64(end))
		pos = end
	}
	if pos+batchHeader > len(raw) {
		s.tail = true
	}
	s.valid = int64(pos)
	return s, nil
}

// checkIndex compares a segment's index with its batches; entries are
// positional, one per batch. The broker takes a batch without an entry for
// a non-transactional one, which is right for plain and control batches and
// wrong for transactional records. Extra entries (the index written, the
// batch not) and a partial entry are dropped. The broker writes a batch,
// then its entry, then answers: batches at the end of the last segment
// without an entry were never acknowledged, and are cut (left there, the
// entries of batches appended later would land one place off). In an older
// segment, which no longer grows, missing entries are harmless unless they
// are for transactional records; then Check refuses.
func checkIndex(s *segment, last bool, r *Report) error {
	have := max(s.idxSize, 0)
	if rem := have % indexEntrySize; rem != 0 {
		if err := os.Truncate(s.idxPath, have-rem); err != nil {
			return fmt.Errorf("repair %s: %w", s.idxPath, err)
		}
		r.Repaired = append(r.Repaired, fmt.Sprintf("%s: dropped a partial index entry of %d bytes", s.idxPath, rem))
		have -= rem
	}
	indexed := int(have / indexEntrySize)
	if indexed > len(s.batches) {
		want := int64(len(s.batches)) * indexEntrySize
		if err := os.Truncate(s.idxPath, want); err != nil {
			return fmt.Errorf("repair %s: %w", s.idxPath, err)
		}
		r.Repaired = append(r.Repaired, fmt.Sprintf("%s: dropped %d index entries for batches its segment does not hold", s.idxPath, indexed-len(s.batches)))
		return nil
	}
	firstTxn := slices.IndexFunc(s.batches[indexed:], func(b kmsg.RecordBatch) bool {
		return b.Attributes&attrTxn != 0 && b.Attributes&attrControl == 0
	})
	switch {
	case indexed == len(s.batches):
		return nil
	case last:
		firstTxn = 0
	case firstTxn < 0:
		r.Repaired = append(r.Repaired, fmt.Sprintf("%s: index lacks %d of %d entries, none for transactional records (the broker's defaults for them are right)",
			s.idxPath, len(s.batches)-indexed, len(s.batches)))
		return nil
	default:
		b := s.batches[indexed+firstTxn]
		return fmt.Errorf("%w: %s: index holds %d of %d entries and the batch at offset %d is transactional; "+
			"the broker would serve its records as committed whatever their transaction's outcome (move the data directory away to start afresh)",
			ErrTorn, s.idxPath, indexed, len(s.batches), b.FirstOffset)
	}
	keep := indexed + firstTxn
	cut := int64(0)
	if keep > 0 {
		cut = s.ends[keep-1]
	}
	if err := os.Truncate(s.path, cut); err != nil {
		return fmt.Errorf("repair %s: %w", s.path, err)
	}
	r.Repaired = append(r.Repaired, fmt.Sprintf("%s: cut %d record batches from offset %d on: their index entries were never written, so they were never acknowledged",
		s.path, len(s.batches)-keep, s.batches[keep].FirstOffset))
	s.batches, s.ends, s.valid, s.size = s.batches[:keep], s.ends[:keep], cut, cut
	return nil
}

// hangingTxns follows each producer through the log: its transactional
// records open a transaction, its control batch (COMMIT or ABORT) closes it.
func hangingTxns(topic string, part int32, segs []*segment) []HangingTxn {
	open := map[int64]*HangingTxn{}
	for _, s := range segs {
		for _, b := range s.batches {
			if b.Attributes&attrTxn == 0 {
				continue
			}
			if b.Attributes&attrControl != 0 {
				delete(open, b.ProducerID)
				continue
			}
			last := b.FirstOffset + int64(b.LastOffsetDelta)
			if h, ok := open[b.ProducerID]; ok {
				h.LastOffset, h.ProducerEpoch = last, max(h.ProducerEpoch, b.ProducerEpoch)
				continue
			}
			open[b.ProducerID] = &HangingTxn{Topic: topic, Partition: part, ProducerID: b.ProducerID,
				ProducerEpoch: b.ProducerEpoch, FirstOffset: b.FirstOffset, LastOffset: last}
		}
	}
	out := make([]HangingTxn, 0, len(open))
	for _, h := range open {
		out = append(out, *h)
	}
	return out
}
