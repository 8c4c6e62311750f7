package upcaster_test

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/domain/workeffort"
	"github.com/pyrite-dev/pyrite/internal/upcaster"
)

// guidOf asks the registry for the GUID of subject version ver.
func (e *env) guidOf(t *testing.T, subject string, ver int) codec.GUID {
	t.Helper()
	resp, err := http.Get(e.RegistryURL + "/subjects/" + subject + "/versions/" + strconv.Itoa(ver))
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
		t.Fatalf("guid %q of %s v%d: %v", v.GUID, subject, ver, err)
	}
	return codec.GUID(b)
}

// TestHeaderFramedRaw: a raw value framed by the __value_schema_id header (Confluent's
// header mode: bare Avro body, GUID in the header) comes out on the events topic as the
// newest version in the prefix framing and without the header, so nothing points at the
// old schema; a malformed header and an unknown GUID are dead letters with their reasons.
func TestHeaderFramedRaw(t *testing.T) {
	e := newEnv(t)
	e.start(t, upcaster.Config{}, "", 0)
	body := e.frame(t, progress, 1, workeffort.ProgressUpdatedV1{OldProgress: 1, NewProgress: 2})[codec.HeaderSize:]
	hdr := func(v []byte) []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: codec.ValueSchemaIDHeader, Value: v}, {Key: "ce_id", Value: []byte("h-" + hex.EncodeToString(v[:1]))}}
	}
	good := codec.AppendGUIDHeader(nil, e.guidOf(t, progress, 1))
	bad := []byte{0x07, 1, 2}
	unknown := codec.AppendGUIDHeader(nil, codec.GUID{0xee})
	e.produce(t,
		&kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: body, Headers: hdr(good)},
		&kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: body, Headers: hdr(bad)},
		&kgo.Record{Topic: rawTopic, Key: []byte("w1"), Value: body, Headers: hdr(unknown)},
	)
	events := e.reader(t, eventsTopic).count(t, 20*time.Second, 1)
	ev := events[0]
	if v := seq(t, e.codec, ev); v.NewProgress != 2 || v.Delta != 1 || v.Formatted != "2%" {
		t.Errorf("event = %+v, want v1 upcast to v3", v)
	}
	if id, _, _ := codec.SplitFrame(ev.Value); id != e.SchemaID(progress, 3) {
		t.Errorf("event value written with schema %d, want v3's %d", id, e.SchemaID(progress, 3))
	}
	if v, ok := header(ev, codec.ValueSchemaIDHeader); ok {
		t.Errorf("event keeps %s = %x: it would point at v1", codec.ValueSchemaIDHeader, v)
	}
	if v, _ := header(ev, upcaster.HeaderFromSchemaID); v != strconv.Itoa(e.SchemaID(progress, 1)) {
		t.Errorf("%s = %q, want v1's id", upcaster.HeaderFromSchemaID, v)
	}
	dead := e.reader(t, dlqTopic).count(t, 10*time.Second, 2)
	for i, want := range []string{upcaster.ReasonBadSchemaIDHeader, upcaster.ReasonUnknownSchema} {
		if got, _ := header(dead[i], upcaster.HeaderDLQReason); got != want {
			t.Errorf("dead letter %d: reason %q, want %q", i, got, want)
		}
		if _, ok := header(dead[i], codec.ValueSchemaIDHeader); !ok || string(dead[i].Value) != string(body) {
			t.Errorf("dead letter %d does not keep the original value and header", i)
		}
	}
}
