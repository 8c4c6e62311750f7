// Command ingest is Pyrite's HTTP API for other services: POST /v1/events
// and POST /v1/events:batch turn JSON into Avro records on the raw topics,
// through the event store (aggregate versions, expectedVersion, event id
// dedupe, one writer per partition shared by the instances of --group), and
// GET /v1/streams/{aggregateId} reads a stream back.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/tracing"
)

func main() { server.Main("ingest", run) }

type cfg struct {
	config.Common
	Profile   string
	TxnPrefix string
	MaxBody   int64
	MaxBatch  int

	Group          string
	Advertise      string
	DedupeWindow   time.Duration
	DedupeMax      int
	SessionTimeout time.Duration
	InstanceID     string
	OwnerWait      time.Duration
	AuthFile       string
	MetricsAuth    bool

	env config.Defaults // PYRITE_* defaults of other kinds than strings
}

func (c *cfg) validate() error {
	errs := []error{c.Common.Validate(), c.env.Err()}
	if _, err := topology.ParseProfile(c.Profile); err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if c.MaxBody < 1024 {
		errs = append(errs, errors.New("--max-body must be at least 1024 bytes"))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, errors.New("--max-batch must be at least 1"))
	}
	if c.Group == "" {
		errs = append(errs, errors.New("--group must not be empty"))
	}
	if c.Advertise != "" {
		if u, err := url.Parse(c.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--advertise: %q is not an http(s) URL", c.Advertise))
		}
	}
	if c.DedupeWindow <= 0 {
		errs = append(errs, errors.New("--dedupe-window must be positive"))
	}
	if c.DedupeMax < 1 {
		errs = append(errs, errors.New("--dedupe-max must be at least 1"))
	}
	if c.OwnerWait < 0 {
		errs = append(errs, errors.New("--owner-wait must not be negative"))
	}
	if c.SessionTimeout < time.Second {
		errs = append(errs, errors.New("--session-timeout must be at least 1s (brokers usually require 6s)"))
	}
	return errors.Join(errs...)
}

func (c *cfg) bind(fs *flag.FlagSet) {
	c.Bind(fs, config.DefaultIngest)
	fs.StringVar(&c.Profile, "profile", config.Env("PYRITE_PROFILE", "dev"), "topology profile: dev or production (env PYRITE_PROFILE)")
	fs.StringVar(&c.TxnPrefix, "txn-prefix", config.Env("PYRITE_TXN_PREFIX", ""),
		"transactional id prefix for batches of system and integration events; unique per instance (default pyrite-ingest-<advertised host:port>) (env PYRITE_TXN_PREFIX)")
	fs.Int64Var(&c.MaxBody, "max-body", int64(c.env.Int("PYRITE_MAX_BODY", ingest.DefaultMaxBody)),
		"largest accepted body of POST /v1/events, in bytes (batches take 8 times this) (env PYRITE_MAX_BODY)")
	fs.IntVar(&c.MaxBatch, "max-batch", c.env.Int("PYRITE_MAX_BATCH", ingest.DefaultMaxBatch), "most events accepted in one batch (env PYRITE_MAX_BATCH)")
	fs.StringVar(&c.Group, "group", config.Env("PYRITE_GROUP", eventstore.DefaultGroup),
		"consumer group the ingest instances share the raw partitions through; the same on every instance of a deployment; "+
			"partition writers use the transactional ids <group>-<topic>-<partition> (env PYRITE_GROUP)")
	fs.StringVar(&c.Advertise, "advertise", config.Env("PYRITE_ADVERTISE", ""),
		"base URL the other instances forward this one's requests to (default http://<--addr>, with this host's name for a wildcard address) (env PYRITE_ADVERTISE)")
	fs.DurationVar(&c.DedupeWindow, "dedupe-window", c.env.Duration("PYRITE_DEDUPE_WINDOW", eventstore.DefaultDedupeWindow),
		"how long an event id is remembered after its write: a retry within it answers the first result and writes nothing (env PYRITE_DEDUPE_WINDOW)")
	fs.IntVar(&c.DedupeMax, "dedupe-max", c.env.Int("PYRITE_DEDUPE_MAX", eventstore.DefaultDedupeMax),
		"most event ids remembered per partition; the oldest are forgotten first (env PYRITE_DEDUPE_MAX)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", c.env.Duration("PYRITE_SESSION_TIMEOUT", eventstore.DefaultSessionTimeout),
		"group session timeout: how long the partitions of an instance that died answer 503 before another takes them (env PYRITE_SESSION_TIMEOUT)")
	fs.DurationVar(&c.OwnerWait, "owner-wait", c.env.Duration("PYRITE_OWNER_WAIT", ingest.DefaultOwnerWait),
		"how long a request waits for its partition to settle (a rebalance, a rebuild) before it is answered 503 (env PYRITE_OWNER_WAIT)")
	fs.StringVar(&c.AuthFile, "auth-file", config.Env("PYRITE_AUTH_FILE", ""),
		`JSON file of bearer tokens, {"tokens": [{"token", "principal", "types": [patterns], "setUserId"?}]}: /v1/ then needs a token, `+
			"and each token writes only its event types; empty: no authentication (env PYRITE_AUTH_FILE)")
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", c.env.Bool("PYRITE_METRICS_AUTH", false),
		"with --auth-file, GET /metrics also needs one of its tokens (/healthz and /readyz stay open) (env PYRITE_METRICS_AUTH)")
	fs.StringVar(&c.InstanceID, "instance-id", config.Env("PYRITE_INSTANCE_ID", ""),
		"static group member id: a restart after a crash, within the session timeout, keeps the partitions without a rebalance; a clean stop leaves the group; unique per instance, "+
			"and keep --advertise the same across restarts (the others learn addresses at rebalances) (env PYRITE_INSTANCE_ID)")
}

// ownerWait maps --owner-wait 0 (answer at once) to the Config's "no wait".
func ownerWait(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	var c cfg
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.bind(fs)
	var tc tracing.Config
	tc.Bind(fs, "ingest", os.Getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(c.validate(), tc.Validate()); err != nil {
		return err
	}
	profile, _ := topology.ParseProfile(c.Profile)
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	topo, err := topology.New(profile, mods.Topology()...)
	if err != nil {
		return err
	}
	log := tracing.NewLogger(stderr, nil)
	// With tracing on, each record's send span continues the trace of its
	// traceparent header (the caller's, or a new one).
	tr, err := tracing.New(ctx, tc)
	if err != nil {
		return err
	}
	defer tr.Close(log)
	conn, err := c.Kafka.Opts()
	if err != nil {
		return err
	}
	var auth *httpauth.Tokens
	if c.AuthFile != "" {
		if auth, err = httpauth.LoadTokens(c.AuthFile); err != nil {
			return fmt.Errorf("--auth-file: %w", err)
		}
	}
	reg := server.NewRegistry()
	ln, err := server.Listen(c.Addr, "addr")
	if err != nil {
		return err
	}
	if ln, err = server.WithTLS(ln, c.TLSCert, c.TLSKey); err != nil {
		return err
	}
	return ingest.Run(ctx, ln, ingest.Options{
		Brokers: c.Brokers, Registry: c.Registry, TxnPrefix: c.TxnPrefix, Auth: auth, MetricsAuth: c.MetricsAuth,
		Topology: topo, Chain: mods.Chain, Metrics: reg, Logger: log, KafkaOpts: slices.Concat(conn, c.Compression.KafkaOpts(), tr.KafkaOpts("")),
		Config: ingest.Config{MaxBody: c.MaxBody, MaxBatchBody: 8 * c.MaxBody, MaxBatch: c.MaxBatch, OwnerWait: ownerWait(c.OwnerWait),
			Folds: mods.Folds, Commands: mods.Commands},
		Store: ingest.StoreOptions{
			Group: c.Group, Advertise: c.Advertise, DedupeWindow: c.DedupeWindow, DedupeMax: c.DedupeMax,
			SessionTimeout: c.SessionTimeout, InstanceID: c.InstanceID,
		},
	})
}
