package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// This file holds `pyrite tail` and what the operating commands (tail, replay, lag, dlq,
// projection) share: flags, positional arguments among flags, start positions, reading
// partitions up to where they end, tables and JSON output.

// opsFlags are the connection flags of the operating commands.
type opsFlags struct {
	brokers  string
	registry string
	timeout  time.Duration
	output   string
	kafka    kafkaconn.Config
}

// kafkaTarget is where the operating commands' Kafka clients connect, and how (TLS, SASL).
type kafkaTarget struct {
	seeds []string
	conn  []kgo.Opt
}

// opts are the options of a client of t, with extra.
func (t kafkaTarget) opts(extra ...kgo.Opt) []kgo.Opt {
	return append(append([]kgo.Opt{kgo.SeedBrokers(t.seeds...), kgo.ClientID("pyrite-cli")}, t.conn...), extra...)
}

// bindKafka registers --brokers, --timeout and the Kafka TLS and SASL flags.
func (f *opsFlags) bindKafka(fs *flag.FlagSet) {
	f.kafka.Bind(fs)
	fs.StringVar(&f.brokers, "brokers", config.Env("PYRITE_BROKERS", config.DefaultBrokers),
		"comma-separated Kafka seed brokers, host:port (env PYRITE_BROKERS)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second,
		"give up when Kafka (or the registry) has not answered within this time")
}

// bindRegistry registers --registry.
func (f *opsFlags) bindRegistry(fs *flag.FlagSet) {
	fs.StringVar(&f.registry, "registry", config.Env("PYRITE_REGISTRY", config.DefaultRegistry),
		"schema registry base URL, to decode values (env PYRITE_REGISTRY)")
}

// bindOutput registers --output.
func (f *opsFlags) bindOutput(fs *flag.FlagSet) {
	fs.StringVar(&f.output, "output", "text", "output format: text (a table) or json")
}

// validate returns the brokers, reporting every problem (plus extra) as one usage error.
func (f *opsFlags) validate(extra ...error) (kafkaTarget, error) {
	errs := slices.Clone(extra)
	brokers := config.SplitList(f.brokers)
	if len(brokers) == 0 {
		errs = append(errs, errors.New("--brokers: at least one broker is required"))
	}
	for _, b := range brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("--brokers: %q is not host:port", b))
		}
	}
	if f.registry != "" {
		if u, err := url.Parse(f.registry); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--registry: %q is not an http(s) URL", config.RedactURL(f.registry)))
		}
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %v is not positive", f.timeout))
	}
	if f.output != "" && f.output != "text" && f.output != "json" {
		errs = append(errs, fmt.Errorf("--output: %q is not text or json", f.output))
	}
	errs = append(errs, f.kafka.Validate())
	if err := errors.Join(errs...); err != nil {
		return kafkaTarget{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	conn, err := f.kafka.Opts()
	if err != nil {
		return kafkaTarget{}, err
	}
	return kafkaTarget{seeds: brokers, conn: conn}, nil
}

// newOpsFlagSet is newFlagSet for a command with positional arguments: usage starts with
// "Usage: <synopsis>".
func newOpsFlagSet(name, synopsis, usage string, stderr io.Writer) *flag.FlagSet {
	fs := newFlagSet(name, usage, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n\nFlags:\n", synopsis, strings.TrimSpace(usage))
		fs.PrintDefaults()
	}
	return fs
}

// admin opens an admin client; close it when done.
func admin(brokers kafkaTarget) (*kadm.Client, error) {
	cl, err := kgo.NewClient(brokers.opts()...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return kadm.NewClient(cl), nil
}

// parseArgs parses flags placed anywhere among args and returns the positional arguments.
// It needs at least min of them and at most one per name (names are for errors, in order),
// or any number when the last name ends with "...".
func parseArgs(fs *flag.FlagSet, args []string, min int, names ...string) ([]string, error) {
	acceptGlobalFlags(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w%w: %v", errUsage, errReported, err)
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch {
	case len(pos) < min:
		fs.Usage()
		return nil, fmt.Errorf("%w: %s: missing %s", errUsage, fs.Name(), strings.Join(names[len(pos):min], " and "))
	case len(pos) > len(names) && !strings.HasSuffix(names[len(names)-1], "..."):
		fs.Usage()
		return nil, fmt.Errorf("%w: %s: unexpected arguments %q", errUsage, fs.Name(), pos[len(names):])
	}
	return pos, nil
}

// startSpec is where to start reading (tail, projection rebuild) or where to move a group
// (replay): earliest, latest, offset:N, time:<RFC 3339> or a negative duration such as -1h.
type startSpec struct {
	text   string
	kind   string // "earliest", "latest", "offset", "time"
	offset int64
	at     time.Time
}

const startSpecHelp = "earliest, latest, offset:N, time:<RFC 3339> or a duration into the past such as -1h or -30m"

func parseStartSpec(s string, now time.Time) (startSpec, error) {
	sp := startSpec{text: s}
	switch {
	case s == "earliest" || s == "latest":
		sp.kind = s
	case strings.HasPrefix(s, "offset:"):
		n, err := strconv.ParseInt(s[len("offset:"):], 10, 64)
		if err != nil || n < 0 {
			return sp, fmt.Errorf("%q: the offset must be a non-negative integer", s)
		}
		sp.kind, sp.offset = "offset", n
	case strings.HasPrefix(s, "time:"):
		t, err := time.Parse(time.RFC3339Nano, s[len("time:"):])
		if err != nil {
			return sp, fmt.Errorf("%q: the time must be RFC 3339, e.g. time:2025-03-01T09:00:00Z", s)
		}
		sp.kind, sp.at = "time", t
	default:
		d, err := time.ParseDuration(s)
		if err != nil {
			return sp, fmt.Errorf("%q is not %s", s, startSpecHelp)
		}
		if d >= 0 {
			return sp, fmt.Errorf("%q: a duration must be negative (that long ago), e.g. -1h", s)
		}
		sp.kind, sp.at = "time", now.Add(d)
	}
	return sp, nil
}

// offsets maps topic and partition to an offset.
type offsets map[string]map[int32]int64

func (o offsets) set(topic string, p int32, off int64) {
	if o[topic] == nil {
		o[topic] = map[int32]int64{}
	}
	o[topic][p] = off
}

func (o offsets) get(topic string, p int32) (int64, bool) {
	off, ok := o[topic][p]
	return off, ok
}

// each calls fn in topic, partition order.
func (o offsets) each(fn func(topic string, p int32, off int64)) {
	for _, t := range slices.Sorted(maps.Keys(o)) {
		for _, p := range slices.Sorted(maps.Keys(o[t])) {
			fn(t, p, o[t][p])
		}
	}
}

// listed converts listed offsets, failing on the first error (a missing topic).
func listed(l kadm.ListedOffsets, what string) (offsets, error) {
	out := offsets{}
	var errs []error
	l.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("topic %s does not exist", o.Topic))
			} else if o.Partition < 0 {
				errs = append(errs, fmt.Errorf("topic %s: %w", o.Topic, o.Err))
			} else {
				errs = append(errs, fmt.Errorf("%s of %s[%d]: %w", what, o.Topic, o.Partition, o.Err))
			}
			return
		}
		out.set(o.Topic, o.Partition, o.Offset)
	})
	return out, errors.Join(errs...)
}

// resolve returns the offset sp names on every partition of topics: earliest is each log's
// start, latest its end, offset:N is N kept within the log, a time is the first record at or
// after it (the end when there is none).
func (sp startSpec) resolve(ctx context.Context, adm *kadm.Client, topics ...string) (offsets, error) {
	startL, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list start offsets: %w", err)
	}
	starts, err := listed(startL, "start offset")
	if err != nil {
		return nil, err
	}
	endL, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	ends, err := listed(endL, "end offset")
	if err != nil {
		return nil, err
	}
	for _, t := range topics {
		if len(starts[t]) == 0 {
			return nil, fmt.Errorf("topic %s does not exist", t)
		}
	}
	switch sp.kind {
	case "earliest":
		return starts, nil
	case "latest":
		return ends, nil
	case "offset":
		out := offsets{}
		starts.each(func(t string, p int32, start int64) {
			end, _ := ends.get(t, p)
			out.set(t, p, min(max(sp.offset, start), end))
		})
		return out, nil
	}
	atL, err := adm.ListOffsetsAfterMilli(ctx, sp.at.UnixMilli(), topics...)
	if err != nil {
		return nil, fmt.Errorf("list offsets after %s: %w", sp.at.Format(time.RFC3339), err)
	}
	at, err := listed(atL, "offset by time")
	if err != nil {
		return nil, err
	}
	out := offsets{}
	starts.each(func(t string, p int32, start int64) {
		end, _ := ends.get(t, p)
		off, ok := at.get(t, p)
		if !ok || off < 0 {
			off = end
		}
		out.set(t, p, min(max(off, start), end))
	})
	return out, nil
}

// rangeReader reads partitions from given offsets with read_committed, and knows when it
// reached where they ended when it looked (their last stable offsets): control records are
// kept so that the offsets of transaction markers count too. Offsets that never come (a
// compacted tail) end a partition after idle without records.
type rangeReader struct {
	cl     *kgo.Client
	adm    *kadm.Client
	next   offsets // next offset to read per partition
	target offsets // where each partition ended when last looked
	idle   time.Duration
	quiet  time.Time // since when nothing arrived
	// held are records fetched past their partition's target, in fetch order: the client
	// has moved on from them, so they wait here until a refresh moves the target past them.
	held []*kgo.Record
}

const defaultIdle = 5 * time.Second

func newRangeReader(brokers kafkaTarget, adm *kadm.Client, from offsets) (*rangeReader, error) {
	parts := map[string]map[int32]kgo.Offset{}
	next := offsets{}
	from.each(func(t string, p int32, off int64) {
		if parts[t] == nil {
			parts[t] = map[int32]kgo.Offset{}
		}
		parts[t][p] = kgo.NewOffset().At(off)
		next.set(t, p, off)
	})
	cl, err := kgo.NewClient(brokers.opts(
		kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(500*time.Millisecond))...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &rangeReader{cl: cl, adm: adm, next: next, idle: defaultIdle}, nil
}

func (r *rangeReader) Close() { r.cl.Close() }

// refresh looks again where the partitions end.
func (r *rangeReader) refresh(ctx context.Context) error {
	topics := slices.Sorted(maps.Keys(r.next))
	l, err := r.adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	r.target, err = listed(l, "end offset")
	r.quiet = time.Now()
	return err
}

// done reports whether every partition was read up to its target.
func (r *rangeReader) done() bool {
	all := true
	r.next.each(func(t string, p int32, next int64) {
		if target, ok := r.target.get(t, p); !ok || next < target {
			all = false
		}
	})
	return all
}

// remaining is how many offsets are left before the targets.
func (r *rangeReader) remaining() int64 {
	var n int64
	r.next.each(func(t string, p int32, next int64) {
		if target, ok := r.target.get(t, p); ok && target > next {
			n += target - next
		}
	})
	return n
}

// poll returns the next data records, waiting at most wait. bounded holds back records at or
// past the targets until a refresh moves the targets past them (and marks every partition
// done after r.idle without any record).
func (r *rangeReader) poll(ctx context.Context, wait time.Duration, bounded bool) ([]*kgo.Record, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	fs := r.cl.PollFetches(pctx)
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var errs []error
	fs.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("fetch %s[%d]: %w", t, p, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []*kgo.Record
	got := false
	// Records held at an earlier target go first; a partition stays held from its first held
	// record on, so per-partition order is kept.
	stopped := map[string]map[int32]bool{}
	take := func(rec *kgo.Record) {
		if bounded {
			if target, ok := r.target.get(rec.Topic, rec.Partition); stopped[rec.Topic][rec.Partition] || (ok && rec.Offset >= target) {
				if stopped[rec.Topic] == nil {
					stopped[rec.Topic] = map[int32]bool{}
				}
				stopped[rec.Topic][rec.Partition] = true
				r.held = append(r.held, rec)
				return
			}
		}
		if next, _ := r.next.get(rec.Topic, rec.Partition); rec.Offset+1 > next {
			r.next.set(rec.Topic, rec.Partition, rec.Offset+1)
		}
		if !rec.Attrs.IsControl() {
			out = append(out, rec)
		}
	}
	held := r.held
	r.held = nil
	for _, rec := range held {
		take(rec)
	}
	fs.EachRecord(func(rec *kgo.Record) {
		got = true
		take(rec)
	})
	switch {
	case got:
		r.quiet = time.Now()
	case bounded && time.Since(r.quiet) > r.idle:
		// Nothing came for a while although offsets are missing: they are gone (compaction,
		// deleted records). Treat every partition as read.
		r.target.each(func(t string, p int32, target int64) {
			if next, ok := r.next.get(t, p); ok && next < target {
				r.next.set(t, p, target)
			}
		})
	}
	return out, nil
}

// printTable writes rows under header, aligned.
func printTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// recordView is one record as tail and dlq show print it.
type recordView struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp string            `json:"timestamp"`
	Key       *string           `json:"key"`
	KeyBase64 bool              `json:"keyBase64,omitempty"`
	Headers   map[string]string `json:"headers"`
	Type      string            `json:"type,omitempty"`
	Schema    *schemaView       `json:"schema,omitempty"`
	// Value is the decoded value as JSON; when it cannot be decoded, the raw bytes in base64
	// (a JSON string) and Error says why.
	Value json.RawMessage `json:"value"`
	Error string          `json:"error,omitempty"`
}

type schemaView struct {
	ID      int    `json:"id"`
	Subject string `json:"subject"`
	Version int    `json:"version,omitempty"`
}

// viewer decodes records for people.
type viewer struct {
	codec *codec.Codec
	top   *topology.Topology
}

func newViewer(registry string) (*viewer, error) {
	top, err := modules.Topology(topology.Dev) // routing only; sizes do not matter
	if err != nil {
		return nil, err
	}
	return &viewer{codec: codec.Dial(strings.TrimRight(registry, "/")), top: top}, nil
}

// view decodes rec. A value that cannot be decoded is kept as base64 with the reason; it
// never fails.
func (v *viewer) view(ctx context.Context, rec *kgo.Record) recordView {
	rv := recordView{
		Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		Timestamp: rec.Timestamp.UTC().Format(time.RFC3339Nano), Headers: map[string]string{},
	}
	if rec.Key != nil {
		k := string(rec.Key)
		if !utf8.Valid(rec.Key) {
			k, rv.KeyBase64 = base64.StdEncoding.EncodeToString(rec.Key), true
		}
		rv.Key = &k
	}
	for _, h := range rec.Headers {
		rv.Headers[h.Key] = string(h.Value)
	}
	rv.Type = rv.Headers[bus.HeaderType]
	if rec.Value == nil {
		rv.Value = json.RawMessage("null")
		return rv
	}
	// The __value_schema_id header, when there is one, wins over the value's prefix.
	hdr, hasHdr := bus.SchemaIDHeader(rec)
	var w *codec.Schema
	var js json.RawMessage
	value, err := v.codec.Prefixed(ctx, rec.Value, hdr, hasHdr)
	if err == nil {
		w, js, err = v.decode(ctx, value)
	}
	if w != nil {
		rv.Schema = &schemaView{ID: w.ID, Subject: w.Subject, Version: w.Version}
		if rv.Type == "" {
			rv.Type, _ = v.top.EventType(w.Subject)
		}
	}
	if err != nil {
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString(rec.Value))
		rv.Value, rv.Error = b, err.Error()
		return rv
	}
	rv.Value = js
	return rv
}

func (v *viewer) decode(ctx context.Context, value []byte) (*codec.Schema, json.RawMessage, error) {
	var m map[string]any
	w, err := v.codec.Decode(ctx, value, nil, &m)
	if err != nil {
		return w, nil, err
	}
	js, err := codec.ToJSON(w, m)
	return w, js, err
}

const tailUsage = `
Prints the records of TOPIC as JSON lines, one per record: topic, partition,
offset, timestamp, key, headers, type (ce_type, or from the schema), schema
and value, decoded from Confluent-framed Avro through the registry (the
schema id from the __value_schema_id header when a record has one, else
from the value's prefix). A value
that cannot be decoded is printed as base64 with an "error" field; tail
goes on. Reads with read_committed, as Pyrite's consumers do.

Without --follow it stops where the partitions ended when it started; with
--follow it waits for new records until interrupted (Ctrl-C, exit 0).

Examples:
  pyrite tail pyrite.work-effort.events --from -1h --type 'WorkEffort:*'
  pyrite tail pyrite.work-efforts.dlq --follow --key we-42

Exit code 0 when done, 1 when Kafka cannot be read, 2 on usage errors.`

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite tail", "pyrite tail TOPIC [flags]", tailUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	fs.StringVar(&f.output, "output", "json", "output format: json, one object per line (the only format; accepted as the other commands take it)")
	from := fs.String("from", "earliest", "where to start: "+startSpecHelp)
	partition := fs.Int("partition", -1, "read only this partition (-1: every partition)")
	follow := fs.Bool("follow", false, "keep waiting for new records until interrupted")
	limit := fs.Int("limit", 0, "stop after printing this many records (0: no limit)")
	typ := fs.String("type", "", "print only events whose type matches this pattern, e.g. 'WorkEffort:*' or '*:Completed'")
	key := fs.String("key", "", "print only records with this key (an aggregate ID)")
	pos, err := parseArgs(fs, args, 1, "TOPIC")
	if err != nil {
		return err
	}
	topic := pos[0]
	var errs []error
	sp, err := parseStartSpec(*from, time.Now())
	if err != nil {
		errs = append(errs, fmt.Errorf("--from: %w", err))
	}
	if *limit < 0 {
		errs = append(errs, fmt.Errorf("--limit: %d is negative", *limit))
	}
	if f.output != "json" {
		errs = append(errs, fmt.Errorf("--output: tail prints json only, not %q", f.output))
	}
	if *partition < -1 {
		errs = append(errs, fmt.Errorf("--partition: %d is not a partition", *partition))
	}
	if *typ != "" && !validPattern(*typ) {
		errs = append(errs, fmt.Errorf("--type: %q is not a pattern (\"*\", a type, or segments with * such as WorkEffort:*)", *typ))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	v, err := newViewer(f.registry)
	if err != nil {
		return err
	}

	lctx, cancel := context.WithTimeout(ctx, f.timeout)
	starts, err := sp.resolve(lctx, adm, topic)
	cancel()
	if err != nil {
		return err
	}
	if *partition >= 0 {
		off, ok := starts.get(topic, int32(*partition))
		if !ok {
			return fmt.Errorf("%s has no partition %d (it has %d)", topic, *partition, len(starts[topic]))
		}
		starts = offsets{}
		starts.set(topic, int32(*partition), off)
	}
	r, err := newRangeReader(brokers, adm, starts)
	if err != nil {
		return err
	}
	defer r.Close()
	if !*follow {
		lctx, cancel := context.WithTimeout(ctx, f.timeout)
		err := r.refresh(lctx)
		cancel()
		if err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetEscapeHTML(false)
	printed := 0
	for *follow || !r.done() {
		recs, err := r.poll(ctx, time.Second, !*follow)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: a normal end for --follow
			}
			return err
		}
		for _, rec := range recs {
			if *key != "" && string(rec.Key) != *key {
				continue
			}
			rv := v.view(ctx, rec)
			if *typ != "" && (rv.Type == "" || !bus.Match(*typ, rv.Type)) {
				continue
			}
			if err := enc.Encode(rv); err != nil {
				return err
			}
			printed++
			if *limit > 0 && printed >= *limit {
				return nil
			}
		}
	}
	return nil
}

// validPattern reports whether p is a bus pattern ("*", a type, or segments with "*"):
// bus.Match matches nothing with an invalid pattern, and every valid one matches itself.
func validPattern(p string) bool { return bus.Match(p, p) }
