package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// commonArgs point a child at the stack with timeouts short enough for tests: a killed
// instance's partitions move after 6 s (kfake's minimum session timeout) and its open
// transaction is aborted after 8 s.
func commonArgs(s *stacktest.Stack, extra ...string) []string {
	return append([]string{"--brokers", strings.Join(s.Brokers, ","), "--registry", s.RegistryURL,
		"--session-timeout", "6s", "--txn-timeout", "8s", "--latest-refresh", "1s", "--max-poll", "100"}, extra...)
}

// TestExactlyOnceAcrossCrashes runs the upcaster as a separate process and SIGKILLs it three
// times while it works through a backlog: as soon as it is ready (with 500 records waiting),
// and twice in the middle of a 2000-record burst. Each time it is restarted with the same
// transactional and instance id. Then the events topics must hold each committed raw record
// exactly once, in order (see workload.verify).
func TestExactlyOnceAcrossCrashes(t *testing.T) {
	s := stacktest.Start(t)
	w := newWorkload(t, s)
	args := commonArgs(s, "--txn-id", "crash-test", "--instance-id", "crash-test")
	const batch = 50
	for range 10 {
		w.batch(batch)
	}
	c := spawn(t, "upcaster#1", args...)
	c.waitReady(t, 30*time.Second)
	c.kill(t)
	t.Logf("kill 1: as soon as ready; %d of 500 backlog records' events (or markers) written", w.eventsEnd())
	midStream := 0
	for kill := 2; kill <= 3; kill++ {
		c = spawn(t, "upcaster#"+strconv.Itoa(kill), args...)
		e0 := w.eventsEnd()
		const burst = 2000
		for range burst / batch {
			w.batch(batch)
		}
		waitFast(t, 60*time.Second, "the upcaster to be part way through the burst", func() bool { return w.eventsEnd() >= e0+300 })
		c.kill(t)
		done := w.eventsEnd() - e0
		t.Logf("kill %d: %d of the %d-record burst's events (or markers) written", kill, done, burst)
		if done < burst {
			midStream++
		}
	}
	if midStream == 0 {
		t.Errorf("no kill landed mid-stream")
	}
	c = spawn(t, "upcaster#4", args...)
	for range 10 {
		w.batch(batch)
	}
	w.sentinel()
	w.verify(60 * time.Second)
	c.stop(t)
}

// waitFast is waitFor polling every millisecond, for conditions that hold only briefly.
func waitFast(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond) // polling interval of a condition with a deadline
	}
}

// TestTwoInstancesOneStopped runs two upcaster processes in one group, waits until both have
// written events, stops one in the middle of a burst (SIGTERM: it leaves the group; SIGKILL: its partitions
// move after its session times out and its open transaction is aborted), and checks the same
// as the crash test once the other has taken over.
func TestTwoInstancesOneStopped(t *testing.T) {
	for _, how := range []string{"SIGTERM", "SIGKILL"} {
		t.Run(how, func(t *testing.T) {
			s := stacktest.Start(t)
			w := newWorkload(t, s)
			a := spawn(t, "upcaster-a", commonArgs(s, "--txn-id", "a-"+how)...)
			b := spawn(t, "upcaster-b", commonArgs(s, "--txn-id", "b-"+how)...)
			const batch = 50
			for range 10 {
				w.batch(batch)
			}
			// Keep records coming: the instance that joined second may
			// get its partitions only after the first batches were upcast.
			last := time.Now()
			waitFor(t, 60*time.Second, "both instances writing events", func() bool {
				if time.Since(last) > 500*time.Millisecond {
					w.batch(batch)
					last = time.Now()
				}
				return eventsWritten(a) > 0 && eventsWritten(b) > 0
			})
			e0 := w.eventsEnd()
			const burst = 1500
			for range burst / batch {
				w.batch(batch)
			}
			waitFast(t, 60*time.Second, "the upcasters to be part way through the burst", func() bool { return w.eventsEnd() >= e0+300 })
			if how == "SIGTERM" {
				a.stop(t)
			} else {
				a.kill(t)
			}
			t.Logf("a stopped with %d of the %d-record burst's events (or markers) written", w.eventsEnd()-e0, burst)
			for range 10 {
				w.batch(batch)
			}
			w.sentinel()
			w.verify(60 * time.Second)
			if n := eventsWritten(b); n == 0 {
				t.Errorf("instance b wrote nothing")
			}
			b.stop(t)
		})
	}
}

// eventsWritten sums pyrite_upcaster_records_total from the child's /metrics (0 when it does
// not answer).
func eventsWritten(c *child) float64 {
	code, body := c.get("/metrics")
	if code != http.StatusOK {
		return 0
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, "pyrite_upcaster_records_total{"); ok {
			if i := strings.LastIndexByte(rest, ' '); i >= 0 {
				v, _ := strconv.ParseFloat(rest[i+1:], 64)
				sum += v
			}
		}
	}
	return sum
}

// TestRefusesToStartWithGap registers a ProgressUpdated v4 that v3 does not resolve into
// (compatibility NONE lets it in) and no function bridges: the upcaster must exit at once,
// naming the step.
func TestRefusesToStartWithGap(t *testing.T) {
	s := stacktest.Start(t)
	rc := srclient.NewSchemaRegistryClient(s.RegistryURL)
	if _, err := rc.ChangeSubjectCompatibilityLevel(progress, srclient.None); err != nil {
		t.Fatal(err)
	}
	v4 := `{"type":"record","name":"ProgressUpdated","namespace":"pyrite.workeffort","fields":[
		{"name":"oldProgress","type":"int"},{"name":"newProgress","type":"int"},{"name":"percent","type":"string"}]}`
	if _, err := rc.CreateSchema(progress, v4, srclient.Avro); err != nil {
		t.Fatal(err)
	}
	c := spawn(t, "upcaster", commonArgs(s, "--txn-id", "gap")...)
	if code := c.exited(t, 30*time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	out := c.stderr.String()
	for _, want := range []string{"refusing to start", "pyrite.workeffort.ProgressUpdated version 3 to 4", `reader field "percent" has no default`} {
		if !strings.Contains(out, want) {
			t.Errorf("stderr does not say %q:\n%s", want, out)
		}
	}
	if n := s.EndOffsets(t, weEvents)[weEvents]; n != 0 {
		t.Errorf("%d events written by a refused upcaster", n)
	}
}
