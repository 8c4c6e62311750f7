package compose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
	"github.com/pyrite-dev/pyrite/internal/webhook"
)

// loadCompose loads a compose file as docker compose does (compose-go's loader: schema
// validation, interpolation, merging of anchors and extends), with every profile named.
func loadCompose(t *testing.T, ctx context.Context, file string, profiles ...string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithName("pyrite"),
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithEnv([]string{"PYRITE_OTLP_ENDPOINT="}), // the file's own default, whatever the caller has
		cli.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(ctx)
}

// TestComposeFile: compose-go, docker compose's own loader, accepts the file, and it has
// every part the README promises.
func TestComposeFile(t *testing.T) {
	p, err := loadCompose(t, t.Context(), "docker-compose.yml", "tracing")
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, s := range []string{"kafka-1", "kafka-2", "kafka-3", "schema-registry", "postgres", "topology", "schemas",
		"ingest", "upcaster", "projector", "prometheus", "grafana", "jaeger"} {
		if _, ok := p.Services[s]; !ok {
			t.Errorf("service %s is missing; services: %v", s, slices.Sorted(maps.Keys(p.Services)))
		}
	}
	if got := p.Services["topology"].Command; !slices.Equal(got[:min(5, len(got))], []string{"pyrite", "topology", "apply", "--profile", "production"}) {
		t.Errorf("topology runs %v, not the production profile", got)
	}
	for _, k := range []string{"kafka-1", "kafka-2", "kafka-3"} {
		env := p.Services[k].Environment
		for name, want := range map[string]string{"KAFKA_PROCESS_ROLES": "broker,controller", "KAFKA_MIN_INSYNC_REPLICAS": "2"} {
			if v := env[name]; v == nil || *v != want {
				t.Errorf("%s: %s = %v, want %q", k, name, v, want)
			}
		}
	}
	for _, s := range []string{"ingest", "upcaster", "projector"} {
		if d := p.Services[s].DependsOn["schemas"]; d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s depends on schemas with condition %q, want %q", s, d.Condition, types.ServiceConditionCompletedSuccessfully)
		}
	}
	// The registry starts once the topics exist and its principal's ACLs are in place.
	for svc, dep := range map[string]string{"acl": "topology", "schema-registry": "acl"} {
		if d := p.Services[svc].DependsOn[dep]; d.Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s depends on %s with condition %q, want %q", svc, dep, d.Condition, types.ServiceConditionCompletedSuccessfully)
		}
	}
	without, err := loadCompose(t, t.Context(), "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := without.Services["jaeger"]; ok {
		t.Error("jaeger runs without the tracing profile")
	}
}

// TestComposeLoaderRefuses: the loader the checks rely on refuses what docker compose
// refuses, so TestComposeFile can fail.
func TestComposeLoaderRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":          "services:\n  a:\n    image: x\n    comand: [y]\n",
		"undefined dependency": "services:\n  a:\n    image: x\n    depends_on: [b]\n",
		"bad condition":        "services:\n  a:\n    image: x\n    depends_on: {b: {condition: done}}\n  b:\n    image: y\n",
	} {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "compose.yml")
			if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCompose(t, t.Context(), f); err == nil {
				t.Errorf("the loader accepted\n%s", body)
			}
		})
	}
}

// TestPrometheusFile: Prometheus's own config loader accepts the file, and it scrapes every
// program where the compose file makes it listen.
func TestPrometheusFile(t *testing.T) {
	cfg, err := promconfig.LoadFile("prometheus.yml", false, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	targets := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, d := range sc.ServiceDiscoveryConfigs {
			static, ok := d.(discovery.StaticConfig)
			if !ok {
				continue
			}
			for _, g := range static {
				for _, tg := range g.Targets {
					targets[string(tg[model.AddressLabel])] = true
				}
			}
		}
	}
	p, err := loadCompose(t, t.Context(), "docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []struct{ service, def string }{
		{"ingest", config.DefaultIngest}, {"upcaster", config.DefaultUpcaster}, {"projector", config.DefaultProjector},
	} {
		_, port, _ := net.SplitHostPort(prog.def)
		if target := prog.service + ":" + port; !targets[target] {
			t.Errorf("prometheus.yml does not scrape %s; it scrapes %v", target, slices.Sorted(maps.Keys(targets)))
		}
		if want := []string{prog.service, "--addr", "0.0.0.0:" + port}; !slices.Equal(p.Services[prog.service].Command, want) {
			t.Errorf("docker-compose.yml runs %v, want %v", p.Services[prog.service].Command, want)
		}
	}
}

// TestPrometheusLoaderRefuses: the loader refuses a broken file, so TestPrometheusFile can fail.
func TestPrometheusLoaderRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"unknown key":   "scrape_configs:\n  - job_name: a\n    static_config: []\n",
		"duplicate job": "scrape_configs:\n  - job_name: a\n  - job_name: a\n",
		"bad interval":  "global:\n  scrape_interval: soon\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := promconfig.Load(body, slog.New(slog.DiscardHandler)); err == nil {
				t.Errorf("the loader accepted\n%s", body)
			}
		})
	}
}

// TestDockerfile: the image holds every program the compose file runs.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, prog := range []string{"pyrite", "ingest", "upcaster", "projector"} {
		if !strings.Contains(string(b), "./cmd/"+prog) {
			t.Errorf("the Dockerfile does not build ./cmd/%s", prog)
		}
		if _, err := os.Stat(filepath.Join("..", "cmd", prog, "main.go")); err != nil {
			t.Errorf("./cmd/%s: %v", prog, err)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER nonroot"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
}

// grafanaVariables are the dashboard variables Grafana replaces before a query reaches
// Prometheus; the check puts a value of the same kind in their place.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// metricNames parses a dashboard query with Prometheus's own PromQL parser and returns the
// metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" && !slices.Contains(out, vs.Name) {
			out = append(out, vs.Name)
		}
		return nil
	})
	return out, nil
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (type) (rate(pyrite_ingest_events_total[$__rate_interval]))`, []string{"pyrite_ingest_events_total"}},
		{`histogram_quantile(0.99, sum by (le, outcome) (rate(x_seconds_bucket{job="a b", le!="+Inf"}[5m])))`, []string{"x_seconds_bucket"}},
		{`a / on(group) b + ignoring (x) c unless d offset 5m`, []string{"a", "b", "c", "d"}},
		{`sum without (instance) (increase(pyrite_runner_dlq_total[1h])) > bool 0`, []string{"pyrite_runner_dlq_total"}},
		{`label_replace(m, "dst", "$1", "src", "(.*)")`, []string{"m"}},
		{`count(sum by (group) (pyrite_runner_lag)) or vector(0)`, []string{"pyrite_runner_lag"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := metricNames(tt.expr)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("metricNames = %v, %v, want %v", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{`sum by (type) (rate(x[5m])`, `rate(x)`, `histogram_quantile(x_bucket)`, `no_such_function(x)`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q) accepted invalid PromQL", bad)
		}
	}
}

// dashboardMetrics returns every metric name the dashboard's queries select.
func dashboardMetrics(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("grafana/dashboards/pyrite.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	var out []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			names, err := metricNames(tg.Expr)
			if err != nil {
				t.Errorf("panel %q: %q is not valid PromQL: %v", p.Title, tg.Expr, err)
			}
			if len(names) == 0 {
				t.Errorf("panel %q: no metric in %q", p.Title, tg.Expr)
			}
			out = append(out, names...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// family is a scraped metric family: its type, and which program exported it.
type family struct {
	typ      string
	programs []string
}

// scrape returns the families a /metrics endpoint exports, by name.
func scrape(t *testing.T, url string) map[string]string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// exported returns the family a series name belongs to: histograms and summaries export
// <name>_bucket, _sum and _count.
func exported(families map[string]family, series string) (string, bool) {
	if _, ok := families[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if f, ok := families[base]; ok && (f.typ == "histogram" || (f.typ == "summary" && suffix != "_bucket")) {
				return base, true
			}
		}
	}
	return "", false
}

// documented returns the metric names in the first column of README.md's tables; a name
// ending in "*" documents every metric with that prefix (a Kafka client's kprom set).
func documented(t *testing.T) docs {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("`([a-z_:][a-z0-9_:]*\\*?)`")
	out := docs{}
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "|") {
			continue
		}
		cells := strings.Split(l, "|")
		if len(cells) > 1 {
			for _, m := range re.FindAllStringSubmatch(cells[1], -1) {
				out[m[1]] = true
			}
		}
	}
	return out
}

type docs map[string]bool

func (d docs) has(name string) bool {
	if d[name] {
		return true
	}
	for n := range d {
		if prefix, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// TestDashboardQueriesExportedMetrics runs ingest, the upcaster and the projector in process
// on an embedded Kafka, as their main functions do, sends an event through them and a
// record each cannot decode, then scrapes their /metrics: every metric the dashboard
// queries must be among what they export, and every Pyrite metric they export must be in
// README.md's table.
func TestDashboardQueriesExportedMetrics(t *testing.T) {
	want := dashboardMetrics(t)
	if len(want) < 5 {
		t.Fatalf("the dashboard queries only %v", want)
	}
	s := stacktest.Start(t)
	// A webhook subscriber that fails until told otherwise: the projector's webhook reactor
	// retries through its retry topic.
	var subscriberDown atomic.Bool
	subscriberDown.Store(true)
	subscriber := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if subscriberDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer subscriber.Close()
	subs, err := webhook.ParseSubscriptions([]byte(`[{"id": "compose-test", "url": "`+subscriber.URL+`", "events": ["WorkEffort:*"],
		"secret": "whsec_`+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+`"}]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	log := slog.New(slog.DiscardHandler)
	newRegistry := func() *prometheus.Registry {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		return reg
	}
	type program struct {
		name string
		ln   net.Listener
		run  func(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error
	}
	programs := []program{
		{name: "ingest", run: func(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
			return ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology, Metrics: reg, Logger: log})
		}},
		{name: "upcaster", run: func(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
			return upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology, Metrics: reg, Logger: log,
				KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
				Config:    upcaster.Config{TransactionalID: "compose-test-upcaster"}})
		}},
		{name: "projector", run: func(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
			return projector.Run(ctx, ln, projector.Options{Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology, Metrics: reg, Logger: log,
				Store: filepath.Join(t.TempDir(), "projector.db"), BatchWait: 10 * time.Millisecond, ReadModels: s.ReadModels,
				KafkaOpts: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
				Reactors: projector.Reactors{
					Webhooks: webhook.Config{Subscriptions: subs},
					Retry:    reactor.Retry{MaxAttempts: 100, Delay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
				}})
		}},
	}
	done := make(chan error, len(programs))
	for i := range programs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		programs[i].ln = ln
		p := programs[i]
		go func() { done <- p.run(ctx, p.ln, newRegistry()) }()
	}
	t.Cleanup(func() {
		stop()
		for range programs {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("program: %v", err)
			}
		}
	})
	base := func(name string) string {
		for _, p := range programs {
			if p.name == name {
				return "http://" + p.ln.Addr().String()
			}
		}
		t.Fatalf("no program %s", name)
		return ""
	}
	deadline := time.Now().Add(60 * time.Second)
	poll := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("gave up waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	status := func(method, url, body string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, p := range programs {
		poll(p.name+" ready", func() bool { return status("GET", base(p.name)+"/readyz", "") == http.StatusOK })
	}
	event := `{"type":"WorkEffort:Created","aggregateId":"we-compose","data":{"title":"Compose","createdAt":"2025-03-01T09:00:00.000Z"}}`
	poll("ingest to accept an event", func() bool { return status("POST", base("ingest")+"/v1/events", event) == http.StatusCreated })
	poll("the projector to apply it", func() bool {
		return status("GET", base("projector")+"/v1/work-efforts/we-compose", "") == http.StatusOK
	})
	// A record each of the upcaster and the projector cannot decode: their dead letters.
	s.Produce(t, &kgo.Record{Topic: "pyrite.work-effort.raw", Key: []byte("junk"), Value: []byte("junk")},
		&kgo.Record{Topic: "pyrite.work-effort.events", Key: []byte("junk"), Value: []byte("junk")})
	poll("the projector's dead letter and the webhook's retry", func() bool {
		m := scrape(t, base("projector")+"/metrics")
		_, dlq := m["pyrite_runner_dlq_total"]
		_, retry := m["pyrite_runner_enqueued_total"]
		return dlq && retry
	})
	subscriberDown.Store(false)
	poll("the webhook's delivery", func() bool {
		_, ok := scrape(t, base("projector")+"/metrics")["pyrite_reactor_effects_total"]
		return ok
	})

	families := map[string]family{}
	for _, p := range programs {
		for name, typ := range scrape(t, base(p.name)+"/metrics") {
			f := families[name]
			f.typ = typ
			f.programs = append(f.programs, p.name)
			families[name] = f
		}
	}
	for _, m := range want {
		if _, ok := exported(families, m); !ok {
			t.Errorf("the dashboard queries %s, which no program exports", m)
		}
	}
	docs := documented(t)
	for _, name := range slices.Sorted(maps.Keys(families)) {
		if strings.HasPrefix(name, "pyrite_") && !docs.has(name) {
			t.Errorf("%s (exported by %v) is not in README.md's metrics table", name, families[name].programs)
		}
	}
	for _, m := range want {
		if name, ok := exported(families, m); ok && !docs.has(name) {
			t.Errorf("the dashboard's %s is not in README.md's metrics table", name)
		}
	}
}
