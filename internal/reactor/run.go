package reactor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Spec declares a saga or process manager of a domain module, run beside the projection as
// its own consumer group (a topology group of the same name, with its DLQ and retry topics).
type Spec struct {
	// Group is the consumer group and topology group, e.g. "deployment".
	Group string
	// Aggregates name the aggregates whose events topics it consumes, in order.
	Aggregates []string
	// New builds it on the projector's shared dependencies, checking its configuration; the
	// run it returns consumes topics (the aggregates' events topics) until ctx is done.
	New func(d Deps) (run func(ctx context.Context, topics []string, retry Retry) error, err error)
}

// Retry is how a group retries a failing event: MaxAttempts deliveries in all (counting the
// first), the first redelivery after Delay, doubling up to MaxDelay. Zero values take the
// runner's defaults (5, 1s, 1m).
type Retry struct {
	MaxAttempts int
	Delay       time.Duration
	MaxDelay    time.Duration
}

// Deps are what the reactors, sagas and process managers of one program share.
type Deps struct {
	Store    *store.Store
	Topology *topology.Topology
	Decoder  bus.Decoder
	Emitter  *Emitter
	// Producer writes emitted events (an idempotent producer).
	Producer Producer
	// Appender, when set, is how sagas and process managers write their events: appended
	// through the event store (each gets its aggregate version; a repeated ce_id is a
	// duplicate). Nil: they are produced through Producer as raw records.
	Appender Appender
	// Replays, when set, suppresses events below replay marks.
	Replays *Replays
	Metrics *Metrics
	// RunnerMetrics counts the runners' records (shared with the projections).
	RunnerMetrics *bus.Metrics
	Logger        *slog.Logger
	// KafkaOpts are the runners' client options: at least kgo.SeedBrokers.
	KafkaOpts []kgo.Opt
}

// Log returns the logger, never nil.
func (d Deps) Log() *slog.Logger {
	if d.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Logger
}

// BusRunner returns the runner of group (declared in the topology) that feeds b the events
// of topics: at least once, failures retried through the group's retry topic and
// dead-lettered after retry.MaxAttempts. It adds to b the middleware that drops events
// below the group's replay marks.
func (d Deps) BusRunner(group string, topics []string, b *bus.Bus, retry Retry) (*bus.Runner, error) {
	g, err := d.Topology.Group(group)
	if err != nil {
		return nil, fmt.Errorf("reactor: %w", err)
	}
	if d.Replays != nil {
		// A filter, not a middleware that may change types: the runner still skips decoding
		// the types no handler of b matches (the integration group handles a few types of
		// topics full of others).
		b.UseFilter(d.Replays.Keep(group))
	}
	cfg := bus.RunnerConfig{
		Group: g.Name, Topics: topics, DLQTopic: g.DLQTopic(), Decoder: d.Decoder, Bus: b,
		MaxAttempts: retry.MaxAttempts, RetryDelay: retry.Delay, MaxRetryDelay: retry.MaxDelay,
		Metrics: d.RunnerMetrics, Logger: d.Log(),
	}
	if g.Retry {
		cfg.RetryTopic = g.RetryTopic()
	}
	return bus.NewRunner(cfg, d.KafkaOpts...)
}

// BatchRunner returns the runner of group that feeds s the events of topics, in order per
// partition, starting where the store says s stopped. A transient failure retries the batch
// in place after a backoff (retry.Delay doubling to retry.MaxDelay); a permanent one sends
// the event to the group's dead-letter topic.
func (d Deps) BatchRunner(group string, topics []string, s *Stateful, retry Retry) (*bus.Runner, error) {
	g, err := d.Topology.Group(group)
	if err != nil {
		return nil, fmt.Errorf("reactor: %w", err)
	}
	cfg := bus.RunnerConfig{
		Group: g.Name, Topics: topics, DLQTopic: g.DLQTopic(), Decoder: d.Decoder, Batch: s.Batch, Wants: s.Wants(),
		Positions: s.Positions, RetryDelay: retry.Delay, MaxRetryDelay: retry.MaxDelay,
		Metrics: d.RunnerMetrics, Logger: d.Log(),
	}
	if g.Retry {
		cfg.RetryTopic = g.RetryTopic() // dead letters redriven to this group only
	}
	return bus.NewRunner(cfg, d.KafkaOpts...)
}
