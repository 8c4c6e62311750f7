package bus_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riferrei/srclient"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/codec"
	"github.com/pyrite-dev/pyrite/internal/stacktest"
	"github.com/pyrite-dev/pyrite/internal/topology"
	"github.com/pyrite-dev/pyrite/schemas"
)

// memRegistry is an in-memory codec.Registry holding every file of schemas/, ids from 1.
type memRegistry struct {
	byID map[int]*srclient.Schema
	ids  map[string]int // "<subject> v<N>" -> id
	down atomic.Bool
}

func newMemRegistry(t *testing.T) *memRegistry {
	t.Helper()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	r := &memRegistry{byID: map[int]*srclient.Schema{}, ids: map[string]int{}}
	for i, f := range files {
		s, err := srclient.NewSchema(i+1, f.Text, srclient.Avro, f.Version, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.byID[i+1] = s
		r.ids[f.Subject+" v"+string(rune('0'+f.Version))] = i + 1
	}
	return r
}

func (r *memRegistry) GetSchema(id int) (*srclient.Schema, error) {
	if r.down.Load() {
		return nil, errors.New("dial tcp: connection refused")
	}
	if s, ok := r.byID[id]; ok {
		return s, nil
	}
	return nil, srclient.Error{Code: 40403, Message: "Schema not found"}
}

// progressV1GUID stands for the GUID of ProgressUpdated v1 in SchemaIDByGUID.
var progressV1GUID = codec.GUID{0xab, 1, 2, 3}

func (r *memRegistry) SchemaIDByGUID(guid string) (int, error) {
	if guid == progressV1GUID.String() {
		return r.ids["pyrite.workeffort.ProgressUpdated v1"], nil
	}
	return 0, srclient.Error{Code: 40403, Message: "Schema not found"}
}

func (r *memRegistry) GetLatestSchema(string) (*srclient.Schema, error) {
	return nil, errors.New("not used")
}

func (r *memRegistry) GetSchemaByVersion(string, int) (*srclient.Schema, error) {
	return nil, errors.New("not used")
}

type progressV1 struct {
	OldProgress int `avro:"oldProgress"`
	NewProgress int `avro:"newProgress"`
}

func TestCodecDecoder(t *testing.T) {
	reg := newMemRegistry(t)
	c := codec.New(reg)
	topo := stacktest.Topology(t, topology.Dev)
	dec, err := bus.NewCodecDecoder(c, topo, mustFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := c.ByID(t.Context(), reg.ids["pyrite.workeffort.ProgressUpdated v1"])
	if err != nil {
		t.Fatal(err)
	}
	value, err := c.Encode(v1, progressV1{OldProgress: 10, NewProgress: 60})
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	record := func(value []byte, kv ...string) *kgo.Record {
		return &kgo.Record{Topic: srcTopic, Partition: 1, Offset: 9, Key: []byte("we-7"), Value: value,
			Timestamp: stamp, Headers: hdrs(kv...)}
	}

	t.Run("type from the subject when there is no ce_type", func(t *testing.T) {
		ev, err := dec.Decode(t.Context(), record(value))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != "WorkEffort:ProgressUpdated" || ev.Data["newProgress"] != 60 {
			t.Fatalf("event %+v", ev)
		}
	})
	t.Run("old version read as the newest local one", func(t *testing.T) {
		ev, err := dec.Decode(t.Context(), record(value, "ce_id", "id-1", "ce_type", "WorkEffort:ProgressUpdated", "ce_userid", "u"))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"oldProgress": 10, "newProgress": 60, "delta": 0, "formatted": ""}
		if ev.Type != "WorkEffort:ProgressUpdated" || ev.SchemaVersion != 3 || ev.ID != "id-1" || ev.UserID != "u" ||
			ev.AggregateID != "we-7" || ev.AggregateType != "WorkEffort" || !ev.Time.Equal(stamp) {
			t.Fatalf("event %+v", ev)
		}
		for k, v := range want {
			if ev.Data[k] != v {
				t.Errorf("data[%s] = %#v, want %#v", k, ev.Data[k], v)
			}
		}
	})
	t.Run("header-framed value: the header wins", func(t *testing.T) {
		// A bare body whose first byte is 0x14 (10 zig-zag): no prefix to misread.
		ev, err := dec.Decode(t.Context(), record(value[codec.HeaderSize:],
			codec.ValueSchemaIDHeader, string(codec.AppendGUIDHeader(nil, progressV1GUID))))
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type != "WorkEffort:ProgressUpdated" || ev.SchemaVersion != 3 || ev.Data["newProgress"] != 60 {
			t.Fatalf("event %+v", ev)
		}
	})
	tests := []struct {
		name      string
		rec       *kgo.Record
		down      bool
		permanent bool
		want      error
	}{
		{"type header disagrees with the schema", record(value, "ce_type", "WorkEffort:Started"), false, true, bus.ErrBadHeader},
		{"bad header", record(value, "ce_time", "never"), false, true, bus.ErrBadHeader},
		{"not framed", record([]byte(`{"a":1}`)), false, true, codec.ErrBadMagic},
		{"unknown schema id", record([]byte{0, 0, 0, 0x7f, 0, 2}), false, true, codec.ErrUnknownSchemaID},
		{"truncated body", record(value[:len(value)-1]), false, true, codec.ErrInvalidData},
		{"registry down", record([]byte{0, 0, 0, 0, 1, 2}), true, false, codec.ErrRegistryUnavailable},
		{"malformed schema id header", record(value, codec.ValueSchemaIDHeader, "\x02junk"), false, true, codec.ErrBadSchemaIDHeader},
		{"unknown GUID", record(value[codec.HeaderSize:], codec.ValueSchemaIDHeader, string(codec.AppendGUIDHeader(nil, codec.GUID{9}))), false, true, codec.ErrUnknownSchemaID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg.down.Store(tc.down)
			defer reg.down.Store(false)
			_, err := dec.Decode(t.Context(), tc.rec)
			if !errors.Is(err, tc.want) || bus.IsPermanent(err) != tc.permanent {
				t.Fatalf("Decode: %v; want %v, permanent %v", err, tc.want, tc.permanent)
			}
			if !strings.Contains(err.Error(), srcTopic+"[1]@9") {
				t.Fatalf("error %q does not name the record", err)
			}
		})
	}
}

func mustFiles(t *testing.T) []schemas.File {
	t.Helper()
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	return files
}
