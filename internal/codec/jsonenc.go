package codec

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hamba/avro/v2"
)

// AppendJSON appends to dst the framed encoding with s of a JSON document as ParseJSON
// returns it: exactly what AppendEncode(dst, s, m) appends for m, err := FromJSONValue(s, v),
// with the same errors. For records of scalars, enums, nullable scalars and nested records
// (the shape of most events) it writes the Avro bytes straight from the tree, without the
// intermediate map and its validation; any other schema, and any value it does not take as
// it is (a missing field without a default, an unknown or duplicate key, a value of the wrong
// kind, Avro JSON's {"type": value} union form), goes through FromJSONValue and
// AppendEncode, which also give the errors. On error dst is returned unchanged.
func (c *Codec) AppendJSON(dst []byte, s *Schema, v any) ([]byte, error) {
	if s != nil && s.Avro != nil && s.ID >= 0 && int64(s.ID) <= 1<<32-1 {
		if p := c.bindingOf(s).jsonPlanOf(s.Avro); p != nil {
			if out, ok := p.append(AppendHeader(dst, s.ID), v); ok {
				return out, nil
			}
		}
	}
	m, err := FromJSONValue(s, v)
	if err != nil {
		return dst, err
	}
	return c.AppendEncode(dst, s, m)
}

// jsonOp is what one record field of a jsonPlan takes.
type jsonOp uint8

const (
	jsonNull jsonOp = iota
	jsonBool
	jsonInt
	jsonLong
	jsonTimeMillis // a long of timestamp-millis
	jsonTimeMicros // a long of timestamp-micros
	jsonFloat
	jsonDouble
	jsonString
	jsonEnum
	jsonRecord
)

// jsonPlan encodes one record schema from a JSON object.
type jsonPlan struct {
	fields []jsonField
}

type jsonField struct {
	name     string
	op       jsonOp
	nullable bool // a union of null and the op's type, in either order
	nullIdx  int  // the union's branch indices
	valIdx   int
	symbols  []string  // jsonEnum
	rec      *jsonPlan // jsonRecord
	def      []byte    // the encoded default, for a field missing from the object
	hasDef   bool
}

// jsonPlanState holds a binding's compiled jsonPlan (nil when the schema is left to the
// general path), compiled on first use.
type jsonPlanState struct {
	done atomic.Bool
	plan atomic.Pointer[jsonPlan]
}

func (b *binding) jsonPlanOf(s avro.Schema) *jsonPlan {
	if b.json.done.Load() {
		return b.json.plan.Load()
	}
	p := compileJSONPlan(b.api, s, 0)
	b.json.plan.Store(p)
	b.json.done.Store(true)
	return p
}

// compileJSONPlan returns the plan for record schema s, or nil when some field has a type the
// plan does not take (arrays, maps, bytes, fixed, other logical types, other unions: their
// conversion and hamba's encoding of them are left to the general path).
func compileJSONPlan(api avro.API, s avro.Schema, depth int) *jsonPlan {
	rs, ok := derefSchema(s).(*avro.RecordSchema)
	if !ok || depth > maxJSONDepth/2 { // FromJSON refuses trees deeper than maxJSONDepth
		return nil
	}
	p := &jsonPlan{fields: make([]jsonField, len(rs.Fields()))}
	for i, f := range rs.Fields() {
		jf := jsonField{name: f.Name()}
		t := derefSchema(f.Type())
		if us, ok := t.(*avro.UnionSchema); ok {
			types := us.Types()
			if len(types) != 2 || !us.Nullable() {
				return nil
			}
			jf.nullable = true
			jf.nullIdx, jf.valIdx = 0, 1
			if types[1].Type() == avro.Null {
				jf.nullIdx, jf.valIdx = 1, 0
			}
			t = derefSchema(types[jf.valIdx])
			if t.Type() == avro.Record || t.Type() == avro.Null {
				return nil // a record branch may come as {"name": value}: left to FromJSON
			}
		}
		switch lt := logicalOf(t); {
		case t.Type() == avro.Null:
			jf.op = jsonNull
		case t.Type() == avro.Boolean:
			jf.op = jsonBool
		case t.Type() == avro.Int && lt == "":
			jf.op = jsonInt
		case t.Type() == avro.Long && lt == "":
			jf.op = jsonLong
		case t.Type() == avro.Long && lt == avro.TimestampMillis:
			jf.op = jsonTimeMillis
		case t.Type() == avro.Long && lt == avro.TimestampMicros:
			jf.op = jsonTimeMicros
		case t.Type() == avro.Float:
			jf.op = jsonFloat
		case t.Type() == avro.Double:
			jf.op = jsonDouble
		case t.Type() == avro.String && lt == "":
			jf.op = jsonString
		case t.Type() == avro.Enum:
			jf.op, jf.symbols = jsonEnum, t.(*avro.EnumSchema).Symbols()
		case t.Type() == avro.Record:
			if jf.rec = compileJSONPlan(api, t, depth+1); jf.rec == nil {
				return nil
			}
			jf.op = jsonRecord
		default:
			return nil
		}
		if f.HasDefault() {
			// What the general path writes for a missing field: FromJSON's value for the
			// default, encoded by hamba with the field's schema.
			def, err := api.Marshal(f.Type(), nativeDefault(f.Type(), f.Default()))
			if err != nil {
				return nil
			}
			jf.def, jf.hasDef = def, true
		}
		p.fields[i] = jf
	}
	return p
}

// append appends the body for the JSON object v, or returns false when v is not one the plan
// takes as it is.
func (p *jsonPlan) append(b []byte, v any) ([]byte, bool) {
	obj, ok := v.(*JSONObject)
	if !ok {
		return b, false
	}
	used := 0
	for i := range p.fields {
		f := &p.fields[i]
		val, found := member(obj, f.name)
		if !found {
			if !f.hasDef {
				return b, false
			}
			b = append(b, f.def...)
			continue
		}
		used++
		if f.nullable {
			if val == nil {
				b = binary.AppendUvarint(b, uint64(f.nullIdx)<<1)
				continue
			}
			if o, ok := val.(*JSONObject); ok && len(o.Members) == 1 {
				return b, false // perhaps {"type name": value}
			}
			b = binary.AppendUvarint(b, uint64(f.valIdx)<<1)
		}
		if b, ok = f.append(b, val); !ok {
			return b, false
		}
	}
	// Every member must have named a field once: an unknown or duplicate key is an error the
	// general path reports.
	return b, used == len(obj.Members)
}

// member returns the value of the first member named key.
func member(obj *JSONObject, key string) (any, bool) {
	for i := range obj.Members {
		if obj.Members[i].Key == key {
			return obj.Members[i].Value, true
		}
	}
	return nil, false
}

// append appends one field's value as FromJSON converts it and hamba encodes the result.
func (f *jsonField) append(b []byte, v any) ([]byte, bool) {
	switch f.op {
	case jsonNull:
		return b, v == nil
	case jsonBool:
		x, ok := v.(bool)
		if !ok {
			return b, false
		}
		if x {
			return append(b, 1), true
		}
		return append(b, 0), true
	case jsonInt:
		n, ok := v.(json.Number)
		if !ok {
			return b, false
		}
		i, err := strconv.ParseInt(string(n), 10, 32)
		if err != nil {
			return b, false
		}
		return binary.AppendUvarint(b, zigzag32(int32(i))), true
	case jsonLong:
		n, ok := v.(json.Number)
		if !ok {
			return b, false
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			return b, false
		}
		return binary.AppendUvarint(b, zigzag64(i)), true
	case jsonTimeMillis, jsonTimeMicros:
		t, ok := jsonTime(v, f.op == jsonTimeMillis)
		if !ok {
			return b, false
		}
		if f.op == jsonTimeMillis {
			return binary.AppendUvarint(b, zigzag64(timeMillis(t))), true
		}
		return binary.AppendUvarint(b, zigzag64(timeMicros(t))), true
	case jsonFloat, jsonDouble:
		n, ok := v.(json.Number)
		if !ok {
			return b, false
		}
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil {
			return b, false
		}
		if f.op == jsonDouble {
			return binary.LittleEndian.AppendUint64(b, math.Float64bits(x)), true
		}
		if math.Abs(x) > math.MaxFloat32 {
			return b, false
		}
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(x))), true
	case jsonString:
		s, ok := v.(string)
		if !ok {
			return b, false
		}
		return append(binary.AppendUvarint(b, zigzag64(int64(len(s)))), s...), true
	case jsonEnum:
		s, ok := v.(string)
		if !ok {
			return b, false
		}
		x := enumIndex(f.symbols, s)
		if x < 0 {
			return b, false
		}
		return binary.AppendUvarint(b, zigzag32(int32(x))), true
	case jsonRecord:
		return f.rec.append(b, v)
	}
	return b, false
}

// jsonTime is FromJSON's reading of a timestamp: an RFC 3339 string truncated to the type's
// precision, or an integer of epoch milli- or microseconds.
func jsonTime(v any, millis bool) (time.Time, bool) {
	switch x := v.(type) {
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, false
		}
		if millis {
			return t.UTC().Truncate(time.Millisecond), true
		}
		return t.UTC().Truncate(time.Microsecond), true
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		if millis {
			return time.UnixMilli(i).UTC(), true
		}
		return time.UnixMicro(i).UTC(), true
	}
	return time.Time{}, false
}
