package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// Options wires a running ingest program.
type Options struct {
	Brokers   []string
	Registry  string // schema registry base URL
	TxnPrefix string // transactional id prefix, stable per instance
	Topology  *topology.Topology
	Metrics   *prometheus.Registry
	Logger    *slog.Logger
	Drain     time.Duration // how long in-flight requests may take on shutdown
	Config
}

// Run serves the ingest API on ln until ctx is done, then drains: the HTTP
// server stops accepting and lets in-flight requests finish, the producers
// flush, and the clients close.
func Run(ctx context.Context, ln net.Listener, o Options) error {
	if o.Drain <= 0 {
		o.Drain = 20 * time.Second
	}
	prod, err := NewKafka(o.TxnPrefix, 4, o.Metrics, kgo.SeedBrokers(o.Brokers...))
	if err != nil {
		return err
	}
	defer prod.Close()
	c := codec.Dial(o.Registry)
	svc := New(c, o.Topology, prod, o.Config, o.Metrics)
	ready := func(ctx context.Context) error {
		return errors.Join(svc.Ready(ctx), registryReachable(ctx, o.Registry))
	}
	if o.Logger != nil {
		o.Logger.Info("ingest listening", "addr", ln.Addr().String())
	}
	err = server.Serve(ctx, ln, server.Handler(svc.Handler(), ready, o.Metrics), o.Drain)
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, prod.Flush(fctx))
}

// registryReachable asks the registry for its global config, the cheapest
// call every Confluent-compatible registry answers.
func registryReachable(ctx context.Context, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/config", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("schema registry: %s", resp.Status)
	}
	return nil
}
