package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/store"
)

const eventsTopic = "pyrite.work-effort.events"

// TestEffectivelyOnceAcrossSIGKILL runs the projector as a separate OS
// process, kills it with SIGKILL in the middle of batches while events keep
// arriving, restarts it, and checks that the read model equals a fold of
// the topic computed here: no event applied twice, none skipped.
func TestEffectivelyOnceAcrossSIGKILL(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "projector")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "projector.db") }},
		{"postgres", func(t *testing.T) string { return stacktest.PostgresURL(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storeURL := tc.store(t)
			s := stacktest.Start(t)
			rng := rand.New(rand.NewPCG(1, 2))
			gen := newGenerator(s, t, rng)
			s.Produce(t, gen.next(600)...)

			for kill := range 4 {
				p := startProcess(t, bin, s, storeURL)
				before := p.applied(t)
				// Let it apply some batches, keep writing, then kill it mid-stream.
				p.waitApplied(t, min(before+int64(50+rng.IntN(150)), gen.produced))
				s.Produce(t, gen.next(300)...)
				p.waitApplied(t, min(before+int64(200+rng.IntN(200)), gen.produced))
				p.kill(t)
				t.Logf("kill %d after %d positions", kill+1, p.lastApplied)
			}
			p := startProcess(t, bin, s, storeURL)
			p.waitApplied(t, gen.produced)
			p.stop(t)

			want := foldTopic(t, s)
			st, err := store.Open(context.Background(), storeURL)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for id, w := range want {
				got, ok, err := workeffort.Get(context.Background(), st, id)
				if err != nil || !ok {
					t.Fatalf("%s: found %v, err %v", id, ok, err)
				}
				if got.Version != w.Version || got.Status != w.Status || got.Progress != w.Progress || got.Title != w.Title {
					t.Errorf("%s: read model %+v, fold of the topic %+v", id, got, w)
				}
			}
			if len(want) == 0 {
				t.Fatal("the fold is empty")
			}
		})
	}
}

// generator writes lifecycles of work efforts with many progress updates.
type generator struct {
	s        *stacktest.Stack
	t        *testing.T
	rng      *rand.Rand
	progress map[string]int
	produced int64
}

func newGenerator(s *stacktest.Stack, t *testing.T, rng *rand.Rand) *generator {
	return &generator{s: s, t: t, rng: rng, progress: map[string]int{}}
}

func (g *generator) next(n int) []*kgo.Record {
	recs := make([]*kgo.Record, 0, n)
	now := time.Now().UTC()
	for len(recs) < n {
		id := fmt.Sprintf("we-%d", g.rng.IntN(40))
		p, ok := g.progress[id]
		switch {
		case !ok:
			recs = append(recs, g.s.Record(g.t, eventsTopic, "WorkEffort:Created", id, 0,
				map[string]any{"title": "T " + id, "description": nil, "createdAt": now, "assignee": nil}),
				g.s.Record(g.t, eventsTopic, "WorkEffort:Started", id, 0, map[string]any{"title": "T " + id, "startedAt": now}))
			g.progress[id] = 0
		case p < 100:
			np := min(p+1+g.rng.IntN(5), 100)
			recs = append(recs, g.s.Record(g.t, eventsTopic, "WorkEffort:ProgressUpdated", id, 0,
				map[string]any{"oldProgress": p, "newProgress": np, "delta": np - p, "formatted": fmt.Sprintf("%d%%", np)}))
			g.progress[id] = np
		default:
			recs = append(recs, g.s.Record(g.t, eventsTopic, "WorkEffort:ProgressUpdated", id, 0,
				map[string]any{"oldProgress": p, "newProgress": p, "delta": 0, "formatted": "100%"}))
		}
	}
	g.produced += int64(len(recs))
	return recs
}

type process struct {
	cmd         *exec.Cmd
	url         string
	done        chan error
	lastApplied int64
}

func startProcess(t *testing.T, bin string, s *stacktest.Stack, storeURL string) *process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--brokers", strings.Join(s.Brokers, ","), "--registry", s.RegistryURL,
		"--addr", addr, "--store", storeURL, "--batch-size", "50", "--instance-id", "crash-test")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, url: "http://" + addr, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("projector output:\n%s", logs.String())
		}
	})
	return p
}

// applied is the sum of the stored positions, once the process answers.
func (p *process) applied(t *testing.T) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/v1/projections")
		if err == nil {
			var body struct {
				Projections []projector.Status `json:"projections"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err == nil && len(body.Projections) == 1 {
				var sum int64
				for _, ps := range body.Projections[0].Partitions {
					sum += ps.Position
				}
				p.lastApplied = sum
				return sum
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("projector never answered /v1/projections: %v", err)
		}
		select {
		case err := <-p.done:
			t.Fatalf("projector exited: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *process) waitApplied(t *testing.T, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for p.applied(t) < n {
		if time.Now().After(deadline) {
			var dump []string
			for _, path := range []string{"/v1/projections", "/metrics"} {
				if resp, err := http.Get(p.url + path); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					for _, l := range strings.Split(string(b), "\n") {
						if strings.Contains(l, "pyrite_") || path == "/v1/projections" {
							dump = append(dump, l)
						}
					}
				}
			}
			t.Fatalf("applied %d of %d events before the deadline\n%s", p.lastApplied, n, strings.Join(dump, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil // for the cleanup
}

func (p *process) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("projector exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("projector did not stop on SIGTERM")
	}
	p.done <- nil
}

// foldTopic reads the whole events topic and folds it per work effort.
func foldTopic(t *testing.T, s *stacktest.Stack) map[string]workeffort.State {
	t.Helper()
	ends := s.EndOffsets(t, eventsTopic)[eventsTopic]
	recs := s.Consume(t, eventsTopic, int(ends))
	out := map[string]workeffort.State{}
	for _, r := range recs {
		var typ string
		for _, h := range r.Headers {
			if h.Key == "ce_type" {
				typ = string(h.Value)
			}
		}
		subject, err := s.Topology.Subject(typ)
		if err != nil {
			t.Fatal(err)
		}
		reader, err := s.Codec().Latest(context.Background(), subject)
		if err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		if _, err := s.Codec().Decode(context.Background(), r.Value, reader, &data); err != nil {
			t.Fatal(err)
		}
		id := string(r.Key)
		cur, ok := out[id]
		if !ok {
			cur = workeffort.New(id)
		}
		if cur, err = workeffort.Apply(cur, typ, data, 0, r.Timestamp); err != nil {
			t.Fatalf("fold %s@%d: %v", id, r.Offset, err)
		}
		out[id] = cur
	}
	return out
}
