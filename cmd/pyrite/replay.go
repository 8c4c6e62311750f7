package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

const replayUsage = `
Moves the committed offsets of consumer group GROUP, on every partition it
has committed (or on every partition of the --topic topics), to the position
--to names, so that the group reads those records again (or skips them) when
it next runs. For groups whose offsets live in Kafka (reactors, sagas, the
upcaster). It refuses groups whose consumers start where their store says
(topology.Group.StorePositions: the work-efforts projection, the github saga,
the deployment process manager), since moving their offsets would change
nothing: for a projection it names 'pyrite projection rebuild'.

It refuses, saying why, while the group has live members: stop every
consumer of the group first. Before moving offsets back it writes, for each
partition moved back, a record to pyrite.replays (key
"<group>/<topic>/<partition>", value {"group","topic","partition","until",
"at"}; until is the offset the group had reached, or an earlier replay's
until if larger): reactors with outside side effects stay silent for the
replayed records before it.

--dry-run prints the old and new offset of every partition and changes
nothing.

Examples:
  pyrite replay notifications --to -2h --dry-run
  pyrite replay webhooks --to time:2025-03-01T09:00:00Z --topic pyrite.work-effort.events

Exit code 0 when the offsets were moved (or the dry run printed), 1 when
the group has live members or Kafka failed, 2 on usage errors.`

// replayMove is one partition of a replay plan.
type replayMove struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Old       int64  `json:"old"` // -1: never committed
	New       int64  `json:"new"`
}

// replayMarker is the value of a pyrite.replays record.
type replayMarker struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Until     int64  `json:"until"`
	At        string `json:"at"`
}

// replayKey is the pyrite.replays key of a group's partition.
func replayKey(group, topic string, partition int32) string {
	return group + "/" + topic + "/" + strconv.Itoa(int(partition))
}

type replayResult struct {
	Group      string         `json:"group"`
	To         string         `json:"to"`
	DryRun     bool           `json:"dryRun"`
	Partitions []replayMove   `json:"partitions"`
	Markers    []replayMarker `json:"markers"`
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite replay", "pyrite replay GROUP --to POSITION [flags]", replayUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	to := fs.String("to", "", "where to move the group: "+startSpecHelp+" (required)")
	var topics []string
	fs.Func("topic", "move only this topic (repeatable); needed for a group that has committed nothing", func(s string) error {
		topics = append(topics, config.SplitList(s)...)
		return nil
	})
	dryRun := fs.Bool("dry-run", false, "print the old and new offset per partition and change nothing")
	pos, err := parseArgs(fs, args, 1, "GROUP")
	if err != nil {
		return err
	}
	group := pos[0]
	var errs []error
	var sp startSpec
	if *to == "" {
		errs = append(errs, fmt.Errorf("--to is required: %s", startSpecHelp))
	} else if sp, err = parseStartSpec(*to, time.Now()); err != nil {
		errs = append(errs, fmt.Errorf("--to: %w", err))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	if err := storePositioned(group, *to); err != nil {
		return err
	}
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	d := described[group]
	if errors.Is(d.Err, kerr.GroupIDNotFound) {
		d.Err = nil // a group nobody joined yet: no members
	}
	if d.Err != nil {
		return fmt.Errorf("describe group %s: %w", group, d.Err)
	}
	if live := liveMembers(d); live != "" {
		if !*dryRun {
			return fmt.Errorf("group %s has %d live members (state %s): %s; stop every consumer of the group first: offsets can only be moved while it has no members",
				group, len(d.Members), d.State, live)
		}
		fmt.Fprintf(stderr, "pyrite replay: note: group %s has %d live members (state %s); without --dry-run this would refuse\n", group, len(d.Members), d.State)
	}

	plan, err := replayPlan(ctx, adm, group, topics, sp)
	if err != nil {
		return err
	}
	res := replayResult{Group: group, To: *to, DryRun: *dryRun, Partitions: plan, Markers: []replayMarker{}}
	if !*dryRun {
		if res.Markers, err = writeReplayMarkers(ctx, brokers, adm, group, plan); err != nil {
			return err
		}
		commits := kadm.Offsets{}
		for _, m := range plan {
			commits.Add(kadm.Offset{Topic: m.Topic, Partition: m.Partition, At: m.New, LeaderEpoch: -1})
		}
		if err := adm.CommitAllOffsets(ctx, group, commits); err != nil {
			return fmt.Errorf("commit offsets of %s (did a consumer join meanwhile?): %w", group, err)
		}
	}
	if f.output == "json" {
		return printJSON(stdout, res)
	}
	rows := make([][]string, 0, len(plan))
	for _, m := range plan {
		old, delta := strconv.FormatInt(m.Old, 10), ""
		if m.Old < 0 {
			old = "-"
		} else {
			delta = fmt.Sprintf("%+d", m.New-m.Old)
		}
		rows = append(rows, []string{m.Topic, strconv.Itoa(int(m.Partition)), old, strconv.FormatInt(m.New, 10), delta})
	}
	if err := printTable(stdout, []string{"TOPIC", "PARTITION", "OLD", "NEW", "MOVE"}, rows); err != nil {
		return err
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: group %s not changed\n", group)
		return nil
	}
	fmt.Fprintf(stdout, "group %s moved to %s on %d partitions; %d replay markers written to %s\n",
		group, *to, len(plan), len(res.Markers), topology.ReplaysTopic)
	return nil
}

// storePositioned refuses a group whose consumers start where their store says
// (topology.Group.StorePositions): moving its Kafka offsets would change nothing, so the
// refusal names what does. A projection is replayed by rebuilding it; a saga or process
// manager keeps its decisions (state, outbox) in the same transactions as its positions, so
// reading its events again would decide them a second time: there is no replay for it.
func storePositioned(group, to string) error {
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	top, err := topology.New(topology.Dev, mods.Topology()...) // names only
	if err != nil {
		return err
	}
	g, err := top.Group(group)
	if err != nil || !g.StorePositions {
		return nil // an undeclared group may still have Kafka offsets to move
	}
	if slices.Contains(mods.Rebuildable(), group) {
		return fmt.Errorf("%w: %s is a projection whose positions live in its store, not in Kafka; moving its offsets would change nothing: use 'pyrite projection rebuild %s --from %s'",
			errRefused, group, group, to)
	}
	return fmt.Errorf("%w: %s keeps its positions in its store with its state and outbox, not in Kafka; moving its offsets would change nothing, and reading its events again would decide them a second time; there is no replay for it (its dead letters: 'pyrite dlq redrive %s')",
		errRefused, group, group)
}

// liveMembers describes a group's members, "" when it has none.
func liveMembers(d kadm.DescribedGroup) string {
	if len(d.Members) == 0 {
		return ""
	}
	var ms []string
	for _, m := range d.Members {
		id := m.ClientID + "@" + m.ClientHost
		if m.InstanceID != nil {
			id += " (instance " + *m.InstanceID + ")"
		}
		ms = append(ms, id)
	}
	return strings.Join(ms, ", ")
}

// replayPlan returns the old and new offset of every partition to move: those the group
// committed (of topics, when given), or every partition of topics.
func replayPlan(ctx context.Context, adm *kadm.Client, group string, topics []string, sp startSpec) ([]replayMove, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = nil, nil // nothing committed yet
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	if err := committed.Error(); err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	old := offsets{}
	committed.Each(func(o kadm.OffsetResponse) {
		if len(topics) == 0 || slices.Contains(topics, o.Topic) {
			old.set(o.Topic, o.Partition, o.At)
		}
	})
	want := topics
	if len(want) == 0 {
		want = slices.Sorted(func(yield func(string) bool) {
			for t := range old {
				if !yield(t) {
					return
				}
			}
		})
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("group %s has committed no offsets: name the topics to move with --topic", group)
	}
	target, err := sp.resolve(ctx, adm, want...)
	if err != nil {
		return nil, err
	}
	var plan []replayMove
	target.each(func(t string, p int32, off int64) {
		o, ok := old.get(t, p)
		if !ok {
			o = -1
		}
		plan = append(plan, replayMove{Topic: t, Partition: p, Old: o, New: off})
	})
	return plan, nil
}

// writeReplayMarkers records, for every partition the plan moves back, up to where the
// group had read (or an earlier replay's until, if larger), and waits for the records to be
// acknowledged.
func writeReplayMarkers(ctx context.Context, brokers kafkaTarget, adm *kadm.Client, group string, plan []replayMove) ([]replayMarker, error) {
	prev, err := readReplayMarkers(ctx, brokers, adm)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var markers []replayMarker
	var recs []*kgo.Record
	for _, m := range plan {
		until := m.Old
		if p, ok := prev[replayKey(group, m.Topic, m.Partition)]; ok {
			until = max(until, p.Until)
		}
		if m.New >= until {
			continue // nothing already read is read again
		}
		mk := replayMarker{Group: group, Topic: m.Topic, Partition: m.Partition, Until: until, At: now}
		v, err := json.Marshal(mk)
		if err != nil {
			return nil, err
		}
		markers = append(markers, mk)
		recs = append(recs, &kgo.Record{Topic: topology.ReplaysTopic, Key: []byte(replayKey(group, m.Topic, m.Partition)), Value: v})
	}
	if len(recs) == 0 {
		return []replayMarker{}, nil
	}
	// Uncompressed, as the programs' default (--compression none): every client reads it.
	cl, err := kgo.NewClient(brokers.opts(kgo.ProducerBatchCompression(kgo.NoCompression()))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("write replay markers to %s: %w", topology.ReplaysTopic, err)
	}
	return markers, nil
}

// readReplayMarkers reads pyrite.replays to its end and returns the newest marker per key.
func readReplayMarkers(ctx context.Context, brokers kafkaTarget, adm *kadm.Client) (map[string]replayMarker, error) {
	starts, err := startSpec{kind: "earliest"}.resolve(ctx, adm, topology.ReplaysTopic)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", topology.ReplaysTopic, err)
	}
	r, err := newRangeReader(brokers, adm, starts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	out := map[string]replayMarker{}
	for !r.done() {
		recs, err := r.poll(ctx, time.Second, true)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", topology.ReplaysTopic, err)
		}
		for _, rec := range recs {
			var m replayMarker
			if rec.Value == nil {
				delete(out, string(rec.Key))
			} else if json.Unmarshal(rec.Value, &m) == nil {
				out[string(rec.Key)] = m
			}
		}
	}
	return out, nil
}
