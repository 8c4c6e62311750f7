package ingest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/eventstore"
	"github.com/pyrite-dev/pyrite/internal/httpauth"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/server"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

const (
	opsToken        = "ops-token-0123456789"
	deploymentToken = "deployment-token-0123456789"
)

// TestIngestTokens runs ingest with an --auth-file's tokens: a token scoped
// to Deployment:* writes a deployment command (its principal recorded) and
// is refused a WorkEffort event, alone or in a batch, with nothing written;
// no token or an unknown one gets 401; /healthz stays open.
func TestIngestTokens(t *testing.T) {
	s := stacktest.Start(t)
	tokens, err := httpauth.NewTokens([]httpauth.Token{
		{Token: opsToken, Principal: "ops", Types: []string{"*"}, SetUserID: true},
		{Token: deploymentToken, Principal: "deploy-bot", Types: []string{"Deployment:*"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := server.Listen("127.0.0.1:0", "addr")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain,
			Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology, Metrics: prometheus.NewRegistry(),
			Drain: 5 * time.Second, Auth: tokens, Store: ingest.StoreOptions{Group: uniqueGroup(), SessionTimeout: 6 * time.Second},
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingest.Run: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	waitOwnedWith(t, url, opsToken)

	post := func(path, token, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	runTests := `{"type":"Deployment:RunTests","aggregateId":"dp-1","data":{"workEffortId":"we-1","processId":"dp-1"},"metadata":{"userId":"mallory"}}`
	// The append route, with an encoded WorkEffort event.
	weRec := s.Record(t, rawTopic, "WorkEffort:Created", "we-append", 0, map[string]any{"title": "T", "createdAt": time.Now()})
	hs := map[string]string{}
	for _, h := range weRec.Headers {
		hs[h.Key] = string(h.Value)
	}
	appendBody, _ := json.Marshal(eventstore.AppendRequest{Events: []eventstore.AppendEvent{{AggregateID: "we-append", Value: weRec.Value, Headers: hs}}})
	before := s.EndOffsets(t, rawTopic, "pyrite.deployment.raw")

	for _, tt := range []struct {
		name, path, token, body string
		code                    int
	}{
		{"no token", "/v1/events", "", created, 401},
		{"unknown token", "/v1/events", "unknown-token-0123456789", created, 401},
		{"out of scope", "/v1/events", deploymentToken, created, 403},
		{"batch with one out of scope", "/v1/events:batch", deploymentToken, `{"events":[` + runTests + `,` + created + `]}`, 403},
		{"append without a token", eventstore.AppendPath, "", string(appendBody), 401},
		{"append out of scope", eventstore.AppendPath, deploymentToken, string(appendBody), 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(tt.path, tt.token, tt.body)
			if code != tt.code {
				t.Fatalf("%d %v, want %d", code, body, tt.code)
			}
			if strings.Contains(jsonText(body), "0123456789") {
				t.Errorf("answer shows a token: %v", body)
			}
		})
	}
	if after := s.EndOffsets(t, rawTopic, "pyrite.deployment.raw"); after[rawTopic] != before[rawTopic] || after["pyrite.deployment.raw"] != before["pyrite.deployment.raw"] {
		t.Fatalf("refused requests wrote records: end offsets %v, then %v", before, after)
	}

	if code, body := post("/v1/events", deploymentToken, runTests); code != 201 {
		t.Fatalf("in-scope event: %d %v", code, body)
	}
	if code, body := post("/v1/events", opsToken, created); code != 201 {
		t.Fatalf("ops token: %d %v", code, body)
	}
	if code, body := post(eventstore.AppendPath, opsToken, string(appendBody)); code != 201 {
		t.Fatalf("append with the ops token: %d %v", code, body)
	}
	header := func(topic string) map[string]string {
		recs := s.Consume(t, topic, 1)
		h := map[string]string{}
		for _, kv := range recs[0].Headers {
			h[kv.Key] = string(kv.Value)
		}
		return h
	}
	// The deployment token may not act for the body's userId: ce_userid is its principal.
	if h := header("pyrite.deployment.raw"); h["ce_userid"] != "deploy-bot" || h[ingest.HeaderPrincipal] != "deploy-bot" {
		t.Errorf("deployment record headers %v: want ce_userid and pyrite-principal deploy-bot", h)
	}
	// The ops token may: ce_userid is the body's, the principal still recorded.
	if h := header(rawTopic); h["ce_userid"] != "ada" || h[ingest.HeaderPrincipal] != "ops" {
		t.Errorf("work effort record headers %v: want ce_userid ada, pyrite-principal ops", h)
	}
	for _, open := range []string{"/healthz", "/metrics"} { // /metrics: MetricsAuth is off
		resp, err := http.Get(url + open)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s without a token: %v %v", open, resp, err)
		}
		resp.Body.Close()
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// waitOwnedWith is waitOwned for an ingest that wants a token.
func waitOwnedWith(t *testing.T, url, token string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("ingest never ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
