package main

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
)

// latestGUID asks the registry for the GUID of subject's latest version.
func latestGUID(t *testing.T, s *stacktest.Stack, subject string) codec.GUID {
	t.Helper()
	resp, err := http.Get(s.RegistryURL + "/subjects/" + subject + "/versions/latest")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		GUID string `json:"guid"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(v.GUID, "-", ""))
	if err != nil || len(b) != 16 {
		t.Fatalf("guid %q: %v", v.GUID, err)
	}
	return codec.GUID(b)
}

// TestTailHeaderFramed: tail reads a value whose schema GUID is in the __value_schema_id
// header (Confluent's header mode), and shows a malformed header as an error, never a guess.
func TestTailHeaderFramed(t *testing.T) {
	s := stacktest.Start(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	framed := started(t, s, "we-h", now)
	guid := latestGUID(t, s, "pyrite.workeffort.Started")
	good := &kgo.Record{Topic: weEvents, Key: []byte("we-h"), Value: framed.Value[codec.HeaderSize:], Timestamp: now,
		Headers: append(framed.Headers, kgo.RecordHeader{Key: codec.ValueSchemaIDHeader, Value: codec.AppendGUIDHeader(nil, guid)})}
	bad := &kgo.Record{Topic: weEvents, Key: []byte("we-bad"), Value: framed.Value, Timestamp: now,
		Headers: []kgo.RecordHeader{{Key: codec.ValueSchemaIDHeader, Value: []byte{9}}}}
	s.Produce(t, good, bad)
	code, stdout, stderr := runCLI(t, append([]string{"tail"}, opsArgs(s, weEvents)...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	byKey := map[string]map[string]any{}
	for _, l := range jsonLines(t, stdout) {
		byKey[l["key"].(string)] = l
	}
	g := byKey["we-h"]
	value, _ := g["value"].(map[string]any)
	schema, _ := g["schema"].(map[string]any)
	if g == nil || g["error"] != nil || value["title"] != "Title we-h" || schema["subject"] != "pyrite.workeffort.Started" {
		t.Errorf("header-framed line = %v", g)
	}
	if b := byKey["we-bad"]; b == nil || !strings.Contains(b["error"].(string), "schema id header") {
		t.Errorf("malformed header line = %v, want an error naming the header", b)
	}
}
