package ingest_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// runIngest starts ingest.Run as the programs do and returns its base URL
// and a stop function that returns Run's error.
func runIngest(t *testing.T, brokers []string, registry string) (string, func() error) {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ln, ingest.Options{
			Brokers: brokers, Registry: registry, TxnPrefix: "run-test-" + t.Name(),
			Topology: stacktest.Start(t).Topology, Metrics: prometheus.NewRegistry(), Drain: 5 * time.Second,
		})
	}()
	return "http://" + ln.Addr().String(), func() error { cancel(); return <-done }
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRunReadinessAndMetrics(t *testing.T) {
	s := stacktest.Start(t)
	url, stop := runIngest(t, s.Brokers, s.RegistryURL)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, url+"/readyz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Post(url+"/v1/events", "application/json", strings.NewReader(created))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	_, metrics := get(t, url+"/metrics")
	for _, want := range []string{
		`pyrite_ingest_requests_total{code="201",route="events"} 1`,
		`pyrite_ingest_events_total{type="WorkEffort:Created"} 1`,
		`pyrite_ingest_produce_seconds_count{route="events"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^pyrite_ingest_kafka_write_bytes_total\{[^}]*producer="single"[^}]*\} [1-9]`).MatchString(metrics) {
		t.Errorf("kprom metrics lack the single producer's bytes written:\n%s", metrics)
	}
	if err := stop(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRunNotReadyWithoutKafkaOrRegistry(t *testing.T) {
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	s := stacktest.Start(t)
	for _, tc := range []struct {
		name, registry string
		brokers        []string
		reason         string
	}{
		{"kafka down", s.RegistryURL, []string{dead()}, ""},
		{"registry down", "http://" + dead(), s.Brokers, "schema registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, stop := runIngest(t, tc.brokers, tc.registry)
			defer stop()
			code, body := get(t, url+"/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.reason) {
				t.Errorf("readyz: %d %q", code, body)
			}
		})
	}
}
