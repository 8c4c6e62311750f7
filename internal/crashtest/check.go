package crashtest

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// EventID names an event of the load: its aggregate and its sequence number
// within the aggregate, written "<aggregate>/<seq>" (the ce_id).
func EventID(aggregate string, seq int) string { return aggregate + "/" + strconv.Itoa(seq) }

// ParseEventID splits an EventID; ok is false for ids the load did not make.
func ParseEventID(id string) (aggregate string, seq int, ok bool) {
	i := strings.LastIndexByte(id, '/')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	if err != nil {
		return "", 0, false
	}
	return id[:i], n, true
}

// Seen is one event read back from the events topic, in partition order.
type Seen struct {
	ID        string
	Partition int32
	Offset    int64
}

// Tally is what one check found.
type Tally struct {
	Accepted   int // events acknowledged to their writer
	Read       int // events of the load read back
	Lost       int // accepted, not read
	Duplicated int // read more than once (each extra copy counts)
	OutOfOrder int // read after a later event of its aggregate
	LostIDs    []string
	DupIDs     []string
}

// Count compares what was read (each partition in offset order; partitions
// in any order) with what was accepted. Events read that were not accepted
// (their writer never heard back) are fine once, duplicates if more.
func Count(accepted map[string]bool, seen []Seen) Tally {
	t := Tally{Accepted: len(accepted)}
	copies := map[string]int{}
	last := map[string]int{} // aggregate -> highest seq read so far
	for _, s := range seen {
		agg, seq, ok := ParseEventID(s.ID)
		if !ok {
			continue
		}
		t.Read++
		copies[s.ID]++
		if copies[s.ID] > 1 {
			t.Duplicated++
			t.DupIDs = appendSome(t.DupIDs, fmt.Sprintf("%s@%d:%d", s.ID, s.Partition, s.Offset))
			continue
		}
		if prev, ok := last[agg]; ok && seq <= prev {
			t.OutOfOrder++
		}
		last[agg] = max(last[agg], seq)
	}
	for id := range accepted {
		if copies[id] == 0 {
			t.Lost++
			t.LostIDs = appendSome(t.LostIDs, id)
		}
	}
	return t
}

func appendSome(s []string, v string) []string {
	if len(s) < 10 {
		return append(s, v)
	}
	return s
}

// Row is one line of the matrix report: a fault and what the checks after
// it found.
type Row struct {
	Fault      string
	Events     int // accepted so far
	Lost       int
	Duplicated int
	// RawDuplicated are duplicates already on the raw topic: an outside
	// (non-transactional, idempotent) producer's retry that the broker wrote
	// twice because kfake keeps no idempotent-producer state across a SIGKILL.
	// Pyrite writes each raw record once to events, so the copy shows there;
	// reported, not counted as a pipeline failure (see internal/devkafka).
	RawDuplicated int
	OutOfOrder    int
	Projection    int           // aggregates whose read model differs from the fold of the topic
	Effects       int           // reactor effects missing or repeated
	Stuck         int           // records left in retry topics
	Recover       time.Duration // from the restart to every check passing
}

// Failed reports whether any check failed.
func (r Row) Failed() bool {
	return r.Lost+r.Duplicated+r.OutOfOrder+r.Projection+r.Effects+r.Stuck > 0
}

// WriteTable prints rows as the matrix table.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tevents\tlost\tduplicated\traw dup (broker)\tout of order\tprojection\teffects\tstuck\trecover\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", r.Fault, r.Events, r.Lost, r.Duplicated, r.RawDuplicated, r.OutOfOrder,
			r.Projection, r.Effects, r.Stuck, r.Recover.Round(10*time.Millisecond))
	}
	return tw.Flush()
}
