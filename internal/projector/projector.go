// Package projector runs Pyrite's projections: named read models, each fed
// by its own consumer group through a bus.Runner, stored in SQLite or
// PostgreSQL, and served by their query routes (DESIGN.md section 5). The
// read models are the domain modules' (ReadModel): the projector knows none.
//
// Guarantees: effectively once. A batch of events and the Kafka positions
// after it commit in one database transaction, and on assignment the runner
// starts from the stored positions, so a crash never double-applies or skips
// an event. Per-aggregate order holds: one worker per partition. Query routes
// may read through an LRU cache (Cache) evicted by a bus subscription to the
// applied events.
//
// Run also records, before any group consumes, the reader schema each group decodes
// each type with on pyrite.readers (internal/readers), and serves readAll
// (GET /v1/events, ReadAll) from the events topics.
//
// GET /v1/stream (Stream) pushes every applied event with the read model after
// it to server-sent-event clients once its batch committed; a client resumes
// from the Kafka positions in its Last-Event-ID without a gap or a repeat,
// and a slow client is dropped rather than slowing anyone down. Run also
// serves the live board (package board) at "/".
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// Projection is one read model fed by one consumer group.
type Projection struct {
	// Name is the projection's name: its positions are stored under it, and Run feeds it by
	// the topology group of the same name.
	Name  string
	Group string
	// Aggregates name the aggregates whose events topics feed it, in order; Run sets Topics
	// from them when Topics is empty.
	Aggregates []string
	Topics     []string
	// Stream makes GET /v1/stream serve the projection's applied events with their read
	// models (Model, Load). At most one projection of a projector streams.
	Stream bool
	// Apply folds one event into the read model inside the batch's
	// transaction.
	Apply func(tx *store.Tx, ev store.Event) error
	// Model, when set, returns inside the batch's transaction the read
	// model of ev's aggregate after Apply applied ev; the stream sends it
	// with the event.
	Model func(tx *store.Tx, ev store.Event) any
	// Load, when set, returns the read model of an aggregate as stored and
	// the aggregate version it holds, for stream clients that resume.
	Load func(ctx context.Context, st *store.Store, aggregateID string) (model any, version int64, found bool, err error)
	// Rebuild, when set, is how pyrite projection rebuild rebuilds the read model beside the
	// live one (store.StartRebuild); nil: it cannot be rebuilt.
	Rebuild *store.Rebuildable
}

// Projector applies projections to a store and answers queries.
type Projector struct {
	store  *store.Store
	adm    *kadm.Client // for end offsets (lag)
	cache  *Cache
	events *bus.Bus // applied events, for cache invalidation and live subscribers
	stream *Stream  // GET /v1/stream, when attached
	log    *slog.Logger

	mu     sync.Mutex
	states map[string]string // projection -> "starting", "running", "stopped", "failed: ..."
	projs  []Projection

	latency *prometheus.HistogramVec
	gens    map[string]int64 // projection -> rebuild generation the cache holds rows of
}

// New returns a Projector on st. adm reads end offsets for lag; cacheSize
// bounds the read cache (0 disables it); reg, when set, receives
// pyrite_projection_latency_seconds.
func New(st *store.Store, adm *kadm.Client, cacheSize int, log *slog.Logger, reg prometheus.Registerer) *Projector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Projector{
		store: st, adm: adm, cache: NewCache(cacheSize), log: log,
		// No debug log: nothing reads it, and it copied every applied event.
		events: bus.New(bus.WithName("projector-applied"), bus.WithLogSize(0)),
		states: map[string]string{},
		gens:   map[string]int64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pyrite_projection_latency_seconds",
			Help:    "End-to-end latency per projection: from the event's ce_time to its batch committing in the read model.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"projection"}),
	}
	if reg != nil {
		reg.MustRegister(p.latency)
	}
	// The seed's cache invalidation: a subscription to the applied events.
	_, _ = p.events.On("*", func(_ context.Context, ev *bus.Event) error {
		p.cache.evict(ev.Type, ev.AggregateID)
		return nil
	}, bus.Options{Name: "cache-invalidation", Priority: 100})
	return p
}

// Cache returns the read cache the query routes may read through.
func (p *Projector) Cache() *Cache { return p.cache }

// Bus returns the bus on which every applied event is published after its
// batch committed.
func (p *Projector) Bus() *bus.Bus { return p.events }

// AttachStream makes s serve GET /v1/stream with the events Batch applies.
// Call it before the runner starts and before Handler.
func (p *Projector) AttachStream(s *Stream) { p.stream = s }

// Batch returns the runner's batch handler for proj: convert, apply in one
// transaction with the positions, then publish the applied events (to the
// bus and, with their read models, to the stream).
func (p *Projector) Batch(proj Projection) bus.BatchHandler {
	return func(ctx context.Context, evs []*bus.Event) error {
		batch := make([]store.Event, len(evs))
		for i, ev := range evs {
			batch[i] = storeEvent(ev)
		}
		apply := proj.Apply
		var applied []Applied
		streamed := p.stream != nil && p.stream.name == proj.Name
		if streamed {
			next := 0 // apply sees batch in order, skipping events applied before
			apply = func(tx *store.Tx, ev store.Event) error {
				if err := proj.Apply(tx, ev); err != nil {
					return err
				}
				for next < len(batch) && (batch[next].Partition != ev.Partition || batch[next].Offset != ev.Offset || batch[next].Topic != ev.Topic) {
					next++
				}
				if next < len(batch) {
					a := Applied{Event: evs[next]}
					if proj.Model != nil {
						a.Model = proj.Model(tx, ev)
					}
					applied = append(applied, a)
				}
				return nil
			}
		}
		if err := p.store.ApplyBatch(ctx, proj.Name, batch, apply); err != nil {
			var ae *store.ApplyError
			if errors.As(err, &ae) && ae.Permanent() {
				return bus.Permanent(err)
			}
			return err
		}
		if streamed {
			p.stream.Publish(applied)
		}
		now := time.Now()
		lat := p.latency.WithLabelValues(proj.Name)
		for _, ev := range evs {
			if !ev.Time.IsZero() {
				lat.Observe(max(now.Sub(ev.Time), 0).Seconds())
			}
			if _, err := p.events.Publish(ctx, ev); err != nil {
				p.log.Warn("publishing an applied event", "projection", proj.Name, "err", err)
			}
		}
		return nil
	}
}

// Positions returns the runner's Positions function for proj: start every
// partition after the last event the store applied, and a partition the
// store never applied from its first record. The store is the only source
// of truth: offsets the group may have committed in Kafka are ignored, so a
// new or emptied store rebuilds the read model from the beginning.
func (p *Projector) Positions(proj Projection) func(ctx context.Context, topic string, partition int32) (int64, bool, error) {
	return func(ctx context.Context, topic string, partition int32) (int64, bool, error) {
		pos, err := p.store.Positions(ctx, proj.Name)
		if err != nil {
			return 0, false, err
		}
		// Offset 0 below the log start resets to the start.
		return pos[store.TopicPartition{Topic: topic, Partition: partition}], true, nil
	}
}

// Register declares proj (for /v1/projections) before it runs, and notes
// the rebuild generation of its read model for WatchGenerations.
func (p *Projector) Register(proj Projection) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gen, err := p.store.Generation(ctx, proj.Name)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.projs = append(p.projs, proj)
	p.states[proj.Name] = "starting"
	if err == nil {
		p.gens[proj.Name] = gen
	}
}

// SetState records what a projection is doing.
func (p *Projector) SetState(name, state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.states[name] = state
}

func storeEvent(ev *bus.Event) store.Event {
	se := store.Event{
		ID: ev.ID, Type: ev.Type, AggregateID: ev.AggregateID, AggregateVersion: ev.AggregateVersion,
		Time: ev.Time, Data: ev.Data,
	}
	if ev.Origin != nil {
		se.Topic, se.Partition, se.Offset = ev.Origin.Topic, ev.Origin.Partition, ev.Origin.Offset
	}
	return se
}

// PartitionStatus is one partition of a projection in /v1/projections.
// Lag counts offsets, as Kafka's tools do: after records written in a
// transaction (the upcaster's), the commit marker takes an offset the
// projection never applies, so a caught-up partition can show a lag of 1.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Position  int64  `json:"position"` // next offset to apply
	End       int64  `json:"end"`      // log end offset
	Lag       int64  `json:"lag"`
}

// Status is one projection in /v1/projections.
type Status struct {
	Name       string            `json:"name"`
	Group      string            `json:"group"`
	State      string            `json:"state"`
	Lag        int64             `json:"lag"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Statuses reports every registered projection's positions and lag.
func (p *Projector) Statuses(ctx context.Context) ([]Status, error) {
	p.mu.Lock()
	projs := append([]Projection(nil), p.projs...)
	states := make(map[string]string, len(p.states))
	for k, v := range p.states {
		states[k] = v
	}
	p.mu.Unlock()
	out := make([]Status, 0, len(projs))
	for _, proj := range projs {
		pos, err := p.store.Positions(ctx, proj.Name)
		if err != nil {
			return nil, fmt.Errorf("positions of %s: %w", proj.Name, err)
		}
		st := Status{Name: proj.Name, Group: proj.Group, State: states[proj.Name], Partitions: []PartitionStatus{}}
		ends, err := p.adm.ListEndOffsets(ctx, proj.Topics...)
		if err != nil {
			return nil, fmt.Errorf("end offsets of %v: %w", proj.Topics, err)
		}
		ends.Each(func(o kadm.ListedOffset) {
			ps := PartitionStatus{Topic: o.Topic, Partition: o.Partition, End: o.Offset}
			ps.Position = pos[store.TopicPartition{Topic: o.Topic, Partition: o.Partition}]
			ps.Lag = max(ps.End-ps.Position, 0)
			st.Lag += ps.Lag
			st.Partitions = append(st.Partitions, ps)
		})
		sortPartitions(st.Partitions)
		out = append(out, st)
	}
	return out, nil
}

// WatchGenerations drops the read cache whenever a rebuild of a registered
// projection is swapped in (pyrite projection rebuild, possibly from another
// process), checking every interval until ctx ends.
func (p *Projector) WatchGenerations(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		projs := append([]Projection(nil), p.projs...)
		p.mu.Unlock()
		for _, proj := range projs {
			gen, err := p.store.Generation(ctx, proj.Name)
			if err != nil {
				continue // the next tick tries again
			}
			p.mu.Lock()
			old, ok := p.gens[proj.Name]
			p.gens[proj.Name] = gen
			p.mu.Unlock()
			if ok && old != gen {
				p.log.Info("read model rebuilt; dropping the read cache", "projection", proj.Name, "generation", gen)
				p.cache.clear()
			}
		}
	}
}
