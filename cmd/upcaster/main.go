// Command upcaster reads every pyrite.<aggregate>.raw topic and writes each record to
// pyrite.<aggregate>.events at the newest registered schema version of its type, in Kafka
// transactions that also commit the consumed offsets (exactly once for read_committed
// consumers). Records it cannot upcast go to pyrite.upcaster.dlq. It refuses to start when a
// registered schema version has no path to the newest. See internal/upcaster/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/tracing"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

func main() { server.Main("upcaster", run) }

type cfg struct {
	config.Common
	Profile        string
	Group          string
	TxnID          string
	InstanceID     string
	Mode           string
	LatestRefresh  time.Duration
	SessionTimeout time.Duration
	TxnTimeout     time.Duration
	MaxPoll        int
	Tracing        tracing.Config
}

func (c *cfg) validate() error {
	errs := []error{c.Common.Validate()}
	if _, err := topology.ParseProfile(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	mode, err := upcaster.ParseMode(c.Mode)
	if err != nil {
		errs = append(errs, fmt.Errorf("--mode: %w", err))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("--group must not be empty"))
	}
	if mode == upcaster.Transactional && c.TxnID == "" {
		errs = append(errs, errors.New("--txn-id must not be empty in transactional mode"))
	}
	if c.LatestRefresh < 100*time.Millisecond {
		errs = append(errs, errors.New("--latest-refresh must be at least 100ms"))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, errors.New("--session-timeout must be at least 1s"))
	}
	if c.TxnTimeout < time.Second {
		errs = append(errs, errors.New("--txn-timeout must be at least 1s"))
	}
	if c.MaxPoll < 1 {
		errs = append(errs, errors.New("--max-poll must be at least 1"))
	}
	errs = append(errs, c.Tracing.Validate())
	return errors.Join(errs...)
}

func parse(args []string, stderr io.Writer) (*cfg, error) {
	var c cfg
	fs := flag.NewFlagSet("upcaster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.Bind(fs, config.DefaultUpcaster)
	host, _ := os.Hostname()
	fs.StringVar(&c.Profile, "profile", config.Env("PYRITE_PROFILE", "dev"), "topology profile: dev or production (env PYRITE_PROFILE)")
	fs.StringVar(&c.Group, "group", config.Env("PYRITE_UPCASTER_GROUP", upcaster.DefaultConsumerGroup), "Kafka consumer group shared by every upcaster instance (env PYRITE_UPCASTER_GROUP)")
	fs.StringVar(&c.TxnID, "txn-id", config.Env("PYRITE_TXN_ID", "pyrite-upcaster-"+host), "transactional id: keep it stable across restarts of an instance and unique across instances (env PYRITE_TXN_ID)")
	fs.StringVar(&c.InstanceID, "instance-id", config.Env("PYRITE_INSTANCE_ID", ""), "static group membership id: an instance restarted after a crash takes its partitions back without a rebalance; a clean stop leaves the group; empty for dynamic membership (env PYRITE_INSTANCE_ID)")
	fs.StringVar(&c.Mode, "mode", string(upcaster.Transactional), "transactional (exactly once) or at-least-once (for comparison)")
	fs.DurationVar(&c.LatestRefresh, "latest-refresh", upcaster.DefaultLatestRefresh, "how long the newest version of a type is cached before the registry is asked again: a newly registered version becomes the output version within this interval")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 45*time.Second, "consumer group session timeout: how long a silent instance keeps its partitions")
	fs.DurationVar(&c.TxnTimeout, "txn-timeout", 40*time.Second, "transaction timeout: how long the broker waits before aborting an instance's open transaction")
	fs.IntVar(&c.MaxPoll, "max-poll", 5000, "most records in one batch (one transaction)")
	c.Tracing.Bind(fs, "upcaster", os.Getenv)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return &c, c.validate()
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	profile, _ := topology.ParseProfile(c.Profile)
	mode, _ := upcaster.ParseMode(c.Mode)
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	topo, err := topology.New(profile, mods.Topology()...)
	if err != nil {
		return err
	}
	log := tracing.NewLogger(stderr, nil)
	tr, err := tracing.New(ctx, c.Tracing)
	if err != nil {
		return err
	}
	defer tr.Close(log)
	conn, err := c.Kafka.Opts()
	if err != nil {
		return err
	}
	reg := server.NewRegistry()
	ln, err := server.Listen(c.Addr, "addr")
	if err != nil {
		return err
	}
	if ln, err = server.WithTLS(ln, c.TLSCert, c.TLSKey); err != nil {
		return err
	}
	kopts := append(conn, kgo.SessionTimeout(c.SessionTimeout), kgo.TransactionTimeout(c.TxnTimeout))
	if c.InstanceID != "" {
		kopts = append(kopts, kgo.InstanceID(c.InstanceID))
	}
	kopts = append(kopts, c.Compression.KafkaOpts()...)
	kopts = append(kopts, tr.KafkaOpts(c.Group)...)
	return upcaster.Run(ctx, ln, upcaster.Options{
		Brokers: c.Brokers, Registry: c.Registry, Topology: topo, Chain: mods.Chain, Metrics: reg, Logger: log,
		LatestRefresh: c.LatestRefresh, KafkaOpts: kopts,
		Config: upcaster.Config{ConsumerGroup: c.Group, TransactionalID: c.TxnID, Mode: mode, MaxPollRecords: c.MaxPoll},
	})
}
