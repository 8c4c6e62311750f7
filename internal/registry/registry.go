package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultTopic is the store topic, as in Confluent's registry.
const DefaultTopic = "_schemas"

// DefaultMaxBodyBytes bounds a request body; a larger one is answered 413.
const DefaultMaxBodyBytes = 16 << 20

// DefaultWriteTimeout bounds one write: catching up with the store topic,
// the Kafka transaction and reading the records back.
const DefaultWriteTimeout = 30 * time.Second

type config struct {
	topic         string
	transactional string
	replication   int16
	registerer    prometheus.Registerer
	logger        *slog.Logger
	kafkaOpts     []kgo.Opt
	maxBody       int64
	writeTimeout  time.Duration
	liveReaders   func(subject string) []LiveReader // readers.go
}

// Option configures New.
type Option func(*config)

// WithTopic sets the store topic (default "_schemas").
func WithTopic(topic string) Option { return func(c *config) { c.topic = topic } }

// WithTransactionalID sets the Kafka transactional id of the writer
// (default "pyrite-schema-registry-" + topic). Instances sharing it fence one
// another: the newest one writes, older ones answer writes with 50001.
func WithTransactionalID(id string) Option { return func(c *config) { c.transactional = id } }

// WithReplicationFactor sets the replication factor used when New creates
// the store topic (default -1: the broker's default).
func WithReplicationFactor(n int16) Option { return func(c *config) { c.replication = n } }

// WithRegisterer registers the registry's metrics there (default: a private
// registry nobody scrapes).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.registerer = r } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithKafkaOpts adds options to every Kafka client the registry creates
// (TLS, SASL, kprom hooks, ...); they are applied after the registry's own.
func WithKafkaOpts(opts ...kgo.Opt) Option {
	return func(c *config) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}

// WithMaxBodyBytes sets the request body limit (default 16 MiB).
func WithMaxBodyBytes(n int64) Option { return func(c *config) { c.maxBody = n } }

// WithWriteTimeout bounds each write (default 30 s).
func WithWriteTimeout(d time.Duration) Option { return func(c *config) { c.writeTimeout = d } }

// Registry is a Confluent-compatible schema registry whose state lives in a
// compacted Kafka topic. Reads are served from memory; writes are serialized
// within the instance and answered only once their records are committed to
// Kafka and applied to memory. It is safe for concurrent use.
type Registry struct {
	cfg     config
	log     *slog.Logger
	admin   *kadm.Client
	adminCl *kgo.Client
	reader  *kgo.Client
	writer  *kgo.Client
	metrics *metrics
	handler http.Handler

	mu       sync.RWMutex // guards st, next, progress, rejected
	st       *state
	next     int64         // offset of the next record to read
	progress chan struct{} // closed and replaced whenever next advances
	rejected map[int64]error

	writeMu sync.Mutex // serializes writes
	fenced  atomic.Bool
	ready   atomic.Bool
	closed  atomic.Bool

	cancel    context.CancelFunc
	readerEnd chan struct{}
	closeOnce sync.Once

	// beforeCommit, when set (tests only), runs between computing a write
	// and committing it, to make races between instances reproducible.
	beforeCommit func()
}

// New connects to the Kafka cluster at brokers, creates the store topic if
// it is missing (1 partition, cleanup.policy=compact), takes the writer role
// (fencing an older instance with the same transactional id), reads the
// topic to its end and returns a ready registry. It creates and owns three
// Kafka clients (admin, reader, transactional writer); Close closes them.
func New(ctx context.Context, brokers []string, opts ...Option) (*Registry, error) {
	cfg := config{
		topic:        DefaultTopic,
		replication:  -1,
		maxBody:      DefaultMaxBodyBytes,
		writeTimeout: DefaultWriteTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case len(brokers) == 0:
		return nil, errors.New("registry: no brokers")
	case cfg.topic == "":
		return nil, errors.New("registry: empty topic name")
	case cfg.maxBody <= 0 || cfg.writeTimeout <= 0:
		return nil, errors.New("registry: body limit and write timeout must be positive")
	}
	if cfg.transactional == "" {
		cfg.transactional = "pyrite-schema-registry-" + cfg.topic
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.registerer == nil {
		cfg.registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.registerer)
	if err != nil {
		return nil, err
	}
	r := &Registry{
		cfg:       cfg,
		log:       cfg.logger,
		metrics:   m,
		st:        newState(),
		progress:  make(chan struct{}),
		rejected:  map[int64]error{},
		readerEnd: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			if r.cancel != nil {
				r.cancel()
			}
			r.closeClients()
			m.unregister(cfg.registerer)
		}
	}()

	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, cfg.kafkaOpts...)
	if r.adminCl, err = kgo.NewClient(base...); err != nil {
		return nil, fmt.Errorf("registry: admin client: %w", err)
	}
	r.admin = kadm.NewClient(r.adminCl)
	if err := r.ensureTopic(ctx); err != nil {
		return nil, err
	}
	start, err := r.startOffset(ctx)
	if err != nil {
		return nil, err
	}
	r.next = start

	// Take the writer role before reading: initializing the transactional
	// producer fences an older instance and aborts its open transaction, so
	// everything it committed is below the end offset read afterwards.
	r.writer, err = kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.TransactionalID(cfg.transactional),
		kgo.DefaultProduceTopic(cfg.topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}, cfg.kafkaOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("registry: writer client: %w", err)
	}
	if _, _, err := r.writer.ProducerID(ctx); err != nil {
		return nil, fmt.Errorf("registry: initializing transactional producer %q: %w", cfg.transactional, err)
	}

	r.reader, err = kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.topic: {0: kgo.NewOffset().At(start)}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(time.Second),
	}, cfg.kafkaOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("registry: reader client: %w", err)
	}
	readCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go r.readLoop(readCtx)

	if err := r.catchUp(ctx); err != nil {
		return nil, fmt.Errorf("registry: reading %s: %w", cfg.topic, err)
	}
	r.handler = r.routes()
	r.ready.Store(true)
	m.ready.Set(1)
	ok = true
	r.log.Info("schema registry ready", "topic", cfg.topic, "offset", r.offset(),
		"subjects", r.count(func(s *state) int { return len(s.subjects) }))
	return r, nil
}

// Handler returns the HTTP handler serving the Confluent REST API.
func (r *Registry) Handler() http.Handler { return r.handler }

// Ready reports whether the registry has read the store topic to its end
// and is not closed. A fenced instance stays ready: it still serves reads.
func (r *Registry) Ready() bool { return r.ready.Load() && !r.closed.Load() }

// Fenced reports whether a newer instance took over the writer role.
func (r *Registry) Fenced() bool { return r.fenced.Load() }

// Close stops reading, closes the Kafka clients and unregisters the
// metrics. Requests in flight finish with an error; it is idempotent.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		r.ready.Store(false)
		r.metrics.ready.Set(0)
		if r.cancel != nil {
			r.cancel()
		}
		// Wait for a write in progress so its transaction ends cleanly.
		r.writeMu.Lock()
		r.closeClients()
		r.writeMu.Unlock()
		if r.cancel != nil {
			<-r.readerEnd
		}
		r.metrics.unregister(r.cfg.registerer)
	})
}

func (r *Registry) closeClients() {
	for _, cl := range []*kgo.Client{r.writer, r.reader, r.adminCl} {
		if cl != nil {
			cl.Close()
		}
	}
}

func (r *Registry) ensureTopic(ctx context.Context) error {
	topics, err := r.admin.ListTopics(ctx, r.cfg.topic)
	if err != nil {
		return fmt.Errorf("registry: listing topic %s: %w", r.cfg.topic, err)
	}
	if td, ok := topics[r.cfg.topic]; ok && td.Err == nil {
		if n := len(td.Partitions); n != 1 {
			return fmt.Errorf("%w: %s has %d partitions", ErrTopicLayout, r.cfg.topic, n)
		}
		return nil
	}
	compact := "compact"
	resp, err := r.admin.CreateTopic(ctx, 1, r.cfg.replication,
		map[string]*string{"cleanup.policy": &compact}, r.cfg.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("registry: creating topic %s: %w", r.cfg.topic, err)
	}
	r.log.Info("created store topic", "topic", r.cfg.topic)
	return nil
}

func (r *Registry) startOffset(ctx context.Context) (int64, error) {
	return r.listOffset(ctx, r.admin.ListStartOffsets)
}

// endOffset is the last stable offset: the end of what read_committed
// readers can see.
func (r *Registry) endOffset(ctx context.Context) (int64, error) {
	return r.listOffset(ctx, r.admin.ListCommittedOffsets)
}

var errNoOffsets = errors.New("no offsets listed")

// listOffset lists one offset of partition 0, retrying while the topic is
// not yet known to the broker (just created) until ctx ends.
func (r *Registry) listOffset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
	backoff := 10 * time.Millisecond
	for {
		listed, err := list(ctx, r.cfg.topic)
		if err == nil {
			o, ok := listed.Lookup(r.cfg.topic, 0)
			switch {
			case !ok:
				err = fmt.Errorf("%w for %s[0]", errNoOffsets, r.cfg.topic)
			case o.Err != nil:
				err = o.Err
			default:
				return o.Offset, nil
			}
		}
		retriable := errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.LeaderNotAvailable) ||
			errors.Is(err, kerr.NotLeaderForPartition) || errors.Is(err, errNoOffsets)
		if !retriable || ctx.Err() != nil {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// readLoop applies the store topic to memory until ctx ends.
func (r *Registry) readLoop(ctx context.Context) {
	defer close(r.readerEnd)
	for {
		fetches := r.reader.PollFetches(ctx)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Error("reading store topic", "topic", t, "partition", p, "err", err)
			}
		})
		var recs []*kgo.Record
		fetches.EachRecord(func(rec *kgo.Record) { recs = append(recs, rec) })
		if len(recs) > 0 {
			r.applyRecords(recs)
		}
	}
}

func (r *Registry) applyRecords(recs []*kgo.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	advanced := false
	for _, rec := range recs {
		if rec.Offset < r.next {
			continue
		}
		if !rec.Attrs.IsControl() {
			if err := r.st.apply(rec.Key, rec.Value); err != nil {
				if errors.Is(err, ErrConflict) {
					r.rejected[rec.Offset] = err
					r.metrics.conflicts.Inc()
					r.log.Error("rejected conflicting store record", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
				} else {
					level := slog.LevelWarn
					if errors.Is(err, errForeignKeyType) {
						level = slog.LevelDebug
					}
					r.log.Log(context.Background(), level, "skipped store record",
						"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", err)
				}
			}
		}
		r.next = rec.Offset + 1
		advanced = true
	}
	if advanced {
		close(r.progress)
		r.progress = make(chan struct{})
		r.metrics.schemas.Set(float64(len(r.st.ids)))
		r.metrics.subjects.Set(float64(len(r.st.subjects)))
	}
}

// waitFor blocks until every record below offset is applied.
func (r *Registry) waitFor(ctx context.Context, offset int64) error {
	for {
		r.mu.RLock()
		done, ch := r.next >= offset, r.progress
		r.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.readerEnd:
			return ErrClosed
		case <-ch:
		}
	}
}

// catchUp waits until every record committed to the store topic so far is applied.
func (r *Registry) catchUp(ctx context.Context) error {
	end, err := r.endOffset(ctx)
	if err != nil {
		return err
	}
	return r.waitFor(ctx, end)
}

func (r *Registry) offset() int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.next
}

func (r *Registry) count(f func(*state) int) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return f(r.st)
}

// view runs f on the state under the read lock.
func (r *Registry) view(f func(st *state) error) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return f(r.st)
}

// plan is what a write computes from the caught-up state: the records to
// write (none for a no-op) and the answer once they are applied.
type plan struct {
	records []*kgo.Record
	result  any
}

// write runs one serialized write: catch up with the store topic, compute
// the records from the state, commit them in one Kafka transaction and wait
// until they are applied. A record rejected on apply (a conflicting write
// by another instance), a fenced producer or any Kafka error is answered
// with 50001 and never reported as done.
func (r *Registry) write(reqCtx context.Context, compute func(st *state) (*plan, error)) (any, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), r.cfg.writeTimeout)
	defer cancel()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	switch {
	case r.closed.Load():
		return nil, errStore(ErrClosed)
	case r.fenced.Load():
		return nil, errStore(ErrFenced)
	}
	if err := r.catchUp(ctx); err != nil {
		r.metrics.writes.WithLabelValues("failed").Inc()
		return nil, errStore(fmt.Errorf("catching up with %s: %w", r.cfg.topic, err))
	}
	var p *plan
	if err := r.view(func(st *state) (err error) { p, err = compute(st); return err }); err != nil {
		return nil, err
	}
	if len(p.records) == 0 {
		return p.result, nil
	}
	if r.beforeCommit != nil {
		r.beforeCommit()
	}
	offsets, err := r.commit(ctx, p.records)
	if err != nil {
		return nil, errStore(err)
	}
	if err := r.waitFor(ctx, offsets[len(offsets)-1]+1); err != nil {
		r.metrics.writes.WithLabelValues("failed").Inc()
		return nil, errStore(fmt.Errorf("reading back the written records: %w", err))
	}
	r.mu.Lock()
	var conflict error
	for _, o := range offsets {
		if err, ok := r.rejected[o]; ok {
			conflict = errors.Join(conflict, err)
			delete(r.rejected, o)
		}
	}
	r.mu.Unlock()
	if conflict != nil {
		r.metrics.writes.WithLabelValues("conflict").Inc()
		return nil, errStore(conflict)
	}
	r.metrics.writes.WithLabelValues("committed").Inc()
	return p.result, nil
}

// commit writes records to partition 0 in one transaction and returns
// their offsets.
func (r *Registry) commit(ctx context.Context, records []*kgo.Record) ([]int64, error) {
	fail := func(err error) ([]int64, error) {
		outcome := "failed"
		if errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
			outcome = "fenced"
			if !r.fenced.Swap(true) {
				r.log.Error("another registry instance took over the writer role; refusing writes from now on",
					"transactional_id", r.cfg.transactional, "err", err)
			}
			err = fmt.Errorf("%w: %w", ErrFenced, err)
		}
		r.metrics.writes.WithLabelValues(outcome).Inc()
		return nil, err
	}
	if err := r.writer.BeginTransaction(); err != nil {
		return fail(fmt.Errorf("beginning transaction: %w", err))
	}
	for _, rec := range records {
		rec.Topic = r.cfg.topic
		rec.Partition = 0
	}
	if err := r.writer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		abortCtx, cancel := context.WithTimeout(context.Background(), r.cfg.writeTimeout)
		defer cancel()
		if aerr := r.writer.EndTransaction(abortCtx, kgo.TryAbort); aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting: %w", aerr))
		}
		return fail(fmt.Errorf("producing: %w", err))
	}
	if err := r.writer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		abortCtx, cancel := context.WithTimeout(context.Background(), r.cfg.writeTimeout)
		defer cancel()
		if aerr := r.writer.EndTransaction(abortCtx, kgo.TryAbort); aerr != nil {
			err = errors.Join(err, fmt.Errorf("aborting: %w", aerr))
		}
		return fail(fmt.Errorf("committing: %w", err))
	}
	offsets := make([]int64, len(records))
	for i, rec := range records {
		offsets[i] = rec.Offset
	}
	return offsets, nil
}

// schemaRecord builds the SCHEMA record for sv.
func schemaRecord(sv schemaValue) *kgo.Record {
	return &kgo.Record{Key: schemaKeyBytes(sv.Subject, sv.Version), Value: valueBytes(sv)}
}

func tombstone(key []byte) *kgo.Record { return &kgo.Record{Key: key} }
