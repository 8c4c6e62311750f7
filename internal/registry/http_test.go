package registry

import (
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

func TestBodyLimit(t *testing.T) {
	c := newCluster(t)
	small := startRegistry(t, c, WithMaxBodyBytes(1024))
	dflt := startRegistry(t, c, WithTopic("_schemas_default_limit"))
	big := sb(`{"type":"record","name":"R","doc":"` + strings.Repeat("x", 2000) + `","fields":[]}`)
	tests := []struct {
		name    string
		base    string
		body    io.Reader
		length  int64 // -1: unknown (chunked)
		status  int
		code    int
		wantOut string
	}{
		{name: "declared length over the limit", base: small.srv.URL, body: strings.NewReader(big), length: int64(len(big)), status: 413, code: 413},
		{name: "chunked body over the limit", base: small.srv.URL, body: strings.NewReader(big), length: -1, status: 413, code: 413},
		{name: "under the limit", base: small.srv.URL, body: strings.NewReader(sb(`"string"`)), length: -1, status: 200},
		{name: "over the default 16 MiB", base: dflt.srv.URL, body: io.MultiReader(strings.NewReader(`{"schema":"`), &zeros{n: DefaultMaxBodyBytes}), length: -1, status: 413, code: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", tt.base+"/subjects/s/versions", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = tt.length
			req.Header.Set("Content-Type", mediaV1)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			r := response{status: resp.StatusCode, body: string(b)}
			if r.status != tt.status || (tt.code != 0 && r.errorCode() != tt.code) {
				t.Errorf("got %d %s, want %d error_code %d", r.status, r.body, tt.status, tt.code)
			}
		})
	}
}

// zeros is n bytes of '0', to stream a large body without holding it.
type zeros struct{ n int }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	k := min(len(p), z.n)
	for i := range k {
		p[i] = '0'
	}
	z.n -= k
	return k, nil
}

func TestResponseContentType(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	tests := []struct {
		name   string
		accept string
		want   string
	}{
		{name: "no Accept", accept: "", want: mediaV1},
		{name: "v1", accept: mediaV1, want: mediaV1},
		{name: "anything", accept: "*/*", want: mediaV1},
		{name: "unversioned", accept: mediaDefault, want: mediaDefault},
		{name: "plain JSON", accept: "application/json", want: mediaJSON},
		{name: "preference list", accept: "application/json;q=0.9, " + mediaV1, want: mediaV1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tr.srv.URL+"/subjects", nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Content-Type"); got != tt.want {
				t.Errorf("Content-Type %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSubjectNamesNeedingEscapes(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	runSteps(t, tr, []step{
		{name: "slash", method: "POST", path: "/subjects/a%2Fb/versions", body: sb(`"string"`), status: 200, contains: []string{`{"id":1,`}},
		{name: "listed unescaped", method: "GET", path: "/subjects", status: 200, want: `["a/b"]`},
		{name: "read back", method: "GET", path: "/subjects/a%2Fb/versions/1", status: 200, contains: []string{`"subject":"a/b"`}},
		{name: "space and unicode", method: "POST", path: "/subjects/caf%C3%A9%20x/versions", body: sb(`"string"`), status: 200, contains: []string{`{"id":1,`}},
		{name: "record name strategy subject", method: "POST", path: "/subjects/pyrite.workeffort.Created/versions", body: sb(`"int"`), status: 200, contains: []string{`{"id":2,`}},
	})
}

func TestMetricsAndReadiness(t *testing.T) {
	c := newCluster(t)
	tr := startRegistry(t, c)
	if !tr.Ready() {
		t.Fatal("not ready after New returned")
	}
	tr.do(t, "POST", "/subjects/s/versions", sb(`"string"`))
	tr.do(t, "GET", "/subjects/s/versions/1", "")
	tr.do(t, "GET", "/subjects/s/versions/9", "")
	tr.do(t, "GET", "/nowhere", "")
	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{name: "register 2xx", metric: "pyrite_registry_http_requests_total", labels: map[string]string{"route": "POST /subjects/{subject}/versions", "code": "2xx"}, want: 1},
		{name: "version 2xx", metric: "pyrite_registry_http_requests_total", labels: map[string]string{"route": "GET /subjects/{subject}/versions/{version}", "code": "2xx"}, want: 1},
		{name: "version 4xx", metric: "pyrite_registry_http_requests_total", labels: map[string]string{"route": "GET /subjects/{subject}/versions/{version}", "code": "4xx"}, want: 1},
		{name: "unmatched 4xx", metric: "pyrite_registry_http_requests_total", labels: map[string]string{"route": "unmatched", "code": "4xx"}, want: 1},
		{name: "committed writes", metric: "pyrite_registry_store_writes_total", labels: map[string]string{"outcome": "committed"}, want: 1},
		{name: "schemas", metric: "pyrite_registry_schemas", want: 1},
		{name: "ready", metric: "pyrite_registry_ready", want: 1},
	}
	families, err := tr.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := metricValue(families, tt.metric, tt.labels); !ok || got != tt.want {
				t.Errorf("%s%v = %v (found %v), want %v", tt.metric, tt.labels, got, ok, tt.want)
			}
		})
	}
	tr.stop()
	if tr.Ready() {
		t.Error("ready after Close")
	}
	if fams, _ := tr.reg.Gather(); len(fams) != 0 {
		t.Errorf("%d metric families still registered after Close", len(fams))
	}
}

func metricValue(families []*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}
