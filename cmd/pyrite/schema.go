package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/readers"
	"github.com/pyrite-dev/pyrite/schemas"
)

func schemaCommands() []command {
	return []command{
		{name: "register", summary: "register every schema version under schemas/ in version order (idempotent)", run: runSchemaRegister},
		{name: "check", summary: "check schemas/ against the registry and the live readers: which are registered, which compatible", run: runSchemaCheck},
		{name: "readers", summary: "list the reader schema version each live group decodes each type with", run: runSchemaReaders, subs: readersCommands()},
	}
}

// schemaFlags are the flags shared by schema register and check.
type schemaFlags struct {
	registry string
	dir      string
	timeout  time.Duration
}

func (f *schemaFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.registry, "registry", config.Env("PYRITE_REGISTRY", config.DefaultRegistry),
		"schema registry base URL (env PYRITE_REGISTRY)")
	fs.StringVar(&f.dir, "dir", "",
		"read <segment>/<Name>.v<N>.avsc files from this directory instead of the schemas built into this binary")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Second,
		"give up when the registry has not answered everything within this time")
}

// load validates the flags (every problem at once, as a usage error) and
// reads the schema files.
func (f *schemaFlags) load() ([]schemas.File, string, error) {
	var errs []error
	base := strings.TrimRight(f.registry, "/")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--registry: %q is not an http(s) URL", config.RedactURL(f.registry)))
	}
	if f.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: %v is not positive", f.timeout))
	}
	if f.dir != "" {
		if st, err := os.Stat(f.dir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--dir: %q is not a directory", f.dir))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, "", fmt.Errorf("%w: %w", errUsage, err)
	}
	var (
		files []schemas.File
		err   error
	)
	if f.dir != "" {
		files, err = schemas.Load(os.DirFS(f.dir))
	} else {
		files, err = schemas.All()
	}
	if err != nil {
		return nil, "", fmt.Errorf("load schemas: %w", err)
	}
	if len(files) == 0 {
		return nil, "", errors.New("load schemas: no .avsc files found")
	}
	return files, base, nil
}

const registerUsage = `
Registers every schema version under schemas/ with the registry, subject by
subject, oldest version first, through the Confluent REST API. Registering
a schema the subject already has returns its existing id, so running it
again changes nothing. The registry refuses a version that is not
compatible with the subject's compatibility level; later versions of that
subject are then skipped. Other subjects go on.

Exit code 0 when every version is registered, 1 otherwise, 2 on usage errors.`

func runSchemaRegister(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f schemaFlags
	fs := newFlagSet("pyrite schema register", registerUsage, stderr)
	f.bind(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files, base, err := f.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	regs, err := registerSchemas(ctx, base, files)
	for _, r := range regs {
		fmt.Fprintf(stdout, "%s v%d: id %d, registry version %d%s\n", r.Subject, r.Version, r.ID, r.RegistryVersion, r.note())
	}
	if err != nil {
		return fmt.Errorf("registered %d of %d schema versions: %w", len(regs), len(files), err)
	}
	fmt.Fprintf(stdout, "registered %d schema versions with %s\n", len(regs), base)
	return nil
}

// registered is one schema version the registry holds.
type registered struct {
	Subject string
	// Version is the local file's version (<Name>.v<N>.avsc).
	Version int
	// ID is the registry's global schema id.
	ID int
	// RegistryVersion is the version number under the subject in the
	// registry; it differs from Version only if the registry's history
	// was not made from schemas/.
	RegistryVersion int
}

func (r registered) note() string {
	if r.RegistryVersion != r.Version {
		return fmt.Sprintf(" (differs from the file's v%d: the registry's history was not made from schemas/)", r.Version)
	}
	return ""
}

// registerSchemas registers files with the registry at registryURL, each
// subject's versions in ascending order, and returns what the registry
// holds for each file registered. Registering is idempotent: an already
// registered schema returns its existing id and version. A transient
// failure (connection refused, a 5xx answer, e.g. a registry still
// catching up at start-up) is retried with capped backoff, five attempts at
// most. When a version still fails, the subject's later versions are
// skipped and the other subjects continue; the error joins every failure.
// ctx bounds every request and every wait.
func registerSchemas(ctx context.Context, registryURL string, files []schemas.File) ([]registered, error) {
	client := newRegistryClient(ctx, registryURL)
	sorted := slices.Clone(files)
	slices.SortStableFunc(sorted, func(a, b schemas.File) int {
		return cmp.Or(strings.Compare(a.Subject, b.Subject), cmp.Compare(a.Version, b.Version))
	})
	var (
		out    []registered
		errs   []error
		failed string // subject whose earlier version failed
	)
	for _, f := range sorted {
		if f.Subject == failed {
			errs = append(errs, fmt.Errorf("%s v%d: skipped after an earlier version failed", f.Subject, f.Version))
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, errors.Join(append(errs, err)...)
		}
		var r registered
		err := retryTransient(ctx, func() error {
			created, err := client.CreateSchema(f.Subject, f.Text, srclient.Avro)
			if err != nil {
				return err
			}
			// The create answer has no version; the lookup names it.
			found, err := client.LookupSchema(f.Subject, f.Text, srclient.Avro)
			if err != nil {
				return err
			}
			if found.ID() != created.ID() {
				return fmt.Errorf("registry returned id %d on create but %d on lookup", created.ID(), found.ID())
			}
			r = registered{Subject: f.Subject, Version: f.Version, ID: found.ID(), RegistryVersion: found.Version()}
			return nil
		})
		if err == nil {
			out = append(out, r)
			continue
		}
		failed = f.Subject
		errs = append(errs, fmt.Errorf("%s v%d (%s): %w", f.Subject, f.Version, f.Path, registryErr(err)))
	}
	return out, errors.Join(errs...)
}

const checkUsage = `
Compares schemas/ with the registry. For every schema version it says
whether the registry already has it (with its id); for every version not
registered yet it asks the registry's compatibility endpoint (verbose)
whether the version is compatible with the subject's registered versions
under the subject's compatibility level, and names every incompatibility
with the field path the registry reports. A version whose earlier local
versions are not registered either is checked against the registry as it
stands, which is what 'register' would meet only if those succeed first.
Then it checks every version not registered yet against the reader schemas
live groups decode with (pyrite.readers on --brokers; see 'pyrite schema
readers'): a version that a recorded reader cannot read is UNREADABLE, named
with the group, its reader version and the field path, even when the
subject's compatibility level accepts it. --readers=false skips this.
It changes nothing.

Exit code 0 when every unregistered version is compatible and readable, 1
when any is not or the registry or Kafka cannot be asked, 2 on usage errors.`

func runSchemaCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f schemaFlags
	fs := newFlagSet("pyrite schema check", checkUsage, stderr)
	f.bind(fs)
	brokers := fs.String("brokers", config.Env("PYRITE_BROKERS", config.DefaultBrokers),
		"comma-separated Kafka seed brokers, host:port, to read the live readers from (env PYRITE_BROKERS)")
	withReaders := fs.Bool("readers", true, "also check against the reader schemas recorded on pyrite.readers")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files, base, err := f.load()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	results, warnings, err := checkSchemas(ctx, base, files)
	if err != nil {
		return err
	}
	var unreadable map[int][]readers.Problem
	if *withReaders {
		var more []string
		if unreadable, more, err = readerProblems(ctx, config.SplitList(*brokers), results); err != nil {
			return err
		}
		warnings = append(warnings, more...)
	}
	var nReg, nOK, nBad, nUnreadable int
	for _, r := range results {
		switch r.State {
		case stateRegistered:
			nReg++
			fmt.Fprintf(stdout, "registered    %s v%d (id %d, registry version %d)\n", r.File.Subject, r.File.Version, r.ID, r.RegistryVersion)
		case stateCompatible:
			nOK++
			fmt.Fprintf(stdout, "compatible    %s v%d (not registered yet)%s\n", r.File.Subject, r.File.Version, r.Note)
		case stateIncompatible:
			nBad++
			fmt.Fprintf(stdout, "INCOMPATIBLE  %s v%d (%s)%s:\n", r.File.Subject, r.File.Version, r.File.Path, r.Note)
			for _, m := range r.Messages {
				fmt.Fprintf(stdout, "    - %s\n", m)
			}
		}
	}
	for i, r := range results {
		problems := unreadable[i]
		if len(problems) == 0 {
			continue
		}
		nUnreadable++
		fmt.Fprintf(stdout, "UNREADABLE    %s v%d (%s) by a live reader:\n", r.File.Subject, r.File.Version, r.File.Path)
		for _, p := range problems {
			fmt.Fprintf(stdout, "    - %s\n", p)
		}
	}
	for _, w := range warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%d registered, %d compatible and not registered yet, %d incompatible, %d unreadable by a live reader\n", nReg, nOK, nBad, nUnreadable)
	if nBad > 0 || nUnreadable > 0 {
		return fmt.Errorf("%w: %d schema versions are incompatible with the registry, %d unreadable by a live reader", errFindings, nBad, nUnreadable)
	}
	return nil
}

// checkState is what check found for one schema version.
type checkState string

const (
	stateRegistered   checkState = "registered"
	stateCompatible   checkState = "compatible"
	stateIncompatible checkState = "incompatible"
)

type checkResult struct {
	File            schemas.File
	State           checkState
	ID              int // registered only
	RegistryVersion int // registered only
	// Messages name each incompatibility (incompatible only).
	Messages []string
	// Note qualifies the verdict, e.g. an earlier version also pending.
	Note string
}

// checkSchemas looks every file up in the registry and checks each one not
// registered for compatibility with the subject's registered versions. It
// also warns about subjects whose registry history is longer than
// schemas/ has. It fails only when the registry cannot be asked.
func checkSchemas(ctx context.Context, registryURL string, files []schemas.File) ([]checkResult, []string, error) {
	client := newRegistryClient(ctx, registryURL)
	hc := &http.Client{Timeout: 30 * time.Second}
	sorted := slices.Clone(files)
	slices.SortStableFunc(sorted, func(a, b schemas.File) int {
		return cmp.Or(strings.Compare(a.Subject, b.Subject), cmp.Compare(a.Version, b.Version))
	})
	var (
		out      []checkResult
		warnings []string
		pending  = make(map[string]int) // subject → first local version not registered
		local    = make(map[string]int) // subject → local version count
	)
	for _, f := range sorted {
		local[f.Subject]++
		found, err := client.LookupSchema(f.Subject, f.Text, srclient.Avro)
		if err == nil {
			out = append(out, checkResult{File: f, State: stateRegistered, ID: found.ID(), RegistryVersion: found.Version()})
			if v, ok := pending[f.Subject]; ok {
				warnings = append(warnings, fmt.Sprintf("%s v%d is registered but v%d is not: the registry's history was not made from schemas/", f.Subject, f.Version, v))
			}
			continue
		}
		if !isNotFound(err) {
			return nil, nil, fmt.Errorf("look up %s v%d: %w", f.Subject, f.Version, registryErr(err))
		}
		r := checkResult{File: f, State: stateCompatible}
		if v, ok := pending[f.Subject]; ok {
			r.Note = fmt.Sprintf(" (checked against the registered versions only: v%d is not registered either)", v)
		} else {
			pending[f.Subject] = f.Version
		}
		ok, msgs, err := compatible(ctx, hc, registryURL, f)
		if err != nil {
			return nil, nil, fmt.Errorf("check %s v%d: %w", f.Subject, f.Version, err)
		}
		if !ok {
			r.State = stateIncompatible
			r.Messages = msgs
		}
		out = append(out, r)
	}
	subjects := make([]string, 0, len(local))
	for s := range local {
		subjects = append(subjects, s)
	}
	slices.Sort(subjects)
	for _, s := range subjects {
		versions, err := client.GetSchemaVersions(s)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("versions of %s: %w", s, registryErr(err))
		}
		if len(versions) > local[s] {
			warnings = append(warnings, fmt.Sprintf("the registry has %d versions of %s, schemas/ has %d", len(versions), s, local[s]))
		}
	}
	return out, warnings, nil
}

// compatible asks POST /compatibility/subjects/{subject}/versions?verbose=true,
// which checks f against the registered versions the subject's level
// requires. A subject the registry does not know is compatible (its first
// version has nothing to be compatible with).
func compatible(ctx context.Context, hc *http.Client, base string, f schemas.File) (bool, []string, error) {
	body, err := json.Marshal(map[string]string{"schema": f.Text})
	if err != nil {
		return false, nil, err
	}
	u := base + "/compatibility/subjects/" + url.PathEscape(f.Subject) + "/versions?verbose=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, nil, err
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return false, nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code    int    `json:"error_code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) == nil && e.Code == 40401 {
			return true, nil, nil
		}
		if e.Code != 0 {
			return false, nil, fmt.Errorf("registry error %d: %s", e.Code, e.Message)
		}
		return false, nil, fmt.Errorf("registry answered %s", resp.Status)
	}
	var c struct {
		IsCompatible *bool    `json:"is_compatible"`
		Messages     []string `json:"messages"`
	}
	if err := json.Unmarshal(data, &c); err != nil || c.IsCompatible == nil {
		return false, nil, fmt.Errorf("registry answered %s without is_compatible", resp.Status)
	}
	if *c.IsCompatible {
		return true, nil, nil
	}
	msgs := formatCompatMessages(c.Messages)
	if len(msgs) == 0 {
		msgs = []string{"the registry gave no reason (is verbose=true supported?)"}
	}
	return false, msgs, nil
}

// confluentMessage matches a Confluent Schema Registry verbose message:
// {errorType:'X', description:'...', additionalInfo:'...'}.
var confluentMessage = regexp.MustCompile(`^\{errorType:'([A-Z_]+)', description:'(.*)', additionalInfo:'(.*)'\}$`)

// confluentContext matches the context lines Confluent adds after the
// incompatibilities: {oldSchemaVersion: 1}, {oldSchema: '...'},
// {validateFields: 'false', compatibility: 'BACKWARD'}.
var (
	confluentContext = regexp.MustCompile(`(?s)^\{(?:oldSchemaVersion|oldSchema|compatibility|validateFields):.*\}$`)
	contextVersion   = regexp.MustCompile(`^\{oldSchemaVersion: ?(\d+)\}$`)
	contextLevel     = regexp.MustCompile(`compatibility: ?'([A-Z_]+)'`)
)

// formatCompatMessages turns a registry's verbose compatibility messages
// into one line per incompatibility, each keeping the field path the
// registry gave. Confluent's structured messages become "TYPE: description
// (checked against version N under LEVEL)"; its schema dumps are dropped;
// any other message (this project's registry names the dotted field path
// itself) is kept as it is, trimmed of surrounding space.
func formatCompatMessages(msgs []string) []string {
	var (
		issues []string
		ctxt   []string
	)
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		if g := confluentMessage.FindStringSubmatch(m); g != nil {
			issues = append(issues, g[1]+": "+g[2])
			continue
		}
		if confluentContext.MatchString(m) {
			if strings.HasPrefix(m, "{oldSchema:") {
				continue // a schema dump, not a reason
			}
			if g := contextVersion.FindStringSubmatch(m); g != nil {
				ctxt = append(ctxt, "version "+g[1])
			} else if g := contextLevel.FindStringSubmatch(m); g != nil {
				ctxt = append(ctxt, "level "+g[1])
			}
			continue
		}
		issues = append(issues, m)
	}
	if len(ctxt) > 0 {
		suffix := " (checked against " + strings.Join(ctxt, ", ") + ")"
		for i := range issues {
			issues[i] += suffix
		}
	}
	return issues
}

// newRegistryClient returns an srclient client whose every request is
// bound to ctx (srclient itself takes no context), without caches.
func newRegistryClient(ctx context.Context, base string) *srclient.SchemaRegistryClient {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: ctxTransport{ctx: ctx, base: http.DefaultTransport}}
	c := srclient.NewSchemaRegistryClient(base, srclient.WithClient(hc))
	c.CachingEnabled(false)
	return c
}

// ctxTransport attaches a context to requests made by a client that has
// no way to pass one.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// retryTransient runs op up to five times while it fails transiently,
// waiting 100ms, 200ms, 400ms, 800ms between attempts unless ctx ends.
func retryTransient(ctx context.Context, op func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || attempt == 5 || !transient(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		wait *= 2
	}
}

// transient: the request did not reach a working registry (network error)
// or the registry answered 5xx; 4xx answers are final.
func transient(err error) bool {
	var se srclient.Error
	if errors.As(err, &se) {
		return se.Code >= 500 && se.Code < 600 || se.Code >= 50000 && se.Code < 60000
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return true
	}
	// srclient reports an answer without a JSON error body by its status
	// line alone, e.g. "503 Service Unavailable".
	msg := err.Error()
	return len(msg) >= 4 && msg[0] == '5' && msg[3] == ' ' && strings.Trim(msg[:3], "0123456789") == ""
}

// isNotFound reports a registry 404 for a subject (40401), version (40402)
// or schema (40403).
func isNotFound(err error) bool {
	var se srclient.Error
	return errors.As(err, &se) && (se.Code == 40401 || se.Code == 40402 || se.Code == 40403)
}

// registryErr rewrites srclient's error (its text is the raw response
// body) as "registry error <code>: <message>".
func registryErr(err error) error {
	var se srclient.Error
	if errors.As(err, &se) && se.Code != 0 {
		return fmt.Errorf("registry error %d: %s", se.Code, se.Message)
	}
	return err
}
