package eventstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/groupleave"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// Defaults of Config.
const (
	DefaultGroup          = "pyrite-ingest"
	DefaultDedupeWindow   = 24 * time.Hour
	DefaultDedupeMax      = 200_000
	DefaultSessionTimeout = 10 * time.Second
	DefaultMaxTransaction = 1000
	DefaultCommitTimeout  = 10 * time.Second
)

// Config holds the settings of a Store. Topics and Advertise are required; zero values of the
// others take the defaults above.
type Config struct {
	// Group is the consumer group the instances join to share the partitions of Topics. The
	// writer of partition p of topic t uses the transactional id "<Group>-<t>-<p>", the same on
	// every instance: that is what fences a writer that lost its partition.
	Group string
	// Advertise is the base URL (http://host:port) other instances forward this one's
	// requests to. It is published through group membership.
	Advertise string
	// Topics are the raw topics the store owns partitions of.
	Topics []string
	// DedupeWindow is how long an event id is remembered after its write (by the record's
	// timestamp); DedupeMax bounds the ids remembered per partition (the oldest go first),
	// each about 200 bytes of memory. A retry of an id forgotten writes again.
	DedupeWindow time.Duration
	DedupeMax    int
	// SessionTimeout is the group session timeout: how long a dead instance keeps its
	// partitions (they answer 503 meanwhile). The broker bounds it (Kafka's default minimum is
	// 6s).
	SessionTimeout time.Duration
	// InstanceID makes the instance a static group member: a restart after a crash, within
	// the session timeout, gets its partitions back without a rebalance (Close leaves the
	// group, so a clean stop hands them on at once). Optional.
	InstanceID string
	// MaxTransaction bounds the events one partition transaction carries; concurrent appends
	// to a partition share a transaction up to it.
	MaxTransaction int
	// CommitTimeout bounds one transaction from produce to commit; past it the appends in it
	// answer ErrUnavailable.
	CommitTimeout time.Duration
	// Logger receives ownership changes and writer failures; nil discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() error {
	var errs []error
	c.Group = cmp.Or(c.Group, DefaultGroup)
	c.DedupeWindow = cmp.Or(c.DedupeWindow, DefaultDedupeWindow)
	c.DedupeMax = cmp.Or(c.DedupeMax, DefaultDedupeMax)
	c.SessionTimeout = cmp.Or(c.SessionTimeout, DefaultSessionTimeout)
	c.MaxTransaction = cmp.Or(c.MaxTransaction, DefaultMaxTransaction)
	c.CommitTimeout = cmp.Or(c.CommitTimeout, DefaultCommitTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("no topics"))
	}
	if u, err := url.Parse(c.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("advertised address %q is not an http(s) URL", c.Advertise))
	}
	if c.DedupeWindow < 0 || c.DedupeMax < 0 || c.MaxTransaction < 0 || c.CommitTimeout < 0 || c.SessionTimeout < 0 {
		errs = append(errs, errors.New("negative durations or counts"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return nil
}

// EventTyper names the event type of a schema subject, for raw records written without a
// ce_type header. *topology.Topology satisfies it.
type EventTyper interface {
	EventType(subject string) (string, error)
}

// Store is one instance's share of the event store: it owns the partitions of the raw topics
// its group gives it, appends to them, and reads streams from them. Create it with New;
// it is safe for concurrent use.
type Store struct {
	cfg    Config
	codec  *codec.Codec
	up     *upcast.Upcaster
	types  EventTyper
	m      *metrics
	now    func() time.Time
	base   []kgo.Opt
	group  *kgo.Client
	leaver *groupleave.Leaver // bounds group's leave at Close
	reader *kgo.Client
	fetch  *fetcher // catch-up and reads: fetches that never wait
	tailer *kgo.Client
	tail   *fetcher // the tail's long polls, on connections of their own
	tailed chan struct{}
	http   *http.Client // forwards to other instances

	ctx    context.Context // the store's life; canceled by Close
	cancel context.CancelFunc

	table  atomic.Pointer[table]
	joined chan struct{} // closed at the first assignment
	once   sync.Once

	mu     sync.Mutex // guards parts and closed
	parts  map[topicPartition]*partition
	closed bool
}

type topicPartition struct {
	topic string
	part  int32
}

// New starts a Store: it joins cfg.Group over cfg.Topics and takes its partitions as they are
// assigned. c and up decode and upcast what Read returns; types names the event type of
// records without a ce_type header. reg receives its metrics. opts (seed brokers, TLS, ...)
// apply to every Kafka client the store makes.
func New(cfg Config, c *codec.Codec, up *upcast.Upcaster, types EventTyper, reg prometheus.Registerer, opts ...kgo.Opt) (*Store, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Store{
		cfg: cfg, codec: c, up: up, types: types, m: newMetrics(reg), now: time.Now,
		base: opts, joined: make(chan struct{}), parts: map[topicPartition]*partition{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.http = &http.Client{
		Timeout:   cfg.CommitTimeout + 5*time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
	}
	reader, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("eventstore reader: %w", err)
	}
	s.reader = reader
	s.fetch = newFetcher(reader)
	tailer, err := kgo.NewClient(opts...)
	if err != nil {
		reader.Close()
		return nil, fmt.Errorf("eventstore tail: %w", err)
	}
	s.tailer, s.tail, s.tailed = tailer, newFetcher(tailer), make(chan struct{})
	bal := &balancer{addr: cfg.Advertise, onTable: func(t *table) { s.table.Store(t) }}
	s.leaver = groupleave.New()
	gopts := append(slices.Clip(opts),
		s.leaver.Opt(),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.Balancers(bal),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(max(cfg.SessionTimeout/5, 100*time.Millisecond)),
		kgo.RebalanceTimeout(max(cfg.SessionTimeout, 10*time.Second)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(s.onAssigned),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
	)
	if cfg.InstanceID != "" {
		gopts = append(gopts, kgo.InstanceID(cfg.InstanceID))
	}
	group, err := kgo.NewClient(gopts...)
	if err != nil {
		reader.Close()
		tailer.Close()
		return nil, fmt.Errorf("eventstore group member: %w", err)
	}
	// The group is only for ownership: the partitions are read with plain fetches.
	group.PauseFetchTopics(cfg.Topics...)
	s.group = group
	go s.tailLoop()
	return s, nil
}

// tailLoop keeps the indexes of the ready partitions up with records written by anyone but
// their writer (sagas producing straight to a raw topic): one long-polling fetch per leader
// for all of them, until the store closes.
func (s *Store) tailLoop() {
	defer close(s.tailed)
	for s.ctx.Err() == nil {
		s.mu.Lock()
		var parts []*partition
		for _, p := range s.parts {
			parts = append(parts, p)
		}
		s.mu.Unlock()
		byLeader := map[int32][]want{}
		owner := map[topicPartition]*partition{}
		for _, p := range parts {
			p.mu.Lock()
			on, next := p.tailing, p.next
			p.mu.Unlock()
			if !on {
				continue
			}
			_, leader, err := s.tail.leader(s.ctx, p.topic, p.part)
			if err != nil {
				continue
			}
			byLeader[leader] = append(byLeader[leader], want{p.topic, p.part, next})
			owner[topicPartition{p.topic, p.part}] = p
		}
		if len(byLeader) == 0 {
			sleep(s.ctx, 50*time.Millisecond)
			continue
		}
		var wg sync.WaitGroup
		var got atomic.Bool
		for leader, ws := range byLeader {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := s.tail.fetchMany(s.ctx, leader, ws, tailWait, fetchBytes)
				if err != nil {
					if s.ctx.Err() == nil {
						s.cfg.Logger.Debug("eventstore tail fetch", "leader", leader, "err", err)
						sleep(s.ctx, retryBackoff)
					}
					return
				}
				for _, g := range res {
					p := owner[topicPartition{g.topic, g.part}]
					if g.err != nil {
						if !p.outOfRange(g.err) {
							s.cfg.Logger.Debug("eventstore tail fetch", "topic", g.topic, "partition", g.part, "err", g.err)
						}
						continue
					}
					p.mu.Lock()
					on := p.tailing
					p.mu.Unlock()
					if on {
						p.applyFetched(g.fetched)
					}
					if len(g.records) > 0 {
						got.Store(true)
					}
				}
			}()
		}
		wg.Wait()
		if got.Load() {
			// The long poll answers at the first commit after it was sent, which is mostly
			// the store's own writers' (their transactions are applied by readPast): reading
			// them again decoded every appended record twice. Waiting tailPause before the next
			// poll lets the writers move next past their records first, so that the tail reads
			// what others wrote, up to tailPause later.
			sleep(s.ctx, tailPause)
		}
	}
}

// Close leaves the group (so the partitions move at once rather than after the session
// timeout), lets transactions in flight finish, stops the partition writers and closes the
// clients. Appends after Close fail with ErrClosed. A JoinGroup the broker holds (a member
// that does not rejoin) does not keep Close waiting: past groupleave.DefaultTimeout the group
// client leaves without it, and the group drops this member at its session timeout.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	// revokes (waiting up to CommitTimeout for transactions in flight) and leaves
	if err := s.leaver.Close(s.group, groupleave.DefaultTimeout); err != nil {
		s.cfg.Logger.Warn("eventstore: leaving the group took too long; left without it", "group", s.cfg.Group, "err", err)
	}
	s.cancel()
	s.mu.Lock()
	parts := s.parts
	s.parts = map[topicPartition]*partition{}
	s.mu.Unlock()
	for _, p := range parts {
		p.stop()
	}
	<-s.tailed
	s.tailer.Close()
	s.reader.Close()
	s.http.CloseIdleConnections()
}

// Joined is closed once the instance has been given its first assignment.
func (s *Store) Joined() <-chan struct{} { return s.joined }

// Ready reports whether the instance has joined its group (before that it cannot tell where
// any request belongs) and has caught up every partition it owns (ErrNotReady while it is
// still fencing or rebuilding some).
func (s *Store) Ready(context.Context) error {
	if s.table.Load() == nil {
		return ErrNoAssignment
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	acquiring := 0
	for _, p := range s.parts {
		p.mu.Lock()
		if p.owned && !p.ready {
			acquiring++
		}
		p.mu.Unlock()
	}
	if acquiring > 0 {
		return fmt.Errorf("%w: %d owned partitions are being fenced and rebuilt", ErrNotReady, acquiring)
	}
	return nil
}

// Self is the advertised address of this instance.
func (s *Store) Self() string { return s.cfg.Advertise }

// Route says where the events of an aggregate (its key) on a raw topic are written.
type Route struct {
	Topic     string
	Partition int32
	// Local: this instance owns the partition in the current generation.
	Local bool
	// Ready: Local, and the previous writer is fenced and the index caught up.
	Ready bool
	// Owner is the owner's advertised address per the latest assignment ("" when unknown);
	// it may be this instance's own.
	Owner string
}

// Route returns the route of key on topic. Errors: ErrUnknownTopic, ErrNoAssignment.
func (s *Store) Route(topic string, key []byte) (Route, error) {
	part, err := s.PartitionOf(topic, key)
	switch {
	case errors.Is(err, ErrUnknownTopic):
		return Route{}, err
	case err != nil:
		return Route{Topic: topic, Partition: part}, err
	}
	t := s.table.Load()
	r := Route{Topic: topic, Partition: part}
	r.Owner = t.owner(topic, r.Partition)
	if p := s.partition(topic, r.Partition); p != nil {
		p.mu.Lock()
		r.Local, r.Ready = p.owned, p.owned && p.ready
		p.mu.Unlock()
	}
	return r, nil
}

// PartitionOf returns the partition of key on topic: Route's Partition without the owner,
// for a batch whose first event was routed (it takes no lock). Errors as Route's, with -1
// for ErrNoAssignment.
func (s *Store) PartitionOf(topic string, key []byte) (int32, error) {
	if !slices.Contains(s.cfg.Topics, topic) {
		return 0, fmt.Errorf("%w: %s", ErrUnknownTopic, topic)
	}
	n := s.table.Load().partitions(topic)
	if n == 0 {
		return -1, fmt.Errorf("%w: %s", ErrNoAssignment, topic)
	}
	return Partition(key, n), nil
}

func (s *Store) partition(topic string, part int32) *partition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parts[topicPartition{topic, part}]
}

// IDs returns the maker of ids for events appended without one to route's partition (see
// IDs), nil when this instance does not hold the partition (a nil *IDs makes ids too).
func (s *Store) IDs(route Route) *IDs {
	if p := s.partition(route.Topic, route.Partition); p != nil {
		return p.ids
	}
	return nil
}

// local returns the partition of key on topic if this instance owns it and it is ready.
func (s *Store) local(topic string, key []byte) (*partition, error) {
	if s.ctx.Err() != nil {
		return nil, ErrClosed
	}
	r, err := s.Route(topic, key)
	if err != nil {
		return nil, err
	}
	p := s.partition(topic, r.Partition)
	switch {
	case !r.Local || p == nil:
		return nil, fmt.Errorf("%w: %s[%d] belongs to %q", ErrNotOwner, topic, r.Partition, r.Owner)
	case !r.Ready:
		return nil, fmt.Errorf("%w: %s[%d] is being fenced and rebuilt", ErrNotReady, topic, r.Partition)
	}
	return p, nil
}

// Pending is one event to append.
type Pending struct {
	// Record has the event's Topic, Key (the aggregate id), Value and headers; the store sets
	// its Partition and appends the ce_aggregateversion header.
	Record *kgo.Record
	// ID is the event id (the ce_id header): an id written before within the dedupe window
	// makes the append a duplicate. "" opts out of deduplication.
	ID string
	// Type is the event type (the ce_type header).
	Type string
	// Expected is the version the stream must be at just before this event; -1 for any.
	Expected int64
	// NewID says ID was made for this append (ingest's ids for events posted without one), so
	// it cannot have been written before: the id check skips it (a lookup in a map of up to
	// DedupeMax ids per event was a tenth of a batch's cost). It is still remembered, so a
	// retry that quotes it is deduplicated; made by the partition's IDs (Store.IDs), it is
	// remembered at a fraction of the cost.
	NewID bool
}

// Appended is one appended event: where it is and its aggregate version. For a duplicate it
// is the first write's.
type Appended struct {
	ID          string
	Type        string
	AggregateID string
	Topic       string
	Partition   int32
	Offset      int64
	Version     int64
	SchemaID    int
	// Duplicate: nothing was written now; this is the result of the first write of the id.
	Duplicate bool
}

// Append writes events, all of one partition (ErrSpansPartitions otherwise), as one Kafka
// transaction of the partition's writer, giving each the next version of its aggregate.
//
// Either every event is written, or none: a *ConflictError when an expected version does not
// match (Current says the stream's version), an *IDConflictError when an id was written for
// another event or the append mixes written and new ids; when every id was written before,
// the first write's results come back with Duplicate set and nothing is written.
// ErrNotOwner, ErrNotReady and ErrNoAssignment mean the partition is elsewhere or moving;
// ErrUnavailable that the transaction did not commit, or that its outcome is unknown (a
// retry with the same ids is then answered from the dedupe window if it did). A canceled ctx
// leaves the outcome unknown in the same way.
func (s *Store) Append(ctx context.Context, events []Pending) ([]Appended, error) {
	if len(events) == 0 {
		return nil, nil
	}
	first := events[0].Record
	p, err := s.local(first.Topic, first.Key)
	if err != nil {
		return nil, err
	}
	for i, ev := range events[1:] {
		if ev.Record.Topic != first.Topic || Partition(ev.Record.Key, s.table.Load().partitions(first.Topic)) != p.part {
			return nil, fmt.Errorf("%w: event %d (%s) is not on %s[%d]", ErrSpansPartitions, i+1, ev.Record.Key, first.Topic, p.part)
		}
	}
	req := &appendReq{ctx: ctx, events: events, done: make(chan appendResult, 1)}
	select {
	case p.queue <- req:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
	select {
	case res := <-req.done:
		return res.appended, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: outcome unknown: %w", ErrUnavailable, ctx.Err())
	case <-s.ctx.Done():
		return nil, ErrClosed
	}
}

// Version returns the version of an aggregate's stream (0 when it has no events). The
// partition must be local and ready (ErrNotOwner, ErrNotReady otherwise).
func (s *Store) Version(topic string, aggregateID string) (int64, error) {
	p, err := s.local(topic, []byte(aggregateID))
	if err != nil {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idx.version(aggregateID), nil
}

// PartitionStatus describes one partition as this instance sees it.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Owner     string `json:"owner"`
	Local     bool   `json:"local"`
	Ready     bool   `json:"ready"`
	// The index, for local partitions: the offset read up to, streams, events, ids remembered.
	Next    int64 `json:"next,omitempty"`
	Streams int   `json:"streams,omitempty"`
	Events  int   `json:"events,omitempty"`
	IDs     int   `json:"ids,omitempty"`
}

// Status is the ownership of every partition as this instance last heard it.
type Status struct {
	Group      string            `json:"group"`
	Generation int32             `json:"generation"`
	Self       string            `json:"self"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Status reports the latest assignment and this instance's share of it.
func (s *Store) Status() Status {
	st := Status{Group: s.cfg.Group, Self: s.cfg.Advertise, Generation: -1, Partitions: []PartitionStatus{}}
	t := s.table.Load()
	if t != nil {
		st.Generation = t.Generation
	}
	for _, topic := range s.cfg.Topics {
		for part := range t.partitions(topic) {
			ps := PartitionStatus{Topic: topic, Partition: part, Owner: t.owner(topic, part)}
			if p := s.partition(topic, part); p != nil {
				p.mu.Lock()
				ps.Local, ps.Ready = p.owned, p.owned && p.ready
				if p.owned {
					ps.Next, ps.Streams, ps.Events, ps.IDs = p.next, len(p.idx.streams), p.idx.events, p.idx.remembered()
				}
				p.mu.Unlock()
			}
			st.Partitions = append(st.Partitions, ps)
		}
	}
	return st
}

// onAssigned takes the partitions of a new generation. A partition held in the generation
// just before stays as it is (nobody else can have written it in between); any other is
// acquired: a new transactional writer fences whoever wrote it last, and the index catches up
// to the last stable offset before the partition answers. Partitions no longer assigned are
// stopped and their indexes dropped.
func (s *Store) onAssigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	_, gen := cl.GroupMetadata()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	keep := map[topicPartition]bool{}
	var start, restart []*partition
	for topic, ps := range assigned {
		for _, part := range ps {
			tp := topicPartition{topic, part}
			keep[tp] = true
			p := s.parts[tp]
			switch {
			case p == nil:
				p = newPartition(s, topic, part)
				s.parts[tp] = p
				start = append(start, p)
			default:
				p.mu.Lock()
				fresh := p.heldGen >= 0 && p.heldGen == gen-1 && p.running && p.ready
				p.mu.Unlock()
				if !fresh {
					restart = append(restart, p)
				}
			}
			p.mu.Lock()
			p.owned, p.heldGen = true, gen
			p.mu.Unlock()
		}
	}
	var drop []*partition
	for tp, p := range s.parts {
		if !keep[tp] {
			drop = append(drop, p)
			delete(s.parts, tp)
		}
	}
	s.mu.Unlock()
	for _, p := range drop {
		p.stop()
	}
	for _, p := range restart {
		p.stop()
		p.start()
	}
	for _, p := range start {
		p.start()
	}
	s.m.owned.Set(float64(len(keep)))
	s.cfg.Logger.Info("eventstore assignment", "group", s.cfg.Group, "generation", gen,
		"partitions", describe(assigned), "acquiring", len(start)+len(restart), "kept", len(keep)-len(start)-len(restart))
	s.once.Do(func() { close(s.joined) })
}

// onRevoked (eager: every partition, before each rebalance) stops new appends and waits for
// transactions in flight, so that the next owner's fence does not abort them. The writers and
// indexes stay, for the partitions this instance gets back in the next generation.
func (s *Store) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.disown(revoked, false)
}

// onLost (the member was fenced out of the group): as revoked, but the partitions must be
// acquired again even if they come back in the next generation this member sees.
func (s *Store) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.disown(lost, true)
}

func (s *Store) disown(ps map[string][]int32, lost bool) {
	var held []*partition
	for topic, parts := range ps {
		for _, part := range parts {
			if p := s.partition(topic, part); p != nil {
				p.mu.Lock()
				p.owned = false
				if lost {
					p.heldGen = -1
				}
				p.mu.Unlock()
				held = append(held, p)
			}
		}
	}
	deadline := time.After(s.cfg.CommitTimeout)
	for _, p := range held {
		select {
		case p.txn <- struct{}{}: // the writer is between transactions
			<-p.txn
		case <-deadline:
		}
	}
	s.m.owned.Set(0)
}

func describe(m map[string][]int32) string {
	var parts []string
	for _, t := range slices.Sorted(mapKeys(m)) {
		ps := slices.Clone(m[t])
		slices.Sort(ps)
		parts = append(parts, fmt.Sprintf("%s%v", t, ps))
	}
	return strings.Join(parts, " ")
}
