package codec

// Differential tests of the fast path (fast.go) against hamba/avro: for every (schema, Go
// type) pair the fast path compiles, random values must encode to hamba's bytes, and any
// body (valid, mutated or random) must decode to hamba's value or fail where hamba fails.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/hamba/avro/v2"

	"github.com/pyrite-dev/pyrite/schemas"
)

// wideSchema has a field of every kind the fast path handles, and defaults for fields the
// Go types below lack.
const wideSchema = `{"type":"record","name":"Wide","namespace":"pyrite.test","fields":[
	{"name":"b","type":"boolean"},
	{"name":"i","type":"int"},
	{"name":"i8","type":"int"},
	{"name":"i16","type":"int"},
	{"name":"i32","type":"int"},
	{"name":"u8","type":"int"},
	{"name":"u16","type":"int"},
	{"name":"l","type":"long"},
	{"name":"l64","type":"long"},
	{"name":"lu32","type":"long"},
	{"name":"f","type":"float"},
	{"name":"d","type":"double"},
	{"name":"s","type":"string"},
	{"name":"by","type":"bytes"},
	{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
	{"name":"tm","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"tu","type":{"type":"long","logicalType":"timestamp-micros"}},
	{"name":"tml","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"ns","type":["null","string"]},
	{"name":"sn","type":["string","null"]},
	{"name":"ni","type":["null","int"]},
	{"name":"nl","type":["null","long"]},
	{"name":"nd","type":["null","double"]},
	{"name":"nb","type":["null","boolean"]},
	{"name":"nby","type":["null","bytes"]},
	{"name":"ne","type":["null","Color"]},
	{"name":"nt","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
	{"name":"def","type":"string","default":"dflt"},
	{"name":"defn","type":["null","string"],"default":null},
	{"name":"defi","type":"int","default":7},
	{"name":"defe","type":"Color","default":"GREEN"},
	{"name":"inner","type":{"type":"record","name":"Inner","fields":[
		{"name":"x","type":"int"},
		{"name":"y","type":["string","null","long"]},
		{"name":"z","type":{"type":"fixed","name":"F4","size":4}}]},
	 "default":{"x":1,"y":"s","z":"abcd"}}
]}`

type wideNums struct {
	F float32 `avro:"f"`
	D float64 `avro:"d"`
}

type wide struct {
	B    bool   `avro:"b"`
	I    int    `avro:"i"`
	I8   int8   `avro:"i8"`
	I16  int16  `avro:"i16"`
	I32  int32  `avro:"i32"`
	U8   uint8  `avro:"u8"`
	U16  uint16 `avro:"u16"`
	L    int    `avro:"l"`
	L64  int64  `avro:"l64"`
	LU32 uint32 `avro:"lu32"`
	wideNums
	S   string         `avro:"s"`
	By  []byte         `avro:"by"`
	E   string         `avro:"e"`
	TM  time.Time      `avro:"tm"`
	TU  time.Time      `avro:"tu"`
	TML int64          `avro:"tml"`
	NS  *string        `avro:"ns"`
	SN  *string        `avro:"sn"`
	NI  *int32         `avro:"ni"`
	NL  *int64         `avro:"nl"`
	ND  *float64       `avro:"nd"`
	NB  *bool          `avro:"nb"`
	NBy *[]byte        `avro:"nby"`
	NE  *string        `avro:"ne"`
	NT  *time.Time     `avro:"nt"`
	Own string         `avro:"-"` // named "-": not a schema field
	Map map[string]any // no tag, not a schema field
}

// wideReader is wideSchema evolved: fields dropped (skipped when reading old data), fields
// added with defaults, one renamed with an alias.
const wideReader = `{"type":"record","name":"Wide","namespace":"pyrite.test","fields":[
	{"name":"b","type":"boolean"},
	{"name":"number","aliases":["i"],"type":"int"},
	{"name":"l64","type":"long"},
	{"name":"f","type":"float"},
	{"name":"s","type":"string"},
	{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN","BLUE"]}},
	{"name":"tm","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"ns","type":["null","string"]},
	{"name":"nt","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
	{"name":"added","type":"string","default":"new"},
	{"name":"addedN","type":["null","string"],"default":null},
	{"name":"addedS","type":["string","null"],"default":"x"},
	{"name":"addedE","type":"Color","default":"BLUE"},
	{"name":"addedT","type":{"type":"long","logicalType":"timestamp-millis"},"default":1741064767890}
]}`

type wideRead struct {
	B      bool      `avro:"b"`
	Number int32     `avro:"number"`
	L64    int64     `avro:"l64"`
	F      float32   `avro:"f"`
	S      string    `avro:"s"`
	E      string    `avro:"e"`
	TM     time.Time `avro:"tm"`
	NS     *string   `avro:"ns"`
	NT     *time.Time
	Added  string    `avro:"added"`
	AddedN *string   `avro:"addedN"`
	AddedS *string   `avro:"addedS"`
	AddedE string    `avro:"addedE"`
	AddedT time.Time `avro:"addedT"`
}

func parse(t testing.TB, text string) avro.Schema {
	t.Helper()
	s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pair is a writer schema, a reader schema (the same one when no resolution is needed) and a
// Go type, with what the fast path is expected to compile for it.
type pair struct {
	name    string
	writer  avro.Schema
	reader  avro.Schema
	typ     reflect.Type // the type passed to Encode (and, as a pointer, to Decode)
	wantEnc bool
	wantDec bool
}

func (p pair) resolved(t testing.TB) avro.Schema {
	t.Helper()
	if p.reader == p.writer {
		return p.writer
	}
	s, err := avro.NewSchemaCompatibility().Resolve(p.reader, p.writer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func progressSchemas(t testing.TB) (v1, v2, v3 avro.Schema) {
	t.Helper()
	all, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	byVersion := map[int]avro.Schema{}
	for _, f := range all {
		if f.Subject == "pyrite.workeffort.ProgressUpdated" {
			byVersion[f.Version] = parse(t, f.Text)
		}
	}
	return byVersion[1], byVersion[2], byVersion[3]
}

type progress1 struct {
	OldProgress int `avro:"oldProgress"`
	NewProgress int `avro:"newProgress"`
}

type progress3 struct {
	OldProgress int    `avro:"oldProgress"`
	NewProgress int    `avro:"newProgress"`
	Delta       int    `avro:"delta"`
	Formatted   string `avro:"formatted"`
}

type textID string

func (t textID) MarshalText() ([]byte, error)  { return []byte(t), nil }
func (t *textID) UnmarshalText(b []byte) error { *t = textID(b); return nil }

// pairs lists the (schema, type) pairs the tests run, those the fast path compiles and those
// it leaves to hamba.
func pairs(t testing.TB) []pair {
	t.Helper()
	w, wr := parse(t, wideSchema), parse(t, wideReader)
	v1, v2, v3 := progressSchemas(t)
	one := func(name, text string, typ reflect.Type, enc, dec bool) pair {
		s := parse(t, text)
		return pair{name: name, writer: s, reader: s, typ: typ, wantEnc: enc, wantDec: dec}
	}
	const intRec = `{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}`
	const longRec = `{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}`
	const tsRec = `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"}}]}`
	const dblRec = `{"type":"record","name":"R","fields":[{"name":"a","type":"double"}]}`
	const strRec = `{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}`
	const unionRec = `{"type":"record","name":"R","fields":[{"name":"a","type":["string","int"]}]}`
	const mapRec = `{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"map","values":"string"}}]}`
	ps := []pair{
		{name: "wide", writer: w, reader: w, typ: reflect.TypeFor[*wide](), wantEnc: true, wantDec: true},
		{name: "wide as a struct value", writer: w, reader: w, typ: reflect.TypeFor[wide](), wantEnc: true, wantDec: true},
		{name: "wide resolved", writer: w, reader: wr, typ: reflect.TypeFor[*wideRead](), wantDec: true},
		{name: "progress v3", writer: v3, reader: v3, typ: reflect.TypeFor[*progress3](), wantEnc: true, wantDec: true},
		{name: "progress v1 as v3", writer: v1, reader: v3, typ: reflect.TypeFor[*progress3](), wantEnc: true, wantDec: true},
		{name: "progress v2 as v3", writer: v2, reader: v3, typ: reflect.TypeFor[*progress3](), wantEnc: true, wantDec: true},
		{name: "progress v3 as v1", writer: v3, reader: v1, typ: reflect.TypeFor[*progress1](), wantEnc: true, wantDec: true},
		{name: "progress v3 into a struct lacking fields", writer: v3, reader: v3, typ: reflect.TypeFor[*progress1](), wantEnc: true, wantDec: true},
		{name: "progress v1 into a struct with more fields", writer: v1, reader: v1, typ: reflect.TypeFor[*progress3](), wantEnc: true, wantDec: true},
		one("int32 field for a long", longRec, reflect.TypeFor[*struct {
			A int32 `avro:"a"`
		}](), true, false),
		one("float32 field for a double", dblRec, reflect.TypeFor[*struct {
			A float32 `avro:"a"`
		}](), true, false),
		one("int64 field for an int", intRec, reflect.TypeFor[*struct {
			A int64 `avro:"a"`
		}](), false, false),
		one("duration for a timestamp", tsRec, reflect.TypeFor[*struct {
			A time.Duration `avro:"a"`
		}](), false, false),
		one("text marshaler for a string", strRec, reflect.TypeFor[*struct {
			A textID `avro:"a"`
		}](), false, false),
		one("pointer for a non-null union", unionRec, reflect.TypeFor[*struct {
			A *string `avro:"a"`
		}](), false, false),
		one("map field", mapRec, reflect.TypeFor[*struct {
			A map[string]string `avro:"a"`
		}](), false, false),
		one("pointer-embedded struct", intRec, reflect.TypeFor[*struct {
			*progressEmb
		}](), false, false),
		one("value-embedded struct", intRec, reflect.TypeFor[*struct {
			X struct{}
			progressEmb
		}](), true, true),
		one("map value", intRec, reflect.TypeFor[map[string]any](), false, false),
		one("pointer-shaped struct value", `{"type":"record","name":"R","fields":[{"name":"a","type":["null","string"]}]}`,
			reflect.TypeFor[struct {
				A *string `avro:"a"`
			}](), false, true),
	}
	// promotion (int written, long read) is left to hamba
	ps = append(ps, pair{name: "int promoted to long", writer: parse(t, intRec), reader: parse(t, longRec),
		typ: reflect.TypeFor[*struct {
			A int64 `avro:"a"`
		}](), wantDec: false})
	return ps
}

type progressEmb struct {
	A int `avro:"a"`
}

// eventPairs builds, for every schema in schemas/, a struct type whose fields the fast path
// supports (strings, ints as int32, longs as int64, timestamps as time.Time, nullable
// strings as *string); schemas with other field types (maps) are reported as not compiled.
func eventPairs(t testing.TB) []pair {
	t.Helper()
	all, err := schemas.All()
	if err != nil {
		t.Fatal(err)
	}
	var ps []pair
	for _, f := range all {
		s := parse(t, f.Text)
		var fields []reflect.StructField
		ok := true
		for i, fd := range s.(*avro.RecordSchema).Fields() {
			var ft reflect.Type
			switch ts := deref(fd.Type()); {
			case ts.Type() == avro.String:
				ft = reflect.TypeFor[string]()
			case ts.Type() == avro.Int:
				ft = reflect.TypeFor[int32]()
			case ts.Type() == avro.Long && logicalOfSchema(ts) == avro.TimestampMillis:
				ft = reflect.TypeFor[time.Time]()
			case ts.Type() == avro.Long:
				ft = reflect.TypeFor[int64]()
			case ts.Type() == avro.Union && ts.(*avro.UnionSchema).Nullable():
				ft = reflect.TypeFor[*string]()
			default:
				ft, ok = reflect.TypeFor[map[string]string](), false
			}
			fields = append(fields, reflect.StructField{
				Name: fmt.Sprintf("F%d", i), Type: ft, Tag: reflect.StructTag(`avro:"` + fd.Name() + `"`),
			})
		}
		typ := reflect.PointerTo(reflect.StructOf(fields))
		ps = append(ps, pair{name: fmt.Sprintf("%s v%d", f.Subject, f.Version), writer: s, reader: s, typ: typ,
			wantEnc: ok, wantDec: ok})
	}
	return ps
}

func TestFastPathCompiles(t *testing.T) {
	for _, p := range append(pairs(t), eventPairs(t)...) {
		t.Run(p.name, func(t *testing.T) {
			api := avro.Config{}.Freeze()
			enc := compileEncoder(api, p.writer, p.typ)
			if (enc != nil) != p.wantEnc {
				t.Errorf("encoder plan compiled = %v, want %v", enc != nil, p.wantEnc)
			}
			dt := p.typ
			if dt.Kind() != reflect.Pointer {
				dt = reflect.PointerTo(dt)
			}
			dec := compileDecoder(api, p.writer, p.reader, dt)
			if (dec != nil) != p.wantDec {
				t.Errorf("decoder plan compiled = %v, want %v", dec != nil, p.wantDec)
			}
		})
	}
}

// gen fills v (of a type matching schema s as the fast path maps it) with a random value,
// edge cases included.
func gen(r *rand.Rand, s avro.Schema, v reflect.Value) {
	s = deref(s)
	if v.Kind() == reflect.Pointer && s.Type() == avro.Union {
		if r.IntN(4) == 0 {
			v.SetZero()
			return
		}
		u := s.(*avro.UnionSchema)
		_, val := u.Indices()
		v.Set(reflect.New(v.Type().Elem()))
		gen(r, u.Types()[val], v.Elem())
		return
	}
	if v.Kind() == reflect.Struct && v.Type() != timeType {
		genStruct(r, s.(*avro.RecordSchema), v)
		return
	}
	switch s.Type() {
	case avro.Boolean:
		v.SetBool(r.IntN(2) == 1)
	case avro.Int, avro.Long:
		if v.Type() == timeType {
			tm := time.Unix(r.Int64N(8e9)-4e9, r.Int64N(1e9))
			switch r.IntN(4) {
			case 0:
				tm = tm.In(time.FixedZone("X", 3600*5+1800))
			case 1:
				tm = time.Time{}
			}
			v.Set(reflect.ValueOf(tm))
			return
		}
		x := []int64{0, 1, -1, 63, 64, -64, -65, math.MaxInt32, math.MinInt32, math.MaxInt64, math.MinInt64,
			1 << 40, r.Int64(), int64(r.Uint32()), r.Int64N(1000) - 500}[r.IntN(15)]
		if v.CanInt() {
			v.SetInt(x)
		} else {
			v.SetUint(uint64(x))
		}
	case avro.Float, avro.Double:
		x := []float64{0, math.Copysign(0, -1), 1.5, -3.25e10, math.Inf(1), math.Inf(-1), math.NaN(),
			r.NormFloat64() * 1e6, math.MaxFloat64, math.SmallestNonzeroFloat64}[r.IntN(10)]
		v.SetFloat(x)
	case avro.String:
		v.SetString(randString(r))
	case avro.Bytes:
		switch r.IntN(5) {
		case 0:
			v.SetBytes(nil)
		case 1:
			v.SetBytes([]byte{})
		default:
			v.SetBytes([]byte(randString(r)))
		}
	case avro.Enum:
		syms := s.(*avro.EnumSchema).Symbols()
		v.SetString(syms[r.IntN(len(syms))])
	}
}

func genStruct(r *rand.Rand, rec *avro.RecordSchema, v reflect.Value) {
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		if sf.Anonymous {
			genStruct(r, rec, v.Field(i))
			continue
		}
		if !sf.IsExported() {
			continue
		}
		name := sf.Tag.Get("avro")
		if name == "" {
			name = sf.Name
		}
		for _, f := range rec.Fields() {
			if f.Name() == name {
				gen(r, f.Type(), v.Field(i))
			}
		}
	}
}

func randString(r *rand.Rand) string {
	switch r.IntN(6) {
	case 0:
		return ""
	case 1:
		return strings.Repeat("long ", 300) // over sharedCopyMax and arenaMaxPiece
	case 2:
		return "héllo wörld ✓"
	}
	b := make([]byte, r.IntN(20))
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// equalValues is reflect.DeepEqual that compares floats by their bits (NaN equals NaN).
func equalValues(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Struct:
		if a.Type() == timeType {
			return reflect.DeepEqual(a.Interface(), b.Interface())
		}
		for i := range a.NumField() {
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice:
		if a.IsNil() != b.IsNil() {
			return false
		}
		return bytes.Equal(a.Bytes(), b.Bytes())
	case reflect.Map:
		return a.IsNil() == b.IsNil() && a.Len() == b.Len() && a.Len() == 0
	}
	if !a.CanInterface() {
		return true // unexported fields the codec never writes
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// ptrTo returns a pointer-to-struct type for decoding into p's type.
func decodeType(p pair) reflect.Type {
	if p.typ.Kind() == reflect.Pointer {
		return p.typ
	}
	return reflect.PointerTo(p.typ)
}

// fastDecode decodes body into a new value by the fast path, with strings copied to the
// heap for bodies of odd length and into an arena for the others.
func fastDecode(t testing.TB, plan *decPlan, typ reflect.Type, body []byte) (reflect.Value, bool) {
	t.Helper()
	v := reflect.New(typ.Elem())
	var arena *outArena
	if len(body)%2 == 0 {
		arena = &outArena{}
	}
	return v, plan.decode(body, v.UnsafePointer(), arena)
}

// hambaDecode decodes body into a new value by hamba, as Decode's fallback does.
func hambaDecode(t testing.TB, p pair, typ reflect.Type, body []byte) (reflect.Value, error) {
	t.Helper()
	v := reflect.New(typ.Elem())
	b := newBinding(p.writer, p.reader)
	return v, decodeHamba(b, p.resolved(t), body, v.Interface())
}

func TestFastEncodeMatchesHamba(t *testing.T) {
	for _, p := range append(pairs(t), eventPairs(t)...) {
		if !p.wantEnc {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(p.name))))
			api := avro.Config{}.Freeze()
			plan := compileEncoder(api, p.writer, p.typ)
			if plan == nil {
				t.Fatal("no plan")
			}
			for i := range 300 {
				v := reflect.New(p.typ).Elem()
				if p.typ.Kind() == reflect.Pointer {
					v.Set(reflect.New(p.typ.Elem()))
					gen(r, p.writer, v.Elem())
				} else {
					gen(r, p.writer, v)
				}
				val := v.Interface()
				want, err := (avro.Config{}).Freeze().Marshal(p.writer, val)
				if err != nil {
					t.Fatalf("hamba: %v", err)
				}
				prefix := []byte{0xAA}
				got, ok := plan.appendBody(prefix[:1:1], ptrOf(val))
				if !ok || !bytes.Equal(got[1:], want) || got[0] != 0xAA {
					t.Fatalf("value %d %+v:\nfast  %x (ok %v)\nhamba %x", i, val, got, ok, want)
				}
			}
		})
	}
}

// ptrOf is the address the fast path encodes from: the pointer itself, or the address of
// the boxed struct.
func ptrOf(v any) unsafe.Pointer {
	type eface struct{ typ, data unsafe.Pointer }
	return (*eface)(unsafe.Pointer(&v)).data
}

func TestFastDecodeMatchesHamba(t *testing.T) {
	for _, p := range append(pairs(t), eventPairs(t)...) {
		if !p.wantDec {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(2, uint64(len(p.name))))
			typ := decodeType(p)
			plan := compileDecoder(avro.Config{}.Freeze(), p.writer, p.reader, typ)
			if plan == nil {
				t.Fatal("no plan")
			}
			for i := range 300 {
				body := randomBody(t, r, p.writer)
				if _, ok := fastDecode(t, plan, typ, body); !ok {
					t.Fatalf("value %d: body %x does not decode", i, body)
				}
				checkSameDecode(t, p, plan, typ, body, fmt.Sprint("value ", i))
				// Every prefix is truncated; a body with bytes added has trailing bytes, and
				// flipped bytes may be anything.
				checkSameDecode(t, p, plan, typ, body[:r.IntN(len(body)+1)], fmt.Sprint("prefix of ", i))
				checkSameDecode(t, p, plan, typ, append(bytes.Clone(body), byte(r.Uint32())), fmt.Sprint("extended ", i))
				if len(body) > 0 {
					m := bytes.Clone(body)
					m[r.IntN(len(m))] ^= byte(1 << r.IntN(8))
					checkSameDecode(t, p, plan, typ, m, fmt.Sprint("mutated ", i))
				}
			}
		})
	}
}

// randomBody is a random value of the writer schema encoded by hamba (as a map, so that every
// field of the writer is present whatever Go type reads it).
func randomBody(t testing.TB, r *rand.Rand, s avro.Schema) []byte {
	t.Helper()
	v := genGeneric(r, s)
	b, err := avro.Config{}.Freeze().Marshal(s, v)
	if err != nil {
		t.Fatalf("hamba encoding %#v: %v", v, err)
	}
	return b
}

// genGeneric is a random generic value of s, as hamba encodes from maps.
func genGeneric(r *rand.Rand, s avro.Schema) any {
	s = deref(s)
	switch s.Type() {
	case avro.Record:
		m := map[string]any{}
		for _, f := range s.(*avro.RecordSchema).Fields() {
			m[f.Name()] = genGeneric(r, f.Type())
		}
		return m
	case avro.Union:
		types := s.(*avro.UnionSchema).Types()
		i := r.IntN(len(types))
		if deref(types[i]).Type() == avro.Null {
			return nil
		}
		return map[string]any{typeName(types[i]): genGeneric(r, types[i])}
	case avro.Fixed:
		b := make([]byte, s.(*avro.FixedSchema).Size())
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		arr := reflect.New(reflect.ArrayOf(len(b), reflect.TypeFor[byte]())).Elem()
		reflect.Copy(arr, reflect.ValueOf(b))
		return arr.Interface()
	case avro.Long:
		if lt := logicalOfSchema(s); lt == avro.TimestampMillis || lt == avro.TimestampMicros {
			return time.Unix(r.Int64N(8e9)-4e9, r.Int64N(1e9)).UTC()
		}
		v := reflect.New(reflect.TypeFor[int64]()).Elem()
		gen(r, s, v)
		return v.Int()
	case avro.Int:
		v := reflect.New(reflect.TypeFor[int32]()).Elem()
		gen(r, s, v)
		return int(v.Int())
	case avro.Boolean:
		return r.IntN(2) == 1
	case avro.Float:
		return float32(r.NormFloat64())
	case avro.Double:
		return r.NormFloat64()
	case avro.String:
		return randString(r)
	case avro.Bytes:
		return []byte(randString(r))
	case avro.Enum:
		syms := s.(*avro.EnumSchema).Symbols()
		return syms[r.IntN(len(syms))]
	}
	panic("genGeneric: unhandled " + string(s.Type()))
}

func checkSameDecode(t *testing.T, p pair, plan *decPlan, typ reflect.Type, body []byte, what string) {
	t.Helper()
	got, ok := fastDecode(t, plan, typ, body)
	want, err := hambaDecode(t, p, typ, body)
	if ok != (err == nil) {
		t.Fatalf("%s: body %x: fast path ok = %v, hamba error = %v", what, body, ok, err)
	}
	if ok && !equalValues(got.Elem(), want.Elem()) {
		t.Fatalf("%s: body %x:\nfast  %+v\nhamba %+v", what, body, got.Elem(), want.Elem())
	}
}

// The fast path decodes into existing pointees as hamba does, and sets nil for null.
func TestFastDecodeReusesPointees(t *testing.T) {
	w := parse(t, wideSchema)
	p := pair{writer: w, reader: w}
	typ := reflect.TypeFor[*wide]()
	plan := compileDecoder(avro.Config{}.Freeze(), w, w, typ)
	r := rand.New(rand.NewPCG(3, 3))
	for i := range 100 {
		body := randomBody(t, r, w)
		prefill := func() *wide {
			s, n := "old", int32(-1)
			return &wide{NS: &s, NI: &n}
		}
		fast, slow := prefill(), prefill()
		fastNS, slowNS := fast.NS, slow.NS
		ok := plan.decode(body, unsafe.Pointer(fast), nil)
		err := decodeHamba(newBinding(p.writer, p.reader), w, body, slow)
		if !ok || err != nil {
			t.Fatalf("value %d: fast ok %v, hamba %v", i, ok, err)
		}
		if !equalValues(reflect.ValueOf(fast).Elem(), reflect.ValueOf(slow).Elem()) {
			t.Fatalf("value %d:\nfast  %+v\nhamba %+v", i, fast, slow)
		}
		if (fast.NS == fastNS) != (slow.NS == slowNS) {
			t.Fatalf("value %d: fast path reused the *string %v, hamba %v", i, fast.NS == fastNS, slow.NS == slowNS)
		}
	}
}

func TestFastDecodedValuesDoNotAliasInput(t *testing.T) {
	w := parse(t, wideSchema)
	plan := compileDecoder(avro.Config{}.Freeze(), w, w, reflect.TypeFor[*wide]())
	// A small body's strings share a copy in the arena, a middling one's a copy on the heap,
	// and a big one's strings are copied one by one.
	for _, size := range []int{3, 300, 5000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			str := strings.Repeat("s", size)
			in := wide{S: str, By: []byte(str), NS: &str, NBy: &[]byte{1, 2}, E: "RED", Own: "x"}
			body, err := avro.Config{}.Freeze().Marshal(w, in)
			if err != nil {
				t.Fatal(err)
			}
			var out wide
			if !plan.decode(body, unsafe.Pointer(&out), &outArena{}) {
				t.Fatal("decode failed")
			}
			for i := range body {
				body[i] = 'z'
			}
			if out.S != str || string(out.By) != str || *out.NS != str || !bytes.Equal(*out.NBy, []byte{1, 2}) {
				t.Errorf("decoded values changed when the input was overwritten: %q %q %q %v", out.S, out.By, *out.NS, *out.NBy)
			}
		})
	}
}

func TestEncodeFallsBackForValuesTheFastPathRejects(t *testing.T) {
	s, err := NewSchema(1, "pyrite.test.Wide", 1, wideSchema)
	if err != nil {
		t.Fatal(err)
	}
	c := New(nil)
	for _, tt := range []struct {
		name string
		v    any
	}{
		{"enum symbol not in the schema", &wide{E: "PURPLE"}},
		{"nullable enum symbol not in the schema", &wide{E: "RED", NE: new(string)}},
		{"nil pointer", (*wide)(nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Encode(s, tt.v); err == nil || !strings.Contains(err.Error(), ErrInvalidData.Error()) {
				t.Errorf("Encode error = %v, want ErrInvalidData from hamba", err)
			}
			dst := []byte("keep")
			if got, err := c.AppendEncode(dst, s, tt.v); err == nil || string(got) != "keep" {
				t.Errorf("AppendEncode = %q, %v; want dst unchanged and an error", got, err)
			}
		})
	}
}

// Encode's results come from a shared arena: concurrent results must not overlap, and
// appending to one must not change another.
func TestEncodeResultsAreDisjoint(t *testing.T) {
	_, _, v3 := progressSchemas(t)
	s := &Schema{ID: 7, Subject: "p", Avro: v3}
	c := New(nil)
	const workers, each = 4, 500
	results := make([][][]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				out, err := c.Encode(s, &progress3{OldProgress: w, NewProgress: i, Formatted: fmt.Sprint(w, "/", i)})
				if err != nil {
					t.Error(err)
					return
				}
				if cap(out) != len(out) {
					t.Errorf("cap %d != len %d", cap(out), len(out))
				}
				_ = append(out, 0xFF, 0xFF) // must reallocate, not write into a neighbour
				results[w] = append(results[w], out)
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for i, out := range results[w] {
			if !decodeBodyEquals(t, v3, out[HeaderSize:], progress3{OldProgress: w, NewProgress: i, Formatted: fmt.Sprint(w, "/", i)}) {
				t.Fatalf("result %d/%d changed: %x", w, i, out)
			}
		}
	}
}

func decodeBodyEquals(t *testing.T, s avro.Schema, body []byte, want progress3) bool {
	t.Helper()
	var got progress3
	if err := (avro.Config{}).Freeze().Unmarshal(s, body, &got); err != nil {
		t.Fatal(err)
	}
	return got == want
}

func TestArenaAlloc(t *testing.T) {
	var a outArena
	seen := map[*byte]bool{}
	total := 0
	for n := 1; total < 3*arenaChunkSize; n = n%arenaMaxPiece + 1 {
		b := a.alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 || seen[&b[i]] {
				t.Fatalf("alloc(%d): byte %d reused or not zero", n, i)
			}
			seen[&b[i]] = true
			b[i] = 1
		}
		total += n
	}
	if big := a.alloc(arenaMaxPiece + 1); len(big) != arenaMaxPiece+1 || cap(big) != arenaMaxPiece+1 {
		t.Errorf("big alloc: len %d cap %d", len(big), cap(big))
	}
}

// FuzzFastDecode: any body decodes by the fast path to hamba's value, or fails where hamba
// fails.
func FuzzFastDecode(f *testing.F) {
	ps := pairs(f)
	var dec []pair
	for _, p := range append(ps, eventPairs(f)...) {
		if p.wantDec {
			dec = append(dec, p)
		}
	}
	plans := make([]*decPlan, len(dec))
	for i, p := range dec {
		plans[i] = compileDecoder(avro.Config{}.Freeze(), p.writer, p.reader, decodeType(p))
	}
	r := rand.New(rand.NewPCG(4, 4))
	for i, p := range dec {
		for range 3 {
			f.Add(randomBody(f, r, p.writer), uint8(i))
		}
	}
	f.Add([]byte{}, uint8(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		i := int(which) % len(dec)
		checkSameDecode(t, dec[i], plans[i], decodeType(dec[i]), body, dec[i].name)
	})
}

// Hand-built bodies at the edges of hamba's reader: varint lengths, lengths and indexes out
// of range. Each is decoded into a struct with every field and into one with none (so that
// every field is skipped), by the fast path and by hamba.
func TestFastDecodeEdgeBodies(t *testing.T) {
	const edge = `{"type":"record","name":"Edge","fields":[
		{"name":"i","type":"int"},
		{"name":"l","type":"long"},
		{"name":"s","type":"string"},
		{"name":"b","type":"boolean"},
		{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
		{"name":"u","type":["null","int"]},
		{"name":"d","type":"double"}]}`
	type full struct {
		I int32   `avro:"i"`
		L int64   `avro:"l"`
		S string  `avro:"s"`
		B bool    `avro:"b"`
		E string  `avro:"e"`
		U *int32  `avro:"u"`
		D float64 `avro:"d"`
	}
	type none struct{}
	s := parse(t, edge)
	ff := func(n int, last byte) []byte { return append(bytes.Repeat([]byte{0xff}, n), last) }
	// The fields in order, each replaced in turn by the cases below.
	good := [][]byte{{2}, {4}, {2, 'x'}, {1}, {2}, {2, 6}, make([]byte, 8)}
	cases := []struct {
		name  string
		field int
		enc   []byte
	}{
		{"int of 5 bytes with high bits", 0, ff(4, 0x7f)},
		{"int of 5 bytes, zero", 0, []byte{0x80, 0x80, 0x80, 0x80, 0}},
		{"int of 6 bytes", 0, ff(5, 0)},
		{"int of 5 continuation bytes", 0, ff(5, 0x80)},
		{"long of 10 bytes with high bits", 1, ff(9, 0x7f)},
		{"long of 11 bytes", 1, ff(10, 0)},
		{"negative string length", 2, []byte{1}},
		{"string length past the end", 2, []byte{40, 'x'}},
		{"huge string length", 2, ff(8, 0x7f)},
		{"empty string", 2, []byte{0}},
		{"boolean 2", 3, []byte{2}},
		{"enum index 2", 4, []byte{4}},
		{"enum index -1", 4, []byte{1}},
		{"union index 2", 5, []byte{4}},
		{"union index -1", 5, []byte{1}},
		{"union null", 5, []byte{0}},
		{"short double", 6, make([]byte, 7)},
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[*full](), reflect.TypeFor[*none]()} {
		p := pair{name: typ.String(), writer: s, reader: s, typ: typ, wantDec: true}
		plan := compileDecoder(avro.Config{}.Freeze(), s, s, typ)
		if plan == nil {
			t.Fatalf("%s: no plan", typ)
		}
		for _, tt := range cases {
			t.Run(typ.Elem().Name()+"/"+tt.name, func(t *testing.T) {
				var body []byte
				for i, g := range good {
					if i == tt.field {
						g = tt.enc
					}
					body = append(body, g...)
				}
				checkSameDecode(t, p, plan, typ, body, tt.name)
			})
		}
	}
	t.Run("string longer than hamba's limit", func(t *testing.T) {
		const long = `{"type":"record","name":"L","fields":[{"name":"s","type":"string"}]}`
		ls := parse(t, long)
		typ := reflect.TypeFor[*struct {
			S string `avro:"s"`
		}]()
		p := pair{writer: ls, reader: ls, typ: typ}
		plan := compileDecoder(avro.Config{}.Freeze(), ls, ls, typ)
		for _, n := range []int{maxByteSlice, maxByteSlice + 1} {
			body := append(appendLongForTest(nil, int64(n)), make([]byte, n)...)
			checkSameDecode(t, p, plan, typ, body, fmt.Sprint("length ", n))
		}
	})
}

func appendLongForTest(b []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		b = append(b, byte(u)|0x80)
		u >>= 7
	}
	return append(b, byte(u))
}
