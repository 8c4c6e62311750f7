package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

func topologyCommands() []command {
	return []command{
		{name: "plan", summary: "print how the cluster differs from the declared topology (changes nothing)", run: runTopologyPlan},
		{name: "apply", summary: "create missing topics, set drifted configs, add missing partitions", run: runTopologyApply},
	}
}

// topologyFlags are the flags shared by topology plan and apply.
type topologyFlags struct {
	brokers string
	profile string
	timeout time.Duration
	kafka   kafkaconn.Config
}

func (f *topologyFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "brokers", config.Env("PYRITE_BROKERS", config.DefaultBrokers),
		"comma-separated Kafka seed brokers, host:port (env PYRITE_BROKERS)")
	fs.StringVar(&f.profile, "profile", "dev",
		"topology profile: dev (replication 1, 3 partitions) or production (replication 3, min.insync.replicas 2, 12 partitions)")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second,
		"give up when the cluster has not answered within this time")
	f.kafka.Bind(fs)
}

// validate returns every problem at once, as a usage error.
func (f *topologyFlags) validate() (topology.Profile, []string, error) {
	var errs []error
	brokers := config.SplitList(f.brokers)
	if len(brokers) == 0 {
		errs = append(errs, errors.New("--brokers: at least one broker is required"))
	}
	for _, b := range brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("--brokers: %q is not host:port", b))
		}
	}
	p, err := topology.ParseProfile(f.profile)
	if err != nil {
		errs = append(errs, fmt.Errorf("--profile: %w", err))
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %v is not positive", f.timeout))
	}
	errs = append(errs, f.kafka.Validate())
	if err := errors.Join(errs...); err != nil {
		return "", nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return p, brokers, nil
}

// connect declares the topology and opens an admin client; close it when done.
func (f *topologyFlags) connect() (*topology.Topology, *kadm.Client, error) {
	p, brokers, err := f.validate()
	if err != nil {
		return nil, nil, err
	}
	top, err := modules.Topology(p)
	if err != nil {
		return nil, nil, err
	}
	conn, err := f.kafka.Opts()
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append(conn, kgo.SeedBrokers(brokers...), kgo.ClientID("pyrite-cli"))...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	return top, kadm.NewClient(cl), nil
}

const planUsage = `
Compares the declared topology (DESIGN.md section 3) with the cluster and
prints every difference: topics to create (+), configs or partition counts
to change (~), and what apply cannot fix (!), such as a topic with more
partitions than declared, a wrong replication factor, or an aggregate whose
raw and events topics have different partition counts. It changes nothing.

Exit code 0 whether or not there are changes (unless --exit-code), 1 when
the cluster cannot be read, 2 on usage errors.`

func runTopologyPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f topologyFlags
	fs := newFlagSet("pyrite topology plan", planUsage, stderr)
	f.bind(fs)
	exitCode := fs.Bool("exit-code", false, "exit 1 when the plan has any change (for CI drift checks)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	top, adm, err := f.connect()
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	p, err := top.Plan(ctx, adm)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "topology %s: %d topics declared\n", top.Profile(), len(top.Topics()))
	printPlan(stdout, p)
	if *exitCode && !p.Empty() {
		return fmt.Errorf("%w%w: plan has %d changes", errFindings, errReported, len(p.Changes))
	}
	return nil
}

const applyUsage = `
Plans as 'pyrite topology plan' does, then makes every fixable change:
creates missing topics with their declared partitions, replication and
configs, sets drifted configs (incremental alter; other configs are left
alone) and adds partitions up to the declared count. It never deletes a
topic or removes partitions. Running it again is harmless.

Adding partitions to a raw or events topic moves keys to new partitions:
drain the pipeline first, or per-aggregate order breaks across the change.

Exit code 0 when the cluster matches afterwards, 1 when a change failed or
changes that apply cannot make remain (they are listed), 2 on usage errors.`

func runTopologyApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f topologyFlags
	fs := newFlagSet("pyrite topology apply", applyUsage, stderr)
	f.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	top, adm, err := f.connect()
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()

	p, err := top.Plan(ctx, adm)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "topology %s: %d topics declared\n", top.Profile(), len(top.Topics()))
	if p.Empty() {
		fmt.Fprintln(stdout, "no changes: the cluster matches the declared topology")
		return nil
	}
	applied, applyErr := topology.Apply(ctx, adm, p)
	for _, c := range applied {
		fmt.Fprintf(stdout, "applied %s\n", c)
	}
	if applyErr != nil {
		return applyErr
	}
	after, err := top.Plan(ctx, adm)
	if err != nil {
		return fmt.Errorf("plan after apply: %w", err)
	}
	if after.Empty() {
		fmt.Fprintf(stdout, "done: %d changes applied, the cluster matches the declared topology\n", len(applied))
		return nil
	}
	fmt.Fprintf(stdout, "left after apply (%d):\n", len(after.Changes))
	for _, c := range after.Changes {
		fmt.Fprintf(stdout, "%s\n", c)
	}
	return fmt.Errorf("%w: %d changes remain that apply cannot make", errFindings, len(after.Changes))
}

func printPlan(w io.Writer, p topology.Plan) {
	if p.Empty() {
		fmt.Fprintln(w, "no changes: the cluster matches the declared topology")
		return
	}
	fmt.Fprintln(w, p)
	fix, unfix := len(p.Fixable()), len(p.Unfixable())
	fmt.Fprintf(w, "%d changes: %d fixable by 'pyrite topology apply', %d not fixable by apply\n", fix+unfix, fix, unfix)
}
