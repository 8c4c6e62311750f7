package interop

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/confluentinc/confluent-kafka-go/v2/schemaregistry"
	"github.com/confluentinc/confluent-kafka-go/v2/schemaregistry/serde"
	"github.com/confluentinc/confluent-kafka-go/v2/schemaregistry/serde/avrov2"
	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/config"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/ingest"
	"github.com/pyrite-dev/pyrite/internal/projector"
	"github.com/pyrite-dev/pyrite/internal/reactor"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
	"github.com/pyrite-dev/pyrite/internal/webhook"
)

// Topics of the stack (the dev topology).
const (
	rawTopic         = "pyrite.work-effort.raw"
	eventsTopic      = "pyrite.work-effort.events"
	integrationTopic = "pyrite.integration"
	webhooksRetry    = "pyrite.webhooks.retry"
	webhooksDLQ      = "pyrite.webhooks.dlq"
	upcasterDLQ      = "pyrite.upcaster.dlq"
)

// TestStockClientsReadEveryTopic runs ingest, the upcaster and the projector (integration
// reactor, and a webhook reactor whose subscriber always fails) with the Kafka options their
// mains use by default, and has clients nobody on this project wrote read what they write:
//
//   - Confluent's Node serializer writes a v1 ProgressUpdated to the raw topic in the prefix
//     framing and one in header mode (GUID in __value_schema_id, bare body), and Confluent's
//     Go serializer one in header mode;
//   - Confluent's Go deserializer (avrov2) and franz-go's sr Client and Serde, with default
//     configuration, decode both as v3 on the events topic, and the integration event;
//   - KafkaJS consumers with Confluent's Node deserializer, default configuration, read the
//     raw, events, integration, webhook retry and dead-letter topics and the upcaster's
//     dead-letter topic, decoding every Avro value there.
func TestStockClientsReadEveryTopic(t *testing.T) {
	dir := nodeReady(t)
	s := stacktest.Start(t)
	ctx := t.Context()
	// What cmd/ingest, cmd/upcaster and cmd/projector pass with no --compression.
	kopts := append(config.Compression(config.DefaultCompression).KafkaOpts(), kgo.FetchMaxWait(100*time.Millisecond))
	ingestURL := runStack(t, s, kopts)

	// Outside writers: Confluent's Node serializer, both framings, through KafkaJS.
	v1 := s.SchemaID(progressSubject, 1)
	prefixed := nodeJSON[produced](t, dir, s, "produce.mjs", "produce", strings.Join(s.Brokers, ","), rawTopic,
		progressSubject, strconv.Itoa(v1), "we-prefix", `{"oldProgress":20,"newProgress":75}`)
	headed := nodeJSON[produced](t, dir, s, "produce.mjs", "produce", strings.Join(s.Brokers, ","), rawTopic,
		progressSubject, strconv.Itoa(v1), "we-header", `{"oldProgress":30,"newProgress":90}`, "--header")
	if prefixed.Magic != 0 || prefixed.ID != v1 || prefixed.Header != nil {
		t.Fatalf("prefix mode wrote %+v, want magic 0 and v1's id %d, no header", prefixed, v1)
	}
	if headed.Header == nil || !strings.HasPrefix(*headed.Header, "01") || len(*headed.Header) != 34 {
		t.Fatalf("header mode wrote header %v, want 0x01 and a 16-byte GUID", headed.Header)
	}
	// Confluent's Go serializer in header mode, pinned to v1 under its record-name subject
	// (its default, TopicNameStrategy, would look the schema up under the topic's subject,
	// which Pyrite does not register), sent with franz-go.
	client, err := schemaregistry.NewClient(schemaregistry.NewConfig(s.RegistryURL))
	if err != nil {
		t.Fatal(err)
	}
	serConf := avrov2.NewSerializerConfig()
	serConf.AutoRegisterSchemas, serConf.UseSchemaID = false, v1
	ser, err := avrov2.NewSerializer(client, serde.ValueSerde, serConf)
	if err != nil {
		t.Fatal(err)
	}
	ser.SubjectNameStrategy = func(string, serde.Type, schemaregistry.SchemaInfo) (string, error) { return progressSubject, nil }
	ser.SchemaIDSerializer = serde.HeaderSchemaIDSerializer
	goHdrs, goValue, err := ser.SerializeWithHeaders(rawTopic, &map[string]any{"oldProgress": 40, "newProgress": 45})
	if err != nil {
		t.Fatalf("Confluent Go serializer, header mode: %v", err)
	}
	goRec := &kgo.Record{Topic: rawTopic, Key: []byte("we-go-header"), Value: goValue}
	for _, h := range goHdrs {
		goRec.Headers = append(goRec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if len(goRec.Headers) != 1 || goRec.Headers[0].Key != codec.ValueSchemaIDHeader || goRec.Headers[0].Value[0] != 1 {
		t.Fatalf("Confluent Go serializer headers %v, want %s with a GUID", goHdrs, codec.ValueSchemaIDHeader)
	}
	s.Produce(t, goRec)
	// A dead letter for the upcaster: a header that is neither form.
	s.Produce(t, &kgo.Record{Topic: rawTopic, Key: []byte("we-poison"), Value: []byte{2, 4},
		Headers: []kgo.RecordHeader{{Key: codec.ValueSchemaIDHeader, Value: []byte{7, 7}}}})

	// Pyrite's own writer: ingest, for a work effort that completes (the integration event,
	// and the webhook that fails into the retry topic and then the dead-letter topic).
	at := "2025-03-01T09:00:00.000Z"
	for _, ev := range []string{
		`{"type":"WorkEffort:Created","aggregateId":"we-int","data":{"title":"Int","createdAt":"` + at + `"}}`,
		`{"type":"WorkEffort:Started","aggregateId":"we-int","data":{"title":"Int","startedAt":"` + at + `"}}`,
		`{"type":"WorkEffort:Completed","aggregateId":"we-int","data":{"title":"Int","completedAt":"` + at + `","duration":60,"ticketCount":2}}`,
	} {
		if code := post(t, ingestURL+"/v1/events", ev); code != http.StatusCreated {
			t.Fatalf("ingest answered %d to %s", code, ev)
		}
	}

	// Go: Confluent's avrov2 deserializer and franz-go's sr, default configuration.
	deser, err := avrov2.NewDeserializer(client, serde.ValueSerde, avrov2.NewDeserializerConfig())
	if err != nil {
		t.Fatal(err)
	}
	srClient, err := sr.NewClient(sr.URLs(s.RegistryURL))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"we-prefix", "we-header", "we-go-header"} {
		rec := readKey(t, s, eventsTopic, key)
		want := map[string]int{"we-prefix": 75, "we-header": 90, "we-go-header": 45}[key]
		got := confluentGo(t, deser, rec)
		if fmt.Sprint(got["newProgress"]) != strconv.Itoa(want) || got["formatted"] != fmt.Sprintf("%d%%", want) {
			t.Errorf("Confluent Go deserializer read %s as %v, want v3 with newProgress %d", key, got, want)
		}
		if got := franzSR(t, ctx, srClient, rec); fmt.Sprint(got["newProgress"]) != strconv.Itoa(want) || got["formatted"] != fmt.Sprintf("%d%%", want) {
			t.Errorf("franz-go sr read %s as %v, want v3 with newProgress %d", key, got, want)
		}
	}
	integ := readKey(t, s, integrationTopic, "we-int")
	if got := confluentGo(t, deser, integ); len(got) == 0 {
		t.Errorf("Confluent Go deserializer read the integration event as %v", got)
	}
	if got := franzSR(t, ctx, srClient, integ); len(got) == 0 {
		t.Errorf("franz-go sr read the integration event as %v", got)
	}

	// Node: KafkaJS and Confluent's deserializer on every topic Pyrite writes.
	tests := []struct {
		topic  string
		count  int
		raw    bool               // dead letters of values that are not Avro
		before func(t *testing.T) // what makes Pyrite write the topic, when reading others does not
		check  func(t *testing.T, recs []consumed)
	}{
		{topic: rawTopic, count: 7, check: func(t *testing.T, recs []consumed) {
			byKey := keyed(recs)
			if v := byKey["we-header"].Value; v["newProgress"] != 90.0 {
				t.Errorf("raw header-mode record read as %v", byKey["we-header"])
			}
			if v := byKey["we-go-header"].Value; v["newProgress"] != 45.0 {
				t.Errorf("raw header-mode record from Go read as %v", byKey["we-go-header"])
			}
			if v := byKey["we-int"].Value; v == nil {
				t.Errorf("raw record written by ingest read as %v", byKey["we-int"])
			}
		}},
		{topic: eventsTopic, count: 6, check: func(t *testing.T, recs []consumed) {
			byKey := keyed(recs)
			for key, want := range map[string]string{"we-prefix": "75%", "we-header": "90%", "we-go-header": "45%"} {
				if byKey[key].Value["formatted"] != want {
					t.Errorf("event %s read as %+v, want v3 with formatted %q", key, byKey[key], want)
				}
				if _, ok := byKey[key].Headers[codec.ValueSchemaIDHeader]; ok {
					t.Errorf("event %s carries %s", key, codec.ValueSchemaIDHeader)
				}
			}
		}},
		{topic: integrationTopic, count: 1},
		{topic: webhooksDLQ, count: 1},
		// A failing source record is retried in place (its key parked), so the retry topic
		// carries what an operator redrives to the group: pyrite dlq redrive, the real CLI.
		{topic: webhooksRetry, count: 1, before: func(t *testing.T) { redriveWebhooks(t, s.Brokers) }},
		{topic: upcasterDLQ, count: 1, raw: true, check: func(t *testing.T, recs []consumed) {
			if r := recs[0]; r.Key != "we-poison" || r.Headers[upcaster.HeaderDLQReason] != upcaster.ReasonBadSchemaIDHeader {
				t.Errorf("upcaster dead letter %+v, want we-poison with reason %s", r, upcaster.ReasonBadSchemaIDHeader)
			}
		}},
	}
	for _, tt := range tests {
		t.Run("KafkaJS reads "+tt.topic, func(t *testing.T) {
			if tt.before != nil {
				tt.before(t)
			}
			args := []string{"consume", strings.Join(s.Brokers, ","), tt.topic, strconv.Itoa(tt.count)}
			if tt.raw {
				args = append(args, "--raw")
			}
			out := nodeJSON[struct{ Records []consumed }](t, dir, s, "consume.mjs", args...)
			if len(out.Records) != tt.count {
				t.Fatalf("%d records, want %d", len(out.Records), tt.count)
			}
			for _, r := range out.Records {
				if r.Key == "we-poison" { // the test's own bad record: refused as Pyrite refuses it
					if !tt.raw && r.Error == "" {
						t.Errorf("the poison record decoded: %+v", r)
					}
					continue
				}
				if !tt.raw && (r.Error != "" || r.Value == nil) {
					t.Errorf("%s[%d]@%d (key %s): not decoded: %s", tt.topic, r.Partition, r.Offset, r.Key, r.Error)
				}
			}
			if tt.check != nil {
				tt.check(t, out.Records)
			}
		})
	}
}

// consumed is one record as consume.mjs prints it.
// redriveWebhooks runs `pyrite dlq redrive webhooks`, built from this checkout, against
// brokers: it writes the group's dead letters to its retry topic.
func redriveWebhooks(t *testing.T, brokers []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pyrite")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/pyrite").CombinedOutput(); err != nil {
		t.Fatalf("go build ../cmd/pyrite: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "dlq", "redrive", "webhooks", "--brokers", strings.Join(brokers, ",")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "1 dead letters redriven") {
		t.Fatalf("pyrite dlq redrive webhooks: %v\n%s", err, out)
	}
}

type consumed struct {
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Key       string            `json:"key"`
	Headers   map[string]string `json:"headers"`
	Value     map[string]any    `json:"value"`
	Error     string            `json:"error"`
}

func keyed(recs []consumed) map[string]consumed {
	m := map[string]consumed{}
	for _, r := range recs {
		if _, ok := m[r.Key]; !ok {
			m[r.Key] = r
		}
	}
	return m
}

// confluentGo decodes rec with Confluent's Go deserializer, headers included.
func confluentGo(t *testing.T, d *avrov2.Deserializer, rec *kgo.Record) map[string]any {
	t.Helper()
	var hs []kafka.Header
	for _, h := range rec.Headers {
		hs = append(hs, kafka.Header{Key: h.Key, Value: h.Value})
	}
	// Into a map: Deserialize without a target needs a MessageFactory for generated types.
	var m map[string]any
	if err := d.DeserializeWithHeadersInto(rec.Topic, hs, rec.Value, &m); err != nil {
		t.Fatalf("Confluent Go deserializer on %s[%d]@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
	}
	return m
}

// franzSR decodes rec with franz-go's sr: the Client fetches the writer schema by the id in
// the frame, the Serde decodes with it (hamba/avro, as sr's documentation shows).
func franzSR(t *testing.T, ctx context.Context, cl *sr.Client, rec *kgo.Record) map[string]any {
	t.Helper()
	var serde sr.Serde
	id, _, err := serde.DecodeID(rec.Value)
	if err != nil {
		t.Fatalf("sr.Serde.DecodeID on %s[%d]@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
	}
	s, err := cl.SchemaByID(ctx, id)
	if err != nil {
		t.Fatalf("sr.Client.SchemaByID(%d): %v", id, err)
	}
	schema, err := avro.Parse(s.Schema)
	if err != nil {
		t.Fatal(err)
	}
	serde.Register(id, map[string]any{}, sr.DecodeFn(func(b []byte, v any) error { return avro.Unmarshal(schema, b, v) }))
	var m map[string]any
	if err := serde.Decode(rec.Value, &m); err != nil {
		t.Fatalf("sr.Serde.Decode on %s[%d]@%d: %v", rec.Topic, rec.Partition, rec.Offset, err)
	}
	return m
}

// runStack runs ingest, the upcaster and the projector on s with kopts until the test ends
// and returns ingest's base URL once all three are ready.
func runStack(t *testing.T, s *stacktest.Stack, kopts []kgo.Opt) string {
	t.Helper()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	subs, err := webhook.ParseSubscriptions([]byte(`[{"id": "interop", "url": "`+failing.URL+`", "events": ["WorkEffort:Completed"],
		"secret": "whsec_`+base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+`"}]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	type program struct {
		name string
		run  func(ctx context.Context, ln net.Listener) error
	}
	programs := []program{
		{"ingest", func(ctx context.Context, ln net.Listener) error {
			return ingest.Run(ctx, ln, ingest.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology,
				Metrics: prometheus.NewRegistry(), Logger: log, KafkaOpts: kopts})
		}},
		{"upcaster", func(ctx context.Context, ln net.Listener) error {
			return upcaster.Run(ctx, ln, upcaster.Options{Chain: s.Chain, Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology,
				Metrics: prometheus.NewRegistry(), Logger: log, KafkaOpts: kopts,
				Config: upcaster.Config{TransactionalID: "interop-" + t.Name()}})
		}},
		{"projector", func(ctx context.Context, ln net.Listener) error {
			return projector.Run(ctx, ln, projector.Options{Brokers: s.Brokers, Registry: s.RegistryURL, Topology: s.Topology,
				ReadModels: s.ReadModels, Metrics: prometheus.NewRegistry(), Logger: log, Store: filepath.Join(t.TempDir(), "projector.db"),
				BatchWait: 10 * time.Millisecond, KafkaOpts: kopts,
				Reactors: projector.Reactors{
					Integrations: workeffort.Integrations(), Webhooks: webhook.Config{Subscriptions: subs}, WebhookAttempts: 2,
					Retry: reactor.Retry{MaxAttempts: 2, Delay: 50 * time.Millisecond, MaxDelay: 100 * time.Millisecond},
				}})
		}},
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, len(programs))
	var bases []string
	for _, p := range programs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, "http://"+ln.Addr().String())
		go func() {
			if err := p.run(ctx, ln); err != nil && !errors.Is(err, context.Canceled) {
				done <- fmt.Errorf("%s: %w", p.name, err)
				return
			}
			done <- nil
		}()
	}
	t.Cleanup(func() {
		stop()
		for range programs {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for _, base := range bases {
		for {
			resp, err := http.Get(base + "/readyz")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready within 60s", base)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return bases[0]
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// nodeReady fails the test (never skips) without Node or the locked packages, and returns
// the scripts' directory.
func nodeReady(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not installed (need Node 20 or later), then %s: %v", installHint, err)
	}
	dir, err := filepath.Abs(nodeDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range nodePackages {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Fatalf("Node package %s is not installed: %s (%v)", p, installHint, err)
		}
	}
	return dir
}

// nodeJSON runs one command of a script against s's registry and decodes its answer.
func nodeJSON[T any](t *testing.T, dir string, s *stacktest.Stack, script string, args ...string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "REGISTRY_URL="+s.RegistryURL, "KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var v T
	if err != nil {
		t.Fatalf("node %s %s: %v\nstdout: %s\nstderr: %s", script, strings.Join(args, " "), err, out, stderr.String())
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("node %s answer %q: %v", script, out, err)
	}
	return v
}
