package upcaster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/groupleave"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// Group is the upcaster's group in the topology: its dead-letter topic is pyrite.upcaster.dlq.
const Group = "upcaster"

// DefaultConsumerGroup is the Kafka consumer group every upcaster instance joins.
const DefaultConsumerGroup = "pyrite-upcaster"

// Mode is how the stage commits its work.
type Mode string

// Modes.
const (
	// Transactional writes each polled batch's events, dead letters and consumed offsets in
	// one Kafka transaction: exactly once for read_committed consumers.
	Transactional Mode = "transactional"
	// AtLeastOnce produces with an idempotent producer and commits offsets after the batch is
	// acknowledged: a crash between the two writes the batch again. For comparison only.
	AtLeastOnce Mode = "at-least-once"
)

// ParseMode accepts "transactional" or "at-least-once".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Transactional, AtLeastOnce:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want %s or %s)", s, Transactional, AtLeastOnce)
}

// Config holds a Stage's settings; zero values take the defaults.
type Config struct {
	// ConsumerGroup is the Kafka consumer group (default DefaultConsumerGroup).
	ConsumerGroup string
	// TransactionalID is this instance's transactional id: required in transactional mode,
	// stable across restarts of the instance (a restarted instance then fences its
	// predecessor's open transaction at once) and unique across instances.
	TransactionalID string
	// Mode is Transactional (the default) or AtLeastOnce.
	Mode Mode
	// MaxPollRecords bounds one batch, and so one transaction (default 5000).
	MaxPollRecords int
	// Source is the ce_source given to records without one (default DefaultSource).
	Source string
	// MaxBackoff caps the wait between attempts while the registry is unavailable (default 5 s;
	// the first wait is 100 ms, doubling).
	MaxBackoff time.Duration
	// EndTimeout bounds the end of a transaction, which runs to completion even during
	// shutdown (default 30 s).
	EndTimeout time.Duration
	// DuplicateWindow is how many raw offsets back an exact repeat of a record is dropped
	// (dedupe.go; default DuplicateWindow, negative: none is dropped). Transactional mode.
	DuplicateWindow int64
	// Workers is how many partitions of a batch are processed at once (default GOMAXPROCS).
	// Each partition is processed in order by one worker.
	Workers int
}

func (c *Config) defaults() {
	c.ConsumerGroup = cmp.Or(c.ConsumerGroup, DefaultConsumerGroup)
	c.Mode = cmp.Or(c.Mode, Transactional)
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 5000
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.EndTimeout <= 0 {
		c.EndTimeout = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DuplicateWindow
	}
}

// Stage consumes every raw topic and writes each record to its aggregate's events topic at the
// newest schema version (or to pyrite.upcaster.dlq). Create it with NewStage and call Run once.
type Stage struct {
	cfg   Config
	up    *upcast.Upcaster
	topo  *topology.Topology
	proc  *processor
	m     *metrics
	log   *slog.Logger
	kopts []kgo.Opt
	raw   []string

	vers *versions

	checked atomic.Bool
	backoff atomic.Pointer[error] // why the stage is waiting, nil when it is not
	client  atomic.Pointer[kgo.Client]
	sink    *sinkGuard
	dups    *dupGuard
}

// NewStage returns a stage upcasting with up. opts are passed to the Kafka client after the
// stage's own (seed brokers, TLS, session timeout, instance id, ...). reg (may be nil)
// receives the stage's metrics and, through kprom, the client's; log may be nil.
func NewStage(up *upcast.Upcaster, topo *topology.Topology, cfg Config, reg prometheus.Registerer, log *slog.Logger, opts ...kgo.Opt) (*Stage, error) {
	cfg.defaults()
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, err
	}
	if cfg.Mode == Transactional && cfg.TransactionalID == "" {
		return nil, errors.New("upcaster: transactional mode needs a transactional id")
	}
	proc, err := newProcessor(up, topo, cfg.Source)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Stage{cfg: cfg, up: up, topo: topo, proc: proc, m: m, log: log, kopts: opts, sink: newSinkGuard(topo, cfg.MaxPollRecords), dups: newDupGuard(cfg.DuplicateWindow)}
	for _, t := range topo.TopicsWithRole(topology.RoleRaw) {
		s.raw = append(s.raw, t.Name)
	}
	s.vers = &versions{parts: map[rawPartition]*partVersions{}, eventOf: map[string]string{}, load: loadVersions(opts)}
	for _, a := range topo.Aggregates() {
		s.vers.eventOf[a.RawTopic()] = a.EventsTopic()
	}
	if reg != nil {
		s.kopts = append([]kgo.Opt{kgo.WithHooks(kpromMetrics(reg))}, s.kopts...)
	}
	return s, nil
}

// route maps a subject to its event type when it is a domain event of a declared aggregate.
func (s *Stage) route(subject string) (string, bool) {
	if _, err := s.topo.AggregateOfSubject(subject); err != nil {
		return "", false
	}
	et, err := s.topo.EventType(subject)
	return et, err == nil
}

// Ready reports nil once the stage checked the chain, is not backing off from an unavailable
// registry, and a Kafka broker answers.
func (s *Stage) Ready(ctx context.Context) error {
	if !s.checked.Load() {
		if e := s.backoff.Load(); e != nil {
			return fmt.Errorf("checking that every schema version has a path to the newest: %w", *e)
		}
		return errors.New("checking that every schema version has a path to the newest")
	}
	if e := s.backoff.Load(); e != nil {
		return fmt.Errorf("backing off: %w", *e)
	}
	cl := s.client.Load()
	if cl == nil {
		return errors.New("not connected to Kafka yet")
	}
	return cl.Ping(ctx)
}

// Run checks the chain, then upcasts until ctx is done. A chain with gaps is refused at once
// with an error naming every gap (wrapping upcast.ErrGap); an unavailable registry is waited
// for. On shutdown the batch in hand is finished and its transaction ended, then the client
// leaves the group. Run returns nil after a clean shutdown, or the error that stopped it (a
// fenced or failed transactional producer, an unrecoverable produce error).
func (s *Stage) Run(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return nil
	}
	if s.cfg.Mode == AtLeastOnce {
		return s.runAtLeastOnce(ctx)
	}
	return s.runTransactional(ctx)
}

func (s *Stage) check(ctx context.Context) error {
	var b backoff
	for {
		err := s.up.Check(ctx, s.route)
		switch {
		case err == nil:
			s.backoff.Store(nil)
			s.checked.Store(true)
			s.log.Info("upcaster chain checked: every registered version has a path to the newest")
			return nil
		case errors.Is(err, upcast.ErrGap):
			return fmt.Errorf("refusing to start: these schema versions have no path to the newest; register an upcaster function for each step or a version that resolves:\n%w", err)
		case ctx.Err() != nil:
			return nil
		}
		s.setBackoff(err)
		s.log.Warn("checking the upcaster chain; will retry", "err", err)
		if !b.wait(ctx, s.cfg.MaxBackoff) {
			return nil
		}
	}
}

func (s *Stage) setBackoff(err error) { s.backoff.Store(&err) }

// clientOpts are the options both modes share.
func (s *Stage) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(s.cfg.ConsumerGroup),
		kgo.ConsumeTopics(s.raw...),
		// Raw topics take ingest's batches in transactions: never upcast an aborted one.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new group starts at the beginning of the raw topics: everything is upcast.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RecordPartitioner(partitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.OnPartitionsRevoked(s.forget),
		kgo.OnPartitionsLost(s.forget),
	}
	return append(opts, s.kopts...)
}

// forget drops the lag series of partitions this instance no longer owns. It runs in kgo's
// rebalance callback and does not block.
func (s *Stage) forget(_ context.Context, _ *kgo.Client, gone map[string][]int32) {
	s.sink.forget(gone)
	s.dups.forget(gone)
	for topic, ps := range gone {
		for _, p := range ps {
			s.m.lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
		}
	}
	s.vers.forget(gone)
}

func (s *Stage) runTransactional(ctx context.Context) error {
	leaver := groupleave.New()
	opts := append(s.clientOpts(), kgo.TransactionalID(s.cfg.TransactionalID), leaver.Opt())
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("upcaster: kafka client: %w", err)
	}
	defer s.leave(leaver, sess.Client())
	// Load the producer id now: that fences a previous instance with this transactional id
	// and aborts its open transaction. Until then the group's offset fetch (which waits for
	// stable offsets) would wait for that transaction to time out.
	if _, _, err := sess.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("upcaster: init producer id for %s: %w", s.cfg.TransactionalID, err)
	}
	s.client.Store(sess.Client())
	s.log.Info("upcaster consuming", "mode", s.cfg.Mode, "group", s.cfg.ConsumerGroup, "transactional_id", s.cfg.TransactionalID, "topics", s.raw)

	var b backoff
	batch := newBatcher(s.proc, s.cfg.Workers)
	for {
		fs := sess.PollRecords(ctx, s.cfg.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fetch", "topic", t, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			continue
		}
		dups, ok := s.skipUpcast(ctx, sess.Client(), fs, &b)
		if !ok {
			return nil
		}
		start := time.Now()
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("upcaster: begin transaction: %w", err)
		}
		// The batch in hand is finished even when shutdown begins.
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.EndTimeout)
		promise := kgo.AbortingFirstErrPromise(sess.Client())
		var parts []partResult
		vers, transient := s.vers.prepare(work, fs)
		if transient == nil {
			parts = batch.run(work, fs, vers, true, func(r *kgo.Record) { sess.Produce(work, r, promise.Promise()) })
			transient = firstErr(parts)
		}
		var flushErr error
		if transient == nil {
			flushErr = sess.Client().Flush(work)
		}
		produceErr := promise.Err()
		commit := transient == nil && flushErr == nil && produceErr == nil
		committed, endErr := sess.End(work, kgo.TransactionEndTry(commit))
		cancel()
		s.vers.end(vers, committed)
		outcome := "abort"
		if committed {
			outcome = "commit"
		}
		s.m.txn.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		if endErr != nil {
			return fmt.Errorf("upcaster: end transaction: %w", endErr)
		}
		switch {
		case committed:
			for _, p := range parts {
				s.m.count(p.outs)
			}
			for topic, n := range dups {
				s.m.duplicates.WithLabelValues(topic).Add(float64(n))
			}
			s.setLag(fs)
			s.backoff.Store(nil)
			b.reset()
		case transient != nil:
			s.m.backoffs.Inc()
			s.setBackoff(transient)
			s.log.Warn("batch aborted; its records will be read again", "err", transient, "records", fs.NumRecords())
			if !b.wait(ctx, s.cfg.MaxBackoff) {
				return nil
			}
		case produceErr != nil || flushErr != nil:
			s.log.Warn("batch aborted: produce failed; its records will be read again", "err", errors.Join(produceErr, flushErr))
			if !b.wait(ctx, s.cfg.MaxBackoff) {
				return nil
			}
		default:
			s.log.Info("batch aborted by a rebalance; its records will be read again by their new owner", "records", fs.NumRecords())
		}
	}
}

func (s *Stage) runAtLeastOnce(ctx context.Context) error {
	leaver := groupleave.New()
	opts := append(s.clientOpts(), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(), leaver.Opt())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("upcaster: kafka client: %w", err)
	}
	defer s.leave(leaver, cl)
	s.client.Store(cl)
	s.log.Info("upcaster consuming", "mode", s.cfg.Mode, "group", s.cfg.ConsumerGroup, "topics", s.raw)

	var b backoff
	batch := newBatcher(s.proc, s.cfg.Workers)
	for {
		fs := cl.PollRecords(ctx, s.cfg.MaxPollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fetch", "topic", t, "partition", p, "err", err)
		})
		if fs.NumRecords() == 0 {
			cl.AllowRebalance()
			continue
		}
		start := time.Now()
		work, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.EndTimeout)
		vers, err := s.vers.prepare(work, fs)
		if err != nil {
			cancel()
			s.setBackoff(err)
			s.log.Warn("loading aggregate versions; the batch will be read again", "err", err)
			cl.SetOffsets(firstOffsets(fs))
			cl.AllowRebalance()
			if !b.wait(ctx, s.cfg.MaxBackoff) {
				return nil
			}
			continue
		}
		var promise kgo.FirstErrPromise
		parts := batch.run(work, fs, vers, false, func(r *kgo.Record) { cl.Produce(work, r, promise.Promise()) })
		var (
			done     []*kgo.Record // last record processed, per partition
			rewind   = map[string]map[int32]kgo.EpochOffset{}
			firstErr error
		)
		for _, p := range parts {
			if p.last != nil {
				done = append(done, p.last)
			}
			if p.err != nil {
				if rewind[p.topic] == nil {
					rewind[p.topic] = map[int32]kgo.EpochOffset{}
				}
				rewind[p.topic][p.partition] = kgo.EpochOffset{Epoch: p.failed.LeaderEpoch, Offset: p.failed.Offset}
				firstErr = cmpErr(firstErr, p.err)
			}
		}
		flushErr := cl.Flush(work)
		if err := errors.Join(promise.Err(), flushErr); err != nil {
			cancel()
			return fmt.Errorf("upcaster: produce: %w", err)
		}
		if err := cl.CommitRecords(work, done...); err != nil {
			s.log.Warn("commit offsets; the batch will be written again", "err", err)
		}
		cancel()
		for _, p := range parts {
			s.m.count(p.outs)
		}
		s.vers.end(vers, true) // written (at least once)
		s.setLag(fs)
		if len(rewind) > 0 {
			cl.SetOffsets(rewind)
			s.m.txn.WithLabelValues("rewind").Observe(time.Since(start).Seconds())
			s.m.backoffs.Inc()
			s.setBackoff(firstErr)
			s.log.Warn("records left for later", "err", firstErr)
			cl.AllowRebalance()
			if !b.wait(ctx, s.cfg.MaxBackoff) {
				return nil
			}
			continue
		}
		s.m.txn.WithLabelValues("commit").Observe(time.Since(start).Seconds())
		s.backoff.Store(nil)
		b.reset()
		cl.AllowRebalance()
	}
}

// leave leaves the group within groupleave.DefaultTimeout and closes cl: a JoinGroup the
// broker holds (a member that does not rejoin) cannot keep shutdown waiting up to the
// rebalance timeout. A poll blocks rebalances until AllowRebalance (at-least-once mode):
// allow it, or leaving hangs.
func (s *Stage) leave(l *groupleave.Leaver, cl *kgo.Client) {
	cl.AllowRebalance()
	if err := l.Close(cl, groupleave.DefaultTimeout); err != nil {
		s.log.Warn("leaving the group took too long; left without it", "group", s.cfg.ConsumerGroup, "err", err)
	}
}

// firstOffsets are the offsets of the first record of each partition of fs.
func firstOffsets(fs kgo.Fetches) map[string]map[int32]kgo.EpochOffset {
	out := map[string]map[int32]kgo.EpochOffset{}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			if out[p.Topic] == nil {
				out[p.Topic] = map[int32]kgo.EpochOffset{}
			}
			r := p.Records[0]
			out[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset}
		}
	})
	return out
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// setLag records, per partition of the batch, how far its last record is behind the
// partition's last stable offset.
func (s *Stage) setLag(fs kgo.Fetches) {
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			lag := max(p.LastStableOffset-(p.Records[n-1].Offset+1), 0)
			s.m.lag.WithLabelValues(p.Topic, strconv.Itoa(int(p.Partition))).Set(float64(lag))
		}
	})
}

// backoff is a capped exponential wait that ends early when its context does.
type backoff struct{ next time.Duration }

func (b *backoff) reset() { b.next = 0 }

// wait sleeps for the next interval; false means ctx ended first.
func (b *backoff) wait(ctx context.Context, ceiling time.Duration) bool {
	if b.next == 0 {
		b.next = 100 * time.Millisecond
	}
	d := min(b.next, ceiling)
	b.next = min(2*b.next, ceiling)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
