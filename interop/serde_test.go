package interop

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"testing"

	"github.com/riferrei/srclient"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// serialized is what the scripts' serialize commands print.
type serialized struct {
	Hex   string `json:"hex"`
	Magic int    `json:"magic"`
	ID    int    `json:"id"`
}

// deserialized is what the scripts' deserialize commands print.
type deserialized struct {
	Magic int            `json:"magic"`
	ID    int            `json:"id"`
	Value map[string]any `json:"value"`
}

// jsonValue brings a decoded value to the form JSON gives it (numbers as float64), so values
// from Go and from Node compare with reflect.DeepEqual.
func jsonValue(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// withDefaults returns v plus, for every field of newer that v lacks, that field's default as
// the schema file states it. A field without a default fails the test: the files promise every
// added field has one.
func withDefaults(t *testing.T, v map[string]any, newer schemaFile) map[string]any {
	t.Helper()
	var s struct {
		Fields []struct {
			Name    string          `json:"name"`
			Default json.RawMessage `json:"default"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(newer.text), &s); err != nil {
		t.Fatal(err)
	}
	out := maps.Clone(v)
	for _, f := range s.Fields {
		if _, ok := out[f.Name]; ok {
			continue
		}
		if f.Default == nil {
			t.Fatalf("%s: field %s has no default", newer.path, f.Name)
		}
		var d any
		if err := json.Unmarshal(f.Default, &d); err != nil {
			t.Fatal(err)
		}
		out[f.Name] = d
	}
	return out
}

// TestAvroBytesBetweenNodeClientsAndCodec registers ProgressUpdated v1..v3 and moves Confluent-
// framed Avro bytes both ways: bytes each Node library serializes for a v1 value decode with
// internal/codec, as v1 and resolved into v3 (delta and formatted from their defaults); bytes
// internal/codec encodes with v1 and with v3 decode in both libraries, as written and resolved
// into v3.
func TestAvroBytesBetweenNodeClientsAndCodec(t *testing.T) {
	h := newHarness(t)
	files := []schemaFile{progressSchema(t, 1), progressSchema(t, 2), progressSchema(t, 3)}
	ids := make([]int, len(files)) // ids[i] is version i+1
	for i, f := range files {
		var r idResult
		code := h.do(t, http.MethodPost, "/subjects/"+progressSubject+"/versions", map[string]string{"schema": f.text}, &r)
		if code != http.StatusOK || r.ID <= 0 {
			t.Fatalf("register v%d: status %d, id %d", i+1, code, r.ID)
		}
		ids[i] = r.ID
	}

	reg := srclient.CreateSchemaRegistryClient(h.url)
	reg.CachingEnabled(false) // as codec.Registry asks
	c := codec.New(reg)
	v1, err := c.Version(t.Context(), progressSubject, 1)
	if err != nil {
		t.Fatalf("codec Version 1: %v", err)
	}
	v3, err := c.Latest(t.Context(), progressSubject)
	if err != nil {
		t.Fatalf("codec Latest: %v", err)
	}
	if v1.ID != ids[0] || v3.ID != ids[2] {
		t.Fatalf("codec sees v1 as id %d and latest as id %d; registered ids %v", v1.ID, v3.ID, ids)
	}

	v1Value := map[string]any{"oldProgress": 10.0, "newProgress": 40.0}
	v1AsV3 := withDefaults(t, v1Value, files[2])
	if d, ok := v1AsV3["delta"]; !ok || d != 0.0 {
		t.Fatalf("v3 file: delta default %v, want 0 (the test relies on it)", d)
	}
	v3Value := map[string]any{"oldProgress": 10.0, "newProgress": 40.0, "delta": 30.0, "formatted": "40%"}
	v1JSON, err := json.Marshal(v1Value)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("node to codec", func(t *testing.T) {
		cases := []struct {
			name   string
			script string
			args   []string
		}{
			{name: "confluentinc-schemaregistry AvroSerializer", script: "confluent.mjs",
				args: []string{"serialize", progressSubject, fmt.Sprint(ids[0]), string(v1JSON)}},
			{name: "kafkajs-confluent-schema-registry encode", script: "kafkajs.mjs",
				args: []string{"serialize", fmt.Sprint(ids[0]), string(v1JSON)}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				var out serialized
				h.mustNode(t, tc.script, &out, tc.args...)
				data, err := hex.DecodeString(out.Hex)
				if err != nil {
					t.Fatalf("hex %q: %v", out.Hex, err)
				}
				// The frame, checked byte by byte rather than through anyone's parser.
				if wantHdr := codec.AppendHeader(nil, ids[0]); !bytes.HasPrefix(data, wantHdr) {
					t.Fatalf("bytes %x do not start with the frame header %x", data, wantHdr)
				}

				readers := []struct {
					name   string
					reader *codec.Schema
					want   map[string]any
				}{
					{name: "read as v1", reader: v1, want: v1Value},
					{name: "resolved as v3", reader: v3, want: v1AsV3},
				}
				for _, r := range readers {
					t.Run(r.name, func(t *testing.T) {
						var got map[string]any
						w, err := c.Decode(t.Context(), data, r.reader, &got)
						if err != nil {
							t.Fatalf("codec Decode %x: %v", data, err)
						}
						if w.ID != ids[0] {
							t.Errorf("writer schema id %d, want %d", w.ID, ids[0])
						}
						if g := jsonValue(t, got); !reflect.DeepEqual(g, r.want) {
							t.Errorf("decoded %v, want %v", g, r.want)
						}
					})
				}
			})
		}
	})

	t.Run("codec to node", func(t *testing.T) {
		encoded := []struct {
			name   string
			schema *codec.Schema
			value  map[string]any
		}{
			{name: "v1", schema: v1, value: v1Value},
			{name: "v3", schema: v3, value: v3Value},
		}
		for _, e := range encoded {
			// The codec encodes Avro int from Go int.
			goValue := map[string]any{}
			for k, v := range e.value {
				if f, ok := v.(float64); ok {
					v = int(f)
				}
				goValue[k] = v
			}
			data, err := c.Encode(e.schema, goValue)
			if err != nil {
				t.Fatalf("codec Encode %s: %v", e.name, err)
			}
			hexData := hex.EncodeToString(data)
			asV3 := withDefaults(t, e.value, files[2])

			decoders := []struct {
				name   string
				script string
				args   []string
				want   map[string]any
			}{
				{name: "confluentinc-schemaregistry AvroDeserializer", script: "confluent.mjs",
					args: []string{"deserialize", progressSubject, hexData}, want: e.value},
				{name: "confluentinc-schemaregistry AvroDeserializer latest", script: "confluent.mjs",
					args: []string{"deserialize", progressSubject, hexData, "--latest"}, want: asV3},
				{name: "kafkajs-confluent-schema-registry decode", script: "kafkajs.mjs",
					args: []string{"deserialize", hexData}, want: e.value},
				{name: "kafkajs-confluent-schema-registry decode reader v3", script: "kafkajs.mjs",
					args: []string{"deserialize", hexData, "--reader", files[2].path}, want: asV3},
			}
			for _, d := range decoders {
				t.Run(e.name+"/"+d.name, func(t *testing.T) {
					var got deserialized
					h.mustNode(t, d.script, &got, d.args...)
					if got.Magic != 0 || got.ID != e.schema.ID {
						t.Errorf("frame magic %d id %d, want 0 and %d", got.Magic, got.ID, e.schema.ID)
					}
					if !reflect.DeepEqual(got.Value, d.want) {
						t.Errorf("decoded %v, want %v", got.Value, d.want)
					}
				})
			}
		}
	})
}
