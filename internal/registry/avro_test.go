package registry

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

func TestNormalizeAvro(t *testing.T) {
	address := compat.Schema{Text: `{"type":"record","name":"Address","namespace":"a","fields":[{"name":"s","type":"string"}]}`}
	tests := []struct {
		name   string
		x, y   string
		refs   []compat.Schema
		same   bool
		exactX string // the normalized form of x, when given
	}{
		{name: "primitive object form", x: `"string"`, y: `{"type":"string"}`, same: true, exactX: `"string"`},
		{name: "namespace attribute or dotted name",
			x:      `{"type":"record","name":"R","namespace":"a.b","fields":[]}`,
			y:      `{"type":"record","name":"a.b.R","fields":[]}`,
			same:   true,
			exactX: `{"name":"a.b.R","type":"record","fields":[]}`},
		{name: "attribute order and whitespace",
			x:    `{"type":"record","name":"R","fields":[{"name":"f","type":"int","default":1}]}`,
			y:    " {\n \"fields\" : [ { \"default\":1, \"type\":\"int\", \"name\":\"f\" } ],\"name\":\"R\", \"type\":\"record\"}",
			same: true},
		{name: "explicit ascending order",
			x:    `{"type":"record","name":"R","fields":[{"name":"f","type":"int","order":"ascending"}]}`,
			y:    `{"type":"record","name":"R","fields":[{"name":"f","type":"int"}]}`,
			same: true},
		{name: "alias order and qualification",
			x:    `{"type":"record","name":"R","namespace":"n","aliases":["B","n.A"],"fields":[]}`,
			y:    `{"type":"record","name":"R","namespace":"n","aliases":["A","n.B"],"fields":[]}`,
			same: true},
		{name: "references to a nested type by short or full name",
			x:    `{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"b","type":"E"}]}`,
			y:    `{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":{"type":"enum","name":"n.E","symbols":["X"]}},{"name":"b","type":"n.E"}]}`,
			same: true},
		{name: "default object key order",
			x:    `{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"int"},"default":{"a":1,"b":2}}]}`,
			y:    `{"type":"record","name":"R","fields":[{"name":"m","type":{"type":"map","values":"int"},"default":{"b":2,"a":1}}]}`,
			same: true},
		{name: "reference to a type from a schema reference, short name",
			x:    `{"type":"record","name":"P","namespace":"a","fields":[{"name":"h","type":"Address"}]}`,
			y:    `{"type":"record","name":"P","namespace":"a","fields":[{"name":"h","type":"a.Address"}]}`,
			refs: []compat.Schema{address}, same: true},
		{name: "short name falls back to the null namespace",
			x:      `{"type":"record","name":"P","namespace":"z","fields":[{"name":"h","type":"G"}]}`,
			y:      `{"type":"record","name":"P","namespace":"z","fields":[{"name":"h","type":"z.G"}]}`,
			refs:   []compat.Schema{{Text: `{"type":"fixed","name":"G","size":2}`}},
			same:   false,
			exactX: `{"name":"z.P","type":"record","fields":[{"name":"h","type":"G"}]}`},
		{name: "doc differs", x: `{"type":"record","name":"R","fields":[]}`, y: `{"type":"record","name":"R","doc":"d","fields":[]}`},
		{name: "field doc differs",
			x: `{"type":"record","name":"R","fields":[{"name":"f","type":"int"}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":"int","doc":"d"}]}`},
		{name: "default differs",
			x: `{"type":"record","name":"R","fields":[{"name":"f","type":"int","default":1}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":"int","default":2}]}`},
		{name: "default present or not",
			x: `{"type":"record","name":"R","fields":[{"name":"f","type":["null","int"],"default":null}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":["null","int"]}]}`},
		{name: "field aliases differ",
			x: `{"type":"record","name":"R","fields":[{"name":"f","type":"int","aliases":["g"]}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":"int"}]}`},
		{name: "descending order",
			x: `{"type":"record","name":"R","fields":[{"name":"f","type":"int","order":"descending"}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":"int"}]}`},
		{name: "custom property", x: `{"type":"string","connect.name":"x"}`, y: `"string"`},
		{name: "logical type", x: `{"type":"int","logicalType":"date"}`, y: `"int"`},
		{name: "enum default", x: `{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`, y: `{"type":"enum","name":"E","symbols":["A","B"]}`},
		{name: "symbol order", x: `{"type":"enum","name":"E","symbols":["A","B"]}`, y: `{"type":"enum","name":"E","symbols":["B","A"]}`},
		{name: "number literal kept", x: `{"type":"record","name":"R","fields":[{"name":"f","type":"double","default":1}]}`,
			y: `{"type":"record","name":"R","fields":[{"name":"f","type":"double","default":1.0}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nx, err := normalizeAvro(tt.x, tt.refs)
			if err != nil {
				t.Fatalf("x: %v", err)
			}
			ny, err := normalizeAvro(tt.y, tt.refs)
			if err != nil {
				t.Fatalf("y: %v", err)
			}
			if (nx == ny) != tt.same {
				t.Errorf("same = %v, want %v\nx: %s\ny: %s", nx == ny, tt.same, nx, ny)
			}
			if tt.exactX != "" && nx != tt.exactX {
				t.Errorf("normalized x\n got %s\nwant %s", nx, tt.exactX)
			}
			for i, n := range []string{nx, ny} {
				again, err := normalizeAvro(n, tt.refs)
				if err != nil || again != n {
					t.Errorf("not idempotent: %s -> %s (%v)", n, again, err)
				}
				// hamba/avro does not fall back to the null namespace, so
				// only check schemas it accepts in the first place.
				orig := []string{tt.x, tt.y}[i]
				if _, err := parseAvro(compat.Schema{Text: orig, References: tt.refs}); err != nil {
					continue
				}
				if _, err := parseAvro(compat.Schema{Text: n, References: tt.refs}); err != nil {
					t.Errorf("normalized form does not parse: %s: %v", n, err)
				}
			}
		})
	}
}

func TestNormalizeAvroRejects(t *testing.T) {
	for _, s := range []string{``, `{`, `5`, `{"name":"x"}`, `{"type":"record","name":"R"}`, `{"type":"enum","name":"E"}`,
		`{"type":"fixed","name":"F"}`, `{"type":"array"}`, `"a" "b"`, strings.Repeat("[", 300) + strings.Repeat("]", 300)} {
		if n, err := normalizeAvro(s, nil); err == nil {
			t.Errorf("normalizeAvro(%q) = %q, want an error", s, n)
		}
	}
}

// FuzzParseSchema feeds arbitrary schema texts to the parser and the
// normalizer: neither may panic, and a schema both accept must normalize
// to a form that is a fixed point and still parses.
func FuzzParseSchema(f *testing.F) {
	for _, s := range []string{
		userV1, userV1Doc, userV2, address, otherSchema, `"string"`, `["null","int"]`,
		`{"type":"array","items":{"type":"map","values":"long"}}`,
		`{"type":"fixed","name":"F","size":16,"logicalType":"decimal","precision":4,"scale":2}`,
		`{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"\u00ff"}]}`,
		`{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"],"default":null}]}`,
		`{"type":"error","name":"E","fields":[]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, perr := parseAvro(compat.Schema{Text: s})
		n, nerr := normalizeAvro(s, nil)
		if perr != nil || nerr != nil {
			return
		}
		again, err := normalizeAvro(n, nil)
		if err != nil || again != n {
			t.Fatalf("normalized form is not a fixed point: %q -> %q -> %q (%v)", s, n, again, err)
		}
		if _, err := parseAvro(compat.Schema{Text: n}); err != nil {
			t.Fatalf("normalized form of %q does not parse: %q: %v", s, n, err)
		}
	})
}

// FuzzRequestBody posts arbitrary bodies to the read-only endpoints that
// parse schemas (lookup and compatibility checks): the answer is never a
// 5xx and an error always has Confluent's body.
func FuzzRequestBody(f *testing.F) {
	f.Add(sb(userV1))
	f.Add(sb(person, personRefs))
	f.Add(sb(`{"type":"record"}`))
	f.Add(`{"schema":5}`)
	f.Add(`{"schema":"\"string\"","references":[{"name":"x","subject":"addr","version":-1}]}`)
	f.Add(`null`)
	f.Add(``)
	f.Add(`{"schema":"\"int\"","schemaType":"JSON"}`)
	r := offlineRegistry(f)
	h := r.routes()
	paths := []string{"/subjects/user", "/compatibility/subjects/user/versions/latest?verbose=true", "/compatibility/subjects/user/versions"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			req := httptest.NewRequest("POST", p, strings.NewReader(body))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("POST %s %q: %d %s", p, body, w.Code, w.Body)
			}
			if w.Code >= 400 && (response{body: w.Body.String()}).errorCode() == 0 {
				t.Fatalf("POST %s %q: %d without an error_code: %s", p, body, w.Code, w.Body)
			}
		}
	})
}

// offlineRegistry is a Registry with state but no Kafka, for the read-only
// endpoints.
func offlineRegistry(tb testing.TB) *Registry {
	tb.Helper()
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	r := &Registry{
		cfg:     config{maxBody: 1 << 20},
		log:     slog.New(slog.DiscardHandler),
		metrics: m,
		st:      newState(),
	}
	for _, rc := range []rec{
		schemaRec("user", 1, 1, userV1, false),
		schemaRec("user", 2, 2, userV2, false),
		schemaRec("addr", 1, 3, address, false),
	} {
		if err := r.st.apply([]byte(rc.key), []byte(rc.value)); err != nil {
			tb.Fatal(err)
		}
	}
	return r
}

func TestOfflineLookup(t *testing.T) {
	h := offlineRegistry(t).routes()
	req := httptest.NewRequest("POST", "/subjects/user", strings.NewReader(sb(userV2)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"version":2,"id":2`) {
		t.Errorf("lookup: %d %s", w.Code, w.Body)
	}
}
