package invoice_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/domain/invoice"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// start runs a component on a free port until the test ends and returns its URL.
func start(t *testing.T, run func(ctx context.Context, ln net.Listener) error) string {
	t.Helper()
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("component: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// TestInvoiceEndToEnd runs the test-only Invoice aggregate through the whole pipeline with the
// seed's stack, the Invoice module added to the list: ingest writes its events to
// pyrite.invoice.raw, the upcaster turns Issued v1 (euros) into v2 (cents) on
// pyrite.invoice.events, the invoices projection applies them into its own table and
// GET /v1/invoices/{id} serves the row.
func TestInvoiceEndToEnd(t *testing.T) {
	s := stacktest.Start(t, invoice.Module()) // the one line that lists the module
	ingestURL := start(t, func(ctx context.Context, ln net.Listener) error {
		return ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL,
			TxnPrefix: "invoice-test", Topology: s.Topology, Metrics: prometheus.NewRegistry(), Drain: 5 * time.Second,
			Config: ingest.Config{Folds: s.Folds, Commands: s.Commands}})
	})
	start(t, func(ctx context.Context, ln net.Listener) error {
		return upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL,
			Topology: s.Topology, Metrics: prometheus.NewRegistry(), Config: upcaster.Config{TransactionalID: "invoice-test-upcaster"}})
	})
	projURL := start(t, func(ctx context.Context, ln net.Listener) error {
		return projector.Run(ctx, ln, projector.Options{Brokers: s.Brokers, Registry: s.RegistryURL,
			Store: filepath.Join(t.TempDir(), "projector.db"), Topology: s.Topology, Metrics: prometheus.NewRegistry(),
			BatchWait: 10 * time.Millisecond, Drain: time.Second,
			Schemas: s.Schemas, ReadModels: s.ReadModels})
	})

	post := func(body string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			resp, err := http.Post(ingestURL+"/v1/events", "application/json", strings.NewReader(body))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST /v1/events %s: %v %v", body, resp, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Written as Issued version 1 (euros), as an old producer would.
	post(`{"id":"inv-1-issued","type":"Invoice:Issued","aggregateId":"inv-1","schemaVersion":1,"data":{"customer":"ACME","amount":12.345}}`)
	post(`{"id":"inv-1-paid","type":"Invoice:Paid","aggregateId":"inv-1","data":{"paidAt":"2026-12-01T10:00:00Z"}}`)

	var v invoice.View
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(projURL + "/v1/invoices/inv-1")
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				err = json.NewDecoder(resp.Body).Decode(&v)
			}
			resp.Body.Close()
			if err == nil && v.Status == "paid" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/invoices/inv-1 never showed the paid invoice: last %+v, %v", v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	if v.Customer != "ACME" || v.AmountCents != 1235 || v.Version != 2 || v.PaidAt == nil || !v.PaidAt.Equal(want) {
		t.Errorf("invoice %+v, want ACME, 1235 cents (upcast from 12.345 euros), version 2, paid at %s", v, want)
	}
	resp, err := http.Get(projURL + "/v1/invoices/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/invoices/nope: %d, want 404", resp.StatusCode)
	}
}
