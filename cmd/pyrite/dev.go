package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/devkafka"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/internal/registry"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/tracing"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
	"github.com/pyrite-dev/pyrite/schemas"
)

// devConfig is the configuration of `pyrite dev`.
type devConfig struct {
	DataDir       string
	KafkaAddr     string
	RegistryAddr  string
	IngestAddr    string
	ProjectorAddr string
	UpcasterAddr  string
	// CheckReaders turns on the registry's live-reader mode (internal/readers).
	CheckReaders bool
	Compression  config.Compression
	Secure       bool
}

func (c *devConfig) bind(fs *flag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", ".pyrite", "directory for the embedded Kafka's data (kept across runs in <data-dir>/kafka)")
	fs.StringVar(&c.KafkaAddr, "kafka-addr", config.DefaultBrokers, "host:port of the embedded Kafka broker")
	fs.StringVar(&c.RegistryAddr, "registry-addr", "127.0.0.1:8081", "host:port of the schema registry")
	fs.StringVar(&c.IngestAddr, "ingest-addr", config.DefaultIngest, "host:port of the ingest HTTP API")
	fs.StringVar(&c.ProjectorAddr, "projector-addr", config.DefaultProjector, "host:port of the projector's query API")
	fs.StringVar(&c.UpcasterAddr, "upcaster-addr", config.DefaultUpcaster, "host:port of the upcaster's health and metrics server")
	fs.BoolVar(&c.CheckReaders, "check-readers", false, "the registry also refuses a new version that a reader recorded on pyrite.readers cannot read")
	c.Compression.BindCompression(fs)
	fs.BoolVar(&c.Secure, "secure", false, "Kafka with TLS, SCRAM users per service and ACLs; registry, ingest and projector APIs with authentication "+
		"(HTTP stays plain on loopback); the CA, certificates and <data-dir>/secure/credentials.json are made once per data directory")
}

func (c *devConfig) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	}
	for _, a := range []struct{ flag, addr string }{
		{"kafka-addr", c.KafkaAddr}, {"registry-addr", c.RegistryAddr}, {"ingest-addr", c.IngestAddr},
		{"projector-addr", c.ProjectorAddr}, {"upcaster-addr", c.UpcasterAddr},
	} {
		if _, port, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %q is not host:port", a.flag, a.addr))
		} else if _, err := strconv.Atoi(port); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %q has no numeric port", a.flag, a.addr))
		}
	}
	return errors.Join(append(errs, c.Compression.Validate())...)
}

// runDev runs the whole stack in one process: embedded Kafka (kfake with a
// data directory), the schema registry, the topology, the schemas, and
// ingest. It stops in order on ctx: ingest drains and flushes, then the
// registry, then Kafka.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c devConfig
	fs := flag.NewFlagSet("pyrite dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pyrite dev [flags]\n\nRuns the whole pipeline in one process on embedded defaults.")
		fs.PrintDefaults()
	}
	c.bind(fs)
	acceptGlobalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	log := tracing.NewLogger(stderr, nil)

	// A data directory of the other mode is refused before any port is claimed.
	var sd *secureDev // nil: plain
	if c.Secure {
		var err error
		if sd, err = setupSecure(c.DataDir, kafkaHost(c.KafkaAddr)); err != nil {
			return err
		}
	} else if _, serr := os.Stat(filepath.Join(c.DataDir, "secure", credentialsFile)); serr == nil {
		return fmt.Errorf("%s was made by pyrite dev --secure; run with --secure", c.DataDir)
	}

	// Claim every port first, so a port in use fails before anything starts.
	kafkaLn, err := server.Listen(c.KafkaAddr, "kafka-addr")
	if err != nil {
		return err
	}
	regLn, err := server.Listen(c.RegistryAddr, "registry-addr")
	if err != nil {
		kafkaLn.Close()
		return err
	}
	ingestLn, err := server.Listen(c.IngestAddr, "ingest-addr")
	if err != nil {
		kafkaLn.Close()
		regLn.Close()
		return err
	}
	projLn, err := server.Listen(c.ProjectorAddr, "projector-addr")
	if err != nil {
		kafkaLn.Close()
		regLn.Close()
		ingestLn.Close()
		return err
	}
	upLn, err := server.Listen(c.UpcasterAddr, "upcaster-addr")
	if err != nil {
		kafkaLn.Close()
		regLn.Close()
		ingestLn.Close()
		projLn.Close()
		return err
	}

	kafkaDir := filepath.Join(c.DataDir, "kafka")
	_, kport, _ := net.SplitHostPort(c.KafkaAddr)
	port, _ := strconv.Atoi(kport)
	var (
		cluster *kfake.Cluster
		rep     devkafka.Report
	)
	if err == nil {
		// devkafka.Start repairs what a crash leaves at the end of a log, refuses
		// mid-log damage naming the file, and closes transactions left open by
		// an unclean stop with ABORT markers before any client below starts.
		cluster, rep, err = devkafka.Start(ctx, kafkaDir, sd.conn("admin"), append([]kfake.Opt{
			kfake.NumBrokers(1),
			kfake.Ports(port),
			devkafka.Listen(kafkaLn, sd.serverTLS()),
		}, sd.clusterOpts()...)...)
	}
	for _, line := range rep.Repaired {
		fmt.Fprintf(stdout, "kafka      repaired %s\n", line)
	}
	if err != nil {
		kafkaLn.Close()
		regLn.Close()
		ingestLn.Close()
		projLn.Close()
		upLn.Close()
		return fmt.Errorf("embedded kafka: %w", err)
	}
	defer cluster.Close()
	for _, h := range rep.Hanging {
		fmt.Fprintf(stdout, "kafka      aborted a transaction left open by an unclean stop: %s\n", h)
	}
	brokers := cluster.ListenAddrs()
	fmt.Fprintf(stdout, "kafka      %s  (data in %s)\n", brokers[0], kafkaDir)

	// The topology comes first: the registry's _schemas topic is part of it.
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	topo, err := topology.New(topology.Dev, mods.Topology()...)
	if err != nil {
		return err
	}
	adm, err := kgo.NewClient(append(sd.conn("admin"), kgo.SeedBrokers(brokers...))...)
	if err != nil {
		return err
	}
	plan, err := topo.Ensure(ctx, kadm.NewClient(adm))
	if err == nil {
		if err = sd.applyACLs(ctx, topo, kadm.NewClient(adm)); err != nil {
			err = fmt.Errorf("apply ACLs: %w", err)
		}
	} else {
		err = fmt.Errorf("apply topology: %w", err)
	}
	adm.Close()
	if err != nil {
		return err
	}
	for _, ch := range plan.Unfixable() {
		log.Warn("topology drift that apply cannot fix", "change", ch.String())
	}

	regMetrics := prometheus.NewRegistry()
	kopts := c.Compression.KafkaOpts() // every producer below
	regOpts := []registry.Option{registry.WithRegisterer(regMetrics), registry.WithLogger(log),
		registry.WithKafkaOpts(append(sd.conn(topology.ServiceRegistry), kopts...)...)}
	if c.CheckReaders {
		live := readers.NewSet()
		watchCtx, stopWatch := context.WithCancel(ctx)
		watched := make(chan error, 1)
		go func() {
			watched <- live.Watch(watchCtx, func(err error) { log.Warn("pyrite.readers: skipping a record", "err", err) },
				append(sd.conn(topology.ServiceRegistry), kgo.SeedBrokers(brokers...))...)
		}()
		defer func() { stopWatch(); <-watched }() // before Kafka stops
		regOpts = append(regOpts, registry.WithLiveReaders(live.LiveReaders))
	}
	reg, err := registry.New(ctx, brokers, regOpts...)
	if err != nil {
		return fmt.Errorf("schema registry: %w", err)
	}
	defer reg.Close()
	registryURL := "http://" + regLn.Addr().String()

	regCtx, stopReg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReg()
	regDone := make(chan error, 1)
	go func() {
		regDone <- server.Serve(regCtx, regLn, server.Handler(sd.registry(reg.Handler()), func(context.Context) error {
			if !reg.Ready() {
				return errors.New("catching up with _schemas")
			}
			return nil
		}, regMetrics), 5*time.Second)
	}()
	fmt.Fprintf(stdout, "registry   %s\n", registryURL)

	files, err := schemas.All()
	if err != nil {
		return err
	}
	files = append(files, mods.Schemas...) // the modules' own schema folders
	regd, err := registerSchemas(ctx, sd.registryAs(registryURL, "writer"), files)
	if err != nil {
		stopReg()
		<-regDone
		return fmt.Errorf("register schemas: %w", err)
	}
	fmt.Fprintf(stdout, "schemas    %d versions registered\n", len(regd))

	// Each stage runs under sup: once the pipeline is ready, a stage that fails is logged
	// and started again on its address, and the others keep running.
	sup := newSupervisor(log)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return sup.run(gctx, "ingest", ingestLn, func(ctx context.Context, ln net.Listener) error {
			return ingest.Run(ctx, ln, ingest.Options{
				Brokers: brokers, Registry: sd.registryAs(registryURL, "reader"), TxnPrefix: topology.IngestIDPrefix + "-dev",
				Topology: topo, Chain: mods.Chain, Metrics: prometheus.NewRegistry(), Logger: log,
				KafkaOpts: append(sd.conn(topology.ServiceIngest), kopts...), Auth: sd.ingestAuth(),
				Config: ingest.Config{Folds: mods.Folds, Commands: mods.Commands},
			})
		})
	})
	fmt.Fprintf(stdout, "ingest     http://%s\n", ingestLn.Addr())
	g.Go(func() error {
		return sup.run(gctx, "upcaster", upLn, func(ctx context.Context, ln net.Listener) error {
			return upcaster.Run(ctx, ln, upcaster.Options{
				Brokers: brokers, Registry: sd.registryAs(registryURL, "reader"), Topology: topo, Chain: mods.Chain,
				Metrics: prometheus.NewRegistry(), Logger: log,
				Config:    upcaster.Config{TransactionalID: topology.UpcasterIDPrefix + "-dev"},
				KafkaOpts: slices.Concat(sd.conn(topology.ServiceUpcaster), []kgo.Opt{kgo.InstanceID("pyrite-dev-upcaster")}, kopts),
			})
		})
	})
	fmt.Fprintf(stdout, "upcaster   http://%s  (raw -> events, health and metrics)\n", upLn.Addr())
	projStore := filepath.Join(c.DataDir, "projector.db")
	g.Go(func() error {
		return sup.run(gctx, "projector", projLn, func(ctx context.Context, ln net.Listener) error {
			return projector.Run(ctx, ln, projector.Options{
				Brokers: brokers, Registry: sd.registryAs(registryURL, "reader"), Store: projStore, Topology: topo,
				Conn: sd.conn(topology.ServiceProjector), Auth: sd.projectorAuth(), Schemas: mods.Schemas,
				ReadModels: mods.ReadModels,
				Metrics:    prometheus.NewRegistry(), Logger: log, InstanceID: "pyrite-dev-projector",
				// Reactors without outside services; SMTP, webhooks and GitHub need
				// configuration, so run cmd/projector for those. The process manager
				// appends through ingest's event store.
				Reactors: projector.Reactors{Integrations: mods.Integrations, Domain: modules.Dev().Specs(),
					EventStore: eventstore.ClientConfig{URL: "http://" + ingestLn.Addr().String(), Token: sd.eventStoreToken()}},
				KafkaOpts: kopts,
			})
		})
	})
	fmt.Fprintf(stdout, "projector  http://%s  (read models in %s)\n", projLn.Addr(), projStore)
	if sd == nil {
		fmt.Fprintf(stdout, "board      http://%s/  (live board in a browser)\n", projLn.Addr())
	} else { // the line names where the token is, never the token
		fmt.Fprintf(stdout, "board      http://%s/  (live board; sign in with projector.token from %s)\n",
			projLn.Addr(), filepath.Join(sd.dir, credentialsFile))
	}
	if sd != nil {
		fmt.Fprintf(stdout, "secure     TLS+SCRAM Kafka, ACLs, HTTP authentication; credentials in %s\n", filepath.Join(sd.dir, credentialsFile))
	}
	if err := waitReady(gctx, "http://"+ingestLn.Addr().String(), "http://"+upLn.Addr().String(), "http://"+projLn.Addr().String()); err == nil {
		sup.ready.Store(true)
		fmt.Fprintf(stdout, "pyrite dev ready (Ctrl-C stops; try: curl -s http://%s/readyz)\n", ingestLn.Addr())
	}

	err = g.Wait() // ingest drained and flushed
	stopReg()
	if rerr := <-regDone; rerr != nil {
		err = errors.Join(err, rerr)
	}
	fmt.Fprintln(stdout, "pyrite dev stopped")
	return err
}

func named(component string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", component, err)
	}
	return nil
}

// waitReady polls each base URL's /readyz until it answers 200 or ctx ends.
func waitReady(ctx context.Context, bases ...string) error {
	for _, base := range bases {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
			if err != nil {
				return err
			}
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
