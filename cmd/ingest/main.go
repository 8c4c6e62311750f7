// Command ingest is Pyrite's HTTP API for other services: POST /v1/events
// and POST /v1/events:batch turn JSON into Avro records on the raw topics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ingest:", err)
		os.Exit(1)
	}
}

type cfg struct {
	config.Common
	Profile   string
	TxnPrefix string
	MaxBody   int64
	MaxBatch  int
}

func (c *cfg) validate() error {
	errs := []error{c.Common.Validate()}
	if _, err := topology.ParseProfile(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if c.TxnPrefix == "" {
		errs = append(errs, errors.New("--txn-prefix must not be empty"))
	}
	if c.MaxBody < 1024 {
		errs = append(errs, errors.New("--max-body must be at least 1024 bytes"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("--max-batch must be at least 1"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	var c cfg
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Bind(fs, config.DefaultIngest)
	host, _ := os.Hostname()
	fs.StringVar(&c.Profile, "profile", config.Env("PYRITE_PROFILE", "dev"), "topology profile: dev or production (env PYRITE_PROFILE)")
	fs.StringVar(&c.TxnPrefix, "txn-prefix", config.Env("PYRITE_TXN_PREFIX", "pyrite-ingest-"+host), "transactional id prefix for batch writes; keep it stable per instance and unique across instances (env PYRITE_TXN_PREFIX)")
	fs.Int64Var(&c.MaxBody, "max-body", ingest.DefaultMaxBody, "largest accepted body of POST /v1/events, in bytes (batches take 8 times this)")
	fs.IntVar(&c.MaxBatch, "max-batch", ingest.DefaultMaxBatch, "most events accepted in one batch")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	profile, _ := topology.ParseProfile(c.Profile)
	topo, err := topology.New(profile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := server.Listen(c.Addr, "addr")
	if err != nil {
		return err
	}
	return ingest.Run(ctx, ln, ingest.Options{
		Brokers: c.Brokers, Registry: c.Registry, TxnPrefix: c.TxnPrefix,
		Topology: topo, Metrics: reg, Logger: log,
		Config: ingest.Config{MaxBody: c.MaxBody, MaxBatchBody: 8 * c.MaxBody, MaxBatch: c.MaxBatch},
	})
}
