package ingest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

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
	url := startIngest(t, s, s.Brokers, s.RegistryURL, uniqueGroup(), ingest.Config{})
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
	waitOwned(t, url)
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
		`pyrite_eventstore_transactions_total{outcome="committed"} 1`,
		`pyrite_eventstore_appends_total{outcome="written"} 1`,
		`pyrite_eventstore_partitions_ready 6`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestRunNotReadyWithoutKafkaOrRegistry(t *testing.T) {
	dead := func() string { return stacktest.DeadAddr(t) }
	s := stacktest.Start(t)
	for _, tc := range []struct {
		name, registry string
		brokers        []string
		reason         string
	}{
		{"kafka down", s.RegistryURL, []string{dead()}, "no partition assignment"},
		{"registry down", "http://" + dead(), s.Brokers, "schema registry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startIngest(t, s, tc.brokers, tc.registry, uniqueGroup(), ingest.Config{})
			code, body := get(t, url+"/readyz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.reason) {
				t.Errorf("readyz: %d %q", code, body)
			}
		})
	}
}
