package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the upcaster built by TestMain for the tests that run it as a separate process.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "upcaster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "upcaster")
	build := exec.Command("go", "build", "-o", binary, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/upcaster: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// lockedBuffer collects a child's stderr.
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

// child is one upcaster process.
type child struct {
	name   string
	addr   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // set when done is closed
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// spawn starts the upcaster with args plus --addr on a free port. The process is killed when
// the test ends if it is still running; its stderr is logged when the test fails.
func spawn(t *testing.T, name string, args ...string) *child {
	t.Helper()
	c := &child{name: name, addr: freeAddr(t), stderr: &lockedBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(binary, append(args, "--addr", c.addr)...)
	c.cmd.Stderr = c.stderr
	c.cmd.Env = append(os.Environ(), "PYRITE_ADDR=", "PYRITE_BROKERS=", "PYRITE_REGISTRY=")
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("%s stderr (last 4 KiB):\n%s", c.name, tail(c.stderr.String(), 4096))
		}
	})
	return c
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", c.name, err)
	}
	<-c.done
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", c.name, err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop within 30s of SIGTERM", c.name)
	}
	if c.err != nil {
		t.Fatalf("%s exited with %v; stderr:\n%s", c.name, c.err, tail(c.stderr.String(), 4096))
	}
}

// exited waits for the process to exit by itself and returns its exit code.
func (c *child) exited(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(within):
		t.Fatalf("%s still running after %v", c.name, within)
	}
	if c.err == nil {
		return 0
	}
	if ee, ok := c.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatalf("%s: %v", c.name, c.err)
	return -1
}

// get fetches path from the child's HTTP server; code 0 means it did not answer.
func (c *child) get(path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// waitReady polls /readyz until it answers 200.
func (c *child) waitReady(t *testing.T, within time.Duration) {
	t.Helper()
	waitFor(t, within, c.name+" ready", func() bool {
		select {
		case <-c.done:
			t.Fatalf("%s exited (%v) before it was ready; stderr:\n%s", c.name, c.err, tail(c.stderr.String(), 4096))
		default:
		}
		code, _ := c.get("/readyz")
		return code == http.StatusOK
	})
}

// waitFor polls cond every 20ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}
