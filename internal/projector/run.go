package projector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/internal/board"
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/store"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/webhook"
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
	// defaults are the runner's (bus.DefaultBatchSize events, 50 ms).
	BatchSize int
	BatchWait time.Duration
	// InstanceID, when set, makes the runner a static group member
	// (KIP-345): a restarted instance with the same id takes its
	// partitions back at once instead of waiting for the session timeout.
	// Keep it stable per instance and unique across instances.
	InstanceID string
	// KafkaOpts are added to the runner's client options.
	KafkaOpts []kgo.Opt
	// Stream tunes GET /v1/stream (buffer per client, heartbeat).
	Stream StreamConfig
	// Conn are the connection options (TLS, SASL) every Kafka client of the projector gets.
	Conn []kgo.Opt
	// Auth, when set, requires a bearer token (any token it knows) on everything under
	// /v1/: the query API and the live stream. GET and HEAD also take the token from
	// the pyrite_read_token cookie, which POST /v1/session (the board's sign-in) sets;
	// writes need the header. nil leaves them open (and serves no /v1/session).
	Auth *httpauth.Tokens
	// MetricsAuth makes GET /metrics want one of Auth's tokens too.
	MetricsAuth bool
	// ReadModels are the domain modules' read models: their tables' migrations, their
	// projections (each fed by its own consumer group, the topology group named like it) and
	// their query routes (behind the read token). The projector runs no other.
	ReadModels []ReadModel
	// Schemas are the domain modules' own schema files (domain.Wiring.Schemas): the newest
	// version of each is the reader schema its events are decoded with.
	Schemas []schemas.File
	// Reactors says which reactors, sagas and process managers run beside
	// the projection, each as its own consumer group; the zero value runs
	// none.
	Reactors Reactors
}

// ReadModel is a domain module's read model as the projector runs it.
type ReadModel struct {
	// Name records Migrations in the store (store.WithMigrations), usually the module's
	// aggregate or projection name; it must not change once released.
	Name string
	// Migrations are the read model's tables (NNNN_name.sql files), applied by store.Open.
	Migrations fs.FS
	// Projections fill the tables.
	Projections []Projection
	// Routes serve them.
	Routes []Route
}

// Route is a query route of a domain module's read model: Pattern as http.ServeMux takes it
// ("GET /v1/deployments/{id}"), the handler built on what the projector reads with.
type Route struct {
	Pattern string
	Handler func(r Reads) http.Handler
}

// Reads is what a query route reads with: the projector's store and its read cache (evicted
// as events are applied and when a rebuild is swapped in).
type Reads struct {
	Store *store.Store
	Cache *Cache
}

// Reactors configures the side effects of DESIGN.md section 6. Each one
// that is on runs as its own consumer group, after the replay marks on
// pyrite.replays were read.
type Reactors struct {
	// Integrations, when not empty, runs the integration reactor (group "integration") on
	// the domain modules' integration rules (domain.Wiring.Integrations), over the events
	// topics of the rules' aggregates.
	Integrations []reactor.IntegrationRule
	// SMTP runs the notification reactor (group "notifications") on Notifications (the
	// domain modules' email rules, domain.Wiring.Notifications) when its Host is set and
	// there are rules.
	SMTP          reactor.SMTPConfig
	Notifications []reactor.Notification
	// Webhooks runs the webhook reactor (group "webhooks") when it holds
	// subscriptions; WebhookAttempts bounds the deliveries of one event to
	// one subscriber before it is dead-lettered (default Retry.MaxAttempts).
	Webhooks        webhook.Config
	WebhookAttempts int
	// Domain are the domain modules' sagas and process managers (the GitHub saga, the
	// deployment process manager), each its own consumer group.
	Domain []reactor.Spec
	// Retry is how the groups retry failing events (runner defaults when
	// zero).
	Retry reactor.Retry
	// EventStore, when its URL is set (ingest's base URL), makes the sagas
	// and process managers (Domain) append their events through
	// ingest's event store (POST /v1/eventstore/append), so each gets its
	// aggregate version and a repeated one is a duplicate; its Token must
	// allow their types. Empty: they produce raw records straight to Kafka.
	EventStore eventstore.ClientConfig
}

// enabled reports whether any side effect runs.
func (r Reactors) enabled() bool {
	return len(r.Integrations) > 0 || r.notifying() || len(r.Webhooks.Subscriptions) > 0 || len(r.Domain) > 0
}

// notifying reports whether the notification reactor runs.
func (r Reactors) notifying() bool { return r.SMTP.Enabled() && len(r.Notifications) > 0 }

// eventsTopics returns the events topics of the aggregates of types ("<Aggregate>:<Name>"),
// each once, in first-seen order.
func eventsTopics(topo *topology.Topology, types ...string) ([]string, error) {
	var topics []string
	for _, typ := range types {
		et, err := topology.ParseEventType(typ)
		if err != nil {
			return nil, err
		}
		t, err := topo.EventsTopic(et.Aggregate)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	return topics, nil
}

// Run opens the store (applying migrations), runs every projection's
// consumer group and serves the query API on ln until ctx is done. On
// shutdown the HTTP server drains, the runners finish the batch in hand and
// stop, and the store closes.
func Run(ctx context.Context, ln net.Listener, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.CacheSize = cmp.Or(o.CacheSize, 10_000)
	if o.Drain <= 0 {
		o.Drain = 10 * time.Second
	}
	var storeOpts []store.Option
	for _, rm := range o.ReadModels {
		if rm.Migrations != nil {
			storeOpts = append(storeOpts, store.WithMigrations(rm.Name, rm.Migrations))
		}
	}
	st, err := store.Open(ctx, o.Store, storeOpts...)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("projector store: %w", err)
	}
	defer st.Close()
	adminCl, err := kgo.NewClient(seeds(o)...)
	if err != nil {
		return err
	}
	defer adminCl.Close()
	local, err := schemas.All()
	if err != nil {
		return err
	}
	local = append(local, o.Schemas...)
	cdc := codec.Dial(o.Registry)
	dec, err := bus.NewCodecDecoder(cdc, o.Topology, local)
	if err != nil {
		return err
	}
	metrics, err := bus.NewMetrics(o.Metrics)
	if err != nil {
		return err
	}
	var reg prometheus.Registerer
	if o.Metrics != nil {
		reg = o.Metrics
	}
	p := New(st, kadm.NewClient(adminCl), o.CacheSize, o.Logger, reg)

	type projRun struct {
		name   string
		runner *bus.Runner
	}
	var (
		runs    []projRun
		groups  []readers.Group
		stream  *Stream
		streamd string // the streamed projection
		routes  []Route
	)
	for _, rm := range o.ReadModels {
		routes = append(routes, rm.Routes...)
		for _, proj := range rm.Projections {
			mg, err := o.Topology.Group(proj.Name)
			if err != nil {
				return fmt.Errorf("projection %s: %w", proj.Name, err)
			}
			proj.Group = mg.Name
			if len(proj.Topics) == 0 {
				for _, a := range proj.Aggregates {
					t, err := o.Topology.EventsTopic(a)
					if err != nil {
						return fmt.Errorf("projection %s: %w", proj.Name, err)
					}
					proj.Topics = append(proj.Topics, t)
				}
			}
			p.Register(proj)
			if proj.Stream {
				if stream != nil {
					return fmt.Errorf("projections %s and %s both stream: GET /v1/stream serves one", streamd, proj.Name)
				}
				initial, err := st.Positions(ctx, proj.Name)
				if err != nil {
					return fmt.Errorf("projector store: %w", err)
				}
				stream = NewStream(proj.Name, initial, NewStreamSource(st, proj, dec, append(seeds(o), o.KafkaOpts...)...), o.Stream, reg)
				streamd = proj.Name
				p.AttachStream(stream)
			}
			r, err := bus.NewRunner(bus.RunnerConfig{
				Group: mg.Name, Topics: proj.Topics, DLQTopic: mg.DLQTopic(), Decoder: dec,
				Batch: p.Batch(proj), BatchSize: o.BatchSize, BatchWait: o.BatchWait, Positions: p.Positions(proj),
				// Dead letters redriven to this group only (pyrite dlq redrive).
				RetryTopic: mg.RetryTopic(), Metrics: metrics, Logger: o.Logger,
			}, kafkaOpts(o)...)
			if err != nil {
				return err
			}
			runs = append(runs, projRun{proj.Name, r})
			groups = append(groups, readers.Group{Name: mg.Name, Topics: proj.Topics})
		}
	}

	var side *sideEffects
	if o.Reactors.enabled() {
		if side, err = buildReactors(o, st, cdc, dec, metrics); err != nil {
			return err
		}
	}

	// Every group records the reader schemas it decodes with before it consumes, so a
	// schema check (pyrite schema check, the registry's live-reader mode) counts it.
	if side != nil {
		groups = append(groups, side.groups...)
	}
	if err := readers.Publish(ctx, adminCl, readers.Decoded(groups, local, o.Topology, o.InstanceID)...); err != nil {
		return fmt.Errorf("projector: %w (is the topology applied?)", err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { p.WatchGenerations(gctx, 2*time.Second); return nil })
	for _, mr := range runs {
		g.Go(func() error {
			p.SetState(mr.name, "running")
			err := mr.runner.Run(gctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				p.SetState(mr.name, "failed: "+err.Error())
				return fmt.Errorf("projection %s: %w", mr.name, err)
			}
			p.SetState(mr.name, "stopped")
			return nil
		})
	}
	var replays *reactor.Replays
	if side != nil {
		side.start(gctx, g, seeds(o))
		replays = side.replays
	}
	ready := func(ctx context.Context) error {
		if err := adminCl.Ping(ctx); err != nil {
			return fmt.Errorf("kafka: %w", err)
		}
		if _, err := st.Projections(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		if replays != nil {
			select {
			case <-replays.Ready():
			default:
				return errors.New("reactors: replay marks not read yet")
			}
		}
		return nil
	}
	var eventsTopics []string
	for _, t := range o.Topology.TopicsWithRole(topology.RoleEvents) {
		eventsTopics = append(eventsTopics, t.Name)
	}
	api := http.NewServeMux()
	api.Handle("/", p.Handler())
	for _, rt := range routes {
		api.Handle(rt.Pattern, rt.Handler(Reads{Store: st, Cache: p.Cache()}))
	}
	api.Handle("GET /v1/events", NewReadAll(o.Brokers, eventsTopics, dec, append(slices.Clip(o.Conn), o.KafkaOpts...)...))
	o.Logger.Info("projector listening", "addr", ln.Addr().String(), "store", st.Kind())
	if stream != nil {
		g.Go(func() error {
			<-gctx.Done()
			stream.Close() // streams end so that they do not hold the drain up
			return nil
		})
	}
	g.Go(func() error {
		h := withBoard(p, o, kadm.NewClient(adminCl), api)
		if o.Auth != nil { // the query API, readAll, the stream and the board's data
			h = withSession(o.Auth, o.Auth.RequireRead("/v1/", h))
		}
		h = server.Handler(h, ready, o.Metrics)
		if o.Auth != nil && o.MetricsAuth {
			h = o.Auth.Require("/metrics", h)
		}
		return server.Serve(gctx, ln, h, o.Drain)
	})
	return g.Wait()
}

// seeds are the brokers and connection options of every client.
func seeds(o Options) []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(o.Brokers...)}, o.Conn...)
}

func kafkaOpts(o Options) []kgo.Opt {
	opts := append(seeds(o), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if o.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(o.InstanceID))
	}
	return append(opts, o.KafkaOpts...)
}

// sideEffects are the reactors, sagas and process managers of a projector,
// with the replay-mark reader and the producer they share.
type sideEffects struct {
	replays *reactor.Replays
	prod    *kgo.Client
	runs    []func(context.Context) error
	groups  []readers.Group // each group and the topics it decodes
}

// buildReactors makes every reactor, saga and process manager o turns on,
// checking their configuration.
func buildReactors(o Options, st *store.Store, cdc *codec.Codec, dec bus.Decoder, runnerMetrics *bus.Metrics) (*sideEffects, error) {
	r := o.Reactors
	m, err := reactor.NewMetrics(o.Metrics)
	if err != nil {
		return nil, err
	}
	// The options of every client (connection, compression, ...) apply to this producer too.
	prod, err := kgo.NewClient(append(append(seeds(o), kgo.ProducerLinger(5*time.Millisecond)), o.KafkaOpts...)...)
	if err != nil {
		return nil, err
	}
	replays := reactor.NewReplays(o.Logger)
	d := reactor.Deps{
		Store: st, Topology: o.Topology, Decoder: dec, Emitter: reactor.NewEmitter(cdc, o.Topology, "pyrite.projector"),
		Producer: prod, Replays: replays, Metrics: m, RunnerMetrics: runnerMetrics, Logger: o.Logger,
		KafkaOpts: kafkaOpts(o),
	}
	if r.EventStore.URL != "" {
		cl, err := eventstore.NewClient(r.EventStore, o.Metrics)
		if err != nil {
			prod.Close()
			return nil, err
		}
		d.Appender = cl
	}
	var (
		runs   []func(context.Context) error
		groups []readers.Group
	)
	busGroup := func(group string, topics []string, attempts int, subscribe func(*bus.Bus) error) error {
		b := bus.New(bus.WithName(group), bus.WithMetrics(runnerMetrics), bus.WithLogger(o.Logger), bus.WithLogSize(0))
		if err := subscribe(b); err != nil {
			return err
		}
		retry := r.Retry
		if attempts > 0 {
			retry.MaxAttempts = attempts
		}
		runner, err := d.BusRunner(group, topics, b, retry)
		if err != nil {
			return err
		}
		runs = append(runs, runner.Run)
		groups = append(groups, readers.Group{Name: group, Topics: topics})
		return nil
	}
	var errs []error
	if len(r.Integrations) > 0 {
		var types []string
		for _, rule := range r.Integrations {
			types = append(types, rule.From)
		}
		topics, err := eventsTopics(o.Topology, types...)
		if err == nil {
			err = busGroup(reactor.IntegrationGroup, topics, 0,
				reactor.NewIntegration(d.Emitter, prod, st, reactor.NewTopicLookup(seeds(o)...), m, r.Integrations...).Subscribe)
		}
		errs = append(errs, err)
	}
	if r.SMTP.Enabled() && len(r.Notifications) == 0 {
		o.Logger.Warn("an SMTP server is configured but no module declares notification rules: no notifications are sent")
	}
	if r.notifying() {
		var types []string
		for _, rule := range r.Notifications {
			types = append(types, rule.On)
		}
		topics, err := eventsTopics(o.Topology, types...)
		if err == nil {
			var n *reactor.Notifier
			if n, err = reactor.NewNotifier(r.SMTP, st, m, o.Logger, r.Notifications...); err == nil {
				err = busGroup(reactor.NotificationsGroup, topics, 0, n.Subscribe)
			}
		}
		errs = append(errs, err)
	}
	if len(r.Webhooks.Subscriptions) > 0 {
		w, err := webhook.New(r.Webhooks, st, m, o.Logger)
		if err == nil {
			var topics []string
			for _, t := range o.Topology.TopicsWithRole(topology.RoleEvents) {
				topics = append(topics, t.Name)
			}
			err = busGroup(webhook.Group, append(topics, topology.IntegrationTopic), r.WebhookAttempts, w.Subscribe)
		}
		errs = append(errs, err)
	}
	for _, spec := range r.Domain {
		var topics []string
		for _, a := range spec.Aggregates {
			t, err := o.Topology.EventsTopic(a)
			if err != nil {
				prod.Close()
				return nil, fmt.Errorf("reactors: %s: %w", spec.Group, err)
			}
			topics = append(topics, t)
		}
		run, err := spec.New(d)
		if err == nil {
			runs = append(runs, func(ctx context.Context) error { return run(ctx, topics, r.Retry) })
			groups = append(groups, readers.Group{Name: spec.Group, Topics: topics})
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		prod.Close()
		return nil, fmt.Errorf("reactors: %w", err)
	}
	return &sideEffects{replays: replays, prod: prod, runs: runs, groups: groups}, nil
}

// start runs, in g, the replay-mark reader and every group; each group waits
// for the replay marks before it consumes. The producer is closed once all
// groups stopped.
func (se *sideEffects) start(ctx context.Context, g *errgroup.Group, conn []kgo.Opt) {
	var wg sync.WaitGroup
	g.Go(func() error { return se.replays.Run(ctx, conn...) })
	for _, run := range se.runs {
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			if se.replays.Wait(ctx) != nil {
				return nil // stopped before the marks were read
			}
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("reactors: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		wg.Wait() // the producer outlives every group that writes through it
		<-ctx.Done()
		se.prod.Close()
		return nil
	})
}

// upcasterGroup is the upcaster's consumer group (upcaster.DefaultConsumerGroup, which a test
// keeps it equal to): the projector does not import the upcaster, whose tests wire the domain
// modules, which import the projector.
const upcasterGroup = "pyrite-upcaster"

// withBoard serves the live board beside api (the query API, readAll and the stream).
func withBoard(p *Projector, o Options, adm *kadm.Client, api http.Handler) http.Handler {
	projected := map[string]bool{}
	for _, rm := range o.ReadModels {
		for _, proj := range rm.Projections {
			projected[proj.Name] = true
		}
	}
	var stages []board.Stage
	for _, g := range o.Topology.Groups() {
		group := g.Name
		switch {
		case g.Name == "upcaster":
			group = upcasterGroup
		case projected[g.Name]:
			group = "" // its lag is the projection's, from the store
		}
		stages = append(stages, board.Stage{Name: g.Name, Group: group, DLQTopic: g.DLQTopic()})
	}
	b := board.New(board.Options{
		Admin: adm, Stages: stages, Registry: o.Registry,
		Projections: func(ctx context.Context) (any, error) {
			sts, err := p.Statuses(ctx)
			return map[string]any{"projections": sts}, err
		},
	})
	bh := b.Handler()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", bh)
	mux.Handle("GET /board/", bh)
	mux.Handle("GET /v1/board/", bh)
	mux.Handle("/", api)
	return mux
}

// withSession serves the board's sign-in at /v1/session (httpauth's
// Session: a browser trades the read token for a cookie, which its
// EventSource then sends) beside h, the read-token-guarded API.
func withSession(auth *httpauth.Tokens, h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/session", auth.Session())
	mux.Handle("/", h)
	return mux
}
