package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Redrive markers. A redriven dead letter is marked by a record on the dead-letter topic
// itself, in the same partition, written in the same Kafka transaction as the redriven
// record: either both are there for read_committed readers or neither. The marker has the
// dead letter's key, no value, and these headers (pyrite-dlq-*, so the runners would strip
// them as their own control headers, though nothing but this command reads a DLQ).
//
// A skipped dead letter (pyrite dlq skip) is marked the same way, with
// bus.HeaderDLQSkippedOffset and headerSkippedTime.
const (
	// headerRedrivenOffset is the DLQ offset of the dead letter the marker is for.
	headerRedrivenOffset = bus.HeaderDLQRedrivenOffset
	// headerRedrivenTo says where it went: <topic>[<partition>]@<offset>.
	headerRedrivenTo = "pyrite-dlq-redriven-to"
	// headerRedrivenTime is when, RFC 3339 (UTC).
	headerRedrivenTime = "pyrite-dlq-redriven-time"
	// headerRedrivenFrom goes on the redriven record: <dlq topic>[<partition>]@<offset>.
	// It is not a control header, so a record that fails again carries it into the DLQ.
	headerRedrivenFrom = bus.HeaderRedrivenFrom
	// headerSkippedTime is when a dead letter was skipped, RFC 3339 (UTC).
	headerSkippedTime = "pyrite-dlq-skipped-time"
)

func dlqCommands() []command {
	return []command{
		{name: "list", summary: "list a group's dead letters: reason, attempts, type, key, origin, redriven or not", run: runDLQList},
		{name: "show", summary: "print a group's dead letters in full as JSON lines, values decoded", run: runDLQShow},
		{name: "redrive", summary: "send dead letters back to their group alone, through its retry topic (key, order and headers kept), and mark them redriven", run: runDLQRedrive},
		{name: "skip", summary: "mark dead letters skipped (never redriven) and release the keys they hold", run: runDLQSkip},
	}
}

// deadLetter is one record of a DLQ, as the dlq commands show it.
type deadLetter struct {
	Partition int32          `json:"partition"`
	Offset    int64          `json:"offset"`
	Time      string         `json:"time"`
	Group     string         `json:"group"`
	Reason    string         `json:"reason"`
	Attempts  int            `json:"attempts"`
	Handler   string         `json:"handler,omitempty"`
	Error     string         `json:"error"`
	Type      string         `json:"type,omitempty"`
	Key       *string        `json:"key"`
	Origin    *originView    `json:"origin"`
	Redriven  *redriveRecord `json:"redriven,omitempty"`
	Skipped   *skipRecord    `json:"skipped,omitempty"`
	// HoldsKey: the group holds the key behind this dead letter while it is pending (later
	// records of the key are dead-lettered behind it, reason parked).
	HoldsKey bool `json:"holdsKey"`
	// Parked: the key is parked in the group now: a pending dead letter of it holds it.
	Parked bool `json:"parked"`

	rec *kgo.Record
}

// skipRecord says when a dead letter was skipped.
type skipRecord struct {
	At string `json:"at"`
}

// pending reports whether d is neither redriven nor skipped.
func (d *deadLetter) pending() bool { return d.Redriven == nil && d.Skipped == nil }

type originView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
}

// redriveRecord says where and when a dead letter was redriven.
type redriveRecord struct {
	To string `json:"to"`
	At string `json:"at"`
}

func (d *deadLetter) originString() string {
	if d.Origin == nil {
		return "-"
	}
	return fmt.Sprintf("%s[%d]@%d", d.Origin.Topic, d.Origin.Partition, d.Origin.Offset)
}

// dlqFlags are the flags every dlq subcommand takes.
type dlqFlags struct {
	opsFlags
	at  []position
	key *string
}

// position is a DLQ record's partition and offset, written P:O.
type position struct {
	Partition int32
	Offset    int64
}

func parsePosition(s string) (position, error) {
	p, o, ok := strings.Cut(s, ":")
	pn, err1 := strconv.ParseInt(p, 10, 32)
	on, err2 := strconv.ParseInt(o, 10, 64)
	if !ok || err1 != nil || err2 != nil || pn < 0 || on < 0 {
		return position{}, fmt.Errorf("%q is not PARTITION:OFFSET", s)
	}
	return position{int32(pn), on}, nil
}

func (f *dlqFlags) bindAt(fs *flag.FlagSet) {
	fs.Func("at", "only the dead letter at PARTITION:OFFSET of the DLQ topic (repeatable, or comma-separated; a position named twice counts once)", func(s string) error {
		for _, item := range config.SplitList(s) {
			p, err := parsePosition(item)
			if err != nil {
				return err
			}
			if !slices.Contains(f.at, p) { // counted against what was found: name each once
				f.at = append(f.at, p)
			}
		}
		return nil
	})
}

func (f *dlqFlags) bindKey(fs *flag.FlagSet) {
	f.key = fs.String("key", "", "only the dead letters of this record key")
}

func (f *dlqFlags) selected(d *deadLetter) bool {
	if f.key != nil && *f.key != "" && (d.Key == nil || *d.Key != *f.key) {
		return false
	}
	return len(f.at) == 0 || slices.Contains(f.at, position{d.Partition, d.Offset})
}

// open is what every dlq command starts with: the flags checked (with errs, the command's
// own), the group's DLQ topic named, and an admin client, which the caller closes.
func (f *dlqFlags) open(group string, errs ...error) (brokers kafkaTarget, topic string, adm *kadm.Client, err error) {
	if brokers, err = f.validate(errs...); err != nil {
		return kafkaTarget{}, "", nil, err
	}
	if topic, err = dlqTopic(group); err != nil {
		return kafkaTarget{}, "", nil, err
	}
	if adm, err = admin(brokers); err != nil {
		return kafkaTarget{}, "", nil, err
	}
	return brokers, topic, adm, nil
}

// dlqTopic returns the dead-letter topic of a declared group.
func dlqTopic(group string) (string, error) {
	top, err := modules.Topology(topology.Dev) // names only; sizes do not matter
	if err != nil {
		return "", err
	}
	t, err := top.DLQTopic(group)
	if err != nil {
		var names []string
		for _, g := range top.Groups() {
			names = append(names, g.Name)
		}
		return "", fmt.Errorf("%w: %q is not a declared group (groups: %s)", errUsage, group, strings.Join(names, ", "))
	}
	return t, nil
}

// readDLQ reads the whole dead-letter topic and returns its dead letters in partition and
// offset order, each with its redrive or skip marker if there is one, and whether its key is
// parked.
func readDLQ(ctx context.Context, brokers kafkaTarget, adm *kadm.Client, topic string) ([]*deadLetter, error) {
	starts, err := startSpec{kind: "earliest"}.resolve(ctx, adm, topic)
	if err != nil {
		return nil, err
	}
	r, err := newRangeReader(brokers, adm, starts)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	var out []*deadLetter
	redriven := map[position]*redriveRecord{}
	skipped := map[position]*skipRecord{}
	for !r.done() {
		recs, err := r.poll(ctx, time.Second, true)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		for _, rec := range recs {
			h := headerMap(rec.Headers)
			if off, ok := h[headerRedrivenOffset]; ok {
				if n, err := strconv.ParseInt(off, 10, 64); err == nil {
					redriven[position{rec.Partition, n}] = &redriveRecord{To: h[headerRedrivenTo], At: h[headerRedrivenTime]}
				}
				continue
			}
			if off, ok := h[bus.HeaderDLQSkippedOffset]; ok {
				if n, err := strconv.ParseInt(off, 10, 64); err == nil {
					skipped[position{rec.Partition, n}] = &skipRecord{At: h[headerSkippedTime]}
				}
				continue
			}
			out = append(out, newDeadLetter(rec, h))
		}
	}
	parked := map[string]bool{}
	for _, d := range out {
		d.Redriven = redriven[position{d.Partition, d.Offset}]
		d.Skipped = skipped[position{d.Partition, d.Offset}]
		if d.HoldsKey && d.pending() {
			parked[*d.Key] = true
		}
	}
	for _, d := range out {
		d.Parked = d.Key != nil && parked[*d.Key]
	}
	slices.SortFunc(out, func(a, b *deadLetter) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

func headerMap(hs []kgo.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

func newDeadLetter(rec *kgo.Record, h map[string]string) *deadLetter {
	d := &deadLetter{
		Partition: rec.Partition, Offset: rec.Offset, Time: h[bus.HeaderDLQTime], Group: h[bus.HeaderDLQGroup],
		Reason: h[bus.HeaderDLQReason], Handler: h[bus.HeaderDLQHandler], Error: h[bus.HeaderDLQError],
		Type: h[bus.HeaderType], HoldsKey: h[bus.HeaderDLQHoldsKey] == "true" && rec.Key != nil, rec: rec,
	}
	d.Attempts, _ = strconv.Atoi(h[bus.HeaderDLQAttempts])
	if rec.Key != nil {
		k := string(rec.Key)
		d.Key = &k
	}
	p, err1 := strconv.ParseInt(h[bus.HeaderOriginPartition], 10, 32)
	o, err2 := strconv.ParseInt(h[bus.HeaderOriginOffset], 10, 64)
	if t := h[bus.HeaderOriginTopic]; t != "" && err1 == nil && err2 == nil {
		d.Origin = &originView{Topic: t, Partition: int32(p), Offset: o}
	}
	return d
}

const dlqListUsage = `
Lists the dead letters of GROUP (its topic pyrite.<group>.dlq), oldest first
per partition: where each is in the DLQ (PARTITION:OFFSET, what --at takes),
when it was dead-lettered, the reason (decode, rejected, permanent,
exhausted, parked), the attempts made, its type (ce_type, or from the
value's schema through the registry), key, where it came from, and whether
it was redriven or skipped. A key is parked while a pending dead letter of
it holds it: the group dead-letters the key's later records behind it
(reason parked) until a redrive or skip. --parked lists only those keys'
dead letters; the table ends with the parked keys.

Exit code 0, 1 when Kafka cannot be read, 2 on usage errors.`

func runDLQList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f dlqFlags
	fs := newOpsFlagSet("pyrite dlq list", "pyrite dlq list GROUP [flags]", dlqListUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	f.bindOutput(fs)
	f.bindKey(fs)
	pending := fs.Bool("pending", false, "list only dead letters not redriven or skipped yet")
	parkedOnly := fs.Bool("parked", false, "list only the dead letters of parked keys")
	pos, err := parseArgs(fs, args, 1, "GROUP")
	if err != nil {
		return err
	}
	brokers, topic, adm, err := f.open(pos[0])
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	all, err := readDLQ(ctx, brokers, adm, topic)
	if err != nil {
		return err
	}
	v, err := newViewer(f.registry)
	if err != nil {
		return err
	}
	list := make([]*deadLetter, 0, len(all))
	for _, d := range all {
		if (*pending && !d.pending()) || (*parkedOnly && !d.Parked) || !f.selected(d) {
			continue
		}
		if d.Type == "" && d.rec.Value != nil {
			d.Type = v.view(ctx, d.rec).Type // from the schema, for records without ce_type
		}
		list = append(list, d)
	}
	if f.output == "json" {
		return printJSON(stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "%s: no dead letters\n", topic)
		return nil
	}
	rows := make([][]string, 0, len(list))
	redriven, skipped := 0, 0
	var parked []string
	for _, d := range list {
		status := "pending"
		switch {
		case d.Redriven != nil:
			status, redriven = "redriven to "+d.Redriven.To, redriven+1
		case d.Skipped != nil:
			status, skipped = "skipped", skipped+1
		case d.Parked:
			status = "pending, key parked"
			if !slices.Contains(parked, *d.Key) {
				parked = append(parked, *d.Key)
			}
		}
		key := "-"
		if d.Key != nil {
			key = truncateText(*d.Key, 24)
		}
		rows = append(rows, []string{fmt.Sprintf("%d:%d", d.Partition, d.Offset), d.Time, d.Reason, strconv.Itoa(d.Attempts),
			orDash(d.Type), key, d.originString(), status, truncateText(oneLine(d.Error), 60)})
	}
	if err := printTable(stdout, []string{"AT", "TIME", "REASON", "ATTEMPTS", "TYPE", "KEY", "ORIGIN", "STATUS", "ERROR"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d dead letters, %d redriven, %d skipped, %d pending\n", topic, len(list), redriven, skipped, len(list)-redriven-skipped)
	if len(parked) > 0 {
		fmt.Fprintf(stdout, "%d keys parked: %s\n", len(parked), strings.Join(parked, ", "))
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// truncateText cuts s to n runes, marking the cut with "...".
func truncateText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}

const dlqShowUsage = `
Prints dead letters of GROUP in full, one JSON object per line: the record
as 'pyrite tail' prints it (key, headers, value decoded through the
registry, or base64 with an "error" field when it cannot be), plus
"deadLetter": why, when, how often, where from, and whether it was redriven.

Exit code 0, 1 when Kafka cannot be read or --at names no dead letter, 2
on usage errors.`

type dlqShown struct {
	recordView
	DeadLetter *deadLetter `json:"deadLetter"`
}

func runDLQShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f dlqFlags
	fs := newOpsFlagSet("pyrite dlq show", "pyrite dlq show GROUP [--at PARTITION:OFFSET] [--key KEY] [flags]", dlqShowUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	f.bindAt(fs)
	f.bindKey(fs)
	pos, err := parseArgs(fs, args, 1, "GROUP")
	if err != nil {
		return err
	}
	brokers, topic, adm, err := f.open(pos[0])
	if err != nil {
		return err
	}
	defer adm.Close()
	v, err := newViewer(f.registry)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	all, err := readDLQ(ctx, brokers, adm, topic)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	found := 0
	for _, d := range all {
		if !f.selected(d) {
			continue
		}
		found++
		if err := enc.Encode(dlqShown{recordView: v.view(ctx, d.rec), DeadLetter: d}); err != nil {
			return err
		}
	}
	if len(f.at) > found {
		return fmt.Errorf("%s: %d of the %d dead letters named by --at do not exist", topic, len(f.at)-found, len(f.at))
	}
	return nil
}

const dlqRedriveUsage = `
Sends dead letters of GROUP back to GROUP alone, to be processed again once
the cause is fixed: into its retry topic pyrite.<group>.retry, which no
other group reads, with their original key, value and headers (the
dead-letter headers removed; pyrite-redriven-from, the retry headers and the
pyrite-origin-* headers of where the record first came from added). The
retry delivers each to the handlers that failed (every matching one when
none is named), with a fresh attempt budget; records of one key keep their
order (one partition per key). A projection, saga or process manager
applies them at their retry-topic position, stored with its state, so a
redriven event counts once (the WorkEffort projection skips a ce_id it
applied). The upcaster has no retry topic: its dead letters go back to
their raw topic, which only it consumes. By default every pending dead
letter (neither redriven nor skipped); --type, --key and --at narrow that
down. A dead letter of a parked key is redriven only with the key's earlier
pending dead letters (they are delivered in order, and release the key one
by one); one whose earlier dead letter is left out is skipped, with a
warning.

Each redriven record and a marker on the DLQ saying where it went are
written in one Kafka transaction, so a dead letter is either redriven and
marked, or neither; one command redrives each dead letter at most once,
and redriving again skips the marked ones.

Exit code 0 when every selected dead letter was redriven (or none was
pending), 1 when Kafka failed or --at names no pending dead letter, 2 on
usage errors.`

type redriven struct {
	At   string `json:"at"` // PARTITION:OFFSET in the DLQ
	From string `json:"from"`
	To   string `json:"to"`
	Type string `json:"type,omitempty"`
}

func runDLQRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f dlqFlags
	fs := newOpsFlagSet("pyrite dlq redrive", "pyrite dlq redrive GROUP [--type PATTERN] [--at PARTITION:OFFSET] [--key KEY] [flags]", dlqRedriveUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	f.bindOutput(fs)
	f.bindAt(fs)
	f.bindKey(fs)
	typ := fs.String("type", "", "redrive only events whose type matches this pattern, e.g. 'WorkEffort:*'")
	dryRun := fs.Bool("dry-run", false, "print what would be redriven and change nothing")
	pos, err := parseArgs(fs, args, 1, "GROUP")
	if err != nil {
		return err
	}
	var errs []error
	if *typ != "" && !validPattern(*typ) {
		errs = append(errs, fmt.Errorf("--type: %q is not a pattern (\"*\", a type, or segments with * such as WorkEffort:*)", *typ))
	}
	group := pos[0]
	brokers, topic, adm, err := f.open(group, errs...)
	if err != nil {
		return err
	}
	defer adm.Close()
	v, err := newViewer(f.registry)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	all, err := readDLQ(ctx, brokers, adm, topic)
	if err != nil {
		return err
	}
	var picked []*deadLetter
	found := 0
	// held: keys whose earlier pending dead letter holds them and is not redriven now; their
	// later dead letters wait for it, so that the key's records arrive in order.
	held := map[string]string{}
	for _, d := range all {
		if !d.pending() {
			continue
		}
		pick := f.selected(d)
		if pick {
			found++
		}
		if pick && d.Origin == nil {
			fmt.Fprintf(stderr, "pyrite dlq redrive: skipping %d:%d: it has no origin headers\n", d.Partition, d.Offset)
			pick = false
		}
		if pick && *typ != "" {
			t := d.Type
			if t == "" {
				t = v.view(ctx, d.rec).Type // from the schema, for records without ce_type
			}
			pick = t != "" && bus.Match(*typ, t)
		}
		if d.Key != nil {
			if first, ok := held[*d.Key]; ok {
				if pick {
					fmt.Fprintf(stderr, "pyrite dlq redrive: skipping %d:%d: its key waits behind %s, which is not redriven now (redrive or skip it first)\n",
						d.Partition, d.Offset, first)
				}
				continue
			}
			if !pick && d.HoldsKey {
				held[*d.Key] = fmt.Sprintf("%d:%d", d.Partition, d.Offset)
			}
		}
		if pick {
			picked = append(picked, d)
		}
	}
	if len(f.at) > found {
		return fmt.Errorf("%s: %d of the %d dead letters named by --at do not exist or were redriven or skipped already", topic, len(f.at)-found, len(f.at))
	}
	var done []redriven
	if *dryRun {
		for _, d := range picked {
			to := d.Origin.Topic
			if retry, ok := redriveTopic(group); ok {
				to = retry
			}
			done = append(done, redriven{At: fmt.Sprintf("%d:%d", d.Partition, d.Offset), From: fmt.Sprintf("%s[%d]@%d", topic, d.Partition, d.Offset), To: to, Type: d.Type})
		}
	} else if len(picked) > 0 {
		if done, err = redrive(ctx, brokers, group, topic, picked); err != nil {
			return err
		}
	}
	if f.output == "json" {
		if done == nil {
			done = []redriven{}
		}
		return printJSON(stdout, done)
	}
	verb := "redriven"
	if *dryRun {
		verb = "would redrive"
	}
	for _, r := range done {
		fmt.Fprintf(stdout, "%s %s -> %s %s\n", verb, r.From, r.To, r.Type)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: %d dead letters would be redriven; nothing changed\n", len(done))
		return nil
	}
	fmt.Fprintf(stdout, "%d dead letters redriven from %s\n", len(done), topic)
	return nil
}

// redrive writes the picked dead letters back to their origin topics and a marker for each
// on the DLQ, in one transaction.
func redrive(ctx context.Context, brokers kafkaTarget, group, topic string, picked []*deadLetter) ([]redriven, error) {
	cl, err := beginDLQTransaction(brokers, "pyrite-dlq-redrive-"+group, topic)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	abort := func(err error) ([]redriven, error) { return nil, abortDLQTransaction(ctx, cl, err) }
	retry, toRetry := redriveTopic(group)
	now := time.Now().UTC()
	recs := make([]*kgo.Record, len(picked))
	for i, d := range picked {
		from := fmt.Sprintf("%s[%d]@%d", topic, d.Partition, d.Offset)
		hs := make([]kgo.RecordHeader, 0, len(d.rec.Headers)+8)
		for _, h := range d.rec.Headers {
			if !isRunnerHeader(h.Key) && h.Key != headerRedrivenFrom {
				hs = append(hs, h)
			}
		}
		hs = append(hs, kgo.RecordHeader{Key: headerRedrivenFrom, Value: []byte(from)})
		to := d.Origin.Topic
		if toRetry {
			// Into the group's own retry topic, as a delivery due now to the handlers that
			// failed (every matching one when none is named), with a fresh attempt budget.
			to = retry
			h := headerMap(d.rec.Headers)
			hs = append(hs,
				kgo.RecordHeader{Key: bus.HeaderRetryAttempt, Value: []byte("0")},
				kgo.RecordHeader{Key: bus.HeaderRetryNotBefore, Value: []byte(now.Format(time.RFC3339Nano))},
				kgo.RecordHeader{Key: bus.HeaderRetryHandlers, Value: []byte(h[bus.HeaderDLQHandler])},
				kgo.RecordHeader{Key: bus.HeaderOriginTopic, Value: []byte(d.Origin.Topic)},
				kgo.RecordHeader{Key: bus.HeaderOriginPartition, Value: []byte(strconv.Itoa(int(d.Origin.Partition)))},
				kgo.RecordHeader{Key: bus.HeaderOriginOffset, Value: []byte(strconv.FormatInt(d.Origin.Offset, 10))},
			)
		}
		// Partition is used only for records without a key: back where they came from.
		recs[i] = &kgo.Record{Topic: to, Partition: d.Origin.Partition, Key: d.rec.Key, Value: d.rec.Value, Headers: hs}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return abort(fmt.Errorf("redrive: %w", err))
	}
	at := now.Format(time.RFC3339Nano)
	out := make([]redriven, len(picked))
	markers := make([]*kgo.Record, len(picked))
	for i, d := range picked {
		to := fmt.Sprintf("%s[%d]@%d", recs[i].Topic, recs[i].Partition, recs[i].Offset)
		out[i] = redriven{At: fmt.Sprintf("%d:%d", d.Partition, d.Offset), From: fmt.Sprintf("%s[%d]@%d", topic, d.Partition, d.Offset), To: to, Type: d.Type}
		markers[i] = &kgo.Record{Topic: topic, Partition: d.Partition, Key: d.rec.Key, Headers: []kgo.RecordHeader{
			{Key: headerRedrivenOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
			{Key: headerRedrivenTo, Value: []byte(to)},
			{Key: headerRedrivenTime, Value: []byte(at)},
		}}
	}
	if err := cl.ProduceSync(ctx, markers...).FirstErr(); err != nil {
		return abort(fmt.Errorf("mark as redriven on %s: %w", topic, err))
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return nil, fmt.Errorf("commit the redrive transaction: %w", err)
	}
	return out, nil
}

// beginDLQTransaction makes the transactional client of a dlq command (markers on the DLQ go
// to the partition they name, keyed records by key) and begins its transaction.
func beginDLQTransaction(brokers kafkaTarget, id, topic string) (*kgo.Client, error) {
	cl, err := kgo.NewClient(brokers.opts(
		kgo.TransactionalID(id),
		// Uncompressed, as the programs' default (--compression none): every client reads it.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordPartitioner(redrivePartitioner{dlq: topic, keyed: kgo.StickyKeyPartitioner(nil)}))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	if err := cl.BeginTransaction(); err != nil {
		cl.Close()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return cl, nil
}

// abortDLQTransaction aborts cl's transaction after err.
func abortDLQTransaction(ctx context.Context, cl *kgo.Client, err error) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return errors.Join(err, cl.EndTransaction(actx, kgo.TryAbort))
}

const dlqSkipUsage = `
Marks dead letters of GROUP skipped: they are never redriven, and each one
that holds its key releases it, so that the key's next records reach the
group's handlers again. Dead letters of the key behind a skipped one
(reason parked) stay pending and keep the key parked: redrive or skip them
too (--key takes them all). One of --key (every pending dead letter of the
key) and --at is required.

A marker per dead letter on the DLQ (pyrite-dlq-skipped-offset,
pyrite-dlq-skipped-time) and, for each that holds its key, a release record
on the group's retry topic (pyrite-retry-release, the key and origin
headers, no value: the group releases the key and delivers nothing) are
written in one Kafka transaction.

Exit code 0, 1 when Kafka failed or --at names no pending dead letter, 2 on
usage errors.`

type skippedView struct {
	At       string  `json:"at"` // PARTITION:OFFSET in the DLQ
	Key      *string `json:"key"`
	Type     string  `json:"type,omitempty"`
	Released bool    `json:"released"` // it held its key, and released it
}

func runDLQSkip(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f dlqFlags
	fs := newOpsFlagSet("pyrite dlq skip", "pyrite dlq skip GROUP (--key KEY | --at PARTITION:OFFSET) [flags]", dlqSkipUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	f.bindAt(fs)
	f.bindKey(fs)
	dryRun := fs.Bool("dry-run", false, "print what would be skipped and change nothing")
	pos, err := parseArgs(fs, args, 1, "GROUP")
	if err != nil {
		return err
	}
	var errs []error
	if *f.key == "" && len(f.at) == 0 {
		errs = append(errs, errors.New("--key or --at is required"))
	}
	group := pos[0]
	brokers, topic, adm, err := f.open(group, errs...)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	all, err := readDLQ(ctx, brokers, adm, topic)
	if err != nil {
		return err
	}
	var picked []*deadLetter
	for _, d := range all {
		if d.pending() && f.selected(d) {
			picked = append(picked, d)
		}
	}
	if len(f.at) > 0 && len(f.at) > len(picked) {
		return fmt.Errorf("%s: %d of the %d dead letters named by --at do not exist or were redriven or skipped already", topic, len(f.at)-len(picked), len(f.at))
	}
	out := make([]skippedView, len(picked))
	for i, d := range picked {
		out[i] = skippedView{At: fmt.Sprintf("%d:%d", d.Partition, d.Offset), Key: d.Key, Type: d.Type, Released: d.HoldsKey && d.Origin != nil}
	}
	if !*dryRun && len(picked) > 0 {
		if err := skip(ctx, brokers, group, topic, picked); err != nil {
			return err
		}
	}
	if f.output == "json" {
		return printJSON(stdout, out)
	}
	verb := "skipped"
	if *dryRun {
		verb = "would skip"
	}
	for _, v := range out {
		key, released := "-", ""
		if v.Key != nil {
			key = *v.Key
		}
		if v.Released {
			released = " (releases its key)"
		}
		fmt.Fprintf(stdout, "%s %s[%s] key %s %s%s\n", verb, topic, v.At, key, v.Type, released)
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: %d dead letters would be skipped; nothing changed\n", len(out))
		return nil
	}
	fmt.Fprintf(stdout, "%d dead letters skipped in %s\n", len(out), topic)
	return nil
}

// skip marks the picked dead letters skipped and, for those holding their key, writes a
// release to the group's retry topic, in one transaction.
func skip(ctx context.Context, brokers kafkaTarget, group, topic string, picked []*deadLetter) error {
	cl, err := beginDLQTransaction(brokers, "pyrite-dlq-skip-"+group, topic)
	if err != nil {
		return err
	}
	defer cl.Close()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	retry, hasRetry := redriveTopic(group)
	var recs []*kgo.Record
	for _, d := range picked {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: d.Partition, Key: d.rec.Key, Headers: []kgo.RecordHeader{
			{Key: bus.HeaderDLQSkippedOffset, Value: []byte(strconv.FormatInt(d.Offset, 10))},
			{Key: headerSkippedTime, Value: []byte(now)},
		}})
		if d.HoldsKey && d.Origin != nil && hasRetry {
			recs = append(recs, &kgo.Record{Topic: retry, Key: d.rec.Key, Headers: []kgo.RecordHeader{
				{Key: bus.HeaderRetryRelease, Value: []byte(fmt.Sprintf("%s[%d]@%d", topic, d.Partition, d.Offset))},
				{Key: bus.HeaderRetryAttempt, Value: []byte("0")},
				{Key: bus.HeaderRetryNotBefore, Value: []byte(now)},
				{Key: bus.HeaderRetryHandlers, Value: []byte(d.Handler)},
				{Key: bus.HeaderOriginTopic, Value: []byte(d.Origin.Topic)},
				{Key: bus.HeaderOriginPartition, Value: []byte(strconv.Itoa(int(d.Origin.Partition)))},
				{Key: bus.HeaderOriginOffset, Value: []byte(strconv.FormatInt(d.Origin.Offset, 10))},
			}})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return abortDLQTransaction(ctx, cl, fmt.Errorf("skip: %w", err))
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		return fmt.Errorf("commit the skip transaction: %w", err)
	}
	return nil
}

// redriveTopic is the retry topic of group, which only that group reads; false for a group
// declared without one (the upcaster: its dead letters go back to their raw topic, which only
// the upcaster consumes).
func redriveTopic(group string) (string, bool) {
	top, err := modules.Topology(topology.Dev) // names only
	if err != nil {
		return "", false
	}
	t, err := top.RetryTopic(group)
	return t, err == nil
}

// isRunnerHeader reports whether k is one of the runners' control headers (retry, dead
// letter, origin), which a redriven record sheds.
func isRunnerHeader(k string) bool {
	return strings.HasPrefix(k, "pyrite-retry-") || strings.HasPrefix(k, "pyrite-dlq-") || strings.HasPrefix(k, "pyrite-origin-")
}

// redrivePartitioner puts markers on the DLQ partition they name (the record's Partition),
// keyed records by Kafka's murmur2 key hash like every Pyrite producer, and records without a
// key on the partition they came from.
type redrivePartitioner struct {
	dlq   string
	keyed kgo.Partitioner
}

func (p redrivePartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return redriveTopicPartitioner{manual: topic == p.dlq, keyed: p.keyed.ForTopic(topic)}
}

type redriveTopicPartitioner struct {
	manual bool
	keyed  kgo.TopicPartitioner
}

func (p redriveTopicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p redriveTopicPartitioner) Partition(r *kgo.Record, n int) int {
	if p.manual || r.Key == nil {
		if int(r.Partition) < n {
			return int(r.Partition)
		}
		return 0
	}
	return p.keyed.Partition(r, n)
}
