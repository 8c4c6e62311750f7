package codec_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/pyrite-dev/pyrite/internal/codec"
)

// outerSchema exercises nested records, arrays, enums, bytes and unions.
const outerSchema = `{"type":"record","name":"Outer","namespace":"pyrite.system","doc":"test","fields":[
 {"name":"inner","type":{"type":"record","name":"Inner","fields":[
   {"name":"n","type":"int"},
   {"name":"tags","type":{"type":"array","items":"string"},"default":[]}]}},
 {"name":"maybe","type":["null","Inner"],"default":null},
 {"name":"choice","type":["null","int","string"],"default":null},
 {"name":"color","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]},"default":"RED"},
 {"name":"raw","type":"bytes","default":""},
 {"name":"when","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null},
 {"name":"ratio","type":"double","default":0.5}
]}`

func TestFromJSON(t *testing.T) {
	fx := newFixture(t)
	completed := fx.schema(t, "pyrite.workeffort.Completed", 1)
	progress := fx.schema(t, progressSubject, 3)
	ws := fx.schema(t, "pyrite.system.WebSocketConnected", 1)
	outer, err := codec.NewSchema(1, "", 0, outerSchema)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	type fe = codec.FieldError
	tests := []struct {
		name   string
		schema *codec.Schema
		json   string
		want   map[string]any // when no error
		errs   []fe
	}{
		{
			name: "rfc 3339 timestamp", schema: completed,
			json: `{"title":"t","completedAt":"2025-03-04T05:06:07.89Z","duration":5,"ticketCount":2,"assigneeEmail":"a@b.c"}`,
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(5), "ticketCount": 2, "assigneeEmail": "a@b.c"},
		},
		{
			name: "rfc 3339 with offset and extra precision", schema: completed,
			json: `{"title":"t","completedAt":"2025-03-04T06:06:07.890999+01:00","duration":5,"ticketCount":2}`,
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(5), "ticketCount": 2, "assigneeEmail": nil},
		},
		{
			name: "epoch millis", schema: completed,
			json: `{"title":"t","completedAt":1741064767890,"duration":5,"ticketCount":2,"assigneeEmail":null}`,
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(5), "ticketCount": 2, "assigneeEmail": nil},
		},
		{
			name: "avro json union", schema: completed,
			json: `{"title":"t","completedAt":1741064767890,"duration":5,"ticketCount":2,"assigneeEmail":{"string":"x"}}`,
			want: map[string]any{"title": "t", "completedAt": at, "duration": int64(5), "ticketCount": 2, "assigneeEmail": "x"},
		},
		{
			name: "defaults fill missing fields", schema: progress,
			json: `{"oldProgress":10,"newProgress":60}`,
			want: map[string]any{"oldProgress": 10, "newProgress": 60, "delta": 0, "formatted": ""},
		},
		{
			name: "map", schema: ws,
			json: `{"clientId":"c","metadata":{"agent":"curl","ip":"::1"}}`,
			want: map[string]any{"clientId": "c", "metadata": map[string]any{"agent": "curl", "ip": "::1"}},
		},
		{
			name: "nested, unions, enum, bytes", schema: outer,
			json: `{"inner":{"n":1,"tags":["a"]},"maybe":{"n":2},"choice":"s","color":"GREEN","raw":"AQI=","when":0}`,
			want: map[string]any{
				"inner":  map[string]any{"n": 1, "tags": []any{"a"}},
				"maybe":  map[string]any{"pyrite.system.Inner": map[string]any{"n": 2, "tags": []any{}}},
				"choice": map[string]any{"string": "s"},
				"color":  "GREEN", "raw": []byte{1, 2}, "when": time.UnixMilli(0).UTC(), "ratio": 0.5,
			},
		},
		{
			name: "union branch chosen by value", schema: outer,
			json: `{"inner":{"n":1},"choice":7,"maybe":{"pyrite.system.Inner":{"n":3,"tags":[]}}}`,
			want: map[string]any{
				"inner":  map[string]any{"n": 1, "tags": []any{}},
				"maybe":  map[string]any{"pyrite.system.Inner": map[string]any{"n": 3, "tags": []any{}}},
				"choice": map[string]any{"int": 7},
				"color":  "RED", "raw": []byte{}, "when": nil, "ratio": 0.5,
			},
		},
		{
			name: "unknown field", schema: progress, json: `{"oldProgress":1,"newProgress":2,"percent":3}`,
			errs: []fe{{"percent", "unknown field"}},
		},
		{
			name: "wrong type", schema: progress, json: `{"oldProgress":"1","newProgress":2}`,
			errs: []fe{{"oldProgress", "must be an integer, got a string"}},
		},
		{
			name: "missing required", schema: progress, json: `{"oldProgress":1}`,
			errs: []fe{{"newProgress", "required field is missing"}},
		},
		{
			name: "every error listed", schema: completed,
			json: `{"title":null,"completedAt":"yesterday","extra":1,"ticketCount":2.5,"assigneeEmail":5}`,
			errs: []fe{
				{"title", "must be a string, got null"},
				{"completedAt", `must be an RFC 3339 timestamp or epoch milliseconds: parsing time "yesterday" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "yesterday" as "2006"`},
				{"extra", "unknown field"},
				{"ticketCount", "must be an integer between -2147483648 and 2147483647"},
				{"assigneeEmail", "must be a string, got a number"},
				{"duration", "required field is missing"},
			},
		},
		{
			name: "timestamp of wrong kind", schema: completed,
			json: `{"title":"t","completedAt":true,"duration":1,"ticketCount":1}`,
			errs: []fe{{"completedAt", "must be an RFC 3339 timestamp or epoch milliseconds, got a boolean"}},
		},
		{
			name: "int out of range", schema: progress, json: `{"oldProgress":2147483648,"newProgress":-2147483649}`,
			errs: []fe{
				{"oldProgress", "must be an integer between -2147483648 and 2147483647"},
				{"newProgress", "must be an integer between -2147483648 and 2147483647"},
			},
		},
		{
			name: "nested and union paths", schema: outer,
			json: `{"inner":{"n":"x","tags":["a",1]},"maybe":{"n":1,"bad":2},"choice":true,"color":"BLUE","raw":"%%","when":"soon","ratio":"half"}`,
			errs: []fe{
				{"inner.n", "must be an integer, got a string"},
				{"inner.tags[1]", "must be a string, got a number"},
				{"maybe.bad", "unknown field"},
				{"choice", "must be null or one of int, string"},
				{"color", "must be one of RED, GREEN"},
				{"raw", "must be a base64 string: illegal base64 data at input byte 0"},
				{"when", `must be an RFC 3339 timestamp or epoch milliseconds: parsing time "soon" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "soon" as "2006"`},
				{"ratio", "must be a number, got a string"},
			},
		},
		{
			name: "wrapped union path", schema: outer,
			json: `{"inner":{"n":1},"maybe":{"pyrite.system.Inner":{"n":"one"}}}`,
			errs: []fe{{`maybe["pyrite.system.Inner"].n`, "must be an integer, got a string"}},
		},
		{
			name: "map value path", schema: ws, json: `{"clientId":"c","metadata":{"ok":"x","bad":1}}`,
			errs: []fe{{`metadata["bad"]`, "must be a string, got a number"}},
		},
		{
			name: "missing nested field", schema: outer, json: `{"inner":{}}`,
			errs: []fe{{"inner.n", "required field is missing"}},
		},
		{
			name: "null for a non-null field", schema: outer, json: `{"inner":null}`,
			errs: []fe{{"inner", "must be an object, got null"}},
		},
		{name: "not an object", schema: progress, json: `[1]`, errs: []fe{{"", "must be a JSON object, got an array"}}},
		{name: "null document", schema: progress, json: `null`, errs: []fe{{"", "must be a JSON object, got null"}}},
		{name: "malformed", schema: progress, json: `{"oldProgress":`, errs: []fe{{"", "invalid JSON: unexpected EOF"}}},
		{name: "trailing data", schema: progress, json: `{"oldProgress":1,"newProgress":2} {}`, errs: []fe{{"", "invalid JSON: data after the top-level value"}}},
		{name: "duplicate key", schema: progress, json: `{"oldProgress":1,"oldProgress":2,"newProgress":3}`, errs: []fe{{"", `invalid JSON: duplicate key "oldProgress"`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.FromJSON(tt.schema, []byte(tt.json))
			if tt.errs == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("FromJSON = %#v\nwant       %#v", got, tt.want)
				}
				// What FromJSON returns, Encode takes.
				if _, err := fx.codec.Encode(tt.schema, got); err != nil {
					t.Errorf("Encode(FromJSON result): %v", err)
				}
				return
			}
			if !errors.Is(err, codec.ErrInvalidData) {
				t.Fatalf("err = %v, want ErrInvalidData", err)
			}
			var fes *codec.FieldErrors
			if !errors.As(err, &fes) {
				t.Fatalf("err %T is not a *FieldErrors", err)
			}
			if !reflect.DeepEqual([]codec.FieldError(*fes), tt.errs) {
				t.Errorf("errors = %q\nwant      %q", *fes, tt.errs)
			}
		})
	}
}

func TestJSONRoundTrip(t *testing.T) {
	fx := newFixture(t)
	outerID := fx.reg.register(t, "pyrite.system.Outer", outerSchema)
	outer, err := fx.codec.ByID(t.Context(), outerID)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		schema *codec.Schema
		in     string
		want   string // ToJSON of the decoded value
	}{
		{
			name: "completed", schema: fx.schema(t, "pyrite.workeffort.Completed", 1),
			in:   `{"completedAt":1741064767890,"title":"<t>","duration":5,"ticketCount":2}`,
			want: `{"title":"\u003ct\u003e","completedAt":"2025-03-04T05:06:07.890Z","duration":5,"ticketCount":2,"assigneeEmail":null}`,
		},
		{
			name: "web socket", schema: fx.schema(t, "pyrite.system.WebSocketConnected", 1),
			in:   `{"clientId":"c","metadata":{"z":"1","a":"2"}}`,
			want: `{"clientId":"c","metadata":{"a":"2","z":"1"}}`,
		},
		{
			name: "outer", schema: outer,
			in:   `{"inner":{"n":1,"tags":["x"]},"maybe":{"n":2},"choice":"s","color":"GREEN","raw":"AQI=","when":"2025-03-04T05:06:07.890Z","ratio":1.25}`,
			want: `{"inner":{"n":1,"tags":["x"]},"maybe":{"n":2,"tags":[]},"choice":{"string":"s"},"color":"GREEN","raw":"AQI=","when":"2025-03-04T05:06:07.890Z","ratio":1.25}`,
		},
		{
			name: "outer with nulls and an int branch", schema: outer,
			in:   `{"inner":{"n":-1},"choice":{"int":3}}`,
			want: `{"inner":{"n":-1,"tags":[]},"maybe":null,"choice":{"int":3},"color":"RED","raw":"","when":null,"ratio":0.5}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := codec.FromJSON(tt.schema, []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			data, err := fx.codec.Encode(tt.schema, v)
			if err != nil {
				t.Fatal(err)
			}
			var decoded map[string]any
			if _, err := fx.codec.Decode(t.Context(), data, nil, &decoded); err != nil {
				t.Fatal(err)
			}
			out, err := codec.ToJSON(tt.schema, decoded)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("ToJSON = %s\nwant     %s", out, tt.want)
			}
			// ToJSON's output reads back to the same value (map order makes bytes vary).
			again, err := codec.FromJSON(tt.schema, out)
			if err != nil {
				t.Fatal(err)
			}
			data2, err := fx.codec.Encode(tt.schema, again)
			if err != nil {
				t.Fatal(err)
			}
			var decoded2 map[string]any
			if _, err := fx.codec.Decode(t.Context(), data2, nil, &decoded2); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decoded2, decoded) {
				t.Errorf("after ToJSON and FromJSON: %#v\nwant %#v", decoded2, decoded)
			}
		})
	}
}

func TestToJSONErrors(t *testing.T) {
	fx := newFixture(t)
	progress := fx.schema(t, progressSubject, 3)
	_, err := codec.ToJSON(progress, map[string]any{"oldProgress": "x", "delta": 1})
	var fes *codec.FieldErrors
	if !errors.As(err, &fes) || !errors.Is(err, codec.ErrInvalidData) {
		t.Fatalf("err = %v, want *FieldErrors", err)
	}
	want := []codec.FieldError{
		{Field: "oldProgress", Message: "must be an integer, got string"},
		{Field: "newProgress", Message: "required field is missing"},
	}
	if !reflect.DeepEqual([]codec.FieldError(*fes), want) {
		t.Errorf("errors = %q, want %q", *fes, want)
	}
}

// A plain decoded value in a union of several types keeps its branch through ToJSON.
func TestToJSONPicksTheBranchOfTheGoType(t *testing.T) {
	s, err := codec.NewSchema(1, "", 0, `{"type":"record","name":"U","namespace":"pyrite.system","fields":[
		{"name":"n","type":["null","int","long"]},{"name":"f","type":["null","float","double"]}]}`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   map[string]any
		want string
	}{
		{"int", map[string]any{"n": 7, "f": float32(1.5)}, `{"n":{"int":7},"f":{"float":1.5}}`},
		{"long", map[string]any{"n": int64(7), "f": 1.5}, `{"n":{"long":7},"f":{"double":1.5}}`},
		{"wrapped", map[string]any{"n": map[string]any{"long": int64(7)}, "f": nil}, `{"n":{"long":7},"f":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := codec.ToJSON(s, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("ToJSON = %s, want %s", got, tt.want)
			}
		})
	}
}
