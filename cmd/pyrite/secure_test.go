package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyrite-dev/pyrite/internal/domain/deployment"
	"github.com/pyrite-dev/pyrite/internal/kafkaconn"
)

// readCredentials reads <dir>/secure/credentials.json, checking its mode
// and that it has every part of the contract's shape.
func readCredentials(t *testing.T, dir string) (credentials, map[string]any) {
	t.Helper()
	path := filepath.Join(dir, "secure", credentialsFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	var raw map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"admin", "ingest", "upcaster", "projector", "registry"} {
		if c.Kafka.Users[u].User == "" || len(c.Kafka.Users[u].Password) < 16 {
			t.Errorf("kafka.users.%s is incomplete", u)
		}
	}
	if c.Kafka.Mechanism != "SCRAM-SHA-256" || c.Kafka.CA == "" || c.Registry.Reader == "" || c.Registry.Writer == "" || c.Registry.Admin == "" ||
		c.Ingest.Tokens.All == "" || c.Ingest.Tokens.DeploymentOnly == "" || c.Projector.Token == "" {
		t.Errorf("credentials.json lacks a part of the contract's shape: %s", data)
	}
	return c, raw
}

func kafkaAs(t *testing.T, c credentials, brokers, user, pass, ca string) *kgo.Client {
	t.Helper()
	kc := kafkaconn.Config{CA: ca, Mechanism: c.Kafka.Mechanism, User: user, Password: pass}
	opts, err := kc.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(brokers), kgo.RecordDeliveryTimeout(3*time.Second), kgo.RetryTimeout(2*time.Second), kgo.RequestRetries(1))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func httpDo(t *testing.T, method, url, auth, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func basic(userInfo string) string {
	u, p, _ := strings.Cut(userInfo, ":")
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(u, p)
	return req.Header.Get("Authorization")
}

// TestDevSecure runs pyrite dev --secure and checks each door: the broker
// refuses wrong passwords and principals without an ACL, and lets each
// service do its job; the HTTP APIs answer 401 without credentials and 403
// outside a role or scope; a restart keeps the credentials, the CA and the
// data.
func TestDevSecure(t *testing.T) {
	dir := t.TempDir()
	s := startDev(t, dir, "--secure")
	c, _ := readCredentials(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// HTTP: ingest tokens.
	created := `{"type":"WorkEffort:Created","aggregateId":"we-sec","data":{"title":"t","description":null,"createdAt":"2026-12-05T10:00:00Z","assignee":null}}`
	ingest := s.ingest + "/v1/events"
	if code := httpDo(t, "POST", ingest, "", created); code != 401 {
		t.Errorf("ingest without a token: %d, want 401", code)
	}
	if code := httpDo(t, "POST", ingest, "Bearer "+c.Ingest.Tokens.DeploymentOnly, created); code != 403 {
		t.Errorf("ingest, deployment-only token, WorkEffort event: %d, want 403", code)
	}
	if code := httpDo(t, "POST", ingest, "Bearer "+c.Ingest.Tokens.All, created); code != 201 {
		t.Fatalf("ingest with the all token: %d, want 201", code)
	}

	// HTTP: the projector's read token (the event goes through the upcaster and the
	// projection, each on its own principal).
	proj := s.projector + "/v1/work-efforts/we-sec"
	if code := httpDo(t, "GET", proj, "", ""); code != 401 {
		t.Errorf("projector without a token: %d, want 401", code)
	}
	for code := 0; code != 200; {
		code = httpDo(t, "GET", proj+"?minVersion=1", "Bearer "+c.Projector.Token, "")
		if ctx.Err() != nil {
			t.Fatalf("the projection never showed we-sec (last answer %d)", code)
		}
	}
	if code := httpDo(t, "GET", s.projector+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	checkBoardSignIn(t, s, c, dir)

	// The deployment process manager appends RunTests through ingest's event store, with
	// the ingest token "all": the process's stream holds it at version 1.
	completed := `{"id":"completed-sec","type":"WorkEffort:Completed","aggregateId":"we-sec","data":{"title":"t","completedAt":"2026-12-05T10:01:00Z","duration":60000,"ticketCount":0,"assigneeEmail":null}}`
	if code := httpDo(t, "POST", ingest, "Bearer "+c.Ingest.Tokens.All, completed); code != 201 {
		t.Fatalf("ingest, Completed with the all token: %d, want 201", code)
	}
	streamURL := s.ingest + "/v1/streams/" + deployment.ProcessID("completed-sec") + "?aggregateType=Deployment"
	for {
		req, _ := http.NewRequest("GET", streamURL, nil)
		req.Header.Set("Authorization", "Bearer "+c.Ingest.Tokens.All)
		var st struct {
			Events []struct {
				Type    string `json:"type"`
				Version int64  `json:"version"`
			} `json:"events"`
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if len(st.Events) > 0 {
			if st.Events[0].Type != "Deployment:RunTests" || st.Events[0].Version != 1 {
				t.Errorf("the process's stream starts with %+v, want RunTests at version 1", st.Events[0])
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the process manager never appended RunTests through the event store")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// It went through the append route, not straight to Kafka: the projector counted it.
	if resp, err := http.Get(s.projector + "/metrics"); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `pyrite_eventstore_client_appends_total{outcome="written"}`) {
			t.Error("the projector's metrics count no append through the event store")
		}
	}

	// HTTP: registry roles.
	reg := s.registry
	for _, tt := range []struct {
		method, path, auth string
		code               int
	}{
		{"GET", "/subjects", "", 401},
		{"GET", "/subjects", basic("registry-reader:wrong-password"), 401},
		{"GET", "/subjects", basic(c.Registry.Reader), 200},
		{"DELETE", "/subjects/pyrite.workeffort.Created", basic(c.Registry.Reader), 403},
		{"DELETE", "/subjects/pyrite.workeffort.Created", basic(c.Registry.Writer), 403},
		{"PUT", "/config", basic(c.Registry.Writer), 403},
	} {
		if code := httpDo(t, tt.method, reg+tt.path, tt.auth, ""); code != tt.code {
			t.Errorf("registry %s %s: %d, want %d", tt.method, tt.path, code, tt.code)
		}
	}

	// Kafka: the projector's principal reads the events topic; ingest's may not write it;
	// a wrong password does not connect.
	projector := kafkaAs(t, c, s.kafka, c.Kafka.Users["projector"].User, c.Kafka.Users["projector"].Password, c.Kafka.CA)
	projector.AddConsumePartitions(map[string]map[int32]kgo.Offset{"pyrite.work-effort.events": {
		0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}})
	var found bool
	for !found {
		fs := projector.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the projector principal never read we-sec from the events topic")
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s[%d] as projector: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { found = found || string(r.Key) == "we-sec" })
	}
	ing := kafkaAs(t, c, s.kafka, c.Kafka.Users["ingest"].User, c.Kafka.Users["ingest"].Password, c.Kafka.CA)
	err := ing.ProduceSync(ctx, &kgo.Record{Topic: "pyrite.work-effort.events", Key: []byte("we-x"), Value: []byte("forged")}).FirstErr()
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Errorf("ingest principal writing the events topic: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	wrong := kafkaAs(t, c, s.kafka, c.Kafka.Users["projector"].User, "wrong-password", c.Kafka.CA)
	if _, err := wrong.Request(ctx, kmsg.NewPtrMetadataRequest()); err == nil {
		t.Error("a wrong password connected")
	}

	// The CLI: pyrite lag as admin over TLS and SCRAM; without SASL it cannot read the groups.
	lag := func(extra ...string) (int, string) {
		var out, errOut strings.Builder
		args := append([]string{"lag", "--brokers", s.kafka, "--timeout", "5s", "--kafka-tls-ca", c.Kafka.CA}, extra...)
		code := run(ctx, args, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	t.Setenv("PYRITE_KAFKA_SASL_PASSWORD", c.Kafka.Users["admin"].Password)
	if code, out := lag("--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "admin"); code != 0 || !strings.Contains(out, "work-efforts") {
		t.Errorf("pyrite lag as admin: exit %d: %s", code, out)
	}
	if code, out := lag(); code == 0 {
		t.Errorf("pyrite lag without SASL: exit 0: %s", out)
	}

	checkNoSecrets(t, s, c)

	caBefore, _ := os.ReadFile(c.Kafka.CA)
	if err := s.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	s = startDev(t, dir, "--secure")
	defer s.stop()
	again, _ := readCredentials(t, dir)
	caAfter, _ := os.ReadFile(again.Kafka.CA)
	if again.Projector.Token != c.Projector.Token || again.Kafka.Users["admin"] != c.Kafka.Users["admin"] || string(caBefore) != string(caAfter) {
		t.Error("a restart changed the credentials or the CA")
	}
	if code := httpDo(t, "GET", s.projector+"/v1/work-efforts/we-sec?minVersion=1", "Bearer "+c.Projector.Token, ""); code != 200 {
		t.Errorf("after a restart, the projection: %d, want 200", code)
	}
}

// TestDevSecureRefusesPlainDataDir: --secure on a plain dev's data directory
// (whose Kafka has no users or ACLs), and plain dev on a secure one, fail
// with a clear error.
func TestDevSecureRefusesPlainDataDir(t *testing.T) {
	plain := t.TempDir()
	if err := os.MkdirAll(filepath.Join(plain, "kafka"), 0o755); err != nil || os.WriteFile(filepath.Join(plain, "kafka", "meta.json"), []byte("{}"), 0o644) != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	err := runDev(context.Background(), []string{"--data-dir", plain, "--secure", "--kafka-addr", freeAddr(t), "--registry-addr", freeAddr(t),
		"--ingest-addr", freeAddr(t), "--projector-addr", freeAddr(t), "--upcaster-addr", freeAddr(t)}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "plain pyrite dev") {
		t.Fatalf("--secure on a plain data dir: %v", err)
	}
	secure := t.TempDir()
	if err := os.MkdirAll(filepath.Join(secure, "secure"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secure, "secure", credentialsFile), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runDev(context.Background(), []string{"--data-dir", secure, "--kafka-addr", freeAddr(t), "--registry-addr", freeAddr(t),
		"--ingest-addr", freeAddr(t), "--projector-addr", freeAddr(t), "--upcaster-addr", freeAddr(t)}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "run with --secure") {
		t.Fatalf("plain dev on a secure data dir: %v", err)
	}
}

func TestCertsCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	certsRun := func() string {
		var out, errOut strings.Builder
		if code := run(context.Background(), []string{"certs", "--dir", dir, "--hosts", "kafka-1,127.0.0.1"}, &out, &errOut); code != 0 {
			t.Fatalf("pyrite certs: exit %d: %s", code, errOut.String())
		}
		ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return string(ca)
	}
	first := certsRun()
	if again := certsRun(); again != first {
		t.Error("a second run made a new CA")
	}
	ks, err := os.ReadFile(filepath.Join(dir, "server-keystore.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(ks), "-----BEGIN PRIVATE KEY-----") || !strings.Contains(string(ks), "-----BEGIN CERTIFICATE-----") {
		t.Errorf("key store is not a PKCS#8 key then a certificate:\n%s", ks[:min(len(ks), 80)])
	}
	if st, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
}

// checkBoardSignIn: pyrite dev --secure's board line names the credentials file,
// not the token; the board's sign-in trades the token for a cookie with which
// the stream and the query API are read (GET only), and a write is refused.
func checkBoardSignIn(t *testing.T, s *devStack, c credentials, dir string) {
	t.Helper()
	var board string
	for _, l := range s.printed {
		if strings.HasPrefix(l, "board ") {
			board = l
		}
	}
	if !strings.Contains(board, s.projector+"/") || !strings.Contains(board, filepath.Join(dir, "secure", credentialsFile)) {
		t.Errorf("board line %q: want the board's address and the credentials file", board)
	}
	sign := func(method, body string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, s.projector+"/v1/session", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := sign("POST", `{"token":"not-the-token-0123456789"}`); resp.StatusCode != 401 || len(resp.Cookies()) != 0 {
		t.Errorf("sign in with a wrong token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	resp := sign("POST", `{"token":"`+c.Projector.Token+`"}`)
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 {
		t.Fatalf("sign in with projector.token: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0]
	if cookie.Name != "pyrite_read_token" || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/v1/" {
		t.Errorf("sign-in cookie %+v", cookie)
	}
	if resp := sign("GET", "", cookie); resp.StatusCode != 200 {
		t.Errorf("GET /v1/session with the cookie: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", s.projector+"/v1/stream", nil)
	req.AddCookie(cookie)
	stream, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if stream.StatusCode != 200 || stream.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("GET /v1/stream with the cookie: %d %s", stream.StatusCode, stream.Header.Get("Content-Type"))
	}
	stream.Body.Close()
	req, _ = http.NewRequest("GET", s.projector+"/v1/work-efforts/we-sec", nil)
	req.AddCookie(cookie)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("GET /v1/work-efforts/we-sec with the cookie: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ = http.NewRequest("POST", s.projector+"/v1/commands", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(cookie)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Errorf("POST /v1/commands with only the cookie: %v %v, want 401", resp, err)
	} else {
		resp.Body.Close()
	}
	if resp := sign("DELETE", "", cookie); resp.StatusCode != 204 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// checkNoSecrets: nothing pyrite dev printed or logged holds a password or token.
func checkNoSecrets(t *testing.T, s *devStack, c credentials) {
	t.Helper()
	secrets := []string{c.Projector.Token, c.Ingest.Tokens.All, c.Ingest.Tokens.DeploymentOnly}
	for _, u := range c.Kafka.Users {
		secrets = append(secrets, u.Password)
	}
	for _, info := range []string{c.Registry.Reader, c.Registry.Writer, c.Registry.Admin} {
		_, pass, _ := strings.Cut(info, ":")
		secrets = append(secrets, pass)
	}
	out := strings.Join(s.printed, "\n") + "\n" + s.logs()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(out, sec) {
			t.Errorf("pyrite dev's output or logs hold a secret (%d characters)", len(sec))
		}
	}
}
