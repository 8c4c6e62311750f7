package topology

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestACLsAreLeastPrivilege(t *testing.T) {
	top, err := New(Dev, seed()...)
	if err != nil {
		t.Fatal(err)
	}
	has := func(service, op, name string) bool {
		for _, a := range top.ACLs(nil) {
			if a.Service == service && a.Operation.String() == op && a.Name == name {
				return true
			}
		}
		return false
	}
	tests := []struct {
		service, op, name string
		want              bool
	}{
		{ServiceIngest, "WRITE", "pyrite.work-effort.raw", true},
		{ServiceIngest, "READ", "pyrite.work-effort.raw", true},
		{ServiceIngest, "WRITE", "pyrite.work-effort.events", false},
		{ServiceUpcaster, "READ", "pyrite.work-effort.raw", true},
		{ServiceUpcaster, "WRITE", "pyrite.work-effort.raw", false},
		{ServiceUpcaster, "WRITE", "pyrite.work-effort.events", true},
		{ServiceUpcaster, "WRITE", "pyrite.upcaster.dlq", true},
		{ServiceProjector, "READ", "pyrite.work-effort.events", true},
		{ServiceProjector, "WRITE", "pyrite.work-effort.events", false},
		{ServiceProjector, "WRITE", "pyrite.integration", true},
		{ServiceProjector, "WRITE", "pyrite.deployment.dlq", true},
		{ServiceProjector, "WRITE", "pyrite.upcaster.dlq", false},
		{ServiceProjector, "READ", "_schemas", false},
		{ServiceRegistry, "WRITE", "_schemas", true},
		{ServiceRegistry, "READ", "pyrite.work-effort.events", false},
	}
	for _, tt := range tests {
		if got := has(tt.service, tt.op, tt.name); got != tt.want {
			t.Errorf("%s %s %s declared = %v, want %v", tt.service, tt.op, tt.name, got, tt.want)
		}
	}
	if got := top.ACLs(Users{ServiceIngest: "svc-ingest"})[0].Principal; got != "User:svc-ingest" {
		t.Errorf("principal with a user override = %q", got)
	}
}

func saslClient(t *testing.T, brokers []string, user, pass string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()),
		kgo.RecordDeliveryTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestPlanApplyACLs applies the declared set on a cluster with ACLs on and
// checks what it lets each principal do: the upcaster writes events but is
// refused the raw topic, and nothing it was refused is on the topic.
func TestPlanApplyACLs(t *testing.T) {
	top, err := New(Dev, seed(WithPartitions(1))...)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "a"), kfake.User("SCRAM-SHA-256", ServiceUpcaster, "u"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(saslClient(t, c.ListenAddrs(), "admin", "a"))
	if _, err := top.Ensure(ctx, adm); err != nil {
		t.Fatal(err)
	}
	p, err := top.PlanACLs(ctx, adm, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(top.ACLs(nil)); len(p.Missing) != want || len(p.Extra) != 0 {
		t.Fatalf("plan on an empty cluster: %d missing, %d extra; want %d missing", len(p.Missing), len(p.Extra), want)
	}

	up := saslClient(t, c.ListenAddrs(), ServiceUpcaster, "u")
	write := func(topic string) error {
		return up.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")}).FirstErr()
	}
	if err := write("pyrite.work-effort.events"); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("upcaster writes events before apply: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}

	if err := ApplyACLs(ctx, adm, p); err != nil {
		t.Fatal(err)
	}
	if p, err = top.PlanACLs(ctx, adm, nil); err != nil || !p.Empty() {
		t.Fatalf("plan after apply: %+v, %v; want empty", p, err)
	}
	if err := write("pyrite.work-effort.events"); err != nil {
		t.Fatalf("upcaster writes events after apply: %v", err)
	}
	err = write("pyrite.work-effort.raw")
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("upcaster writes raw: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	ends, err := adm.ListEndOffsets(ctx, "pyrite.work-effort.raw", "pyrite.work-effort.events")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("pyrite.work-effort.raw", 0); o.Offset != 0 {
		t.Errorf("raw end offset %d after a refused write, want 0", o.Offset)
	}
	if o, _ := ends.Lookup("pyrite.work-effort.events", 0); o.Offset != 1 {
		t.Errorf("events end offset %d, want 1", o.Offset)
	}

	// An ACL beyond the declared set is reported, not removed.
	if _, err := adm.CreateACLs(ctx, kadm.NewACLs().Allow("User:"+ServiceUpcaster).Topics("pyrite.system").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral)); err != nil {
		t.Fatal(err)
	}
	p, err = top.PlanACLs(ctx, adm, nil)
	if err != nil || len(p.Missing) != 0 || len(p.Extra) != 1 || !strings.Contains(p.Extra[0].String(), "pyrite.system") {
		t.Fatalf("plan with an extra ACL: %+v, %v", p, err)
	}
}
