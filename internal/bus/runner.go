package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/groupleave"
)

// Decoder turns a Kafka record into an Event (Origin is set by the Runner). An error marked
// with Permanent sends the record to the dead-letter topic (reason "decode"); any other error
// is transient (e.g. the schema registry is down) and the record is decoded again, in place,
// after a backoff: the partition waits, since every later record would fail the same way.
type Decoder interface {
	Decode(ctx context.Context, rec *kgo.Record) (*Event, error)
}

// BatchHandler applies events of one partition, in order, as one unit (e.g. one database
// transaction that also stores the position: the last event's Origin.Offset+1). It returns
// nil when all are applied and nothing otherwise. A transient error retries the same batch
// after a backoff, for as long as it takes (the partition waits: order matters to a
// projection); a permanent error makes the runner apply the batch's events one at a time so
// that only the failing ones go to the dead-letter topic.
type BatchHandler func(ctx context.Context, events []*Event) error

// RunnerConfig configures a Runner. Group, Topics, DLQTopic, Decoder and one of Bus or
// Batch are required.
type RunnerConfig struct {
	// Group is the consumer group.
	Group string
	// Topics are the source topics.
	Topics []string
	// RetryTopic (pyrite.<group>.retry) is read by this group only: it carries async
	// handlers' queued deliveries, their retries, and dead letters redriven to this group
	// (pyrite dlq redrive). Set, a source record whose handlers fail transiently parks its
	// key and is retried in place (see the package comment); empty, such a failure goes to
	// the dead-letter topic. With Batch, its records are applied like source records, and
	// their positions (on the retry topic) are Positions' too.
	RetryTopic string
	// QueueTopic receives the deliveries of async handlers, which then run from it, so that
	// their failures are retried and dead-lettered. Empty means RetryTopic; if both are
	// empty, async handlers run inline like synchronous ones. Not used with Batch.
	QueueTopic string
	// DLQTopic is the dead-letter topic (pyrite.<group>.dlq).
	DLQTopic string
	// Decoder turns records into events.
	Decoder Decoder
	// Bus receives every event (reactors, sagas, process managers).
	Bus *Bus
	// Batch receives the events of a partition in batches (projections), instead of Bus.
	Batch BatchHandler
	// Wants, with Batch, routes on the ce_type header before decoding: a record whose
	// ce_type Wants rejects is not decoded, and reaches Batch as an event with only Type and
	// Origin set (Data nil), so that the handler can still move its position past it. A
	// record without ce_type is decoded. nil decodes every record. Not used with Bus (a Bus
	// routes by its subscriptions).
	Wants func(eventType string) bool
	// BatchSize and BatchWait bound a batch: at most BatchSize events, collected for at
	// most BatchWait after the first. Defaults 5000 and 50ms: a projection writes each
	// aggregate's row once per batch and commits once, so a backlog is applied in large
	// transactions (the upcaster's transactions are up to 5000 records too); a batch is
	// only as large as what is waiting, so a trickle is still applied at once.
	BatchSize int
	BatchWait time.Duration
	// MaxAttempts is how many deliveries a record gets for a transiently failing handler,
	// counting the first, before it goes to the dead-letter topic. Default 5.
	MaxAttempts int
	// RetryDelay is the delay before the first redelivery, doubled for each next one and
	// capped at MaxRetryDelay; it is also the first backoff of in-place retries (decoding,
	// writing to Kafka, batches). Defaults 1s and 1m.
	RetryDelay    time.Duration
	MaxRetryDelay time.Duration
	// HandlerGrace is how long handlers in flight when Run's context ends may go on before
	// their context is canceled. Default 5s.
	HandlerGrace time.Duration
	// MaxBuffered is how many fetched records a partition may have waiting before the
	// runner stops fetching: it waits up to 100 ms for the partition's worker to take half
	// of them, then pauses the partition (see Runner.poll). Default 4000 (about 1.5 MB of
	// Pyrite records), and twice BatchSize with Batch (so that the next batch is fetched
	// while one is applied). A pause costs more than the wait: franz-go drops what it had
	// fetched for the partition and not yet handed over, and fetches and decodes it again
	// after the resume. With 1000 (some two fetches of 128 KiB) a worker paused often, and
	// BenchmarkRunner spent about 6 us of CPU per record against 3 to 4 us with 4000
	// (alternating runs, when every full worker paused; 2000 and 8000 were within the noise
	// of 4000).
	MaxBuffered int
	// MaxParkedPerKey bounds the records of one key that wait behind its record being
	// retried (see the package comment); one more makes the whole partition wait for that
	// retry. Default 1000.
	MaxParkedPerKey int
	// MaxDeadKeys bounds the keys a runner (with a Bus and a RetryTopic) holds behind dead
	// letters, over all its partitions (see the package comment); a dead letter of a further
	// key does not hold it, and is counted in pyrite_runner_dead_keys_overflow_total. Default
	// 100000 (a few MB of keys).
	MaxDeadKeys int
	// Positions, when set, is asked on every assignment where to start each source
	// partition (ok false: from the group's committed offset), for handlers that store
	// their positions with their own state. An error fails the group session, which is then
	// joined again.
	Positions func(ctx context.Context, topic string, partition int32) (offset int64, ok bool, err error)
	// Metrics, when set, counts records, retries, dead letters and lag.
	Metrics *Metrics
	// Logger receives failures, with group, topic, partition and offset; default nowhere.
	Logger *slog.Logger
}

// Runner defaults.
const (
	DefaultBatchSize     = 5000
	DefaultBatchWait     = 50 * time.Millisecond
	DefaultMaxAttempts   = 5
	DefaultRetryDelay    = time.Second
	DefaultMaxRetryDelay = time.Minute
	DefaultHandlerGrace  = 5 * time.Second
	DefaultMaxBuffered   = 4000
	DefaultMaxParked     = 1000
	DefaultMaxDeadKeys   = 100000

	pollRecords            = 500
	fetchMaxWait           = 200 * time.Millisecond
	fullWait               = 100 * time.Millisecond // see poll
	fetchMaxPartitionBytes = 128 << 10
	flushEvery             = 100
	flushAfter             = 100 * time.Millisecond
	markEvery              = 20 * time.Millisecond
	abandonAfter           = time.Second
	produceTimeout         = 30 * time.Second
	commitTimeout          = 10 * time.Second
)

// Validate reports every problem with c, joined, each wrapping ErrInvalidConfig.
func (c RunnerConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Group == "" {
		bad("Group is empty")
	}
	if len(c.Topics) == 0 {
		bad("Topics is empty")
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if t == "" {
			bad("Topics holds an empty name")
		} else if seen[t] {
			bad("topic %s listed twice", t)
		}
		seen[t] = true
	}
	if c.DLQTopic == "" {
		bad("DLQTopic is empty")
	}
	for _, x := range []struct{ name, topic string }{
		{"DLQTopic", c.DLQTopic}, {"RetryTopic", c.RetryTopic}, {"QueueTopic", c.QueueTopic},
	} {
		if x.topic != "" && seen[x.topic] {
			bad("%s %s is also a source topic", x.name, x.topic)
		}
	}
	if c.DLQTopic != "" && (c.DLQTopic == c.RetryTopic || c.DLQTopic == c.QueueTopic) {
		bad("DLQTopic %s is also the retry or queue topic", c.DLQTopic)
	}
	if c.Decoder == nil {
		bad("Decoder is nil")
	}
	if (c.Bus == nil) == (c.Batch == nil) {
		bad("exactly one of Bus and Batch must be set")
	}
	if c.BatchSize < 0 || c.MaxAttempts < 0 || c.MaxBuffered < 0 || c.MaxParkedPerKey < 0 || c.MaxDeadKeys < 0 {
		bad("BatchSize, MaxAttempts, MaxBuffered, MaxParkedPerKey and MaxDeadKeys must not be negative")
	}
	if c.BatchWait < 0 || c.RetryDelay < 0 || c.MaxRetryDelay < 0 || c.HandlerGrace < 0 {
		bad("durations must not be negative")
	}
	return errors.Join(errs...)
}

func (c *RunnerConfig) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.BatchSize, DefaultBatchSize)
	def(&c.MaxAttempts, DefaultMaxAttempts)
	if c.Batch != nil {
		def(&c.MaxBuffered, max(DefaultMaxBuffered, 2*c.BatchSize)) // after BatchSize
	}
	def(&c.MaxBuffered, DefaultMaxBuffered)
	def(&c.MaxParkedPerKey, DefaultMaxParked)
	def(&c.MaxDeadKeys, DefaultMaxDeadKeys)
	defd(&c.BatchWait, DefaultBatchWait)
	defd(&c.RetryDelay, DefaultRetryDelay)
	defd(&c.MaxRetryDelay, DefaultMaxRetryDelay)
	defd(&c.HandlerGrace, DefaultHandlerGrace)
	c.MaxRetryDelay = max(c.MaxRetryDelay, c.RetryDelay)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Topics = slices.Clone(c.Topics)
}

type tp struct {
	topic     string
	partition int32
}

// Runner is a Kafka consumer group that feeds a Bus or a BatchHandler; see the package
// comment for its guarantees. Make one with NewRunner and call Run once.
type Runner struct {
	cfg        RunnerConfig
	opts       []kgo.Opt
	log        *slog.Logger
	queueTopic string          // where async deliveries go; "" runs them inline
	control    map[string]bool // topics whose records carry control headers
	dead       *deadKeys       // keys held behind dead letters; nil unless Bus and RetryTopic
	started    atomic.Bool

	// Set by Run before the client exists; read-only afterwards.
	runCtx context.Context // Run's context: workers stop when it ends
	hctx   context.Context // handlers' context: ends HandlerGrace after runCtx

	mu      sync.Mutex
	workers map[tp]*worker
	closed  bool
}

// NewRunner checks cfg and returns a Runner. opts are passed to the kgo client after the
// runner's own (consumer group, topics, AutoCommitMarks, BlockRebalanceOnPoll, partition
// callbacks, read_committed), so they must at least name the brokers (kgo.SeedBrokers) and
// may override defaults such as kgo.AutoCommitInterval (1s here) or kgo.FetchMaxWait; they
// must not replace the partition callbacks or the commit mode.
func NewRunner(cfg RunnerConfig, opts ...kgo.Opt) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Runner{
		cfg:     cfg,
		opts:    slices.Clone(opts),
		log:     cfg.Logger.With("group", cfg.Group),
		control: map[string]bool{},
		workers: map[tp]*worker{},
	}
	if cfg.Bus != nil {
		r.queueTopic = cmp.Or(cfg.QueueTopic, cfg.RetryTopic)
		for _, t := range []string{cfg.RetryTopic, cfg.QueueTopic} {
			if t != "" {
				r.control[t] = true
			}
		}
		if cfg.RetryTopic != "" {
			r.dead = newDeadKeys(cfg.MaxDeadKeys)
		}
	} else if cfg.RetryTopic != "" {
		r.control[cfg.RetryTopic] = true // redriven dead letters (pyrite dlq redrive)
	}
	return r, nil
}

// Group returns the runner's consumer group.
func (r *Runner) Group() string { return r.cfg.Group }

// Run consumes until ctx ends, then stops polling, lets every partition worker finish the
// record in hand (handlers get HandlerGrace before their context is canceled), commits the
// marked offsets, leaves the group and returns. It returns nil after a shutdown by ctx, or
// the error of the final commit, or of making the client. Run may be called once.
func (r *Runner) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return ErrRunnerStarted
	}
	hctx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()
	var grace *time.Timer
	var graceMu sync.Mutex
	stopGrace := context.AfterFunc(ctx, func() {
		graceMu.Lock()
		grace = time.AfterFunc(r.cfg.HandlerGrace, cancelHandlers)
		graceMu.Unlock()
	})
	defer func() {
		stopGrace()
		graceMu.Lock()
		if grace != nil {
			grace.Stop()
		}
		graceMu.Unlock()
	}()
	r.runCtx, r.hctx = ctx, hctx

	topics := slices.Clone(r.cfg.Topics)
	for t := range r.control {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	opts := []kgo.Opt{
		kgo.ConsumerGroup(r.cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.lost),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A partition paused for back-pressure is left out of the fetch in
		// flight; when it resumes, its records wait for that fetch to end.
		// A short long-poll keeps that wait short (Kafka's default is 5s).
		kgo.FetchMaxWait(fetchMaxWait),
		// A partition's share of one fetch stays below MaxBuffered records (a
		// Pyrite record, Avro value and CloudEvents headers, is about 300 bytes,
		// so 128 KiB is some 400): a larger share overfills the worker, which
		// pauses the partition, and franz-go drops the rest of the fetch, to be
		// fetched again later. With franz-go's default (1 MiB) the runner spent
		// most of its time in that pause and refetch (BenchmarkRunner in
		// bench/watermill: 16k against 75k to 117k records/s with 128 KiB). Tried
		// again with marks handed over in bulk (handOverMarks), alternating runs of
		// the runner alone: 256 KiB, and 512 KiB with MaxBuffered 8000, took 3.7 to
		// 4.9 us of CPU per record against 2.7 to 3.7 with 128 KiB, and ran at 240k
		// to 360k against 450k to 600k records/s; 64 and 32 KiB were no better than
		// 128. A larger record still comes: a broker always returns a partition's
		// first batch whole.
		kgo.FetchMaxPartitionBytes(fetchMaxPartitionBytes),
	}
	if r.cfg.Positions != nil {
		opts = append(opts, kgo.AdjustFetchOffsetsFn(r.adjustOffsets))
	}
	leaver := groupleave.New()
	cl, err := kgo.NewClient(append(append(opts, r.opts...), leaver.Opt())...)
	if err != nil {
		return fmt.Errorf("bus: runner %s: client: %w", r.cfg.Group, err)
	}
	stopMarks := r.handOverMarksEvery(markEvery)
	r.poll(ctx, cl)
	stopMarks()
	r.stopWorkers(nil, true)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	err = cl.CommitMarkedOffsets(cctx)
	cancel()
	// Bounded: a JoinGroup the broker holds (a member that does not rejoin) would otherwise
	// keep Close waiting up to the rebalance timeout.
	cl.AllowRebalance()
	if lerr := leaver.Close(cl, groupleave.DefaultTimeout); lerr != nil {
		r.log.Warn("bus: leaving the group took too long; left without it", "group", r.cfg.Group, "err", lerr)
	}
	if err != nil {
		return fmt.Errorf("bus: runner %s: final commit: %w", r.cfg.Group, err)
	}
	return nil
}

// poll hands fetched records to partition workers until ctx ends or the client closes.
//
// Back-pressure: when a worker holds MaxBuffered records, poll waits (up to fullWait) for
// it to take them down to half before it polls again, which keeps franz-go from fetching
// more (it buffers one fetch per broker, and fetches the next once that one is polled). A
// worker still full after fullWait is stuck (a slow handler, a parked key's bound) and has
// its partition paused, so that the other partitions go on. Pausing at once, as the runner
// did, stalled a partition that kept up: a paused partition is left out of the fetch in
// flight, and when the other partitions have nothing new that fetch waits FetchMaxWait
// before it ends, so the resumed partition waited that long for every MaxBuffered/2
// records (200 ms gaps in most runs of the runner alone on BenchmarkRunner's records, a
// tenth of that benchmark's runs at half the rate; TestRunnerFastWorkerIsNotPaused).
func (r *Runner) poll(ctx context.Context, cl *kgo.Client) {
	var full []*worker
	for {
		fs := cl.PollRecords(ctx, pollRecords)
		if fs.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			return
		}
		fs.EachError(func(topic string, partition int32, err error) {
			r.log.Error("bus: fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		full = full[:0]
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			if w := r.worker(cl, p.Topic, p.Partition); w != nil && w.push(p.Records, p.HighWatermark) {
				full = append(full, w)
			}
		})
		if len(full) > 0 {
			// Before AllowRebalance: no revoke stops a worker (and resumes its partition)
			// while poll may still pause it.
			wctx, cancel := context.WithTimeout(ctx, fullWait)
			for _, w := range full {
				if !w.awaitRoom(wctx) {
					w.pause()
				}
			}
			cancel()
		}
		cl.AllowRebalance()
	}
}

// handOverMarksEvery hands the workers' marks to the client every d until the returned
// func is called (which waits for the last hand-over to end).
func (r *Runner) handOverMarksEvery(d time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.mu.Lock()
				handOverMarks(r.workers)
				r.mu.Unlock()
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

// handOverMarks hands the marks the workers ws made since the last hand-over to the client, in
// one call. Workers mark every record they are done with; the client's MarkCommit* take the
// consumer group's lock, which every poll takes too, and marking through it per record made
// the partitions' workers and the poll loop wait on each other (it was nearly all the
// runner's mutex wait in BenchmarkRunner of bench/watermill). Handed over every markEvery,
// the runner's CPU per record went from 3.6-3.8 to 2.9-3.2 us and its rate from a median
// of 347k to 575k records/s (three alternating runs each, same session, load 3.3-4.3). Commits are no later for it: the client commits
// marks every second (AutoCommitInterval), and a revoke or a shutdown hands over the marks
// of the stopped workers before it commits. The periodic hand-over holds r.mu, so that it
// never hands over a mark of a partition a revoke already took from r.workers.
func handOverMarks(ws map[tp]*worker) {
	var (
		cl *kgo.Client // the runner's, which every worker has
		m  map[string]map[int32]kgo.EpochOffset
	)
	for k, w := range ws {
		eo, ok := w.takeMark()
		if !ok {
			continue
		}
		if m == nil {
			cl, m = w.cl, map[string]map[int32]kgo.EpochOffset{}
		}
		if m[k.topic] == nil {
			m[k.topic] = map[int32]kgo.EpochOffset{}
		}
		m[k.topic][k.partition] = eo
	}
	if m != nil {
		cl.MarkCommitOffsets(m)
	}
}

// worker returns the worker of a partition, starting it if needed; nil after shutdown.
func (r *Runner) worker(cl *kgo.Client, topic string, partition int32) *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	k := tp{topic, partition}
	if w := r.workers[k]; w != nil {
		return w
	}
	w := newWorker(r, cl, topic, partition)
	r.workers[k] = w
	go w.run()
	return w
}

// assigned starts a worker per new partition (the workers wait for records).
func (r *Runner) assigned(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	for topic, ps := range m {
		for _, p := range ps {
			r.worker(cl, topic, p)
		}
	}
}

// revoked stops the workers of the revoked partitions, waits for them to finish the record
// in hand, and commits what they marked, before the partitions move on.
func (r *Runner) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	r.stopWorkers(m, false)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		r.log.Error("bus: commit on revoke failed", "err", err)
	}
}

// lost stops the workers of lost partitions; their marks cannot be committed any more.
func (r *Runner) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	r.stopWorkers(m, false)
}

// stopWorkers stops the workers of the partitions in m (all when m is nil) and waits for
// them to finish the record in hand. final also refuses new workers and, at shutdown, stops
// waiting for a handler that has not returned abandonAfter after its context was canceled
// (its record stays unmarked). A revoke waits as long as it takes: the partition must not
// move while a handler still works on it.
func (r *Runner) stopWorkers(m map[string][]int32, final bool) {
	r.mu.Lock()
	ws := map[tp]*worker{}
	for k, w := range r.workers {
		if m == nil || slices.Contains(m[k.topic], k.partition) {
			ws[k] = w
			delete(r.workers, k)
		}
	}
	r.closed = r.closed || final
	r.mu.Unlock()
	for _, w := range ws {
		w.cancel()
	}
	var giveUp <-chan time.Time
	if final {
		abandon := make(chan time.Time, 1)
		stop := context.AfterFunc(r.hctx, func() {
			time.AfterFunc(abandonAfter, func() { abandon <- time.Now() })
		})
		defer stop()
		giveUp = abandon
	}
	// What the workers marked (an abandoned handler's record is not) goes to the client for
	// the commit that follows.
	defer handOverMarks(ws)
	for _, w := range ws {
		select {
		case <-w.done:
			w.release()
		case <-giveUp:
			r.log.Error("bus: handler did not return after its context was canceled; abandoning it",
				"topic", w.topic, "partition", w.partition)
			return
		}
	}
}

// adjustOffsets applies Positions to the source partitions being assigned.
func (r *Runner) adjustOffsets(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	for topic, ps := range offs {
		if r.control[topic] && r.cfg.Batch == nil {
			continue
		}
		for p := range ps {
			off, ok, err := r.cfg.Positions(ctx, topic, p)
			if err != nil {
				return nil, fmt.Errorf("bus: runner %s: position of %s[%d]: %w", r.cfg.Group, topic, p, err)
			}
			if ok {
				ps[p] = kgo.NewOffset().At(off).WithEpoch(-1)
			}
		}
	}
	return offs, nil
}

// delay is the wait before delivery attempt+1.
func (r *Runner) delay(attempt int) time.Duration {
	d := r.cfg.RetryDelay
	for i := 1; i < attempt && d < r.cfg.MaxRetryDelay; i++ {
		d *= 2
	}
	return min(d, r.cfg.MaxRetryDelay)
}
