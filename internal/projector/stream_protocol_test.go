package projector

import (
	"bufio"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/server"
)

// streamServer serves st over proto ("HTTP/1.1": plain; "HTTP/2.0": TLS with h2)
// with the given read and write timeouts, and returns its URL and a client that
// speaks proto.
func streamServer(t *testing.T, st *Stream, proto string, read, write time.Duration) (string, *http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(st)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = read, write
	srv.Config.ReadHeaderTimeout = read
	switch proto {
	case "HTTP/1.1":
		srv.Start()
	case "HTTP/2.0":
		srv.EnableHTTP2 = true
		srv.StartTLS()
	default:
		t.Fatalf("unknown protocol %s", proto)
	}
	t.Cleanup(srv.Close)
	cl := srv.Client()
	if proto == "HTTP/2.0" {
		tr := cl.Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = true
		tr.TLSClientConfig = &tls.Config{RootCAs: tr.TLSClientConfig.RootCAs, NextProtos: []string{"h2"}}
		cl = &http.Client{Transport: tr}
	}
	return srv.URL, cl
}

// sseLines reads a stream's lines into a channel until the body ends.
func sseLines(t *testing.T, cl *http.Client, url, proto string) <-chan string {
	t.Helper()
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.Proto != proto || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET %s: %s %d %s; want %s 200 text/event-stream", url, resp.Proto, resp.StatusCode, resp.Header.Get("Content-Type"), proto)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// expectLine waits for a line with prefix and returns it.
func expectLine(t *testing.T, lines <-chan string, prefix string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended before a line %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("no line %q within %v", prefix, within)
		}
	}
}

// The stream works over HTTP/1.1 (chunked) and HTTP/2, with the timeouts every
// Pyrite server has (package server).
func TestStreamProtocols(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			st := NewStream("work-efforts", nil, idleSource{}, StreamConfig{}, nil)
			defer st.Close()
			url, cl := streamServer(t, st, proto, server.ReadTimeout, server.WriteTimeout)
			lines := sseLines(t, cl, url, proto)
			expectLine(t, lines, "event: ready", 5*time.Second)
			st.Publish([]Applied{appliedAt(0, "a"), appliedAt(1, "b")})
			for _, id := range []string{`"id":"e0"`, `"id":"e1"`} {
				if l := expectLine(t, lines, `data: {"projection"`, 5*time.Second); !strings.Contains(l, id) {
					t.Errorf("message %s, want %s", l, id)
				}
			}
		})
	}
}

// A stream outlives the server's read and write timeouts: it is still open, and
// gets new messages, well after both ran out. (The stream moves its write
// deadline before each write; HTTP/1.x clears the read deadline once a request
// without a body is read, HTTP/2 applies it to the request body only.)
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			st := NewStream("work-efforts", nil, idleSource{}, StreamConfig{Heartbeat: time.Hour}, nil)
			defer st.Close()
			url, cl := streamServer(t, st, proto, timeout, timeout)
			lines := sseLines(t, cl, url, proto)
			expectLine(t, lines, "event: ready", 5*time.Second)
			time.Sleep(4 * timeout) // idle past both timeouts: no heartbeat either
			st.Publish([]Applied{appliedAt(0, "late")})
			if l := expectLine(t, lines, `data: {"projection"`, 5*time.Second); !strings.Contains(l, `"id":"e0"`) {
				t.Errorf("message %s, want e0", l)
			}
			time.Sleep(2 * timeout)
			st.Publish([]Applied{appliedAt(1, "later")})
			if l := expectLine(t, lines, `data: {"projection"`, 5*time.Second); !strings.Contains(l, `"id":"e1"`) {
				t.Errorf("message %s, want e1", l)
			}
		})
	}
}
