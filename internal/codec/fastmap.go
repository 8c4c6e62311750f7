package codec

// The fast path for decoding a record into a map[string]any, the shape bus handlers read:
// the record is decoded by a struct plan (fast.go) into a struct made at compile time with a
// field per reader field, of the Go type hamba's generic decoding gives that field, and the
// map is filled from it. Only records whose reader fields are all booleans, ints and longs
// without a logical type, floats, doubles and strings get a plan; every other record, and any
// body the struct plan rejects, goes to hamba as before, and so do calls with a map that is
// not nil (hamba adds to it). What lands in the map is what hamba's map decoding puts there:
// the same keys (the reader's fields; skipped writer fields are absent) and the same dynamic
// types (int, int64, float32, float64, bool, string), which TestFastMapDecodeMatchesHamba
// checks on random, truncated and mutated bodies.

import (
	"reflect"
	"strconv"
	"unsafe"

	"github.com/hamba/avro/v2"
)

var mapType = reflect.TypeFor[*map[string]any]()

// mapPlan decodes one writer schema, resolved into one reader schema, into a map.
type mapPlan struct {
	st     reflect.Type // the struct the record is decoded into first
	plan   *decPlan
	fields []mapField
}

type mapField struct {
	name string
	off  uintptr
	kind reflect.Kind
}

// genericType is the Go type hamba's generic decoding gives a value of s (genericReceiver in
// its codec_generic.go), for the kinds the map plan handles; nil for the others.
func genericType(s avro.Schema) reflect.Type {
	s = deref(s)
	switch s.Type() {
	case avro.Boolean:
		return reflect.TypeFor[bool]()
	case avro.Int:
		if logicalOfSchema(s) == "" {
			return reflect.TypeFor[int]()
		}
	case avro.Long:
		if logicalOfSchema(s) == "" {
			return reflect.TypeFor[int64]()
		}
	case avro.Float:
		return reflect.TypeFor[float32]()
	case avro.Double:
		return reflect.TypeFor[float64]()
	case avro.String:
		return reflect.TypeFor[string]()
	}
	return nil
}

// compileMapDecoder returns the plan decoding data written with the record schema w into a
// map as the record schema r (r == w without resolution), or nil when the pair is left to
// hamba.
func compileMapDecoder(api avro.API, w, r avro.Schema) *mapPlan {
	st, fields := genericStruct(r)
	if st == nil {
		return nil
	}
	plan := compileDecoder(api, w, r, reflect.PointerTo(st))
	if plan == nil {
		return nil
	}
	return &mapPlan{st: st, plan: plan, fields: fields}
}

// genericStruct returns a struct type with a field per field of the record schema s, of the
// type genericType gives it, and where each field is; nil when s is not a record or has a
// field of another kind.
func genericStruct(s avro.Schema) (reflect.Type, []mapField) {
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, nil
	}
	var sfs []reflect.StructField
	for i, f := range rec.Fields() {
		t := genericType(f.Type())
		if t == nil {
			return nil, nil
		}
		sfs = append(sfs, reflect.StructField{Name: "F" + strconv.Itoa(i), Type: t, Tag: reflect.StructTag(`avro:"` + f.Name() + `"`)})
	}
	st := reflect.StructOf(sfs)
	fields := make([]mapField, len(sfs))
	for i, f := range rec.Fields() {
		sf := st.Field(i)
		fields[i] = mapField{name: f.Name(), off: sf.Offset, kind: sf.Type.Kind()}
	}
	return st, fields
}

// decode decodes body into a new map in *out and reports whether it did; false (a map
// already there, a body the plan rejects) leaves *out as it was and the call to hamba.
func (m *mapPlan) decode(body []byte, out *map[string]any, arena *outArena) bool {
	if *out != nil {
		return false
	}
	base := reflect.New(m.st).UnsafePointer()
	if !m.plan.decode(body, base, arena) {
		return false
	}
	v := make(map[string]any, len(m.fields))
	for _, f := range m.fields {
		p := unsafe.Add(base, f.off)
		switch f.kind {
		case reflect.Bool:
			v[f.name] = *(*bool)(p)
		case reflect.Int:
			v[f.name] = *(*int)(p)
		case reflect.Int64:
			v[f.name] = *(*int64)(p)
		case reflect.Float32:
			v[f.name] = *(*float32)(p)
		case reflect.Float64:
			v[f.name] = *(*float64)(p)
		case reflect.String:
			v[f.name] = *(*string)(p)
		}
	}
	*out = v
	return true
}

// mapEncPlan encodes a map[string]any with one record schema by a struct plan: the values
// are copied into a struct of the types genericType gives the fields, which the plan
// encodes. Only maps whose every field is present with exactly the Go type the copy takes
// (an int in int32 range for an Avro int, an int or int64 for a long, a float32 for a float,
// a float64 for a double, a bool, a string) use it; any other map (a missing field left to
// its default, another numeric type, a value validate would refuse) goes to validate and
// hamba as before. Keys the schema does not name are ignored, as hamba ignores them.
type mapEncPlan struct {
	st     reflect.Type
	plan   *encPlan
	fields []mapField
}

// compileMapEncoder returns the plan encoding maps with the record schema s, or nil.
func compileMapEncoder(api avro.API, s avro.Schema) *mapEncPlan {
	st, fields := genericStruct(s)
	if st == nil {
		return nil
	}
	plan := compileEncoder(api, s, reflect.PointerTo(st))
	if plan == nil {
		return nil
	}
	return &mapEncPlan{st: st, plan: plan, fields: fields}
}

// appendBody appends v's encoding to dst and reports whether it did; false leaves v to the
// slow path.
func (m *mapEncPlan) appendBody(dst []byte, v map[string]any) ([]byte, bool) {
	base := reflect.New(m.st).UnsafePointer()
	for _, f := range m.fields {
		p := unsafe.Add(base, f.off)
		switch x := v[f.name].(type) {
		case bool:
			if f.kind != reflect.Bool {
				return dst, false
			}
			*(*bool)(p) = x
		case int:
			switch {
			case f.kind == reflect.Int && x >= -1<<31 && x <= 1<<31-1:
				*(*int)(p) = x
			case f.kind == reflect.Int64:
				*(*int64)(p) = int64(x)
			default:
				return dst, false
			}
		case int64:
			if f.kind != reflect.Int64 {
				return dst, false
			}
			*(*int64)(p) = x
		case float32:
			if f.kind != reflect.Float32 {
				return dst, false
			}
			*(*float32)(p) = x
		case float64:
			if f.kind != reflect.Float64 {
				return dst, false
			}
			*(*float64)(p) = x
		case string:
			if f.kind != reflect.String {
				return dst, false
			}
			*(*string)(p) = x
		default: // missing, nil or another type
			return dst, false
		}
	}
	return m.plan.appendBody(dst, base)
}
