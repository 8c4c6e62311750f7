// Command pyrite is the operator CLI for the Pyrite event pipeline: it
// declares Kafka topics (topology plan/apply), registers and checks event
// schemas against the schema registry (schema register/check), reads topics
// (tail), shows consumer lag (lag), moves groups back (replay), rebuilds
// store-positioned projections (projection rebuild), handles dead letters
// (dlq list/show/redrive/skip), lists and records live reader schemas (schema
// readers) and runs the whole stack in one process (dev). 'pyrite help'
// lists every command; 'pyrite completion bash|zsh' prints completion.
//
// Every command accepts the global connection flags (global.go), whether it
// uses them or not, so one command line serves them all.
//
// Exit codes: 0 success; 1 failure, or findings where a command documents
// them (drift that apply cannot fix, incompatible schemas, plan
// --exit-code with changes); 2 usage errors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

var (
	// errUsage marks a usage mistake: exit code 2.
	errUsage = errors.New("usage")
	// errReported marks an error whose details are already printed.
	errReported = errors.New("reported")
	// errFindings marks a command that ran but found what it reports as a
	// failure (drift apply cannot fix, incompatible schemas): exit code 1.
	errFindings = errors.New("failed")
	// errRefused marks a command that would change nothing (or harm) and says what
	// would work instead: exit code 1.
	errRefused = errors.New("refused")
)

// runFunc is a command's body: args after the command name, output to
// stdout, diagnostics to stderr.
type runFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

type command struct {
	name    string
	summary string
	// run is the command's body. A command with subs and no run dispatches to them; with
	// both, run handles its arguments itself (e.g. a default subcommand) and subs are
	// listed in help and completion.
	run  runFunc
	subs []command
}

func topCommands() []command {
	return []command{
		{name: "topology", summary: "compare (plan) or converge (apply) Kafka topics with the declared topology", subs: topologyCommands()},
		{name: "acl", summary: "compare (plan) or converge (apply) Kafka ACLs with each service principal's declared least privilege", subs: aclCommands()},
		{name: "schema", summary: "register schemas/ with the schema registry, check them against it and the live readers", subs: schemaCommands()},
		{name: "certs", summary: "make a private CA and a server certificate for a local stack (compose/)", run: runCerts},
		{name: "dev", summary: "run the whole stack in one process on embedded Kafka and registry", run: runDev},
		{name: "tail", summary: "print a topic's records as JSON lines, values decoded, from any position", run: runTail},
		{name: "events", summary: "print every aggregate's events in one stable order from a cursor (readAll), as JSON lines", run: runEvents},
		{name: "lag", summary: "show consumer groups' lag per topic and partition", run: runLag},
		{name: "replay", summary: "move a consumer group's offsets (by offset or time) so it reads records again", run: runReplay},
		{name: "dlq", summary: "list, show, redrive and skip a group's dead letters", subs: dlqCommands()},
		{name: "txn", summary: "list open transactions per partition, or abort a hanging one", subs: txnCommands()},
		{name: "projection", summary: "rebuild a projection's read model beside the live one and swap it in", subs: projectionCommands()},
		{name: "completion", summary: "print a shell completion script: pyrite completion bash|zsh", run: runCompletion},
	}
}

// run dispatches args and maps the outcome to an exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := dispatch(ctx, "pyrite", topCommands(), args, stdout, stderr)
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if !errors.Is(err, errReported) {
			fmt.Fprintf(stderr, "pyrite: %v\n", err)
		}
		return 2
	default:
		if !errors.Is(err, errReported) {
			fmt.Fprintf(stderr, "pyrite: %v\n", err)
		}
		return 1
	}
}

// dispatch runs the command named by args[0] among cmds; "help", "-h" and
// "--help" print the list (or a command's help: "help <cmd>").
func dispatch(ctx context.Context, prefix string, cmds []command, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printCommands(stderr, prefix, cmds)
		return fmt.Errorf("%w: %s needs a command", errUsage, prefix)
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if name == "help" && len(rest) > 0 {
			return dispatch(ctx, prefix, cmds, []string{rest[0], "-h"}, stdout, stderr)
		}
		printCommands(stdout, prefix, cmds)
		return nil
	}
	for _, c := range cmds {
		if c.name != name {
			continue
		}
		if c.run == nil {
			return dispatch(ctx, prefix+" "+c.name, c.subs, rest, stdout, stderr)
		}
		return c.run(ctx, rest, stdout, stderr)
	}
	printCommands(stderr, prefix, cmds)
	return fmt.Errorf("%w: %s: unknown command %q", errUsage, prefix, name)
}

// printCommands lists every command under prefix, subcommands included, one line each.
func printCommands(w io.Writer, prefix string, cmds []command) {
	fmt.Fprintf(w, "Usage: %s <command> [flags]\n\nCommands:\n", prefix)
	var rows [][2]string
	var walk func(path string, cs []command)
	walk = func(path string, cs []command) {
		for _, c := range cs {
			if c.run != nil || len(c.subs) == 0 {
				rows = append(rows, [2]string{path + c.name, c.summary})
			}
			walk(path+c.name+" ", c.subs)
		}
	}
	walk("", cmds)
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
	fmt.Fprintf(w, "\nRun '%s <command> -h' for a command's flags. Every command accepts the\nglobal connection flags %s.\n", prefix, globalFlagNames())
	if prefix == "pyrite" {
		fmt.Fprint(w, "Exit codes: 0 ok, 1 failure or findings (see each command), 2 usage error.\n")
	}
}

// newFlagSet returns a flag set that reports to stderr and prints usage
// with the command's description.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s [flags]\n\n%s\n\nFlags:\n", name, strings.TrimSpace(usage))
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and rejects positional arguments. -h gives
// flag.ErrHelp (exit 0); other mistakes are usage errors already printed.
func parseFlags(fs *flag.FlagSet, args []string) error {
	acceptGlobalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w%w: %v", errUsage, errReported, err)
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: %s: unexpected arguments %q", errUsage, fs.Name(), fs.Args())
	}
	return nil
}
