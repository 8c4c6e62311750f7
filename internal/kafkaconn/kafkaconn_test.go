package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/pyrite-dev/pyrite/internal/certs"
)

// secureCluster is a kfake cluster with TLS (a CA written to caFile),
// SCRAM-SHA-256 users and ACLs on: "admin" is a superuser, "writer" may
// write and read topic t, "reader" may only read it.
func secureCluster(t *testing.T) (brokers []string, caFile string) {
	t.Helper()
	ca, srv := mustPKI(t, "127.0.0.1")
	cert, err := srv.TLS()
	if err != nil {
		t.Fatal(err)
	}
	allow := func(op kmsg.ACLOperation) kfake.ACL {
		return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: "t", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
	}
	// Both may produce idempotently, so what tells them apart is the topic.
	idempotent := kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(ScramSHA256, "admin", "admin-pass"),
		kfake.User(ScramSHA256, "writer", "writer-pass", allow(kmsg.ACLOperationWrite), allow(kmsg.ACLOperationRead), idempotent),
		kfake.User(ScramSHA256, "reader", "reader-pass", allow(kmsg.ACLOperationRead), idempotent),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return c.ListenAddrs(), caFile
}

func mustPKI(t *testing.T, host string) (ca, srv certs.Pair) {
	t.Helper()
	ca, err := certs.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	srv, err = certs.NewServer(ca, host)
	if err != nil {
		t.Fatal(err)
	}
	return ca, srv
}

func client(t *testing.T, brokers []string, c Config) *kgo.Client {
	t.Helper()
	opts, err := c.Opts()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(brokers...), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// connect sends one metadata request without retries: the error is the
// connection's (TLS handshake, SASL authentication).
func connect(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
	return err
}

func produce(cl *kgo.Client, value string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte(value)}).FirstErr()
}

// records reads every value on t as the superuser.
func records(t *testing.T, brokers []string, caFile string) []string {
	t.Helper()
	admin := client(t, brokers, Config{CA: caFile, Mechanism: ScramSHA256, User: "admin", Password: "admin-pass"})
	ends, err := admin.Request(context.Background(), &kmsg.ListOffsetsRequest{Topics: []kmsg.ListOffsetsRequestTopic{{
		Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	end := ends.(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset
	var out []string
	if end == 0 {
		return out
	}
	cons := client(t, brokers, Config{CA: caFile, Mechanism: ScramSHA256, User: "admin", Password: "admin-pass"})
	cons.AddConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().AtStart()}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for int64(len(out)) < end {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading t: %v (have %d of %d)", err, len(out), end)
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

func TestBrokerRefusesPrincipalWithoutWriteACL(t *testing.T) {
	brokers, caFile := secureCluster(t)
	reader := client(t, brokers, Config{CA: caFile, Mechanism: ScramSHA256, User: "reader", Password: "reader-pass"})
	err := produce(reader, "from reader")
	if !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("produce as reader: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if !strings.Contains(err.Error(), "Not authorized to access topics") {
		t.Errorf("error %q does not say the principal is not authorized", err)
	}
	writer := client(t, brokers, Config{CA: caFile, Mechanism: ScramSHA256, User: "writer", Password: "writer-pass"})
	if err := produce(writer, "from writer"); err != nil {
		t.Fatalf("produce as writer: %v", err)
	}
	if got := records(t, brokers, caFile); len(got) != 1 || got[0] != "from writer" {
		t.Fatalf("topic holds %q, want only the writer's record", got)
	}
}

func TestWrongPasswordFails(t *testing.T) {
	brokers, caFile := secureCluster(t)
	for _, mech := range []string{ScramSHA256, ScramSHA512, Plain} {
		t.Run(mech, func(t *testing.T) {
			cl := client(t, brokers, Config{CA: caFile, Mechanism: mech, User: "writer", Password: "not-the-password"})
			err := connect(cl)
			if err == nil {
				t.Fatal("connecting with a wrong password succeeded")
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error %q shows the password", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	right := client(t, brokers, Config{CA: caFile, Mechanism: ScramSHA256, User: "writer", Password: "writer-pass"})
	if err := connect(right); err != nil {
		t.Fatalf("the right password: %v", err)
	}
}

func TestWrongCAFailsHandshake(t *testing.T) {
	brokers, _ := secureCluster(t)
	other, _ := mustPKI(t, "127.0.0.1")
	wrong := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(wrong, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	cl := client(t, brokers, Config{CA: wrong, Mechanism: ScramSHA256, User: "writer", Password: "writer-pass"})
	err := connect(cl)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("produce trusting another CA: %v, want an unknown-authority handshake error", err)
	}
}

func TestPasswordFile(t *testing.T) {
	brokers, caFile := secureCluster(t)
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("writer-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(PasswordEnv, "ignored-when-a-file-is-given")
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.Bind(fs)
	if err := fs.Parse([]string{"--kafka-tls-ca", caFile, "--kafka-sasl-mechanism", "SCRAM-SHA-256", "--kafka-sasl-user", "writer", "--kafka-sasl-password-file", pf}); err != nil {
		t.Fatal(err)
	}
	if err := produce(client(t, brokers, c), "via file"); err != nil {
		t.Fatalf("produce with the password from a file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"zero is plaintext", Config{}, nil},
		{"unknown mechanism", Config{Mechanism: "GSSAPI"}, []string{"--kafka-sasl-mechanism"}},
		{"no user, no password", Config{Mechanism: ScramSHA512}, []string{"--kafka-sasl-user", "PYRITE_KAFKA_SASL_PASSWORD"}},
		{"user without mechanism", Config{User: "u"}, []string{"--kafka-sasl-mechanism is not"}},
		{"cert without key", Config{Cert: "c.pem"}, []string{"go together"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if (err == nil) != (len(tt.want) == 0) {
				t.Fatalf("Validate = %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	(&Config{}).Bind(fs)
	if fs.Lookup("kafka-sasl-password") != nil {
		t.Error("there is a --kafka-sasl-password flag; the password must not be a flag value")
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			t.Errorf("--%s has no help text", f.Name)
		}
	})
}
