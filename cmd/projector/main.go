// Command projector runs Pyrite's projections (read models fed by consumer
// groups, stored in SQLite or PostgreSQL with their Kafka positions) and
// serves the query API.
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
	"github.com/pyrite-dev/pyrite/internal/projector"
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
		fmt.Fprintln(os.Stderr, "projector:", err)
		os.Exit(1)
	}
}

type cfg struct {
	config.Common
	Store      string
	Profile    string
	CacheSize  int
	BatchSize  int
	InstanceID string
}

func (c *cfg) validate() error {
	errs := []error{c.Common.Validate()}
	if c.Store == "" {
		errs = append(errs, errors.New("--store must not be empty"))
	}
	if _, err := topology.ParseProfile(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if c.CacheSize < 0 {
		errs = append(errs, errors.New("--cache-size must not be negative"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, errors.New("--batch-size must be at least 1"))
	}
	return errors.Join(errs...)
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	var c cfg
	fs := flag.NewFlagSet("projector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Bind(fs, config.DefaultProjector)
	fs.StringVar(&c.Store, "store", config.Env("PYRITE_STORE", ".pyrite/projector.db"),
		"read-model store: a SQLite file path (or sqlite:///path) or a postgres:// URL (env PYRITE_STORE)")
	fs.StringVar(&c.Profile, "profile", config.Env("PYRITE_PROFILE", "dev"), "topology profile: dev or production (env PYRITE_PROFILE)")
	fs.IntVar(&c.CacheSize, "cache-size", 10_000, "work efforts kept in the read cache (0 turns it off)")
	fs.IntVar(&c.BatchSize, "batch-size", 500, "most events applied in one database transaction")
	fs.StringVar(&c.InstanceID, "instance-id", config.Env("PYRITE_INSTANCE_ID", ""),
		"static consumer-group member id (e.g. the pod name): a restarted instance takes its partitions back at once; unique per instance (env PYRITE_INSTANCE_ID; empty: dynamic membership)")
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
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ln, err := server.Listen(c.Addr, "addr")
	if err != nil {
		return err
	}
	return projector.Run(ctx, ln, projector.Options{
		Brokers: c.Brokers, Registry: c.Registry, Store: c.Store, Topology: topo,
		Metrics: reg, Logger: slog.New(slog.NewJSONHandler(stderr, nil)),
		CacheSize: c.CacheSize, BatchSize: c.BatchSize, InstanceID: c.InstanceID,
	})
}
