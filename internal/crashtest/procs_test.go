package crashtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// TestCrashMatrixProcesses runs ingest, the upcaster and the projector as separate
// processes (cmd/*) on a Kafka and registry that stay up, SIGKILLs each of them in turn
// under load, grows the upcaster and the projector from one instance to three and back, and
// runs every check after each fault. The projectors share a PostgreSQL store, so the test
// skips without PYRITE_TEST_POSTGRES.
func TestCrashMatrixProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("crash matrix: not in -short")
	}
	store := stacktest.PostgresURL(t)
	sz := size{
		events:     envInt("PYRITE_CRASH_EVENTS", 4000),
		aggregates: envInt("PYRITE_CRASH_AGGREGATES", 80),
		kills:      min(envInt("PYRITE_CRASH_KILLS", 1), 5),
	}
	s := stacktest.Start(t)
	bins := buildAll(t, "ingest", "upcaster", "projector")
	common := []string{"--brokers", strings.Join(s.Brokers, ","), "--registry", s.RegistryURL}
	args := map[string]func(i int) []string{
		"ingest": func(int) []string { return common },
		"upcaster": func(i int) []string {
			return append(common, "--txn-id", fmt.Sprintf("crash-upcaster-%d", i), "--instance-id", fmt.Sprintf("crash-upcaster-%d", i))
		},
		"projector": func(i int) []string {
			return append(common, "--store", store, "--integration", "--instance-id", fmt.Sprintf("crash-projector-%d", i))
		},
	}
	procs := map[string][]*proc{}
	start := func(name string, i int, addr string) *proc {
		p := spawnProc(t, bins[name], name, addr, args[name](i)...)
		if len(procs[name]) <= i {
			procs[name] = append(procs[name], p)
		} else {
			procs[name][i] = p
		}
		return p
	}
	for _, name := range []string{"ingest", "upcaster", "projector"} {
		start(name, 0, freeAddr(t))
	}
	d := &dev{kafka: s.Brokers[0], registry: strings.TrimPrefix(s.RegistryURL, "http://"),
		ingest: procs["ingest"][0].addr, projector: procs["projector"][0].addr}
	ld := newLoad(t, d, sz)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loadDone := make(chan struct{})
	go func() { ld.run(ctx); close(loadDone) }()

	type fault struct {
		name string
		do   func()
	}
	restart := func(name string) func() {
		return func() {
			p := procs[name][0]
			p.kill()
			start(name, 0, p.addr)
		}
	}
	var faults []fault
	for i := range sz.kills {
		for _, name := range []string{"ingest", "upcaster", "projector"} {
			faults = append(faults, fault{fmt.Sprintf("SIGKILL %s #%d", name, i+1), restart(name)})
		}
	}
	faults = append(faults,
		fault{"upcaster and projector 1 -> 3", func() {
			for i := 1; i < 3; i++ {
				start("upcaster", i, freeAddr(t))
				start("projector", i, freeAddr(t))
			}
		}},
		fault{"upcaster and projector 3 -> 1", func() {
			watchDeparture(t, s.Brokers, "crash-upcaster-1", "crash-upcaster-2", "crash-projector-1", "crash-projector-2")
			for _, name := range []string{"upcaster", "projector"} {
				for _, p := range procs[name][1:] {
					p.stop(t)
				}
				procs[name] = procs[name][:1]
			}
		}})

	var rows []Row
	for i, f := range faults {
		target := int64(sz.events * (i + 1) / (len(faults) + 1))
		waitFor(t, 10*time.Minute, fmt.Sprintf("%d events accepted", target), func() bool { return ld.accepted.Load() >= target })
		at := time.Now()
		f.do()
		row := ld.check(t, d, i+1)
		row.Fault, row.Recover = f.name, time.Since(at)
		rows = append(rows, row)
		t.Logf("%s: %+v", f.name, row)
	}
	select {
	case <-loadDone:
	case <-time.After(20 * time.Minute):
		t.Fatal("load did not finish")
	}
	at := time.Now()
	row := ld.check(t, d, len(faults)+1)
	row.Fault, row.Recover = "load finished", time.Since(at)
	rows = append(rows, row)

	var table bytes.Buffer
	WriteTable(&table, rows)
	fmt.Fprintf(os.Stdout, "\ncrash matrix (separate processes): %d events over %d aggregates (%d written by a Kafka producer)\n%s",
		ld.accepted.Load(), sz.aggregates, ld.directAccepted.Load(), table.String())
	for _, r := range rows {
		if r.Failed() {
			t.Errorf("%s failed its checks: %+v", r.Fault, r)
		}
	}
}

// watchDeparture logs, for each consumer group, how long after now the static members of
// instances were still in it (the 3 -> 1 step's evidence: what its recovery waits for),
// watching for up to two minutes in the background.
func watchDeparture(t *testing.T, brokers []string, instances ...string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	removed := func(m kadm.DescribedGroupMember) bool {
		return m.InstanceID != nil && slices.Contains(instances, *m.InstanceID)
	}
	start := time.Now()
	done := make(chan struct{})
	t.Cleanup(func() { close(done); cl.Close() })
	go func() {
		adm := kadm.NewClient(cl)
		held := map[string]bool{} // groups the instances were seen in, until they leave it
		for time.Since(start) < 2*time.Minute {
			if gs, err := adm.DescribeGroups(context.Background()); err == nil {
				for _, g := range gs.Sorted() {
					in := slices.ContainsFunc(g.Members, removed)
					switch {
					case in:
						held[g.Group] = true
					case held[g.Group]:
						delete(held, g.Group)
						t.Logf("group %s: the removed instances were gone %v after their stop began", g.Group, time.Since(start).Round(100*time.Millisecond))
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
}

func buildAll(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, n := range names {
		bin := filepath.Join(dir, n)
		if b, err := exec.Command("go", "build", "-o", bin, "github.com/pyrite-dev/pyrite/cmd/"+n).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", n, err, b)
		}
		out[n] = bin
	}
	return out
}

// proc is one program of the pipeline in its own process.
type proc struct {
	name, addr string
	cmd        *exec.Cmd
	log        *lockedBuffer
	done       chan struct{}
}

// spawnProc starts a program on addr and waits for its /readyz.
func spawnProc(t *testing.T, bin, name, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, addr: addr, log: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append(args, "--addr", addr)...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if dir := os.Getenv("PYRITE_CRASH_LOGDIR"); dir != "" { // whole logs, kept
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%s-%s.log", name, strings.ReplaceAll(addr, ":", "_"), time.Now().Format("150405.000"))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		p.cmd.Stdout = io.MultiWriter(p.log, f)
		p.cmd.Stderr = p.cmd.Stdout
	}
	p.cmd.Env = append(os.Environ(), "PYRITE_ADDR=", "PYRITE_BROKERS=", "PYRITE_REGISTRY=", "PYRITE_STORE=")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s %s log (tail):\n%s", name, addr, p.log.String())
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before ready:\n%s", name, p.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s on %s not ready within 2 minutes:\n%s", name, addr, p.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// stop is a clean stop (SIGTERM), bounded.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	at := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		t.Logf("%s %s stopped %v after SIGTERM", p.name, p.addr, time.Since(at).Round(time.Millisecond))
	case <-time.After(time.Minute):
		p.kill()
		t.Errorf("%s %s did not stop within a minute of SIGTERM", p.name, p.addr)
	}
}
