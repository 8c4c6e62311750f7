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
	rrec, ok := r.(*avro.RecordSchema)
	if !ok {
		return nil
	}
	var sfs []reflect.StructField
	for i, f := range rrec.Fields() {
		t := genericType(f.Type())
		if t == nil {
			return nil
		}
		sfs = append(sfs, reflect.StructField{Name: "F" + strconv.Itoa(i), Type: t, Tag: reflect.StructTag(`avro:"` + f.Name() + `"`)})
	}
	st := reflect.StructOf(sfs)
	plan := compileDecoder(api, w, r, reflect.PointerTo(st))
	if plan == nil {
		return nil
	}
	m := &mapPlan{st: st, plan: plan}
	for i, f := range rrec.Fields() {
		sf := st.Field(i)
		m.fields = append(m.fields, mapField{name: f.Name(), off: sf.Offset, kind: sf.Type.Kind()})
	}
	return m
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
