package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSkipValue(t *testing.T) {
	for _, tt := range []struct {
		in   string
		kind Kind
		text string
	}{
		{`"abc"`, String, "abc"},
		{` "héllo" `, String, "héllo"},
		{`"a\"b"`, Invalid, ""},
		{"\"a\x01\"", Invalid, ""},
		{"\"\xff\"", Invalid, ""},
		{`-0.5e+3`, Number, "-0.5e+3"},
		{`012`, Number, "0"}, // the 12 is left: End is false
		{`+1`, Invalid, ""},
		{`1.`, Invalid, ""},
		{`null`, Null, "null"},
		{`nul`, Invalid, ""},
		{`{"a": {"b": [1]}}`, Invalid, ""},
		{`{"a": {"b": 1, "c": "d"}, "e": true}`, Object, `{"a": {"b": 1, "c": "d"}, "e": true}`},
		{`{"a" 1}`, Invalid, ""},
		{`{"a": 1,}`, Invalid, ""},
		{`{}`, Object, `{}`},
	} {
		s := Scanner{Text: tt.in}
		k, text := s.SkipValue()
		if k != tt.kind || text != tt.text {
			t.Errorf("%s: %v %q, want %v %q", tt.in, k, text, tt.kind, tt.text)
		}
	}
	deep := ""
	for range MaxDepth + 1 {
		deep += `{"a":`
	}
	deep += "1"
	for range MaxDepth + 1 {
		deep += "}"
	}
	if s := (Scanner{Text: deep}); func() bool { k, _ := s.SkipValue(); return k != Invalid }() {
		t.Errorf("an object nested %d deep was read", MaxDepth+1)
	}
	ok := deep[len(`{"a":`) : len(deep)-1]
	if s := (Scanner{Text: ok}); func() bool { k, _ := s.SkipValue(); return k != Object }() {
		t.Errorf("an object nested %d deep was not read", MaxDepth)
	}
}

// FuzzSkipValue: what the scanner reads whole is valid JSON with the same meaning.
func FuzzSkipValue(f *testing.F) {
	for _, s := range []string{`"abc"`, `{"a": {"b": 1.5e3, "c": "d"}, "e": [true]}`, `-0`, `null`, `{"a":"\u00e9"}`, "\"\xe9\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s := Scanner{Text: in}
		k, text := s.SkipValue()
		if k == Invalid || !s.End() {
			return
		}
		if !json.Valid([]byte(in)) {
			t.Fatalf("%q read as %v but is not valid JSON", in, k)
		}
		var v any
		dec := json.NewDecoder(strings.NewReader(in))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		switch k {
		case String:
			if v != text {
				t.Fatalf("%q: %q, encoding/json %q", in, text, v)
			}
		case Number:
			if n, ok := v.(json.Number); !ok || string(n) != text {
				t.Fatalf("%q: %q, encoding/json %v", in, text, v)
			}
		case Object:
			if _, ok := v.(map[string]any); !ok {
				t.Fatalf("%q: object, encoding/json %T", in, v)
			}
		case Null, True, False:
			want := map[Kind]any{Null: nil, True: true, False: false}[k]
			if v != want {
				t.Fatalf("%q: %v, encoding/json %v", in, k, v)
			}
		}
	})
}
