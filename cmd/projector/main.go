// Command projector runs Pyrite's projections (read models fed by consumer
// groups, stored in SQLite or PostgreSQL with their Kafka positions), serves
// the query API, and runs the reactors, sagas and process managers that are
// turned on (integration events and the deployment process manager by
// default; email, webhooks and the GitHub saga once configured), each as its
// own consumer group.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/domain"
	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/tracing"
	"github.com/pyrite-dev/pyrite/internal/webhook"
)

func main() { server.Main("projector", run) }

type cfg struct {
	config.Common
	Store       string
	Profile     string
	CacheSize   int
	BatchSize   int
	InstanceID  string
	AuthFile    string
	MetricsAuth bool

	Integration     bool
	Deployment      bool
	DeployTimeout   time.Duration
	DeployEnv       string
	DeployPoll      time.Duration
	SMTP            reactor.SMTPConfig
	WebhooksFile    string
	WebhookAttempts int
	WebhookTimeout  time.Duration
	GitHub          githubsaga.Config
	Attempts        int
	RetryDelay      time.Duration
	MaxRetryDelay   time.Duration
	// Secrets read from files (--smtp-password-file, --github-token-file) in place of the
	// environment.
	SMTPPasswordFile string
	GitHubTokenFile  string
	// EventStore is ingest's event store for the saga's and process manager's appends;
	// its token from EventStoreTokenFile.
	EventStore          eventstore.ClientConfig
	EventStoreTokenFile string

	env config.Defaults // PYRITE_* defaults of other kinds than strings
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
	errs = append(errs, c.env.Err())
	if c.DeployTimeout <= 0 || c.DeployPoll <= 0 {
		errs = append(errs, errors.New("--deployment-step-timeout and --deployment-poll must be positive"))
	}
	if err := c.SMTP.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("--smtp-*: %w", err))
	}
	if c.SMTP.Host == "" && (c.SMTP.From != "" || c.SMTP.Username != "") {
		errs = append(errs, errors.New("--smtp-from or --smtp-username is set but --smtp-host is not"))
	}
	if c.WebhookAttempts < 1 || c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("--webhook-attempts must be at least 1 and --webhook-timeout positive"))
	}
	if c.GitHub.Enabled() {
		if err := c.GitHub.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--github-*: %w (the token comes from PYRITE_GITHUB_TOKEN or GITHUB_TOKEN)", err))
		}
	}
	if c.GitHub.Attempts < 1 || c.Attempts < 1 || c.RetryDelay <= 0 || c.MaxRetryDelay < c.RetryDelay {
		errs = append(errs, errors.New("--github-attempts and --reactor-attempts must be at least 1, --reactor-retry-delay positive and at most --reactor-max-retry-delay"))
	}
	return errors.Join(errs...)
}

// bindReactors registers the flags of the reactors, sagas and process
// managers; secrets come from the environment only.
func (c *cfg) bindReactors(fs *flag.FlagSet) {
	fs.BoolVar(&c.Integration, "integration", c.env.Bool("PYRITE_INTEGRATION", true),
		"run the integration reactor: WorkEffort:Completed becomes work-effort.completed.v1 on pyrite.integration (env PYRITE_INTEGRATION)")
	fs.BoolVar(&c.Deployment, "deployment", c.env.Bool("PYRITE_DEPLOYMENT", true),
		"run the deployment process manager: RunTests, RunBuild, RunDeploy after each completed work effort (env PYRITE_DEPLOYMENT)")
	fs.DurationVar(&c.DeployTimeout, "deployment-step-timeout", c.env.Duration("PYRITE_DEPLOYMENT_STEP_TIMEOUT", deployment.DefaultStepTimeout),
		"how long a deployment step may take before it times out and the process fails (env PYRITE_DEPLOYMENT_STEP_TIMEOUT)")
	fs.StringVar(&c.DeployEnv, "deployment-environment", config.Env("PYRITE_DEPLOYMENT_ENVIRONMENT", deployment.DefaultEnvironment),
		"environment RunDeploy deploys to (env PYRITE_DEPLOYMENT_ENVIRONMENT)")
	fs.DurationVar(&c.DeployPoll, "deployment-poll", c.env.Duration("PYRITE_DEPLOYMENT_POLL", deployment.DefaultPollInterval),
		"how often due deployment deadlines are looked for (env PYRITE_DEPLOYMENT_POLL)")

	fs.StringVar(&c.SMTP.Host, "smtp-host", config.Env("PYRITE_SMTP_HOST", ""),
		"SMTP server of the notification reactor, which emails the assignee of each completed work effort; empty turns it off (env PYRITE_SMTP_HOST)")
	fs.IntVar(&c.SMTP.Port, "smtp-port", c.env.Int("PYRITE_SMTP_PORT", 587), "SMTP server port (env PYRITE_SMTP_PORT)")
	fs.StringVar(&c.SMTP.Username, "smtp-username", config.Env("PYRITE_SMTP_USERNAME", ""),
		"SMTP user for AUTH PLAIN; the password is read from PYRITE_SMTP_PASSWORD; empty: no authentication (env PYRITE_SMTP_USERNAME)")
	fs.StringVar(&c.SMTP.From, "smtp-from", config.Env("PYRITE_SMTP_FROM", ""),
		`sender address of notification emails, e.g. "Pyrite <pyrite@example.com>" (env PYRITE_SMTP_FROM)`)
	fs.StringVar(&c.SMTP.TLS, "smtp-tls", config.Env("PYRITE_SMTP_TLS", reactor.TLSStartTLS),
		"SMTP security: starttls (upgrade when offered), implicit (TLS from the start, port 465) or none (env PYRITE_SMTP_TLS)")
	c.SMTP.Password = os.Getenv("PYRITE_SMTP_PASSWORD")
	fs.StringVar(&c.SMTPPasswordFile, "smtp-password-file", config.Env("PYRITE_SMTP_PASSWORD_FILE", ""),
		"file holding the SMTP password, instead of PYRITE_SMTP_PASSWORD (env PYRITE_SMTP_PASSWORD_FILE)")

	fs.StringVar(&c.WebhooksFile, "webhooks", config.Env("PYRITE_WEBHOOKS", ""),
		`JSON file of webhook subscriptions, [{"id","url","events":[patterns],"secret":"whsec_..." or "secretEnv":"VAR"}]; empty turns the webhook reactor off (env PYRITE_WEBHOOKS)`)
	fs.IntVar(&c.WebhookAttempts, "webhook-attempts", c.env.Int("PYRITE_WEBHOOK_ATTEMPTS", 8),
		"deliveries of one event to one subscriber, counting the first, before it is dead-lettered (env PYRITE_WEBHOOK_ATTEMPTS)")
	fs.DurationVar(&c.WebhookTimeout, "webhook-timeout", c.env.Duration("PYRITE_WEBHOOK_TIMEOUT", 10*time.Second),
		"time limit of one webhook POST (env PYRITE_WEBHOOK_TIMEOUT)")

	fs.StringVar(&c.GitHub.Repository, "github-repo", config.Env("PYRITE_GITHUB_REPO", ""),
		"owner/name of the repository the GitHub saga opens an issue in for each started work effort; the token is read from PYRITE_GITHUB_TOKEN (or GITHUB_TOKEN); empty turns the saga off (env PYRITE_GITHUB_REPO)")
	fs.StringVar(&c.GitHub.BaseURL, "github-url", config.Env("PYRITE_GITHUB_URL", "https://api.github.com/"),
		"GitHub REST API base URL; for GitHub Enterprise Server https://HOST/api/v3/ (env PYRITE_GITHUB_URL)")
	fs.IntVar(&c.GitHub.Attempts, "github-attempts", c.env.Int("PYRITE_GITHUB_ATTEMPTS", 5),
		"tries to create or close an issue before the saga gives up (then GitHubIssueCreationFailed and NeedsManualSync) (env PYRITE_GITHUB_ATTEMPTS)")
	c.GitHub.Token = config.Env("PYRITE_GITHUB_TOKEN", os.Getenv("GITHUB_TOKEN"))
	fs.StringVar(&c.GitHubTokenFile, "github-token-file", config.Env("PYRITE_GITHUB_TOKEN_FILE", ""),
		"file holding the GitHub token, instead of PYRITE_GITHUB_TOKEN (env PYRITE_GITHUB_TOKEN_FILE)")

	fs.StringVar(&c.EventStore.URL, "eventstore-url", config.Env("PYRITE_EVENTSTORE_URL", ""),
		"ingest's base URL: the GitHub saga and the deployment process manager then append their events through its event store (POST /v1/eventstore/append), each with its aggregate version, a repeat a duplicate; empty: they produce raw records straight to Kafka (env PYRITE_EVENTSTORE_URL)")
	fs.StringVar(&c.EventStoreTokenFile, "eventstore-token-file", config.Env("PYRITE_EVENTSTORE_TOKEN_FILE", ""),
		"file holding the ingest bearer token for --eventstore-url, one whose types allow WorkEffort:* and Deployment:* (env PYRITE_EVENTSTORE_TOKEN_FILE)")
	fs.IntVar(&c.Attempts, "reactor-attempts", c.env.Int("PYRITE_REACTOR_ATTEMPTS", 5),
		"deliveries of an event to a failing reactor handler, counting the first, before it is dead-lettered (env PYRITE_REACTOR_ATTEMPTS)")
	fs.DurationVar(&c.RetryDelay, "reactor-retry-delay", c.env.Duration("PYRITE_REACTOR_RETRY_DELAY", time.Second),
		"wait before the first redelivery to a failing reactor, doubled for each next one (env PYRITE_REACTOR_RETRY_DELAY)")
	fs.DurationVar(&c.MaxRetryDelay, "reactor-max-retry-delay", c.env.Duration("PYRITE_REACTOR_MAX_RETRY_DELAY", time.Minute),
		"longest wait between redeliveries to a failing reactor (env PYRITE_REACTOR_MAX_RETRY_DELAY)")
}

// reactors turns the parsed flags into the projector's reactor options for the modules of
// w, reading the webhook subscriptions file.
func (c *cfg) reactors(w domain.Wiring) (projector.Reactors, error) {
	if err := readSecret(c.SMTPPasswordFile, "--smtp-password-file", &c.SMTP.Password); err != nil {
		return projector.Reactors{}, err
	}
	if err := readSecret(c.GitHubTokenFile, "--github-token-file", &c.GitHub.Token); err != nil {
		return projector.Reactors{}, err
	}
	if err := readSecret(c.EventStoreTokenFile, "--eventstore-token-file", &c.EventStore.Token); err != nil {
		return projector.Reactors{}, err
	}
	r := projector.Reactors{
		EventStore:      c.EventStore,
		SMTP:            c.SMTP,
		Notifications:   w.Notifications,
		WebhookAttempts: c.WebhookAttempts,
		Retry:           reactor.Retry{MaxAttempts: c.Attempts, Delay: c.RetryDelay, MaxDelay: c.MaxRetryDelay},
	}
	if c.Integration {
		r.Integrations = w.Integrations
	}
	var mr modules.Reactors
	if c.Deployment {
		mr.Deployment = &deployment.Config{StepTimeout: c.DeployTimeout, Environment: c.DeployEnv, PollInterval: c.DeployPoll}
	}
	if c.GitHub.Enabled() {
		mr.GitHub = c.GitHub
		mr.GitHub.Backoff = c.RetryDelay
	}
	r.Domain = mr.Specs()
	if c.WebhooksFile != "" {
		data, err := os.ReadFile(c.WebhooksFile)
		if err != nil {
			return r, fmt.Errorf("--webhooks: %w", err)
		}
		subs, err := webhook.ParseSubscriptions(data, nil)
		if err != nil {
			return r, fmt.Errorf("--webhooks %s: %w", c.WebhooksFile, err)
		}
		r.Webhooks = webhook.Config{Subscriptions: subs, Timeout: c.WebhookTimeout}
	}
	return r, nil
}

// readSecret sets *dst to the content of path (a trailing newline dropped) when path is set.
func readSecret(path, flagName string, dst *string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flagName, err)
	}
	if *dst = strings.TrimRight(string(b), "\r\n"); *dst == "" {
		return fmt.Errorf("%s: %s is empty", flagName, path)
	}
	return nil
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
		"static consumer-group member id (e.g. the pod name): an instance restarted after a crash takes its partitions back at once; a clean stop leaves the group, so its partitions move; unique per instance (env PYRITE_INSTANCE_ID; empty: dynamic membership)")
	fs.StringVar(&c.AuthFile, "auth-file", config.Env("PYRITE_AUTH_FILE", ""),
		`JSON file of bearer tokens, {"tokens": [{"token", "principal"}]}: the query API and the live stream (everything under /v1/) then need one of them; empty: open (env PYRITE_AUTH_FILE)`)
	fs.BoolVar(&c.MetricsAuth, "metrics-auth", c.env.Bool("PYRITE_METRICS_AUTH", false),
		"with --auth-file, GET /metrics also needs one of its tokens (/healthz and /readyz stay open) (env PYRITE_METRICS_AUTH)")
	c.bindReactors(fs)
	var tc tracing.Config
	tc.Bind(fs, "projector", os.Getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(c.validate(), tc.Validate()); err != nil {
		return err
	}
	mods, err := modules.Wire()
	if err != nil {
		return err
	}
	reactors, err := c.reactors(mods)
	if err != nil {
		return err
	}
	profile, _ := topology.ParseProfile(c.Profile)
	topo, err := topology.New(profile, mods.Topology()...)
	if err != nil {
		return err
	}
	log := tracing.NewLogger(stderr, nil)
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
	return projector.Run(ctx, ln, projector.Options{
		Conn: conn, Auth: auth, MetricsAuth: c.MetricsAuth,
		Brokers: c.Brokers, Registry: c.Registry, Store: c.Store, Topology: topo,
		Metrics: reg, Logger: log,
		CacheSize: c.CacheSize, BatchSize: c.BatchSize, InstanceID: c.InstanceID,
		Reactors: reactors, Schemas: mods.Schemas,
		ReadModels: mods.ReadModels,
		KafkaOpts:  append(c.Compression.KafkaOpts(), tr.KafkaOpts(workeffort.Projection)...),
	})
}
