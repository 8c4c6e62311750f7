package codec

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// plainJSON turns a ParseJSON tree into what encoding/json decodes into an any with
// UseNumber: objects become maps, the last of duplicate keys winning.
func plainJSON(v any) any {
	switch t := v.(type) {
	case *JSONObject:
		m := make(map[string]any, len(t.Members))
		for _, e := range t.Members {
			m[e.Key] = plainJSON(e.Value)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plainJSON(e)
		}
		return out
	}
	return v
}

func decodeStd(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func obj(kv ...any) *JSONObject {
	o := &JSONObject{}
	for i := 0; i < len(kv); i += 2 {
		o.Members = append(o.Members, JSONMember{Key: kv[i].(string), Value: kv[i+1]})
	}
	return o
}

func TestParseJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want any
	}{
		{"null", `null`, nil},
		{"true", ` true `, true},
		{"false", "\t\r\nfalse\n", false},
		{"zero", `0`, json.Number("0")},
		{"negative fraction exponent", `-12.5e+3`, json.Number("-12.5e+3")},
		{"big integer keeps its text", `123456789012345678901234567890`, json.Number("123456789012345678901234567890")},
		{"upper exponent", `1E-2`, json.Number("1E-2")},
		{"string", `"a b"`, "a b"},
		{"escapes", `"\"\\\/\b\f\n\r\t"`, "\"\\/\b\f\n\r\t"},
		{"unicode escape", `"\u00e9\u20AC"`, "é€"},
		{"surrogate pair", `"\ud83d\ude00"`, "😀"},
		{"lone high surrogate", `"\ud83dx"`, "\uFFFDx"},
		{"high surrogate then non-surrogate escape", `"\ud83d\u0041"`, "\uFFFDA"},
		{"lone low surrogate", `"\ude00"`, "\uFFFD"},
		{"two high surrogates", `"\ud83d\ud83d\ude00"`, "\uFFFD😀"},
		{"raw UTF-8", `"héllo, 世界"`, "héllo, 世界"},
		{"invalid UTF-8 replaced", "\"a\xffb\"", "a\uFFFDb"},
		{"truncated UTF-8 replaced", "\"\xe4\xb8\"", "\uFFFD\uFFFD"},
		{"encoded surrogate replaced", "\"\xed\xa0\x80\"", "\uFFFD\uFFFD\uFFFD"},
		{"escape then invalid UTF-8", "\"\\n\xff\"", "\n\uFFFD"},
		{"DEL is not a control character", "\"\x7f\"", "\x7f"},
		{"empty array", `[]`, []any{}},
		{"empty object", `{}`, obj()},
		{"array", `[1, "a", null, [true]]`, []any{json.Number("1"), "a", nil, []any{true}}},
		{"object keeps order and duplicates", `{"b":1,"a":2,"b":3}`, obj("b", json.Number("1"), "a", json.Number("2"), "b", json.Number("3"))},
		{"escaped key", `{"\u0074ype":"x"}`, obj("type", "x")},
		{"nested", `{"a":{"b":[{"c":{}}]}}`, obj("a", obj("b", []any{obj("c", obj())}))},
		{"deepest nesting", strings.Repeat("[", 10000) + strings.Repeat("]", 10000), nil}, // checked by shape below
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseJSON([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "deepest nesting" {
				depth := 0
				for v, ok := got.([]any); ok; v, ok = v[0].([]any) {
					depth++
					if len(v) == 0 {
						break
					}
				}
				if depth != 10000 {
					t.Fatalf("depth %d", depth)
				}
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseJSON = %#v, want %#v", got, tt.want)
			}
			std, err := decodeStd([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(plainJSON(got), std) {
				t.Fatalf("encoding/json decodes %#v, ParseJSON %#v", std, plainJSON(got))
			}
		})
	}
}

func TestParseJSONRejects(t *testing.T) {
	tests := []struct{ name, in string }{
		{"empty", ``},
		{"space only", "  \n"},
		{"trailing data", `{} {}`},
		{"trailing comma in array", `[1,]`},
		{"trailing comma in object", `{"a":1,}`},
		{"missing colon", `{"a" 1}`},
		{"unquoted key", `{a:1}`},
		{"number key", `{1:1}`},
		{"unclosed object", `{"a":1`},
		{"unclosed array", `[1`},
		{"unclosed string", `"abc`},
		{"leading zero", `01`},
		{"plus sign", `+1`},
		{"bare minus", `-`},
		{"bare dot", `.5`},
		{"dot without digits", `1.`},
		{"exponent without digits", `1e`},
		{"exponent sign without digits", `1e+`},
		{"hex", `0x10`},
		{"NaN", `NaN`},
		{"single quotes", `'a'`},
		{"control character in string", "\"a\nb\""},
		{"tab in string", "\"a\tb\""},
		{"bad escape", `"\x41"`},
		{"single-quote escape", `"\'"`},
		{"short unicode escape", `"\u12"`},
		{"non-hex unicode escape", `"\u12g4"`},
		{"bad escape after a high surrogate", `"\ud83d\u12g4"`},
		{"escape at the end", `"\`},
		{"truncated literal", `tru`},
		{"literal with a tail", `nullx`},
		{"capitalised literal", `True`},
		{"comment", `{} // x`},
		{"byte order mark", "\xef\xbb\xbf{}"},
		{"nul after value", "{}\x00"},
		{"too deep", strings.Repeat("[", 10001) + strings.Repeat("]", 10001)},
		{"close without open", `]`},
		{"mismatched brackets", `[}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if json.Valid([]byte(tt.in)) {
				t.Fatalf("the case is valid JSON for encoding/json")
			}
			if v, err := ParseJSON([]byte(tt.in)); err == nil {
				t.Fatalf("ParseJSON = %#v, want an error", v)
			}
		})
	}
}

func TestCheckJSONTree(t *testing.T) {
	many := func(n int, dupAt int) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			k := i
			if i == dupAt {
				k = 3
			}
			b.WriteString(`"k` + string(rune('a'+k%26)) + strings.Repeat("x", k/26) + `":1`)
		}
		b.WriteByte('}')
		return b.String()
	}
	nest := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	tests := []struct{ name, in, err string }{
		{"flat", `{"a":1,"b":[1,{"c":2}]}`, ""},
		{"duplicate", `{"a":1,"a":2}`, `duplicate key "a"`},
		{"nested duplicate", `{"x":[{"a":1,"b":{},"a":2}]}`, `duplicate key "a"`},
		{"equal after unescaping", `{"a":1,"\u0061":2}`, `duplicate key "a"`},
		{"same key in sibling objects", `{"x":{"a":1},"y":{"a":1}}`, ""},
		{"many keys", many(200, -1), ""},
		{"duplicate among many keys", many(200, 150), `duplicate key "kd"`},
		{"64 levels", nest(64), ""},
		{"65 levels", nest(65), "nested deeper than 64 levels"},
		{"first fault in document order", `{"a":` + nest(65) + `,"a":1}`, "nested deeper than 64 levels"},
		{"duplicate before depth", `{"a":1,"a":` + nest(65) + `}`, `duplicate key "a"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ParseJSON([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if err := checkJSONTree(v, 0); err != nil {
				got = err.Error()
			}
			if got != tt.err {
				t.Fatalf("checkJSONTree = %q, want %q", got, tt.err)
			}
			_, ref := describeJSON([]byte(tt.in))
			refMsg := ""
			if ref != nil {
				refMsg = ref.Error()
			}
			if refMsg != tt.err {
				t.Fatalf("the reference reader says %q, want %q", refMsg, tt.err)
			}
		})
	}
}

func BenchmarkParseJSON(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"events":[`)
	for i := range 500 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-1","data":{"oldProgress":1,"newProgress":2,"delta":1,"formatted":"2%"}}`)
	}
	sb.WriteString(`]}`)
	data := []byte(sb.String())
	b.Run("ParseJSON", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peer json.Decoder.Token", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := describeJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peer json.Unmarshal any", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeStd(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peer json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !json.Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
}

// FuzzParseJSON checks ParseJSON against encoding/json: it accepts exactly what json.Valid
// accepts, its values are those encoding/json decodes, and with checkJSONTree it accepts,
// builds and rejects (with the same message) exactly what the token reader FromJSON used
// before does.
func FuzzParseJSON(f *testing.F) {
	for _, seed := range []string{
		`{"type":"WorkEffort:Created","aggregateId":"we-1","data":{"title":"Ship it","n":-1.5e3,"ok":true,"x":null,"a":[1,[]]}}`,
		`{"a":1,"a":2}`, `{"a":{"b":{"c":[{"d":{}}]}}}`, `[1,2,3]`, `"\ud83d\ude00\ud83d\u0041\ude00"`, "\"\xff\xed\xa0\x80\"",
		`{"\u0061":1,"a":2}`, `0`, `-0.0e-0`, `01`, `1.`, `[1,]`, `{"a" 1}`, `"\u12g4"`, "\"\t\"", `{} {}`, ` `,
		strings.Repeat(`[`, 65) + strings.Repeat(`]`, 65), strings.Repeat(`{"a":`, 66) + `1` + strings.Repeat(`}`, 66),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseJSON(data)
		if valid := json.Valid(data); (err == nil) != valid {
			t.Fatalf("ParseJSON error %v, json.Valid %v", err, valid)
		}
		ref, refErr := describeJSON(data)
		if err != nil {
			if refErr == nil {
				t.Fatalf("ParseJSON rejects what the token reader reads: %v", err)
			}
			return
		}
		std, stdErr := decodeStd(data)
		if stdErr != nil {
			t.Fatalf("encoding/json rejects what ParseJSON reads: %v", stdErr)
		}
		if !reflect.DeepEqual(plainJSON(v), std) {
			t.Fatalf("ParseJSON = %#v\nencoding/json %#v", plainJSON(v), std)
		}
		checkErr := checkJSONTree(v, 0)
		switch {
		case checkErr == nil && refErr == nil:
			if !reflect.DeepEqual(v, ref) {
				t.Fatalf("ParseJSON = %#v\ntoken reader %#v", v, ref)
			}
		case checkErr != nil && refErr != nil:
			if checkErr.Error() != refErr.Error() {
				t.Fatalf("checkJSONTree says %q, the token reader %q", checkErr, refErr)
			}
		default:
			t.Fatalf("checkJSONTree says %v, the token reader %v", checkErr, refErr)
		}
	})
}

func BenchmarkParseJSONEvent(b *testing.B) {
	data := []byte(`{"type":"WorkEffort:ProgressUpdated","aggregateId":"we-1","data":{"oldProgress":1,"newProgress":2,"delta":1,"formatted":"2%"}}`)
	b.Run("ParseJSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseJSON(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("peer json.Unmarshal any", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeStd(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
