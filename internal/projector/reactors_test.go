package projector_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort/githubsaga"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/reactor/reactortest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/internal/webhook"
)

// recorder is an httptest server that keeps the method, path and body of every request and
// answers like the GitHub issues API (enough for the saga) or with 204.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.Path+" "+string(body))
		r.mu.Unlock()
		switch {
		case strings.HasSuffix(req.URL.Path, "/issues") && req.Method == http.MethodPost:
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"number": 7, "html_url": "https://github.example/o/r/issues/7"})
		case strings.Contains(req.URL.Path, "/issues/"):
			_ = json.NewEncoder(w).Encode(map[string]any{"number": 7, "state": "closed"})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.reqs...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests, want %d: %v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunStartsReactors: projector.Run with reactors turned on runs each as its own group
// beside the projection.
func TestRunStartsReactors(t *testing.T) {
	e := reactortest.New(t)
	hooks, gh := newRecorder(t), newRecorder(t)
	subs, err := webhook.ParseSubscriptions([]byte(`[{"id":"all","url":"`+hooks.srv.URL+`",
		"events":["WorkEffort:*","work-effort.completed.v1"],"secret":"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	e.Produce(t, lifecycle(e.Stack, t, "we-1", time.Now())...)
	reactortest.Start(t, func(ctx context.Context) error {
		return projector.Run(ctx, ln, projector.Options{
			Brokers: e.Brokers, Registry: e.RegistryURL, Store: e.StoreURL, Topology: e.Topology,
			Metrics: prometheus.NewRegistry(), BatchWait: 10 * time.Millisecond,
			ReadModels: e.ReadModels,
			Reactors: projector.Reactors{
				Integrations: workeffort.Integrations(),
				Domain: []reactor.Spec{
					deployment.Reactor(deployment.Config{StepTimeout: time.Minute, PollInterval: 50 * time.Millisecond}),
					workeffort.GitHubSaga(githubsaga.Config{BaseURL: gh.srv.URL, Token: "t", Repository: "o/r", Backoff: 10 * time.Millisecond}),
				},
				Webhooks: webhook.Config{Subscriptions: subs},
				Retry:    reactor.Retry{Delay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
			},
		})
	})

	e.WaitCount(t, topology.IntegrationTopic, 1)
	e.WaitCount(t, reactortest.DeploymentRaw, 1)
	got := hooks.wait(t, 5) // Created, Started, ProgressUpdated, Completed, work-effort.completed.v1
	calls := gh.wait(t, 2)  // create on Started, close on Completed
	if !strings.HasPrefix(calls[0], "POST /repos/o/r/issues ") || !strings.HasPrefix(calls[1], "PATCH /repos/o/r/issues/7 ") {
		t.Errorf("GitHub calls %v", calls)
	}
	var types []string
	for _, r := range got {
		var p webhook.Payload
		_ = json.Unmarshal([]byte(r[strings.Index(r, "{"):]), &p)
		types = append(types, p.Type)
	}
	if !strings.Contains(strings.Join(types, ","), "work-effort.completed.v1") {
		t.Errorf("webhook types %v lack the integration event", types)
	}
	deadline := time.Now().Add(10 * time.Second)
	for getJSON(t, url+"/readyz", nil) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var body struct {
		Projections []projector.Status `json:"projections"`
	}
	if getJSON(t, url+"/v1/projections", &body); len(body.Projections) != 1 {
		t.Errorf("/v1/projections lists %d, want only the projection", len(body.Projections))
	}
	// The deployment module's read model is served beside the query API.
	pid := string(e.Events(t, reactortest.DeploymentRaw)[0].Origin.Key)
	var dep deployment.View
	if code := getJSON(t, url+"/v1/deployments/"+pid, &dep); code != http.StatusOK || dep.ID != pid ||
		dep.WorkEffortID != "we-1" || dep.State != deployment.StateTesting || len(dep.Steps) != 3 || dep.Deadline == nil {
		t.Errorf("GET /v1/deployments/%s: %d %+v", pid, code, dep)
	}
	if code := getJSON(t, url+"/v1/deployments/nope", nil); code != http.StatusNotFound {
		t.Errorf("GET /v1/deployments/nope: %d, want 404", code)
	}
}

// An SMTP server configured without any notification rule sends nothing: the projector
// says so at start instead of running silently without a notifier.
func TestRunWarnsOfSMTPWithoutNotifications(t *testing.T) {
	e := reactortest.New(t)
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "projector.log")) // safe for concurrent writes
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, nil))
	reactortest.Start(t, func(ctx context.Context) error {
		return projector.Run(ctx, ln, projector.Options{
			Brokers: e.Brokers, Registry: e.RegistryURL, Store: e.StoreURL, Topology: e.Topology,
			Metrics: prometheus.NewRegistry(), ReadModels: e.ReadModels, Logger: log,
			Reactors: projector.Reactors{Integrations: workeffort.Integrations(),
				SMTP: reactor.SMTPConfig{Host: "127.0.0.1", Port: 2525, From: "pyrite@example.com"}},
		})
	})
	deadline := time.Now().Add(20 * time.Second)
	for getJSON(t, "http://"+ln.Addr().String()+"/readyz", nil) != http.StatusOK && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs, err := os.ReadFile(logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "no module declares notification rules") {
		t.Errorf("no warning of an SMTP server without notification rules:\n%s", logs)
	}
}
