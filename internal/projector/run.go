package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

// Options wires a running projector program.
type Options struct {
	Brokers   []string
	Registry  string // schema registry base URL
	Store     string // sqlite file path or URL, or postgres:// URL
	Topology  *topology.Topology
	Metrics   *prometheus.Registry
	Logger    *slog.Logger
	CacheSize int           // LRU entries in front of reads; default 10,000
	Drain     time.Duration // how long in-flight requests may take on shutdown
	// BatchSize and BatchWait bound the events applied per transaction;
	// defaults are the runner's (500 events, 50 ms).
	BatchSize int
	BatchWait time.Duration
	// InstanceID, when set, makes the runner a static group member
	// (KIP-345): a restarted instance with the same id takes its
	// partitions back at once instead of waiting for the session timeout.
	// Keep it stable per instance and unique across instances.
	InstanceID string
	// KafkaOpts are added to the runner's client options.
	KafkaOpts []kgo.Opt
}

// Run opens the store (applying migrations), runs every projection's
// consumer group and serves the query API on ln until ctx is done. On
// shutdown the HTTP server drains, the runners finish the batch in hand and
// stop, and the store closes.
func Run(ctx context.Context, ln net.Listener, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10_000
	}
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	st, err := store.Open(ctx, o.Store)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("projector store: %w", err)
	}
	defer st.Close()
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(o.Brokers...))
	if err != nil {
		return err
	}
	defer adminCl.Close()
	local, err := schemas.All()
	if err != nil {
		return err
	}
	dec, err := bus.NewCodecDecoder(codec.Dial(o.Registry), o.Topology, local)
	if err != nil {
		return err
	}
	metrics, err := bus.NewMetrics(o.Metrics)
	if err != nil {
		return err
	}
	p := New(st, kadm.NewClient(adminCl), o.CacheSize, o.Logger)

	agg, err := o.Topology.Aggregate("WorkEffort")
	if err != nil {
		return err
	}
	group, err := o.Topology.Group(WorkEfforts)
	if err != nil {
		return err
	}
	proj := Projection{Name: WorkEfforts, Group: group.Name, Topics: []string{agg.EventsTopic()}, Apply: store.ApplyWorkEffort}
	p.Register(proj)
	runner, err := bus.NewRunner(bus.RunnerConfig{
		Group:     group.Name,
		Topics:    proj.Topics,
		DLQTopic:  group.DLQTopic(),
		Decoder:   dec,
		Batch:     p.Batch(proj),
		BatchSize: o.BatchSize,
		BatchWait: o.BatchWait,
		Positions: p.Positions(proj),
		Metrics:   metrics,
		Logger:    o.Logger,
	}, kafkaOpts(o)...)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		p.SetState(proj.Name, "running")
		err := runner.Run(gctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			p.SetState(proj.Name, "failed: "+err.Error())
			return fmt.Errorf("projection %s: %w", proj.Name, err)
		}
		p.SetState(proj.Name, "stopped")
		return nil
	})
	ready := func(ctx context.Context) error {
		if err := adminCl.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		if _, err := st.Positions(ctx, proj.Name); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
	o.Logger.Info("projector listening", "addr", ln.Addr().String(), "store", st.Kind())
	g.Go(func() error {
		return server.Serve(gctx, ln, server.Handler(p.Handler(), ready, o.Metrics), o.Drain)
	})
	return g.Wait()
}

func kafkaOpts(o Options) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(o.Brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	if o.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(o.InstanceID))
	}
	return append(opts, o.KafkaOpts...)
}
