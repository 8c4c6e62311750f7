package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/internal/topology"
)

// This file holds `pyrite schema readers`: the reader schemas live consumers decode with,
// recorded on pyrite.readers (internal/readers).

func readersCommands() []command {
	return []command{
		{name: "register", summary: "record an outside service's reader schema, so schema checks count it", run: runReadersRegister},
		{name: "remove", summary: "stop counting a group's reader of a type (a tombstone on pyrite.readers)", run: runReadersRemove},
	}
}

// runSchemaReaders lists the readers, or runs the subcommand args name.
func runSchemaReaders(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "help" {
		return dispatch(ctx, "pyrite schema readers", readersCommands(), args, stdout, stderr)
	}
	for _, c := range readersCommands() {
		if len(args) > 0 && args[0] == c.name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	return runReadersList(ctx, args, stdout, stderr)
}

const readersListUsage = `
Lists the reader schemas recorded on pyrite.readers: per group and event type,
the schema version the group decodes with, the instance that recorded it and
when. Every Pyrite group records its readers when it starts; outside services
record theirs with 'pyrite schema readers register'. 'pyrite schema check'
and the registry's live-reader mode refuse a new version one of them cannot
read.

Exit code 0, 1 when Kafka cannot be read, 2 on usage errors.`

func runReadersList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite schema readers", "pyrite schema readers [register|remove] [flags]", readersListUsage, stderr)
	f.bindKafka(fs)
	f.bindOutput(fs)
	subject := fs.String("subject", "", "list only the readers of this subject, e.g. pyrite.workeffort.ProgressUpdated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	brokers, err := f.validate()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	set, err := readers.Load(ctx, brokers.opts()...)
	if set == nil {
		return err
	}
	if err != nil {
		fmt.Fprintf(stderr, "warning: %v\n", err)
	}
	rs := set.All()
	if *subject != "" {
		rs = set.Of(*subject)
	}
	if f.output == "json" {
		if rs == nil {
			rs = []readers.Reader{}
		}
		for i := range rs {
			rs[i].Schema = "" // the versions say which; the text is on the topic
		}
		return printJSON(stdout, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(stdout, "no readers recorded on", readers.Topic)
		return nil
	}
	rows := make([][]string, 0, len(rs))
	for _, r := range rs {
		rows = append(rows, []string{r.Group, r.Type, strconv.Itoa(r.Version), r.Instance, r.Time.UTC().Format(time.RFC3339)})
	}
	return printTable(stdout, []string{"GROUP", "TYPE", "VERSION", "INSTANCE", "RECORDED"}, rows)
}

const readersRegisterUsage = `
Records on pyrite.readers that GROUP decodes TYPE with a reader schema, as
Pyrite's own groups do when they start: from then on 'pyrite schema check'
and the registry's live-reader mode refuse a new version of TYPE that this
reader cannot read. The schema is the registry's version --version of the
type's subject, or the Avro file --schema-file (then --version names it).
Recording again replaces the group's reader of the type.

Example:
  pyrite schema readers register --group billing --type WorkEffort:Completed --version 1

Exit code 0 when recorded, 1 when Kafka or the registry fails, 2 on usage errors.`

func runReadersRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite schema readers register", "pyrite schema readers register --group G --type T --version N [flags]", readersRegisterUsage, stderr)
	f.bindKafka(fs)
	f.bindRegistry(fs)
	group := fs.String("group", "", "the consumer group (or service name) that reads")
	typ := fs.String("type", "", "the event type it decodes, e.g. WorkEffort:ProgressUpdated")
	version := fs.Int("version", 0, "the reader schema's version under the type's subject")
	file := fs.String("schema-file", "", "read the reader schema from this .avsc file instead of the registry")
	instance := fs.String("instance", "", "who records it (default <host>/<pid>)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var errs []error
	if *group == "" {
		errs = append(errs, errors.New("--group is required"))
	}
	if *version < 1 {
		errs = append(errs, errors.New("--version is required (a version number from 1)"))
	}
	top, err := modules.Topology(topology.Dev)
	if err != nil {
		return err
	}
	subject, err := top.Subject(*typ)
	if err != nil {
		errs = append(errs, fmt.Errorf("--type: %w", err))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	var text string
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("%w: --schema-file: %w", errUsage, err)
		}
		text = string(b)
	} else {
		s, err := newRegistryClient(ctx, f.registry).GetSchemaByVersion(subject, *version)
		if err != nil {
			return fmt.Errorf("%s version %d: %w", subject, *version, registryErr(err))
		}
		text = s.Schema()
	}
	rd := readers.Reader{Group: *group, Type: *typ, Subject: subject, Version: *version, Schema: text,
		Instance: readers.InstanceName(*instance), Time: time.Now().UTC()}
	cl, err := kgo.NewClient(brokers.opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := readers.Publish(ctx, cl, rd); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "recorded: group %s reads %s with %s version %d\n", rd.Group, rd.Type, rd.Subject, rd.Version)
	return nil
}

const readersRemoveUsage = `
Writes the tombstone of GROUP's reader of TYPE on pyrite.readers: schema
checks stop counting it. A Pyrite group records its readers again when it
next starts.

Exit code 0 when removed, 1 when Kafka fails, 2 on usage errors.`

func runReadersRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f opsFlags
	fs := newOpsFlagSet("pyrite schema readers remove", "pyrite schema readers remove --group G --type T [flags]", readersRemoveUsage, stderr)
	f.bindKafka(fs)
	group := fs.String("group", "", "the consumer group whose reader to remove")
	typ := fs.String("type", "", "the event type, e.g. WorkEffort:ProgressUpdated")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var errs []error
	if *group == "" || *typ == "" {
		errs = append(errs, errors.New("--group and --type are required"))
	}
	brokers, err := f.validate(errs...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	cl, err := kgo.NewClient(brokers.opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := readers.Remove(ctx, cl, *group, *typ); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed: group %s's reader of %s\n", *group, *typ)
	return nil
}

// readerProblems loads the recorded readers from brokers and checks every result not yet
// registered against those of its subject. Malformed records of pyrite.readers are left
// out and returned as warnings.
func readerProblems(ctx context.Context, brokers []string, results []checkResult) (map[int][]readers.Problem, []string, error) {
	set, err := readers.Load(ctx, kgo.SeedBrokers(brokers...), kgo.ClientID("pyrite-cli"))
	if set == nil {
		return nil, nil, fmt.Errorf("read the live readers on %s (--readers=false skips this check): %w", readers.Topic, err)
	}
	var warnings []string
	if err != nil {
		warnings = append(warnings, "skipped malformed records: "+err.Error())
	}
	out := map[int][]readers.Problem{}
	for i, r := range results {
		if r.State == stateRegistered {
			continue
		}
		problems, err := readers.Check(set.Of(r.File.Subject), r.File.Text)
		if err != nil {
			return nil, nil, fmt.Errorf("%s v%d: %w", r.File.Subject, r.File.Version, err)
		}
		if len(problems) > 0 {
			out[i] = problems
		}
	}
	return out, warnings, nil
}
