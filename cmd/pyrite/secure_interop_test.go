package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrite-dev/pyrite/internal/certs"
)

// secureNode runs interop/node/secure.mjs (one command) against a secure dev
// stack and returns its JSON document and exit code (0 ok, 3 refused). Node
// and the locked packages are required, as for the interop package.
func secureNode(t *testing.T, env []string, args ...string) (map[string]any, int) {
	t.Helper()
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (need Node 20 or later), then run `npm ci --prefix interop/node`: %v", err)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "interop", "node"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs", "package.json")); err != nil {
		t.Fatalf("run `npm ci --prefix interop/node`: %v", err)
	}
	cmd := exec.Command(nodeBin, append([]string{"secure.mjs"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatalf("node secure.mjs %v: exit %d, output %q, stderr %s", args, code, out, stderr.String())
	}
	return doc, code
}

// TestDevSecureOutsideClients: KafkaJS over TLS with SCRAM-SHA-256 reads the
// events topic with the credentials file's password and CA, and fails with
// a wrong password or a wrong CA; Confluent's registry client with basic
// auth registers as writer and is refused the delete as reader and writer
// (allowed as admin).
func TestDevSecureOutsideClients(t *testing.T) {
	dir := t.TempDir()
	s := startDev(t, dir, "--secure")
	defer s.stop()
	c, _ := readCredentials(t, dir)
	env := []string{"CREDENTIALS=" + filepath.Join(dir, "secure", credentialsFile), "BROKERS=" + s.kafka, "REGISTRY_URL=" + s.registry}

	created := `{"type":"WorkEffort:Created","aggregateId":"we-node","data":{"title":"t","description":null,"createdAt":"2026-12-05T10:00:00Z","assignee":null}}`
	if code := httpDo(t, "POST", s.ingest+"/v1/events", "Bearer "+c.Ingest.Tokens.All, created); code != 201 {
		t.Fatalf("ingest: %d", code)
	}
	doc, code := secureNode(t, env, "kafka-read", "admin", "pyrite.work-effort.events", "we-node")
	if code != 0 || doc["found"] != true {
		t.Fatalf("kafkajs with SCRAM and TLS reading the events topic: exit %d, %v", code, doc)
	}
	// A principal without a write ACL on the events topic (ingest writes raw) is refused.
	doc, code = secureNode(t, env, "kafka-write", "ingest", "pyrite.work-effort.events", "we-forged")
	if code != 3 || !strings.Contains(jsonString(doc), "authoriz") {
		t.Errorf("kafkajs as ingest writing the events topic: exit %d, %v; want an authorization error", code, doc)
	}
	if doc, code = secureNode(t, env, "kafka-write", "ingest", "pyrite.work-effort.raw", "we-raw"); code != 0 {
		t.Errorf("kafkajs as ingest writing its raw topic: exit %d, %v", code, doc)
	}
	doc, code = secureNode(t, append(env, "KAFKA_PASSWORD=wrong-password"), "kafka-connect", "admin")
	if code != 3 {
		t.Errorf("kafkajs with a wrong password: exit %d, %v; want a refusal", code, doc)
	}
	other, err := certs.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherCA, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	doc, code = secureNode(t, append(env, "KAFKA_CA="+otherCA), "kafka-connect", "admin")
	if code != 3 || !strings.Contains(jsonString(doc), "certificate") {
		t.Errorf("kafkajs trusting another CA: exit %d, %v; want a certificate error", code, doc)
	}
	if doc, code = secureNode(t, env, "kafka-connect", "admin"); code != 0 {
		t.Errorf("kafkajs with the right password and CA: exit %d, %v", code, doc)
	}

	schema := filepath.Join(t.TempDir(), "Probe.avsc")
	if err := os.WriteFile(schema, []byte(`{"type":"record","name":"Probe","namespace":"pyrite.interop","fields":[{"name":"a","type":"string"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	const subject = "pyrite.interop.Probe"
	if doc, code = secureNode(t, env, "sr-register", "reader", subject, schema); code != 3 || !strings.Contains(jsonString(doc), "403") {
		t.Errorf("register as reader: exit %d, %v; want 403", code, doc)
	}
	if doc, code = secureNode(t, env, "sr-register", "writer", subject, schema); code != 0 || doc["id"] == nil {
		t.Fatalf("register as writer: exit %d, %v", code, doc)
	}
	for _, role := range []string{"reader", "writer"} {
		if doc, code = secureNode(t, env, "sr-delete", role, subject); code != 3 || !strings.Contains(jsonString(doc), "403") {
			t.Errorf("delete as %s: exit %d, %v; want 403", role, code, doc)
		}
	}
	if doc, code = secureNode(t, env, "sr-delete", "admin", subject); code != 0 {
		t.Errorf("delete as admin: exit %d, %v", code, doc)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
