package compat_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	twmbavro "github.com/twmb/avro"

	"github.com/pyrite-dev/pyrite/internal/compat"
)

// rec is a root record named R (namespace pyrite.test) with the given fields.
func rec(fields string) string {
	return `{"type":"record","name":"R","namespace":"pyrite.test","fields":[` + fields + `]}`
}

// field is a record field of the given (JSON) type.
func field(name, typ string) string {
	return `{"name":"` + name + `","type":` + typ + `}`
}

// resolutionCases are reader/writer pairs from the specification's
// schema-resolution rules. want lists substrings that must all appear in one
// message each (in order); nil means compatible.
var resolutionCases = []struct {
	name   string
	reader string
	writer string
	want   []string
}{
	// Promotions.
	{name: "promote int to long", reader: `"long"`, writer: `"int"`},
	{name: "promote int to float", reader: `"float"`, writer: `"int"`},
	{name: "promote int to double", reader: `"double"`, writer: `"int"`},
	{name: "promote long to float", reader: `"float"`, writer: `"long"`},
	{name: "promote long to double", reader: `"double"`, writer: `"long"`},
	{name: "promote float to double", reader: `"double"`, writer: `"float"`},
	{name: "promote string to bytes", reader: `"bytes"`, writer: `"string"`},
	{name: "promote bytes to string", reader: `"string"`, writer: `"bytes"`},
	{name: "same primitive", reader: `"boolean"`, writer: `"boolean"`},
	{name: "no demotion long to int", reader: `"int"`, writer: `"long"`,
		want: []string{`at (root): reader type int cannot read writer type long`}},
	{name: "no demotion double to float", reader: `"float"`, writer: `"double"`,
		want: []string{`reader type float cannot read writer type double`}},
	{name: "no promotion float to long", reader: `"long"`, writer: `"float"`,
		want: []string{`reader type long cannot read writer type float`}},
	{name: "no promotion int to string", reader: `"string"`, writer: `"int"`,
		want: []string{`reader type string cannot read writer type int`}},
	{name: "field promoted int to long",
		reader: rec(field("a", `"long"`)), writer: rec(field("a", `"int"`))},
	{name: "field demoted long to int",
		reader: rec(field("a", `"int"`)), writer: rec(field("a", `"long"`)),
		want: []string{`at "a": reader type int cannot read writer type long`}},

	// Fields added and removed.
	{name: "reader adds field with default",
		reader: rec(field("a", `"int"`) + `,{"name":"b","type":"string","default":"x"}`),
		writer: rec(field("a", `"int"`))},
	{name: "reader adds nullable field with null default",
		reader: rec(field("a", `"int"`) + `,{"name":"b","type":["null","string"],"default":null}`),
		writer: rec(field("a", `"int"`))},
	{name: "reader adds field without default",
		reader: rec(field("a", `"int"`) + `,` + field("b", `"string"`)),
		writer: rec(field("a", `"int"`)),
		want:   []string{`reader field "b" has no default and is missing in writer`}},
	{name: "writer has extra field the reader drops",
		reader: rec(field("a", `"int"`)),
		writer: rec(field("a", `"int"`) + `,` + field("b", `"string"`))},
	{name: "every missing field is reported",
		reader: rec(field("a", `"int"`) + `,` + field("b", `"int"`) + `,` + field("c", `"int"`)),
		writer: rec(field("a", `"int"`)),
		want:   []string{`reader field "b" has no default`, `reader field "c" has no default`}},

	// Enums.
	{name: "enum reader has superset of symbols",
		reader: `{"type":"enum","name":"E","symbols":["A","B","C"]}`,
		writer: `{"type":"enum","name":"E","symbols":["A","B"]}`},
	{name: "enum writer symbol missing and reader has no default",
		reader: `{"type":"enum","name":"E","symbols":["A","B"]}`,
		writer: `{"type":"enum","name":"E","symbols":["A","B","C"]}`,
		want:   []string{`writer enum "E" symbols ["C"] are not in reader enum "E", which has no default`}},
	{name: "enum writer symbol missing but reader has default",
		reader: `{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}`,
		writer: `{"type":"enum","name":"E","symbols":["A","B","C"]}`},
	{name: "enum in nested field with different name",
		reader: rec(field("e", `{"type":"enum","name":"E","symbols":["A"]}`)),
		writer: rec(field("e", `{"type":"enum","name":"F","symbols":["A"]}`)),
		want:   []string{`at "e": reader enum "pyrite.test.E" does not match writer enum "pyrite.test.F"`}},

	// Unions.
	{name: "writer union subset of reader union",
		reader: `["null","int","string"]`, writer: `["null","int"]`},
	{name: "reader union drops a writer branch",
		reader: `["null","int"]`, writer: `["null","int","string"]`,
		want: []string{`writer union branch 2 (string) matches no branch of reader union [null, int]`}},
	{name: "writer union branch promoted into reader union",
		reader: `["null","double"]`, writer: `["null","int"]`},
	{name: "non-union writer read by union reader",
		reader: `["null","int"]`, writer: `"int"`},
	{name: "non-union writer promoted into union reader",
		reader: `["null","long"]`, writer: `"int"`},
	{name: "non-union writer matches no reader branch",
		reader: `["null","string"]`, writer: `"int"`,
		want: []string{`writer type int matches no branch of reader union [null, string]`}},
	{name: "union writer read by non-union reader when every branch fits",
		reader: `"double"`, writer: `["int","long","float"]`},
	{name: "union writer with null read by non-union reader",
		reader: rec(field("o", `"string"`)), writer: rec(field("o", `["null","string"]`)),
		want: []string{`at "o": reader type string cannot read writer union branch 0 (null)`}},
	{name: "record inside union resolved by name",
		reader: rec(field("u", `["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}]`)),
		writer: rec(field("u", `["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]`)),
		want:   []string{`reader field "u.y" has no default`}},

	// Aliases.
	{name: "record renamed with alias",
		reader: `{"type":"record","name":"New","aliases":["Old"],"fields":[{"name":"a","type":"int"}]}`,
		writer: `{"type":"record","name":"Old","fields":[{"name":"a","type":"int"}]}`},
	{name: "record renamed across namespaces with qualified alias",
		reader: `{"type":"record","name":"b.New","aliases":["a.Old"],"fields":[{"name":"a","type":"int"}]}`,
		writer: `{"type":"record","name":"a.Old","fields":[{"name":"a","type":"int"}]}`},
	{name: "record renamed without alias",
		reader: `{"type":"record","name":"New","fields":[{"name":"a","type":"int"}]}`,
		writer: `{"type":"record","name":"Old","fields":[{"name":"a","type":"int"}]}`,
		want:   []string{`at (root): reader record "New" does not match writer record "Old" by name or alias`}},
	{name: "record same unqualified name in another namespace",
		reader: `{"type":"record","name":"x.R","fields":[{"name":"a","type":"int"}]}`,
		writer: `{"type":"record","name":"y.R","fields":[{"name":"a","type":"int"}]}`},
	{name: "field renamed with reader alias",
		reader: rec(`{"name":"z","aliases":["y"],"type":"int"}`),
		writer: rec(field("y", `"int"`))},
	{name: "field renamed without alias",
		reader: rec(field("z", `"int"`)),
		writer: rec(field("y", `"int"`)),
		want:   []string{`reader field "z" has no default and is missing in writer`}},
	{name: "two writer fields claim one reader field",
		reader: rec(`{"name":"a","aliases":["b"],"type":"int"}`),
		writer: rec(field("a", `"int"`) + `,` + field("b", `"int"`)),
		want:   []string{`at "a": writer fields "a" and "b" both resolve to reader field "a"`}},

	// Nested records, named-type references, arrays and maps: paths.
	{name: "nested record field path",
		reader: rec(field("n", `{"type":"record","name":"N","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}`)),
		writer: rec(field("n", `{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]}`)),
		want:   []string{`reader field "n.y" has no default and is missing in writer`}},
	{name: "nested type change path",
		reader: rec(field("n", `{"type":"record","name":"N","fields":[{"name":"x","type":"string"}]}`)),
		writer: rec(field("n", `{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]}`)),
		want:   []string{`at "n.x": reader type string cannot read writer type int`}},
	{name: "named type defined once and referenced later reports every path",
		reader: rec(field("a", `{"type":"record","name":"P","fields":[{"name":"v","type":"int"},{"name":"w","type":"int"}]}`) + `,` + field("b", `"P"`)),
		writer: rec(field("a", `{"type":"record","name":"P","fields":[{"name":"v","type":"int"}]}`) + `,` + field("b", `"P"`)),
		want:   []string{`reader field "a.w" has no default`, `reader field "b.w" has no default`}},
	{name: "named type referenced later compatible",
		reader: rec(field("a", `{"type":"record","name":"P","fields":[{"name":"v","type":"long"}]}`) + `,` + field("b", `"P"`)),
		writer: rec(field("a", `{"type":"record","name":"P","fields":[{"name":"v","type":"int"}]}`) + `,` + field("b", `"pyrite.test.P"`))},
	{name: "array of records path",
		reader: rec(field("l", `{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}}`)),
		writer: rec(field("l", `{"type":"array","items":{"type":"record","name":"I","fields":[{"name":"x","type":"int"}]}}`)),
		want:   []string{`reader field "l.items.y" has no default`}},
	{name: "map of records path",
		reader: rec(field("m", `{"type":"map","values":{"type":"record","name":"V","fields":[{"name":"x","type":"int"},{"name":"y","type":"int"}]}}`)),
		writer: rec(field("m", `{"type":"map","values":{"type":"record","name":"V","fields":[{"name":"x","type":"int"}]}}`)),
		want:   []string{`reader field "m.values.y" has no default`}},
	{name: "array items promoted",
		reader: `{"type":"array","items":"double"}`, writer: `{"type":"array","items":"int"}`},
	{name: "map values demoted",
		reader: `{"type":"map","values":"int"}`, writer: `{"type":"map","values":"long"}`,
		want: []string{`at "values": reader type int cannot read writer type long`}},
	{name: "array read as map",
		reader: `{"type":"map","values":"int"}`, writer: `{"type":"array","items":"int"}`,
		want: []string{`reader type map cannot read writer type array`}},
	{name: "recursive type checks without looping",
		reader: `{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}`,
		writer: `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`},
	{name: "recursive type with missing field",
		reader: `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"w","type":"int"},{"name":"next","type":["null","Node"]}]}`,
		writer: `{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}`,
		want:   []string{`reader field "w" has no default`}},

	// Fixed.
	{name: "fixed same size",
		reader: `{"type":"fixed","name":"F","size":16}`, writer: `{"type":"fixed","name":"F","size":16}`},
	{name: "fixed size differs",
		reader: rec(field("f", `{"type":"fixed","name":"F","size":16}`)),
		writer: rec(field("f", `{"type":"fixed","name":"F","size":8}`)),
		want:   []string{`at "f": reader fixed "pyrite.test.F" has size 16 but writer fixed "pyrite.test.F" has size 8`}},
	{name: "fixed name differs",
		reader: `{"type":"fixed","name":"F","size":4}`, writer: `{"type":"fixed","name":"G","size":4}`,
		want: []string{`reader fixed "F" (size 4) does not match writer fixed "G" (size 4)`}},

	// Logical types follow their underlying type; decimals must agree.
	{name: "timestamp-millis reads plain long",
		reader: `{"type":"long","logicalType":"timestamp-millis"}`, writer: `"long"`},
	{name: "timestamp-millis reads timestamp-micros as long",
		reader: `{"type":"long","logicalType":"timestamp-millis"}`, writer: `{"type":"long","logicalType":"timestamp-micros"}`},
	{name: "timestamp-millis long reads date int by promotion",
		reader: `{"type":"long","logicalType":"timestamp-millis"}`, writer: `{"type":"int","logicalType":"date"}`},
	{name: "date int cannot read timestamp-millis long",
		reader: rec(field("t", `{"type":"int","logicalType":"date"}`)),
		writer: rec(field("t", `{"type":"long","logicalType":"timestamp-millis"}`)),
		want:   []string{`at "t": reader type int (date) cannot read writer type long (timestamp-millis)`}},
	{name: "uuid reads string", reader: `{"type":"string","logicalType":"uuid"}`, writer: `"string"`},
	{name: "decimal scale differs",
		reader: `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`,
		writer: `{"type":"bytes","logicalType":"decimal","precision":4,"scale":3}`,
		want:   []string{`reader decimal(4,2) cannot read writer decimal(4,3)`}},
	{name: "decimal same precision and scale",
		reader: `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`,
		writer: `{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}`},
	{name: "root kinds differ",
		reader: rec(field("a", `"int"`)), writer: `"string"`,
		want: []string{`at (root): reader type record "pyrite.test.R" cannot read writer type string`}},
}

// TestResolution runs the specification's cases through BACKWARD (candidate
// reads existing) and FORWARD with the roles swapped, and checks the verdict
// against twmb/avro's checker as an independent oracle.
func TestResolution(t *testing.T) {
	for _, tc := range resolutionCases {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := compat.Check(compat.Backward, compat.Schema{Text: tc.reader}, []compat.Schema{{Text: tc.writer}})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertMessages(t, msgs, tc.want, "backward: new schema cannot read data written by existing[0]: ")

			fwd, err := compat.Check(compat.Forward, compat.Schema{Text: tc.writer}, []compat.Schema{{Text: tc.reader}})
			if err != nil {
				t.Fatalf("Check forward: %v", err)
			}
			assertMessages(t, fwd, tc.want, "forward: existing[0] cannot read data written by new schema: ")

			r, err := twmbavro.Parse(tc.reader)
			if err != nil {
				t.Fatalf("oracle parse reader: %v", err)
			}
			w, err := twmbavro.Parse(tc.writer)
			if err != nil {
				t.Fatalf("oracle parse writer: %v", err)
			}
			oracle := twmbavro.CheckCompatibility(w, r)
			if (oracle == nil) != (len(msgs) == 0) {
				t.Errorf("verdict differs from twmb/avro: ours %q, theirs %v", msgs, oracle)
			}
		})
	}
}

func assertMessages(t *testing.T, msgs, want []string, prefix string) {
	t.Helper()
	if len(msgs) != len(want) {
		t.Fatalf("got %d messages %q, want %d containing %q", len(msgs), msgs, len(want), want)
	}
	for i, m := range msgs {
		if !strings.HasPrefix(m, prefix) {
			t.Errorf("message %d %q lacks prefix %q", i, m, prefix)
		}
		if !strings.Contains(m, want[i]) {
			t.Errorf("message %d %q does not contain %q", i, m, want[i])
		}
	}
}

// TestLevels checks v1, v2, v3 histories where v3 is compatible with v2 but
// not with v1 in the level's direction.
func TestLevels(t *testing.T) {
	a := field("a", `"int"`)
	bDefault := `{"name":"b","type":"int","default":0}`
	b := field("b", `"int"`)
	// Backward: v3 reads v2 (which has b) but not v1 (no b, v3 has no default).
	backHist := []compat.Schema{{Text: rec(a)}, {Text: rec(a + "," + bDefault)}}
	backV3 := compat.Schema{Text: rec(a + "," + b)}
	// Forward and full: v2 reads v3 (b defaulted), v1 does not (b required).
	fwdHist := []compat.Schema{{Text: rec(a + "," + b)}, {Text: rec(a + "," + bDefault)}}
	fwdV3 := compat.Schema{Text: rec(a)}

	tests := []struct {
		name     string
		level    compat.Level
		cand     compat.Schema
		existing []compat.Schema
		want     []string
	}{
		{name: "NONE accepts anything", level: compat.None, cand: compat.Schema{Text: `"string"`}, existing: backHist},
		{name: "BACKWARD checks only latest", level: compat.Backward, cand: backV3, existing: backHist},
		{name: "BACKWARD_TRANSITIVE checks all", level: compat.BackwardTransitive, cand: backV3, existing: backHist,
			want: []string{`backward: new schema cannot read data written by existing[0]: reader field "b" has no default and is missing in writer`}},
		{name: "FORWARD checks only latest", level: compat.Forward, cand: fwdV3, existing: fwdHist},
		{name: "FORWARD_TRANSITIVE checks all", level: compat.ForwardTransitive, cand: fwdV3, existing: fwdHist,
			want: []string{`forward: existing[0] cannot read data written by new schema: reader field "b" has no default and is missing in writer`}},
		{name: "FULL checks only latest", level: compat.Full, cand: fwdV3, existing: fwdHist},
		{name: "FULL_TRANSITIVE checks all", level: compat.FullTransitive, cand: fwdV3, existing: fwdHist,
			want: []string{`forward: existing[0] cannot read data written by new schema: reader field "b" has no default`}},
		{name: "FULL fails on backward side", level: compat.Full, cand: backV3, existing: backHist[:1],
			want: []string{`backward: new schema cannot read data written by existing[0]: reader field "b"`}},
		{name: "FULL fails on forward side", level: compat.Full, cand: fwdV3, existing: fwdHist[:1],
			want: []string{`forward: existing[0] cannot read data written by new schema: reader field "b"`}},
		{name: "FULL reports both directions backward first", level: compat.Full,
			cand:     compat.Schema{Text: rec(field("c", `"int"`))},
			existing: []compat.Schema{{Text: rec(a)}},
			want: []string{
				`backward: new schema cannot read data written by existing[0]: reader field "c" has no default`,
				`forward: existing[0] cannot read data written by new schema: reader field "a" has no default`,
			}},
		{name: "transitive reports oldest first with index", level: compat.BackwardTransitive,
			cand:     compat.Schema{Text: rec(field("c", `"int"`))},
			existing: []compat.Schema{{Text: rec(a)}, {Text: rec(a)}, {Text: rec(field("c", `"int"`))}},
			want: []string{
				`existing[0]: reader field "c" has no default`,
				`existing[1]: reader field "c" has no default`,
			}},
		{name: "no existing schemas", level: compat.FullTransitive, cand: backV3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := compat.Check(tc.level, tc.cand, tc.existing)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertMessages(t, msgs, tc.want, "")
		})
	}
}

// TestNoStaleVerdicts runs checks in sequence in one process whose schemas
// differ only in what Parsing Canonical Form leaves out (defaults, aliases,
// enum defaults): each verdict must follow its own schemas.
func TestNoStaleVerdicts(t *testing.T) {
	writer := []compat.Schema{{Text: rec(field("a", `"int"`))}}
	withDefault := compat.Schema{Text: rec(field("a", `"int"`) + `,{"name":"b","type":"int","default":1}`)}
	withoutDefault := compat.Schema{Text: rec(field("a", `"int"`) + `,` + field("b", `"int"`))}

	enumWriter := []compat.Schema{{Text: rec(field("e", `{"type":"enum","name":"E","symbols":["A","B"]}`))}}
	enumWithDefault := compat.Schema{Text: rec(field("e", `{"type":"enum","name":"E","symbols":["A"],"default":"A"}`))}
	enumWithoutDefault := compat.Schema{Text: rec(field("e", `{"type":"enum","name":"E","symbols":["A"]}`))}

	aliasWriter := []compat.Schema{{Text: rec(field("old", `"int"`))}}
	withAlias := compat.Schema{Text: rec(`{"name":"new","aliases":["old"],"type":"int"}`)}
	withoutAlias := compat.Schema{Text: rec(field("new", `"int"`))}

	steps := []struct {
		name     string
		cand     compat.Schema
		existing []compat.Schema
		ok       bool
	}{
		{"b with default", withDefault, writer, true},
		{"b without default", withoutDefault, writer, false},
		{"b with default again", withDefault, writer, true},
		{"b without default again", withoutDefault, writer, false},
		{"enum with default", enumWithDefault, enumWriter, true},
		{"enum without default", enumWithoutDefault, enumWriter, false},
		{"field alias", withAlias, aliasWriter, true},
		{"field without alias", withoutAlias, aliasWriter, false},
		{"field alias again", withAlias, aliasWriter, true},
	}
	for _, st := range steps {
		msgs, err := compat.Check(compat.Backward, st.cand, st.existing)
		if err != nil {
			t.Fatalf("%s: Check: %v", st.name, err)
		}
		if got := len(msgs) == 0; got != st.ok {
			t.Fatalf("%s: compatible = %v, want %v (messages %q)", st.name, got, st.ok, msgs)
		}
	}
}

func TestReferences(t *testing.T) {
	metaV1 := compat.Schema{Text: `{"type":"record","name":"pyrite.common.Meta","fields":[{"name":"u","type":"string"}]}`}
	metaV2 := compat.Schema{Text: `{"type":"record","name":"pyrite.common.Meta","fields":[{"name":"u","type":"string"},{"name":"x","type":"int"}]}`}
	event := `{"type":"record","name":"pyrite.workeffort.Created","fields":[{"name":"m","type":"pyrite.common.Meta"}]}`
	// A reference that itself references Meta (resolved depth-first).
	envelope := func(meta compat.Schema) compat.Schema {
		return compat.Schema{
			Text:       `{"type":"record","name":"pyrite.common.Envelope","fields":[{"name":"meta","type":"pyrite.common.Meta"}]}`,
			References: []compat.Schema{meta},
		}
	}
	nested := `{"type":"record","name":"pyrite.workeffort.Started","fields":[{"name":"env","type":"pyrite.common.Envelope"}]}`

	tests := []struct {
		name     string
		cand     compat.Schema
		existing []compat.Schema
		want     []string
		wantErr  bool
	}{
		{name: "same reference compatible",
			cand:     compat.Schema{Text: event, References: []compat.Schema{metaV1}},
			existing: []compat.Schema{{Text: event, References: []compat.Schema{metaV1}}}},
		{name: "each schema resolves its own version of the referenced type",
			cand:     compat.Schema{Text: event, References: []compat.Schema{metaV2}},
			existing: []compat.Schema{{Text: event, References: []compat.Schema{metaV1}}},
			want:     []string{`reader field "m.x" has no default and is missing in writer`}},
		{name: "nested references depth-first",
			cand:     compat.Schema{Text: nested, References: []compat.Schema{envelope(metaV2)}},
			existing: []compat.Schema{{Text: nested, References: []compat.Schema{envelope(metaV1)}}},
			want:     []string{`reader field "env.meta.x" has no default`}},
		{name: "diamond references parse once",
			cand:     compat.Schema{Text: nested, References: []compat.Schema{metaV1, envelope(metaV1)}},
			existing: []compat.Schema{{Text: nested, References: []compat.Schema{envelope(metaV1)}}}},
		{name: "missing reference is a parse error",
			cand:     compat.Schema{Text: event},
			existing: []compat.Schema{{Text: event, References: []compat.Schema{metaV1}}},
			wantErr:  true},
		{name: "invalid reference is a parse error",
			cand:     compat.Schema{Text: event, References: []compat.Schema{{Text: `{"type":"record"}`}}},
			existing: []compat.Schema{{Text: event, References: []compat.Schema{metaV1}}},
			wantErr:  true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := compat.Check(compat.Backward, tc.cand, tc.existing)
			if tc.wantErr {
				if !errors.Is(err, compat.ErrInvalidSchema) {
					t.Fatalf("err = %v, want ErrInvalidSchema", err)
				}
				if msgs != nil {
					t.Fatalf("messages %q alongside error", msgs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			assertMessages(t, msgs, tc.want, "backward: ")
		})
	}
}

func TestParseErrors(t *testing.T) {
	good := compat.Schema{Text: rec(field("a", `"int"`))}
	bad := compat.Schema{Text: `{"type":"record","name":"R","fields":[{"name":"a","type":"nosuch"}]}`}
	tests := []struct {
		name     string
		level    compat.Level
		cand     compat.Schema
		existing []compat.Schema
		wantErr  bool
	}{
		{name: "bad candidate", level: compat.Backward, cand: bad, existing: []compat.Schema{good}, wantErr: true},
		{name: "bad candidate under NONE", level: compat.None, cand: bad, wantErr: true},
		{name: "bad latest existing", level: compat.Forward, cand: good, existing: []compat.Schema{good, bad}, wantErr: true},
		{name: "bad older existing not checked when not transitive", level: compat.Full, cand: good, existing: []compat.Schema{bad, good}},
		{name: "bad older existing checked when transitive", level: compat.FullTransitive, cand: good, existing: []compat.Schema{bad, good}, wantErr: true},
		{name: "bad default value", level: compat.Backward, cand: compat.Schema{Text: rec(`{"name":"a","type":"int","default":"x"}`)}, existing: []compat.Schema{good}, wantErr: true},
		{name: "empty text", level: compat.Backward, cand: compat.Schema{}, existing: []compat.Schema{good}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs, err := compat.Check(tc.level, tc.cand, tc.existing)
			if tc.wantErr != (err != nil) {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, compat.ErrInvalidSchema) {
				t.Fatalf("err = %v, want ErrInvalidSchema", err)
			}
			if len(msgs) != 0 {
				t.Fatalf("messages %q", msgs)
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    compat.Level
		wantErr bool
	}{
		{in: "NONE", want: compat.None},
		{in: "backward", want: compat.Backward},
		{in: "Backward_Transitive", want: compat.BackwardTransitive},
		{in: "forward", want: compat.Forward},
		{in: "FORWARD_transitive", want: compat.ForwardTransitive},
		{in: "full", want: compat.Full},
		{in: "full_transitive", want: compat.FullTransitive},
		{in: "", wantErr: true},
		{in: "FULLY", wantErr: true},
		{in: " FULL", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := compat.ParseLevel(tc.in)
			if tc.wantErr {
				if !errors.Is(err, compat.ErrInvalidLevel) {
					t.Fatalf("err = %v, want ErrInvalidLevel", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseLevel(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	_, err := compat.Check(compat.Level("SIDEWAYS"), compat.Schema{Text: `"int"`}, nil)
	if !errors.Is(err, compat.ErrInvalidLevel) {
		t.Fatalf("Check with bad level: err = %v, want ErrInvalidLevel", err)
	}
}

// TestIssueLimit: a type referenced on every level of a deep chain repeats its
// problem exponentially many times; the report is cut off with a note.
func TestIssueLimit(t *testing.T) {
	build := func(leaf string) string {
		s := `{"type":"record","name":"L0","fields":[` + leaf + `]}`
		prev := "L0"
		for i := 1; i <= 12; i++ {
			name := "L" + string(rune('a'+i))
			s = `{"type":"record","name":"` + name + `","fields":[{"name":"x","type":` + s + `},{"name":"y","type":"` + prev + `"}]}`
			prev = name
		}
		return s
	}
	reader := build(field("v", `"int"`) + `,` + field("w", `"int"`))
	writer := build(field("v", `"int"`))
	msgs, err := compat.Check(compat.Backward, compat.Schema{Text: reader}, []compat.Schema{{Text: writer}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if len(msgs) != 101 {
		t.Fatalf("got %d messages, want 100 plus a note", len(msgs))
	}
	if !strings.Contains(msgs[100], "further incompatibilities not listed") {
		t.Errorf("last message %q is not the limit note", msgs[100])
	}
	if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, `"x.x.x.x.x.x.x.x.x.x.x.x.w"`) }) {
		t.Errorf("deepest path missing from %q", msgs[:3])
	}
}
