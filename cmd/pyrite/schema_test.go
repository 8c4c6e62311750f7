package main

import (
	"context"
	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/registry"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

// newRegistry runs the project's registry on kfake, with the topology
// applied first as pyrite dev does, and returns its URL.
func newRegistry(t *testing.T) (string, http.Handler) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	top, err := modules.Topology(topology.Dev, topology.WithPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := top.Ensure(ctx, kadm.NewClient(cl)); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, c.ListenAddrs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	srv := httptest.NewServer(reg.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, reg.Handler()
}

func embedded(t *testing.T) []schemas.File {
	t.Helper()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// schemaDir writes the embedded schemas plus extra (path → text) to a
// temporary directory for --dir.
func schemaDir(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(p, text string) {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range embedded(t) {
		write(f.Path, f.Text)
	}
	for p, text := range extra {
		write(p, text)
	}
	return dir
}

const (
	// progressV4Bad adds a field without a default: a v4 reader cannot
	// read v3 data, so BACKWARD rejects it.
	progressV4Bad = `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","fields":[
	{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"},
	{"name":"delta","type":"int","default":0},{"name":"formatted","type":"string","default":""},
	{"name":"weight","type":"double"}]}`
	// createdV2Good adds an optional field with a default: compatible.
	createdV2Good = `{"type":"record","name":"Created","namespace":"pyrite.workeffort","fields":[
	{"name":"title","type":"string"},{"name":"description","type":["null","string"],"default":null},
	{"name":"createdAt","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"assignee","type":["null","string"],"default":null},
	{"name":"priority","type":["null","int"],"default":null}]}`
)

func TestSchemaRegisterAndCheck(t *testing.T) {
	url, _ := newRegistry(t)
	files := embedded(t)
	n := len(files)

	t.Run("check before register: everything new and compatible", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "schema", "check", "--registry", url, "--readers=false")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		for _, want := range []string{
			"compatible    pyrite.workeffort.ProgressUpdated v1 (not registered yet)\n",
			"compatible    pyrite.workeffort.ProgressUpdated v3 (not registered yet) (checked against the registered versions only: v1 is not registered either)",
			"0 registered, " + strconv.Itoa(n) + " compatible and not registered yet, 0 incompatible",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})

	var first []registered
	t.Run("register all in version order", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "schema", "register", "--registry", url+"/")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "registered "+strconv.Itoa(n)+" schema versions") {
			t.Fatalf("stdout:\n%s", stdout)
		}
		if strings.Contains(stdout, "differs from the file's") {
			t.Fatalf("registry versions differ from file versions:\n%s", stdout)
		}
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		first, err = registerSchemas(ctx, url, files)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != n {
			t.Fatalf("registerSchemas returned %d, want %d", len(first), n)
		}
		ids := map[int]bool{}
		for i, r := range first {
			if r.Subject != files[i].Subject || r.Version != files[i].Version || r.RegistryVersion != r.Version {
				t.Errorf("result %d = %+v for file %s v%d", i, r, files[i].Subject, files[i].Version)
			}
			if ids[r.ID] {
				t.Errorf("id %d given to two different schemas", r.ID)
			}
			ids[r.ID] = true
		}
	})

	// The steps below build on the registrations above.
	if first == nil {
		t.Fatal("the register step did not run (a -run filter?); the later steps need it")
	}

	t.Run("register again returns the same ids", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		again, err := registerSchemas(ctx, url, files)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(first, again) {
			t.Fatalf("second registration differs:\nfirst %+v\nagain %+v", first, again)
		}
	})

	t.Run("check after register: everything registered", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "schema", "check", "--registry", url, "--readers=false")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, strconv.Itoa(n)+" registered, 0 compatible and not registered yet, 0 incompatible, 0 unreadable by a live reader") {
			t.Fatalf("stdout:\n%s", stdout)
		}
		if strings.Contains(stdout, "warning:") {
			t.Fatalf("unexpected warning:\n%s", stdout)
		}
	})

	dir := schemaDir(t, map[string]string{
		"workeffort/ProgressUpdated.v4.avsc": progressV4Bad,
		"workeffort/Created.v2.avsc":         createdV2Good,
	})

	t.Run("check names the incompatible field", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "schema", "check", "--registry", url, "--dir", dir, "--readers=false")
		t.Logf("pyrite schema check output:\n%s", stdout)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
		}
		for _, want := range []string{
			"INCOMPATIBLE  pyrite.workeffort.ProgressUpdated v4 (workeffort/ProgressUpdated.v4.avsc):\n    - ",
			"compatible    pyrite.workeffort.Created v2 (not registered yet)",
			strconv.Itoa(n) + " registered, 1 compatible and not registered yet, 1 incompatible",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		_, issue, _ := strings.Cut(stdout, "ProgressUpdated.v4.avsc):\n    - ")
		issue, _, _ = strings.Cut(issue, "\n")
		if !strings.Contains(issue, "weight") {
			t.Errorf("incompatibility does not name the field weight: %q", issue)
		}
		if !strings.Contains(stderr, "1 schema versions are incompatible") {
			t.Errorf("stderr:\n%s", stderr)
		}
	})

	t.Run("register refuses the incompatible version and goes on", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "schema", "register", "--registry", url, "--dir", dir)
		t.Logf("pyrite schema register stderr:\n%s", stderr)
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stdout, "pyrite.workeffort.Created v2: id ") {
			t.Errorf("Created v2 not registered:\n%s", stdout)
		}
		if !strings.Contains(stderr, "pyrite.workeffort.ProgressUpdated v4 (workeffort/ProgressUpdated.v4.avsc): registry error 409") {
			t.Errorf("stderr:\n%s", stderr)
		}
	})
}

func TestRegisterRetriesTransientFailures(t *testing.T) {
	_, handler := newRegistry(t)
	var requests, failures atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failures.Add(1) <= 2 {
			w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"error_code":50003,"message":"catching up"}`))
			return
		}
		handler.ServeHTTP(w, r)
	}))
	defer flaky.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	files := embedded(t)[:1]
	got, err := registerSchemas(ctx, flaky.URL, files)
	if err != nil || len(got) != 1 {
		t.Fatalf("registerSchemas = %+v, %v", got, err)
	}

	// A 4xx answer is final: one attempt only.
	requests.Store(0)
	bad := []schemas.File{{Subject: "pyrite.workeffort.Broken", Version: 1, Path: "workeffort/Broken.v1.avsc", Text: `{"type":"record"`}}
	if _, err := registerSchemas(ctx, flaky.URL, bad); err == nil || !strings.Contains(err.Error(), "registry error 422") {
		t.Fatalf("err = %v, want registry error 422", err)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("invalid schema was sent %d times, want 1", n)
	}
}

func TestRegisterStopsOnContext(t *testing.T) {
	var requests atomic.Int32
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer down.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := registerSchemas(ctx, down.URL, embedded(t))
	if err == nil {
		t.Fatal("registered against a registry that is down")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v after the context ended", d)
	}
	if n := requests.Load(); n < 2 {
		t.Fatalf("%d requests: a 502 should have been retried", n)
	}
}

func TestFormatCompatMessages(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{
			name: "confluent verbose",
			in: []string{
				"{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'weight' at path '/fields/4' in the new schema has no default value and is missing in the old schema', additionalInfo:'weight'}",
				"{oldSchemaVersion: 3}",
				`{oldSchema: '{"type":"record","name":"ProgressUpdated","fields":[]}'}`,
				"{validateFields: 'false', compatibility: 'BACKWARD'}",
			},
			want: []string{"READER_FIELD_MISSING_DEFAULT_VALUE: The field 'weight' at path '/fields/4' in the new schema has no default value and is missing in the old schema (checked against version 3, level BACKWARD)"},
		},
		{
			name: "free text kept",
			in:   []string{`  backward: new schema cannot read data written by existing[2]: reader field "weight" has no default and is missing in writer `, ""},
			want: []string{`backward: new schema cannot read data written by existing[2]: reader field "weight" has no default and is missing in writer`},
		},
		{name: "nothing", in: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatCompatMessages(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// FuzzFormatCompatMessages: messages come from whatever registry answers.
// Every non-blank message that is not a recognised context line must
// survive as one issue.
func FuzzFormatCompatMessages(f *testing.F) {
	f.Add("{errorType:'X', description:'a 'b' c', additionalInfo:''}", "{oldSchemaVersion: 1}")
	f.Add("plain", "{compatibility: 'FULL'}")
	f.Add("{oldSchema: '}", "")
	f.Fuzz(func(t *testing.T, a, b string) {
		got := formatCompatMessages([]string{a, b})
		want := 0
		for _, m := range []string{a, b} {
			m = strings.TrimSpace(m)
			if m != "" && !confluentContext.MatchString(m) {
				want++
			}
		}
		if len(got) != want {
			t.Fatalf("formatCompatMessages(%q, %q) = %q: %d issues, want %d", a, b, got, len(got), want)
		}
	})
}
