package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/upcast"
)

// Options wires a running ingest program.
type Options struct {
	Brokers  []string
	Registry string // schema registry base URL
	// TxnPrefix is the transactional id prefix of the batches outside aggregate streams
	// (system and integration events); keep it stable per instance and unique across
	// instances. The event store's writers do not use it: theirs are
	// "<Group>-<topic>-<partition>", the same on every instance.
	TxnPrefix string
	Topology  *topology.Topology
	// Chain is the domain modules' upcast steps, with which the event store reads streams
	// (nil: none, every version step is left to schema resolution).
	Chain   *upcast.Chain
	Metrics *prometheus.Registry
	Logger  *slog.Logger
	Drain   time.Duration // how long in-flight requests may take on shutdown
	// KafkaOpts are added to every Kafka client's options (tracing hooks, TLS, SASL).
	KafkaOpts []kgo.Opt
	// Auth, when set, requires a bearer token on /v1/ and limits each token to its event
	// types (see authorize); nil leaves the API open.
	Auth *httpauth.Tokens
	// MetricsAuth makes GET /metrics want one of Auth's tokens too (any scope).
	MetricsAuth bool
	Config
	Store StoreOptions
}

// StoreOptions are the event store settings of a running ingest (see eventstore.Config;
// zero values take its defaults).
type StoreOptions struct {
	// Group is the consumer group the ingest instances share partitions through (default
	// eventstore.DefaultGroup). Instances of one deployment must use the same group.
	Group string
	// Advertise is the URL other instances forward this one's requests to; default
	// http://<listen address>, with the host name for a wildcard address.
	Advertise      string
	DedupeWindow   time.Duration
	DedupeMax      int
	SessionTimeout time.Duration
	InstanceID     string
}

// Run serves the ingest API on ln until ctx is done, then drains: the HTTP server stops
// accepting and lets in-flight requests finish, then the event store leaves its group (its
// partitions move to the other instances at once) and closes its clients.
func Run(ctx context.Context, ln net.Listener, o Options) error {
	if o.Drain <= 0 {
		o.Drain = 20 * time.Second
	}
	if o.Store.Advertise == "" {
		o.Store.Advertise = advertise(ln.Addr())
	}
	if o.TxnPrefix == "" {
		o.TxnPrefix = "pyrite-ingest-" + strings.TrimPrefix(strings.TrimPrefix(o.Store.Advertise, "http://"), "https://")
	}
	rc := codec.Client(o.Registry)
	c := codec.New(rc)
	chain := o.Chain
	if chain == nil {
		chain = upcast.NewChain()
	}
	// Read decodes every event anyway: the upcaster need not validate what it passes on.
	up := upcast.New(c, chain, rc, upcast.WithoutValidation())
	var topics []string
	for _, t := range o.Topology.TopicsWithRole(topology.RoleRaw) {
		topics = append(topics, t.Name)
	}
	st, err := eventstore.New(eventstore.Config{
		Group: o.Store.Group, Advertise: o.Store.Advertise, Topics: topics,
		DedupeWindow: o.Store.DedupeWindow, DedupeMax: o.Store.DedupeMax,
		SessionTimeout: o.Store.SessionTimeout, InstanceID: o.Store.InstanceID, Logger: o.Logger,
	}, c, up, o.Topology, o.Metrics, append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.KafkaOpts...)...)
	if err != nil {
		return err
	}
	defer st.Close()
	prod, err := NewKafka(o.TxnPrefix, 2, o.Metrics, append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.KafkaOpts...)...)
	if err != nil {
		return err
	}
	defer prod.Close()
	svc := NewWithStore(c, o.Topology, prod, st, o.Config, o.Metrics)
	ready := func(ctx context.Context) error {
		return errors.Join(svc.Ready(ctx), registryReachable(ctx, o.Registry))
	}
	if o.Logger != nil {
		o.Logger.Info("ingest listening", "addr", ln.Addr().String(), "advertise", o.Store.Advertise)
	}
	api := svc.Handler()
	if o.Auth != nil {
		api = o.Auth.Require("/v1/", api)
	}
	h := server.Handler(api, ready, o.Metrics)
	if o.Auth != nil && o.MetricsAuth {
		h = o.Auth.Require("/metrics", h)
	}
	err = server.Serve(ctx, ln, h, o.Drain)
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, prod.Flush(fctx))
}

// advertise is the URL of a listener for other instances: a wildcard host becomes this
// machine's host name.
func advertise(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
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
