package registry

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
)

func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

type testRegistry struct {
	*Registry
	srv *httptest.Server
	reg *prometheus.Registry
}

func startRegistry(t testing.TB, c *kfake.Cluster, opts ...Option) *testRegistry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reg := prometheus.NewRegistry()
	r, err := New(ctx, c.ListenAddrs(), append([]Option{WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(r.Handler())
	tr := &testRegistry{Registry: r, srv: srv, reg: reg}
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testRegistry) stop() {
	tr.srv.Close()
	tr.Close()
}

type response struct {
	status int
	ctype  string
	body   string
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

// errorCode returns the error_code of an error body, or 0.
func (r response) errorCode() int {
	var e struct {
		Code    int    `json:"error_code"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(r.body), &e) != nil {
		return 0
	}
	return e.Code
}

func (tr *testRegistry) do(t testing.TB, method, path, body string) response {
	t.Helper()
	return doRequest(t, tr.srv.URL, method, path, body, mediaV1)
}

func doRequest(t testing.TB, base, method, path, body, ctype string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: string(b)}
}

// schemaBody wraps an Avro schema text in a register request body.
func schemaBody(t testing.TB, schema string, extra ...string) string {
	t.Helper()
	b, err := json.Marshal(schema)
	if err != nil {
		t.Fatal(err)
	}
	s := `{"schema":` + string(b)
	for _, e := range extra {
		s += "," + e
	}
	return s + "}"
}
