package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/certs"
)

func TestWithTLS(t *testing.T) {
	dir := t.TempDir()
	ca, _, err := certs.Ensure(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ln, err = WithTLS(ln, filepath.Join(dir, certs.CertFile), filepath.Join(dir, certs.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(nil, nil, nil), time.Second) }()
	defer func() { cancel(); <-done }()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := trusting.Get("https://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS with the CA: %v", err)
	}
	resp.Body.Close()
	if _, err := http.Get("https://" + ln.Addr().String() + "/healthz"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("HTTPS without the CA: %v, want a certificate error", err)
	}
	if _, err := WithTLS(nil, filepath.Join(dir, "missing.pem"), filepath.Join(dir, certs.KeyFile)); err == nil {
		t.Error("a missing certificate file is accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, certs.CAKey)); err != nil {
		t.Error(err)
	}
}
