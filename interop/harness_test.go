package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyrite-dev/pyrite/internal/registry"
)

const (
	// nodeDir holds the Node scripts and their locked packages, relative to this package.
	nodeDir = "node"
	// nodeTimeout bounds one command; one takes milliseconds once the process is up, and
	// starting it well under a second on a quiet machine.
	nodeTimeout = 20 * time.Second
	// progressSubject is the subject every test here works on (RecordNameStrategy).
	progressSubject = "pyrite.workeffort.ProgressUpdated"
	installHint     = "run `npm ci --prefix interop/node`"
)

// nodePackages are the packages the scripts import; their absence means npm ci was not run.
var nodePackages = []string{"@confluentinc/schemaregistry", "@kafkajs/confluent-schema-registry", "kafkajs"}

// nodeScripts are the scripts in nodeDir; each runs as one `serve` process per harness.
var nodeScripts = []string{"confluent.mjs", "kafkajs.mjs"}

// harness is one in-process Kafka cluster, one Pyrite registry on it served over loopback HTTP,
// and one Node process per script talking to it.
type harness struct {
	url   string
	procs map[string]*nodeProc
}

// newHarness fails the test (never skips) when Node or the locked packages are missing, then
// starts kfake, the registry and the Node processes; all are stopped when the test ends.
func newHarness(t *testing.T) *harness {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (need Node 20 or later), then %s: %v", installHint, err)
	}
	dir, err := filepath.Abs(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("Node package %s is not installed: %s (%v)", p, installHint, err)
		}
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(cluster.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg, err := registry.New(ctx, cluster.ListenAddrs())
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	srv := httptest.NewServer(reg.Handler())
	// Cleanups run last-in first-out: the HTTP server stops before the registry closes, and the
	// registry before the cluster.
	t.Cleanup(reg.Close)
	t.Cleanup(srv.Close)

	h := &harness{url: srv.URL, procs: make(map[string]*nodeProc, len(nodeScripts))}
	for _, script := range nodeScripts {
		h.procs[script] = startNode(t, nodeBin, dir, script, srv.URL)
	}
	return h
}

// nodeProc is `node <script> serve`: commands go in as JSON lines on stdin, answers come back
// as JSON lines on stdout, in order (see interop/node/cli.mjs).
type nodeProc struct {
	script string
	stdin  io.WriteCloser
	lines  chan []byte // answers; closed when stdout ends
	stderr *lockedBuffer

	mu   sync.Mutex // one command at a time
	dead bool
}

// lockedBuffer collects a process's stderr, written by exec's copying goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startNode(t *testing.T, nodeBin, dir, script, registryURL string) *nodeProc {
	t.Helper()
	cmd := exec.Command(nodeBin, script, "serve")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REGISTRY_URL="+registryURL)
	p := &nodeProc{script: script, lines: make(chan []byte), stderr: &lockedBuffer{}}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node %s: %v", script, err)
	}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
		for sc.Scan() {
			p.lines <- bytes.Clone(sc.Bytes())
		}
	}()
	t.Cleanup(func() {
		// End of input ends the process; one that does not end in time is killed.
		_ = stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("node %s did not exit at end of input; killed", script)
		}
	})
	return p
}

// call sends one command and returns the raw answer line. A process that dies or does not
// answer within nodeTimeout fails the test (and is killed, so later calls fail fast).
func (p *nodeProc) call(t *testing.T, args []string) []byte {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("node %s %s", p.script, strings.Join(args, " "))
	if p.dead {
		t.Fatalf("%s: the process died earlier; stderr:\n%s", line, p.stderr.String())
	}
	req, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.stdin.Write(append(req, '\n')); err != nil {
		p.dead = true
		t.Fatalf("%s: write command: %v; stderr:\n%s", line, err, p.stderr.String())
	}
	timer := time.NewTimer(nodeTimeout)
	defer timer.Stop()
	select {
	case ans, ok := <-p.lines:
		if !ok {
			p.dead = true
			t.Fatalf("%s: the process exited; stderr:\n%s", line, p.stderr.String())
		}
		return ans
	case <-timer.C:
		p.dead = true
		_ = p.stdin.Close()
		t.Fatalf("%s: no answer within %v; stderr:\n%s", line, nodeTimeout, p.stderr.String())
		return nil
	}
}

// clientError is how a script reports an error from its library or the registry.
type clientError struct {
	Name      string `json:"name"`
	Message   string `json:"message"`
	Status    *int   `json:"status"`
	ErrorCode *int   `json:"errorCode"`
}

func (e *clientError) Error() string {
	return fmt.Sprintf("%s: %s (status %v, error code %v)", e.Name, e.Message, deref(e.Status), deref(e.ErrorCode))
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// node runs one command of a Node script against the harness's registry. On success it
// decodes the result into out and returns nil; when the library reports an error it returns
// that error as a *clientError. Anything else (a usage error, a crash, a timeout, an answer that
// does not decode) fails the test.
func (h *harness) node(t *testing.T, script string, out any, args ...string) *clientError {
	t.Helper()
	p, ok := h.procs[script]
	if !ok {
		t.Fatalf("no Node script %s", script)
	}
	line := fmt.Sprintf("node %s %s", script, strings.Join(args, " "))
	ans := p.call(t, args)
	var doc struct {
		OK    json.RawMessage `json:"ok"`
		Error *clientError    `json:"error"`
		Usage string          `json:"usage"`
	}
	if err := json.Unmarshal(ans, &doc); err != nil {
		t.Fatalf("%s: answer is not JSON: %v\n%s", line, err, ans)
	}
	switch {
	case doc.Usage != "":
		t.Fatalf("%s: %s", line, doc.Usage)
	case doc.Error != nil:
		return doc.Error
	case doc.OK == nil:
		t.Fatalf("%s: answer has neither a result nor an error: %s", line, ans)
	}
	if err := json.Unmarshal(doc.OK, out); err != nil {
		t.Fatalf("%s: result is not the expected JSON: %v\n%s", line, err, doc.OK)
	}
	return nil
}

// mustNode is node for calls that must succeed.
func (h *harness) mustNode(t *testing.T, script string, out any, args ...string) {
	t.Helper()
	if cerr := h.node(t, script, out, args...); cerr != nil {
		t.Fatalf("node %s %s: %v", script, strings.Join(args, " "), cerr)
	}
}

// do sends a request straight to the registry, decodes its JSON answer (a result or a Confluent
// error document) into out when out is non-nil, and returns the status code.
func (h *harness) do(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, h.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v\nbody: %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

// schemaFile is one version of the ProgressUpdated schema from schemas/, the source of truth.
type schemaFile struct {
	path string // absolute, for the Node scripts
	text string
}

func progressSchema(t *testing.T, version int) schemaFile {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "schemas", "workeffort", fmt.Sprintf("ProgressUpdated.v%d.avsc", version)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return schemaFile{path: p, text: string(b)}
}

// avroShape is what the tests compare schemas by: full name and field names with defaults.
// Registries and clients may reformat a schema's text (whitespace, key order, dropped docs), so
// the text itself is not compared.
type avroShape struct {
	Name   string
	Fields []string // "name:type[=default]"
}

func shapeOf(t *testing.T, text string) avroShape {
	t.Helper()
	var s struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
		Fields    []struct {
			Name    string          `json:"name"`
			Type    json.RawMessage `json:"type"`
			Default json.RawMessage `json:"default"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(text), &s); err != nil {
		t.Fatalf("schema is not JSON: %v\n%s", err, text)
	}
	full := s.Name
	if s.Namespace != "" && !strings.Contains(full, ".") {
		full = s.Namespace + "." + s.Name
	}
	shape := avroShape{Name: full}
	for _, f := range s.Fields {
		d := f.Name + ":" + compact(t, f.Type)
		if f.Default != nil {
			d += "=" + compact(t, f.Default)
		}
		shape.Fields = append(shape.Fields, d)
	}
	return shape
}

func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// incompatibleSchema writes a version of ProgressUpdated that BACKWARD compatibility must refuse:
// the newest version plus a field with no default, which a reader cannot fill in for records
// written before it.
func incompatibleSchema(t *testing.T, newest schemaFile) schemaFile {
	t.Helper()
	var s map[string]any
	if err := json.Unmarshal([]byte(newest.text), &s); err != nil {
		t.Fatal(err)
	}
	fields, ok := s["fields"].([]any)
	if !ok {
		t.Fatalf("%s has no fields array", newest.path)
	}
	s["fields"] = append(fields, map[string]any{"name": "requiredWithoutDefault", "type": "string"})
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ProgressUpdated.incompatible.avsc")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return schemaFile{path: p, text: string(b)}
}
