package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const lagUsage = `
Prints how far consumer groups are behind, per group, topic and partition:
the committed offset, the partition's end (its last stable offset, where a
read_committed consumer can get to: transaction markers do not count, so a
caught-up group shows 0), the lag between them and the member consuming
the partition. With no GROUP, every group the cluster
knows. A partition the group never committed counts its whole log as lag.

Projections keep their positions in the store; the offsets they also commit
to Kafka trail those positions by at most a second, so their lag here is
close but not exact (GET /v1/projections on the projector is exact).

Exit code 0 when every group was read, 1 when a group could not be (the
others are still printed), 2 on usage errors.`

// lagRow is one partition of a group in pyrite lag.
type lagRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: never committed
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"` // client id and host of the consuming member
	Error     string `json:"error,omitempty"`
}

// groupLag is one group in pyrite lag.
type groupLag struct {
	Group      string   `json:"group"`
	State      string   `json:"state"`
	Members    int      `json:"members"`
	Lag        int64    `json:"lag"`
	Partitions []lagRow `json:"partitions"`
	Error      string   `json:"error,omitempty"`
}

func runLag(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite lag", "pyrite lag [GROUP...] [flags]", lagUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	groups, err := parseArgs(fs, args, 0, "GROUP...")
	if err != nil {
		return err
	}
	brokers, err := f.validate()
	if err != nil {
		return err
	}
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	if len(groups) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return fmt.Errorf("list groups: %w", err)
		}
		groups = listed.Groups()
	}
	slices.Sort(groups)
	lags, err := groupLags(ctx, adm, brokers, groups...)
	if err != nil {
		return err
	}
	failed := 0
	for _, g := range lags {
		if g.Error != "" {
			failed++
		}
	}
	if f.output == "json" {
		if err := printJSON(stdout, lags); err != nil {
			return err
		}
	} else {
		if len(lags) == 0 {
			fmt.Fprintln(stdout, "no consumer groups")
		}
		for i, g := range lags {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			if g.Error != "" {
				fmt.Fprintf(stdout, "group %s: %s\n", g.Group, g.Error)
				continue
			}
			fmt.Fprintf(stdout, "group %s (%s, %d members): lag %d\n", g.Group, g.State, g.Members, g.Lag)
			rows := make([][]string, 0, len(g.Partitions))
			for _, p := range g.Partitions {
				committed, lag := strconv.FormatInt(p.Committed, 10), strconv.FormatInt(p.Lag, 10)
				if p.Committed < 0 {
					committed = "-"
				}
				if p.Error != "" {
					lag = "error: " + p.Error
				}
				rows = append(rows, []string{p.Topic, strconv.Itoa(int(p.Partition)), committed, strconv.FormatInt(p.End, 10), lag, p.Member})
			}
			if err := printTable(stdout, []string{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"}, rows); err != nil {
				return err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d groups could not be read", errFindings, failed, len(lags))
	}
	return nil
}

// exactLagBelow bounds the gaps groupLags reads to count data records exactly; longer
// ones count every offset (markers are a rounding error there).
const exactLagBelow = 1000

// countData reads each partition of from, from its offset to its last stable offset, and
// returns how many data records (what a read_committed consumer gets) each holds.
func countData(ctx context.Context, brokers kafkaTarget, adm *kadm.Client, from offsets) (offsets, error) {
	counts := offsets{}
	if len(from) == 0 {
		return counts, nil
	}
	from.each(func(t string, p int32, _ int64) { counts.set(t, p, 0) })
	r, err := newRangeReader(brokers, adm, from)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	for !r.done() {
		recs, err := r.poll(ctx, time.Second, true)
		if err != nil {
			return nil, fmt.Errorf("count records behind the commits: %w", err)
		}
		for _, rec := range recs {
			n, _ := counts.get(rec.Topic, rec.Partition)
			counts.set(rec.Topic, rec.Partition, n+1)
		}
	}
	return counts, nil
}

// lastStableOffsets lists the last stable offset (what read_committed consumers can
// reach) of every topic the described groups consume.
func lastStableOffsets(ctx context.Context, adm *kadm.Client, described kadm.DescribedGroupLags) (kadm.ListedOffsets, error) {
	var topics []string
	for _, d := range described {
		for _, l := range d.Lag.Sorted() {
			if !slices.Contains(topics, l.Topic) {
				topics = append(topics, l.Topic)
			}
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	listed, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("last stable offsets: %w", err)
	}
	return listed, nil
}

// groupLags returns the lag of each group, sorted by group, partitions by topic and number.
// A group that cannot be described or whose offsets cannot be read carries Error.
//
// Lag counts what a read_committed consumer still has to read: a partition ends at its last
// stable offset, and where at most exactLagBelow offsets lie between the commit and that
// end, they are read and only data records count (not transaction markers, not aborted
// records), so a group that committed after its last record says 0.
func groupLags(ctx context.Context, adm *kadm.Client, brokers kafkaTarget, groups ...string) ([]groupLag, error) {
	if len(groups) == 0 {
		return nil, nil
	}
	described, err := adm.Lag(ctx, groups...)
	if err != nil && len(described) == 0 {
		return nil, fmt.Errorf("group lag: %w", err)
	}
	stable, err := lastStableOffsets(ctx, adm, described)
	if err != nil {
		return nil, err
	}
	// The short gaps between a commit and the end, read to count only data records.
	gaps := offsets{}
	for _, d := range described {
		for _, l := range d.Lag.Sorted() {
			if lso, ok := stable.Lookup(l.Topic, l.Partition); ok && lso.Err == nil && l.Err == nil &&
				l.Commit.At >= 0 && lso.Offset > l.Commit.At && lso.Offset-l.Commit.At <= exactLagBelow {
				gaps.set(l.Topic, l.Partition, l.Commit.At)
			}
		}
	}
	data, err := countData(ctx, brokers, adm, gaps)
	if err != nil {
		return nil, err
	}
	out := make([]groupLag, 0, len(groups))
	for _, g := range groups {
		d, ok := described[g]
		gl := groupLag{Group: g, Partitions: []lagRow{}}
		switch {
		case !ok:
			gl.Error = "not described (coordinator unreachable?)"
		case d.State == "Dead" || errors.Is(d.Error(), kerr.GroupIDNotFound):
			gl.Error = "no such group"
		case d.Error() != nil:
			gl.Error = d.Error().Error()
		case d.State == "Dead":
			gl.Error = "no such group"
		}
		if gl.Error != "" {
			out = append(out, gl)
			continue
		}
		gl.State, gl.Members = d.State, len(d.Members)
		for _, l := range d.Lag.Sorted() {
			row := lagRow{Topic: l.Topic, Partition: l.Partition, Committed: l.Commit.At, End: l.End.Offset, Lag: l.Lag}
			if lso, ok := stable.Lookup(l.Topic, l.Partition); ok && lso.Err == nil && l.Err == nil && lso.Offset <= l.End.Offset {
				// kadm counts to the end offset, past transaction markers no consumer
				// reads: count to the last stable offset instead.
				row.End = lso.Offset
				row.Lag = max(0, l.Lag-(l.End.Offset-lso.Offset))
				if n, ok := data.get(l.Topic, l.Partition); ok {
					row.Lag = n
				}
			}
			if l.Member != nil {
				row.Member = l.Member.ClientID + "@" + l.Member.ClientHost
			}
			if l.Err != nil {
				row.Error = l.Err.Error()
			} else {
				gl.Lag += row.Lag
			}
			gl.Partitions = append(gl.Partitions, row)
		}
		out = append(out, gl)
	}
	// With a partial answer (err != nil), the groups that failed carry their error.
	return out, nil
}
