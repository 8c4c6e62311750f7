package upcaster

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// DefaultLatestRefresh is how long the newest version of a subject is served from cache
// before the registry is asked again.
const DefaultLatestRefresh = 30 * time.Second

// Options wires a running upcaster program.
type Options struct {
	Brokers  []string
	Registry string // schema registry base URL
	Topology *topology.Topology
	// Chain is the upcaster functions, the domain modules' steps (nil: none, every version
	// step is left to schema resolution).
	Chain   *upcast.Chain
	Metrics *prometheus.Registry
	Logger  *slog.Logger
	// LatestRefresh bounds how long a newly registered version may go unused as the output
	// version (default DefaultLatestRefresh).
	LatestRefresh time.Duration
	// Drain is how long in-flight HTTP requests may take on shutdown (default 5 s).
	Drain time.Duration
	// KafkaOpts are passed to the Kafka client after the stage's own (session timeout,
	// instance id, transaction timeout, TLS, ...).
	KafkaOpts []kgo.Opt
	Config
}

// Run checks the chain and upcasts until ctx is done, serving GET /healthz, /readyz and
// /metrics on ln throughout. A chain with gaps stops it at once with an error naming them. On
// shutdown the stage finishes its batch and leaves the group, then the HTTP server drains.
func Run(ctx context.Context, ln net.Listener, o Options) error {
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	if o.LatestRefresh <= 0 {
		o.LatestRefresh = DefaultLatestRefresh
	}
	chain := o.Chain
	if chain == nil {
		chain = upcast.NewChain()
	}
	rc := codec.Client(o.Registry)
	up := upcast.New(codec.New(rc, codec.WithLatestTTL(o.LatestRefresh)), chain, rc)
	opts := append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.KafkaOpts...)
	var reg prometheus.Registerer
	if o.Metrics != nil {
		reg = o.Metrics
	}
	stage, err := NewStage(up, o.Topology, o.Config, reg, o.Logger, opts...)
	if err != nil {
		return err
	}
	if o.Logger != nil {
		o.Logger.Info("upcaster listening", "addr", ln.Addr().String())
	}
	// The HTTP server outlives the stage, so /healthz answers until the stage has shut down.
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	srvErr := make(chan error, 1)
	go func() { srvErr <- server.Serve(srvCtx, ln, server.Handler(nil, stage.Ready, o.Metrics), o.Drain) }()

	stageCtx, stopStage := context.WithCancel(ctx)
	defer stopStage()
	stageErr := make(chan error, 1)
	go func() { stageErr <- stage.Run(stageCtx) }()

	select {
	case err = <-stageErr:
		stopSrv()
		return errors.Join(err, <-srvErr)
	case err = <-srvErr:
		stopStage()
		return errors.Join(err, <-stageErr)
	}
}
