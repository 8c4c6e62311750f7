package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/pyrite-dev/pyrite/internal/topology"
)

func aclCommands() []command {
	return []command{
		{name: "plan", summary: "print how the cluster's ACLs differ from each service principal's declared set (changes nothing)", run: runACLPlan},
		{name: "apply", summary: "create the missing ACLs of each service principal (deletes nothing)", run: runACLApply},
	}
}

const aclUsage = `
The least-privilege ACLs of each service principal are declared beside the
topology (internal/topology/acl.go): ingest writes and reads the raw topics,
the upcaster reads raw and writes events and its DLQ, the projector (with its
reactors, sagas and process managers) reads events and writes its retry, DLQ,
integration and saga topics, the registry owns _schemas; each with its
consumer groups and transactional ids. Each service is the Kafka user named
as the service unless --user says otherwise. Connect as a user allowed to
describe and create ACLs (a superuser).

plan lists the missing ACLs (+) and other ALLOW entries the principals hold
(!, which apply leaves alone); apply creates the missing ones.
Exit code 0 ok (plan: whether or not there are changes, unless --exit-code),
1 on failure, 2 on usage errors.`

// aclFlags are the flags of acl plan and apply: topology's (connection,
// profile, timeout), the user of each service and the output format.
type aclFlags struct {
	topologyFlags
	users  topology.Users
	output string
}

func (f *aclFlags) bind(fs *flag.FlagSet) {
	f.topologyFlags.bind(fs)
	f.users = topology.Users{}
	fs.Func("user", "service=kafka-user: the Kafka user a service runs as (repeatable; services: "+strings.Join(topology.Services(), ", ")+")", func(s string) error {
		svc, user, ok := strings.Cut(s, "=")
		if !ok || user == "" || !slices.Contains(topology.Services(), svc) {
			return fmt.Errorf("%q is not service=user with a service among %v", s, topology.Services())
		}
		f.users[svc] = user
		return nil
	})
	fs.StringVar(&f.output, "output", "text", "output format: text or json")
}

// plan connects and plans; close the client when done.
func (f *aclFlags) plan(ctx context.Context) (topology.ACLPlan, *kadm.Client, error) {
	if f.output != "text" && f.output != "json" {
		return topology.ACLPlan{}, nil, fmt.Errorf("%w: --output: %q is not text or json", errUsage, f.output)
	}
	top, adm, err := f.connect()
	if err != nil {
		return topology.ACLPlan{}, nil, err
	}
	p, err := top.PlanACLs(ctx, adm, f.users)
	if err != nil {
		adm.Close()
		return p, nil, err
	}
	return p, adm, nil
}

func (f *aclFlags) print(w io.Writer, p topology.ACLPlan, applied int) error {
	if f.output == "json" {
		p.Missing, p.Extra = cmpNonNil(p.Missing), cmpNonNil(p.Extra)
		out := struct {
			topology.ACLPlan
			Applied int `json:"applied"`
		}{p, applied}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, a := range p.Missing {
		verb := "+"
		if applied > 0 {
			verb = "created"
		}
		fmt.Fprintf(w, "%s %s\n", verb, a)
	}
	for _, a := range p.Extra {
		fmt.Fprintf(w, "! %s (not declared; left alone)\n", a)
	}
	switch {
	case p.Empty():
		fmt.Fprintln(w, "no changes: every service principal has exactly its declared ACLs")
	case applied > 0:
		fmt.Fprintf(w, "%d ACLs created, %d undeclared left alone\n", applied, len(p.Extra))
	default:
		fmt.Fprintf(w, "%d missing (apply creates them), %d undeclared (apply leaves them)\n", len(p.Missing), len(p.Extra))
	}
	return nil
}

func cmpNonNil(a []topology.ACL) []topology.ACL {
	if a == nil {
		return []topology.ACL{}
	}
	return a
}

func runACLPlan(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f aclFlags
	fs := newFlagSet("pyrite acl plan", aclUsage, stderr)
	f.bind(fs)
	exitCode := fs.Bool("exit-code", false, "exit 1 when the plan has any change (for CI drift checks)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	p, adm, err := f.plan(ctx)
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := f.print(stdout, p, 0); err != nil {
		return err
	}
	if *exitCode && !p.Empty() {
		return fmt.Errorf("%w%w: ACL plan has %d changes", errFindings, errReported, len(p.Missing)+len(p.Extra))
	}
	return nil
}

func runACLApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f aclFlags
	fs := newFlagSet("pyrite acl apply", aclUsage, stderr)
	f.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	p, adm, err := f.plan(ctx)
	if err != nil {
		return err
	}
	defer adm.Close()
	if err := topology.ApplyACLs(ctx, adm, p); err != nil {
		return err
	}
	return f.print(stdout, p, len(p.Missing))
}
