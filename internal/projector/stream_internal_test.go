package projector

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/store"
)

// idleSource is a StreamSource with nothing stored.
type idleSource struct{}

func (idleSource) Positions(context.Context) (map[store.TopicPartition]int64, error) {
	return map[store.TopicPartition]int64{}, nil
}
func (idleSource) Replay(context.Context, map[store.TopicPartition]int64, map[store.TopicPartition]int64, func(*bus.Event) error) error {
	return nil
}
func (idleSource) Load(context.Context, string) (any, int64, bool, error) { return nil, 0, false, nil }

func appliedAt(offset int64, pad string) Applied {
	return Applied{Event: &bus.Event{
		ID: fmt.Sprint("e", offset), Type: "WorkEffort:ProgressUpdated", AggregateID: "we-1",
		Data:   map[string]any{"pad": pad},
		Origin: &bus.Origin{Topic: "pyrite.work-effort.events", Partition: 0, Offset: offset},
	}}
}

// A client that stops reading gets a final "overflow" once its queue is full, and the
// client beside it gets every message meanwhile.
func TestStreamOverflow(t *testing.T) {
	st := NewStream("work-efforts", nil, idleSource{}, StreamConfig{Buffer: 16, FlushEvery: time.Millisecond}, nil)
	srv := httptest.NewServer(st)
	defer srv.Close()
	defer st.Close()

	// The slow client: a raw connection that sends its request and reads nothing yet.
	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	fast, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for st.connected != nil && clientCount(st) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("clients did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}

	const n = 2000
	pad := strings.Repeat("x", 32<<10) // 64 MB in all: far beyond the socket buffers
	var received atomic.Int64
	go func() {
		r := bufio.NewReader(fast.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line == "event: applied\n" {
				received.Add(1)
			}
		}
	}()
	// The publisher keeps within the reading client's buffer; the slow client's queue
	// fills once its socket buffers are full.
	deadline = time.Now().Add(60 * time.Second)
	for i := range n {
		for int64(i)-received.Load() >= 8 {
			if time.Now().After(deadline) {
				t.Fatalf("the reading client is stuck at %d of %d messages: the slow one held it up", received.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		st.Publish([]Applied{appliedAt(int64(i), pad)})
	}
	for received.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the reading client got %d messages, want %d", received.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}

	// The slow client now reads: some messages, then overflow, then the end of the
	// response (chunked: a zero-length chunk).
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(slow)
	var events []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d messages: %v", len(events), err)
		}
		if strings.HasPrefix(line, "event: ") {
			events = append(events, strings.TrimSpace(line))
		}
		if line == "0\r\n" && len(events) > 0 && events[len(events)-1] == "event: overflow" {
			break
		}
	}
	if len(events) < 2 || len(events) > n/2 {
		t.Errorf("the slow client got %d messages before overflow", len(events)-1)
	}
	if c := clientCount(st); c != 1 {
		t.Errorf("%d clients registered, want the reading one", c)
	}
}

func clientCount(s *Stream) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}

func TestPositionRoundTrip(t *testing.T) {
	for _, p := range []position{
		{},
		{{Topic: "pyrite.work-effort.events", Partition: 0}: 12},
		{{Topic: "pyrite.work-effort.events", Partition: 2}: 7, {Topic: "pyrite.work-effort.events", Partition: 0}: 1, {Topic: "pyrite.deployment.events", Partition: 1}: 1 << 40},
	} {
		got, err := parsePosition(p.String())
		if err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		if len(got) != len(p) || got.ahead(p) || p.ahead(got) {
			t.Errorf("round trip of %v gave %v", p, got)
		}
	}
	for _, bad := range []string{"", "12", "p1.!!", "p1." + b64("t|0"), "p1." + b64("t|0:-1"), "p1." + b64("|0:1"), "p1." + b64("t|0:1,0:2")} {
		if _, err := parsePosition(bad); err == nil {
			t.Errorf("parsePosition(%q) accepted it", bad)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	f.Add(position{{Topic: "t", Partition: 3}: 9}.String())
	f.Add("p1.")
	f.Add("p1." + b64("t|0:1;u|1:2"))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePosition(s)
		if err != nil {
			return
		}
		q, err := parsePosition(p.String())
		if err != nil || q.ahead(p) || p.ahead(q) || len(p) != len(q) {
			t.Fatalf("%q parsed to %v, which does not round-trip (%v, %v)", s, p, q, err)
		}
	})
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// An idle stream sends heartbeat comments.
func TestStreamHeartbeat(t *testing.T) {
	st := NewStream("work-efforts", nil, idleSource{}, StreamConfig{Heartbeat: 20 * time.Millisecond}, nil)
	srv := httptest.NewServer(st)
	defer srv.Close()
	defer st.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	pings := 0
	timer := time.AfterFunc(10*time.Second, func() { resp.Body.Close() })
	defer timer.Stop()
	for pings < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %d pings: %v", pings, err)
		}
		if line == ": ping\n" {
			pings++
		}
	}
}
