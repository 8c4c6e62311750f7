package main

import (
	"context"
	"encoding/json"
	"github.com/pyrite-dev/pyrite/cmd/internal/modules"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/pyrite-dev/pyrite/internal/topology"
)

func TestACLPlanApply(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-512", "root", "root-password"), kfake.User("SCRAM-SHA-512", "svc-ingest", "ingest-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	acl := func(user, pass string, args ...string) (int, string, string) {
		t.Setenv("PYRITE_KAFKA_SASL_PASSWORD", pass)
		var out, errOut strings.Builder
		code := run(ctx, append(append([]string{"acl"}, args...), "--brokers", c.ListenAddrs()[0], "--timeout", "10s",
			"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-user", user, "--user", "ingest=svc-ingest"), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	want := len(mustTopology(t).ACLs(nil))

	// A principal that may not describe ACLs is refused.
	if code, out, errOut := acl("svc-ingest", "ingest-password", "plan"); code != 1 || !strings.Contains(errOut, "AUTHORIZATION") {
		t.Errorf("plan as a service principal: exit %d, %s %s; want an authorization failure", code, out, errOut)
	}

	code, out, errOut := acl("root", "root-password", "plan", "--output", "json")
	var p struct {
		Missing []map[string]string `json:"missing"`
		Extra   []map[string]string `json:"extra"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || len(p.Missing) != want {
		t.Fatalf("plan --output json: exit %d, %d missing (want %d): %s %s", code, len(p.Missing), want, out, errOut)
	}
	if m := p.Missing[0]; m["principal"] != "User:svc-ingest" || m["service"] != "ingest" || m["operation"] == "" || m["resource"] == "" {
		t.Errorf("first missing ACL %v: want the ingest service as User:svc-ingest, with resource and operation named", m)
	}
	if code, _, _ := acl("root", "root-password", "plan", "--exit-code"); code != 1 {
		t.Errorf("plan --exit-code with changes: exit %d, want 1", code)
	}
	if code, out, errOut := acl("root", "root-password", "apply"); code != 0 || !strings.Contains(out, "ACLs created") {
		t.Fatalf("apply: exit %d: %s %s", code, out, errOut)
	}
	if code, out, errOut := acl("root", "root-password", "plan", "--exit-code"); code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("plan after apply: exit %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := acl("root", "root-password", "plan", "--user", "bogus=x"); code != 2 {
		t.Errorf("an unknown service: exit %d (%s), want 2", code, errOut)
	}
}

func mustTopology(t *testing.T) *topology.Topology {
	t.Helper()
	top, err := modules.Topology(topology.Dev)
	if err != nil {
		t.Fatal(err)
	}
	return top
}
