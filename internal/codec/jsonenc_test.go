package codec

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/pyrite-dev/pyrite/schemas"
)

// jsonEncSchema has a field of every kind AppendJSON's plan takes, with and without defaults,
// nullable both ways round, and a nested record.
const jsonEncSchema = `{"type": "record", "name": "T", "namespace": "pyrite.test", "fields": [
	{"name": "b", "type": "boolean", "default": true},
	{"name": "i", "type": "int"},
	{"name": "l", "type": "long", "default": -7},
	{"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 1700000000123},
	{"name": "tu", "type": {"type": "long", "logicalType": "timestamp-micros"}, "default": 0},
	{"name": "f", "type": "float", "default": 1.5},
	{"name": "d", "type": "double", "default": 2.25},
	{"name": "s", "type": "string", "default": "dflt"},
	{"name": "n", "type": "null", "default": null},
	{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}, "default": "B"},
	{"name": "os", "type": ["null", "string"], "default": null},
	{"name": "ol", "type": ["long", "null"], "default": 5},
	{"name": "ot", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}], "default": null},
	{"name": "oe", "type": ["null", "E"], "default": null},
	{"name": "od", "type": ["null", "double"], "default": null},
	{"name": "r", "type": {"type": "record", "name": "R", "fields": [
		{"name": "x", "type": "int", "default": 3},
		{"name": "y", "type": ["null", "string"], "default": null}
	]}, "default": {"x": 4}}
]}`

// appendJSONSlow is AppendJSON's general path, the reference its plan must match.
func appendJSONSlow(c *Codec, dst []byte, s *Schema, v any) ([]byte, error) {
	m, err := FromJSONValue(s, v)
	if err != nil {
		return dst, err
	}
	return c.AppendEncode(dst, s, m)
}

// checkAppendJSON fails when AppendJSON and the general path disagree on doc: on the bytes,
// or on whether and how it fails.
func checkAppendJSON(t *testing.T, c *Codec, s *Schema, doc []byte) (fast bool) {
	t.Helper()
	checkAppendJSONText(t, c, s, doc)
	v, err := ParseJSON(doc)
	if err != nil {
		return false
	}
	want, wantErr := appendJSONSlow(c, []byte("prefix"), s, v)
	got, gotErr := c.AppendJSON([]byte("prefix"), s, v)
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("%s with %s: error %v, general path %v", doc, s.Subject, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s with %s: %x, general path %x", doc, s.Subject, got, want)
	}
	if p := c.bindingOf(s).jsonPlanOf(s.Avro); p != nil {
		_, fast = p.append(nil, v)
	}
	return fast
}

// checkAppendJSONText fails when AppendJSONText and the general path disagree on doc.
func checkAppendJSONText(t *testing.T, c *Codec, s *Schema, doc []byte) (fast bool) {
	t.Helper()
	var want []byte
	m, wantErr := FromJSON(s, doc)
	if wantErr == nil {
		want, wantErr = c.AppendEncode([]byte("prefix"), s, m)
	} else {
		want = []byte("prefix")
	}
	got, gotErr := c.AppendJSONText([]byte("prefix"), s, string(doc))
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("text %s with %s: error %v, general path %v", doc, s.Subject, gotErr, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("text %s with %s: %x, general path %x", doc, s.Subject, got, want)
	}
	if p := c.bindingOf(s).jsonPlanOf(s.Avro); p != nil {
		_, fast = p.appendText(nil, string(doc))
	}
	return fast
}

func TestAppendJSONMatchesGeneralPath(t *testing.T) {
	c := New(nil)
	s, err := NewSchema(7, "", 1, jsonEncSchema)
	if err != nil {
		t.Fatal(err)
	}
	if c.bindingOf(s).jsonPlanOf(s.Avro) == nil {
		t.Fatal("no plan compiled for the test schema")
	}
	fastDocs := []string{
		`{"i": 1}`,
		`{"i": -2147483648, "l": 9223372036854775807, "b": false, "s": "héllo\u0000", "n": null}`,
		`{"i": 0, "ts": "2025-03-04T05:06:07.123456789+02:00", "tu": "1969-12-31T23:59:59.9999999Z"}`,
		`{"i": 0, "ts": -1, "tu": 1741064767890123}`,
		`{"i": 0, "f": 3.4028234663852886e38, "d": -0.0, "e": "C"}`,
		`{"i": 0, "os": "x", "ol": null, "ot": "2025-01-01T00:00:00Z", "oe": "A", "od": 1e-300}`,
		`{"i": 0, "os": null, "ol": -1, "ot": 0, "oe": null, "od": null}`,
		`{"r": {"y": "z"}, "i": 5, "b": true}`,
		`{"r": {}, "i": 5}`,
	}
	for _, d := range fastDocs {
		if !checkAppendJSON(t, c, s, []byte(d)) {
			t.Errorf("%s: the plan did not take it", d)
		}
		if !checkAppendJSONText(t, c, s, []byte(d)) && !strings.Contains(d, `\`) {
			t.Errorf("%s: the plan did not take its text", d)
		}
	}
	slowDocs := []string{
		`{}`,                    // i is required
		`{"i": 1, "zz": 2}`,     // unknown key
		`{"i": 1, "i": 2}`,      // duplicate key
		`{"i": 2147483648}`,     // out of range
		`{"i": 1.0}`,            // not an integer
		`{"i": "1"}`,            // wrong kind
		`{"i": 1, "f": 1e39}`,   // out of range for float
		`{"i": 1, "e": "D"}`,    // no such symbol
		`{"i": 1, "ts": "now"}`, // not a timestamp
		`{"i": 1, "os": {"string": "x"}}`,
		`{"i": 1, "r": {"x": 1, "q": 2}}`,
		`{"i": 1, "r": null}`,
		`[1]`,
		`"x"`,
	}
	for _, d := range append(slowDocs, `{"i": 1`, `{"i": 1} x`, `{"i": 01}`) {
		if checkAppendJSON(t, c, s, []byte(d)) || checkAppendJSONText(t, c, s, []byte(d)) {
			t.Errorf("%s: the plan took it", d)
		}
	}
}

// Every schema in schemas/ with documents built from its own fields.
func TestAppendJSONSchemasDir(t *testing.T) {
	files, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	c := New(nil)
	planned := 0
	for i, f := range files {
		s, err := NewSchema(i+1, f.Subject, f.Version, f.Text)
		if err != nil {
			t.Fatal(err)
		}
		plan := c.bindingOf(s).jsonPlanOf(s.Avro) != nil
		if plan {
			planned++
		}
		for j, d := range sampleDocs(s) {
			if fast := checkAppendJSON(t, c, s, []byte(d)); j == 0 && fast != plan {
				t.Errorf("%s: a document of fitting values went the plan's way: %v, has a plan: %v", f.Path, fast, plan)
			}
			if fast := checkAppendJSONText(t, c, s, []byte(d)); j == 0 && fast != plan {
				t.Errorf("%s: a text of fitting values went the plan's way: %v, has a plan: %v", f.Path, fast, plan)
			}
		}
	}
	if planned < len(files)/2 {
		t.Errorf("a plan for %d of %d schemas", planned, len(files))
	}
}

// sampleDocs returns JSON documents for s: one with a fitting value for every field, then
// that one with each field in turn left out or given a value of each JSON kind.
func sampleDocs(s *Schema) []string {
	rs, ok := derefSchema(s.Avro).(*avro.RecordSchema)
	if !ok {
		return nil
	}
	good := make([]string, len(rs.Fields()))
	for i, f := range rs.Fields() {
		good[i] = fittingJSON(f.Type())
	}
	doc := func(at int, v string) string {
		var b strings.Builder
		b.WriteString("{")
		for i, f := range rs.Fields() {
			val := good[i]
			if i == at {
				if v == "" {
					continue
				}
				val = v
			}
			if b.Len() > 1 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%q: %s", f.Name(), val)
		}
		return b.String() + "}"
	}
	docs := []string{doc(-1, "")}
	kinds := []string{"", `null`, `true`, `12`, `-3`, `1.5`, `"2025-03-04T05:06:07Z"`, `"A"`, `"text"`, `{}`, `[]`, `{"string": "x"}`}
	for i := range rs.Fields() {
		for _, v := range kinds {
			docs = append(docs, doc(i, v))
		}
	}
	return docs
}

// fittingJSON is a JSON value FromJSON takes for schema s.
func fittingJSON(s avro.Schema) string {
	s = derefSchema(s)
	switch s.Type() {
	case avro.Boolean:
		return "true"
	case avro.Int, avro.Long:
		if logicalOf(s) == avro.Date {
			return `"2025-03-04"`
		}
		return "1741064767890"[:len("1741064767890")-4*boolInt(s.Type() == avro.Int)]
	case avro.Float, avro.Double:
		return "2.5"
	case avro.String:
		return `"s"`
	case avro.Bytes:
		return `"AAE="`
	case avro.Enum:
		return fmt.Sprintf("%q", s.(*avro.EnumSchema).Symbols()[0])
	case avro.Array:
		return "[" + fittingJSON(s.(*avro.ArraySchema).Items()) + "]"
	case avro.Map:
		return `{"k": ` + fittingJSON(s.(*avro.MapSchema).Values()) + "}"
	case avro.Record:
		var parts []string
		for _, f := range s.(*avro.RecordSchema).Fields() {
			parts = append(parts, fmt.Sprintf("%q: %s", f.Name(), fittingJSON(f.Type())))
		}
		return "{" + strings.Join(parts, ",") + "}"
	case avro.Union:
		for _, t := range s.(*avro.UnionSchema).Types() {
			if t.Type() != avro.Null {
				return fittingJSON(t)
			}
		}
	}
	return "null"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzAppendJSON: for any JSON document, AppendJSON and the general path agree.
func FuzzAppendJSON(f *testing.F) {
	c := New(nil)
	s, err := NewSchema(7, "", 1, jsonEncSchema)
	if err != nil {
		f.Fatal(err)
	}
	for _, d := range []string{
		`{"i": 1}`, `{"i": 1, "b": true, "os": "x", "ol": null, "r": {"y": "z"}, "e": "C", "f": 1.5}`,
		`{"i": 0, "ts": "2025-03-04T05:06:07.123456789+02:00", "tu": -1, "ot": 5, "oe": "A", "od": 2}`,
		`{"i": 1, "i": 2}`, `{"i": 1, "os": {"string": "x"}}`, `{"i": 99999999999}`,
	} {
		f.Add([]byte(d))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		checkAppendJSON(t, c, s, doc)
	})
}

// parseInt is strconv.ParseInt for every literal.
func TestParseInt(t *testing.T) {
	lits := []string{"0", "-0", "7", "-7", "123456789", "-123456789", "999999999", "1234567890", "2147483647",
		"2147483648", "-2147483648", "-2147483649", "9223372036854775807", "9223372036854775808", "1.5", "1e3",
		"-", "", "12a", "00", "-1.0"}
	for _, lit := range lits {
		for _, bits := range []int{32, 64} {
			want, err := strconv.ParseInt(lit, 10, bits)
			got, ok := parseInt(lit, bits)
			if ok != (err == nil) || ok && got != want {
				t.Errorf("parseInt(%q, %d) = %d, %v; strconv %d, %v", lit, bits, got, ok, want, err)
			}
		}
	}
}
