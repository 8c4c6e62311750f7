package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

func projectionCommands() []command {
	return []command{
		{name: "rebuild", summary: "build a projection's read model again beside the live one and swap it in when caught up", run: runProjectionRebuild},
	}
}

// rebuildable returns the modules' projection named name, how to rebuild it and the topics
// it reads.
func rebuildable(w domain.Wiring, top *topology.Topology, name string) (store.Rebuildable, []string, error) {
	p, ok := w.Projection(name)
	if !ok || p.Rebuild == nil {
		return store.Rebuildable{}, nil, fmt.Errorf("%w: %q is not a projection that can be rebuilt (projections: %s)", errUsage, name, strings.Join(w.Rebuildable(), ", "))
	}
	topics := p.Topics
	for _, a := range p.Aggregates {
		t, err := top.EventsTopic(a)
		if err != nil {
			return store.Rebuildable{}, nil, err
		}
		topics = append(topics, t)
	}
	return *p.Rebuild, topics, nil
}

const rebuildUsage = `
Builds the read model of projection NAME again from its events topic, in
shadow tables beside the live ones (in the same store), and replaces the
live tables with them in one transaction once the rebuild has applied at
least as far as the live projection on every partition. Queries keep
answering from the live tables until then; a running projector keeps
applying to them and carries on from the rebuilt positions after the swap.
Events the fold rejects, or that cannot be decoded, are skipped (the live
projection dead-lettered them) and counted.

A progress bar (events done, rate, time left) goes to stderr when it is a
terminal, a progress line every few seconds otherwise. Interrupting it
(Ctrl-C) drops the shadow tables and leaves the live model as it was. One
rebuild of a projection runs at a time; --restart drops one that was
interrupted (or is still running elsewhere) and starts over.

--from other than earliest builds a read model of the events from there on
only.

Example:
  pyrite projection rebuild work-efforts --store postgres://pyrite@db/pyrite

Exit code 0 when the rebuilt model was swapped in, 1 when it failed or was
interrupted (the live model is then unchanged), 2 on usage errors.`

func runProjectionRebuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite projection rebuild", "pyrite projection rebuild NAME [flags]", rebuildUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	storeURL := fs.String("store", config.Env("PYRITE_STORE", ".pyrite/projector.db"),
		"read-model store: a SQLite file path (or sqlite:///path) or a postgres:// URL (env PYRITE_STORE)")
	from := fs.String("from", "earliest", "where to start reading the events topic: "+startSpecHelp)
	restart := fs.Bool("restart", false, "drop an earlier rebuild of the projection that was never swapped in, and start over")
	batchSize := fs.Int("batch-size", 500, "most events applied in one database transaction")
	pos, err := parseArgs(fs, args, 1, "NAME")
	if err != nil {
		return err
	}
	name := pos[0]
	var errs []error
	sp, err := parseStartSpec(*from, time.Now())
	if err != nil {
		errs = append(errs, fmt.Errorf("--from: %w", err))
	}
	if *batchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size: %d is not positive", *batchSize))
	}
	if strings.TrimSpace(*storeURL) == "" {
		errs = append(errs, errors.New("--store must not be empty"))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	top, err := topology.New(topology.Dev, mods.Topology()...) // routing only
	if err != nil {
		return err
	}
	spec, topics, err := rebuildable(mods, top, name)
	if err != nil {
		return err
	}
	local, err := schemas.All()
	if err != nil {
		return err
	}
	local = append(local, mods.Schemas...)
	dec, err := bus.NewCodecDecoder(codec.Dial(strings.TrimRight(f.registry, "/")), top, local)
	if err != nil {
		return err
	}
	var migrations []store.Option // the read models' tables, in case this opens the store first
	for _, rm := range mods.ReadModels {
		if rm.Migrations != nil {
			migrations = append(migrations, store.WithMigrations(rm.Name, rm.Migrations))
		}
	}
	octx, cancel := context.WithTimeout(ctx, f.timeout)
	st, err := store.Open(octx, *storeURL, migrations...)
	cancel()
	if err != nil {
		return err
	}
	defer st.Close()
	adm, err := admin(brokers)
	if err != nil {
		return err
	}
	defer adm.Close()
	octx, cancel = context.WithTimeout(ctx, f.timeout)
	starts, err := sp.resolve(octx, adm, topics...)
	cancel()
	if err != nil {
		return err
	}
	seed := map[store.TopicPartition]int64{}
	starts.each(func(t string, p int32, off int64) { seed[store.TopicPartition{Topic: t, Partition: p}] = off })
	rb, err := st.StartRebuild(ctx, spec, store.RebuildOptions{Restart: *restart, From: *from, Start: seed})
	if errors.Is(err, store.ErrRebuildInProgress) {
		return fmt.Errorf("%w (--restart)", err)
	}
	if err != nil {
		return err
	}
	reb := &rebuilder{
		rb: rb, dec: dec, batch: *batchSize, timeout: f.timeout,
		progress: newProgress(stderr, "rebuild "+name),
	}
	began := time.Now()
	err = reb.run(ctx, brokers, adm, starts)
	reb.progress.finish()
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := rb.Abort(actx); aerr != nil && !errors.Is(aerr, store.ErrRebuildGone) {
			err = errors.Join(err, fmt.Errorf("drop the shadow tables: %w", aerr))
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: rebuild of %s aborted, the live read model is unchanged", name)
		}
		return fmt.Errorf("rebuild of %s aborted, the live read model is unchanged: %w", name, err)
	}
	gen, _ := st.Generation(ctx, name)
	fmt.Fprintf(stdout, "rebuilt %s from %s: %d events applied, %d skipped, in %s; swapped in as generation %d\n",
		name, *from, reb.applied, reb.skipped, time.Since(began).Round(time.Millisecond), gen)
	return nil
}

// rebuilder feeds a store rebuild from Kafka until it can be swapped in.
type rebuilder struct {
	rb       *store.Rebuild
	dec      bus.Decoder
	batch    int
	timeout  time.Duration
	progress *progress
	// beforeSwap, when set, is called before every swap attempt (tests).
	beforeSwap func()

	applied, skipped int64
}

// run reads the topics from starts, applies what it reads, and swaps once caught up: when
// the live projection is further along, it reads on and tries again.
func (b *rebuilder) run(ctx context.Context, brokers kafkaTarget, adm *kadm.Client, starts offsets) error {
	r, err := newRangeReader(brokers, adm, starts)
	if err != nil {
		return err
	}
	defer r.Close()
	refresh := func() error {
		rctx, cancel := context.WithTimeout(ctx, b.timeout)
		defer cancel()
		return r.refresh(rctx)
	}
	if err := refresh(); err != nil {
		return err
	}
	var done int64
	total := r.remaining()
	stuck := 0
	for {
		if r.done() {
			if b.beforeSwap != nil {
				b.beforeSwap()
			}
			err := b.rb.Swap(ctx)
			var behind *store.BehindError
			if !errors.As(err, &behind) {
				return err
			}
			// The live projection applied records the rebuild has not read yet.
			if stuck++; stuck > 20 {
				return fmt.Errorf("%w (the topic was read to its end %d times)", err, stuck)
			}
			if err := refresh(); err != nil {
				return err
			}
			total = done + r.remaining()
			continue
		}
		recs, err := r.poll(ctx, time.Second, true)
		if err != nil {
			return err
		}
		if len(recs) > 0 {
			stuck = 0
		}
		for start := 0; start < len(recs); start += b.batch {
			chunk := recs[start:min(start+b.batch, len(recs))]
			if err := b.apply(ctx, chunk); err != nil {
				return err
			}
		}
		done = total - r.remaining()
		b.progress.update(done, total)
	}
}

// apply decodes and applies records. Records that cannot be decoded and events the fold
// rejects are skipped, as the live projection dead-lettered them, but still move the
// shadow's positions past them (as an event of no type, which the fold ignores).
func (b *rebuilder) apply(ctx context.Context, recs []*kgo.Record) error {
	events := make([]store.Event, 0, len(recs))
	for _, rec := range recs {
		ev, err := b.decode(ctx, rec)
		if err != nil {
			return err
		}
		events = append(events, ev)
	}
	for len(events) > 0 {
		err := b.rb.Apply(ctx, events)
		var ae *store.ApplyError
		if !errors.As(err, &ae) || !ae.Permanent() {
			if err == nil {
				for _, ev := range events {
					if ev.Type != "" {
						b.applied++
					}
				}
			}
			return err
		}
		events[ae.Index] = skipEvent(events[ae.Index])
		b.skipped++
	}
	return nil
}

func skipEvent(ev store.Event) store.Event {
	return store.Event{Topic: ev.Topic, Partition: ev.Partition, Offset: ev.Offset}
}

// decode turns a record into an event, retrying while the registry is unavailable; a record
// that cannot be decoded becomes an event of no type (counted as skipped).
func (b *rebuilder) decode(ctx context.Context, rec *kgo.Record) (store.Event, error) {
	wait := 200 * time.Millisecond
	deadline := time.Now().Add(b.timeout)
	for {
		ev, err := b.dec.Decode(ctx, rec)
		if err == nil {
			return store.Event{
				ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, AggregateVersion: ev.AggregateVersion,
				Time: ev.Time, Data: ev.Data, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
			}, nil
		}
		if bus.IsPermanent(err) {
			b.skipped++
			return store.Event{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}, nil
		}
		if time.Now().After(deadline) {
			return store.Event{}, err
		}
		select {
		case <-ctx.Done():
			return store.Event{}, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// progress draws a progress bar on a terminal, or prints a line every few seconds.
type progress struct {
	w        io.Writer
	label    string
	tty      bool
	began    time.Time
	last     time.Time
	drawn    bool
	interval time.Duration
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, tty: isTerminal(w), began: time.Now(), interval: 5 * time.Second}
	if p.tty {
		p.interval = 200 * time.Millisecond
	}
	return p
}

// update shows done of total events, throttled.
func (p *progress) update(done, total int64) {
	now := time.Now()
	if now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	line := progressLine(p.label, done, total, now.Sub(p.began))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.drawn = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// finish ends the bar's line.
func (p *progress) finish() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// progressLine renders "label [#####.....] 50% 1,000/2,000 events  250/s  ETA 4s".
func progressLine(label string, done, total int64, elapsed time.Duration) string {
	const width = 30
	total = max(total, done)
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	filled := int(frac * width)
	bar := strings.Repeat("#", filled) + strings.Repeat(".", width-filled)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(total-done) / rate * float64(time.Second))).Round(time.Second).String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%% %s/%s events  %s/s  ETA %s",
		label, bar, frac*100, thousands(done), thousands(total), thousands(int64(rate)), eta)
}

// thousands formats n with commas.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var parts []string
	for len(s) > 3 {
		parts = append([]string{s[len(s)-3:]}, parts...)
		s = s[:len(s)-3]
	}
	parts = append([]string{s}, parts...)
	out := strings.Join(parts, ",")
	if neg {
		out = "-" + out
	}
	return out
}
