package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/pyrite-dev/pyrite/internal/certs"
)

// secureDev is a `pyrite dev --secure` process (the binary built from cmd/pyrite).
type secureDev struct {
	kafka, ingest string
	creds         struct {
		Kafka struct {
			CA        string                                     `json:"ca"`
			Mechanism string                                     `json:"mechanism"`
			Users     map[string]struct{ User, Password string } `json:"users"`
		} `json:"kafka"`
		Ingest struct {
			Tokens struct {
				All string `json:"all"`
			} `json:"tokens"`
		} `json:"ingest"`
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startSecureDev builds cmd/pyrite and runs `pyrite dev --secure` on free ports
// until the test ends.
func startSecureDev(t *testing.T) *secureDev {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pyrite")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pyrite").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pyrite: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	cmd := exec.Command(bin, "dev", "--secure", "--data-dir", data, "--kafka-addr", freePort(t), "--registry-addr", freePort(t),
		"--ingest-addr", freePort(t), "--projector-addr", freePort(t), "--upcaster-addr", freePort(t))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	s := &secureDev{}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 2 && f[0] == "kafka" && s.kafka == "":
				s.kafka = f[1]
			case len(f) >= 2 && f[0] == "ingest":
				s.ingest = f[1]
			case strings.HasPrefix(sc.Text(), "pyrite dev ready"):
				ready <- true
			}
		}
		close(ready)
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("pyrite dev --secure stopped before it was ready")
		}
	case <-time.After(90 * time.Second):
		t.Fatal("pyrite dev --secure not ready within 90s")
	}
	b, err := os.ReadFile(filepath.Join(data, "secure", "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &s.creds); err != nil {
		t.Fatal(err)
	}
	return s
}

// librdkafkaConfig is a client of s as user at librdkafka's defaults, apart from
// what SASL_SSL with SCRAM-SHA-256 needs (and ssl.endpoint.identification stays
// on: the broker's certificate must name 127.0.0.1).
func (s *secureDev) librdkafkaConfig(user, password, ca string) *kafka.ConfigMap {
	return &kafka.ConfigMap{
		"bootstrap.servers": s.kafka,
		"security.protocol": "SASL_SSL",
		"sasl.mechanisms":   s.creds.Kafka.Mechanism,
		"sasl.username":     user,
		"sasl.password":     password,
		"ssl.ca.location":   ca,
	}
}

// waitError polls the consumer until an error event matches, and returns it
// (nil when none did within the time) with every error seen.
func waitError(c *kafka.Consumer, within time.Duration, match func(kafka.Error) bool) (*kafka.Error, []string) {
	var seen []string
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if e, ok := c.Poll(200).(kafka.Error); ok {
			seen = append(seen, e.Error())
			if match(e) {
				return &e, seen
			}
		}
	}
	return nil, seen
}

// TestLibrdkafkaSecure: a librdkafka client (confluent-kafka-go, librdkafka
// bundled) reads the events topic of `pyrite dev --secure` over SASL_SSL with
// SCRAM-SHA-256 at its defaults, with the user, password and CA of
// credentials.json; a wrong password and a wrong CA are refused.
func TestLibrdkafkaSecure(t *testing.T) {
	_, version := kafka.LibraryVersion()
	t.Logf("librdkafka %s (bundled by confluent-kafka-go)", version)
	s := startSecureDev(t)
	admin := s.creds.Kafka.Users["admin"]
	s.ingestEvent(t, "we-rdkafka")

	cfg := s.librdkafkaConfig(admin.User, admin.Password, s.creds.Kafka.CA)
	_ = cfg.SetKey("group.id", "librdkafka-secure-test")
	_ = cfg.SetKey("auto.offset.reset", "earliest")
	c, err := kafka.NewConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Subscribe("pyrite.work-effort.events", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for found := false; !found; {
		if time.Now().After(deadline) {
			t.Fatal("librdkafka never read we-rdkafka from pyrite.work-effort.events")
		}
		switch e := c.Poll(200).(type) {
		case *kafka.Message:
			found = string(e.Key) == "we-rdkafka"
		case kafka.Error:
			t.Logf("librdkafka: %v", e)
			if e.IsFatal() || e.Code() == kafka.ErrAuthentication {
				t.Fatalf("librdkafka with the right credentials: %v", e)
			}
		}
	}

	t.Run("wrong password", func(t *testing.T) {
		c, err := kafka.NewConsumer(withGroup(s.librdkafkaConfig(admin.User, "wrong-password-0123456789", s.creds.Kafka.CA)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.Subscribe("pyrite.work-effort.events", nil)
		if e, seen := waitError(c, 30*time.Second, func(e kafka.Error) bool {
			// kfake closes the connection on a failed SCRAM exchange, so librdkafka
			// says SASL authentication failed with a transport error code.
			return e.Code() == kafka.ErrAuthentication || strings.Contains(e.Error(), "SASL authentication error")
		}); e == nil {
			t.Errorf("a wrong password: errors %q, want an authentication error", seen)
		} else {
			t.Logf("refused: %v", e)
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		otherCA := otherCAFile(t)
		c, err := kafka.NewConsumer(withGroup(s.librdkafkaConfig(admin.User, admin.Password, otherCA)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.Subscribe("pyrite.work-effort.events", nil)
		if e, seen := waitError(c, 30*time.Second, func(e kafka.Error) bool { return strings.Contains(e.Error(), "certificate verify failed") }); e == nil {
			t.Errorf("another CA: errors %q, want the TLS handshake to fail on the certificate", seen)
		} else {
			t.Logf("refused: %v", e)
		}
	})
}

func withGroup(cfg *kafka.ConfigMap) *kafka.ConfigMap {
	_ = cfg.SetKey("group.id", "librdkafka-refused")
	return cfg
}

// ingestEvent posts a WorkEffort:Created event for aggregate id through the
// ingest API of s and fails the test unless it is accepted.
func (s *secureDev) ingestEvent(t *testing.T, id string) {
	t.Helper()
	body := `{"type":"WorkEffort:Created","aggregateId":"` + id + `","data":{"title":"t","description":null,"createdAt":"2026-12-05T10:00:00Z","assignee":null}}`
	req, _ := http.NewRequest("POST", s.ingest+"/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.creds.Ingest.Tokens.All)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
}

// kcatRun runs kcat against s as the admin user with password and the CA file
// ca, over SASL_SSL with the broker's SCRAM mechanism and otherwise at kcat's
// defaults, with args added; it returns kcat's combined output. The password
// goes through a file kcat reads (-F), never on a command line.
func (s *secureDev) kcatRun(t *testing.T, kcat, password, ca string, args ...string) (string, error) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "kcat.conf")
	if err := os.WriteFile(conf, []byte("sasl.password="+password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, append([]string{"-F", conf, "-b", s.kafka,
		"-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=" + s.creds.Kafka.Mechanism,
		"-X", "sasl.username=" + s.creds.Kafka.Users["admin"].User, "-X", "ssl.ca.location=" + ca}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKcatSecure: Debian's kcat (1.7.1 on librdkafka 2.0.2, which `make test`
// installs) reads the events topic of `pyrite dev --secure` over SASL_SSL
// with SCRAM-SHA-256 at its defaults; a wrong password and a wrong CA are
// refused. That librdkafka uses SaslHandshake only when the broker's
// ApiVersions lists it from version 0, as real Kafka does (internal/devkafka).
func TestKcatSecure(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (make test installs it: apt-get install -y kcat)")
	}
	if v, err := exec.Command(kcat, "-V").CombinedOutput(); err == nil {
		t.Logf("%s", bytes.TrimSpace(v))
	}
	s := startSecureDev(t)
	admin := s.creds.Kafka.Users["admin"]
	s.ingestEvent(t, "we-kcat")

	// The event reaches the events topic through the pipeline: read it from
	// the beginning to the end, again until it is there.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := s.kcatRun(t, kcat, admin.Password, s.creds.Kafka.CA,
			"-C", "-t", "pyrite.work-effort.events", "-o", "beginning", "-e", "-f", "key=%k\n")
		if err == nil && strings.Contains(out, "key=we-kcat\n") {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("kcat -C never read we-kcat from pyrite.work-effort.events: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}

	t.Run("wrong password", func(t *testing.T) {
		out, err := s.kcatRun(t, kcat, "wrong-password-0123456789", s.creds.Kafka.CA, "-L", "-m", "10")
		if err == nil || !strings.Contains(out, "SASL authentication error") {
			t.Fatalf("kcat -L with a wrong password: %v, want a SASL authentication error\n%s", err, out)
		}
	})
	t.Run("wrong CA", func(t *testing.T) {
		otherCA := otherCAFile(t)
		out, err := s.kcatRun(t, kcat, admin.Password, otherCA, "-L", "-m", "10")
		if err == nil || !strings.Contains(out, "certificate verify failed") {
			t.Fatalf("kcat -L trusting another CA: %v, want the TLS handshake to fail on the certificate\n%s", err, out)
		}
	})
}

// otherCAFile writes the certificate of a CA the secure stack's certificates
// do not come from, and returns its path.
func otherCAFile(t *testing.T) string {
	t.Helper()
	other, err := certs.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(path, other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
